#!/usr/bin/env python3
"""tests/bench/sizing.py - issue 15's sizing model from `make bench`'s raw
files (docs/deployment.md, "Sizing beyond one box").

    sizing.py --raw build/bench/raw [--out FILE.json]

Reads
  raw/sizing/redis-N<n>.json      redis_readers.c: Redis's CPU per XADD with
                                  n blocked XREAD readers
  raw/sizing/nodes-*.json         nodes.sh: 4 nodes behind nginx
  raw/tickerd-idle.json,          the one-box idle (or flash) and steady scenarios of the
  raw/tickerd-steady20.json       same run (the model's per-connection and
                                  per-delivery figures), when present
and prints the measured inputs, the model for 1,000,000 clients on N = 4,
10, 20 nodes, and the model's prediction for the 4-node run beside what
that run measured. The model:
  memory/node = clients/node x (RSS per connection + kernel slab per socket)
  CPU/node    = deliveries/s per node / deliveries per CPU-s
  Redis       = XADD/s x (a + b x nodes x workers)   (b: per woken reader)
  proxy       = deliveries/s / nginx deliveries per CPU-s, and per client
                its RSS and two kernel sockets."""
import argparse
import glob
import json
import os
import sys

CLIENTS = 1_000_000
RATE = 20.0          # items/s, the steady scenario's
MATCH = 0.375        # share of clients an item reaches with loadgen's filter mix
CORES = 16           # per node (workers = 16)
NODE_COUNTS = (4, 10, 20)


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def fit(rows):
    """Redis's CPU per XADD as a + b x readers: b is the mean cost per reply
    of the runs with 50 or more readers (where it no longer changes with N),
    a what the smallest run leaves over (the XADD itself)."""
    if not rows:
        return 0.0, 0.0
    many = [d["paced_cpu_per_reply_us"] for d in rows if d["readers"] >= 50] or \
        [rows[-1]["paced_cpu_per_reply_us"]]
    b = sum(many) / len(many)
    first = rows[0]
    return max(first["paced_cpu_per_xadd_us"] - b * first["readers"], 0.0), b


def redis_inputs(sr):
    rows = []
    for f in sorted(glob.glob(os.path.join(sr, "redis-N*.json"))):
        d = load(f)
        if d:
            rows.append(d)
    rows.sort(key=lambda d: d["readers"])
    a, b = fit(rows)
    return rows, a, b


def kernel_per_socket(k):
    """Kernel KiB per TCP socket held: the growth of all slab (/proc/meminfo
    Slab, the upper bound: it counts whatever else the kernel allocated
    meanwhile) per socket added, and of the five caches a socket has
    objects in (sample.py's slab_kb_per_socket, the lower bound)."""
    socks = k.get("slab_tcp_sockets_added", 0)
    if socks <= 0:
        return None, None, socks
    return (k["slab_kb_peak"] - k["slab_kb_first"]) / socks, k["slab_kb_per_socket"], socks


def node_inputs(raw, sr):
    m = {}
    idle, kern = load(os.path.join(sr, "nodes-idle.json")), load(os.path.join(sr, "nodes-idle-kernel.json"))
    st = {w: load(os.path.join(sr, f"nodes-steady-{w}.json")) for w in ("tickerd", "nginx", "redis")}
    # the flash run holds the idle scenario's clients and has its figures
    one_idle = load(os.path.join(raw, "tickerd-idle.json")) or load(os.path.join(raw, "tickerd-flash.json"))
    one_steady = load(os.path.join(raw, "tickerd-steady20.json"))
    if idle:
        m["nodes_held"], m["nodes_rss_per_conn_kb"] = idle["held"], idle["rss_per_conn_kb"]
    if kern and idle and idle["held"]:
        m["kernel_kb_per_socket"], m["kernel_kb_per_socket_5_caches"], m["sockets_held"] = \
            kernel_per_socket(kern)
        m["nginx_rss_per_client_kb"] = (kern["nginx_rss_kb_peak"] - kern["nginx_rss_kb_first"]) / idle["held"]
    for w, d in st.items():
        if d:
            m[f"{w}_deliveries_per_cpu_s"] = d["deliveries_per_cpu_s"]
            m[f"{w}_cpu_s"], m[f"{w}_delivered"] = d["cpu_s"], d["delivered"]
            m[f"{w}_items"], m[f"{w}_publish_s"] = d["items"], d["publish_s"]
    if one_idle:
        m["one_rss_per_conn_kb"] = one_idle["rss_per_conn_kb"]
    if one_steady:
        m["one_deliveries_per_cpu_s"] = one_steady["deliveries_per_cpu_s"]
    return m


