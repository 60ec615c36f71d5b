#!/usr/bin/env python3
"""Table and results.json of `make bench` from loadgen's JSON files.

    report.py --one FILE                  one line about one loadgen run
    report.py --out results.json FILE...  the table (stdout) and the JSON

Each FILE is build/bench/raw/<target>-<run>.json, as run.sh names them.
Ratios are tickerd / peer for each figure (tickerd = the first target, the
one run with the configured number of workers); whether a ratio above or
below 1 is good depends on the figure ("better" column). A target "base"
(BENCH_BASE_BIN: another tickerd binary, e.g. 0.1) is a peer like the others.
So is "floor" (floor.c, the bare-send floor: no server, one send() per
delivery): its steady20 run gives deliveries per CPU-s, so tickerd/floor is
the share of the floor that tickerd reaches. Its steady20m run makes the
steady run's own sends (floor --filtered: loadgen's filters), and
tickerd's steady20u (every client owed every item) is the floor's own load.
Its flash run (rounds of one send to each of the idle N sockets) is the
floor of the flash scenario:
tickerd's flash.json (which stands for its idle run too) gets the ratio of
the two medians, the issue's target being 1.5.

The stalled scenario runs twice per target, with N stalled clients
(stalled<N>.json) and with a control number (stalled<n>.json, n < N), and
with none (stalled0.json: the readers alone, whose burst growth is the
baseline); the table derives the growth ratio RSS growth(N) / growth(n),
the marginal growth per stalled client, (growth(N) - growth(n)) / (N - n),
and the growth beyond the baseline per stalled client.
"""
import argparse
import datetime
import json
import os
import sys

