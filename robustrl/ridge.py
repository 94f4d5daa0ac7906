"""Ridge regression for linear MDPs: Gram matrices, their inverses, Sherman-Morrison updates.

At every step the algorithms regress targets on features (arXiv:2411.18612,
docs/algorithms/r2pvi.md):
``Lambda = ridge I + sum_k w_k phi_k phi_k^T`` and ``w_hat = Lambda^{-1} sum_k w_k phi_k y_k``.
Offline methods factorise ``Lambda`` once per step (Cholesky, never ``inv``); online methods
keep ``Lambda^{-1}`` current with rank-one Sherman-Morrison updates (:class:`OnlineRidge`).
"""

from __future__ import annotations

import numpy as np

from robustrl._kernels import ridge as _kernels
from robustrl.validation import (
    check_array,
    check_int,
    check_nonnegative,
    check_positive,
)

__all__ = [
    "OnlineRidge",
    "blas_threads",
    "weighted_gram",
    "check_lambda_inv",
    "gram_inverse",
    "gram_matrix",
    "ridge_solve",
    "sherman_morrison_update",
]

# Relative asymmetry allowed in a user-supplied Lambda^{-1}: rank-one updates and LAPACK
# inverses are symmetric only up to rounding.
_SYMMETRY_RTOL = 1e-8


def check_lambda_inv(lambda_inv, dim: int | None = None, *, name: str = "lambda_inv",
                     leading: tuple[int, ...] = ()) -> np.ndarray:
    """Validate an inverse Gram matrix (or a stack of them, shape ``leading + (d, d)``).

    It must be finite, square, match the feature dimension ``dim`` when given, and be
    symmetric positive definite (the bonuses take square roots of its quadratic forms).
    """
    arr = check_array(lambda_inv, name, shape=(*leading, None, None))
    if arr.shape[-1] != arr.shape[-2]:
        raise ValueError(f"{name} must be square (d, d); got shape {arr.shape}")
    if dim is not None and arr.shape[-1] != dim:
        raise ValueError(
            f"{name} must have shape ({dim}, {dim}) to match the feature dimension {dim}; "
            f"got {arr.shape}"
        )
    transposed = np.swapaxes(arr, -1, -2)
    scale = max(1.0, float(np.max(np.abs(arr))))
    if np.max(np.abs(arr - transposed)) > _SYMMETRY_RTOL * scale:
        raise ValueError(f"{name} must be symmetric; largest asymmetry "
                         f"{np.max(np.abs(arr - transposed)):.3g}")
    try:
        np.linalg.cholesky(0.5 * (arr + transposed))
    except np.linalg.LinAlgError:
        raise ValueError(f"{name} must be positive definite") from None
    return arr


def _check_features(features, name: str = "features") -> np.ndarray:
    return check_array(features, name, ndim=2)


def _check_weights(weights, n_samples: int, name: str = "weights") -> np.ndarray:
    if weights is None:
        return np.ones(n_samples)
    return check_array(weights, name, shape=(n_samples,), low=0.0)


# ------------------------------------------------------------------ BLAS threading
# NumPy's OpenBLAS parallelises every product it can. For the Gram updates and d x d solves of a
# backward pass the threads cost more than they give, and on a machine shared with other
# processes a waiting thread turns a 0.3 ms product into 10-200 ms. Measured on the 2-core
# development machine under load (docs/performance.md): Gram K = 10^4, d = 30, mean of 200 calls
# 9 ms with 2 threads vs 0.8 ms with 1; an R2PVI fit at K = 6 x 10^5, d = 64: 1.4-19 s with
# threads vs 0.45-0.7 s without. So the backward passes run BLAS single-threaded unless a
# step's Gram update has at least this many flops; the default never threads. On a dedicated
# many-core machine set it (e.g. to 1e9) to let the largest Gram updates use every core.
PARALLEL_BLAS_MIN_FLOPS = float("inf")
_openblas_libs: list | None = None


def _openblas() -> list:
    """``(get, set)`` thread-count functions of the OpenBLAS builds bundled with NumPy and
    with SciPy (its LAPACK: Cholesky factors and solves), found by ctypes; empty when they
    cannot be found (another BLAS): then nothing is changed."""
    global _openblas_libs
    if _openblas_libs is None:
        import ctypes
        import glob
        import os

        site = os.path.dirname(os.path.dirname(np.__file__))
        found = []
        for folder, suffix in (("numpy.libs", "64_"), ("scipy.libs", "")):
            for path in sorted(glob.glob(os.path.join(site, folder, "libscipy_openblas*.so*"))):
                try:
                    lib = ctypes.CDLL(path)
                    get = getattr(lib, f"scipy_openblas_get_num_threads{suffix}")
                    set_ = getattr(lib, f"scipy_openblas_set_num_threads{suffix}")
                except (OSError, AttributeError):
                    continue
                get.restype = ctypes.c_int
                set_.argtypes = [ctypes.c_int]
                found.append((get, set_))
                break
        _openblas_libs = found
    return _openblas_libs


