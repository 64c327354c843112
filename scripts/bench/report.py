#!/usr/bin/env python3
"""Turns snapfs_bench_core's JSON into the tables of docs/performance.md and a CSV.

usage: report.py RESULTS.json OUT.csv [SPLIT.csv]

Every figure is in microseconds: the median over the benchmark's repetitions
of the median time of one operation within a repetition (the p50_us counter).
The CSV also has mean_us, the median over repetitions of the mean time per
operation, which is what Google Benchmark itself reports.
"""
import csv
import json
import os
import sys

OPS = ["plain_open_close", "mmap_open", "mmapmut_open", "commit", "commit_fast", "commit_and_close",
       "commit_and_close_fast"]
LABEL = {
    "plain_open_close": "open()+close()",
    "mmap_open": "Mmap::open+drop",
    "mmapmut_open": "MmapMut::open+drop",
    "commit": "commit() (atomic: fdatasync)",
    "commit_fast": "commit() (fast: no sync)",
    "commit_and_close": "commit_and_close() (atomic)",
    "commit_and_close_fast": "commit_and_close() (fast)",
}
SCALE = {"ns": 1e-3, "us": 1.0, "ms": 1e3, "s": 1e6}


def size_bytes(label):
    for unit, mult in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10), ("B", 1)):
        if label.endswith(unit):
            return int(label[: -len(unit)]) * mult
    raise ValueError(label)


def fmt(us):
    if us is None:
        return "—"
    if us >= 100_000:
        return f"{us / 1000:,.0f} ms"
    if us >= 10_000:
        return f"{us / 1000:,.1f} ms"
    if us >= 100:
        return f"{us:,.0f}"
    return f"{us:.1f}"