# figure: (label, run, key, better, issue target for tickerd at full scale)
FIGURES = [
    ("connections held (idle)", "idle", "held", "higher", (">=", 100000)),
    ("RSS per idle connection, KiB", "idle", "rss_per_conn_kb", "lower", ("<=", 1.5)),  # issue 15
    ("RSS per 10,000 waiting long-polls, KiB", "poll", "rss_per_10k_polls_kb", "lower", None),
    ("20 items/s: latency p50, ms", "steady20", "lat_p50_ms", "lower", None),
    ("20 items/s: latency p99, ms", "steady20", "lat_p99_ms", "lower", ("<=", 25.0)),
    ("20 items/s: latency max, ms", "steady20", "lat_max_ms", "lower", None),
    ("20 items/s: delivered", "steady20", "unique", "higher", None),
    ("20 items/s: expected", "steady20", "expected", "same", None),
    ("20 items/s: lost", "steady20", "lost", "lower", ("<=", 0)),
    ("20 items/s: deliveries/s", "steady20", "deliveries_per_wall_s", "higher", None),
    ("20 items/s: deliveries per server CPU-s", "steady20", "deliveries_per_cpu_s", "higher", None),
    ("20 items/s: / the floor's sends per CPU-s", "steady20", "ratio_floor", "higher", (">=", 0.9)),
    ("floor with steady's filters, sends per CPU-s", "steady20m", "sends_per_cpu_s", "higher", None),
    ("20 items/s: / that floor (the same sends)", "steady20", "ratio_floor_matched", "higher",
     (">=", 0.9)),
    ("hub fan-out alone (fanout.c), ns per delivery", "fanout", "ns_per_delivery", "lower", None),
    ("20 items/s: the hub's share of a delivery's CPU", "steady20", "hub_share", "lower", None),
    ("unfiltered 20/s: deliveries per server CPU-s", "steady20u", "deliveries_per_cpu_s", "higher",
     None),
    ("unfiltered 20/s: / the floor's", "steady20u", "ratio_floor", "higher", (">=", 0.9)),
    ("unfiltered 20/s: latency p50, ms", "steady20u", "lat_p50_ms", "lower", None),
    ("unfiltered 20/s: lost", "steady20u", "lost", "lower", ("<=", 0)),
    ("flash to the idle N: median, s", "flash", "flash_all_s", "lower", None),
    ("flash to the idle N: max, s", "flash", "flash_max_s", "lower", None),
    ("flash: median / the floor's", "flash", "flash_ratio_floor", "lower", ("<=", 1.5)),
    ("flash: frame bytes", "flash", "flash_frame_bytes", "same", None),
    ("flash: items at every client", "flash", "flash_items_complete", "higher", None),
    ("flash: lost", "flash", "lost", "lower", ("<=", 0)),
    ("flash: server CPU, s", "flash", "flash_cpu_s", "lower", None),
    ("5 items/s: latency p50, ms", "steady5", "lat_p50_ms", "lower", None),
    ("5 items/s: latency p99, ms", "steady5", "lat_p99_ms", "lower", ("<=", 10.0)),
    ("5 items/s: latency max, ms", "steady5", "lat_max_ms", "lower", None),
    ("5 items/s: lost", "steady5", "lost", "lower", ("<=", 0)),
    ("burst: deliveries per server CPU-s", "burst", "deliveries_per_cpu_s", "higher", (">=", 550000)),
    ("burst: server CPU user, s", "burst", "cpu_user_s", "lower", None),
    ("burst: server CPU system, s", "burst", "cpu_sys_s", "lower", None),
    ("burst: deliveries per wall s", "burst", "deliveries_per_wall_s", "higher", None),
    ("burst: latency p99, ms", "burst", "lat_p99_ms", "lower", None),
    ("burst: delivered", "burst", "unique", "higher", None),
    ("burst: lost", "burst", "lost", "lower", ("<=", 0)),
    ("burst: closed 1013 (slow consumer)", "burst", "closed_1013", "lower", None),
    ("burst: 1013 counted by the server", "burst", "slow_closes", "lower", None),
    ("burst: other disconnects", "burst", "disconnects_other", "lower", None),
    ("storm: clients", "storm", "clients", "same", None),
    ("storm: all replays served, s", "storm", "storm_all_s", "lower", ("<=", 3.0)),
    ("storm: median client served, s", "storm", "storm_p50_s", "lower", None),
    ("storm: clients served", "storm", "clients_served", "higher", None),
    ("storm: missed items lost", "storm", "lost", "lower", ("<=", 0)),
    ("stalled: stalled clients (large run)", "stalledL", "stalled_clients", "same", None),
    ("stalled: RSS before connecting, KiB", "stalledL", "rss_before_kb", "lower", None),
    ("stalled: RSS growth, connect, KiB", "stalledL", "rss_connect_growth_kb", "lower", None),
    ("stalled: RSS growth, burst (peak), KiB", "stalledL", "rss_burst_growth_kb", "lower", None),
    ("stalled: burst growth / stalled clients", "stalledL", "rss_burst_growth_per_stalled_kb", "lower",
     None),
    ("stalled: RSS growth, connect+burst, KiB", "stalledL", "rss_total_growth_kb", "lower", None),
    ("stalled control: stalled clients", "stalledS", "stalled_clients", "same", None),
    ("stalled control: RSS growth, burst, KiB", "stalledS", "rss_burst_growth_kb", "lower", None),
    ("stalled control: growth connect+burst", "stalledS", "rss_total_growth_kb", "lower", None),
    ("stalled none (readers only): burst growth", "stalled0", "rss_burst_growth_kb", "lower", None),
    ("stalled: burst growth minus none, KiB", "stalled", "net_burst_growth_kb_large", "lower", None),
    ("stalled: ... minus none, per stalled client", "stalled", "net_kb_per_stalled_large", "lower", None),
    ("stalled control: burst growth minus none", "stalled", "net_burst_growth_kb_control", "lower",
     None),
    ("stalled: burst growth ratio large/control", "stalled", "burst_growth_ratio", "lower", None),
    ("stalled: total growth ratio large/control", "stalled", "total_growth_ratio", "lower", None),
    ("stalled: marginal KiB per stalled client", "stalled", "marginal_kb_per_client", "lower", None),
    ("stalled: server 1013 closes at hold", "stalledL", "slow_closes_at_hold", "same", None),
    ("stalled: server 1013 closes, total", "stalledL", "slow_closes", "same", None),
    ("stalled: first 1013, s after burst start", "stalledL", "close_first_s", "same", None),
    ("stalled: last 1013, s after burst start", "stalledL", "close_last_s", "same", None),
    ("stalled: clients that then read a 1013", "stalledL", "stalled_got_1013", "same", None),
    ("stalled: ... other close / FIN / RST", "stalledL", "stalled_other_end", "same", None),
    ("stalled: ... still open after the drain", "stalledL", "stalled_still_open", "same", None),
    ("stalled: readers lost", "stalledL", "lost", "lower", ("<=", 0)),
    ("stalled: readers closed 1013", "stalledL", "closed_1013", "lower", ("<=", 0)),
    ("stalled: server CPU s, stalled until close", "stalledL", "cpu_stall_s", "lower", None),
    ("stalled: ... wall s of that", "stalledL", "cpu_observe_wall_s", "same", None),
    ("stalled: server CPU s at the closes", "stalledL", "cpu_close_s", "lower", None),
    ("stalled: ... us per client closed then", "stalledL", "cpu_per_close_us", "lower", None),
]


