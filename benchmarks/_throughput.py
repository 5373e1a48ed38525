"""Training throughput in FLOP/s at each batch size, against the machine's measured matmul rate."""

import time

import numpy as np

from _common import one_torch_thread


def matmul_rate(size=2048, repeats=5):
    """Best float32 GFLOP/s of a size x size matmul on one thread (the fits' default n_jobs)."""
    import torch

    g = torch.Generator().manual_seed(0)
    a = torch.randn((size, size), generator=g)
    b = torch.randn((size, size), generator=g)
    with one_torch_thread():
        torch.mm(a, b)  # warm-up
        best = min(_seconds(lambda: torch.mm(a, b)) for _ in range(repeats))
    return 2 * size**3 / best / 1e9


def _seconds(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def flops_per_row(n_features, hidden, n_components):
    """Multiply-adds x 2 of one training step per row: forward, and backward to weights and inputs.

    Every linear layer costs ``2 in out`` forward and twice that backward
    (gradients of the weights and of the layer's input), except that the
    encoder's first layer needs no gradient of its input (the data).
    """
    enc = [n_features, *hidden, 2 * n_components]
    dec = [n_components, *reversed(hidden), n_features]
    pairs = [(a, b) for sizes in (enc, dec) for a, b in zip(sizes[:-1], sizes[1:])]
    return 6 * sum(a * b for a, b in pairs) - 2 * enc[0] * enc[1]


def training_throughput(X, batch_sizes, epochs, fit):
    """GFLOP/s of the training loop (the training phase of ``fit_times_``) at each batch size.

    ``fit(X, epochs, batch_size)`` fits a model; ``None`` in ``batch_sizes``
    means the estimator's default ("auto"), whose value is reported as
    ``used_batch``.
    """
    rows = []
    for batch in batch_sizes:
        model = fit(X, epochs, batch)
        seconds = model.fit_times_["training"]
        per_row = flops_per_row(X.shape[1], model.hidden_layer_sizes, model.n_components)
        rows_per_s = model.n_iter_ * X.shape[0] / seconds
        rows.append(dict(batch=batch, used_batch=model.batch_size_, epochs=model.n_iter_,
                         seconds=seconds, rows_per_s=rows_per_s,
                         gflops=rows_per_s * per_row / 1e9))
    return rows


def report_lines(res, n_rows):
    rate = res["matmul_gflops"]
    out = [f"Training loop only (the training phase of the fit's `fit_times_`), {n_rows:,} × 64 rows, default network; "
           f"FLOPs per row = 6 × Σ in·out over the linear layers − 2 × the first layer's "
           f"(no input gradient). Measured matmul rate (2048² float32, one thread): "
           f"**{rate:.0f} GFLOP/s**.", "",
           "| batch | epochs | seconds | rows/s | GFLOP/s | share of the matmul rate |",
           "|---|---|---|---|---|---|"]
    for r in res["rows"]:
        label = f"auto ({r['used_batch']})" if r["batch"] is None else f"{r['batch']}"
        share = r["gflops"] / rate
        mark = " (default)" if r["batch"] is None else ""
        out.append(f"| {label}{mark} | {r['epochs']} | {r['seconds']:.2f} | "
                   f"{r['rows_per_s']:,.0f} | {r['gflops']:.1f} | {100 * share:.0f}% |")
    default = next(r for r in res["rows"] if r["batch"] is None)
    verdict = "meets" if default["gflops"] / rate >= 0.30 else "**misses**"
    out += ["", f"At the default batch the loop runs at {100 * default['gflops'] / rate:.0f}% of "
            f"the matmul rate: {verdict} the ≥ 30% target."]
    return out


def run(X, batch_sizes, epochs, fit):
    rows = training_throughput(X, batch_sizes, epochs, fit)
    return {"matmul_gflops": float(np.median([matmul_rate() for _ in range(3)])), "rows": rows}
