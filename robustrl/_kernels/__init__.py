"""Numba kernels: small pure functions over arrays. Call them through the public modules of
:mod:`robustrl`, which validate inputs first; each kernel has a NumPy twin in
:mod:`robustrl.reference` that the tests compare against. Every kernel is ``@njit(cache=True)``:
a job compiles the kernels it uses once per machine and loads them from Numba's cache after."""

from __future__ import annotations

import logging
import os

_announced = False


def announce_compile(kernels, what: str, *, ahead_of_time: bool = True) -> bool:
    """Log once per process (logger ``robustrl``, level WARNING) when some of ``kernels`` (Numba
    dispatchers) have nothing in Numba's cache yet: their first call compiles them, which takes
    seconds once and milliseconds from the cache afterwards. ``ahead_of_time``: whether
    ``robustrl compile-kernels`` exports these kernels (the message says so only then).
    Returns whether it logged."""
    global _announced
    if _announced:
        return False
    # `overloads` (a dict), not `signatures` (a list built by hashing every type, 30 us a fit)
    from robustrl._kernels.aot import installed  # here: aot imports the kernel modules

    # nothing to compile for a kernel whose ahead-of-time code is registered
    # (no dispatcher, hence no compilation, under NUMBA_DISABLE_JIT=1)
    cold = [k for k in kernels if hasattr(k, "overloads") and not installed(k)
            and not k.overloads and not _cached(k)]
    if not cold:
        return False
    _announced = True
    # 14-15 s for the Figure-1 job's four estimators on 2 cores (docs/performance.md)
    instead = ("`robustrl compile-kernels` compiles them ahead of time instead" if ahead_of_time
               else "`robustrl compile-kernels` does not cover this path: only the in-memory "
                    "fit of the built-in estimators")
    logging.getLogger("robustrl").warning(
        "compiling the Numba kernels for %s: the first use on this machine takes 10-20 s "
        "(once; later runs load them from %s in well under a second; %s)", what,
        os.path.dirname(cold[0]._cache._cache_file._index_path), instead)
    return True


def _cached(kernel) -> bool:
    try:
        return os.path.exists(kernel._cache._cache_file._index_path)
    except AttributeError:  # not a caching dispatcher
        return True