def derive_stalled(runs):
    """Per target: the large and the control stalled runs as 'stalledL' and
    'stalledS', and the ratios between them as 'stalled'."""
    for t, r in runs.items():
        st = sorted((d.get("stalled_clients", 0), k) for k, d in r.items()
                    if d.get("scenario") == "stalled")
        for n, k in st:
            d = r[k]
            d["rss_connect_growth_kb"] = d["rss_connected_kb"] - d["rss_before_kb"]
            d["stalled_other_end"] = (d.get("stalled_closed_other", 0)
                                      + d.get("stalled_dropped_eof", 0)
                                      + d.get("stalled_dropped_reset", 0))
        zero = [k for n, k in st if n == 0]
        st = [(n, k) for n, k in st if n > 0]
        if zero:
            r["stalled0"] = r[zero[0]]
        if not st:
            continue
        big, small = r[st[-1][1]], r[st[0][1]]
        r["stalledL"], r["stalledS"] = big, small
        der = {}
        if zero:  # what the stalled clients add to a burst the readers alone cost
            z = r[zero[0]]["rss_burst_growth_kb"]
            der["net_burst_growth_kb_large"] = big["rss_burst_growth_kb"] - z
            der["net_burst_growth_kb_control"] = small["rss_burst_growth_kb"] - z
            der["net_kb_per_stalled_large"] = der["net_burst_growth_kb_large"] / big["stalled_clients"]
        if len(st) >= 2 and st[0][0] != st[-1][0]:
            gb, gs = big["rss_burst_growth_kb"], small["rss_burst_growth_kb"]
            tb, ts = big["rss_total_growth_kb"], small["rss_total_growth_kb"]
            der["burst_growth_ratio"] = gb / gs if gs > 0 else None
            der["total_growth_ratio"] = tb / ts if ts > 0 else None
            der["marginal_kb_per_client"] = (tb - ts) / (big["stalled_clients"]
                                                        - small["stalled_clients"])
        r["stalled"] = der


def derive_flash(runs):
    """The flash run (tickerd, base) holds the idle scenario's clients, so it
    stands for the idle run when there is none; its median over the floor's
    flash round of the same run is the issue's ratio (target <= 1.5)."""
    floor = runs.get("floor", {}).get("flash")
    if floor:
        floor["flash_frame_bytes"] = floor.get("bytes")
    for t, r in runs.items():
        d = r.get("flash")
        if not d or d.get("scenario") != "flash":
            continue
        r.setdefault("idle", d)
        if floor and floor.get("flash_all_s", 0) > 0 and d.get("flash_all_s", -1) >= 0:
            d["flash_ratio_floor"] = d["flash_all_s"] / floor["flash_all_s"]


