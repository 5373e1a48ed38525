"""Input checks whose errors name the problem, atomic fits, and finite-output guards."""

import numpy as np
from sklearn.utils.validation import validate_data


def fit_or_restore(estimator, fit, *args, **kwargs):
    """Run ``fit(*args, **kwargs)``; if it raises anything, put ``estimator`` back as it was.

    A failed refit (bad input, a diverged loss, KeyboardInterrupt,
    MemoryError) must leave a previously fitted estimator usable and
    unchanged, including ``feature_names_in_``, which ``validate_data``
    deletes before it checks the values.
    """
    saved = dict(estimator.__dict__)
    try:
        fit(*args, **kwargs)
    except BaseException:
        estimator.__dict__.clear()
        estimator.__dict__.update(saved)
        raise
    return estimator


def _column_name(X, j):
    columns = getattr(X, "columns", None)
    return f"column {j}" if columns is None else f"column {j} ({list(columns)[j]!r})"


def _first_non_numeric(X):
    """``(column index, row index, value)`` of the first entry float() rejects, or None."""
    if hasattr(X, "columns") and hasattr(X, "__getitem__"):
        columns = [np.asarray(X[c], dtype=object) for c in X.columns]
    else:
        try:
            A = np.asarray(X, dtype=object)
        except (ValueError, TypeError):  # ragged nested lists
            return None
        if A.ndim != 2:
            return None
        columns = list(A.T)
    for j, col in enumerate(columns):
        for i, value in enumerate(np.ravel(col)):
            try:
                float(value)
            except (TypeError, ValueError):
                return j, i, value
    return None


#: Input dtypes kept by the inference methods (as PCA does); others become float64.
FLOAT_DTYPES = (np.float64, np.float32)


def validate_numeric(estimator, X, *, reset, dtype=np.float64, allow_nan=False):
    """``validate_data(X, dtype=dtype)``; a non-numeric entry is named by column and row.

    With ``allow_nan`` NaN passes as a missing value; infinity is refused either way.
    """
    finite = "allow-nan" if allow_nan else True
    try:
        return validate_data(estimator, X, dtype=dtype, reset=reset, ensure_all_finite=finite)
    except ValueError as exc:
        if not isinstance(X, np.ndarray) or X.dtype.kind in "OUSV":
            where = _first_non_numeric(X)
            if where is not None:
                j, i, value = where
                raise ValueError(
                    f"{type(estimator).__name__} needs numeric features, but "
                    f"{_column_name(X, j)} of X holds {value!r} (row {i}). Encode "
                    "categorical columns first, e.g. with OneHotEncoder in a "
                    "ColumnTransformer."
                ) from exc
        raise


def non_finite_rows(out):
    """Boolean mask of the rows of ``out`` holding NaN or +-inf."""
    return ~np.all(np.isfinite(out.reshape(out.shape[0], -1)), axis=1)


def check_finite_output(estimator, method, out, describe, dtype=np.float64):
    """``out`` cast to ``dtype``, or a ValueError naming the rows that dtype cannot hold.

    ``describe(i, dtype_name)`` explains why input row ``i`` gives a value the
    dtype cannot hold (e.g. how far outside the training data it lies), so
    the message names the cause, not a NaN.
    """
    with np.errstate(over="ignore"):
        out = out.astype(dtype, copy=False)
    bad = non_finite_rows(out)
    if np.any(bad):
        first = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"{type(estimator).__name__}.{method}: {int(bad.sum())} of {bad.size} "
            f"row(s) give non-finite values (first: row {first}): "
            f"{describe(first, np.dtype(dtype).name)}"
        )
    return out
