"""Speed benchmark: what SphericalClusterVAE costs over skvae.VAE and over a hand-written torch loop.

Measures, in one run:

1. fit-time overhead ratios with the same network, data and number of
   epochs (25, early stopping off), whole fit and per epoch of training:
   SphericalClusterVAE / VAE and VAE / a minimal hand-written torch loop,
   on digits and on a 20k-row synthetic set; the three fits of a round run
   back to back, the order rotating between rounds, and the ratios are
   medians of the per-round ratios;
2. the time of the parts of a SphericalClusterVAE fit (standardize + shell,
   K-means, training, certificate, the other diagnostics);
3. transform and inverse_transform throughput and their peak extra memory on
   1M rows x 64 features (each in a fresh process, read from ru_maxrss);
4. how fit time grows with n_samples, 1k to 1M, at a fixed number of epochs;
5. K-means on all rows against K-means on the 20,000-row sample the library uses;
6. training throughput (FLOP/s) at the default and other batch sizes on
   100k rows, against the machine's measured one-thread matmul rate;
7. time to quality: wall time and held-out error of the default fits of
   SphericalClusterVAE, VAE, PCA, IncrementalPCA and UMAP on 10k, 100k and
   1M rows, against a long run (the VAEs) or PCA (IncrementalPCA).

Usage::

    python benchmarks/speed.py            # results in benchmarks/results/speed.md
    python benchmarks/speed.py --smoke --output /tmp/x   # tiny sizes; for the tests
"""

import argparse
import gc
import json
import pickle
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _cli import parser as cli_parser  # noqa: E402
from _common import one_torch_thread  # noqa: E402

FULL = dict(
    rounds=7, big_rounds=7, digits_epochs=25, big_rows=20_000, big_epochs=25,
    huge_rows=200_000, huge_epochs=10, huge_rounds=5,
    io_rows=1_000_000, scaling=[1_000, 20_000, 200_000, 1_000_000], scaling_epochs=2,
    kmeans=[10_000, 50_000, 100_000, 200_000, 500_000, 1_000_000],
    throughput_rows=100_000, throughput_batches=[None, 256, 1024, 4096], throughput_epochs=2,
    quality=[10_000, 100_000, 1_000_000],
)
SMOKE = dict(
    rounds=2, big_rounds=2, digits_epochs=2, big_rows=2_000, big_epochs=1,
    huge_rows=3_000, huge_epochs=1, huge_rounds=2,
    io_rows=5_000, scaling=[500, 2_000], scaling_epochs=1, kmeans=[1_000, 3_000],
    throughput_rows=2_000, throughput_batches=[None, 64], throughput_epochs=1, quality=[1_500],
)
N_FEATURES = 64
HIDDEN = (128, 64)
N_COMPONENTS = 2
TARGET = 1.10  # whole fit, SphericalClusterVAE / VAE and against the hand-written loop
EPOCH_TARGET = 1.05  # per epoch, SphericalClusterVAE / VAE


