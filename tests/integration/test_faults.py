"""Behaviour under faults (SPEC §4, §2 close codes): Redis restarted under
connected clients, Redis absent at start-up, a slow consumer among fast
ones, and SIGTERM."""

import asyncio
import os
import signal
import threading
import time

import pytest

from conftest import (SSE, STREAM, WS, RawWS, RedisServer, item_frame, run, stop_process,
                      wait_until)


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
    td = make_tickerd({"limits": {"max_queue_bytes": 131072}})
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
