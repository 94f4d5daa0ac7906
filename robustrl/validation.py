"""Argument checks shared by the public API.

Every check raises :class:`ValueError` naming the offending argument and the accepted range;
nothing is silently clipped or coerced into range.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

DIVERGENCES: tuple[str, ...] = ("tv", "kl", "chi2")
_DIVERGENCE_ALIASES = {
    "tv": "tv",
    "total_variation": "tv",
    "kl": "kl",
    "kullback_leibler": "kl",
    "chi2": "chi2",
    "chi-square": "chi2",
    "chi_square": "chi2",
    "chisquare": "chi2",
    "x2": "chi2",
}


def check_divergence(divergence: str, name: str = "divergence") -> str:
    """Return the canonical divergence name ('tv', 'kl' or 'chi2')."""
    key = str(divergence).lower() if isinstance(divergence, str) else None
    if key not in _DIVERGENCE_ALIASES:
        raise ValueError(
            f"{name} must be one of {', '.join(repr(d) for d in DIVERGENCES)}; got {divergence!r}"
        )
    return _DIVERGENCE_ALIASES[key]


def check_scalar(
    value: float,
    name: str,
    *,
    low: float | None = None,
    high: float | None = None,
    low_inclusive: bool = True,
    high_inclusive: bool = True,
) -> float:
    """Return ``value`` as a finite float inside the given range, else raise ValueError.

    Strings and booleans are refused (``lam="0.1"`` and ``lam=True`` are almost always
    mistakes, and ``float()`` would silently accept both).
    """
    if isinstance(value, (str, bytes, bool, np.bool_)):
        raise ValueError(f"{name} must be a real number, not {type(value).__name__}; "
                         f"got {value!r}")
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a real number; got {value!r}") from None
    if not np.isfinite(x):
        raise ValueError(f"{name} must be finite; got {value!r}")
    lo_ok = low is None or (x >= low if low_inclusive else x > low)
    hi_ok = high is None or (x <= high if high_inclusive else x < high)
    if not (lo_ok and hi_ok):
        lb = "(-inf" if low is None else ("[" if low_inclusive else "(") + f"{low:g}"
        hb = "inf)" if high is None else f"{high:g}" + ("]" if high_inclusive else ")")
        raise ValueError(f"{name} must lie in {lb}, {hb}; got {value!r}")
    return x


def check_positive(value: float, name: str) -> float:
    return check_scalar(value, name, low=0.0, low_inclusive=False)


def check_nonnegative(value: float, name: str) -> float:
    return check_scalar(value, name, low=0.0)


def _check_lossless(value, name: str, target: np.dtype) -> None:
    """Refuse conversions that would change the data silently: strings parsed as numbers,
    booleans used as numbers, fractional values truncated to integers, and numbers other than
    0/1 turned into booleans."""
    src = value if isinstance(value, np.ndarray) else None
    if src is None:
        try:
            src = np.asarray(value)
        except (TypeError, ValueError):
            return  # ragged or exotic input: the conversion below reports it
    kind = src.dtype.kind
    if kind in "USO" and target.kind in "biuf":
        flat = src.ravel()
        if kind in "US" or any(isinstance(v, (str, bytes, bool, np.bool_)) for v in flat):
            raise ValueError(f"{name} must be numeric; got {src.dtype.name} entries "
                             f"(e.g. {flat[0]!r})")
        return
    if target.kind == "b":
        if kind != "b" and src.size and not np.all((src == 0) | (src == 1)):
            bad = src[(src != 0) & (src != 1)].ravel()[0]
            raise ValueError(f"{name} must be boolean (True/False or 0/1); found {bad!r}")
    elif target.kind in "iuf" and kind == "b" and src.size:
        raise ValueError(f"{name} must be numeric, not boolean")
    elif target.kind in "iu" and kind == "f" and src.size:
        finite = src[np.isfinite(src)]
        if finite.size and np.any(finite != np.round(finite)):
            bad = finite[finite != np.round(finite)].ravel()[0]
            raise ValueError(f"{name} must hold whole numbers; found {bad!r}")


def check_array(
    value,
    name: str,
    *,
    ndim: int | Sequence[int] | None = None,
    shape: Sequence[int | None] | None = None,
    dtype=np.float64,
    finite: bool = True,
    nonempty: bool = True,
    low: float | None = None,
    high: float | None = None,
    contiguous: bool = True,
) -> np.ndarray:
    """Convert ``value`` to a C-contiguous array (``contiguous=False``: an array in the
    input's memory layout, not copied when it has the dtype already) and validate it.

    ``shape`` entries that are ``None`` match any length. Raises ValueError naming ``name``
    for a wrong number of dimensions, a wrong shape, NaN/inf entries (when ``finite``),
    an empty array (when ``nonempty``) or entries outside ``[low, high]``.
    """
    _check_lossless(value, name, np.dtype(dtype))
    try:
        arr = np.ascontiguousarray(value, dtype=dtype) if contiguous else \
            np.asarray(value, dtype=dtype)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be an array of {np.dtype(dtype).name}: {exc}") from None
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if arr.ndim not in allowed:
            raise ValueError(
                f"{name} must have {' or '.join(map(str, allowed))} dimensions; "
                f"got shape {arr.shape}"
            )
    if shape is not None:
        if arr.ndim != len(shape) or any(
            s is not None and s != a for s, a in zip(shape, arr.shape, strict=False)
        ):
            want = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ")"
            raise ValueError(f"{name} must have shape {want}; got {arr.shape}")
    if nonempty and arr.size == 0:
        raise ValueError(f"{name} must not be empty; got shape {arr.shape}")
    if finite and np.issubdtype(arr.dtype, np.floating) and not np.all(np.isfinite(arr)):
        bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise ValueError(f"{name} must be finite; found {bad} NaN or infinite entries")
    if low is not None and arr.size and arr.min() < low:
        raise ValueError(f"{name} entries must be >= {low:g}; found minimum {arr.min():g}")
    if high is not None and arr.size and arr.max() > high:
        raise ValueError(f"{name} entries must be <= {high:g}; found maximum {arr.max():g}")
    return arr


def check_distribution(value, name: str, *, axis: int = -1, atol: float = 1e-8) -> np.ndarray:
    """Validate nonnegative entries that sum to one along ``axis``."""
    arr = check_array(value, name, low=0.0)
    sums = arr.sum(axis=axis)
    if not np.allclose(sums, 1.0, atol=atol, rtol=0.0):
        worst = float(np.max(np.abs(sums - 1.0)))
        raise ValueError(
            f"{name} must sum to 1 along axis {axis} (probability distributions); "
            f"largest deviation {worst:.3g}"
        )
    return arr


def check_int(value, name: str, *, low: int | None = None, high: int | None = None) -> int:
    """Return ``value`` as an int in ``[low, high]`` (bools and floats are rejected)."""
    lb = "-inf" if low is None else str(low)
    hb = "inf)" if high is None else f"{high}]"
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer in [{lb}, {hb}; got {value!r}")
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(f"{name} must lie in [{lb}, {hb}; got {value}")
    return int(value)


def check_range(value, name: str) -> tuple[float, float] | None:
    """None, or a ``(low, high)`` pair of finite numbers with ``low <= high``."""
    if value is None:
        return None
    low = check_scalar(value[0], f"{name}[0]")
    return low, check_scalar(value[1], f"{name}[1]", low=low)


def check_bool(value, name: str) -> bool:
    """``value`` as a bool; only real booleans are accepted (not 0/1 or strings)."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be True or False; got {value!r}")
    return bool(value)


def check_seed(seed, name: str = "seed") -> int | None:
    if seed is None:
        return None
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"{name} must be a nonnegative integer or None; got {seed!r}")
    return int(seed)


def supported_render_mode(render_mode: str | None, modes: Sequence[str],
                          env_name: str) -> str | None:
    """``render_mode`` if the environment supports it, else ``None`` with a warning.

    Gymnasium's own environments warn and go on when asked for a mode they lack, and
    stable-baselines3 asks every environment for ``"rgb_array"``
    (``PPO("MlpPolicy", env_id)``), so refusing would break the ecosystem's one-liners.
    """
    if render_mode is None or render_mode in modes:
        return render_mode
    import warnings

    warnings.warn(
        f"{env_name} does not support render_mode={render_mode!r} (supported: {list(modes)}); "
        "rendering is disabled", UserWarning, stacklevel=3)
    return None
