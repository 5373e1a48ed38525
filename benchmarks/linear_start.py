"""The linear start with the shell: rows bent by the output layer, tau at the start, KL, over-fitting.

For each data set of ``_datasets.py`` and each k in 2, 5, 10, 20 below its
number of features (one 70/30 split, seed 0), SphericalClusterVAE is fitted
twice on the training rows: untrained (``max_iter=1`` with a step size of
1e-12, so the weights stay at the probabilistic-PCA start) and with the
defaults. Everything is read through the public API:

* **rows below the knee**: training rows whose reconstruction
  (``inverse_transform(transform(X))``, standardized) has a norm below
  ``output_knee_``. The output layer is the identity above the knee and
  increasing below it, so these are exactly the reconstructions it bends;
* **tau at the start**: the untrained model's ``reconstruction_loss_``
  against ``reconstruction_target_`` (training starts feasible when it is
  below), and the final ``lagrange_multiplier_``;
* **KL** per row summed over the latent dimensions, at the start and at the
  end (the price of the posterior at k near n_features);
* **held-out error** of the untrained model against probabilistic PCA's
  posterior mean without the shell (what the layer costs the start), and of
  the trained model; train and held-out score (over-fitting).

Usage::

    python benchmarks/linear_start.py                  # ~3 min on 2 cores
    python benchmarks/linear_start.py --smoke --output /tmp/x

Writes ``linear_start.md`` into ``--output``.
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
from _datasets import DATASETS, load  # noqa: E402
from _machine import describe, git_commit  # noqa: E402
from components import COMPONENTS, PPCAPosteriorMean, _init_worker, _split  # noqa: E402


def _measure(job):
    from sklearn.preprocessing import StandardScaler

    from skvae import SphericalClusterVAE

    name, k, smoke = job
    X_tr, X_te, _, _ = _split(name, 0)
    scaler = StandardScaler().fit(X_tr)
    row = dict(dataset=name, k=k)

    def err(model, X):
        return heldout_error(model, X, scaler.scale_)

    def below_knee(model):
        recon = scaler.transform(model.inverse_transform(model.transform(X_tr)))
        return float(np.mean(np.linalg.norm(recon, axis=1) < model.output_knee_))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start = SphericalClusterVAE(k, max_iter=1, learning_rate_init=1e-12,
                                    early_stopping=False, random_state=0).fit(X_tr)
        trained = SphericalClusterVAE(k, random_state=0,
                                      **({"max_iter": 3} if smoke else {})).fit(X_tr)
    row.update(
        below_knee_start=below_knee(start), below_knee_end=below_knee(trained),
        R_start_over_tau=start.reconstruction_loss_ / start.reconstruction_target_,
        lam_end=trained.lagrange_multiplier_,
        kl_start=float(np.sum(start.kl_per_dimension_)),
        kl_end=float(np.sum(trained.kl_per_dimension_)),
        heldout_ppca=err(PPCAPosteriorMean(k).fit(X_tr), X_te),
        heldout_start=err(start, X_te), heldout_end=err(trained, X_te),
        train_score=trained.score(X_tr), test_score=trained.score(X_te),
        start_test_score=start.score(X_te), epochs=trained.n_iter_,
    )
    return row


def report(df, header):
    lines = [header, "",
             "| data | k | bent rows, start | bent rows, end | R/tau at start | final lambda | "
             "KL start | KL end | held-out: pPCA | start | trained | score: start | "
             "trained (train rows) | trained | epochs |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in df.itertuples():
        lines.append(
            f"| {r.dataset} | {r.k} | {r.below_knee_start:.0%} | {r.below_knee_end:.0%} | "
            f"{r.R_start_over_tau:.3f} | {r.lam_end:.3g} | {r.kl_start:.2f} | {r.kl_end:.2f} | "
            f"{r.heldout_ppca:.4g} | {r.heldout_start:.4g} | {r.heldout_end:.4g} | "
            f"{r.start_test_score:.2f} | {r.train_score:.2f} | {r.test_score:.2f} | "
            f"{r.epochs} |")
    start_cost = df.heldout_start / df.heldout_ppca
    lines += [
        "",
        f"- Fits where tau held at the start (R/tau <= 1): "
        f"{int((df.R_start_over_tau <= 1).sum())}/{len(df)}; largest R/tau "
        f"{df.R_start_over_tau.max():.3f}.",
        f"- The output layer's cost to the start's held-out error (start / pPCA): median "
        f"{start_cost.median():.3f}, range {start_cost.min():.3f}-{start_cost.max():.3f}.",
        f"- Training rows bent by the layer: median {df.below_knee_start.median():.0%} at the "
        f"start, {df.below_knee_end.median():.0%} at the end (max "
        f"{df.below_knee_start.max():.0%} and {df.below_knee_end.max():.0%}).",
        f"- Trained held-out score minus the start's: median "
        f"{(df.test_score - df.start_test_score).median():+.2f}, worst "
        f"{(df.test_score - df.start_test_score).min():+.2f} nats per row.",
    ]
    return "\n".join(lines) + "\n"


def main(argv=None):
    import pandas as pd

    p = cli_parser(__doc__)
    p.add_argument("--n-jobs", type=int, default=2)
    args = p.parse_args(argv)
    datasets = ["iris", "wine"] if args.smoke else list(DATASETS)
    todo = [(d, k, args.smoke) for d in datasets for k in ([2] if args.smoke else COMPONENTS)
            if k < load(d)[0].shape[1]]
    commit = git_commit()
    start = time.perf_counter()
    with get_context("spawn").Pool(args.n_jobs, initializer=_init_worker) as pool:
        rows = pool.map(_measure, todo)
    df = pd.DataFrame(rows).sort_values(["dataset", "k"])
    header = (
        "# The linear start with the shell\n\n"
        f"Command: `python benchmarks/linear_start.py {' '.join(argv or sys.argv[1:])}`\n\n"
        + "\n".join(describe(commit)) + "\n\n"
        f"Date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; wall time "
        f"{time.perf_counter() - start:.0f} s with {args.n_jobs} worker processes.\n\n"
        "Bent rows: share of training reconstructions below the output layer's knee. "
        "Held-out: reconstruction error in standardized units. Score: nats per row.")
    path = write_report(args.output, "linear_start", args.smoke, report(df, header))
    print(path.read_text())


if __name__ == "__main__":
    main()
