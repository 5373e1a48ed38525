"""
The spherical shell map on 2-D data
===================================

:class:`skvae.SphericalShellScaler` standardizes the data and moves every row
along its own direction into the shell ``r_min ≤ ‖y‖ < r_max``. The radial
profile ``ρ(r) = r_min + (r_max − r_min)·r/(r + m)`` is increasing, so the
map is invertible, and the median row lands in the middle of the shell.
"""

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import make_blobs

from skvae import SphericalShellScaler

X, y = make_blobs(n_samples=600, centers=4, cluster_std=1.2, random_state=3)
scaler = SphericalShellScaler(r_min=1.0, r_max=2.0).fit(X)
Y = scaler.transform(X)
norms = np.linalg.norm(Y, axis=1)
print(f"norms on the shell: min {norms.min():.3f}, max {norms.max():.3f}")
print("max inverse error:", np.abs(scaler.inverse_transform(Y) - X).max())

# %%
fig, axes = plt.subplots(1, 2, figsize=(10, 4.6), layout="constrained")
axes[0].scatter(X[:, 0], X[:, 1], c=y, cmap="tab10", s=8)
axes[0].set_title("original data")
axes[1].scatter(Y[:, 0], Y[:, 1], c=y, cmap="tab10", s=8)
t = np.linspace(0, 2 * np.pi, 200)
for r in (1.0, 2.0):
    axes[1].plot(r * np.cos(t), r * np.sin(t), "k--", lw=1)
axes[1].set_aspect("equal")
axes[1].set_title("after SphericalShellScaler(r_min=1, r_max=2)")
plt.show()