def synthetic(n_samples, seed=0):
    """64-D Gaussian blobs, 10 centres; generated in blocks to bound memory."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=4.0, size=(10, N_FEATURES))
    X = np.empty((n_samples, N_FEATURES))
    for s in range(0, n_samples, 100_000):
        e = min(s + 100_000, n_samples)
        X[s:e] = centers[rng.integers(10, size=e - s)] + rng.standard_normal((e - s, N_FEATURES))
    return X


def tanh_latent(n_samples, seed=0):
    """64 columns of tanh of a random linear map of a 6-dimensional Gaussian latent, plus noise."""
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(6, N_FEATURES))
    X = np.empty((n_samples, N_FEATURES))
    for s in range(0, n_samples, 100_000):
        e = min(s + 100_000, n_samples)
        X[s:e] = np.tanh(rng.normal(size=(e - s, 6)) @ A / 2)
        X[s:e] += 0.1 * rng.standard_normal((e - s, N_FEATURES))
    return X


def curved_latent(n_samples, seed=0):
    """32 columns: tanh of a random linear map of a 4-dimensional latent, a squared latent, noise.

    The performance issue's time-to-quality set: ``tanh(Z A) + z_1^2 b +
    0.1 e`` with ``Z`` standard normal, ``A`` (4 x 32) and ``b`` (32) drawn
    once. A benchmark data set of its own: no default was chosen on it.
    """
    rng = np.random.default_rng(seed)
    A, b = rng.normal(size=(4, 32)), rng.normal(size=32) / 2
    Z = rng.normal(size=(n_samples, 4))
    return np.tanh(Z @ A) + np.outer(Z[:, 0] ** 2, b) + 0.1 * rng.standard_normal((n_samples, 32))


def _quiet(fn):
    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return fn()


def _timed(fn):
    gc.collect()
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def _params(epochs, batch_size=None):
    # Early stopping off (n_iter_no_change > epochs): every contender runs the
    # same number of epochs; batch and learning rate are the defaults ("auto").
    return dict(n_components=N_COMPONENTS, hidden_layer_sizes=HIDDEN, max_iter=epochs,
                batch_size=batch_size or "auto", n_iter_no_change=epochs + 1, random_state=0)


def fit_scvae(X, epochs, batch_size=None):
    from skvae import SphericalClusterVAE

    return _quiet(lambda: SphericalClusterVAE(**_params(epochs, batch_size)).fit(X))


def fit_vae(X, epochs, batch_size=None):
    from skvae import VAE

    return _quiet(lambda: VAE(**_params(epochs, batch_size)).fit(X))


def fit_hand_written(X, epochs, batch, rate):
    """What a user would write by hand: standardize, the same MLPs, Adam, the same loss.

    ``batch`` and ``rate`` are the estimators' (their fitted ``batch_size_``
    and ``learning_rate_``).
    """
    import torch
    from torch import nn

    n, d = X.shape
    scale = X.std(axis=0)
    Y = torch.as_tensor((X - X.mean(axis=0)) / np.where(scale > 0, scale, 1.0),
                        dtype=torch.float32)
    enc = nn.Sequential(nn.Linear(d, HIDDEN[0]), nn.ReLU(), nn.Linear(HIDDEN[0], HIDDEN[1]),
                        nn.ReLU(), nn.Linear(HIDDEN[1], 2 * N_COMPONENTS))
    dec = nn.Sequential(nn.Linear(N_COMPONENTS, HIDDEN[1]), nn.ReLU(),
                        nn.Linear(HIDDEN[1], HIDDEN[0]), nn.ReLU(), nn.Linear(HIDDEN[0], d))
    # torch's default Adam, as a user would write it (skvae uses the fused kernel).
    opt = torch.optim.Adam([*enc.parameters(), *dec.parameters()], lr=rate)
    g = torch.Generator().manual_seed(0)
    with one_torch_thread():  # as the estimators' default n_jobs
        _hand_written_epochs(Y, enc, dec, opt, g, epochs, batch)
    return enc, dec


def _hand_written_epochs(Y, enc, dec, opt, g, epochs, batch):
    import torch

    n, d = Y.shape
    for _ in range(epochs):
        perm = torch.randperm(n, generator=g)
        for s in range(0, n, batch):
            y = Y[perm[s : s + batch]]
            mu, logvar = enc(y).chunk(2, dim=1)
            z = mu + torch.exp(0.5 * logvar) * torch.randn(mu.shape, generator=g)
            R = (y - dec(z)).pow(2).sum(dim=1).mean()
            kl = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(dim=1).mean()
            loss = 0.5 * d * torch.log(R) + kl
            opt.zero_grad()
            loss.backward()
            opt.step()


def overhead(X, epochs, rounds):
    """Median fit seconds of each contender over alternated rounds, and seconds per epoch.

    Per epoch is the training phase of the estimators' ``fit_times_`` over
    its epochs (their fixed costs, K-means, certificate and diagnostics, left
    out); the hand-written loop is all training. Also returns the batch size
    and learning rate the estimators chose, which the hand-written loop uses.
    """
    reference = fit_vae(X, 1)  # warm-up (imports, thread pools) and the "auto" batch and rate
    batch, rate = reference.batch_size_, reference.learning_rate_
    contenders = {"SphericalClusterVAE": fit_scvae, "VAE": fit_vae,
                  "hand-written loop": lambda X, e: fit_hand_written(X, e, batch, rate)}
    times, per_epoch = alternated(contenders, X, epochs, rounds)
    medians = {n: statistics.median(t) for n, t in times.items()}
    return medians, times, per_epoch, (batch, rate)


def alternated(contenders, X, epochs, rounds, phases=None):
    """Fit seconds and training seconds per epoch of each ``contenders[name](X, epochs)``, per round.

    The order rotates between rounds, so that the machine's drift enters
    every contender alike. A fit without ``fit_times_`` is all training.
    With a dict ``phases``, ``phases[name]`` collects each fit's
    ``fit_times_`` (empty for a fit without them).
    """
    names = list(contenders)
    times = {n: [] for n in names}
    per_epoch = {n: [] for n in names}
    for r in range(rounds):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            sec, model = _timed(lambda: contenders[name](X, epochs))
            times[name].append(sec)
            fit_times = dict(getattr(model, "fit_times_", {}))
            per_epoch[name].append(fit_times.get("training", sec) / epochs)
            if phases is not None:
                phases.setdefault(name, []).append(fit_times)
    return times, per_epoch



def paired_ratios(a, b):
    """Per-round ratios ``a[i] / b[i]`` of two contenders' lists from :func:`alternated`."""
    return [x / y for x, y in zip(a, b)]

