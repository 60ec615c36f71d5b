#!/usr/bin/env python3
"""tests/bench/poll_rss.py - `make bench` scenario "poll": the memory a
waiting long-poll costs tickerd (GET /v1/poll, SPEC §3).

Against a running tickerd (--port, --pid: its master; the RSS is that of
the whole process tree) whose stream has at least one entry: N clients each
send GET /v1/poll?since=<the newest ID>&wait_s=60 and wait. Once tickerd
counts N poll connections (/metrics tickerd_connections{transport="poll"}),
the tree's RSS is read; the clients hang up and the count must go back to
0. The figure is (RSS with N waiting - RSS before) per 10,000 polls.

Standalone:
    poll_rss.py --port P --pid PID [-n 10000] [--src 127.0.0.1] [--out F.json]
Loopback only; bounded in count (n) and time (--timeout)."""

import argparse
import json
import resource
import select
import socket
import sys
import time
import urllib.request

from sample import children, rss_cpu, tree  # the /proc walk, shared


def tree_rss_kb(pid):
    """VmRSS of pid and all its descendants, in kB."""
    return sum(rss_cpu(p)[0] for p in tree([pid], children()))


def get(port, path):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
        return r.read().decode()


def polls_waiting(port):
    for line in get(port, "/metrics").splitlines():
        if line.startswith('tickerd_connections{transport="poll"}'):
            return int(float(line.split()[-1]))
    return 0


def wait_for(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.1)
    raise SystemExit(f"poll_rss: timed out waiting for {what}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("-n", type=int, default=10000)
    ap.add_argument("--src", default="127.0.0.1")
    ap.add_argument("--timeout", type=float, default=120)
    ap.add_argument("--out")
    a = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, a.n + 100)), hard))
    since = json.loads(get(a.port, "/healthz"))["last_id"]
    request = (f"GET /v1/poll?since={since}&wait_s=60 HTTP/1.1\r\n"
               f"Host: 127.0.0.1:{a.port}\r\n\r\n").encode()
    for _ in range(50):  # warm up: the heap's first polls
        get(a.port, f"/v1/poll?since={since}&wait_s=0")
    time.sleep(1)
    before = tree_rss_kb(a.pid)
    t0 = time.monotonic()
    socks = []
    try:
        for i in range(a.n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((a.src, 0))
            s.connect(("127.0.0.1", a.port))
            s.sendall(request)
            socks.append(s)
            if i % 1000 == 999:  # the backlog drains between batches
                wait_for(lambda: polls_waiting(a.port) >= i + 1 - 200, a.timeout, "polls")
        wait_for(lambda: polls_waiting(a.port) == a.n, a.timeout, f"{a.n} waiting polls")
        took = time.monotonic() - t0
        time.sleep(1)
        held = tree_rss_kb(a.pid)
        answered_early = readable(socks)
    finally:
        for s in socks:
            s.close()
    wait_for(lambda: polls_waiting(a.port) == 0, a.timeout, "the polls released")
    after = tree_rss_kb(a.pid)
    per_10k = (held - before) * 10000 / a.n
    result = {"scenario": "poll", "n": a.n, "rss_before_kb": before, "rss_held_kb": held,
              "rss_after_kb": after, "rss_per_10k_polls_kb": round(per_10k),
              "bytes_per_poll": round((held - before) * 1024 / a.n), "connect_s": round(took, 2),
              "answered_early": answered_early}
    print(f"poll: {a.n} waiting long-polls: RSS {before} -> {held} kB "
          f"({per_10k / 1024:.1f} MiB per 10,000, {result['bytes_per_poll']} B each), "
          f"{after} kB once released; {answered_early} answered before their wait",
          file=sys.stderr)
    if a.out:
        with open(a.out, "w") as f:
            json.dump(result, f, indent=1)
    return 0 if answered_early == 0 else 1


def readable(socks):
    """How many of socks have something to read (an answer, a close)."""
    p = select.poll()
    for s in socks:
        p.register(s, select.POLLIN)
    return len(p.poll(0))


if __name__ == "__main__":
    sys.exit(main())
