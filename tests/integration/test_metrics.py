"""/metrics across workers (SPEC §3, §4): the exposition passes
`promtool check metrics`, counters are summed over the workers' slots and
entries counted once per daemon, and a worker killed with SIGKILL stops
counting in tickerd_connections and max_per_ip within a second while the
counters keep what it counted. Also: workers = 1, 2 and 256 start and serve
/healthz and /metrics."""

import asyncio
import math
import os
import re
import shutil
import signal
import subprocess
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import (STREAM, WS, http_get, raw_request, run, wait_until,
                      ws_handshake_request)

PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    not PROMTOOL, reason="no promtool (Debian package prometheus: scripts/install-deps.sh --test)")


# --------------------------------------------------------------------------
# helpers


def worker_pids(td):
    """The master's children now: its workers."""
    kids = set()
    try:
        for task in os.listdir(f"/proc/{td.proc.pid}/task"):
            with open(f"/proc/{td.proc.pid}/task/{task}/children") as f:
                kids.update(int(x) for x in f.read().split())
    except FileNotFoundError:
        pass
    return kids


def wait_workers(td, n, loaded, timeout=30):
    """Waits until the master has n workers and `loaded` start-up loads
    were logged (each worker logs one when it can serve), then for 200."""
    wait_until(lambda: len(worker_pids(td)) == n and
               len(re.findall(r"redis(?:\[w\d+\])?: loaded", td.log())) >= loaded,
               timeout, interval=0.05, what=f"{n} workers serving")
    td.wait_ready()


def scrape(td):
    status, hdrs, body = http_get(td.port, "/metrics")
    assert status == 200, status
    assert hdrs["content-type"].startswith("text/plain; version=0.0.4")
    return body.decode()


def samples_of(text):
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(samples, name, **labels):
    return samples[(name, tuple(sorted(labels.items())))]


def promtool_check(text):
    p = subprocess.run([PROMTOOL, "check", "metrics"], input=text.encode(),
                       capture_output=True, timeout=30)
    assert p.returncode == 0 and not p.stdout.strip() and not p.stderr.strip(), (
        f"promtool: rc {p.returncode}\n{p.stdout.decode()}{p.stderr.decode()}")


def check_format(text):
    """What promtool does not check: HELP and TYPE once per family, before
    its samples; histogram buckets cumulative, ending in +Inf == _count."""
    families, current = {}, None
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name = line.split()[2]
            assert name not in families, f"family {name} twice"
            families[name] = None
            current = name
        elif line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            assert name == current, f"TYPE {name} without its HELP first"
            families[name] = kind
        else:
            assert line.split("{")[0].split()[0].startswith(current), line
    assert all(families.values()), families
    for fam in text_string_to_metric_families(text):
        if fam.type != "histogram":
            continue
        buckets = [(s.labels["le"], s.value) for s in fam.samples if s.name.endswith("_bucket")]
        count = [s.value for s in fam.samples if s.name.endswith("_count")][0]
        bounds = [float(le) for le, _ in buckets]
        assert bounds == sorted(bounds) and math.isinf(bounds[-1]), buckets
        values = [v for _, v in buckets]
        assert values == sorted(values), f"{fam.name} buckets not cumulative: {buckets}"
        assert values[-1] == count, (buckets, count)
    return families


def client_ports_by_worker(td, workers):
    """{worker pid: set of client (remote) ports} of the TCP connections to
    td.port that each worker holds, from /proc/<pid>/fd and /proc/net/tcp."""
    inode_port = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    cols = line.split()
                    local_port = int(cols[1].rsplit(":", 1)[1], 16)
                    remote_port = int(cols[2].rsplit(":", 1)[1], 16)
                    if local_port == td.port and cols[3] == "01":  # ESTABLISHED
                        inode_port[cols[9]] = remote_port
        except FileNotFoundError:
            pass
    out = {}
    for pid in workers:
        ports = set()
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if link.startswith("socket:["):
                port = inode_port.get(link[8:-1])
                if port is not None:
                    ports.add(port)
        out[pid] = ports
    return out