def derive_floor(runs):
    """Each target's steady runs over the floor's sends per CPU-s: steady20
    (loadgen's filters: 3/8 of the floor's sends) over the floor (steady20)
    and over the floor that makes the same sends (steady20m, --filtered), and
    steady20u (every client every item, the floor's own load) over the
    floor, which is its steady20 run."""
    floor = runs.get("floor", {})
    if "steady20" in floor:
        floor["steady20u"] = floor["steady20"]
    for t, r in runs.items():
        if t == "floor":
            continue
        for run, ref, key in (("steady20", "steady20", "ratio_floor"),
                              ("steady20", "steady20m", "ratio_floor_matched"),
                              ("steady20u", "steady20", "ratio_floor")):
            d, f = r.get(run), floor.get(ref)
            if d and f and f.get("sends_per_cpu_s", 0) > 0 and "deliveries_per_cpu_s" in d:
                d[key] = d["deliveries_per_cpu_s"] / f["sends_per_cpu_s"]


def derive_fanout(runs):
    """The hub's ns per delivery (fanout.c: tk_hub_publish alone) over the
    CPU a delivery costs tickerd in the steady run, sockets and all."""
    r = runs.get("tickerd", {})
    f, d = r.get("fanout"), r.get("steady20")
    if f and d and d.get("deliveries_per_cpu_s", 0) > 0:
        d["hub_share"] = f["ns_per_delivery"] * d["deliveries_per_cpu_s"] / 1e9


def load(files):
    runs = {}
    for f in files:
        with open(f) as fh:
            d = json.load(fh)
        label = d.get("label") or d["target"]
        stem = os.path.basename(f)[:-5]
        run = stem[len(label) + 1:] if stem.startswith(label + "-") else d["scenario"]
        runs.setdefault(label, {})[run] = d
    return runs


def fmt(v):
    if v is None:
        return "-"
    if (isinstance(v, float) and v < 0) or v == -1:  # -1: not measured
        return "n/a"
    if abs(v) >= 100000:
        return f"{v:,.0f}"
    if abs(v) >= 100:
        return f"{v:.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.3g}" if v else "0"


