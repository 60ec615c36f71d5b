"""Behaviour under faults (SPEC §4, §2 close codes): Redis restarted under
connected clients, Redis absent at start-up, a slow consumer among fast
ones, and SIGTERM."""

import asyncio
import os
import re
import signal
import socket
import threading
import time

import pytest

from conftest import (SSE, STREAM, WS, Endpoint, ExtraRedisServer, NsTickerd, RawWS, RedisServer,
                      SilentServer, can_unshare_mounts, free_port, http_get, item_frame, run,
                      stop_process, wait_until)


@pytest.fixture
def aof_redis(tmp_path):
    """A redis-server that keeps its data across a restart (AOF)."""
    srv = RedisServer(str(tmp_path / "redis-aof"), appendonly=True).start()
    yield srv
    srv.stop()


def test_redis_restart_clients_stay_and_nothing_is_lost(make_tickerd, aof_redis):
    td = make_tickerd(redis_srv=aof_redis)
    r = aof_redis.client()
    epoch = td.health()[1]["epoch"]
    reconnects = td.metric("tickerd_redis_reconnects_total")

    async def main():
        clients = [await WS.connect(td, q) for q in ("replay=0", "region=mena&replay=0",
                                                        "lang=en&replay=0")]
        for c in clients:
            await c.start()
        before = [r.xadd(STREAM, {"text": f"before {i}", "region": "mena"}).decode()
                  for i in range(2)]
        for c in clients:
            assert [(await c.recv())["id"] for _ in before] == before

        aof_redis.stop()
        wait_until(lambda: td.health()[1]["redis"] == "down", 5, what="redis down in /healthz")
        await asyncio.sleep(0.5)
        for c in clients:  # nothing, and still open
            await c.expect_silence(0.1)
            assert c.conn.open
        aof_redis.start()
        # written before tickerd is back (its backoff is past 400 ms by now)
        r2 = aof_redis.client()
        during = [r2.xadd(STREAM, {"text": f"during {i}", "region": "mena"}).decode()
                  for i in range(5)]
        for c in clients:
            got = [await c.recv(timeout=10) for _ in during]
            assert got == [item_frame(i, f"during {n}", region=["mena"])
                           for n, i in enumerate(during)]
        wait_until(lambda: td.health()[1]["redis"] == "up", 10, what="redis up in /healthz")
        after = r2.xadd(STREAM, {"text": "after", "region": "mena"}).decode()
        for c in clients:
            assert (await c.recv())["id"] == after
            await c.expect_silence(0.2)
            assert c.conn.open
            await c.close()

    run(main())
    assert td.health()[1]["epoch"] == epoch
    assert td.metric("tickerd_redis_reconnects_total") > reconnects
    assert td.metric("tickerd_redis_up") == 1


def test_redis_recreated_empty_is_a_new_epoch(make_tickerd, redis_server, xadd):
    td = make_tickerd()
    old_epoch = td.health()[1]["epoch"]

    async def main():
        ws = await WS.connect(td, "replay=0")
        await ws.start()
        a = xadd(text="old world")
        assert (await ws.recv())["id"] == a
        redis_server.stop()  # no persistence: the stream and its epoch are gone
        redis_server.start()
        wait_until(lambda: td.health()[1]["epoch"] not in ("", old_epoch), 10,
                   what="a new epoch")
        # a stream recreated under tickerd is a gap (SPEC §2): gap, hello, replay
        assert await ws.recv(timeout=5) == {"type": "gap", "last_id": a}
        hello = await ws.recv(timeout=5)
        assert hello["type"] == "hello" and hello["epoch"] != old_epoch
        assert await ws.recv() == {"type": "replay", "count": 0, "gap": True}
        b = redis_server.client().xadd(STREAM, {"text": "new world"}).decode()
        assert await ws.recv() == item_frame(b, "new world")
        # old IDs mean nothing now: a resume from one is answered with a gap
        ws2 = await WS.connect(td, f"since={a}&epoch={old_epoch}")
        hello2, replayed, marker = await ws2.start()
        assert hello2["epoch"] == hello["epoch"]
        assert [f["id"] for f in replayed] == [b] and marker["gap"] is True
        await ws.close()
        await ws2.close()

    run(main())
    assert td.metric("tickerd_gaps_total") == 1


