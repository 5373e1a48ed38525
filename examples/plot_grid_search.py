"""
GridSearchCV over the number of clusters and the shell radii
=============================================================

:meth:`skvae.SphericalClusterVAE.score` is the held-out ELBO of the original
data (the Jacobian of the shell map included), so
:class:`~sklearn.model_selection.GridSearchCV` needs no scorer to compare
``n_clusters``, ``r_min`` and ``r_max``. We search a small grid on synthetic
blobs inside a :class:`~sklearn.pipeline.Pipeline` and draw the mean
cross-validated score as a heat map. (Scores compare settings of the model,
not different preprocessing before it: a scaler's Jacobian is not counted.)
The radii are in standardized units; ``r_max="auto"`` leaves the shell open
outward (the collapse loss depends only on the inner radius).
"""

import matplotlib.pyplot as plt
from sklearn.datasets import make_blobs
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from skvae import SphericalClusterVAE

X, _ = make_blobs(n_samples=300, n_features=10, centers=5, cluster_std=1.5, random_state=0)
pipe = Pipeline([
    ("scale", StandardScaler()),
    ("vae", SphericalClusterVAE(n_components=2, hidden_layer_sizes=(32,), random_state=0)),
])
n_clusters = [2, 5, 10]
r_max = [2.0, 3.0, "auto"]
grid = {"vae__n_clusters": n_clusters, "vae__r_max": r_max}
search = GridSearchCV(pipe, grid, cv=3).fit(X)
print("best:", search.best_params_, f"score {search.best_score_:.2f} nats per row")

# %%
scores = search.cv_results_["mean_test_score"].reshape(len(n_clusters), len(r_max))
fig, ax = plt.subplots(figsize=(5, 4), layout="constrained")
im = ax.imshow(scores, cmap="viridis")
ax.set_xticks(range(len(r_max)), [str(r) for r in r_max])
ax.set_yticks(range(len(n_clusters)), [str(k) for k in n_clusters])
ax.set_xlabel("r_max (r_min = 'auto')")
ax.set_ylabel("n_clusters")
for i in range(len(n_clusters)):
    for j in range(len(r_max)):
        ax.text(j, i, f"{scores[i, j]:.1f}", ha="center", va="center", color="w")
fig.colorbar(im, label="mean held-out ELBO (nats)")
plt.show()
