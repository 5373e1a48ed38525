"""Evaluation at the n_components users pick: k = 2, 5, 10, 20 against PCA, pPCA, the VAEs and UMAP.

For each data set of ``_datasets.py`` and each k below its number of
features, 3 seeds (each seed draws its own 70/30 split and seeds the model),
default settings:

* **held-out reconstruction**: mean over test rows of the squared error
  summed over features, in the training split's standardized units, for PCA,
  StandardScaler+PCA, probabilistic PCA's posterior mean on standardized rows
  (closed form: PCA shrunk by ``1 - sigma^2 / lambda_i`` per component),
  ``skvae.VAE``, ``VAE(free_bits=0.5)`` and SphericalClusterVAE;
* **held-out score** (nats per row of the original data) beside PCA's exact
  log-likelihood, the better of PCA on the raw rows and on the standardized
  rows with the Jacobian ``-sum log scale`` included;
* **trustworthiness** of the k-dimensional embedding of the test rows
  (5 neighbours; UMAP too);
* **downstream accuracy** of a LogisticRegression fitted on the training
  rows' embedding, beside the standardized raw features;
* **fit time**, and for the VAEs certification, active units and epochs;
* the conventional VAE (``VAE(linear_path=False)``, plain MLPs);
* ablations of SphericalClusterVAE's defaults: without the linear path
  (``linear_path=False``), the held-out stopping without the refit on every
  row (``early_stopping=True``) and no held-out stopping at all
  (``early_stopping=False``).

Usage::

    python benchmarks/components.py                  # everything, ~40 min on 2 cores
    python benchmarks/components.py --smoke --output /tmp/x   # seconds; for the tests

Writes ``components.md`` and ``components.csv`` (one row per fit) into ``--output``.
"""

import sys
import time
import warnings
from datetime import datetime, timezone
from multiprocessing import get_context
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _cli import parser as cli_parser, write_report  # noqa: E402
from _common import heldout_error  # noqa: E402
from _datasets import DATASETS, FRESH, load  # noqa: E402
from _machine import describe, git_commit, has_umap  # noqa: E402

COMPONENTS = (2, 5, 10, 20)
FREE_BITS = 0.5
#: Method -> (kind, estimator parameters).
METHODS = {
    "PCA": ("pca", {}),
    "StandardScaler+PCA": ("sspca", {}),
    "pPCA posterior mean": ("ppca", {}),
    "UMAP": ("umap", {}),
    "VAE": ("vae", {}),
    "VAE free bits": ("vae", dict(free_bits=FREE_BITS)),
    "VAE no linear path": ("vae", dict(linear_path=False)),
    "SCVAE": ("scvae", {}),
    "SCVAE no linear path": ("scvae", dict(linear_path=False)),
    "SCVAE early_stopping=True": ("scvae", dict(early_stopping=True)),
    "SCVAE early_stopping=False": ("scvae", dict(early_stopping=False)),
}


def _split(name, seed):
    from sklearn.model_selection import train_test_split

    X, y = load(name)
    tr, te = train_test_split(np.arange(X.shape[0]), test_size=0.3, random_state=seed)
    return X[tr], X[te], (None if y is None else y[tr]), (None if y is None else y[te])


class PPCAPosteriorMean:
    """Probabilistic PCA of the standardized rows; transform is the posterior mean.

    The closed form (Tipping & Bishop 1999) from sklearn's PCA: loadings
    ``V_k (L_k - s2)^(1/2)``, posterior mean ``L_k^-1 (L_k - s2)^(1/2) V_k^T
    (x - mean)``, decoded ``V_k (1 - s2 / L_k) V_k^T (x - mean) + mean``.
    """

    def __init__(self, n_components):
        self.n_components = n_components

    def fit(self, X):
        from sklearn.decomposition import PCA
        from sklearn.preprocessing import StandardScaler

        self.scaler_ = StandardScaler().fit(X)
        self.pca_ = PCA(self.n_components).fit(self.scaler_.transform(X))
        lam, s2 = self.pca_.explained_variance_, self.pca_.noise_variance_
        self.gain_ = np.sqrt(np.maximum(lam - s2, 0.0))
        self.encode_ = (self.gain_ / lam)[:, None] * self.pca_.components_
        return self

    def transform(self, X):
        return (self.scaler_.transform(X) - self.pca_.mean_) @ self.encode_.T

    def inverse_transform(self, Z):
        Y = Z @ (self.gain_[:, None] * self.pca_.components_) + self.pca_.mean_
        return self.scaler_.inverse_transform(Y)


