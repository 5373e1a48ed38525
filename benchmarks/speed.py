"""Speed benchmark: what SphericalClusterVAE costs over skvae.VAE and over a hand-written torch loop.

Measures, in one run:

1. fit-time overhead ratios with the same network, data and number of
   epochs (early stopping off): SphericalClusterVAE / VAE and VAE / a
   minimal hand-written torch loop, on digits and on a 100k-row synthetic
   set; the three fits of a round run back to back, the order rotating
   between rounds, and the ratios are of the medians;
2. the time of the parts of a SphericalClusterVAE fit (standardize + shell,
   K-means, training, certificate, the other diagnostics);
3. transform and inverse_transform throughput and their peak extra memory on
   1M rows x 64 features (each in a fresh process, read from ru_maxrss);
4. how fit time grows with n_samples, 1k to 1M, at a fixed number of epochs;
5. KMeans against MiniBatchKMeans on shell data, to place the switch.

Usage::

    python benchmarks/speed.py            # results in benchmarks/results/speed.md
    python benchmarks/speed.py --smoke --output /tmp/x   # tiny sizes; for the tests
"""

import argparse
import contextlib
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
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

FULL = dict(
    rounds=7, big_rounds=5, digits_epochs=200, big_rows=100_000, big_epochs=10,
    io_rows=1_000_000, scaling=[1_000, 10_000, 100_000, 1_000_000], scaling_epochs=2,
    kmeans=[10_000, 50_000, 100_000, 200_000, 500_000, 1_000_000],
)
SMOKE = dict(
    rounds=2, big_rounds=2, digits_epochs=2, big_rows=2_000, big_epochs=1,
    io_rows=5_000, scaling=[500, 2_000], scaling_epochs=1, kmeans=[1_000, 3_000],
)
N_FEATURES = 64
HIDDEN = (128, 64)
N_COMPONENTS = 2
BATCH = 200
TARGET = 1.10


