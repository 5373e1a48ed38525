"""Collapse benchmark: SphericalClusterVAE against the standard remedies across the collapse threshold.

For every data set, method, setting and seed the script fits one model with
``n_components=2`` on a fixed 70/30 split and records: active units (collapse
= 0 active units), KL, mutual information, whether the certificate holds, and
the held-out reconstruction error in the data's own units (mean over test rows
of the squared error summed over features), next to PCA's at the same
``n_components``.

Settings swept:

* fixed decoder variance ``sigma^2 = ratio * lambda_max``, where
  ``lambda_max`` is the top eigenvalue of the covariance of the
  representation the model is trained on (standardized data for every
  model but the one with the paper's radial map, whose lambda_max is the
  shell's). For the low-rank set the standardized value is known
  in closed form and is used as is. A linear VAE collapses every latent
  direction once ``sigma^2 > lambda_max`` (Lucas et al. 2019).
* learned decoder variance (the default) with ``beta`` from 0.1 to 100.

Usage::

    python benchmarks/collapse.py            # full grid, results in benchmarks/results/
    python benchmarks/collapse.py --quick    # reduced grid, under 10 minutes on 2 cores
    python benchmarks/collapse.py --quick --smoke --output /tmp/x   # seconds; for the tests

Writes ``collapse.md`` (tables), ``collapse.csv`` (one row per fit) and
``collapse.png`` (collapse rate against sigma^2/lambda_max and beta, one line
per method) into ``--output``.
"""

import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _cli import parser as cli_parser  # noqa: E402

from _collapse_cases import (
    DATASETS,
    FREE_BITS,
    METHODS,
    N_COMPONENTS,
    SHELL_METHODS,
    dataset_info,
    run_one,
)

#: Fixed decoder variance as a multiple of lambda_max.
RATIOS = {"full": [0.25, 0.5, 1, 2, 4, 8, 16], "quick": [0.5, 2, 8], "smoke": [4]}
#: beta values for the learned-variance default.
BETAS = {"full": [0.1, 1, 10, 100], "quick": [1, 100], "smoke": [10]}
SEEDS = {"full": 10, "quick": 3, "smoke": 1}
MAX_ITER = {"full": 100, "quick": 100, "smoke": 3}


def cells(mode, infos):
    """Every (data set, method, setting) of the grid, with its decoder variance."""
    out = []
    for name in DATASETS:
        info = infos[name]
        for method in METHODS:
            lam = info["lambda_shell"] if method in SHELL_METHODS else info["lambda_standardized"]
            for ratio in RATIOS[mode]:
                out.append(dict(dataset=name, method=method, sweep="sigma2", ratio=ratio,
                                beta=1.0, decoder_variance=ratio * lam))
            for beta in BETAS[mode]:
                out.append(dict(dataset=name, method=method, sweep="beta", ratio=np.nan,
                                beta=float(beta), decoder_variance="learned"))
    for i, cell in enumerate(out):
        cell["cell"] = i
    return out


# ----------------------------------------------------------------- reporting
def _rate(s):
    return f"{100 * s.mean():.0f}%"


def _mean_sd(s, spec):
    s = s.dropna()
    if s.empty:
        return "-"
    return f"{s.mean():{spec}} ± {s.std(ddof=1):{spec}}" if len(s) > 1 else f"{s.mean():{spec}}"


def _md_table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return lines


def _cell_rows(df, key, info):
    rows = []
    for (value, method), g in df.groupby([key, "method"], sort=False):
        ok = g[g.error == ""]
        rows.append([
            f"{value:g}", method, f"{len(ok)}/{len(g)}",
            _rate(ok.collapsed.astype(bool)) if len(ok) else "-",
            _mean_sd(ok.active_units, ".1f"),
            _mean_sd(ok.kl, ".2f"),
            _mean_sd(ok.mutual_information, ".2f"),
            _rate(ok.certified.astype(bool)) if len(ok) else "-",
            _mean_sd(ok.mse, ".4g"),
            f"{info['pca_mse']:.4g}",
            _mean_sd(ok.mse_standardized, ".3g"),
            f"{info['pca_std_mse_standardized']:.3g}",
        ])
    return rows


