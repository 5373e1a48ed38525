"""Whole fits with the fused shell loss against the same fits with the custom autograd Function it replaced.

SphericalClusterVAE at the speed benchmark's settings (``speed.py``: 64-D
blobs, 25 epochs on 20,000 rows and 10 on 200,000, early stopping off) runs
with its loss as it is and with the previous loss (``_ablations.previous_shell_loss``),
alternated with a VAE in rotating order within one process, so that the
machine's drift enters every contender alike. Reports medians of the
per-round ratios of whole fits and of the training phase per epoch.

    python benchmarks/shell_loss.py [--smoke] [--output DIR]
"""

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _ablations import previous_shell_loss  # noqa: E402
from _cli import generated, parser, write_report  # noqa: E402
from _common import one_torch_thread  # noqa: E402
from _machine import describe, git_commit  # noqa: E402
from speed import alternated, fit_scvae, fit_vae, paired_ratios, synthetic  # noqa: E402


def _fit_previous(X, epochs):
    with previous_shell_loss():
        return fit_scvae(X, epochs)


CONTENDERS = {"fused loss (skvae)": fit_scvae, "previous custom Function": _fit_previous,
              "VAE": fit_vae}


def rounds_of(X, epochs, rounds):
    """Whole-fit seconds and training seconds per epoch of each contender, per round."""
    fit_vae(X, 1)  # warm-up
    return alternated(CONTENDERS, X, epochs, rounds)


def _ratio(a, b):
    return statistics.median(paired_ratios(a, b))


def main(argv=None):
    args = parser(__doc__).parse_args(argv)
    start, commit = time.perf_counter(), git_commit()
    sizes = [(2_000, 2, 2)] if args.smoke else [(20_000, 25, 7), (200_000, 10, 5)]
    with one_torch_thread():
        results = {n: rounds_of(synthetic(n), epochs, rounds) for n, epochs, rounds in sizes}
    lines = [
        "# The fused shell loss against the custom Function it replaced", "",
        generated("shell_loss.py", args.smoke, "", time.perf_counter() - start)
        + ", one torch thread.", "", *describe(commit), "",
        "SphericalClusterVAE with its loss and with the previous custom autograd Function, "
        "alternated with a VAE in rotating order (speed.py's blobs and settings, early stopping "
        "off); medians of per-round ratios. Per epoch: the training phase of `fit_times_`.", "",
        "| rows | epochs | rounds | ratio | whole fit | per epoch |", "|---|---|---|---|---|---|",
    ]
    for (n, epochs, rounds), (whole, per_epoch) in zip(sizes, results.values()):
        for a, b in [("fused loss (skvae)", "VAE"), ("previous custom Function", "VAE"),
                     ("fused loss (skvae)", "previous custom Function")]:
            lines.append(f"| {n:,} | {epochs} | {rounds} | {a} / {b} | "
                         f"{_ratio(whole[a], whole[b]):.3f} | "
                         f"{_ratio(per_epoch[a], per_epoch[b]):.3f} |")
    lines += ["", "Whole-fit seconds, every round:", ""]
    for (n, _, _), (whole, _) in zip(sizes, results.values()):
        lines += [f"- {n:,} rows, {name}: " + ", ".join(f"{t:.2f}" for t in ts)
                  for name, ts in whole.items()]
    path = write_report(args.output, "shell_loss", args.smoke, "\n".join(lines) + "\n")
    print(path.read_text())


if __name__ == "__main__":
    main()
