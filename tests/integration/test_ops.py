"""Corrections and kills (SPEC §1 op/ref, §2): update and retract events,
live, in replay=N (current state) and in since= resumes (the events), their
routing, unknown refs, and ttl expiry."""

import json
import time

import pytest

from conftest import WS, http_get, id_ms, item_frame, run


def retract_frame(rid, ref, replay=False):
    f = {"type": "retract", "id": rid, "ref": ref}
    if replay:
        f["replay"] = True
    return f


def test_update_live_replay_and_since(tickerd, xadd):
    async def main():
        ws = await WS.connect(tickerd, "region=mena&replay=0")
        await ws.start()
        a = xadd(text="first version", region="mena", source="Desk", category="politics")
        assert await ws.recv() == item_frame(a, "first version", region=["mena"], source="Desk",
                                             category="politics")
        u = xadd(op="update", ref=a, text="corrected version", priority="urgent")
        corrected = dict(text="corrected version", region=["mena"], source="Desk",
                         category="politics", priority="urgent")
        assert await ws.recv() == item_frame(u, type="update", ref=a, ts_id=a, **corrected)
        await ws.expect_silence()

        # replay=N: the current state under the original ID
        ws2 = await WS.connect(tickerd, "replay=5")
        _, replayed, marker = await ws2.start()
        assert replayed == [item_frame(a, replay=True, **corrected)]
        assert marker == {"type": "replay", "count": 1, "gap": False}

        # since: the events themselves
        ws3 = await WS.connect(tickerd, "since=0-0")
        _, replayed, marker = await ws3.start()
        assert replayed == [
            item_frame(a, "first version", region=["mena"], source="Desk", category="politics",
                       replay=True),
            item_frame(u, type="update", ref=a, ts_id=a, replay=True, **corrected),
        ]
        assert marker == {"type": "replay", "count": 2, "gap": False}
        ws4 = await WS.connect(tickerd, f"since={a}")
        _, replayed, marker = await ws4.start()
        assert replayed == [item_frame(u, type="update", ref=a, ts_id=a, replay=True, **corrected)]
        for w in (ws, ws2, ws3, ws4):
            await w.close()

    run(main())
    status, _, body = http_get(tickerd.port, "/v1/items")
    assert status == 200
    assert [i["text"] for i in json.loads(body)["items"]] == ["corrected version"]


def test_update_routes_to_clients_of_the_original(tickerd, xadd):
    async def main():
        mena = await WS.connect(tickerd, "region=mena&replay=0")
        europe = await WS.connect(tickerd, "region=europe&replay=0")
        asia = await WS.connect(tickerd, "region=asia&replay=0")
        urgent = await WS.connect(tickerd, "priority=urgent&replay=0")
        for w in (mena, europe, asia, urgent):
            await w.start()
        a = xadd(text="in mena", region="mena", priority="urgent")
        assert (await mena.recv())["id"] == a
        assert (await urgent.recv())["id"] == a
        # moved to Europe and downgraded: the mena and urgent clients still
        # get the correction; Europe now matches it
        u = xadd(op="update", ref=a, text="in europe", region="europe", priority="normal")
        for w in (mena, europe, urgent):
            f = await w.recv()
            assert f == item_frame(u, "in europe", type="update", ref=a, ts_id=a,
                                   region=["europe"], priority="normal")
        # and the kill reaches everyone who saw any version
        r = xadd(op="retract", ref=a)
        for w in (mena, europe, urgent):
            assert await w.recv() == retract_frame(r, a)
        for w in (mena, europe, asia, urgent):
            await w.expect_silence(0.2)
            await w.close()

    run(main())