def test_redis_down_at_startup_clients_wait_for_it(tmp_path, make_tickerd):
    srv = RedisServer(str(tmp_path / "late-redis"))  # not started yet
    try:
        td = make_tickerd(start=False, redis_srv=srv)
        td.start(wait=False)
        wait_until(lambda: td.health()[0] in (200, 503), 10, what="/healthz")
        assert td.health()[1]["redis"] == "down"

        async def main():
            ws = await WS.connect(td, "replay=5")
            await ws.expect_silence(0.3)  # parked until the history is loaded
            srv.start()
            a = srv.client().xadd(STREAM, {"text": "first"}).decode()
            hello, replayed, marker = await ws.start(timeout=10)
            # the entry is either in the load or live, never both
            frames = replayed + ([] if replayed else [await ws.recv()])
            assert [f["id"] for f in frames] == [a]
            await ws.expect_silence(0.2)
            await ws.close()

        run(main())
    finally:
        srv.stop()


def test_slow_consumer_closed_1013_others_get_everything(make_tickerd, redis_server):
    # 512 KiB: the fast readers (Python, maybe under a sanitizer on a busy
    # machine) never fall that far behind; the slow one, reading nothing
    # with a 4 KiB buffer, passes it with the 2,000 items of ~1 KB
    td = make_tickerd({"limits": {"max_queue_bytes": 524288}})
    n_items = 2000
    text = "slow consumer test " + "x" * 900

    slow = RawWS(td.port, "/v1/ws?replay=0", rcvbuf=4096)
    assert slow.status == 101
    ids = []

    def publish():
        r = redis_server.client()
        for i in range(n_items):
            ids.append(r.xadd(STREAM, {"text": f"{i} {text}"}).decode())

    async def reader(ws):
        got = []
        while len(got) < n_items:
            f = await ws.recv(timeout=20)
            assert f["type"] == "item", f
            got.append(f["id"])
        await ws.expect_silence(0.2)
        assert ws.conn.open
        return got

    async def main():
        fast = [await WS.connect(td, "replay=0") for _ in range(3)]
        for ws in fast:
            await ws.start()
        loop = asyncio.get_running_loop()
        pub = loop.run_in_executor(None, publish)
        results = await asyncio.gather(*(reader(ws) for ws in fast))
        await pub
        for ws in fast:
            await ws.close()
        return results

    results = run(main(), timeout=120)
    for got in results:
        assert got == ids
    assert td.metric("tickerd_slow_consumer_disconnects_total") == 1
    # what the slow client had been sent is intact, and ends with 1013
    seen = []
    while True:
        op, payload = slow.read_frame()
        if op == 8:
            assert int.from_bytes(payload[:2], "big") == 1013
            break
        seen.append(payload)
    slow.close()
    assert len(seen) < n_items


def test_sigterm_closes_every_client_1001_and_exits_0(make_tickerd, xadd):
    td = make_tickerd()
    xadd(text="x")
    idle = RawWS(td.port, "/v1/ws?replay=0")  # never reads until the end
    sse = SSE(td.port, "/v1/events?replay=0")
    assert sse.status == 200

    async def main():
        clients = [await WS.connect(td, "replay=1") for _ in range(5)]
        for ws in clients:
            await ws.start()
        t0 = time.monotonic()
        os.kill(td.proc.pid, signal.SIGTERM)
        codes = await asyncio.gather(*(ws.wait_closed(timeout=5) for ws in clients))
        assert codes == [1001] * 5
        rc = await asyncio.get_running_loop().run_in_executor(None, td.proc.wait, 5)
        return rc, time.monotonic() - t0

    rc, took = run(main())
    assert rc == 0 and took < 5, (rc, took)
    assert idle.read_close() == 1001
    idle.close()
    sse.read_until_eof(timeout=2)
    sse.close()
    assert "stopped" in td.log()


