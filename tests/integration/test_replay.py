"""Replay on connect (SPEC §2): replay=N (current state), since= resume
(the events themselves) and the gap flag."""

import asyncio
import time

from conftest import STREAM, WS, item_frame, run


def test_replay_n_newest_oldest_first(tickerd, xadd):
    ids = [xadd(text=f"t{i}", region="mena" if i % 2 else "europe") for i in range(8)]

    async def main():
        ws = await WS.connect(tickerd, "replay=3")
        _, replayed, marker = await ws.start()
        assert replayed == [item_frame(ids[i], f"t{i}", region=["mena" if i % 2 else "europe"],
                                       replay=True) for i in (5, 6, 7)]
        assert marker == {"type": "replay", "count": 3, "gap": False}
        await ws.close()
        # N newest *matching* items
        ws = await WS.connect(tickerd, "replay=3&region=europe")
        _, replayed, marker = await ws.start()
        assert [f["id"] for f in replayed] == [ids[2], ids[4], ids[6]]
        assert marker == {"type": "replay", "count": 3, "gap": False}
        await ws.close()
        # more asked than there are: all of them, no gap
        ws = await WS.connect(tickerd, "replay=200")
        _, replayed, marker = await ws.start()
        assert [f["id"] for f in replayed] == ids
        assert marker == {"type": "replay", "count": 8, "gap": False}
        await ws.close()

    run(main())


def test_replay_is_current_state(tickerd, xadd):
    a = xadd(text="a", region="mena", source="first")
    b = xadd(text="b")
    c = xadd(text="c", priority="urgent")
    xadd(op="update", ref=a, text="a corrected", priority="flash")
    xadd(op="retract", ref=b)

    async def main():
        ws = await WS.connect(tickerd, "replay=10")
        _, replayed, marker = await ws.start()
        assert replayed == [
            item_frame(a, "a corrected", region=["mena"], priority="flash", source="first",
                       replay=True),
            item_frame(c, "c", priority="urgent", replay=True),
        ]
        assert marker == {"type": "replay", "count": 2, "gap": False}
        await ws.close()

    run(main())


def test_replay_across_startup_load(make_tickerd, xadd):
    ids = [xadd(text=f"pre{i}") for i in range(4)]
    td = make_tickerd()

    async def main():
        ws = await WS.connect(td, "replay=3")
        _, replayed, marker = await ws.start()
        assert [f["id"] for f in replayed] == ids[1:]
        assert marker["count"] == 3 and marker["gap"] is False
        ws2 = await WS.connect(td, f"since={ids[0]}")
        _, replayed, marker = await ws2.start()
        assert [f["id"] for f in replayed] == ids[1:]
        assert marker == {"type": "replay", "count": 3, "gap": False}
        live = xadd(text="live")
        assert (await ws.recv())["id"] == live
        assert (await ws2.recv())["id"] == live
        await ws.close()
        await ws2.close()

    run(main())


def test_since_sends_events_after_id(tickerd, xadd):
    ids = [xadd(text=f"e{i}", lang="ar" if i == 3 else "en") for i in range(5)]

    async def main():
        ws = await WS.connect(tickerd, f"since={ids[1]}&lang=en")
        _, replayed, marker = await ws.start()
        assert replayed == [item_frame(ids[i], f"e{i}", replay=True) for i in (2, 4)]
        assert marker == {"type": "replay", "count": 2, "gap": False}
        live = xadd(text="after")
        assert await ws.recv() == item_frame(live, "after")
        await ws.close()
        # since the newest, or a future ID: nothing, no gap
        for since in (live, "99999999999999-0"):
            ws = await WS.connect(tickerd, f"since={since}")
            _, replayed, marker = await ws.start()
            assert replayed == [] and marker == {"type": "replay", "count": 0, "gap": False}
            await ws.close()
        # since 0-0 with the whole stream in memory: everything, no gap
        ws = await WS.connect(tickerd, "since=0-0")
        _, replayed, marker = await ws.start()
        assert [f["id"] for f in replayed] == ids + [live]
        assert marker["gap"] is False
        await ws.close()

    run(main())