class blas_threads:  # noqa: N801 (a context manager used like a function)
    """``with blas_threads(n):`` the OpenBLAS of NumPy and of SciPy use at most ``n`` threads
    inside the block (no-op for a BLAS that cannot be controlled). Process-wide while active."""

    def __init__(self, n: int) -> None:
        self.n = int(n)
        self.previous: list[tuple] = []

    def __enter__(self) -> blas_threads:
        self.previous = []
        for get, set_ in _openblas():
            before = int(get())
            if self.n < before:
                set_(self.n)
                self.previous.append((set_, before))
        return self

    def __exit__(self, *exc) -> None:
        for set_, before in self.previous:
            set_(before)
        self.previous = []


def weighted_gram(features: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """``Phi^T W Phi`` (no ridge) for trusted C-contiguous float64 ``features (K, d)`` through
    BLAS: ``X^T X`` of one buffer is a ``syrk`` (exactly symmetric), ``X = sqrt(W) Phi``.
    Single-threaded below :data:`PARALLEL_BLAS_MIN_FLOPS` (by default always)."""
    x = features if weights is None else features * np.sqrt(weights)[:, None]
    n, d = x.shape
    if n * d * d < PARALLEL_BLAS_MIN_FLOPS:
        with blas_threads(1):
            return x.T @ x
    return x.T @ x


def gram_matrix(features, ridge: float, weights=None) -> np.ndarray:
    """``ridge * I + sum_k w_k phi_k phi_k^T`` for ``features (K, d)``, ``weights (K,) >= 0``."""
    phi = _check_features(features)
    ridge = check_positive(ridge, "ridge")
    w = _check_weights(weights, phi.shape[0])
    return _kernels.gram_matrix(phi, ridge, w)


def gram_inverse(features, ridge: float, weights=None) -> np.ndarray:
    """``Lambda^{-1}`` of :func:`gram_matrix`, through its Cholesky factor (exactly symmetric)."""
    return _kernels.spd_inverse(gram_matrix(features, ridge, weights))


def sherman_morrison_update(lambda_inv: np.ndarray, x, weight: float = 1.0) -> None:
    """Rank-one update of ``lambda_inv = Lambda^{-1}`` in place when ``weight * x x^T`` is added.

    ``lambda_inv`` must be a writeable C-contiguous float64 ``(d, d)`` array (it is modified,
    never copied); ``weight >= 0``.
    """
    if not (
        isinstance(lambda_inv, np.ndarray)
        and lambda_inv.dtype == np.float64
        and lambda_inv.flags.c_contiguous
        and lambda_inv.flags.writeable
    ):
        raise ValueError(
            "lambda_inv must be a writeable C-contiguous float64 numpy array (it is updated in "
            "place)"
        )
    arr = check_array(lambda_inv, "lambda_inv", shape=(None, None))
    dim = arr.shape[0]
    if arr.shape[1] != dim:
        raise ValueError(f"lambda_inv must be square (d, d); got shape {arr.shape}")
    vec = check_array(x, "x", ndim=1)
    if vec.shape[0] != dim:
        raise ValueError(
            f"x must have shape ({dim},) to match lambda_inv of shape {arr.shape}; got {vec.shape}"
        )
    w = check_nonnegative(weight, "weight")
    _kernels.sherman_morrison_update(lambda_inv, vec, w)


def ridge_solve(features, targets, ridge: float, weights=None) -> np.ndarray:
    """Weighted ridge regression ``(ridge I + Phi^T W Phi)^{-1} Phi^T W Y``.

    ``targets`` of shape ``(K,)`` gives ``(d,)``; ``(K, m)`` gives ``(d, m)``, all columns with
    one Cholesky factorisation.
    """
    phi = _check_features(features)
    n_samples = phi.shape[0]
    y = check_array(targets, "targets", ndim=(1, 2))
    if y.shape[0] != n_samples:
        raise ValueError(
            f"targets must have {n_samples} rows (one per feature row); got shape {y.shape}"
        )
    ridge = check_positive(ridge, "ridge")
    w = _check_weights(weights, n_samples)
    solution = _kernels.ridge_solve(phi, y.reshape(n_samples, -1), ridge, w)
    return solution[:, 0] if y.ndim == 1 else solution


class OnlineRidge:
    """Ridge regression fed one sample at a time, with ``Lambda^{-1}`` kept by Sherman-Morrison.

    ``n_targets=None`` means scalar targets (``solve()`` returns ``(d,)``); an integer ``m``
    means each target is a vector of length ``m`` (``solve()`` returns ``(d, m)``).
    A sample added without a target enters the Gram matrix only, as if its target were 0
    (useful when only the bonus ``Lambda^{-1}`` is needed). The Gram matrix is accumulated
    exactly; :meth:`refresh` recomputes ``Lambda^{-1}`` from it to remove rounding drift.
    """

    def __init__(self, dim: int, ridge: float, n_targets: int | None = None) -> None:
        self._dim = check_int(dim, "dim", low=1)
        self._ridge = check_positive(ridge, "ridge")
        self._n_targets = None if n_targets is None else check_int(n_targets, "n_targets", low=1)
        self._gram = self._ridge * np.eye(self._dim)
        self._lambda_inv = np.eye(self._dim) / self._ridge
        self._moment = np.zeros((self._dim, self._n_targets or 1))
        self._n_updates = 0

    # ----------------------------------------------------------------- state
    @property
    def dim(self) -> int:
        return self._dim

    @property
    def ridge(self) -> float:
        return self._ridge

    @property
    def n_updates(self) -> int:
        """Number of samples added so far."""
        return self._n_updates

    @property
    def gram(self) -> np.ndarray:
        """``Lambda = ridge I + sum w phi phi^T`` (read-only view)."""
        return _read_only(self._gram)

    @property
    def lambda_inv(self) -> np.ndarray:
        """``Lambda^{-1}`` as maintained by Sherman-Morrison (read-only view)."""
        return _read_only(self._lambda_inv)

    # ---------------------------------------------------------------- update
    def update(self, x, y=None, weight: float = 1.0) -> None:
        """Add one sample ``x (d,)`` with target ``y`` (scalar, or ``(m,)``) and weight >= 0."""
        vec = check_array(x, "x", shape=(self._dim,))
        w = check_nonnegative(weight, "weight")
        target = None if y is None else self._check_targets(y, n_rows=None)
        rank_one_update(self._gram, self._lambda_inv, self._moment, vec, target, w)
        self._n_updates += 1

    def update_batch(self, X, Y=None, weights=None) -> None:
        """Add the rows of ``X (n, d)`` with targets ``Y`` (``(n,)``, or ``(n, m)``)."""
        feats = check_array(X, "X", shape=(None, self._dim))
        n = feats.shape[0]
        w = _check_weights(weights, n)
        targets = None if Y is None else self._check_targets(Y, n_rows=n)
        _kernels.accumulate_gram(self._gram, feats, w)
        _kernels.sherman_morrison_batch(self._lambda_inv, feats, w)
        if targets is not None:
            self._moment += _kernels.weighted_cross_moment(feats, targets, w)
        self._n_updates += n

    def refresh(self) -> None:
        """Recompute ``Lambda^{-1}`` exactly from the accumulated Gram matrix."""
        self._lambda_inv = _kernels.spd_inverse(self._gram)

    def solve(self) -> np.ndarray:
        """``Lambda^{-1} sum_k w_k phi_k y_k``: ``(d,)`` for scalar targets, else ``(d, m)``."""
        solution = self._lambda_inv @ self._moment
        return solution[:, 0] if self._n_targets is None else solution

    def _check_targets(self, y, n_rows: int | None) -> np.ndarray:
        """Targets as a 2-D ``(rows, m)`` array; ``m = 1`` for scalar targets."""
        m = self._n_targets
        if n_rows is None:
            if m is None and np.ndim(y) != 0:  # check_array makes a scalar 1-D: check first
                raise ValueError(f"y must be a scalar (n_targets=None); got shape {np.shape(y)}")
            return check_array(y, "y", shape=(1,) if m is None else (m,), nonempty=False)
        want = (n_rows,) if m is None else (n_rows, m)
        arr = check_array(y, "Y", shape=want)
        return arr.reshape(n_rows, -1)


def rank_one_update(gram: np.ndarray, lambda_inv: np.ndarray, moment: np.ndarray,
                    x: np.ndarray, y, weight: float = 1.0) -> None:
    """Unchecked core of :meth:`OnlineRidge.update`, also the online agents' per-step update:
    in place ``gram += w x x^T``, ``lambda_inv`` by Sherman-Morrison, ``moment (d, m) += w x
    y^T`` (skipped when ``y`` is None)."""
    _kernels.add_rank_one(gram, x, weight)
    _kernels.sherman_morrison_update(lambda_inv, x, weight)
    if y is not None:
        moment += weight * np.outer(x, y)


def _read_only(arr: np.ndarray) -> np.ndarray:
    view = arr.view()
    view.flags.writeable = False
    return view
