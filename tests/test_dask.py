"""Distributed fitting on a real dask.distributed LocalCluster (worker processes)."""

import warnings

import joblib
import pytest
from numpy.testing import assert_allclose
from sklearn.model_selection import GridSearchCV, KFold

from skvae import SphericalClusterVAE

from _helpers import fit_quietly, heldout_error, train_test_blobs

distributed = pytest.importorskip("distributed")
da = pytest.importorskip("dask.array")
wrappers = pytest.importorskip("dask_ml.wrappers")

SMALL = dict(n_clusters=5, hidden_layer_sizes=(32,), random_state=0)


@pytest.fixture(scope="module")
def client():
    # Worker processes, one thread each; torch in each worker limited to one
    # intra-op thread (see the user guide) so workers do not oversubscribe.
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
        env={"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"},
    )
    with distributed.Client(cluster) as client:
        yield client
    cluster.close()


@pytest.fixture(scope="module")
def data():
    return train_test_blobs()


def test_incremental_on_a_local_cluster(client, data):
    X, X_test = data
    in_memory = fit_quietly(SphericalClusterVAE(max_iter=40, **SMALL), X)
    dX = da.from_array(X, chunks=300)  # 4 blocks, each partial_fit on a worker
    inc = wrappers.Incremental(SphericalClusterVAE(**SMALL))
    for _ in range(in_memory.n_iter_):  # one partial_fit pass over the blocks each
        inc.partial_fit(dX)
    model = inc.estimator_
    assert model.n_partial_fit_calls_ == 4 * in_memory.n_iter_
    assert model.collapse_certified_
    ratio = heldout_error(model, X_test) / heldout_error(in_memory, X_test)
    assert ratio < 1.10, ratio


def test_grid_search_on_the_dask_backend_matches_sequential(client, data):
    X, _ = data
    grid = {"n_components": [1, 2], "margin": [0.5, 0.8]}
    est = SphericalClusterVAE(max_iter=10, **SMALL)

    def search(n_jobs):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return GridSearchCV(est, grid, cv=KFold(2), n_jobs=n_jobs).fit(X[:600])

    sequential = search(1)
    with joblib.parallel_backend("dask"):
        on_dask = search(-1)
    # Worker processes run torch with one thread; the thread count changes
    # float32 reduction order only (user guide, "Reproducibility").
    assert_allclose(on_dask.cv_results_["mean_test_score"],
                    sequential.cv_results_["mean_test_score"], rtol=1e-6)
    assert on_dask.best_params_ == sequential.best_params_
