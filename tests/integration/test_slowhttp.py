"""Debian's slowhttptest against tickerd (issue 12): the slowloris and the
slow-read attacks, each bounded in connections and time, on 127.0.0.1. The
attack must not take the service: /healthz answers, a WebSocket subscriber
gets every item XADDed meanwhile, tickerd's memory stays bounded, and a
head that never completes is closed by tickerd (the door's 408)."""
import asyncio
import csv
import os
import shutil
import subprocess
import time

import pytest

from conftest import WS, run, wait_until

pytestmark = pytest.mark.skipif(not shutil.which("slowhttptest"),
                                reason="slowhttptest not installed (scripts/install-deps.sh --test)")


# Under AddressSanitizer memory costs several times more (shadow, quarantine).
RSS_SCALE = 4 if "asan" in os.environ.get("TICKERD_BUILD", "") else 1


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def attack(td, tmp_path, args, seconds):
    """Starts slowhttptest in the background; returns (process, csv path)."""
    prefix = str(tmp_path / "slow")
    proc = subprocess.Popen(["slowhttptest", *args, "-l", str(seconds), "-g", "-o", prefix,
                             "-p", "3"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return proc, prefix + ".csv"


def report(path):
    """slowhttptest's CSV: seconds, closed, pending, connected (its own
    "service available" column is not a probe result: the tests probe)."""
    with open(path) as f:
        rows = list(csv.reader(f))
    head, rows = rows[0], rows[1:]
    return [dict(zip([h.strip().lower() for h in head], map(int, r))) for r in rows if r]


def live_subscriber(td, xadd, seconds):
    """A WebSocket client during the attack: every item published, once."""
    async def main():
        ws = await WS.connect(td, "replay=0")
        await ws.start()
        sent, got = [], []
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            sent.append(xadd(text=f"during the attack {len(sent)}"))
            frame = await ws.recv(timeout=5)
            assert frame["type"] == "item", frame
            got.append(frame["id"])
            await asyncio.sleep(0.5)
        await ws.close()
        return sent, got
    return run(main(), timeout=seconds + 30)


def test_slowloris(make_tickerd, xadd, tmp_path):
    td = make_tickerd()
    rss0 = rss_kib(td.proc.pid)
    proc, path = attack(td, tmp_path, ["-H", "-c", "1000", "-r", "500", "-i", "3", "-u",
                                       f"http://127.0.0.1:{td.port}/healthz"], 25)
    try:
        time.sleep(3)
        sent, got = live_subscriber(td, xadd, 12)
        assert got == sent
        assert td.health()[0] == 200
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    rows = report(path)
    assert max(r["connected"] for r in rows) >= 500, rows[-3:]  # the attack took hold
    # tickerd closed the slow heads itself (408 10 s after each accept), not
    # the tool: it stopped early, with "no open connections left", well
    # before its 25 s
    assert rows[-1]["seconds"] < 20, rows[-3:]
    assert rss_kib(td.proc.pid) - rss0 < 200 * 1024 * RSS_SCALE
    wait_until(lambda: td.health()[1]["connections"] == 0, 10, what="no attack connection left")
    assert "HTTP 408" in td.log()


def test_slow_read(make_tickerd, xadd, tmp_path):
    td = make_tickerd()
    for i in range(200):
        xadd(text=f"item {i} " + "x" * 800)
    rss0 = rss_kib(td.proc.pid)
    proc, path = attack(td, tmp_path, ["-X", "-c", "500", "-r", "250", "-k", "3", "-n", "1",
                                       "-z", "32", "-w", "512", "-y", "1024", "-u",
                                       f"http://127.0.0.1:{td.port}/v1/items?limit=200"], 20)
    try:
        time.sleep(3)
        sent, got = live_subscriber(td, xadd, 10)
        assert got == sent
        assert td.health()[0] == 200
        peak = rss_kib(td.proc.pid)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    rows = report(path)
    assert max(r["connected"] for r in rows) >= 250, rows[-3:]
    # each slow reader holds at most its response, once: bounded memory
    assert peak - rss0 < 200 * 1024 * RSS_SCALE, (rss0, peak)