def test_sigterm_with_no_clients_exits_quickly(tickerd):
    t0 = time.monotonic()
    rc = stop_process(tickerd.proc, timeout=5)
    assert rc == 0 and time.monotonic() - t0 < 2


# --------------------------------------------------------------------------
# counted and logged once per daemon (SPEC §1, §4): worker 0 counts and logs
# an entry only when it is newer than the newest it has counted, a mark that
# outlives the worker


def _rejected_lines(td, entry_id):
    return [line for line in td.log().splitlines() if entry_id in line and "rejected" in line]


def _counts(td):
    return (td.metric("tickerd_items_ingested_total"),
            td.metric("tickerd_items_rejected_total", reason="missing_text"))


def test_two_workers_count_and_log_each_entry_once_across_restarts(make_tickerd, rds):
    from cluster import pids_of
    good = rds.xadd(STREAM, {"text": "loaded"}).decode()
    bad = rds.xadd(STREAM, {"lang": "en"}).decode()
    td = make_tickerd({"server": {"workers": 2}})
    wait_until(lambda: _counts(td) == (1, 1), 5, what="the load counted")
    live_bad = rds.xadd(STREAM, {"region": "mena"}).decode()
    live_good = rds.xadd(STREAM, {"text": "live"}).decode()
    wait_until(lambda: _counts(td) == (2, 2), 5, what="live entries counted")
    time.sleep(0.3)
    assert len(_rejected_lines(td, bad)) == 1 and len(_rejected_lines(td, live_bad)) == 1

    # each worker in turn dies and is restarted: its load counts nothing again
    for _ in range(2):
        _, kids = pids_of(td)
        assert len(kids) == 2
        victim = min(kids)
        os.kill(victim, signal.SIGKILL)
        wait_until(lambda: len(pids_of(td)[1] - {victim}) == 2, 10, what="worker restarted")
        new = next(iter(pids_of(td)[1] - kids))
        wait_until(lambda: re.search(rf"\[{new}\] info: redis\S*: loaded", td.log()), 10,
                   what="its load")
        time.sleep(0.3)
        assert _counts(td) == (2, 2)
        assert len(_rejected_lines(td, bad)) == 1 and len(_rejected_lines(td, live_bad)) == 1
    last = rds.xadd(STREAM, {"text": "after the restarts"}).decode()
    wait_until(lambda: _counts(td) == (3, 2), 5, what="the next entry counted once")
    assert good < live_good < last


def test_epoch_reload_counts_and_logs_nothing_twice(make_tickerd, rds):
    rds.xadd(STREAM, {"text": "one"})
    bad = rds.xadd(STREAM, {"lang": "en"}).decode()
    td = make_tickerd()
    assert _counts(td) == (1, 1)
    old_epoch = td.health()[1]["epoch"]
    rds.set(STREAM + ":epoch", "a-new-epoch")
    rds.execute_command("CLIENT", "KILL", "TYPE", "normal")  # tickerd reconnects, reloads
    wait_until(lambda: td.health()[1]["epoch"] == "a-new-epoch", 10, what="the new epoch")
    assert old_epoch != "a-new-epoch"
    time.sleep(0.3)
    assert _counts(td) == (1, 1)
    assert len(_rejected_lines(td, bad)) == 1
    rds.xadd(STREAM, {"text": "two"})
    wait_until(lambda: _counts(td) == (2, 1), 5, what="a new entry counted")


# --------------------------------------------------------------------------
# Redis faults (SPEC §4, issue 12): unix sockets, timeouts, name resolution,
# backoff, reconnection counts, and the gaps tickerd must report


FAST = {"redis": {"timeout_s": 1, "grace_s": 0}}


def _publish(r, text, **kw):
    return r.xadd(STREAM, dict(text=text, **kw)).decode()


async def _items(ws, n, timeout=10):
    """The next n frames, which must be live items; their IDs."""
    out = []
    for _ in range(n):
        f = await ws.recv(timeout)
        assert f["type"] == "item" and "replay" not in f, f
        out.append(f["id"])
    return out