CELL_HEADER = ["{key}", "method", "fits ok", "collapse rate", "active units", "KL (nats)",
               "MI (nats)", "certified", "held-out MSE", "PCA MSE",
               "std. MSE", "PCA std. MSE"]


def report(df, infos, mode, args, wall_seconds, machine):
    """The markdown results file as a list of lines."""
    from skvae import SphericalClusterVAE

    defaults = SphericalClusterVAE().get_params()
    DEFAULT_ANCHOR, DEFAULT_MARGIN = defaults["anchor"], defaults["margin"]

    n_seeds = SEEDS[mode] if args.seeds is None else args.seeds
    cmd = "python benchmarks/collapse.py" + (" --quick" if args.quick else "") + (
        " --smoke" if args.smoke else "")
    out = [
        "# Collapse benchmark",
        "",
        f"Generated by `{cmd}` (`{mode}` grid) on "
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC in {wall_seconds / 60:.1f} min "
        f"with {args.n_jobs} worker process(es). Machine:",
        "",
        *machine,
        "",
        f"Every fit: `n_components={N_COMPONENTS}`, `max_iter={MAX_ITER[mode]}`, "
        "other parameters at their defaults (hidden layers (128, 64), Adam 1e-3, "
        f"batch size auto; `n_clusters=8`, `margin={DEFAULT_MARGIN}`, "
        f"`anchor={DEFAULT_ANCHOR!r}` for SphericalClusterVAE and both ablations "
        "(*shell without constraint*; *constraint without shell*, the same band with "
        "`r_min=0`, `r_max=inf` and no output layer); "
        f"`annealing_epochs=20` for both annealing schedules; `free_bits={FREE_BITS}` nats "
        f"per dimension). {n_seeds} seeds (`random_state=0..{n_seeds - 1}`) per cell; "
        "the 70/30 split is fixed. A fit *collapses* when it has 0 active units "
        "(posterior-mean variance over x below 0.01 in every latent dimension). "
        "*certified*: R̂ + 3 SE < δ_collapse on the training rows. Held-out MSE: "
        "mean over test rows of the squared error summed over features, in the "
        "data's own units (the same for PCA). *std. MSE*: the same with every "
        "feature divided by its training standard deviation, against PCA fitted on "
        "standardized features (the scale-free comparison: every model here "
        "standardizes first, while raw PCA spends its components on the "
        "largest-variance features). A fit that raised (a diverged loss) "
        "is counted in *fits ok* and left out of the other columns.",
        "",
        "σ² is placed relative to the top eigenvalue λ_max of the covariance of the "
        "representation each model is trained on: the standardized data for the "
        "default SphericalClusterVAE (which models the standardized data), the "
        "conventional VAEs and both ablations; the shell for *SphericalClusterVAE "
        "(paper map)*.",
        "",
        "## Data sets",
        "",
    ]
    rows = []
    for name in DATASETS:
        i = infos[name]
        lam = f"{i['lambda_standardized']:.4g}"
        if name == "lowrank":
            lam += f" (closed form; sample {i['lambda_standardized_empirical']:.4g})"
        rows.append([name, i["n_train"], i["n_test"], i["n_features"], lam,
                     f"{i['lambda_shell']:.4g}", f"{i['pca_mse']:.4g}",
                     f"{i['pca_std_mse']:.4g}", f"{i['pca_std_mse_standardized']:.3g}"])
    out += _md_table(["data set", "train rows", "test rows", "features",
                      "λ_max standardized", "λ_max shell", "PCA MSE",
                      "PCA on standardized: MSE", "std. MSE"], rows)

    above = df[(df.sweep == "sigma2") & (df.ratio > 1)]
    out += ["", "## Above the threshold (σ² > λ_max), all data sets and seeds pooled", ""]
    rows = []
    for method in METHODS:
        g = above[above.method == method]
        ok = g[g.error == ""]
        per_set = " / ".join(
            _rate(ok[ok.dataset == d].collapsed.astype(bool)) if len(ok[ok.dataset == d]) else "-"
            for d in DATASETS
        )
        rows.append([method, f"{len(ok)}/{len(g)}",
                     _rate(ok.collapsed.astype(bool)) if len(ok) else "-",
                     _rate(ok.certified.astype(bool)) if len(ok) else "-",
                     _mean_sd(ok.active_units, ".2f"), per_set])
    out += _md_table(["method", "fits ok", "collapse rate", "certified", "active units",
                      "collapse rate per data set (" + " / ".join(DATASETS) + ")"], rows)

    out += ["", "## Where SphericalClusterVAE falls short", ""]
    out += shortfalls(df)

    for name in DATASETS:
        pca = infos[name]
        sub = df[df.dataset == name]
        out += ["", f"## {name}: fixed decoder variance, σ²/λ_max swept", ""]
        header = [h.format(key="σ²/λ_max") for h in CELL_HEADER]
        out += _md_table(header, _cell_rows(sub[sub.sweep == "sigma2"], "ratio", pca))
        out += ["", f"## {name}: learned decoder variance, β swept", ""]
        header = [h.format(key="β") for h in CELL_HEADER]
        out += _md_table(header, _cell_rows(sub[sub.sweep == "beta"], "beta", pca))
    errors = df[df.error != ""]
    if len(errors):
        out += ["", "## Failed fits", ""]
        out += _md_table(["data set", "method", "setting", "seed", "error"], [
            [r.dataset, r.method, r.setting, r.seed, r.error] for r in errors.itertuples()])
    out += ["", "![collapse rate against the decoder variance and beta](collapse.png)", ""]
    return out