def pca_log_likelihood(X_tr, X_te, k):
    """PCA's held-out log-likelihood per row of the original data: max(raw, standardized)."""
    from sklearn.decomposition import PCA
    from sklearn.preprocessing import StandardScaler

    raw = PCA(k).fit(X_tr).score(X_te)
    scaler = StandardScaler().fit(X_tr)
    std = PCA(k).fit(scaler.transform(X_tr)).score(scaler.transform(X_te))
    return float(raw), float(std - np.log(scaler.scale_).sum())


def build(kind, params, k, seed, max_iter=None):
    from sklearn.decomposition import PCA
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from skvae import VAE, SphericalClusterVAE

    if kind == "pca":
        return PCA(k)
    if kind == "sspca":
        return make_pipeline(StandardScaler(), PCA(k))
    if kind == "ppca":
        return PPCAPosteriorMean(k)
    if kind == "umap":
        import umap

        return umap.UMAP(n_components=k, random_state=seed, n_jobs=1)
    params = dict(params, n_components=k, random_state=seed)
    if max_iter is not None:
        params["max_iter"] = max_iter
    return (VAE if kind == "vae" else SphericalClusterVAE)(**params)


def _init_worker():
    import torch

    torch.set_num_threads(1)
    warnings.simplefilter("ignore")