def test_since_resume_during_burst_is_gapless(tickerd, xadd, redis_server):
    """20 clients connect with since=<id before the burst> while 200 items
    are published: each sees exactly the entries after since, in order,
    each once, across the replay/live boundary."""
    before = xadd(text="before")
    burst = []

    def publish():
        r = redis_server.client()
        for i in range(200):
            burst.append(r.xadd(STREAM, {"text": f"burst {i}"}).decode())
            time.sleep(0.002)

    async def client(n):
        await asyncio.sleep(0.02 * n)
        ws = await WS.connect(tickerd, f"since={before}")
        hello, replayed, marker = await ws.start(timeout=10)
        assert marker["count"] == len(replayed) and marker["gap"] is False
        got = [f["id"] for f in replayed]
        while len(got) < 200:
            f = await ws.recv(timeout=10)
            assert f["type"] == "item" and "replay" not in f, f
            got.append(f["id"])
        await ws.expect_silence(0.2)
        await ws.close()
        return len(replayed), got

    async def main():
        loop = asyncio.get_running_loop()
        pub = loop.run_in_executor(None, publish)
        results = await asyncio.gather(*(client(n) for n in range(20)))
        await pub
        return results

    results = run(main(), timeout=90)
    assert len(burst) == 200
    replayed_counts = []
    for nreplayed, got in results:
        assert got == burst
        replayed_counts.append(nreplayed)
    # the clients did connect during the burst, not all before or after it
    assert min(replayed_counts) < 200 and max(replayed_counts) > 0, replayed_counts


def test_gap_when_since_is_older_than_history(make_tickerd, xadd):
    td = make_tickerd({"stream": {"history_size": 5}})
    ids = [xadd(text=f"h{i}") for i in range(10)]

    async def main():
        # wait until the last one is in
        ws = await WS.connect(td, f"since={ids[8]}")
        _, replayed, marker = await ws.start()
        if not replayed:
            assert (await ws.recv())["id"] == ids[9]
        await ws.close()
        for since, gap in ((ids[0], True), (ids[3], True), (ids[4], False), (ids[6], False),
                           ("0-0", True)):
            ws = await WS.connect(td, f"since={since}")
            _, replayed, marker = await ws.start()
            want = [i for i in ids[5:] if i > since] if since != "0-0" else ids[5:]
            assert [f["id"] for f in replayed] == want, since
            assert marker == {"type": "replay", "count": len(want), "gap": gap}, since
            await ws.close()

    run(main())


def test_gap_when_history_was_loaded_partially(make_tickerd, xadd):
    ids = [xadd(text=f"p{i}") for i in range(10)]
    td = make_tickerd({"stream": {"history_size": 5}})

    async def main():
        for since, gap in ((ids[2], True), (ids[3], True), (ids[4], False), (ids[7], False)):
            ws = await WS.connect(td, f"since={since}")
            _, replayed, marker = await ws.start()
            want = [i for i in ids[5:] if i > since]
            assert [f["id"] for f in replayed] == want, since
            assert marker == {"type": "replay", "count": len(want), "gap": gap}, since
            await ws.close()

    run(main())


def test_gap_when_epoch_differs(tickerd, xadd):
    ids = [xadd(text=f"x{i}") for i in range(4)]
    epoch = tickerd.health()[1]["epoch"]

    async def main():
        # same epoch: a normal resume
        ws = await WS.connect(tickerd, f"since={ids[1]}&epoch={epoch}")
        hello, replayed, marker = await ws.start()
        assert hello["epoch"] == epoch
        assert [f["id"] for f in replayed] == ids[2:]
        assert marker == {"type": "replay", "count": 2, "gap": False}
        await ws.close()
        # another epoch: since is ignored, the current state is sent as a gap
        ws = await WS.connect(tickerd, f"since={ids[1]}&epoch=0123456789abcdef&replay=3")
        hello, replayed, marker = await ws.start()
        assert hello["epoch"] == epoch
        assert replayed == [item_frame(ids[i], f"x{i}", replay=True) for i in (1, 2, 3)]
        assert marker == {"type": "replay", "count": 3, "gap": True}
        await ws.close()

    run(main())


def test_gap_when_more_than_replay_max_match(make_tickerd, xadd):
    td = make_tickerd({"replay": {"default": 3, "max": 5}})
    ids = [xadd(text=f"m{i}", region="mena" if i < 4 else "europe") for i in range(10)]

    async def main():
        ws = await WS.connect(td, f"since={ids[0]}")
        _, replayed, marker = await ws.start()
        assert [f["id"] for f in replayed] == ids[5:]  # the newest 5 of 9
        assert marker == {"type": "replay", "count": 5, "gap": True}
        await ws.close()
        # exactly max matching: no gap
        ws = await WS.connect(td, f"since={ids[4]}")
        _, replayed, marker = await ws.start()
        assert [f["id"] for f in replayed] == ids[5:]
        assert marker == {"type": "replay", "count": 5, "gap": False}
        await ws.close()
        # fewer matching the filter than max: no gap
        ws = await WS.connect(td, f"since={ids[0]}&region=mena")
        _, replayed, marker = await ws.start()
        assert [f["id"] for f in replayed] == ids[1:4]
        assert marker == {"type": "replay", "count": 3, "gap": False}
        await ws.close()
        # the default replay follows [replay] default
        ws = await WS.connect(td)
        _, replayed, marker = await ws.start()
        assert [f["id"] for f in replayed] == ids[7:]
        await ws.close()

    run(main())
