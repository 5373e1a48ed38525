"""
Quick start: digits in two latent dimensions
============================================

Fit :class:`skvae.SphericalClusterVAE` on scikit-learn's digits, read the
certificate and the diagnostics, and draw the 2-D latent space coloured by
digit, next to PCA with the same number of components.
"""

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.model_selection import train_test_split

from skvae import SphericalClusterVAE

X, y = load_digits(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(
    X, y, test_size=0.3, random_state=0, stratify=y
)

vae = SphericalClusterVAE(n_components=2, random_state=0).fit(X_train)
pca = PCA(n_components=2).fit(X_train)

# %%
# The certificate: the expected reconstruction loss is below the loss of any
# collapsed model, by more than three standard errors.
print(f"delta_collapse = {vae.collapse_loss_:.3f}, tau = {vae.reconstruction_target_:.3f}")
print(f"R_hat = {vae.reconstruction_loss_:.3f} ± {vae.reconstruction_loss_se_:.3f}")
print(f"certified: {vae.collapse_certified_}, active units: {vae.active_units_}")
# How much of the (standardized) data the model captures, 1 - R_hat / T:
print(f"explained fraction: {vae.explained_fraction_:.2f} after {vae.n_iter_} epochs")


def heldout_mse(model):
    X_hat = model.inverse_transform(model.transform(X_test))
    return np.mean(np.sum((X_test - X_hat) ** 2, axis=1))


print(f"held-out MSE: SphericalClusterVAE {heldout_mse(vae):.1f}, PCA {heldout_mse(pca):.1f}")

# %%
fig, axes = plt.subplots(1, 2, figsize=(10, 4.2), layout="constrained")
for ax, model, title in [(axes[0], vae, "SphericalClusterVAE"), (axes[1], pca, "PCA")]:
    Z = model.transform(X_test)
    sc = ax.scatter(Z[:, 0], Z[:, 1], c=y_test, cmap="tab10", s=8, vmin=-0.5, vmax=9.5)
    ax.set_title(title)
fig.colorbar(sc, ax=axes, ticks=range(10), label="digit")
plt.show()