def test_retract_live_never_replayed_and_since(make_tickerd, xadd):
    td = make_tickerd()

    async def main():
        ws = await WS.connect(td, "replay=0")
        await ws.start()
        a = xadd(text="wrong", region="palestine")
        b = xadd(text="right")
        assert [(await ws.recv())["id"] for _ in range(2)] == [a, b]
        r = xadd(op="retract", ref=a)
        assert await ws.recv() == retract_frame(r, a)
        await ws.expect_silence()

        ws2 = await WS.connect(td, "replay=10")
        _, replayed, marker = await ws2.start()
        assert replayed == [item_frame(b, "right", replay=True)]
        assert marker == {"type": "replay", "count": 1, "gap": False}

        ws3 = await WS.connect(td, f"since={b}")
        _, replayed, marker = await ws3.start()
        assert replayed == [retract_frame(r, a, replay=True)]
        ws4 = await WS.connect(td, "since=0-0&region=palestine")
        _, replayed, marker = await ws4.start()
        assert replayed == [item_frame(a, "wrong", region=["palestine"], replay=True),
                            item_frame(b, "right", replay=True),
                            retract_frame(r, a, replay=True)]
        for w in (ws, ws2, ws3, ws4):
            await w.close()
        return a, b, r

    a, b, r = run(main())
    _, _, body = http_get(td.port, "/v1/items")
    assert [i["id"] for i in json.loads(body)["items"]] == [b]

    # a restarted daemon loads the retract too
    td2 = make_tickerd(name="tickerd2")

    async def again():
        ws = await WS.connect(td2, "replay=10")
        _, replayed, _ = await ws.start()
        assert [f["id"] for f in replayed] == [b]
        ws2 = await WS.connect(td2, f"since={b}")
        _, replayed, _ = await ws2.start()
        assert replayed == [retract_frame(r, a, replay=True)]
        await ws.close()
        await ws2.close()

    run(again())


def test_update_of_retracted_item_is_rejected(tickerd, xadd):
    async def main():
        ws = await WS.connect(tickerd, "replay=0")
        await ws.start()
        a = xadd(text="a")
        r = xadd(op="retract", ref=a)
        xadd(op="update", ref=a, text="zombie")
        c = xadd(text="c")
        assert [(await ws.recv())["id"] for _ in range(3)] == [a, r, c]
        await ws.expect_silence()
        await ws.close()

    run(main())
    assert tickerd.metric("tickerd_items_rejected_total", reason="retracted_ref") == 1


def test_update_needs_text(tickerd, xadd):
    a = xadd(text="a")
    xadd(op="update", ref=a, priority="flash")
    xadd(text="sync")
    time.sleep(0.3)
    assert tickerd.metric("tickerd_items_rejected_total", reason="missing_text") == 1


def test_resume_with_since_across_update_and_retract(tickerd, xadd):
    async def main():
        ws = await WS.connect(tickerd, "replay=0&region=mena")
        await ws.start()
        a = xadd(text="a", region="mena")
        b = xadd(text="b", region="mena")
        assert [(await ws.recv())["id"] for _ in range(2)] == [a, b]
        await ws.close()
        # missed while away
        u = xadd(op="update", ref=a, text="a2")
        r = xadd(op="retract", ref=b)
        xadd(text="elsewhere", region="asia")
        c = xadd(text="c", region="mena")
        ws = await WS.connect(tickerd, f"since={b}&region=mena")
        _, replayed, marker = await ws.start()
        assert replayed == [
            item_frame(u, "a2", type="update", ref=a, ts_id=a, region=["mena"], replay=True),
            retract_frame(r, b, replay=True),
            item_frame(c, "c", region=["mena"], replay=True),
        ]
        assert marker == {"type": "replay", "count": 3, "gap": False}
        d = xadd(text="d", region="mena")
        assert await ws.recv() == item_frame(d, "d", region=["mena"])
        await ws.close()

    run(main())


def test_ten_updates_replay_latest_state_once(tickerd, xadd):
    a = xadd(text="v0", region="asia")
    other = xadd(text="other")
    ups = [xadd(op="update", ref=a, text=f"v{i}") for i in range(1, 11)]

    async def main():
        ws = await WS.connect(tickerd, "replay=10")
        _, replayed, marker = await ws.start()
        assert replayed == [item_frame(a, "v10", region=["asia"], replay=True),
                            item_frame(other, "other", replay=True)]
        assert marker["count"] == 2
        ws2 = await WS.connect(tickerd, f"since={other}")
        _, replayed, marker = await ws2.start()
        assert [(f["type"], f["id"], f["ref"], f["text"]) for f in replayed] == \
            [("update", u, a, f"v{i}") for i, u in enumerate(ups, 1)]
        await ws.close()
        await ws2.close()

    run(main())


