"""The markdown report of benchmarks/evaluation.py, from its one-row-per-fit table."""

import numpy as np
from _common import geomean
from _datasets import DATASETS


def report(df, header, settings):
    """The whole results file as one string; ``settings`` holds evaluation.py's grid constants."""
    from skvae import SphericalClusterVAE

    BIG_BETA, SIGMA_RATIO = settings["big_beta"], settings["sigma_ratio"]
    CONVERGENCE_SETS, TARGETS = settings["convergence_sets"], settings["targets"]
    defaults = SphericalClusterVAE().get_params()
    DEFAULT_ANCHOR, DEFAULT_MARGIN = defaults["anchor"], defaults["margin"]
    default = next(f"SCVAE {k}" for k, v in TARGETS.items()
                   if v == dict(anchor=DEFAULT_ANCHOR, margin=DEFAULT_MARGIN))
    lines = [header, ""]
    failed = df[df.error != ""]
    lines.append(f"Fits: {len(df)}; failed: {len(failed)}.")
    for _, r in failed.iterrows():
        lines.append(f"- FAILED {r.dataset} seed {r.seed} {r.regime} {r.method}: {r.error}")
    lines += ["", f"The default reconstruction target is **{default[6:]}** "
              f"(`anchor={DEFAULT_ANCHOR!r}, margin={DEFAULT_MARGIN}`); rows marked (default).", ""]
    ok = df[df.error == ""]

    # --- defaults
    b1 = ok[ok.regime == "beta1"]
    lines += ["## Defaults (beta=1, learned decoder variance, n_components=2)", "",
              "Held-out reconstruction error, standardized units, mean of the seeds "
              "(lower is better):", ""]
    order = ["PCA", "StandardScaler+PCA", "VAE", "VAE free bits", default,
             "SCVAE paper map"] + [f"SCVAE {k}" for k in TARGETS if f"SCVAE {k}" != default]
    order = [m for m in order if m in set(b1.method)]
    names = [d for d in DATASETS if d in set(b1.dataset)]
    tab = b1.pivot_table(index="dataset", columns="method", values="heldout", aggfunc="mean")
    lines.append("| data | " + " | ".join(_label(m, default) for m in order) + " |")
    lines.append("|---" * (len(order) + 1) + "|")
    for d in names:
        lines.append(f"| {d} | " + " | ".join(f"{tab.loc[d, m]:.3g}" for m in order) + " |")
    lines.append("")
    # ratios per cell against the VAE
    cells = b1.pivot_table(index=["dataset", "seed"], columns="method", values="heldout")
    lines += ["Ratio of held-out error to `skvae.VAE`'s, per cell (data set x seed): "
              "geometric mean [worst cell]:", ""]
    for m in [x for x in order if x != "VAE"]:
        r = cells[m] / cells["VAE"]
        lines.append(f"- {_label(m, default)}: {geomean(r):.3f} [{r.max():.3f}]")
    lines.append("")
    for metric, title in [("trust", "Trustworthiness of the 2-D test embedding (5 neighbours)"),
                          ("knn", "5-NN accuracy of the labels in the 2-D embedding")]:
        t = b1.pivot_table(index="dataset", columns="method", values=metric, aggfunc="mean")
        cols = [m for m in ["PCA", "StandardScaler+PCA", "UMAP", "VAE", "VAE free bits",
                            default, "SCVAE paper map"] if m in t.columns]
        lines += [f"{title}, mean of the seeds (higher is better):", "",
                  "| data | " + " | ".join(_label(m, default) for m in cols) + " |",
                  "|---" * (len(cols) + 1) + "|"]
        for d in names:
            if d in t.index and np.isfinite(t.loc[d].astype(float)).any():
                lines.append(f"| {d} | " + " | ".join(f"{t.loc[d, m]:.3f}" for m in cols) + " |")
        avg = t[cols].mean()
        lines.append("| **mean** | " + " | ".join(f"**{avg[m]:.3f}**" for m in cols) + " |")
        lines.append("")
    sc = b1[b1.method.str.startswith("SCVAE")]
    lines += [f"SphericalClusterVAE at beta=1: {int(sc.certified.sum())} of {len(sc)} fits "
              f"certified, {int((sc.active == 0).sum())} collapsed; explained fraction "
              f"1 - R/T of the default: median {b1[b1.method == default].explained.median():.3f}.",
              ""]

    # --- collapse regimes
    for regime, title in [("beta50", f"beta={BIG_BETA:g}, learned decoder variance"),
                          ("sigma2x", f"fixed decoder variance {SIGMA_RATIO:g} x lambda_max")]:
        rg = ok[ok.regime == regime]
        if rg.empty:
            continue
        lines += [f"## Above the collapse threshold: {title}", "",
                  "| method | collapsed | certified | median over data sets of held-out "
                  "error / free bits' | held-out error, mean per data set |", "|---|---|---|---|---|"]
        fb = rg[rg.method == "VAE free bits"].groupby("dataset").heldout.mean()
        listed = ["VAE", "VAE free bits", default, "SCVAE paper map"]
        listed += [f"SCVAE {k}" for k in TARGETS if f"SCVAE {k}" != default]
        for m in [x for x in listed if x in set(rg.method)]:
            g = rg[rg.method == m]
            per = g.groupby("dataset").heldout.mean()
            ratio = float(np.median((per / fb).dropna()))
            lines.append(
                f"| {_label(m, default)} | {int((g.active == 0).sum())}/{len(g)} | "
                f"{int(g.certified.sum())}/{len(g)} | {ratio:.3f} | "
                + ", ".join(f"{d} {per[d]:.3g}" for d in names if d in per) + " |")
        lines.append("")

    # --- convergence
    cv = ok[ok.regime == "convergence"]
    if not cv.empty:
        lines += ["## Convergence on small data", "",
                  "Held-out error of the default fit against the same model trained for a "
                  "fixed number of epochs (tol=0), mean of the seeds; the learned-variance "
                  "objective keeps improving on the training rows by memorising them, so "
                  "the longest run is not the best held-out:", "",
                  "| data | defaults (epochs) | " + " | ".join(
                      f"{int(b)} epochs" for b in sorted(cv.max_iter.unique())) +
                  " | defaults / best budget |", "|---" * (3 + cv.max_iter.nunique()) + "|"]
        for d in [x for x in CONVERGENCE_SETS if x in set(cv.dataset)]:
            dflt = b1[(b1.dataset == d) & (b1.method == default)]
            per_budget = cv[cv.dataset == d].groupby("max_iter").heldout.mean()
            lines.append(
                f"| {d} | {dflt.heldout.mean():.3f} ({dflt.n_iter.mean():.0f}) | "
                + " | ".join(f"{v:.3f}" for v in per_budget) +
                f" | {dflt.heldout.mean() / per_budget.min():.3f} |")
        lines.append("")

    # --- n_clusters where the target is active
    nc = ok[ok.regime == "nclusters"]
    if not nc.empty:
        counts = sorted(nc.method.unique(), key=lambda m: int(m.split("=")[1]))
        lines += [f"## n_clusters at beta={BIG_BETA:g} (the constraint active)", "",
                  "Held-out error, mean of the seeds; the anchor is the better of the "
                  "codebook and PCA, so more clusters tighten the target once the "
                  "codebook beats PCA:", "",
                  "| data | " + " | ".join(counts) + " | certified |",
                  "|---" * (len(counts) + 2) + "|"]
        for d, g in nc.groupby("dataset"):
            per = g.groupby("method").heldout.mean()
            lines.append(f"| {d} | " + " | ".join(f"{per[m]:.3g}" for m in counts)
                         + f" | {int(g.certified.sum())}/{len(g)} |")
        lines.append("")

    # --- grid search
    gs = ok[ok.regime == "grid"]
    if not gs.empty:
        lines += ["## Model selection with the default score", "",
                  "GridSearchCV(cv=3) with no scorer over n_clusters {2, 8, 32} x r_min "
                  "{auto, 0.9 x smallest norm} x r_max {auto, 0.5 x largest norm}; "
                  "every cell then refitted on the training split and scored on the "
                  "held-out rows:", "",
                  "| data | seed | picked | its held-out error | best in grid | picked / best "
                  "| Spearman(CV score, held-out error) |", "|---|---|---|---|---|---|---|"]
        from scipy.stats import spearmanr

        for (d, s), g in gs.groupby(["dataset", "seed"]):
            p = g[g.picked].iloc[0]
            rho = spearmanr(g.cv_score, g.heldout).statistic
            lines.append(f"| {d} | {s} | `{p.method}` | {p.heldout:.3f} | "
                         f"{g.heldout.min():.3f} | {p.heldout / g.heldout.min():.3f} | "
                         f"{rho:+.2f} |")
        lines.append("")
    return "\n".join(lines) + "\n"


def _label(m, default):
    return f"{m} (default)" if m == default else m
