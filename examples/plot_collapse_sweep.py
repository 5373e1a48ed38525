"""
Collapse of a conventional VAE versus the certificate, across the decoder variance
==================================================================================

A Gaussian VAE with fixed decoder variance σ² collapses once σ² exceeds the
largest eigenvalue λ_max of the (standardized) data covariance. We sweep
σ²/λ_max on digits for the conventional :class:`skvae.VAE` and for
:class:`skvae.SphericalClusterVAE` at the same σ², and plot the active units
and whether the collapse certificate holds. The conventional VAE's collapsed
fits raise :class:`skvae.exceptions.PosteriorCollapseWarning`; we record
those warnings and print them, as a user should.
"""

import warnings

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.preprocessing import StandardScaler

from skvae import VAE, SphericalClusterVAE

X, _ = load_digits(return_X_y=True)
X = X[::3]  # 599 images keep the example fast
lam_max = np.linalg.eigvalsh(np.cov(StandardScaler().fit_transform(X), rowvar=False))[-1]
ratios = [0.25, 1.0, 4.0, 16.0]
results = {"VAE": [], "SphericalClusterVAE": []}
for ratio in ratios:
    for name, Est in [("VAE", VAE), ("SphericalClusterVAE", SphericalClusterVAE)]:
        model = Est(n_components=2, decoder_variance=ratio * lam_max, random_state=0)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model.fit(X)
        results[name].append((model.active_units_, model.collapse_certified_))
        raised = sorted({w.category.__name__ for w in caught}) or ["no warning"]
        print(f"sigma^2/lambda_max={ratio:5.2f} {name:20s} active units "
              f"{model.active_units_}, certified {model.collapse_certified_}: "
              + ", ".join(raised))

# %%
fig, ax = plt.subplots(figsize=(6, 3.8), layout="constrained")
for (name, res), marker in zip(results.items(), ["o", "s"]):
    units = [r[0] for r in res]
    ax.plot(ratios, units, marker=marker, label=name)
    for x, (u, cert) in zip(ratios, res):
        ax.annotate("cert." if cert else "not cert.", (x, u), textcoords="offset points",
                    xytext=(0, 6), ha="center", fontsize=8)
ax.set_xscale("log", base=2)
ax.set_xlabel("decoder variance σ² / λ_max")
ax.set_ylabel("active units (of 2)")
ax.set_ylim(-0.3, 2.6)
ax.legend()
plt.show()