def one(path):
    d = json.load(open(path))
    keys = ["held", "rss_per_conn_kb", "lat_p50_ms", "lat_p99_ms", "lat_max_ms", "unique",
            "expected", "lost", "closed_1013", "slow_closes", "disconnects_other",
            "deliveries_per_cpu_s", "cpu_user_s", "cpu_sys_s", "storm_all_s", "clients_served",
            "stalled_paused", "rss_before_kb", "rss_connected_kb", "rss_peak_kb", "rss_peak_t_s",
            "rss_end_kb", "rss_burst_growth_kb", "rss_burst_growth_per_stalled_kb",
            "slow_closes_at_hold", "close_first_s", "close_last_s", "stalled_got_1013",
            "stalled_closed_other", "stalled_dropped_eof", "stalled_dropped_reset",
            "stalled_still_open", "rss_limit_hit", "failed", "last_error",
            "clients", "procs", "sends", "cpu_s", "sends_per_cpu_s", "flash_all_s",
            "flash_max_s", "flash_rounds_s", "flash_frame_bytes", "bytes",
            "flash_items_complete", "flash_cpu_s", "storm_p50_s", "items", "deliveries", "owed",
            "ns_per_item", "ns_per_delivery"]
    parts = [f"{k}={d[k] if isinstance(d[k], (str, list)) else fmt(d[k])}" for k in keys
             if k in d and d[k] != ""]
    print(f"  {d.get('label')} {os.path.basename(path)[:-5]}: " + " ".join(parts))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--one")
    ap.add_argument("--out")
    ap.add_argument("--scale", default="?")
    ap.add_argument("--workers", default="?")
    ap.add_argument("--bin", help="the tickerd binary of targets tickerd, tickerd-w1")
    ap.add_argument("--base-bin", help="the binary of target base")
    ap.add_argument("--poll", nargs="*", default=[],
                    help="poll_rss.py results (<label>-poll.json): RSS per 10,000 waiting polls")
    ap.add_argument("files", nargs="*")
    a = ap.parse_args()
    if a.one:
        one(a.one)
        return 0
    runs = load(f for f in a.files if os.path.exists(f))
    for f in a.poll:
        if os.path.exists(f):
            runs.setdefault(os.path.basename(f)[:-len("-poll.json")], {})["poll"] = json.load(open(f))
    derive_stalled(runs)
    derive_flash(runs)
    derive_floor(runs)
    derive_fanout(runs)
    order = [t for t in ("tickerd", "base", "tickerd-w1", "node", "nchan", "floor") if t in runs]
    order += sorted(t for t in runs if t not in order)
    base = order[0] if order else None
    peers = [t for t in order if not t.startswith("tickerd")]
    figures = []
    for label, run, key, better, target in FIGURES:
        vals = {t: runs[t].get(run, {}).get(key) for t in order}
        ratios = {}
        for p in peers:
            b, v = vals.get(base), vals.get(p)
            ratios[p] = (b / v) if isinstance(b, (int, float)) and isinstance(v, (int, float)) \
                and v > 0 and b >= 0 else None
        ok = None
        if key == "held" and base in runs and "idle" in runs[base]:
            target = (">=", runs[base]["idle"]["clients"])  # 100,000 at full scale
        if target and isinstance(vals.get(base), (int, float)) and vals[base] >= 0:
            op, lim = target
            ok = vals[base] >= lim if op == ">=" else vals[base] <= lim
        figures.append({"figure": label, "run": run, "key": key, "better": better,
                        "target": f"{target[0]} {target[1]}" if target else None,
                        "values": vals, "ratios": ratios, "meets_target": ok})

    # the table
    cols = order + [f"{base}/{p}" for p in peers] + ["target", "ok"]
    w0 = max(len(f["figure"]) for f in figures) + 1
    line = f"{'figure':<{w0}}" + "".join(f"{c:>15}" for c in cols)
    print(f"\ntickerd benchmark, scale {a.scale}, {a.workers} worker process(es) per target "
          f"(tickerd-w1: 1)")
    if a.bin:
        print(f"tickerd: {a.bin}")
    if a.base_bin:
        print(f"base:    {a.base_bin}")
    if any(d.get("busy_poll") for r in runs.values() for d in r.values() if isinstance(d, dict)):
        print("busy-poll: the steady clients and the floor's readers never sleep")
    print()
    print(line)
    print("-" * len(line))
    for f in figures:
        if all(v is None for v in f["values"].values()):
            continue  # a scenario that was not run
        row = f"{f['figure']:<{w0}}"
        row += "".join(f"{fmt(f['values'][t]):>15}" for t in order)
        row += "".join(f"{(fmt(f['ratios'][p]) if f['ratios'][p] is not None else '-'):>15}"
                       for p in peers)
        row += f"{f['target'] or '':>15}"
        row += f"{'' if f['meets_target'] is None else ('yes' if f['meets_target'] else 'NO'):>15}"
        print(row)
    for t in order:
        if "poll" in runs[t]:
            d = runs[t]["poll"]
            print(f"{t}: RSS per 10,000 waiting long-polls {d['rss_per_10k_polls_kb'] / 1024:.1f} MiB"
                  f" ({d['bytes_per_poll']} B each, {d['n']} polls, {d['answered_early']} answered"
                  " early)")
    print("\nratios are tickerd/peer; 'better' direction per figure is in results.json."
          " Targets are the issue's, for BENCH_SCALE=full.")
    if a.out:
        with open(a.out, "w") as fh:
            json.dump({"scale": a.scale, "workers": a.workers, "bin": a.bin, "base_bin": a.base_bin,
                       "when": datetime.datetime.now(datetime.timezone.utc).isoformat(),
                       "cpus": os.cpu_count(), "targets": order, "figures": figures,
                       "runs": runs}, fh, indent=1)
        print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
