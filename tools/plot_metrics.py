#!/usr/bin/python3
"""Plot a run's metrics.jsonl as a PNG of curves, one panel per metric.

    /usr/bin/python3 tools/plot_metrics.py RUN/metrics.jsonl [-o RUN/curves.png] [--keys loss,lr]

Every numeric key except step/epoch/elapsed_s/eta_s gets a panel (log scale where all values
are positive and span more than two decades), against the optimizer step."""
import argparse
import json
import math
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

SKIP = {"step", "epoch", "elapsed_s", "eta_s"}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("metrics")
    ap.add_argument("-o", "--out")
    ap.add_argument("--keys", help="comma-separated subset of keys to plot")
    a = ap.parse_args()
    rows = []
    with open(a.metrics) as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                sys.exit(f"{a.metrics}:{n}: not a JSON object ({e})")
    if not rows:
        sys.exit(f"{a.metrics}: no rows")
    keys = [k for k in rows[0] if k not in SKIP and isinstance(rows[0][k], (int, float))]
    if a.keys:
        want = a.keys.split(",")
        missing = [k for k in want if k not in keys]
        if missing:
            sys.exit(f"{a.metrics}: no key(s) {', '.join(missing)}; have {', '.join(keys)}")
        keys = want
    cols = min(3, len(keys))
    nrows = math.ceil(len(keys) / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(4.2 * cols, 3.0 * nrows), squeeze=False)
    steps = [r["step"] for r in rows]
    for ax, k in zip(axes.flat, keys):
        ys = [r.get(k, float("nan")) for r in rows]
        ax.plot(steps, ys, lw=1.2)
        pos = [y for y in ys if isinstance(y, (int, float)) and y > 0]
        if len(pos) == len(ys) and min(pos) > 0 and max(pos) / min(pos) > 100:
            ax.set_yscale("log")
        ax.set_title(k)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(keys):]:
        ax.axis("off")
    fig.suptitle(os.path.abspath(a.metrics), fontsize=8)
    fig.tight_layout()
    out = a.out or os.path.join(os.path.dirname(a.metrics) or ".", "curves.png")
    fig.savefig(out, dpi=100)
    print(out)


if __name__ == "__main__":
    main()