def test_unix_socket_url_connects_and_survives_a_restart(tmp_path, make_tickerd):
    sock = str(tmp_path / "r.sock")
    srv = ExtraRedisServer(str(tmp_path / "unix-redis"), unixsocket=sock, appendonly=True).start()
    try:
        td = make_tickerd(redis_srv=srv)
        assert td.health()[1]["redis"] == "up"
        epoch = td.health()[1]["epoch"]

        async def main():
            ws = await WS.connect(td, "replay=0")
            await ws.start()
            a = _publish(srv.client(), "over the unix socket")
            assert await ws.recv() == item_frame(a, "over the unix socket")
            srv.stop()
            wait_until(lambda: td.health()[1]["redis"] == "down", 5, what="redis down")
            srv.start()
            during = [_publish(srv.client(), f"during {i}") for i in range(3)]
            assert await _items(ws, 3) == during
            wait_until(lambda: td.health()[1]["redis"] == "up", 10, what="redis up again")
            await ws.expect_silence(0.2)
            await ws.close()

        run(main())
        assert td.health()[1]["epoch"] == epoch
        assert td.metric("tickerd_redis_reconnects_total") == 1
        assert td.metric("tickerd_gaps_total") == 0
        assert "Operation not supported" not in td.log()
    finally:
        srv.stop()


def test_silent_server_times_out_is_down_and_retried(make_tickerd):
    silent = SilentServer()
    try:
        td = make_tickerd(FAST, start=False, redis_srv=silent)
        td.start(wait=False)
        t0 = time.monotonic()
        wait_until(lambda: td.log().count("timed out") >= 2, 10, what="two timeouts")
        took = time.monotonic() - t0
        status, h = td.health()
        assert status == 503 and h["redis"] == "down" and h["ready"] is False
        assert silent.accepted >= 2 and took < 6, (silent.accepted, took)
        # what it waited for is named, with the bound
        assert re.search(r"redis: \S+ to 127\.0\.0\.1:\d+ timed out \(no answer in 1000 ms\)",
                         td.log()), td.log()
        wait_until(lambda: silent.accepted >= 4, 15, what="still retrying")
    finally:
        silent.stop()


def test_paused_proxy_times_out_and_nothing_is_lost(make_tickerd, redis_server, rds, make_proxy):
    proxy = make_proxy(redis_server.port)
    td = make_tickerd(FAST, redis_srv=proxy)

    async def main():
        ws = await WS.connect(td, "replay=0")
        await ws.start()
        a = _publish(rds, "before the pause")
        assert await _items(ws, 1) == [a]
        proxy.pause()  # Redis stops answering: the XREAD's reply waits in the proxy
        during = [_publish(rds, f"during {i}") for i in range(3)]
        wait_until(lambda: "XREAD to 127.0.0.1" in td.log(), 6, what="the XREAD timing out")
        wait_until(lambda: td.health()[1]["redis"] == "down", 5, what="redis down")
        await ws.expect_silence(0.5)
        assert ws.conn.open
        proxy.resume()
        assert await _items(ws, 3) == during  # read again from the last ID, none twice
        after = _publish(rds, "after")
        assert await _items(ws, 1) == [after]
        await ws.expect_silence(0.3)
        await ws.close()

    run(main())
    wait_until(lambda: td.health()[1]["redis"] == "up", 5, what="redis up")
    assert td.metric("tickerd_redis_reconnects_total") >= 1
    assert td.metric("tickerd_gaps_total") == 0


def test_blackholed_address_connect_times_out(make_tickerd, redis_server, rds, make_proxy):
    proxy = make_proxy(redis_server.port)
    td = make_tickerd(FAST, redis_srv=proxy)

    async def main():
        ws = await WS.connect(td, "replay=0")
        await ws.start()
        proxy.blackhole()  # the open connection goes silent, new connects hang
        during = [_publish(rds, f"during {i}") for i in range(2)]
        wait_until(lambda: "connect to 127.0.0.1" in td.log(), 10,
                   what="a connect timing out")
        assert td.health()[1]["redis"] == "down"
        proxy.restore()
        assert await _items(ws, 2, timeout=15) == during
        await ws.expect_silence(0.3)
        await ws.close()

    run(main(), timeout=60)
    assert td.metric("tickerd_gaps_total") == 0