def ws_status(td, query="replay=0"):
    """The status a WebSocket handshake gets (101 when admitted)."""
    status, _, _ = raw_request(td.port, ws_handshake_request(td.port, "/v1/ws?" + query))
    return status


async def drain(ws, timeout=0.3):
    """Reads frames until none comes for timeout; returns how many."""
    n = 0
    try:
        while True:
            await asyncio.wait_for(ws.conn.recv(), timeout)
            n += 1
    except asyncio.TimeoutError:
        return n


# --------------------------------------------------------------------------
# tests


@needs_promtool
def test_metrics_two_workers_promtool_and_sums(make_tickerd, rds):
    """2 workers, WS clients on both, entries and a rejected entry: the
    exposition is valid, entries are counted once per daemon (not once per
    worker), and messages_sent_total is every frame the clients got."""
    td = make_tickerd({"server": {"workers": 2}}, start=False).start(wait=False)
    wait_workers(td, 2, 2)

    async def main():
        clients = []
        # SO_REUSEPORT spreads by address hash: connect until both have some.
        for _ in range(40):
            ws = await WS.connect(td, "replay=0")
            await ws.start()
            clients.append(ws)
            if len(clients) >= 4:
                byw = client_ports_by_worker(td, worker_pids(td))
                if all(byw.values()):
                    break
        byw = client_ports_by_worker(td, worker_pids(td))
        assert all(byw.values()), f"clients all on one worker: {byw}"
        got = 2 * len(clients)  # hello and replay marker each
        for i in range(3):
            rds.xadd(STREAM, {"text": f"item {i}", "lang": "en"})
        rds.xadd(STREAM, {"lang": "en"})  # missing_text
        for ws in clients:
            got += await drain(ws)
        n = len(clients)
        assert got == n * (2 + 3)

        def settled():
            s = samples_of(scrape(td))
            return s if (value(s, "tickerd_items_ingested_total") == 3 and
                         value(s, "tickerd_items_rejected_total", reason="missing_text") == 1 and
                         value(s, "tickerd_messages_sent_total") == got) else None

        s = wait_until(settled, 5, what="counters summed over the workers")
        text = scrape(td)
        promtool_check(text)
        families = check_format(text)
        for name in ("tickerd_build_info", "tickerd_gaps_total", "tickerd_connections",
                     "tickerd_fanout_seconds"):
            assert name in families, name
        assert value(s, "tickerd_build_info", version="0.1.0") == 1
        assert value(s, "tickerd_connections", transport="websocket") == n
        assert value(s, "tickerd_connections_total") == n
        assert value(s, "tickerd_items_ingested_total") == 3  # not 6: once per daemon
        assert value(s, "tickerd_bytes_sent_total") > 0
        assert value(s, "tickerd_gaps_total") == 0
        assert value(s, "tickerd_redis_up") == 1
        assert value(s, "tickerd_fanout_seconds_count") >= 2  # each worker's items
        # the same figures whichever worker answers the scrape
        for _ in range(6):
            again = samples_of(scrape(td))
            assert value(again, "tickerd_connections", transport="websocket") == n
            assert value(again, "tickerd_messages_sent_total") == got
        for ws in clients:
            await ws.conn.close()

    run(main())
    wait_until(lambda: value(samples_of(scrape(td)), "tickerd_connections",
                             transport="websocket") == 0, 5, what="connections back to 0")


