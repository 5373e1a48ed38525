"""First-call cost: a default fit in a fresh process against the same fit again, today and before.

The first fit in a Python process pays for imports and set-up that later
fits do not: every worker of a parallel grid search, every script and
every fresh notebook kernel pays it once. For each contender, in a fresh
process per run, this script times ``import skvae`` (torch included), the
first call on the data, the same call again, and lists the heavy modules
the first call imported (sympy, ``torch._dynamo``). The contenders are the
default ``SphericalClusterVAE`` and ``VAE`` fits and a default
``VAEImputer.fit_transform`` (10% of the entries hidden), each as of
``--commit`` (imported from a temporary git worktree) and as of the working
tree, with scikit-learn's PCA as the reference a user knows. Data: wine
(178 x 13), small, so that a fit's noise does not hide a cost paid once.
Runs are sequential, one torch thread, and the order of the contenders
rotates between rounds; the tables give medians.

    python benchmarks/first_fit.py [--smoke] [--commit 4a8f65a] [--rounds 5]
"""

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _cli import generated, parser as cli_parser, write_report  # noqa: E402
from _common import REPO, checkout  # noqa: E402
from _machine import describe, git_commit  # noqa: E402

#: Modules whose import a first fit should not need: each costs a second or more.
HEAVY = ("sympy", "torch._dynamo")
#: The calls compared; PCA does not depend on skvae's version and runs once per round.
CALLS = ("SphericalClusterVAE", "VAE", "VAEImputer")
MISSING_FRACTION = 0.1


def _call(name, smoke):
    """The timed call of contender ``name``: a function of the data."""
    from sklearn.decomposition import PCA

    import skvae

    params = dict(random_state=0)
    if smoke:
        params["max_iter"] = 2
    if name == "PCA":
        return lambda X: PCA(n_components=2).fit(X)
    if name == "VAEImputer":
        return lambda X: skvae.VAEImputer(
            estimator=skvae.SphericalClusterVAE(**params), random_state=0).fit_transform(X)
    return lambda X: getattr(skvae, name)(**params).fit(X)


def child(name, source, smoke):
    """Run in a fresh process: the timings and imports of one contender, as a dict."""
    start = time.perf_counter()
    sys.path.insert(0, source)
    import skvae

    import_seconds = time.perf_counter() - start
    assert skvae.__file__.startswith(source), skvae.__file__
    import warnings

    import torch
    from sklearn.datasets import load_wine

    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    X = load_wine().data[:100 if smoke else None]
    if name == "VAEImputer":
        X = X.copy()
        X[np.random.default_rng(0).random(X.shape) < MISSING_FRACTION] = np.nan
    call = _call(name, smoke)
    before = set(sys.modules)
    t = time.perf_counter()
    call(X)
    first = time.perf_counter() - t
    new = set(sys.modules) - before
    t = time.perf_counter()
    call(X)
    second = time.perf_counter() - t
    return dict(import_seconds=import_seconds, first=first, second=second,
                new_modules=len(new), heavy=[m for m in HEAVY if m in new])


def _spawn(name, source, smoke):
    out = subprocess.run([sys.executable, __file__, "--child", name, "--source", source,
                          *(["--smoke"] if smoke else [])],
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def report(rows, args, wall, commit):
    lines = [
        "# First-call cost", "",
        generated("first_fit.py", args.smoke, f"--commit {args.commit} --rounds {args.rounds}",
                  wall) + ", one process at a time, one torch thread. Machine:", "",
        *describe(commit), "",
        "Each run is a fresh Python process: `import skvae` (torch and scikit-learn "
        "included), then the call on wine (178 × 13; the imputer with "
        f"{MISSING_FRACTION:.0%} of the entries hidden), then the same call again. "
        "One-off cost = first call − second call. Medians over the rounds; "
        "the heavy modules are those the first call imported in every round.", "",
        "| call | version | import skvae (s) | first call (s) | second call (s) "
        "| one-off cost (s) | modules the first call imported | heavy imports |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for (name, version), runs in rows.items():
        med = {k: float(np.median([r[k] for r in runs]))
               for k in ("import_seconds", "first", "second", "new_modules")}
        one_off = float(np.median([r["first"] - r["second"] for r in runs]))
        heavy = sorted(set.intersection(*(set(r["heavy"]) for r in runs)))
        lines.append(
            f"| {name} | {version} | {med['import_seconds']:.2f} | {med['first']:.2f} | "
            f"{med['second']:.2f} | {one_off:.2f} | {med['new_modules']:.0f} | "
            f"{', '.join(heavy) or 'none'} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    cli = cli_parser(__doc__)
    cli.add_argument("--commit", default="4a8f65a",
                     help="the earlier version (default: before the first-call fixes)")
    cli.add_argument("--rounds", type=int, default=5)
    cli.add_argument("--child", help="internal: run one contender in this process")
    cli.add_argument("--source", help="internal: the checkout to import skvae from")
    args = cli.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.source, args.smoke)))
        return 0
    start, commit = time.perf_counter(), git_commit()
    rounds = 1 if args.smoke else args.rounds
    with checkout(args.commit) as previous:
        # The smoke run: one call, both versions, and the reference.
        contenders = [(name, version, source) for name in (CALLS[:1] if args.smoke else CALLS)
                      for version, source in ((args.commit, previous), ("today", str(REPO)))]
        contenders.append(("PCA (scikit-learn)", "—", str(REPO)))
        rows = {(name, version): [] for name, version, _ in contenders}
        for r in range(rounds):
            shift = r % len(contenders)
            for name, version, source in contenders[shift:] + contenders[:shift]:
                call = "PCA" if name.startswith("PCA") else name
                rows[(name, version)].append(_spawn(call, source, args.smoke))
                print(name, version, rows[(name, version)][-1], file=sys.stderr, flush=True)
    path = write_report(args.output, "first_fit", args.smoke,
                        report(rows, args, time.perf_counter() - start, commit))
    print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