def test_client_kill_reconnects_at_once_and_loses_nothing(make_tickerd, rds):
    td = make_tickerd()

    async def main():
        ws = await WS.connect(td, "replay=0")
        await ws.start()
        for round_ in range(3):
            killed = rds.execute_command("CLIENT", "KILL", "TYPE", "normal")
            assert killed >= 1
            ids = [_publish(rds, f"round {round_} entry {i}") for i in range(3)]
            assert await _items(ws, 3, timeout=5) == ids
        await ws.expect_silence(0.3)
        await ws.close()

    run(main())
    assert td.metric("tickerd_redis_reconnects_total") == 3
    assert td.metric("tickerd_gaps_total") == 0


@pytest.mark.parametrize("fault", ["client-pause", "debug-sleep"])
def test_server_that_stops_answering_loses_nothing(tmp_path, make_tickerd, fault):
    srv = ExtraRedisServer(str(tmp_path / "redis-debug"),
                           extra=["--enable-debug-command", "yes"]).start()
    try:
        td = make_tickerd(FAST, redis_srv=srv)
        r = srv.client()

        async def main():
            ws = await WS.connect(td, "replay=0")
            await ws.start()
            a = _publish(r, "before")
            assert await _items(ws, 1) == [a]
            if fault == "client-pause":
                r.execute_command("CLIENT", "PAUSE", "4000", "ALL")
                blocker = None
            else:
                blocker = threading.Thread(
                    target=lambda: ExtraRedisServer.client(srv).execute_command(
                        "DEBUG", "SLEEP", "4"), daemon=True)
                blocker.start()
                time.sleep(0.2)
            ids = []
            writer = threading.Thread(
                target=lambda: ids.extend(_publish(srv.client(), f"meanwhile {i}")
                                          for i in range(3)), daemon=True)
            writer.start()  # waits until the server answers again
            wait_until(lambda: "timed out" in td.log(), 8, what="tickerd timing out")
            assert td.health()[1]["redis"] == "down"
            writer.join(10)
            if blocker:
                blocker.join(10)
            assert len(ids) == 3
            assert await _items(ws, 3, timeout=15) == ids
            await ws.expect_silence(0.3)
            await ws.close()

        run(main(), timeout=60)
        assert td.metric("tickerd_gaps_total") == 0
    finally:
        srv.stop()


def test_reconnects_counted_once_per_outage_with_backoff(make_tickerd, aof_redis):
    td = make_tickerd({"redis": {"grace_s": 0}}, redis_srv=aof_redis)
    assert td.metric("tickerd_redis_reconnects_total") == 0
    aof_redis.stop()
    # refused attempts: 100 ms doubling (with jitter) - about 7 attempts in 8 s
    time.sleep(8)
    assert td.health()[0] == 503
    aof_redis.start()
    wait_until(lambda: td.health()[1]["redis"] == "up", 10, what="redis up")
    assert td.metric("tickerd_redis_reconnects_total") == 1
    delays = [int(d) for d in re.findall(r"reconnecting in (\d+) ms", td.log())]
    assert len(delays) >= 5, delays
    assert all(100 <= d <= 5000 for d in delays), delays
    assert delays[0] <= 125 and 3750 <= max(delays) <= 5000, delays
    # doubling: each delay is within the jitter of twice the one before, until 5 s
    for prev, cur in zip(delays, delays[1:]):
        assert cur >= min(prev * 2 * 0.75 / 1.25, 3750) - 1, delays


async def _gap_sequence(ws, last_id, timeout=10):
    """Reads gap, hello, the replay and its marker (SPEC §2 live `gap`);
    returns (hello, [replayed], marker)."""
    f = await ws.recv(timeout)
    assert f == {"type": "gap", "last_id": last_id}, f
    hello, replayed, marker = await ws.start(timeout)
    assert marker["gap"] is True and marker["count"] == len(replayed), marker
    return hello, replayed, marker