def test_sigkill_worker_releases_its_clients_keeps_counters(make_tickerd, rds):
    """SPEC §4: within a second of a worker's death its clients leave
    tickerd_connections and max_per_ip; counters do not go backwards; the
    worker is restarted."""
    per_ip = 6
    td = make_tickerd({"server": {"workers": 2}, "limits": {"max_per_ip": per_ip}},
                      start=False).start(wait=False)
    wait_workers(td, 2, 2)
    rds.xadd(STREAM, {"text": "before", "lang": "en"})

    async def main():
        clients = []
        for _ in range(per_ip):
            ws = await WS.connect(td, "replay=5")
            await ws.start()
            clients.append(ws)
        assert ws_status(td) == 429  # the limit counts all workers' clients
        workers = worker_pids(td)
        byw = client_ports_by_worker(td, workers)
        victim = max(byw, key=lambda p: len(byw[p]))
        k = len(byw[victim])
        assert sum(len(p) for p in byw.values()) == per_ip and k >= per_ip // 2, byw
        before = samples_of(scrape(td))
        assert value(before, "tickerd_connections", transport="websocket") == per_ip

        os.kill(victim, signal.SIGKILL)
        t0 = time.monotonic()
        after = wait_until(
            lambda: (lambda s: s if value(s, "tickerd_connections", transport="websocket") ==
                     per_ip - k else None)(samples_of(scrape(td))),
            2, interval=0.02, what="the dead worker's clients out of tickerd_connections")
        released_s = time.monotonic() - t0
        for name in ("tickerd_connections_total", "tickerd_messages_sent_total",
                     "tickerd_bytes_sent_total", "tickerd_replay_events_sent_total",
                     "tickerd_refused_total"):
            labels = {"reason": "too_many_per_ip"} if name == "tickerd_refused_total" else {}
            assert value(after, name, **labels) >= value(before, name, **labels), name
        # max_per_ip: the dead worker's clients no longer count either
        wait_until(lambda: ws_status(td) == 101, 1.5, what="admission after the kill")
        # restarted, and the survivors still get items
        wait_workers(td, 2, 3)
        assert victim not in worker_pids(td)
        survivors = [ws for ws in clients if ws.conn.local_address[1] not in byw[victim]]
        rds.xadd(STREAM, {"text": "after", "lang": "en"})
        for ws in survivors:
            f = await ws.recv()
            assert f["type"] == "item" and f["text"] == "after", f
        final = samples_of(scrape(td))
        assert value(final, "tickerd_worker_restarts_total") == 1
        assert value(final, "tickerd_messages_sent_total") > value(
            before, "tickerd_messages_sent_total")
        for ws in clients:
            await ws.conn.close()
        return released_s

    released_s = run(main())
    assert released_s < 1.0, f"released after {released_s:.2f} s"


def test_restarted_workers_count_entries_once(make_tickerd, rds):
    """Each worker killed in turn (so worker 0 is among them): the restart
    re-reads the stream at start-up, yet each entry, accepted or rejected,
    is counted once; one written while a worker is down too."""
    td = make_tickerd({"server": {"workers": 2}}, start=False).start(wait=False)
    wait_workers(td, 2, 2)
    for i in range(3):
        rds.xadd(STREAM, {"text": f"item {i}"})
    rds.xadd(STREAM, {"lang": "en"})  # missing_text

    def counts():
        s = samples_of(scrape(td))
        return (value(s, "tickerd_items_ingested_total"),
                value(s, "tickerd_items_rejected_total", reason="missing_text"))

    wait_until(lambda: counts() == (3, 1), 5, what="3 ingested, 1 rejected")
    loaded = 2
    for victim in sorted(worker_pids(td)):
        os.kill(victim, signal.SIGKILL)
        rds.xadd(STREAM, {"text": f"while {victim} is down"})
        loaded += 1
        wait_workers(td, 2, loaded)
    wait_until(lambda: counts() == (5, 1), 5, what="5 ingested, 1 rejected")
    time.sleep(0.3)
    assert counts() == (5, 1)
    assert value(samples_of(scrape(td)), "tickerd_worker_restarts_total") == 2


@pytest.mark.parametrize("workers", [1, 2, 256])
def test_workers_start_and_serve(make_tickerd, workers):
    """Every value of workers from 1 to 256 works (SPEC §4)."""
    td = make_tickerd({"server": {"workers": workers}}, start=False).start(wait=False)
    if workers > 1:
        wait_workers(td, workers, workers, timeout=60)
    else:
        td.wait_ready()
        assert not worker_pids(td)  # one process, no master
    for _ in range(5):
        status, _, body = http_get(td.port, "/healthz")
        assert status == 200, body
    text = scrape(td)
    s = samples_of(text)
    assert value(s, "tickerd_redis_up") == 1
    assert value(s, "tickerd_connections", transport="websocket") == 0
    if PROMTOOL:
        promtool_check(text)
