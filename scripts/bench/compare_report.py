#!/usr/bin/env python3
"""Summarise scripts/bench/compare.sh's raw CSV: medians over the repetitions,
ratios to native, the targets of docs/performance.md ("Targets"); optional
PNG (matplotlib).

  compare_report.py RAW.csv [--csv SUMMARY.csv] [--png PLOT.png] [--rss RSS.csv]
                    [--cycles N] [--hold-files N] [--tree-files N] [--rss-flat-mib MIB]
                    [--base-label REV]

ratio = median(target) / median(native) in the metric's own unit, so for
"higher" metrics (MiB/s, IOPS, files/s, stats/s) above 1 is faster than
native, for "lower" metrics (µs, ms, s) above 1 is slower. A value "fail" in the raw CSV
is a failed run: it is counted and shown, never averaged, and fails its target.
When the run has a target snapfs-base (compare.sh --base REV: snapfs built at
an earlier revision), "snapfs/base" is median(snapfs) / median(snapfs-base),
read the same way (the CSV's ratio_to_base column: every target / snapfs-base).
"""
import argparse
import csv
import statistics
import sys
from collections import OrderedDict, defaultdict

ORDER = ["native", "bindfs", "mergerfs", "snapfs", "snapfs-fast", "snapfs-base"]
BASE = "snapfs-base"


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
    ap.add_argument("--rss", help="compare.sh's -rss.csv: cycles,rss_kib,seconds")
    ap.add_argument("--cycles", type=int, help="cycles the RSS run was asked for")
    ap.add_argument("--rss-flat-mib", type=float, default=4.0,
                    help="largest max-min of the RSS samples that counts as flat (MiB)")
    ap.add_argument("--hold-files", type=int, default=10000)
    ap.add_argument("--tree-files", type=int)
    ap.add_argument("--base-label", help="the revision snapfs-base was built at (legend, title)")
    a = ap.parse_args()

    vals = defaultdict(list)
    fails = defaultdict(int)
    meta = OrderedDict()
    targets = []
    with open(a.raw) as f:
        for row in csv.DictReader(f):
            m, t = row["metric"], row["target"]
            meta.setdefault(m, (row["unit"], row["better"]))
            if t not in targets:
                targets.append(t)
            if row["value"] in ("", "fail"):
                fails[(m, t)] += 1
            else:
                vals[(m, t)].append(float(row["value"]))
    targets = [t for t in ORDER if t in targets] + [t for t in targets if t not in ORDER]
    others = [t for t in targets if t != "native"]

    med = {k: statistics.median(v) for k, v in vals.items()}
    def nreps(ms):
        return max([len(v) + fails[k] for k, v in vals.items() if k[0] in ms] +
                   [fails[k] for k in fails if k[0] in ms] + [0])
    reps = nreps([m for m in meta if not m.startswith("build_")])
    breps = nreps(["build_full", "build_noop"])

    def ratio(m, t, to="native"):
        n = med.get((m, to))
        v = med.get((m, t))
        return None if not n or v is None or fails[(m, t)] or fails[(m, to)] else v / n

    has_base = BASE in targets and "snapfs" in targets

    def cell(m, t):
        k = fails[(m, t)]
        if not k:
            return fmt(med.get((m, t)))
        n = k + len(vals.get((m, t), []))
        return "FAILED" + (f" {k}/{n}" if k < n else "") + (f" ({fmt(med[(m, t)])})" if (m, t) in med else "")

    # table
    head = ["metric", "unit", "better"] + targets + [f"{t}/native" for t in others]
    head += ["snapfs/base"] if has_base else []
    rows = []
    for m, (unit, better) in meta.items():
        rows.append([m, unit, better] + [cell(m, t) for t in targets]
                    + [fmt_ratio(ratio(m, t)) for t in others]
                    + ([fmt_ratio(ratio(m, "snapfs", BASE))] if has_base else []))
    print(f"\nmedians over {reps} repetitions" + (f" (builds: {breps})" if breps else "") + "; ratio = target / native in the metric's unit;"
          " FAILED k/n: k of n runs failed (median of the others in brackets)")
    if has_base:
        print(f"snapfs-base: snapfs built at {a.base_label or 'the --base revision'};"
              " snapfs/base = snapfs / snapfs-base in the metric's unit")
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in rows:
        print("| " + " | ".join(r) + " |")

    if a.csv:
        with open(a.csv, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["metric", "unit", "better", "target", "reps", "failed", "median", "min", "max",
                        "ratio_to_native"] + (["ratio_to_base"] if has_base else []))
            for m, (unit, better) in meta.items():
                for t in targets:
                    v = vals.get((m, t), [])
                    k = fails[(m, t)]
                    if not v and not k:
                        continue
                    r = ratio(m, t)
                    g = (lambda x: f"{x:.6g}") if v else (lambda x: "")
                    rb = ratio(m, t, BASE)
                    w.writerow([m, unit, better, t, len(v) + k, k, g(med.get((m, t))),
                                g(min(v) if v else 0), g(max(v) if v else 0),
                                "" if r is None else f"{r:.4g}"]
                               + (["" if rb is None else f"{rb:.4g}"] if has_base else []))

    rss = []
    if a.rss:
        with open(a.rss) as f:
            rss = [(int(r["cycles"]), int(r["rss_kib"]), float(r["seconds"])) for r in csv.DictReader(f)]
        if rss:
            print(f"\nsnapfs daemon VmRSS across {rss[-1][0]:,} open+close cycles of one file".replace(",", " "))
            print("| cycles | " + " | ".join(f"{c:,}".replace(",", " ") for c, _, _ in rss) + " |")
            print("|---|" + "---|" * len(rss))
            print("| RSS MiB | " + " | ".join(f"{k / 1024:.1f}" for _, k, _ in rss) + " |")
            print("| seconds | " + " | ".join(f"{s:.0f}" for _, _, s in rss) + " |")

    # the targets of docs/performance.md ("Targets"), for snapfs (and
    # snapfs-fast, when measured)
    def verdict(t):
        """(name, measured text, ok or None = not measured) for target t."""
        out = []

        def failed(m):
            k = fails[(m, t)]
            return f"failed in {k} of {k + len(vals.get((m, t), []))} runs" if k else None

        def rel(m, want, name, invert=False):
            f_ = failed(m)
            if f_:
                return out.append((name, f_, False))
            r = ratio(m, t)
            if r is None:
                return out.append((name, "not measured", None))
            if invert:  # a time: show how many times native's
                out.append((name, f"{r:.2f}x native's time ({fmt(med[(m, t)])} vs {fmt(med[(m, 'native')])} "
                                  f"{meta[m][0]})", r <= want))
            else:
                out.append((name, f"{r:.2f}x native ({fmt(med[(m, t)])} vs {fmt(med[(m, 'native')])} "
                                  f"{meta[m][0]})", r >= want))

        def vs_bindfs(m, name, lower):
            f_ = failed(m)
            if f_:
                return out.append((name, f_, False))
            if (m, "bindfs") not in med or (m, t) not in med:
                return out.append((name, "not measured (no bindfs in this run)", None))
            s, b = med[(m, t)], med[(m, "bindfs")]
            ok = s <= b if lower else s > b
            out.append((name, f"{fmt(s)} vs {fmt(b)} {meta[m][0]} ({s / b:.2f}x bindfs)", ok))

        rel("seq_read_cold", 0.9, "seq read (cold) >= 0.9x native")
        rel("seq_write_fsync", 0.9, "seq write+fsync >= 0.9x native")
        rel("seq_read_warm", 0.5, "warm re-read in a new open >= 0.5x native")
        rel("randread_4k", 0.8, "4K random IOPS >= 0.8x native")
        vs_bindfs("open_read_close_4k", "open+read+close 4 KiB no slower than bindfs", lower=True)
        vs_bindfs("publish_4k", "small-file publish faster than bindfs", lower=False)
        f_ = failed("stat_warm")
        r = ratio("stat_warm", t)
        out.append(("warm stat within 1.5x native",
                    f_ or (f"{1 / r:.2f}x native's time per stat" if r else "not measured"),
                    False if f_ else (1 / r <= 1.5 if r else None)))
        tree = f" ({a.tree_files:,} files)".replace(",", " ") if a.tree_files else ""
        rel("git_status", 1.5, f"git status{tree} within 1.5x native", invert=True)
        rel("build_noop", 1.5, "no-op rebuild within 1.5x native", invert=True)
        for fs, pre in (("XFS", "commit_"), ("btrfs", "commit_btrfs_")):
            cs = [m for m in meta if m.startswith(pre) and m[len(pre):][:1].isdigit()]
            name = f"commit latency on {fs}: largest within 2x of smallest"
            if len(cs) < 2 or (cs[0], t) not in med and not fails[(cs[0], t)]:
                out.append((name, "not measured", None))
                continue
            name = f"commit latency on {fs}: {cs[-1][len(pre):]} within 2x of {cs[0][len(pre):]}"
            f_ = failed(cs[0]) or failed(cs[-1])
            if f_:
                out.append((name, f_, False))
                continue
            lo, hi = med[(cs[0], t)], med[(cs[-1], t)]
            out.append((name, f"{lo:.2f} ms -> {hi:.2f} ms ({hi / lo:.2f}x)", hi / lo <= 2))
        rel("build_full", 1.15, "real build <= 1.15x native", invert=True)
        name = f"{a.hold_files:,} files open at once".replace(",", " ")
        if ("hold_opened", t) in med or fails[("hold_10k", t)]:
            opened = vals.get(("hold_opened", t), [])
            k = fails[("hold_10k", t)]
            if k:
                out.append((name, f"failed in {k} of {len(opened)} runs; opened at most {max(opened):.0f}, "
                                  f"at least {min(opened):.0f}", False))
            else:
                out.append((name, f"all {len(opened)} runs held {a.hold_files}; "
                                  f"{fmt(med[('hold_10k', t)])} s (native {fmt(med.get(('hold_10k', 'native')))} s)",
                            True))
        else:
            out.append((name, "not measured", None))
        name = "daemon RSS flat across open+close cycles"
        if t != "snapfs" or not rss:
            out.append((name, "not measured", None))
        else:
            ks = [k for _, k, _ in rss]
            spread = (max(ks) - min(ks)) / 1024
            short = a.cycles and rss[-1][0] < a.cycles
            name = f"daemon RSS flat across {rss[-1][0]:,} open+close cycles".replace(",", " ")
            txt = (f"{ks[0] / 1024:.1f} -> {ks[-1] / 1024:.1f} MiB, max-min {spread:.1f} MiB "
                   f"(flat: <= {a.rss_flat_mib:g} MiB)")
            if short:
                txt += f"; STOPPED after {rss[-1][0]} of {a.cycles} cycles"
            out.append((name, txt, spread <= a.rss_flat_mib and not short))
        return out

    snaps = [t for t in ("snapfs", "snapfs-fast", BASE) if t in targets]
    if snaps:
        cols = {t: verdict(t) for t in snaps}
        print("\ntargets of docs/performance.md (measured in this run)")
        head = ["target"] + [x for t in snaps for x in (f"{t}: measured", f"{t}: verdict")]
        print("| " + " | ".join(head) + " |")
        print("|" + "---|" * len(head))
        word = {True: "met", False: "**missed**", None: "not measured"}
        for i, (name, _, _) in enumerate(cols[snaps[0]]):
            cells = [name]
            for t in snaps:
                _, txt, ok = cols[t][i]
                cells += [txt, word[ok]]
            print("| " + " | ".join(cells) + " |")
        for t in snaps:
            oks = [ok for _, _, ok in cols[t]]
            print(f"{t}: {oks.count(True)} met, {oks.count(False)} missed, {oks.count(None)} not measured")

    if a.png:
        try:
            import matplotlib
            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            print("(no plot: matplotlib missing)", file=sys.stderr)
            return
        # Speeds relative to native only: not the commit rows (native's figure
        # there is an in-place write that publishes nothing), nor counts
        # (hold_opened) or metrics measured for snapfs alone.
        ms = [m for m in meta if not m.startswith("commit_") and m != "hold_opened"
              and any(ratio(m, t) or fails[(m, t)] for t in others)]
        fig, ax = plt.subplots(figsize=(12, 5))
        width = 0.8 / max(1, len(others))
        for i, t in enumerate(others):
            ys = []
            for m in ms:
                r = ratio(m, t) if meta[m][1] in ("higher", "lower") else None
                # plot "speed relative to native": invert the lower-is-better metrics
                if r and meta[m][1] == "lower":
                    r = 1 / r
                ys.append(r or 0)
            label = f"{t} ({a.base_label})" if t == BASE and a.base_label else t
            ax.bar([x + i * width for x in range(len(ms))], ys, width, label=label)
            for x, m in enumerate(ms):
                if fails[(m, t)]:
                    ax.text(x + i * width, 1.0, "failed", rotation=90, ha="center", va="top",
                            fontsize=7, color="red")
        ax.axhline(1.0, color="black", linewidth=0.8)
        ax.set_yscale("log")
        ax.set_xticks([x + width * (len(others) - 1) / 2 for x in range(len(ms))])
        ax.set_xticklabels(ms, rotation=30, ha="right")
        ax.set_ylabel("speed relative to native (log; >1 = faster)")
        ax.set_title(f"snapfs, bindfs and mergerfs vs native XFS, medians of {reps} interleaved repetitions"
                     + (f" (builds: {breps})" if breps and any(m.startswith("build_") for m in ms) else ""))
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
        fig.tight_layout()
        fig.savefig(a.png, dpi=110)


if __name__ == "__main__":
    main()
