#!/usr/bin/env python3
"""tests/bench/sample.py - samples the memory and CPU of groups of process
trees, and the kernel's socket memory, for the nodes scenario (issue 15's
sizing model; tests/bench/nodes.sh).

    sample.py --group nodes=PID,PID --group nginx=PID [--interval 0.5]
              [--max-s 300] --out FILE

Every interval it appends one JSON line to FILE: the time, per group the
RSS (kB) and CPU (s, user+sys from schedstat) of each PID and all its
descendants, /proc/net/sockstat's TCP `inuse` and `mem` (pages), /proc/meminfo's Slab
(kB) and, from /proc/slabinfo, the caches a TCP socket has objects in. It stops on SIGTERM or after --max-s seconds.

    sample.py --summary FILE

prints one JSON object: per figure its first value and its value when the
most sockets were open, so that the difference is what holding the
connections cost, and the slab KiB per TCP socket."""

import argparse
import json
import os
import signal
import sys
import time


# the slab caches an established, epoll-watched TCP socket has objects in
SOCKET_SLABS = ("TCP", "sock_inode_cache", "filp", "dentry", "eventpoll_epi")


def children():
    kids = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                kids.setdefault(ppid, []).append(int(d))
            except (OSError, ValueError, IndexError):
                pass
    return kids


def tree(pids, kids):
    out, todo = [], list(pids)
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def rss_cpu(pid):
    rss, ns = 0, 0
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
        for t in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{t}/schedstat") as f:
                ns += int(f.read().split()[0])
    except (OSError, ValueError):
        pass
    return rss, ns / 1e9


def kernel():
    k = {}
    with open("/proc/net/sockstat") as f:
        for line in f:
            if line.startswith("TCP:"):
                w = line.split()[1:]
                d = dict(zip(w[::2], map(int, w[1::2])))
                k["tcp_inuse"], k["tcp_mem_pages"] = d.get("inuse", 0), d.get("mem", 0)
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("Slab:"):
                k["slab_kb"] = int(line.split()[1])
    try:  # what an open TCP socket holds in the slab caches (root only)
        with open("/proc/slabinfo") as f:
            for line in f:
                w = line.split()
                if w and w[0] in SOCKET_SLABS:
                    k[f"slab_{w[0]}_objs"] = int(w[1])
                    k[f"slab_{w[0]}_kb"] = int(w[1]) * int(w[3]) / 1024
    except OSError:
        pass
    return k


def sample(groups):
    kids = children()
    s = {"t": time.time()}
    for name, pids in groups.items():
        rss = cpu = 0
        for p in tree(pids, kids):
            r, c = rss_cpu(p)
            rss, cpu = rss + r, cpu + c
        s[f"{name}_rss_kb"], s[f"{name}_cpu_s"] = rss, round(cpu, 6)
    s.update(kernel())
    return s


def summary(path):
    """Every figure at the first sample and at the sample with the most TCP
    sockets (the clients held), and the slab bytes per socket between them."""
    rows = [json.loads(line) for line in open(path) if line.strip()]
    out = {"samples": len(rows)}
    if not rows:
        print(json.dumps(out))
        return
    peak = max(rows, key=lambda r: r.get("slab_TCP_objs", r["tcp_inuse"]))
    for k in rows[0]:
        if k != "t":
            out[f"{k}_first"], out[f"{k}_peak"] = rows[0][k], peak.get(k)
    socks = peak.get("slab_TCP_objs", 0) - rows[0].get("slab_TCP_objs", 0)
    if socks > 0:  # other users' sockets have the same make-up: the ratio holds
        kb = sum(peak[f"slab_{c}_kb"] - rows[0][f"slab_{c}_kb"] for c in SOCKET_SLABS
                 if f"slab_{c}_kb" in peak)
        out["slab_tcp_sockets_added"] = socks
        out["slab_kb_per_socket"] = kb / socks
    print(json.dumps(out))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--group", action="append", default=[])
    ap.add_argument("--interval", type=float, default=0.5)
    ap.add_argument("--max-s", type=float, default=300)
    ap.add_argument("--out")
    ap.add_argument("--summary")
    a = ap.parse_args()
    if a.summary:
        summary(a.summary)
        return 0
    groups = {}
    for g in a.group:
        name, pids = g.split("=", 1)
        groups[name] = [int(p) for p in pids.split(",") if p]
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    end = time.time() + a.max_s
    with open(a.out, "a") as f:
        while time.time() < end:
            f.write(json.dumps(sample(groups)) + "\n")
            f.flush()
            time.sleep(a.interval)
    return 0


if __name__ == "__main__":
    sys.exit(main())