def test_update_with_unknown_ref_is_rejected(tickerd, xadd):
    """SPEC §2: an update of an item tickerd never saw is rejected
    (unknown_ref) and reaches nobody."""
    async def main():
        asia = await WS.connect(tickerd, "region=asia&replay=0")
        await asia.start()
        xadd(op="update", ref="1000-0", text="fixed elsewhere", region="asia")
        await asia.expect_silence()
        ws = await WS.connect(tickerd, "replay=10")
        _, replayed, _ = await ws.start()
        assert replayed == []
        await asia.close()
        await ws.close()

    run(main())
    assert tickerd.metric("tickerd_items_rejected_total", reason="unknown_ref") == 1


def test_retract_with_unknown_ref_goes_to_every_client(tickerd, xadd):
    """SPEC §2: a retract whose original tickerd never saw is sent to every
    client, whatever its filter and whatever fields the retract carries."""
    async def main():
        asia = await WS.connect(tickerd, "region=asia&lang=ar&replay=0")
        europe = await WS.connect(tickerd, "region=europe&priority=flash&replay=0")
        await asia.start()
        await europe.start()
        r1 = xadd(op="retract", ref="1000-0")
        r2 = xadd(op="retract", ref="1000-1", region="asia")
        for w in (asia, europe):
            assert await w.recv() == retract_frame(r1, "1000-0")
            assert await w.recv() == retract_frame(r2, "1000-1")
        await asia.close()
        await europe.close()

    run(main())
    assert tickerd.metric("tickerd_items_rejected_total", reason="unknown_ref") == 0


def test_ttl_expired_item_not_replayed(tickerd, xadd):
    keep = xadd(text="keep")
    short = xadd(text="short", ttl="1")

    async def fresh():
        ws = await WS.connect(tickerd, "replay=10")
        _, replayed, _ = await ws.start()
        await ws.close()
        return replayed

    replayed = run(fresh())
    assert replayed == [item_frame(keep, "keep", replay=True),
                        item_frame(short, "short", ttl=1, replay=True)]
    assert replayed[1]["expires"] == id_ms(short) + 1000
    _, _, body = http_get(tickerd.port, "/v1/items")
    assert [i["id"] for i in json.loads(body)["items"]] == [keep, short]

    time.sleep(max(0.0, id_ms(short) / 1000 + 1.5 - time.time()))
    assert [f["id"] for f in run(fresh())] == [keep]
    _, _, body = http_get(tickerd.port, "/v1/items")
    assert [i["id"] for i in json.loads(body)["items"]] == [keep]

    async def since():
        ws = await WS.connect(tickerd, "since=0-0")
        _, replayed, marker = await ws.start()
        await ws.close()
        return replayed

    assert [f["id"] for f in run(since())] == [keep]


def test_soft_descriptor_limit_is_raised_and_a_short_one_warned(make_tickerd):
    """tickerd raises its soft RLIMIT_NOFILE to the hard limit (the workers
    inherit it), and warns when workers x that limit cannot hold
    max_connections."""
    import resource
    from conftest import WRAPPER
    if WRAPPER:
        pytest.skip("valgrind manages the descriptor limit of the process it runs")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    td = make_tickerd({"limits": {"max_connections": hard + 1}}, start=False)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(1024, hard), hard))
    try:
        td.start()
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    with open(f"/proc/{td.proc.pid}/limits") as f:
        line = next(l for l in f if l.startswith("Max open files"))
    assert int(line.split()[3]) == hard, line
    assert "under max_connections" in td.log()
    td2 = make_tickerd({"limits": {"max_connections": 100}}, name="enough")
    assert "under max_connections" not in td2.log()