def run_fit(job):
    """One fit and its measurements; never raises (the error is recorded)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.manifold import trustworthiness
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    name, seed, k, method = job["dataset"], job["seed"], job["k"], job["method"]
    kind, params = METHODS[method]
    X_tr, X_te, y_tr, y_te = _split(name, seed)
    scaler = StandardScaler().fit(X_tr)
    row = dict(dataset=name, seed=seed, k=k, method=method, n_features=X_tr.shape[1],
               error="")
    try:
        model = build(kind, params, k, seed, job.get("max_iter"))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            t = time.perf_counter()
            model.fit(X_tr)
            row["fit_time"] = time.perf_counter() - t
        row["convergence_warning"] = any(
            w.category.__name__ == "ConvergenceWarning" for w in caught)
        Z_tr, Z_te = model.transform(X_tr), model.transform(X_te)
        if kind != "umap":
            row["heldout"] = heldout_error(model, X_te, scaler.scale_)
        row["trust"] = float(trustworthiness(scaler.transform(X_te), Z_te, n_neighbors=5))
        if y_tr is not None:
            clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
            row["accuracy"] = float(clf.fit(Z_tr, y_tr).score(Z_te, y_te))
        if kind == "pca":
            row["pca_ll_raw"], row["pca_ll_std"] = pca_log_likelihood(X_tr, X_te, k)
            if y_tr is not None:
                clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
                row["raw_accuracy"] = float(clf.fit(X_tr, y_tr).score(X_te, y_te))
        if kind in ("vae", "scvae"):
            row.update(
                score=float(model.score(X_te)), train_score=float(model.score(X_tr)),
                certified=bool(model.collapse_certified_), active=int(model.active_units_),
                n_iter=int(model.n_iter_), explained=float(model.explained_fraction_),
                lam=getattr(model, "lagrange_multiplier_", np.nan),
            )
    except Exception as exc:  # recorded, so one failure does not end the run
        row["error"] = f"{type(exc).__name__}: {exc}"[:300]
    return row


def jobs(datasets, seeds, components, methods, smoke):
    out = []
    for name in datasets:
        n_features = load(name)[0].shape[1]
        for k in components:
            if k >= n_features:
                continue
            for seed in range(seeds):
                for method in methods:
                    if METHODS[method][0] == "umap" and (smoke or not has_umap()):
                        continue
                    out.append(dict(dataset=name, seed=seed, k=k, method=method,
                                    max_iter=3 if smoke else None))
    # The widest data first keeps both workers busy to the end.
    return sorted(out, key=lambda j: -load(j["dataset"])[0].shape[1] * j["k"])


def report(df, header):
    """Markdown tables of the run; see the module docstring for the measures."""
    import pandas as pd

    ok = df[df.error.fillna("") == ""]
    lines = [header, ""]
    errors = df[df.error.fillna("") != ""]
    if len(errors):
        lines += [f"**{len(errors)} fits failed:**", ""]
        lines += [f"- {r.dataset} k={r.k} seed {r.seed} {r.method}: {r.error}"
                  for r in errors.itertuples()]
        lines.append("")
    mean = ok.groupby(["dataset", "k", "method"]).mean(numeric_only=True).reset_index()

    def table(value, methods, fmt="{:.3g}"):
        piv = mean.pivot_table(index=["dataset", "k"], columns="method", values=value)
        piv = piv[[m for m in methods if m in piv.columns]]
        out = ["| data | k | " + " | ".join(piv.columns) + " |",
               "|---|---|" + "---|" * len(piv.columns)]
        for (d, k), r in piv.iterrows():
            out.append(f"| {d} | {k} | " + " | ".join(
                "" if pd.isna(v) else fmt.format(v) for v in r) + " |")
        return out

    neural = [m for m in METHODS if METHODS[m][0] in ("vae", "scvae")]
    lines += ["## Held-out reconstruction error (standardized units, mean of seeds)", ""]
    lines += table("heldout", [m for m in METHODS if m != "UMAP"])
    # The criteria, per cell and as geometric means over data sets.
    piv = mean.pivot_table(index=["dataset", "k"], columns="method", values="heldout")
    nf = mean.groupby(["dataset", "k"]).n_features.first()
    lines += ["", "## Against the linear baselines", "",
              "Ratio of held-out errors, geometric mean over data sets; `pPCA+5%` counts "
              "the cells where the method is within pPCA's posterior-mean error + 5% "
              "(or + 0.005 x n_features where larger).", "",
              "`/ conventional VAE` divides by `VAE no linear path`, the plain-MLP VAE a "
              "hand-written one would be.", "",
              "| method | k | cells | / min(PCA, SS+PCA) | / VAE | / conventional VAE "
              "| within pPCA+5% | worst / pPCA |",
              "|---|---|---|---|---|---|---|---|"]
    best_linear = piv[["PCA", "StandardScaler+PCA"]].min(axis=1)
    allowed = np.maximum(1.05 * piv["pPCA posterior mean"],
                         piv["pPCA posterior mean"] + 0.005 * nf)
    for m in neural:
        if m not in piv:
            continue
        for k, part in piv.groupby(level="k"):
            idx = part.index
            gm = float(np.exp(np.mean(np.log(part[m] / best_linear[idx]))))
            vae, plain = (float(np.exp(np.mean(np.log(part[m] / part[ref]))))
                          if ref in part else np.nan
                          for ref in ("VAE", "VAE no linear path"))
            within = int(np.sum(part[m] <= allowed[idx]))
            worst = float(np.max(part[m] / part["pPCA posterior mean"]))
            lines.append(f"| {m} | {k} | {len(idx)} | {gm:.3f} | {vae:.3f} | {plain:.3f} | "
                         f"{within}/{len(idx)} | {worst:.3f} |")
    pca = ok[ok.method == "PCA"].groupby(["dataset", "k"])[["pca_ll_raw", "pca_ll_std"]].mean()
    pca_ll = pca.max(axis=1)
    lines += ["", "## Held-out score (nats per row) against PCA's log-likelihood", "",
              "PCA: the better of PCA on the raw rows and on the standardized rows "
              "(Jacobian included). Cells list the method's mean held-out score minus "
              "PCA's; the criterion is >= -0.5.", ""]
    sc = mean.pivot_table(index=["dataset", "k"], columns="method", values="score")
    sc = sc[[m for m in neural if m in sc.columns]]
    lines += ["| data | k | PCA | " + " | ".join(sc.columns) + " |",
              "|---|---|---|" + "---|" * len(sc.columns)]
    for (d, k), r in sc.iterrows():
        ref = pca_ll.get((d, k), np.nan)
        lines.append(f"| {d} | {k} | {ref:.2f} | " + " | ".join(
            f"{v - ref:+.2f}" for v in r) + " |")
    lines += ["", "Cells below -0.5: " + ", ".join(
        f"{m} {int(np.sum(sc[m].values - pca_ll.reindex(sc.index).values < -0.5))}/{len(sc)}"
        for m in sc.columns)]
    lines += ["", "## Trustworthiness of the test rows' embedding (5 neighbours)", ""]
    lines += table("trust", [m for m in METHODS], "{:.3f}")
    lines += ["", "## Downstream LogisticRegression accuracy on the embedding", "",
              "Raw: the standardized features themselves.", ""]
    acc = mean.pivot_table(index=["dataset", "k"], columns="method", values="accuracy")
    raw = mean.pivot_table(index=["dataset", "k"], columns="method", values="raw_accuracy")
    if len(acc):
        acc.insert(0, "raw features", raw.get("PCA"))
        acc = acc[["raw features", *[m for m in METHODS if m in acc.columns]]]
        lines += ["| data | k | " + " | ".join(acc.columns) + " |",
                  "|---|---|" + "---|" * len(acc.columns)]
        for (d, k), r in acc.iterrows():
            lines.append(f"| {d} | {k} | " + " | ".join(
                "" if pd.isna(v) else f"{v:.3f}" for v in r) + " |")
    lines += ["", "## Fit time (s, median over cells) and training outcomes", "",
              "| method | median fit time | certified | ConvergenceWarning | median epochs |",
              "|---|---|---|---|---|"]
    for m in METHODS:
        part = ok[ok.method == m]
        if not len(part):
            continue
        cert = (f"{int(part.certified.sum())}/{len(part)}"
                if "certified" in part and part.certified.notna().any() else "")
        conv = f"{int(part.convergence_warning.sum())}/{len(part)}"
        epochs = f"{part.n_iter.median():.0f}" if part.n_iter.notna().any() else ""
        lines.append(f"| {m} | {part.fit_time.median():.2f} | {cert} | {conv} | {epochs} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    import pandas as pd

    p = cli_parser(__doc__)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--datasets", nargs="*", default=None)
    p.add_argument("--components", nargs="*", type=int, default=list(COMPONENTS))
    p.add_argument("--methods", nargs="*", default=list(METHODS))
    p.add_argument("--n-jobs", type=int, default=2)
    args = p.parse_args(argv)
    datasets = args.datasets or (["iris", "wine"] if args.smoke else list(DATASETS))
    seeds = 1 if args.smoke else args.seeds
    todo = jobs(datasets, seeds, [2] if args.smoke else args.components, args.methods,
                args.smoke)
    commit = git_commit()
    start = time.perf_counter()
    rows = []
    with get_context("spawn").Pool(args.n_jobs, initializer=_init_worker) as pool:
        for i, row in enumerate(pool.imap_unordered(run_fit, todo), 1):
            rows.append(row)
            if i % 50 == 0 or i == len(todo):
                print(f"{i}/{len(todo)} fits, {time.perf_counter() - start:.0f} s", flush=True)
    df = pd.DataFrame(rows)
    write_report(args.output, "components", args.smoke, df.to_csv(index=False), ".csv")
    header = (
        "# Evaluation at k = " + ", ".join(map(str, sorted(set(df.k)))) + "\n\n"
        f"Command: `python benchmarks/components.py {' '.join(argv or sys.argv[1:])}`\n\n"
        + "\n".join(describe(commit)) + "\n\n"
        f"Date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; wall time "
        f"{time.perf_counter() - start:.0f} s with {args.n_jobs} worker processes "
        "(1 torch thread each).\n\nData sets: "
        + "; ".join(f"{d} ({kind}, {source})" for d in datasets
                    for kind, source in [{**DATASETS, **FRESH}[d]])
    )
    path = write_report(args.output, "components", args.smoke, report(df, header))
    print(path.read_text())


if __name__ == "__main__":
    main()