def model(m, a, b, base_rate):
    per_conn = m.get("one_rss_per_conn_kb", m.get("nodes_rss_per_conn_kb", 0))
    kern = m.get("kernel_kb_per_socket") or 0
    dpcs = m.get("one_deliveries_per_cpu_s", m.get("tickerd_deliveries_per_cpu_s", 0))
    ngx = m.get("nginx_deliveries_per_cpu_s", 0)
    deliveries = CLIENTS * MATCH * RATE
    rows = []
    for n in NODE_COUNTS:
        per_node = CLIENTS / n
        readers = n * CORES
        redis_us = a + b * readers
        rows.append({
            "nodes": n, "cores_per_node": CORES, "clients_per_node": per_node,
            "mem_per_node_gib": per_node * (per_conn + kern) / 1024 / 1024,
            "cores_needed_per_node": deliveries / n / dpcs if dpcs else None,
            "readers": readers, "redis_us_per_xadd": redis_us,
            "redis_cores": RATE * redis_us / 1e6 + base_rate,
            "flash_s": per_node / (dpcs * CORES) if dpcs else None,
            "proxy_cores": deliveries / ngx if ngx else None,
            "proxy_mem_gib": CLIENTS * (m.get("nginx_rss_per_client_kb", 0) + 2 * kern) / 1024 / 1024,
        })
    return {"clients": CLIENTS, "rate": RATE, "match": MATCH, "deliveries_per_s": deliveries,
            "rss_per_conn_kb": per_conn, "kernel_kb_per_socket": kern,
            "deliveries_per_cpu_s": dpcs, "nginx_deliveries_per_cpu_s": ngx, "rows": rows}


def check(m, a, b, base_rate):
    """The model's figures for the 4-node run beside what it measured."""
    out = []
    if "one_rss_per_conn_kb" in m and "nodes_held" in m:
        out.append(("nodes' RSS growth, KiB", m["nodes_held"] * m["one_rss_per_conn_kb"],
                    m["nodes_held"] * m["nodes_rss_per_conn_kb"]))
    if "one_deliveries_per_cpu_s" in m and "tickerd_cpu_s" in m:
        out.append(("nodes' CPU, s", m["tickerd_delivered"] / m["one_deliveries_per_cpu_s"],
                    m["tickerd_cpu_s"]))
    if "redis_cpu_s" in m:
        pred = m["redis_items"] * (a + b * 4) / 1e6 + base_rate * m["redis_publish_s"]
        out.append(("Redis CPU, s", pred, m["redis_cpu_s"]))
    return [{"figure": f, "model": p, "measured": v, "measured_over_model": v / p if p else None}
            for f, p, v in out]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--raw", required=True)
    ap.add_argument("--out")
    a_ = ap.parse_args()
    sr = os.path.join(a_.raw, "sizing")
    rows, a, b = redis_inputs(sr)
    base_rate = sum(d["base_redis_cpu_per_s"] for d in rows) / len(rows) if rows else 0
    print("\nRedis: N blocked readers, XREAD COUNT 100 BLOCK 2000 (net of Redis's idle cron)")
    print(f"{'readers':>8} {'us/XADD':>10} {'us/reply':>9} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}"
          f" {'burst us/XADD':>14} {'burst us/reply':>15} {'burst max ms':>13}")
    for d in rows:
        print(f"{d['readers']:>8} {d['paced_cpu_per_xadd_us']:>10.1f} {d['paced_cpu_per_reply_us']:>9.2f}"
              f" {d['paced_lat_p50_ms']:>8.2f} {d['paced_lat_p99_ms']:>8.2f} {d['paced_lat_max_ms']:>8.2f}"
              f" {d['burst_cpu_per_xadd_us']:>14.1f} {d['burst_cpu_per_reply_us']:>15.2f}"
              f" {d['burst_lat_max_ms']:>13.2f}")
    print(f"fit: per XADD = {a:.1f} us + {b:.2f} us x readers; idle cron {base_rate * 1e3:.2f} ms/s")
    m = node_inputs(a_.raw, sr)
    print("\n4 nodes behind nginx: " + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                               for k, v in m.items()))
    mod = model(m, a, b, base_rate)
    print(f"\nmodel: {CLIENTS:,} clients, {RATE:g} items/s, {MATCH} of clients per item "
          f"({mod['deliveries_per_s']:,.0f} deliveries/s), {CORES} cores a node")
    print(f"{'nodes':>6} {'GiB/node':>9} {'cores/node':>11} {'readers':>8} {'Redis us/XADD':>14}"
          f" {'Redis cores':>12} {'flash s':>8} {'proxy cores':>12} {'proxy GiB':>10}")
    for r in mod["rows"]:
        def f(v, p):
            return f"{v:.{p}f}" if v is not None else "-"
        print(f"{r['nodes']:>6} {r['mem_per_node_gib']:>9.2f} {f(r['cores_needed_per_node'], 1):>11}"
              f" {r['readers']:>8} {r['redis_us_per_xadd']:>14.0f} {r['redis_cores']:>12.3f}"
              f" {f(r['flash_s'], 3):>8} {f(r['proxy_cores'], 1):>12} {r['proxy_mem_gib']:>10.2f}")
    chk = check(m, a, b, base_rate)
    print("\nchecked against the 4-node run:")
    for c in chk:
        r = c["measured_over_model"]
        print(f"  {c['figure']:<24} model {c['model']:>10.4g}  measured {c['measured']:>10.4g}"
              f"  measured/model {r:.2f}" if r else f"  {c['figure']}: -")
    if a_.out:
        with open(a_.out, "w") as fh:
            json.dump({"redis": rows, "redis_fit_us": [a, b], "redis_base_cpu_per_s": base_rate,
                       "nodes": m, "model": mod, "check": chk}, fh, indent=1)
        print(f"wrote {a_.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