def test_entries_trimmed_while_cut_off_are_a_gap(make_tickerd, redis_server, rds, make_proxy):
    proxy = make_proxy(redis_server.port)
    td = make_tickerd(FAST, redis_srv=proxy)

    async def main():
        ws = await WS.connect(td, "replay=0")
        await ws.start()
        mena = await WS.connect(td, "region=mena&replay=0")
        await mena.start()
        a = _publish(rds, "seen", region="mena")
        b = _publish(rds, "seen, not mena", region="europe")
        assert await _items(ws, 2) == [a, b] and await _items(mena, 1) == [a]
        proxy.pause()
        lost = [_publish(rds, f"lost {i}") for i in range(3)]
        kept = _publish(rds, "kept")
        rds.xtrim(STREAM, maxlen=1, approximate=False)  # only `kept` is left: lost[] never reach tickerd
        wait_until(lambda: td.health()[1]["redis"] == "down", 6, what="redis down")
        proxy.resume()
        for c, last in ((ws, b), (mena, a)):  # last_id: the last ID that client was sent
            hello, replayed, marker = await _gap_sequence(c, last)
            assert lost[0] not in [f["id"] for f in replayed]
        for c in (ws, mena):  # what can still be read is delivered (global: to mena too)
            assert await _items(c, 1) == [kept]
            await c.expect_silence(0.3)
        # a resume from before the trimmed entries is told so
        ws2 = await WS.connect(td, f"since={b}")
        _, replayed, marker = await ws2.start()
        assert [f["id"] for f in replayed] == [kept] and marker["gap"] is True
        # (since=lost[-1] is a gap too unless it is the ID just before `kept`:
        # Redis does not name the newest trimmed entry)
        ws3 = await WS.connect(td, f"since={kept}")
        _, replayed, marker = await ws3.start()
        assert replayed == [] and marker["gap"] is False
        for c in (ws, mena, ws2, ws3):
            await c.close()

    run(main())
    assert td.metric("tickerd_gaps_total") == 1
    assert "were deleted before tickerd read them: gap" in td.log()


def test_entries_trimmed_during_a_restart_are_a_gap(make_tickerd, aof_redis):
    td = make_tickerd(redis_srv=aof_redis)
    r = aof_redis.client()

    async def main():
        ws = await WS.connect(td, "replay=0")
        await ws.start()
        a = _publish(r, "seen")
        assert await _items(ws, 1) == [a]
        aof_redis.stop()
        wait_until(lambda: td.health()[1]["redis"] == "down", 5, what="redis down")
        # written and trimmed while tickerd is away: on another port, same data
        port, aof_redis.port = aof_redis.port, free_port()
        aof_redis.start()
        r2 = aof_redis.client()
        ids = [r2.xadd(STREAM, {"text": f"meanwhile {i}"}, maxlen=2, approximate=False).decode()
               for i in range(5)]
        aof_redis.stop()
        aof_redis.port = port
        aof_redis.start()
        await _gap_sequence(ws, a)
        assert await _items(ws, 2) == ids[-2:]
        await ws.close()

    run(main())
    assert td.metric("tickerd_gaps_total") == 1


def test_stream_deleted_and_recreated_with_a_new_epoch_is_a_gap(make_tickerd, rds):
    td = make_tickerd()
    old_epoch = td.health()[1]["epoch"]

    async def main():
        ws = await WS.connect(td, "replay=5")
        await ws.start()
        a = _publish(rds, "old stream")
        assert await _items(ws, 1) == [a]
        rds.delete(STREAM, STREAM + ":epoch")  # recreated by an operator, under a running tickerd
        hello, replayed, marker = await _gap_sequence(ws, a, timeout=10)  # found by the poll
        assert hello["epoch"] not in ("", old_epoch) and replayed == []
        assert rds.get(STREAM + ":epoch").decode() == hello["epoch"]
        b = _publish(rds, "new stream")
        assert await ws.recv() == item_frame(b, "new stream")
        await ws.expect_silence(0.3)
        await ws.close()

    run(main())
    assert td.metric("tickerd_gaps_total") == 1