#: fit_times_ phases -> the rows of the parts table.
PARTS = {"data map": "standardize + shell", "linear start": "probabilistic PCA (linear start)",
         "band": "K-means (feasible region)", "training": "training",
         "certificate": "certificate", "diagnostics": "other diagnostics (MI, KL, active units)"}


def parts(X, epochs):
    """Seconds spent in each part of one SphericalClusterVAE fit (its ``fit_times_``)."""
    total, model = _timed(lambda: fit_scvae(X, epochs))
    t = {label: model.fit_times_.get(key, 0.0) for key, label in PARTS.items()}
    t["rest (validation split, network set-up, float64 copy)"] = total - sum(t.values())
    t["total"] = total
    return t


#: The rows SphericalClusterVAE's K-means runs on at most (docs/user_guide.rst).
KMEANS_SAMPLE = 20_000


def kmeans_sample(sizes):
    """Seconds and W of K-means on all rows against K-means on a 20,000-row sample.

    Both with K=8 and n_init=4 on standardized rows; the sample's centres
    label every row (what SphericalClusterVAE does above 20,000 rows). Two
    data sets: the blobs, and tanh of a 6-dimensional latent (not clustered,
    where Lloyd's iterations are many).
    """
    from sklearn.cluster import KMeans
    from sklearn.preprocessing import StandardScaler

    rows = []
    for data, X in [("blobs", synthetic(max(sizes), seed=1)),
                    ("tanh latent", tanh_latent(max(sizes), seed=1))]:
        X = StandardScaler().fit_transform(X)
        for n in sizes:
            Y = X[:n]
            out = {"data": data, "n_samples": n}
            km = KMeans(n_clusters=8, n_init=4, random_state=0)
            sec, labels = _timed(lambda: km.fit_predict(Y))
            out["all rows"] = (sec, float(km.inertia_ / n))
            rng = np.random.RandomState(0)
            sample = Y[np.sort(rng.choice(n, min(n, KMEANS_SAMPLE), replace=False))]
            km = KMeans(n_clusters=8, n_init=4, random_state=0)
            sec, labels = _timed(lambda: (km.fit(sample), km.predict(Y))[1])
            W = float(np.mean(np.sum((Y - km.cluster_centers_[labels]) ** 2, axis=1)))
            out["sample"] = (sec, W)
            rows.append(out)
    return rows


def scaling(sizes, epochs):
    """Fit seconds (and their parts) of SphericalClusterVAE and VAE at each size."""
    rows = []
    X_all = synthetic(max(sizes), seed=2)
    for n in sizes:
        X = X_all[:n]
        p = parts(X, epochs)
        vae, _ = _timed(lambda X=X: fit_vae(X, epochs))
        rows.append({"n_samples": n, "parts": p, "vae": vae})
    return rows