def synthetic(n_samples, seed=0):
    """64-D Gaussian blobs, 10 centres; generated in blocks to bound memory."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=4.0, size=(10, N_FEATURES))
    X = np.empty((n_samples, N_FEATURES))
    for s in range(0, n_samples, 100_000):
        e = min(s + 100_000, n_samples)
        X[s:e] = centers[rng.integers(10, size=e - s)] + rng.standard_normal((e - s, N_FEATURES))
    return X


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


def _params(epochs):
    # Early stopping off (n_iter_no_change > epochs): every contender runs the
    # same number of epochs.
    return dict(n_components=N_COMPONENTS, hidden_layer_sizes=HIDDEN, max_iter=epochs,
                batch_size=BATCH, n_iter_no_change=epochs + 1, random_state=0)


def fit_scvae(X, epochs):
    from skvae import SphericalClusterVAE

    return _quiet(lambda: SphericalClusterVAE(**_params(epochs)).fit(X))


def fit_vae(X, epochs):
    from skvae import VAE

    return _quiet(lambda: VAE(**_params(epochs)).fit(X))


def fit_hand_written(X, epochs):
    """What a user would write by hand: standardize, the same MLPs, Adam, the same loss."""
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
    opt = torch.optim.Adam([*enc.parameters(), *dec.parameters()], lr=1e-3)
    g = torch.Generator().manual_seed(0)
    for _ in range(epochs):
        perm = torch.randperm(n, generator=g)
        for s in range(0, n, BATCH):
            y = Y[perm[s : s + BATCH]]
            mu, logvar = enc(y).chunk(2, dim=1)
            z = mu + torch.exp(0.5 * logvar) * torch.randn(mu.shape, generator=g)
            R = (y - dec(z)).pow(2).sum(dim=1).mean()
            kl = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(dim=1).mean()
            loss = 0.5 * d * torch.log(R) + kl
            opt.zero_grad()
            loss.backward()
            opt.step()
    return enc, dec


CONTENDERS = {"SphericalClusterVAE": fit_scvae, "VAE": fit_vae, "hand-written loop": fit_hand_written}


def overhead(X, epochs, rounds):
    """Median fit seconds of each contender over alternated rounds."""
    names = list(CONTENDERS)
    times = {n: [] for n in names}
    fit_scvae(X[:500], 1)  # warm-up: imports, thread pools
    for r in range(rounds):
        for name in names[r % 3:] + names[: r % 3]:
            times[name].append(_timed(lambda: CONTENDERS[name](X, epochs))[0])
    return {n: statistics.median(t) for n, t in times.items()}, times


@contextlib.contextmanager
def _patched(obj, attr, bucket, key):
    original = getattr(obj, attr)

    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            bucket[key] = bucket.get(key, 0.0) + time.perf_counter() - start

    setattr(obj, attr, wrapper)
    try:
        yield
    finally:
        setattr(obj, attr, original)


def parts(X, epochs):
    """Seconds spent in each part of one SphericalClusterVAE fit."""
    import skvae._fitting as base
    import skvae._representation as rep

    t = {}
    with contextlib.ExitStack() as stack:
        for obj, attr, key in [
            (rep.StandardizedShell, "fit", "standardize + shell"),
            (rep.StandardizedShell, "_transform", "standardize + shell"),
            (rep, "fit_feasible_region", "K-means (feasible region)"),
            (base, "train", "training"),
            (base._diagnostics, "collapse_certificate", "certificate"),
            (base._diagnostics, "encode", "other diagnostics (encode, MI, KL)"),
            (base._diagnostics, "mutual_information", "other diagnostics (encode, MI, KL)"),
        ]:
            stack.enter_context(_patched(obj, attr, t, key))
        total, _ = _timed(lambda: fit_scvae(X, epochs))
    t["rest (validation, network set-up, float64 copy)"] = total - sum(t.values())
    t["total"] = total
    return t


def kmeans_switch(sizes):
    """Seconds and within-cluster variance of KMeans and MiniBatchKMeans as the library runs them."""
    from sklearn.cluster import KMeans, MiniBatchKMeans

    from skvae import SphericalShellScaler

    rows = []
    X = SphericalShellScaler().fit_transform(synthetic(max(sizes), seed=1))
    for n in sizes:
        Y = X[:n]
        out = {"n_samples": n}
        for name, km in [("KMeans", KMeans(n_clusters=8, n_init=4, random_state=0)),
                         ("MiniBatchKMeans", MiniBatchKMeans(n_clusters=8, n_init=3,
                                                            batch_size=4096, random_state=0))]:
            sec, labels = _timed(lambda km=km: km.fit_predict(Y))
            W = float(np.mean(np.sum((Y - km.cluster_centers_[labels]) ** 2, axis=1)))
            out[name] = (sec, W)
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


# ------------------------------------------------------------------ report
def _ratio_line(label, num, den, times):
    # Ratios of the two fits of the same round (run back to back) cancel the
    # slow drifts of a shared machine; their median is the estimate.
    paired = np.array(times[num]) / np.array(times[den])
    r = float(np.median(paired))
    verdict = "meets" if r <= TARGET else "**misses**"
    return (f"| {label} | {num} / {den} | {r:.3f} | {paired.min():.3f}–{paired.max():.3f} | "
            f"{verdict} the ≤ {TARGET:.2f} target |")


def report(res, cfg, args, machine, wall):
    import torch

    mode = " --smoke" if args.smoke else ""
    out = [
        "# Speed benchmark", "",
        f"Generated by `python benchmarks/speed.py{mode}` on "
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC in {wall / 60:.1f} min, "
        f"torch using {torch.get_num_threads()} threads. Machine:", "",
        *machine, "",
        f"Every fit: `n_components={N_COMPONENTS}`, hidden layers {HIDDEN}, batch "
        f"{BATCH}, Adam 1e-3, `random_state=0`, early stopping off so all contenders "
        "run the same epochs. The hand-written loop standardizes, builds the same "
        "MLPs with `nn.Sequential`, and runs the same minibatch loop and loss "
        "(learned decoder variance, β=1) with nothing else: no validation, "
        "certificate or diagnostics.", "",
        "## 1. Overhead ratios", "",
        f"Median of {cfg['rounds']} rounds on digits and {cfg['big_rounds']} on the "
        "synthetic set; in each round the three fits run back to "
        "back and the order rotates between rounds.", "",
        "| data | SphericalClusterVAE (s) | VAE (s) | hand-written loop (s) |",
        "|---|---|---|---|",
    ]
    for key, label in [("digits", f"digits 1797 × 64, {cfg['digits_epochs']} epochs"),
                       ("big", f"synthetic {cfg['big_rows']:,} × 64, {cfg['big_epochs']} epochs")]:
        m = res["overhead"][key]["median"]
        out.append(f"| {label} | {m['SphericalClusterVAE']:.2f} | {m['VAE']:.2f} | "
                   f"{m['hand-written loop']:.2f} |")
    out += ["", "| data | ratio | median of the per-round ratios | range over rounds | verdict |",
            "|---|---|---|---|---|"]
    for key, label in [("digits", "digits"), ("big", f"synthetic {cfg['big_rows']:,}")]:
        t = res["overhead"][key]["all"]
        out.append(_ratio_line(label, "SphericalClusterVAE", "VAE", t))
        out.append(_ratio_line(label, "VAE", "hand-written loop", t))
        out.append(_ratio_line(label, "SphericalClusterVAE", "hand-written loop", t))
    spread = [100 * (max(v) - min(v)) / min(v)
              for k in ["digits", "big"] for v in res["overhead"][k]["all"].values()]
    out += ["", f"Machine noise: the same fit's time varied by {min(spread):.0f}–"
            f"{max(spread):.0f}% (max/min − 1) between rounds of this run."]
    out += ["", "All rounds (seconds): ", ""]
    for key in ["digits", "big"]:
        for name, t in res["overhead"][key]["all"].items():
            out.append(f"- {key}, {name}: " + ", ".join(f"{x:.2f}" for x in t))

    out += ["", "## 2. Parts of a SphericalClusterVAE fit (seconds)", ""]
    keys = list(res["parts"]["digits"])
    out += ["| part | digits | synthetic |", "|---|---|---|"]
    for k in keys:
        a, b = res["parts"]["digits"][k], res["parts"]["big"][k]
        out.append(f"| {k} | {a:.3f} ({100 * a / res['parts']['digits']['total']:.1f}%) | "
                   f"{b:.3f} ({100 * b / res['parts']['big']['total']:.1f}%) |")

    out += ["", f"## 3. transform and inverse_transform on {cfg['io_rows']:,} × 64", "",
            "Each call runs in a fresh process; extra peak = growth of the process's peak "
            "resident memory during the call (ru_maxrss), input already allocated.", "",
            "| call | seconds | rows/s | input (MiB) | output (MiB) | extra peak (MiB) |",
            "|---|---|---|---|---|---|"]
    for r in res["io"]:
        out.append(f"| {r['op']} | {r['seconds']:.2f} | {cfg['io_rows'] / r['seconds']:,.0f} | "
                   f"{r['input_mib']:.0f} | {r['output_mib']:.0f} | {r['extra_peak_mib']:.0f} |")

    out += ["", f"## 4. Fit time against n_samples ({cfg['scaling_epochs']} epochs)", "",
            "| n_samples | SphericalClusterVAE (s) | µs per row | K-means (s) | training (s) | "
            "certificate (s) | VAE (s) | ratio to VAE |", "|---|---|---|---|---|---|---|---|"]
    rows = res["scaling"]
    for r in rows:
        p = r["parts"]
        out.append(
            f"| {r['n_samples']:,} | {p['total']:.2f} | {1e6 * p['total'] / r['n_samples']:.1f} | "
            f"{p['K-means (feasible region)']:.2f} | {p['training']:.2f} | "
            f"{p['certificate']:.2f} | {r['vae']:.2f} | {p['total'] / r['vae']:.3f} |")
    n = np.array([r["n_samples"] for r in rows], dtype=float)
    t = np.array([r["parts"]["total"] for r in rows])
    if len(rows) >= 2:
        slope_all = np.polyfit(np.log(n), np.log(t), 1)[0]
        slope_top = np.log(t[-1] / t[-2]) / np.log(n[-1] / n[-2])
        out += ["", f"Log-log slope of fit time against n_samples: {slope_all:.3f} over "
                f"{int(n[0]):,}–{int(n[-1]):,}, {slope_top:.3f} between the two largest "
                "sizes (1 = linear)."]

    out += ["", "## 5. KMeans against MiniBatchKMeans on shell data (K = 8, 64 features)", "",
            "As the library runs them: KMeans(n_init=4), MiniBatchKMeans(n_init=3, "
            "batch_size=4096). W = mean squared distance to the assigned centre.", "",
            "| n_samples | KMeans (s) | MiniBatchKMeans (s) | speed-up | W KMeans | "
            "W MiniBatch / W KMeans |", "|---|---|---|---|---|---|"]
    for r in res["kmeans"]:
        (tk, wk), (tm, wm) = r["KMeans"], r["MiniBatchKMeans"]
        out.append(f"| {r['n_samples']:,} | {tk:.2f} | {tm:.2f} | {tk / tm:.1f}× | {wk:.4f} | "
                   f"{wm / wk:.4f} |")
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: checks the code only")
    parser.add_argument("--output", type=Path, default=HERE / "results")
    parser.add_argument("--probe", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.probe:
        path, op, n_rows = args.probe
        _probe(path, op, int(n_rows))
        return
    from _machine import describe, git_commit
    from sklearn.datasets import load_digits

    cfg = SMOKE if args.smoke else FULL
    commit = git_commit()
    start = time.perf_counter()
    digits = load_digits().data
    big = synthetic(cfg["big_rows"])
    res = {"overhead": {}, "parts": {}}
    for key, X, epochs, rounds in [
            ("digits", digits, cfg["digits_epochs"], cfg["rounds"]),
            ("big", big, cfg["big_epochs"], cfg["big_rounds"])]:
        medians, all_times = overhead(X, epochs, rounds)
        res["overhead"][key] = {"median": medians, "all": all_times}
        res["parts"][key] = parts(X, epochs)
        print(f"overhead {key}: {medians}", file=sys.stderr)
    with tempfile.TemporaryDirectory() as tmp:
        res["io"] = io_costs(cfg["io_rows"], tmp)
    print(f"io: {res['io']}", file=sys.stderr)
    res["scaling"] = scaling(cfg["scaling"], cfg["scaling_epochs"])
    print("scaling done", file=sys.stderr)
    res["kmeans"] = kmeans_switch(cfg["kmeans"])
    wall = time.perf_counter() - start
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / "speed.json").write_text(json.dumps(res, indent=1))
    (args.output / "speed.md").write_text("\n".join(report(res, cfg, args, describe(commit), wall)) + "\n")
    print(f"wrote {args.output / 'speed.md'} ({wall / 60:.1f} min)", file=sys.stderr)


if __name__ == "__main__":
    main()
