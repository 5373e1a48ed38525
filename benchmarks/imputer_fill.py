"""Ablation: how VAEImputer turns its two fills into one: stacked per-column weights or the best of four, with or without the range clip.

Part 1 of ``imputation.py`` (the same data sets, removal patterns, splits
and seeds; error on the removed entries of held-out rows, in standard
deviations) for four rules, all through the public API:

* **stacked, range kept** (the default): ``VAEImputer()``;
* **stacked, no range**: ``VAEImputer(keep_range=False)``;
* **best of four, range kept**: the fixed fill (``"vae"``, ``"ppca"``,
  ``"blend"`` or ``"mean"``) with the smallest error on the default fit's
  hidden entries (``validation_errors_``), refitted as
  ``VAEImputer(fill_method=that)``: the rule before the stacked weights;
* **best of four, no range**: the same with ``keep_range=False``.

    python benchmarks/imputer_fill.py [--smoke] [--n-jobs 2] [--seeds 2] [--output DIR]
"""

import sys
import time
import warnings
from multiprocessing import get_context
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import imputation  # noqa: E402
from _cli import write_report  # noqa: E402
from _common import one_torch_thread  # noqa: E402
from _datasets import load  # noqa: E402
from _machine import describe, git_commit  # noqa: E402

RULES = ["stacked, range kept (default)", "stacked, no range", "best of four, range kept",
         "best of four, no range"]


def task(args):
    """Every rule's error, and the column mean's, for one (data set, pattern, seed)."""
    from sklearn.impute import SimpleImputer

    from skvae import VAEImputer

    name, pattern, seed = args
    X, _ = load(name)
    kind, rate = imputation.PATTERNS[pattern]
    M = imputation.remove_entries(X, kind, rate, np.random.default_rng(seed))
    Xm = np.where(M, np.nan, X)
    tr, te = imputation.split(X.shape[0], seed)
    scale = imputation._scale(X[tr])

    def error(imputer):
        F = imputer.transform(Xm[te])
        return float(np.sqrt(np.mean((((F - X[te]) / scale)[M[te]]) ** 2)))

    row = dict(dataset=name, pattern=pattern, seed=seed)
    with one_torch_thread(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        row["mean"] = error(SimpleImputer().fit(Xm[tr]))
        for keep, stacked, best in [(True, RULES[0], RULES[2]), (False, RULES[1], RULES[3])]:
            auto = VAEImputer(keep_range=keep, random_state=seed).fit(Xm[tr])
            row[stacked] = error(auto)
            errors = auto.validation_errors_
            fill = min(errors, key=errors.get)
            fixed = VAEImputer(fill_method=fill, keep_range=keep, random_state=seed)
            row[best] = error(fixed.fit(Xm[tr]))
    return row


def report(rows, sets, seeds, elapsed, n_jobs):
    import pandas as pd

    df = pd.DataFrame(rows)
    cells = df.groupby(["pattern", "dataset"])[["mean", *RULES]].mean()
    out = ["# Ablation: how VAEImputer combines its fills", "",
           f"{elapsed / 60:.1f} min with {n_jobs} workers; seeds {list(range(seeds))}; data sets "
           f"{', '.join(sets)}. Produced by `python benchmarks/imputer_fill.py`.", "",
           *describe(git_commit()), "",
           "Error on the removed entries of held-out rows (standard deviations), median over "
           "data sets of the mean over seeds; in brackets, the cells (data set, mean over "
           "seeds) where the rule is not below the column mean's error.", "",
           "| pattern | " + " | ".join(RULES) + " | column mean |",
           "|---|" + "---:|" * (len(RULES) + 1)]
    for pattern, sub in imputation.by_pattern(cells):
        parts = [f"{sub[r].median():.3f} ({int((sub[r] >= sub['mean']).sum())})" for r in RULES]
        out.append(f"| {pattern} | " + " | ".join(parts) + f" | {sub['mean'].median():.3f} |")
    out += ["", "Every cell (mean over seeds):", "",
            "| pattern | data set | " + " | ".join(RULES) + " | column mean |",
            "|---|---|" + "---:|" * (len(RULES) + 1)]
    for (pattern, ds), r in cells.iterrows():
        out.append(f"| {pattern} | {ds} | " + " | ".join(f"{r[c]:.3f}" for c in RULES)
                   + f" | {r['mean']:.3f} |")
    return "\n".join(out) + "\n", df


def main(argv=None):
    args, sets, seeds = imputation.ablation_arguments(__doc__, argv)
    patterns = ["MCAR 30%"] if args.smoke else list(imputation.PATTERNS)
    tasks = [(s, pattern, seed) for s in sets for pattern in patterns for seed in range(seeds)]
    t0 = time.perf_counter()
    with get_context("spawn").Pool(args.n_jobs) as pool:
        rows = list(pool.imap_unordered(task, tasks))
    text, df = report(rows, sets, seeds, time.perf_counter() - t0, args.n_jobs)
    path = write_report(args.output, "imputer_fill", args.smoke, text)
    df.to_csv(path.with_suffix(".csv"), index=False)
    print(text)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