# -------------------------------------------------------------- memory probe
def _probe(model_path, op, n_rows):
    """Run in a fresh process: extra peak RSS of one call on n_rows x 64."""
    with open(model_path, "rb") as f:
        model = pickle.load(f)
    rng = np.random.default_rng(3)
    X = rng.standard_normal((n_rows, N_FEATURES)) * 4.0
    Z = model.transform(X[:1000])  # warm-up, and small
    if op == "inverse_transform":
        Z = rng.standard_normal((n_rows, N_COMPONENTS))
    gc.collect()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    out = model.transform(X) if op == "transform" else model.inverse_transform(Z)
    sec = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"op": op, "seconds": sec, "extra_peak_mib": (after - before) / 1024,
                      "input_mib": (X.nbytes if op == "transform" else Z.nbytes) / 2**20,
                      "output_mib": out.nbytes / 2**20}))


def io_costs(n_rows, tmp):
    """transform / inverse_transform throughput and extra peak memory, one process each."""
    model = fit_scvae(synthetic(10_000, seed=4), 2)
    path = Path(tmp) / "model.pkl"
    path.write_bytes(pickle.dumps(model))
    out = []
    for op in ["transform", "inverse_transform"]:
        res = subprocess.run(
            [sys.executable, __file__, "--probe", str(path), op, str(n_rows)],
            check=True, capture_output=True, text=True,
        )
        out.append(json.loads(res.stdout.strip().splitlines()[-1]))
    return out


def main(argv=None):
    parser = cli_parser(__doc__)
    parser.add_argument("--probe", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.probe:
        path, op, n_rows = args.probe
        _probe(path, op, int(n_rows))
        return
    import _throughput
    import _time_to_quality
    from _machine import describe, git_commit
    from _speed_report import report
    from sklearn.datasets import load_digits

    cfg = SMOKE if args.smoke else FULL
    commit = git_commit()
    start = time.perf_counter()
    digits = load_digits().data
    res = {"overhead": {}, "parts": {}}
    for key, X, epochs, rounds in [
            ("digits", digits, cfg["digits_epochs"], cfg["rounds"]),
            ("big", synthetic(cfg["big_rows"]), cfg["big_epochs"], cfg["big_rounds"]),
            ("huge", synthetic(cfg["huge_rows"]), cfg["huge_epochs"], cfg["huge_rounds"])]:
        medians, all_times, per_epoch, (batch, rate) = overhead(X, epochs, rounds)
        res["overhead"][key] = {"median": medians, "all": all_times, "per_epoch": per_epoch,
                                "batch": batch, "learning_rate": rate}
        res["parts"][key] = parts(X, epochs)
        print(f"overhead {key}: {medians}", file=sys.stderr)
    with tempfile.TemporaryDirectory() as tmp:
        res["io"] = io_costs(cfg["io_rows"], tmp)
    print(f"io: {res['io']}", file=sys.stderr)
    res["scaling"] = scaling(cfg["scaling"], cfg["scaling_epochs"])
    print("scaling done", file=sys.stderr)
    res["kmeans"] = kmeans_sample(cfg["kmeans"])
    res["throughput"] = _throughput.run(synthetic(cfg["throughput_rows"], seed=3),
                                        cfg["throughput_batches"], cfg["throughput_epochs"],
                                        fit_scvae)
    print("throughput done", file=sys.stderr)
    res["quality"] = _time_to_quality.measure(
        synthetic(max(cfg["quality"]) + _time_to_quality.N_TEST, seed=5), cfg["quality"],
        **({} if not args.smoke else dict(umap_up_to=0, long=dict(
            _time_to_quality.LONG, max_iter=2, n_iter_no_change=2))))
    n_issue = 1_500 if args.smoke else 30_000
    res["quality_curved"] = _time_to_quality.measure(
        curved_latent(n_issue + _time_to_quality.N_TEST, seed=6), [n_issue], umap_up_to=0,
        **({} if not args.smoke else dict(long=dict(
            _time_to_quality.LONG, max_iter=2, n_iter_no_change=2))))
    wall = time.perf_counter() - start
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / "speed.json").write_text(json.dumps(res, indent=1))
    settings = dict(target=TARGET, epoch_target=EPOCH_TARGET, hidden=HIDDEN,
                    n_components=N_COMPONENTS)
    lines = report(res, cfg, settings, args, describe(commit), wall)
    (args.output / "speed.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {args.output / 'speed.md'} ({wall / 60:.1f} min)", file=sys.stderr)


if __name__ == "__main__":
    main()