def shortfalls(df):
    """Cells where SphericalClusterVAE collapses, is not certified, or loses to the VAE by > 25%."""
    lines = []
    ours = df[df.method == "SphericalClusterVAE"]
    bad = ours[(ours.error != "") | ~ours.certified.fillna(False).astype(bool)
               | ours.collapsed.fillna(True).astype(bool)]
    if len(bad):
        lines.append("Fits that failed, collapsed or were not certified:")
        lines.append("")
        for r in bad.itertuples():
            what = r.error or ("collapsed" if r.collapsed else "not certified")
            lines.append(f"- {r.dataset}, {r.setting}, seed {r.seed}: {what}")
    else:
        lines.append(f"Every one of the {len(ours)} SphericalClusterVAE fits was certified "
                     "and kept at least one active unit.")
    grouped = df[df.error == ""].groupby(["dataset", "setting", "method"], sort=False)
    mean = grouped.mse.mean().unstack()
    mean_std = grouped.mse_standardized.mean().unstack()
    worse = mean[mean["SphericalClusterVAE"] > 1.25 * mean["VAE"]]
    lines.append("")
    if len(worse):
        lines.append("Cells where its mean held-out MSE exceeds the conventional VAE's by "
                     "more than 25% (ratios in original and in standardized units):")
        lines.append("")
        lines += _md_table(
            ["data set", "setting", "SphericalClusterVAE MSE", "VAE MSE", "ratio",
             "ratio in std. units", "shell without constraint / VAE"],
            [[d, setting, f"{row['SphericalClusterVAE']:.4g}", f"{row['VAE']:.4g}",
              f"{row['SphericalClusterVAE'] / row['VAE']:.2f}",
              f"{mean_std.loc[(d, setting), 'SphericalClusterVAE'] / mean_std.loc[(d, setting), 'VAE']:.2f}",
              f"{row['shell without constraint'] / row['VAE']:.2f}"]
             for (d, setting), row in worse.iterrows()])
    else:
        lines.append("In no cell is its mean held-out MSE more than 25% above the "
                     "conventional VAE's.")
    return lines