def test_stream_replaced_by_an_older_copy_is_a_gap_and_new_entries_flow(make_tickerd, rds):
    td = make_tickerd()
    epoch = td.health()[1]["epoch"]

    async def main():
        ws = await WS.connect(td, "replay=0")
        await ws.start()
        ids = [_publish(rds, f"entry {i}") for i in range(4)]
        assert await _items(ws, 4) == ids
        # a restore of an older copy: the same stream, the last two entries missing
        pipe = rds.pipeline(transaction=True)
        pipe.delete(STREAM)
        for i, entry_id in enumerate(ids[:2]):
            pipe.xadd(STREAM, {"text": f"entry {i}"}, id=entry_id)
        pipe.execute()
        hello, replayed, marker = await _gap_sequence(ws, ids[-1], timeout=10)
        assert hello["epoch"] == epoch
        assert [f["id"] for f in replayed] == ids[:2]
        # XREAD goes on from Redis's last entry, not from the future ID tickerd
        # had read: an entry between the two (a clock behind) arrives, and a new one
        ms, seq = (int(x) for x in ids[1].split("-"))
        between = rds.xadd(STREAM, {"text": "from a clock behind"}, id=f"{ms}-{seq + 1}").decode()
        assert (ms, seq + 1) <= tuple(int(x) for x in ids[2].split("-"))
        assert await ws.recv() == item_frame(between, "from a clock behind")
        new = _publish(rds, "new")
        assert await ws.recv() == item_frame(new, "new")
        await ws.expect_silence(0.3)
        await ws.close()

    run(main())
    assert td.metric("tickerd_gaps_total") == 1
    assert "which tickerd read" in td.log()


def test_start_up_on_a_trimmed_stream_sets_the_horizon(make_tickerd, rds):
    ids = [_publish(rds, f"entry {i}") for i in range(5)]
    rds.xtrim(STREAM, maxlen=2, approximate=False)  # ids[3], ids[4] left; fewer than history_size
    td = make_tickerd()

    async def main():
        # Redis 7 does not name the newest trimmed entry (ids[2]): the
        # horizon is the ID just before the first one kept, so since=ids[2]
        # is a gap unless ids[2] is exactly that ID
        for since, gap, replayed_ids in ((ids[0], True, ids[3:]), (ids[1], True, ids[3:]),
                                         (ids[2], None, ids[3:]), (ids[3], False, ids[4:]),
                                         ("0-0", True, ids[3:])):
            ws = await WS.connect(td, f"since={since}")
            _, replayed, marker = await ws.start()
            assert [f["id"] for f in replayed] == replayed_ids, since
            assert gap is None or marker["gap"] is gap, (since, marker)
            await ws.close()

    run(main())
    assert td.metric("tickerd_gaps_total") == 0


# Name resolution (SPEC §4): tickerd runs in a mount namespace where
# /etc/hosts and /etc/resolv.conf are the test's files.

needs_ns = pytest.mark.skipif(not can_unshare_mounts(), reason="cannot unshare a mount namespace")
NAME = "redis.tickerd.test"


def _port_free_on(*hosts):
    for _ in range(50):
        port = free_port()
        try:
            for h in hosts:
                with socket.socket() as s:
                    s.bind((h, port))
            return port
        except OSError:
            continue
    raise AssertionError("no port free on " + ", ".join(hosts))


def _write(path, text):
    with open(path, "w") as f:  # in place: the bind mount sees the same file
        f.write(text)


def _ns_tickerd(tmp_path, config, binds, name="ns-tickerd"):
    port = int(config.pop("_redis_port"))
    td = NsTickerd(str(tmp_path / name), Endpoint(f"redis://{NAME}:{port}/0"), config, binds)
    return td


def _stop_ns(td):
    rc = td.stop()
    print(f"--- {td.dir} (exit {rc}) log tail ---\n" + "\n".join(td.log().splitlines()[-40:]))
    assert "AddressSanitizer" not in td.log()


