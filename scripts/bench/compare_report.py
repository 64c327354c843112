#!/usr/bin/env python3
"""Summarise scripts/bench/compare.sh's raw CSV: medians over the repetitions,
ratios to native, the issue #5 targets; optional PNG (matplotlib).

  compare_report.py RAW.csv [--csv SUMMARY.csv] [--png PLOT.png]

ratio = median(target) / median(native) in the metric's own unit, so for
"higher" metrics (MiB/s, IOPS, files/s, stats/s) above 1 is faster than
native, for "lower" metrics (µs, ms, s) above 1 is slower.
"""
import argparse
import csv
import statistics
import sys
from collections import OrderedDict, defaultdict

ORDER = ["native", "bindfs", "mergerfs", "snapfs", "snapfs-fast"]


def fmt(v):
    if v is None:
        return "-"
    a = abs(v)
    if a >= 1000:
        return f"{v:,.0f}".replace(",", " ")
    if a >= 100:
        return f"{v:.0f}"
    if a >= 10:
        return f"{v:.1f}"
    if a >= 1:
        return f"{v:.2f}"
    return f"{v:.3f}"


def fmt_ratio(r):
    if r is None:
        return "-"
    if r >= 100:
        return f"{r:.0f}×"
    if r >= 10:
        return f"{r:.1f}×"
    return f"{r:.2f}×"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("raw")
    ap.add_argument("--csv")
    ap.add_argument("--png")
    a = ap.parse_args()

    vals = defaultdict(list)
    meta = OrderedDict()
    targets = []
    with open(a.raw) as f:
        for row in csv.DictReader(f):
            m, t = row["metric"], row["target"]
            meta.setdefault(m, (row["unit"], row["better"]))
            if t not in targets:
                targets.append(t)
            vals[(m, t)].append(float(row["value"]))
    targets = [t for t in ORDER if t in targets] + [t for t in targets if t not in ORDER]
    others = [t for t in targets if t != "native"]

    med = {k: statistics.median(v) for k, v in vals.items()}
    reps = max(len(v) for v in vals.values())

    def ratio(m, t):
        n = med.get((m, "native"))
        v = med.get((m, t))
        return None if not n or v is None else v / n

    # table
    head = ["metric", "unit", "better"] + targets + [f"{t}/native" for t in others]
    rows = []
    for m, (unit, better) in meta.items():
        rows.append([m, unit, better] + [fmt(med.get((m, t))) for t in targets]
                    + [fmt_ratio(ratio(m, t)) for t in others])
    print(f"\nmedians over {reps} repetitions; ratio = target / native in the metric's unit")
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in rows:
        print("| " + " | ".join(r) + " |")

    if a.csv:
        with open(a.csv, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["metric", "unit", "better", "target", "reps", "median", "min", "max", "ratio_to_native"])
            for m, (unit, better) in meta.items():
                for t in targets:
                    v = vals.get((m, t))
                    if not v:
                        continue
                    r = ratio(m, t)
                    w.writerow([m, unit, better, t, len(v), f"{med[(m, t)]:.6g}", f"{min(v):.6g}",
                                f"{max(v):.6g}", "" if r is None else f"{r:.4g}"])

    # issue #5 targets for snapfs
    if "snapfs" in targets:
        print("\nissue #5 targets (snapfs):")

        def line(name, ok, detail):
            print(f"  {'met   ' if ok else 'MISSED'} {name}: {detail}")

        for m, want, name in [("seq_read_cold", 0.9, "seq read (cold) >= 0.9x native"),
                              ("seq_write_fsync", 0.9, "seq write+fsync >= 0.9x native"),
                              ("seq_read_warm", 0.5, "warm re-read >= 0.5x native"),
                              ("randread_4k", 0.8, "4K random IOPS >= 0.8x native")]:
            r = ratio(m, "snapfs")
            if r is not None:
                line(name, r >= want, f"{r:.2f}x native")
        if ("open_read_close_4k", "bindfs") in med:
            s, b = med[("open_read_close_4k", "snapfs")], med[("open_read_close_4k", "bindfs")]
            line("open+read+close 4K no slower than bindfs", s <= b, f"{s:.1f} vs {b:.1f} us ({s / b:.2f}x)")
        if ("publish_4k", "bindfs") in med:
            s, b = med[("publish_4k", "snapfs")], med[("publish_4k", "bindfs")]
            line("small-file publish faster than bindfs", s > b, f"{s:.0f} vs {b:.0f} files/s ({s / b:.2f}x)")
            if ("publish_4k", "snapfs-fast") in med:
                f_ = med[("publish_4k", "snapfs-fast")]
                print(f"         (snapfs-fast, no fdatasync: {f_:.0f} files/s, {f_ / b:.2f}x bindfs)")
        r = ratio("stat_warm", "snapfs")
        if r:
            line("warm stat within 1.5x native", 1 / r <= 1.5, f"{1 / r:.2f}x native's time per stat")
        r = ratio("git_status", "snapfs")
        if r:
            line("git status within 1.5x native", r <= 1.5, f"{r:.2f}x native's time")
        cs = [m for m in meta if m.startswith("commit_")]
        if len(cs) >= 2 and (cs[0], "snapfs") in med:
            lo, hi = med[(cs[0], "snapfs")], med[(cs[-1], "snapfs")]
            line(f"commit latency size-independent ({cs[-1][7:]} vs {cs[0][7:]} within 2x)", hi / lo <= 2,
                 f"{lo:.2f} ms -> {hi:.2f} ms ({hi / lo:.2f}x)")

    if a.png:
        try:
            import matplotlib
            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            print("(no plot: matplotlib missing)", file=sys.stderr)
            return
        ms = list(meta)
        fig, ax = plt.subplots(figsize=(12, 5))
        width = 0.8 / max(1, len(others))
        for i, t in enumerate(others):
            ys = []
            for m in ms:
                r = ratio(m, t)
                # plot "speed relative to native": invert the lower-is-better metrics
                if r and meta[m][1] == "lower":
                    r = 1 / r
                ys.append(r or 0)
            ax.bar([x + i * width for x in range(len(ms))], ys, width, label=t)
        ax.axhline(1.0, color="black", linewidth=0.8)
        ax.set_yscale("log")
        ax.set_xticks([x + width * (len(others) - 1) / 2 for x in range(len(ms))])
        ax.set_xticklabels(ms, rotation=30, ha="right")
        ax.set_ylabel("speed relative to native (log; >1 = faster)")
        ax.set_title(f"snapfs and friends vs native XFS, medians of {reps} interleaved repetitions")
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
        fig.tight_layout()
        fig.savefig(a.png, dpi=110)


if __name__ == "__main__":
    main()