def plot(df, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, len(DATASETS), figsize=(4 * len(DATASETS), 7),
                             sharey=True, squeeze=False)
    styles = dict(zip(METHODS, ["o-", "s--", "^--", "v--", "D-", "P-", "x:", "+:"]))
    for j, name in enumerate(DATASETS):
        for i, (sweep, key, label) in enumerate(
                [("sigma2", "ratio", "σ² / λ_max (fixed decoder variance)"),
                 ("beta", "beta", "β (learned decoder variance)")]):
            ax = axes[i, j]
            sub = df[(df.dataset == name) & (df.sweep == sweep) & (df.error == "")]
            for method in METHODS:
                m = sub[sub.method == method]
                if m.empty:
                    continue
                rate = m.groupby(key).collapsed.apply(lambda s: s.astype(bool).mean())
                ax.plot(rate.index, 100 * rate.values, styles[method], label=method,
                        lw=2.2 if method == "SphericalClusterVAE" else 1.2, alpha=0.85)
            ax.set_xscale("log", base=2 if sweep == "sigma2" else 10)
            if sweep == "sigma2":
                ax.axvline(1.0, color="grey", lw=0.8)
            ax.set_xlabel(label)
            ax.set_title(name if i == 0 else "")
            ax.set_ylim(-5, 105)
        axes[0, j].set_ylabel("collapse rate (%)" if j == 0 else "")
    axes[1, 0].set_ylabel("collapse rate (%)")
    axes[0, 0].legend(fontsize=7, loc="center left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None):
    parser = cli_parser(__doc__, "tiny data and 3 epochs: checks the code, not the method")
    parser.add_argument("--quick", action="store_true", help="reduced grid (3 seeds)")
    parser.add_argument("--n-jobs", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--seeds", type=int, default=None, help="override seeds per cell")
    args = parser.parse_args(argv)
    mode = "smoke" if args.smoke else "quick" if args.quick else "full"
    n_seeds = SEEDS[mode] if args.seeds is None else args.seeds

    import pandas as pd
    from _machine import describe, git_commit
    from joblib import Parallel, delayed

    # Worker processes import the ablations from this folder.
    os.environ["PYTHONPATH"] = os.pathsep.join(
        [str(HERE), *filter(None, [os.environ.get("PYTHONPATH")])])
    smoke = mode == "smoke"
    commit = git_commit()  # the code the fits ran on, not the code at report time
    infos = {name: dataset_info(name, smoke) for name in DATASETS}
    jobs = [(cell, seed) for cell in cells(mode, infos) for seed in range(n_seeds)]
    print(f"{mode} grid: {len(jobs)} fits on {args.n_jobs} worker(s)", file=sys.stderr)
    start = time.perf_counter()
    results = []
    for k, row in enumerate(Parallel(n_jobs=args.n_jobs, return_as="generator_unordered")(
            delayed(run_one)(cell, seed, MAX_ITER[mode], smoke) for cell, seed in jobs)):
        results.append(row)
        if (k + 1) % 50 == 0 or k + 1 == len(jobs):
            elapsed = time.perf_counter() - start
            print(f"  {k + 1}/{len(jobs)} fits, {elapsed / 60:.1f} min", file=sys.stderr)
    wall = time.perf_counter() - start
    results.sort(key=lambda r: (r["cell"], r["seed"]))
    df = pd.DataFrame(results)
    df["setting"] = [f"σ²/λ={r:g}" if sw == "sigma2" else f"β={b:g}"
                     for sw, r, b in zip(df.sweep, df.ratio, df.beta)]
    # Columns only a successful fit writes (absent if every fit failed).
    for col in ["active_units", "kl", "mutual_information", "mse", "mse_standardized",
                "n_iter", "collapsed", "certified"]:
        if col not in df:
            df[col] = np.nan
    args.output.mkdir(parents=True, exist_ok=True)
    df.to_csv(args.output / "collapse.csv", index=False)
    lines = report(df, infos, mode, args, wall, describe(commit))
    (args.output / "collapse.md").write_text("\n".join(lines))
    plot(df, args.output / "collapse.png")
    print(f"wrote {args.output / 'collapse.md'} ({wall / 60:.1f} min)", file=sys.stderr)


if __name__ == "__main__":
    main()