def main():
    src, dst = sys.argv[1], sys.argv[2]
    split = sys.argv[3] if len(sys.argv) > 3 else None
    with open(src) as f:
        data = json.load(f)

    rows = {}  # (fs, op, size) -> dict
    scatter = []
    for b in data["benchmarks"]:
        if b.get("error_occurred"):
            print(f"ERROR {b['name']}: {b.get('error_message')}", file=sys.stderr)
            continue
        parts = b.get("run_name", b["name"]).split("/")
        fs, op, size = parts[0], parts[1], parts[2]
        scale = SCALE[b.get("time_unit", "us")]
        if op == "commit_scatter":
            scatter.append((fs, size, b["real_time"] * scale, b))
            continue
        if b.get("aggregate_name") != "median":
            continue
        rows[(fs, op, size)] = {
            "us": b.get("p50_us", b["real_time"] * scale),
            "mean_us": b["real_time"] * scale,
            "label": b.get("label", ""),
            "iterations": b.get("iterations"),
            "repetitions": b.get("repetitions"),
            "open_us": b.get("open_us"),
            "drop_us": b.get("drop_us"),
            "extents": b.get("extents"),
        }

    filesystems = list(dict.fromkeys(k[0] for k in rows))
    sizes = sorted({k[2] for k in rows}, key=size_bytes)
    first, last = sizes[0], sizes[-1]
    ctx = data.get("context", {})
    print(f"\n{ctx.get('date', '')}  {ctx.get('num_cpus', '?')} cpus  "
          f"load {ctx.get('load_avg', '')}  (µs per operation: median of repetitions "
          f"of the median operation; warm page cache)")

    out_rows = []
    for fs in filesystems:
        method = next((r["label"] for (f, _, _), r in rows.items() if f == fs and r["label"]), "")
        print(f"\n### {fs} ({method})\n")
        head = ["operation"] + sizes + [f"{last}/{first}"]
        print("| " + " | ".join(head) + " |")
        print("|" + "---|" * len(head))
        for op in OPS:
            cells = []
            for s in sizes:
                r = rows.get((fs, op, s))
                cells.append(fmt(r["us"]) if r else "—")
            a, z = rows.get((fs, op, first)), rows.get((fs, op, last))
            ratio = f"{z['us'] / a['us']:.1f}×" if a and z and a["us"] > 0 else "—"
            print(f"| {LABEL[op]} | " + " | ".join(cells) + f" | {ratio} |")
        ext = [rows.get((fs, "mmap_open", s), {}).get("extents") for s in sizes]
        if any(e is not None and e >= 0 for e in ext):
            print("| extents of the file (FIEMAP) | "
                  + " | ".join("—" if e is None else f"{e:.0f}" for e in ext) + " | |")
        # Overhead of a snapshot over plain open()+close() of the same file.
        for op in ("mmap_open", "mmapmut_open"):
            cells = []
            for s in sizes:
                r, p = rows.get((fs, op, s)), rows.get((fs, "plain_open_close", s))
                cells.append(f"+{fmt(r['us'] - p['us'])}" if r and p else "—")
            print(f"| {LABEL[op]} − open()+close() | " + " | ".join(cells) + " | |")

        for op in OPS:
            base = rows.get((fs, op, first))
            for s in sizes:
                r = rows.get((fs, op, s))
                if not r:
                    continue
                p = rows.get((fs, "plain_open_close", s))
                out_rows.append({
                    "fs": fs, "clone_method": r["label"] or method, "op": op,
                    "size": s, "size_bytes": size_bytes(s),
                    "median_us": f"{r['us']:.2f}", "mean_us": f"{r['mean_us']:.2f}",
                    "plain_open_close_us": f"{p['us']:.2f}" if p else "",
                    "overhead_us": f"{r['us'] - p['us']:.2f}" if p and op != "plain_open_close" else "",
                    f"ratio_to_{first}": f"{r['us'] / base['us']:.2f}" if base and base["us"] else "",
                    "open_us": f"{r['open_us']:.2f}" if r["open_us"] is not None else "",
                    "drop_us": f"{r['drop_us']:.2f}" if r["drop_us"] is not None else "",
                    "extents": f"{r['extents']:.0f}" if r["extents"] is not None else "",
                    "repetitions": r["repetitions"],
                })

    # The seed's claims, for the filesystems with reflinks: opening costs at
    # most 0.1 ms more than open()+close(), and open and commit do not depend
    # on the size (here: the largest size within 2x of the smallest).
    checks = []
    for fs in filesystems:
        if not any(r["label"] == "reflink" for (f, _, _), r in rows.items() if f == fs):
            continue
        for op in ("mmap_open", "mmapmut_open"):
            worst = max(((rows[(fs, op, s)]["us"] - rows[(fs, "plain_open_close", s)]["us"], s)
                         for s in sizes if (fs, op, s) in rows and (fs, "plain_open_close", s) in rows),
                        default=None)
            if worst:
                checks.append(f"{fs}: {LABEL[op]} overhead ≤ 100 µs: "
                              f"{'met' if worst[0] <= 100 else 'MISSED'} (worst +{worst[0]:.1f} µs at {worst[1]})")
        for op in OPS[1:]:
            a, z = rows.get((fs, op, first)), rows.get((fs, op, last))
            if a and z:
                r = z["us"] / a["us"]
                checks.append(f"{fs}: {LABEL[op]} {last} within 2× of {first}: "
                              f"{'met' if r <= 2 else 'MISSED'} ({r:.2f}×)")
    if checks:
        print("\n### Seed claims\n")
        for c in checks:
            print("- " + c)

    if scatter:
        print("\n### Fragmentation: commit() (fast) dirtying a different page each time\n")
        print("| fs | size | commits | extents before → after | first 10 % | last 10 % | mean |")
        print("|---|---|---|---|---|---|---|")
        for fs, size, mean, b in scatter:
            print(f"| {fs} | {size} | {b['iterations']} | {b['extents_before']:.0f} → {b['extents']:.0f}"
                  f" | {fmt(b['first10pct_us'])} | {fmt(b['last10pct_us'])} | {fmt(mean)} |")
            out_rows.append({"fs": fs, "op": "commit_scatter", "size": size,
                             "size_bytes": size_bytes(size), "median_us": "",
                             "extents": f"{b['extents']:.0f}", "commits": b["iterations"],
                             "open_us": "", "drop_us": ""})

    if split and os.path.exists(split):
        with open(split) as f:
            steps = list(csv.DictReader(f))
        for size in dict.fromkeys(r["size"] for r in steps):
            part = [r for r in steps if r["size"] == size]
            fss = list(dict.fromkeys(r["fs"] for r in part))
            names = list(dict.fromkeys(r["step"] for r in part))
            val = {(r["fs"], r["step"]): float(r["median_us"]) for r in part}
            print(f"\n### Cost split of one Mmap::open of a {size} file (median µs)\n")
            print("| step | " + " | ".join(fss) + " |")
            print("|---|" + "---|" * len(fss))
            for n in names:
                print(f"| {n} | " + " | ".join(f"{val.get((fs, n), 0):.1f}" for fs in fss) + " |")

    fields = ["fs", "clone_method", "op", "size", "size_bytes", "median_us", "mean_us",
              "plain_open_close_us",
              "overhead_us", f"ratio_to_{first}", "open_us", "drop_us", "extents", "commits",
              "repetitions"]
    with open(dst, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields, restval="")
        w.writeheader()
        w.writerows(out_rows)


if __name__ == "__main__":
    main()
