"""The defaults of today against those of an earlier commit, at the k users pick for a picture.

Held-out reconstruction error of ``skvae.VAE`` and ``SphericalClusterVAE``
at their defaults, as of ``--commit`` (checked out into a temporary git
worktree and imported from there) and as of the working tree, on the
splits of ``components.py`` (70/30, seeds 0-2, the same data sets). The
default commit, ``4b44fcc``, is the code the issue "A DR replacement at every
n_components" was filed against: its "k = 2 no worse than today" compares
with these models.

    python benchmarks/previous_version.py [--smoke] [--commit 4b44fcc] [--components 2]
"""

import sys
import time
import warnings
from multiprocessing import get_context
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _cli import generated, parser as cli_parser, write_report  # noqa: E402
from _common import checkout, geomean, heldout_error  # noqa: E402
from _machine import describe, git_commit  # noqa: E402
from components import DATASETS, _split  # noqa: E402

CLASSES = ("VAE", "SphericalClusterVAE")


def run(job):
    """One default fit of ``job["cls"]`` from ``job["source"]`` (a checkout, or None for today's)."""
    import torch

    if job["source"] is not None:
        sys.path.insert(0, job["source"])
    import skvae

    if job["source"] is not None:
        assert skvae.__file__.startswith(job["source"]), skvae.__file__
    from sklearn.preprocessing import StandardScaler

    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    X_tr, X_te, _, _ = _split(job["dataset"], job["seed"])
    if job["smoke"]:
        X_tr, X_te = X_tr[:150], X_te[:60]
    params = dict(n_components=job["k"], random_state=job["seed"])
    if job["smoke"]:
        params["max_iter"] = 3
    model = getattr(skvae, job["cls"])(**params).fit(X_tr)
    err = heldout_error(model, X_te, StandardScaler().fit(X_tr).scale_)
    return dict(job, heldout=err)


def report(rows, args, wall, commit):
    import pandas as pd

    df = pd.DataFrame(rows)
    df["model"] = df["version"] + " " + df["cls"]
    mean = df.groupby(["k", "dataset", "model"]).heldout.mean().unstack()
    then, now = f"{args.commit} ", "today "
    lines = [
        "# Today's defaults against an earlier commit's", "",
        generated("previous_version.py", args.smoke, f"--commit {args.commit} --components "
                  f"{' '.join(map(str, args.components))}", wall) + ". Machine:", "",
        *describe(commit), "",
        "Held-out reconstruction error (standardized units, mean of 3 seeds) of each "
        "estimator at its defaults, on the splits of `components.py`.", "",
    ]
    for k, table in mean.groupby(level="k"):
        table = table.droplevel("k")
        lines += [f"## k = {k}", "",
                  "| data | " + " | ".join(table.columns) + " | today SCVAE / "
                  f"{args.commit} VAE | today SCVAE / {args.commit} SCVAE |",
                  "|---|" + "---|" * (len(table.columns) + 2)]
        ratio_vae = table[now + "SphericalClusterVAE"] / table[then + "VAE"]
        ratio_sc = table[now + "SphericalClusterVAE"] / table[then + "SphericalClusterVAE"]
        for name, row in table.iterrows():
            lines.append(f"| {name} | " + " | ".join(f"{v:.4g}" for v in row)
                         + f" | {ratio_vae[name]:.3f} | {ratio_sc[name]:.3f} |")
        then_ratio = geomean(table[then + "SphericalClusterVAE"] / table[then + "VAE"])
        now_ratio = geomean(table[now + "SphericalClusterVAE"] / table[now + "VAE"])
        lines += ["", f"Geometric means over {len(table)} data sets: today's SCVAE / "
                  f"{args.commit}'s VAE **{geomean(ratio_vae):.3f}** (worst "
                  f"{ratio_vae.max():.3f}, {ratio_vae.idxmax()}); today's SCVAE / "
                  f"{args.commit}'s SCVAE {geomean(ratio_sc):.3f}; SCVAE / VAE was "
                  f"{then_ratio:.3f} at {args.commit} and is {now_ratio:.3f} today.", ""]
    return "\n".join(lines) + "\n"


def main(argv=None):
    cli = cli_parser(__doc__)
    cli.add_argument("--commit", default="4b44fcc")
    cli.add_argument("--components", type=int, nargs="+", default=[2])
    cli.add_argument("--seeds", type=int, default=3)
    args = cli.parse_args(argv)
    start, commit = time.perf_counter(), git_commit()
    names = ["iris", "wine"] if args.smoke else list(DATASETS)
    seeds = 1 if args.smoke else args.seeds
    with checkout(args.commit) as previous:
        jobs = [dict(dataset=n, seed=s, k=k, cls=c, version=v, source=src, smoke=args.smoke)
                for n in names for s in range(seeds) for k in args.components
                for c in CLASSES
                for v, src in ((args.commit, previous), ("today", None))]
        # One process per fit: each imports skvae from its own version.
        with get_context("spawn").Pool(2, maxtasksperchild=1) as pool:
            rows = pool.map(run, jobs, chunksize=1)
    for row in rows:
        row.pop("source")
    path = write_report(args.output, "previous_version", args.smoke,
                        report(rows, args, time.perf_counter() - start, commit))
    print(f"wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
