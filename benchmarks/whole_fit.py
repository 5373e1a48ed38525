"""Whole-fit time of SphericalClusterVAE over VAE, from many alternated pairs, with a confidence interval.

The performance issue's ratio (``speed.py``'s blobs and settings: 64
features, 25 epochs on 20,000 rows and 10 on 200,000, early stopping off,
one torch thread) measured with enough pairs to tell a miss from this
machine's noise: the two fits of a round run back to back, their order
alternating between rounds. Reports the median of the per-round ratios with
a distribution-free 90% interval for it (order statistics of the ratios),
the same for the training phase per epoch, and the median seconds of each
part of the fits (``fit_times_``), which says where the difference lies.

    python benchmarks/whole_fit.py [--smoke] [--output DIR]
"""

import statistics
import sys
import time
from pathlib import Path

from scipy.stats import binom

sys.path.insert(0, str(Path(__file__).parent))
from _cli import generated, parser, write_report  # noqa: E402
from _common import one_torch_thread  # noqa: E402
from _machine import describe, git_commit  # noqa: E402
from speed import (  # noqa: E402
    PARTS, TARGET, alternated, fit_scvae, fit_vae, paired_ratios, synthetic,
)

CONTENDERS = {"SphericalClusterVAE": fit_scvae, "VAE": fit_vae}
#: (rows, epochs, rounds): the issue's two sizes; each round is one pair of fits.
FULL = [(20_000, 25, 24), (200_000, 10, 12)]
SMOKE = [(2_000, 2, 4)]
LEVEL = 0.90


def median_interval(values, level=LEVEL):
    """``(lo, hi)``: a distribution-free interval for the median of ``values``' distribution.

    The order statistics ``x_(j) <= x_(n+1-j)`` (1-based) with the largest
    ``j`` such that ``P(Binomial(n, 1/2) <= j - 1) <= (1 - level) / 2``;
    they cover the median with probability at least ``level`` for any
    continuous distribution of independent values. None when ``n`` is too
    small for ``level`` (``2 * 0.5 ** n > 1 - level``).
    """
    x = sorted(values)
    n = len(x)
    j = 0
    while j < n and binom.cdf(j, n, 0.5) <= (1 - level) / 2:
        j += 1
    if j == 0:
        return None
    return x[j - 1], x[n - j]


def _interval_text(interval):
    return "–" if interval is None else f"{interval[0]:.3f}–{interval[1]:.3f}"


def _verdict(interval, target):
    if interval is None:
        return "too few pairs"
    lo, hi = interval
    if hi <= target:
        return f"meets ≤ {target:.2f}"
    if lo > target:
        return f"**misses** ≤ {target:.2f}"
    return f"undecided: the interval contains {target:.2f}"


def _spread(seconds):
    return max(seconds) / min(seconds) - 1


def measure(sizes):
    """``{rows: (epochs, rounds, times, per_epoch, phases)}`` of the alternated pairs."""
    out = {}
    with one_torch_thread():
        for n, epochs, rounds in sizes:
            X = synthetic(n)
            fit_vae(X, 1)  # warm-up
            phases = {}
            times, per_epoch = alternated(CONTENDERS, X, epochs, rounds, phases)
            out[n] = (epochs, rounds, times, per_epoch, phases)
    return out


def _phase_medians(fits, totals):
    """Median seconds of each part of PARTS and of the rest, over a contender's fits."""
    med = {label: statistics.median(f.get(key, 0.0) for f in fits) for key, label in PARTS.items()}
    med["rest"] = statistics.median(t - sum(f.get(k, 0.0) for k in PARTS)
                                    for f, t in zip(fits, totals))
    med["whole fit"] = statistics.median(totals)
    return med


def report(results, smoke, wall, commit):
    a, b = CONTENDERS
    lines = [
        "# Whole-fit time: SphericalClusterVAE over VAE, with a confidence interval", "",
        generated("whole_fit.py", smoke, "", wall) + ", one torch thread.", "",
        *describe(commit), "",
        "speed.py's blobs (64 features) and settings: `n_components=2`, hidden (128, 64), the "
        "default batch and step, early stopping off so both run the same epochs. Each round "
        "fits the two back to back, the order alternating between rounds. Ratios are medians "
        f"of the per-round ratios; the interval is a distribution-free {LEVEL:.0%} interval "
        "for that median (order statistics of the ratios). Per epoch: the training phase of "
        "`fit_times_` over the epochs.", "",
        "| rows | epochs | pairs | whole fit: median ratio | interval | verdict | "
        "per epoch: median ratio | interval |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for n, (epochs, rounds, times, per_epoch, _) in results.items():
        whole = paired_ratios(times[a], times[b])
        epoch = paired_ratios(per_epoch[a], per_epoch[b])
        iw, ie = median_interval(whole), median_interval(epoch)
        lines.append(f"| {n:,} | {epochs} | {rounds} | {statistics.median(whole):.3f} | "
                     f"{_interval_text(iw)} | {_verdict(iw, TARGET)} | "
                     f"{statistics.median(epoch):.3f} | {_interval_text(ie)} |")
    lines += ["", "## Where the difference lies", "",
              "Median seconds of each part over the rounds (`fit_times_`; rest: validation split, "
              "network set-up, float64 copy).", ""]
    for n, (epochs, rounds, times, _, phases) in results.items():
        ma = _phase_medians(phases[a], times[a])
        mb = _phase_medians(phases[b], times[b])
        lines += [f"**{n:,} rows, {epochs} epochs**", "",
                  f"| part | {a} (s) | {b} (s) | difference (s) | share of {b}'s whole fit |",
                  "|---|---|---|---|---|"]
        for part in ma:
            diff = ma[part] - mb[part]
            lines.append(f"| {part} | {ma[part]:.3f} | {mb[part]:.3f} | {diff:+.3f} | "
                         f"{diff / mb['whole fit']:+.1%} |")
        lines.append("")
    lines += ["## Every round", "",
              "Machine noise: the same fit's time varied by "
              + ", ".join(f"{_spread(ts):.0%} ({name}, {n:,} rows)"
                          for n, (_, _, times, _, _) in results.items()
                          for name, ts in times.items())
              + " (max/min − 1).", ""]
    for n, (_, _, times, _, _) in results.items():
        lines += [f"- {n:,} rows, {name} (s): " + ", ".join(f"{t:.2f}" for t in ts)
                  for name, ts in times.items()]
        lines.append(f"- {n:,} rows, ratio: "
                     + ", ".join(f"{r:.3f}" for r in paired_ratios(times[a], times[b])))
    return "\n".join(lines) + "\n"


def main(argv=None):
    args = parser(__doc__).parse_args(argv)
    start, commit = time.perf_counter(), git_commit()
    results = measure(SMOKE if args.smoke else FULL)
    text = report(results, args.smoke, time.perf_counter() - start, commit)
    path = write_report(args.output, "whole_fit", args.smoke, text)
    print(path.read_text())


if __name__ == "__main__":
    main()