@needs_ns
def test_host_name_resolved_again_on_every_reconnect(tmp_path):
    port = _port_free_on("127.0.0.1", "127.0.0.2")
    a = ExtraRedisServer(str(tmp_path / "redis-a"), host="127.0.0.1", port=port).start()
    b = ExtraRedisServer(str(tmp_path / "redis-b"), host="127.0.0.2", port=port).start()
    hosts = str(tmp_path / "hosts")
    _write(hosts, f"127.0.0.1 localhost\n127.0.0.1 {NAME}\n")
    td = _ns_tickerd(tmp_path, {"_redis_port": port, "redis": {"timeout_s": 1}},
                     {"/etc/hosts": hosts})
    try:
        td.start()

        async def main():
            ws = await WS.connect(td, "replay=0")
            await ws.start()
            x = _publish(a.client(), "from a")
            assert await _items(ws, 1) == [x]
            _write(hosts, f"127.0.0.1 localhost\n127.0.0.2 {NAME}\n")  # the name moves
            a.stop()
            # b is another Redis (another epoch): a gap, then b's entries
            hello, replayed, _ = await _gap_sequence(ws, x, timeout=10)
            assert hello["epoch"] == b.client().get(STREAM + ":epoch").decode()
            y = _publish(b.client(), "from b")
            assert await _items(ws, 1) == [y]
            await ws.close()

        run(main())
        assert f"connected to 127.0.0.1:{port}, epoch" in td.log()
        assert f"connected to 127.0.0.2:{port}, epoch" in td.log()
    finally:
        _stop_ns(td)
        a.stop()
        b.stop()


@needs_ns
def test_slow_name_resolution_does_not_block_the_loop(tmp_path):
    dns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # a DNS server that never answers
    try:
        dns.bind(("127.0.0.2", 53))
    except OSError as e:
        dns.close()
        pytest.skip(f"cannot listen on 127.0.0.2:53: {e}")
    port = _port_free_on("127.0.0.1")
    hosts, resolv = str(tmp_path / "hosts"), str(tmp_path / "resolv.conf")
    _write(hosts, "127.0.0.1 localhost\n")
    _write(resolv, "nameserver 127.0.0.2\noptions timeout:3 attempts:1\n")
    td = _ns_tickerd(tmp_path, {"_redis_port": port, "redis": {"timeout_s": 1, "grace_s": 0}},
                     {"/etc/hosts": hosts, "/etc/resolv.conf": resolv})
    srv = ExtraRedisServer(str(tmp_path / "redis"), port=port)
    try:
        td.start(wait=False)
        wait_until(lambda: http_get(td.port, "/healthz", timeout=1)[0] == 503, 5,
                   what="/healthz")
        # while the name hangs in the resolver, the loop answers at once
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            t0 = time.monotonic()
            status, _, body = http_get(td.port, "/healthz", timeout=2)
            assert time.monotonic() - t0 < 0.5 and status == 503
            time.sleep(0.1)
        assert f"resolving {NAME} took over 1000 ms" in td.log()
        # the name becomes known: found on a later attempt
        srv.start()
        _write(hosts, f"127.0.0.1 localhost\n127.0.0.1 {NAME}\n")
        td.wait_ready(timeout=15)
        assert td.health()[1]["redis"] == "up"
        # the given-up lookups end in the thread pool (timeout:3); a stop
        # before that leaves their requests to the exit (LeakSanitizer
        # would list libuv's loop memory)
        time.sleep(4)
    finally:
        _stop_ns(td)
        srv.stop()
        dns.close()


def test_two_workers_report_a_gap_once(make_tickerd, rds):
    td = make_tickerd({"server": {"workers": 2}})

    async def main():
        clients = [await WS.connect(td, "replay=0") for _ in range(6)]  # on both workers
        for c in clients:
            await c.start()
        a = _publish(rds, "before")
        for c in clients:
            assert await _items(c, 1) == [a]
        rds.delete(STREAM, STREAM + ":epoch")
        for c in clients:
            await _gap_sequence(c, a, timeout=10)
        b = _publish(rds, "after")
        for c in clients:
            assert await _items(c, 1) == [b]
            await c.close()

    run(main())
    time.sleep(0.5)
    assert td.metric("tickerd_gaps_total") == 1
    pids = set(re.findall(r"\[(\d+)\] warn: redis\S*: epoch changed", td.log()))
    assert len(pids) == 2, td.log()  # both workers found it
