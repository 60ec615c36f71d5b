"""Graceful drain (SPEC §4, [server] drain_s): on SIGTERM the clients are
closed with 1001 spread evenly over drain_s, new clients are refused with
503 and /healthz answers 503 "draining" meanwhile, a second SIGTERM ends
the drain at once, and the daemon exits 0."""
import asyncio
import collections
import resource
import signal
import time

import websockets

from conftest import SSE, http_get, run, wait_until

CLIENTS = 1000
DRAIN_S = 5


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def connect_all(td, n):
    conns = []
    for i in range(0, n, 100):
        conns += await asyncio.gather(*[
            websockets.connect(td.ws_url("replay=0"), open_timeout=20, ping_interval=None,
                               close_timeout=30) for _ in range(min(100, n - i))])
    return conns


async def closed_at(conn):
    """(monotonic time, close code) when the server closes conn."""
    try:
        async for _ in conn:
            pass
    except websockets.ConnectionClosed:
        pass
    return time.monotonic(), conn.close_code


def test_drain_spreads_the_closes_evenly(make_tickerd):
    raise_nofile()
    td = make_tickerd({"server": {"drain_s": DRAIN_S}})

    async def main():
        conns = await connect_all(td, CLIENTS)
        wait_until(lambda: td.health()[1]["connections"] == CLIENTS, 20, what="all connected")
        waits = [asyncio.ensure_future(closed_at(c)) for c in conns]
        start = time.monotonic()
        td.proc.send_signal(signal.SIGTERM)
        await asyncio.sleep(0.5)
        # meanwhile: /healthz says draining, a new client is refused with 503
        status, body = await asyncio.to_thread(td.health)
        assert status == 503 and body["status"] == "draining", (status, body)
        status, _, _ = await asyncio.to_thread(http_get, td.port, "/v1/events")
        assert status == 503
        results = await asyncio.wait_for(asyncio.gather(*waits), DRAIN_S + 10)
        return start, results

    start, results = run(main(), timeout=90)
    codes = collections.Counter(code for _, code in results)
    assert codes == {1001: CLIENTS}, codes
    per_second = collections.Counter(int(t - start) for t, _ in results)
    assert max(per_second) <= DRAIN_S, per_second  # none closed after the window
    worst = max(per_second.values())
    assert worst <= 0.35 * CLIENTS, per_second
    # the daemon exits 0 within drain_s + 2 s of the SIGTERM (7 s, the issue's)
    td.proc.wait(timeout=max(0.5, start + DRAIN_S + 2 - time.monotonic()) + 5)
    exited = time.monotonic() - start
    print(f"drain of {CLIENTS}: closes per second {dict(sorted(per_second.items()))}, "
          f"worst {worst / CLIENTS:.0%}, exit 0 after {exited:.2f} s")
    assert td.proc.returncode == 0
    assert exited <= DRAIN_S + 2


def test_second_sigterm_ends_the_drain(make_tickerd):
    td = make_tickerd({"server": {"drain_s": 60}})

    async def main():
        conns = await connect_all(td, 50)
        wait_until(lambda: td.health()[1]["connections"] == 50, 10, what="all connected")
        waits = [asyncio.ensure_future(closed_at(c)) for c in conns]
        td.proc.send_signal(signal.SIGTERM)
        await asyncio.sleep(1.0)
        start = time.monotonic()
        td.proc.send_signal(signal.SIGTERM)
        results = await asyncio.wait_for(asyncio.gather(*waits), 10)
        return start, results

    start, results = run(main(), timeout=60)
    assert all(code == 1001 for _, code in results)
    assert max(t for t, _ in results) - start < 3
    td.proc.wait(timeout=10)
    assert td.proc.returncode == 0


def test_drain_closes_sse_too_and_zero_means_at_once(make_tickerd):
    td = make_tickerd({"server": {"drain_s": 0}})
    sse = SSE(td.port, "/v1/events?replay=0")
    assert sse.status == 200
    start = time.monotonic()
    td.proc.send_signal(signal.SIGTERM)
    sse.read_until_eof(timeout=5)
    assert time.monotonic() - start < 3
    td.proc.wait(timeout=10)
    assert td.proc.returncode == 0


def test_drain_with_no_clients_exits_at_once(make_tickerd):
    td = make_tickerd({"server": {"drain_s": 30}})
    start = time.monotonic()
    td.proc.send_signal(signal.SIGTERM)
    td.proc.wait(timeout=10)
    assert td.proc.returncode == 0
    assert time.monotonic() - start < 5


def test_drain_with_workers_is_not_cut_short(make_tickerd):
    """With workers the master waits drain_s (plus its margin) before it
    kills any, and a second SIGTERM to the master ends the drains."""
    td = make_tickerd({"server": {"workers": 2, "drain_s": 12}})

    async def main():
        conns = await connect_all(td, 40)
        wait_until(lambda: td.health()[1]["connections"] == 40, 10, what="all connected")
        waits = [asyncio.ensure_future(closed_at(c)) for c in conns]
        start = time.monotonic()
        td.proc.send_signal(signal.SIGTERM)
        results = await asyncio.wait_for(asyncio.gather(*waits), 30)
        return start, results

    start, results = run(main(), timeout=60)
    codes = collections.Counter(code for _, code in results)
    assert codes == {1001: 40}, codes  # none killed: every close is a 1001
    assert max(t for t, _ in results) - start > 9  # the drain ran its course
    td.proc.wait(timeout=10)
    assert td.proc.returncode == 0
    assert "killing" not in td.log()

    td2 = make_tickerd({"server": {"workers": 2, "drain_s": 60}}, name="second")

    async def again():
        conns = await connect_all(td2, 20)
        wait_until(lambda: td2.health()[1]["connections"] == 20, 10, what="all connected")
        waits = [asyncio.ensure_future(closed_at(c)) for c in conns]
        td2.proc.send_signal(signal.SIGTERM)
        await asyncio.sleep(1)
        start = time.monotonic()
        td2.proc.send_signal(signal.SIGTERM)
        results = await asyncio.wait_for(asyncio.gather(*waits), 15)
        return start, results

    start, results = run(again(), timeout=60)
    assert all(code == 1001 for _, code in results)
    assert max(t for t, _ in results) - start < 4
    td2.proc.wait(timeout=15)
    assert td2.proc.returncode == 0
