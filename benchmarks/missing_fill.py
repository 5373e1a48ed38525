"""Ablation: what the encoder sees in a hole: the EM pPCA conditional mean (default) or 0, with or without the mask.

Runs part 2 of ``imputation.py`` (SphericalClusterVAE fitted with 20% MCAR
holes against the complete-data fit, held-out complete rows) and
VAEImputer's error at 30% MCAR with the default fill, with zero filling
(:func:`_ablations.zero_filled_encoder_input`), and with each of the two
plus the mask of observed entries as extra encoder inputs
(:func:`_ablations.mask_as_encoder_input`), on the same data sets, splits
and seeds.

    python benchmarks/missing_fill.py [--smoke] [--n-jobs 2] [--seeds 2] [--output DIR]
"""

import sys
import time
from multiprocessing import get_context
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import imputation  # noqa: E402
import contextlib  # noqa: E402

from _ablations import mask_as_encoder_input, zero_filled_encoder_input  # noqa: E402
from _cli import write_report  # noqa: E402
from _machine import describe, git_commit  # noqa: E402

FILLS = ["EM pPCA conditional mean (default)", "zero (column mean)",
         "EM pPCA conditional mean + mask inputs", "zero + mask inputs"]


def task(args):
    fill, kind, dataset, k, seed = args
    run = (imputation.dr_task if kind == "dr" else imputation.imputation_task)
    params = (dataset, k, seed) if kind == "dr" else (dataset, "MCAR 30%", seed, ["VAEImputer"])
    with contextlib.ExitStack() as stack:
        if fill.startswith("zero"):
            stack.enter_context(zero_filled_encoder_input())
        if fill.endswith("mask inputs"):
            stack.enter_context(mask_as_encoder_input())
        rows = run(params)
    return [dict(row, fill=fill) for row in rows]


def main(argv=None):
    args, sets, seeds = imputation.ablation_arguments(__doc__, argv)
    tasks = [(fill, "dr", s, k, seed) for fill in FILLS for s in sets
             for k in imputation.DR_COMPONENTS for seed in range(seeds)]
    tasks += [(fill, "imputation", s, None, seed) for fill in FILLS for s in sets
              for seed in range(seeds)]
    t0 = time.perf_counter()
    rows = []
    with get_context("spawn").Pool(args.n_jobs) as pool:
        for part in pool.imap_unordered(task, tasks):
            rows += part
    import pandas as pd

    df = pd.DataFrame(rows)
    dr = df[(df.part == "dr") & (df.fit != "mean-imputed")]
    piv = dr.pivot_table(index=["fill", "dataset", "n_components", "seed"], columns="fit",
                         values="error")
    ratio = (piv["with holes"] / piv["complete"]).rename("ratio").reset_index()
    imp = df[df.part == "imputation"]
    out = ["# Ablation: the encoder's input in a hole", "",
           f"{(time.perf_counter() - t0) / 60:.1f} min with {args.n_jobs} workers; "
           f"seeds {list(range(seeds))}; data sets {', '.join(sets)}. Produced by "
           "`python benchmarks/missing_fill.py`.", "", *describe(git_commit()), "",
           "Held-out reconstruction error of complete rows, SphericalClusterVAE fitted "
           "with 20% MCAR holes over the fit on complete rows (geometric mean over data "
           "sets and seeds), and VAEImputer's error at 30% MCAR (median over data sets, "
           "standard deviations):", "",
           "| encoder input in a hole | ratio k=2 | ratio k=5 | ratio, all | certified | "
           "VAEImputer error |", "|---|---:|---:|---:|---:|---:|"]
    for fill in FILLS:
        r = ratio[ratio.fill == fill]
        g = {k: float(np.exp(np.mean(np.log(r[r.n_components == k].ratio))))
             for k in imputation.DR_COMPONENTS}
        allg = float(np.exp(np.mean(np.log(r.ratio))))
        cert = dr[(dr.fill == fill) & (dr.fit == "with holes")].certified
        med = imp[imp.fill == fill].groupby("dataset").error.mean().median()
        out.append(f"| {fill} | {g[2]:.3f} | {g[5]:.3f} | {allg:.3f} | "
                   f"{int(cert.sum())}/{len(cert)} | {med:.3f} |")
    per = ratio.groupby(["dataset", "n_components", "fill"]).ratio.mean().unstack("fill")
    out += ["", "Per data set (mean ratio over seeds):", "",
            "| data set | k | " + " | ".join(FILLS) + " |", "|---|---:|" + "---:|" * len(FILLS)]
    for (ds, k), r in per.iterrows():
        out.append(f"| {ds} | {int(k)} | " + " | ".join(f"{r[f]:.3f}" for f in FILLS) + " |")
    text = "\n".join(out) + "\n"
    path = write_report(args.output, "missing_fill", args.smoke, text)
    print(text)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
