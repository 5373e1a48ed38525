"""
Missing values: reduce and impute data with holes
=================================================

Remove 30% of the entries of scikit-learn's wine data at random, then

* fit :class:`skvae.SphericalClusterVAE` on the rows with their holes (the
  loss runs over the observed entries; the fit is still certified) and
  embed held-out rows that have holes too;
* fill the holes with :class:`skvae.VAEImputer` and compare its error with
  scikit-learn's imputers on the held-out rows.
"""

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_wine
from sklearn.experimental import enable_iterative_imputer  # noqa: F401
from sklearn.impute import IterativeImputer, KNNImputer, SimpleImputer
from sklearn.model_selection import train_test_split

from skvae import SphericalClusterVAE, VAEImputer

X, y = load_wine(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(
    X, y, test_size=0.3, random_state=0, stratify=y
)
rng = np.random.default_rng(0)
holes_train = rng.random(X_train.shape) < 0.3
holes_test = rng.random(X_test.shape) < 0.3
Xh_train = np.where(holes_train, np.nan, X_train)
Xh_test = np.where(holes_test, np.nan, X_test)
print(f"rows with a hole: {np.isnan(Xh_train).any(axis=1).mean():.0%} of the training rows")

# %%
# Dimensionality reduction with holes: no imputation step in front.
vae = SphericalClusterVAE(n_components=2, random_state=0).fit(Xh_train)
print(f"certified: {vae.collapse_certified_}; R_hat = {vae.reconstruction_loss_:.2f} "
      f"< delta_collapse = {vae.collapse_loss_:.2f} (observed entries)")
Z_holes = vae.transform(Xh_test)
Z_full = SphericalClusterVAE(n_components=2, random_state=0).fit(X_train).transform(X_test)

# %%
# Imputation: held-out error in standard deviations, on the removed entries only.
scale = X_train.std(axis=0)
imputers = {
    "mean": SimpleImputer(),
    "KNN": KNNImputer(),
    "IterativeImputer": IterativeImputer(random_state=0),
    "VAEImputer": VAEImputer(random_state=0),
}
for name, imputer in imputers.items():
    filled = imputer.fit(Xh_train).transform(Xh_test)
    err = np.sqrt(np.mean((((filled - X_test) / scale)[holes_test]) ** 2))
    print(f"{name:>16}: {err:.3f}")

# %%
fig, axes = plt.subplots(1, 2, figsize=(10, 4.2), layout="constrained")
for ax, Z, title in [(axes[0], Z_full, "fitted and embedded without holes"),
                     (axes[1], Z_holes, "fitted and embedded with 30% holes")]:
    ax.scatter(Z[:, 0], Z[:, 1], c=y_test, cmap="viridis", s=14)
    ax.set_title(title)
plt.show()
