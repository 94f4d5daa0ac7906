"""LAPACK and BLAS routines callable from Numba kernels: SciPy's ``cython_lapack`` /
``cython_blas`` entry points registered as external symbols, so a kernel calls exactly the
routines (and gets exactly the numbers) of ``scipy.linalg.lapack.dpotrf`` & co. without the
Python wrappers' overhead, and stays cacheable (a symbol name, not a ctypes pointer, is compiled
in).

Fortran convention: a C-contiguous ``(m, d)`` array is the Fortran ``(d, m)`` matrix. A symmetric
``(d, d)`` matrix is the same either way; the factor and inverse that LAPACK writes into the
Fortran lower triangle sit in the C *upper* triangle.
"""

from __future__ import annotations

import llvmlite.binding as _ll
import numpy as np
from numba import njit, types
from numba.core import config
from numba.extending import get_cython_function_address

# (SciPy module, routine): each is the symbol `robustrl_<routine>`; the ahead-of-time build
# resolves the same routines in C (aot_support.c, robustrl._kernels.aot)
ROUTINES = (("cython_lapack", "dpotrf"), ("cython_lapack", "dpotrs"),
            ("cython_lapack", "dpotri"), ("cython_blas", "dsyrk"))
for _module, _name in ROUTINES:
    _ll.add_symbol(f"robustrl_{_name}",
                   get_cython_function_address(f"scipy.linalg.{_module}", _name))

_I = types.CPointer(types.int32)
_D = types.CPointer(types.float64)
_C = types.CPointer(types.int8)
_potrf = types.ExternalFunction("robustrl_dpotrf", types.void(_C, _I, _D, _I, _I))
_potri = types.ExternalFunction("robustrl_dpotri", types.void(_C, _I, _D, _I, _I))
_potrs = types.ExternalFunction("robustrl_dpotrs", types.void(_C, _I, _I, _D, _I, _D, _I, _I))
_syrk = types.ExternalFunction("robustrl_dsyrk",
                               types.void(_C, _C, _I, _I, _D, _D, _I, _D, _D, _I))

_LOWER = ord("L")
_NO_TRANS = ord("N")


@njit(cache=True)
def cholesky_into(gram, out):
    """``out`` (C-contiguous ``(d, d)``) = the Cholesky factor of the symmetric ``gram`` by
    ``dpotrf('L')``, the factor in ``out``'s C upper triangle; returns LAPACK's ``info`` (0: done,
    > 0: not positive definite)."""
    d = gram.shape[0]
    for i in range(d):  # a loop: a slice assignment compiles a shape check and its message
        for j in range(d):
            out[i, j] = gram[i, j]
    uplo = np.full(1, _LOWER, dtype=np.int8)
    n = np.full(1, d, dtype=np.int32)
    info = np.zeros(1, dtype=np.int32)
    _potrf(uplo.ctypes, n.ctypes, out.ctypes, n.ctypes, info.ctypes)
    return info[0]


@njit(cache=True)
def cho_solve_inplace(factor, rhs):
    """``rhs`` (C ``(k, d)``: ``k`` right-hand sides as rows) <- ``Lambda^{-1} rhs`` by
    ``dpotrs('L')`` from :func:`cholesky_into`'s factor."""
    d = factor.shape[0]
    uplo = np.full(1, _LOWER, dtype=np.int8)
    n = np.full(1, d, dtype=np.int32)
    k = np.full(1, rhs.shape[0], dtype=np.int32)
    info = np.zeros(1, dtype=np.int32)
    if rhs.shape[0] > 0:
        _potrs(uplo.ctypes, n.ctypes, k.ctypes, factor.ctypes, n.ctypes, rhs.ctypes, n.ctypes,
               info.ctypes)


@njit(cache=True)
def cho_inverse_into(factor, out):
    """``out`` (C ``(d, d)``) = ``Lambda^{-1}`` from :func:`cholesky_into`'s factor by
    ``dpotri('L')``, mirrored so that it is exactly symmetric."""
    d = factor.shape[0]
    work = factor.copy()
    uplo = np.full(1, _LOWER, dtype=np.int8)
    n = np.full(1, d, dtype=np.int32)
    info = np.zeros(1, dtype=np.int32)
    _potri(uplo.ctypes, n.ctypes, work.ctypes, n.ctypes, info.ctypes)
    for i in range(d):
        for j in range(i, d):
            x = work[i, j]  # C upper = Fortran lower
            out[i, j] = x
            out[j, i] = x


@njit(cache=True)
def gram_add(x, gram):
    """``gram += x^T x`` for C-contiguous ``x (n, d)`` by ``dsyrk`` (what NumPy's ``x.T @ x``
    calls), exactly symmetric."""
    n, d = x.shape
    if n == 0:
        return
    tmp = np.zeros((d, d))
    uplo = np.full(1, _LOWER, dtype=np.int8)
    trans = np.full(1, _NO_TRANS, dtype=np.int8)
    dims = np.array([d, n], dtype=np.int32)
    scal = np.array([1.0, 0.0])
    _syrk(uplo.ctypes, trans.ctypes, dims[0:].ctypes, dims[1:].ctypes, scal[0:].ctypes,
          x.ctypes, dims[0:].ctypes, scal[1:].ctypes, tmp.ctypes, dims[0:].ctypes)
    for i in range(d):
        for j in range(i, d):
            x_ij = tmp[i, j]  # C upper = Fortran lower
            gram[i, j] += x_ij
            if j != i:
                gram[j, i] += x_ij


if config.DISABLE_JIT:
    # NUMBA_DISABLE_JIT=1 (debugging): the kernels run as Python, where an ExternalFunction
    # call does nothing. Their NumPy/SciPy twins stand in (robustrl.reference, same layouts).
    from robustrl.reference.offline_pass import (  # noqa: F401, F811
        cho_inverse_into,
        cho_solve_inplace,
        cholesky_into,
        gram_add,
    )
