"""Reading saved artefacts as data, never as code, and validating what was read.

Every robustrl loader goes through these helpers:

* :func:`read_npz` opens an ``.npz`` with ``allow_pickle=False`` and turns every way a damaged
  or foreign file can fail (``BadZipFile``, ``zlib.error``, ``EOFError``, a missing array, a
  pickled object array, ...) into one ``ValueError`` naming the file (and the array);
* :func:`loaded_array` checks one loaded array's dtype kind, shape, finiteness and range and
  raises ``ValueError`` naming the file and the array;
* :func:`save_torch` / :func:`load_torch` write and read ``torch.save`` payloads of tensors and
  plain values (read back with ``torch.load(..., weights_only=True)``, which builds no object
  but tensors and containers) with a SHA-256 checksum over the whole content, checked on load;
* :func:`save_sb3_policy` / :func:`load_sb3_policy_state` store a stable-baselines3 policy as
  its ``state_dict`` plus a JSON configuration, so that a policy file is never unpickled
  (SB3's own ``.load`` cloudpickle-loads the archive's entries).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import warnings
import zipfile
import zlib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from robustrl._io import atomic_write

__all__ = [
    "load_sb3_policy_state",
    "load_state_dict_checked",
    "load_torch",
    "loaded_array",
    "payload_digest",
    "read_npz",
    "read_npz_json",
    "save_sb3_policy",
    "save_torch",
]

#: Exceptions a damaged file raises inside ``np.load`` / ``torch.load``.
_READ_ERRORS: tuple[type[BaseException], ...] = (
    OSError, EOFError, KeyError, ValueError, TypeError, IndexError, RuntimeError, MemoryError,
    zipfile.BadZipFile, zlib.error, pickle.UnpicklingError, UnicodeDecodeError, AttributeError,
)


def _existing(path: str | os.PathLike) -> Path:
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"path does not exist or is not a file: {path}")
    return path


# ------------------------------------------------------------------------------------- npz
def read_npz(path: str | os.PathLike, required: Iterable[str], *, what: str
             ) -> dict[str, np.ndarray]:
    """All arrays of the ``.npz`` file ``path`` (read with ``allow_pickle=False``).

    ``required`` arrays must be present; ``what`` names the expected content in messages
    ("an OfflineDataset file"). Any read failure becomes a ``ValueError`` naming the file.
    """
    path = _existing(path)
    try:
        with np.load(path, allow_pickle=False) as f:
            if not hasattr(f, "files"):
                raise ValueError("holds a single .npy array, not an .npz archive")
            names = list(f.files)
            missing = [k for k in required if k not in names]
            if missing:
                raise ValueError(f"path {path} is not {what}: missing array(s) {missing}")
            arrays = {}
            for name in names:
                try:
                    arrays[name] = f[name]
                except _READ_ERRORS as exc:
                    raise ValueError(
                        f"path {path} ({what}): array {name!r} cannot be read "
                        f"({type(exc).__name__}: {exc})"
                    ) from None
    except ValueError as exc:
        if str(path) in str(exc):
            raise
        raise ValueError(f"path {path} is not a readable .npz ({what}): {exc}") from None
    except _READ_ERRORS as exc:
        raise ValueError(
            f"path {path} is not a readable .npz ({what}): {type(exc).__name__}: {exc}"
        ) from None
    return arrays


def read_npz_json(path: str | os.PathLike, arrays: dict[str, np.ndarray], name: str) -> Any:
    """The JSON document stored as the 0-d string array ``arrays[name]``."""
    arr = arrays[name]
    if arr.ndim != 0 or arr.dtype.kind != "U":
        raise ValueError(f"path {path}: array {name!r} must be a 0-d string (JSON); "
                         f"got dtype {arr.dtype} and shape {arr.shape}")
    try:
        return json.loads(str(arr))
    except json.JSONDecodeError as exc:
        raise ValueError(f"path {path}: array {name!r} is not valid JSON: {exc}") from None


_KINDS = {"f": ("fiu", np.float64), "i": ("iu", np.int64), "b": ("b", np.bool_)}
_KIND_NAMES = {"f": "real numbers", "i": "integers", "b": "booleans"}


def loaded_array(path: str | os.PathLike, name: str, value, *, kind: str,
                 shape: Sequence[int | None], finite: bool = True,
                 low: float | None = None, high: float | None = None) -> np.ndarray:
    """Validate the array ``name`` read from ``path`` and return it as a contiguous
    float64 / int64 / bool array (``kind`` ``"f"`` / ``"i"`` / ``"b"``).

    ``shape`` entries that are None match any length; ``finite`` rejects NaN/inf; ``low`` and
    ``high`` bound the entries (inclusive). Raises ``ValueError`` naming the file and the array.
    """
    where = f"path {path}: array {name!r}"
    arr = np.asarray(value)
    accepted, dtype = _KINDS[kind]
    if arr.dtype.kind not in accepted:
        raise ValueError(f"{where} must hold {_KIND_NAMES[kind]}; got dtype {arr.dtype}")
    if arr.ndim != len(shape) or any(
        s is not None and s != a for s, a in zip(shape, arr.shape, strict=False)
    ):
        want = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ")"
        raise ValueError(f"{where} must have shape {want}; got {arr.shape}")
    if kind == "i" and arr.dtype.kind == "u" and arr.size and arr.max() > np.iinfo(np.int64).max:
        raise ValueError(f"{where} has entries too large for int64")
    out = np.asarray(arr, dtype=dtype, order="C")
    if finite and kind == "f" and not np.all(np.isfinite(out)):
        bad = int(out.size - np.count_nonzero(np.isfinite(out)))
        raise ValueError(f"{where} must be finite; found {bad} NaN or infinite entries")
    if low is not None and out.size and out.min() < low:
        raise ValueError(f"{where} entries must be >= {low:g}; found {out.min():g}")
    if high is not None and out.size and out.max() > high:
        raise ValueError(f"{where} entries must be <= {high:g}; found {out.max():g}")
    return out


# ----------------------------------------------------------------------------------- torch
def _update_digest(h, obj) -> None:
    import torch

    if isinstance(obj, torch.Tensor):
        t = obj.detach().cpu().contiguous()
        h.update(f"T{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    elif isinstance(obj, dict):
        h.update(f"D{len(obj)}".encode())
        for key in sorted(obj, key=repr):
            h.update(f"K{key!r}".encode())
            _update_digest(h, obj[key])
    elif isinstance(obj, (list, tuple)):
        h.update(f"L{len(obj)}".encode())
        for item in obj:
            _update_digest(h, item)
    elif obj is None or isinstance(obj, (bool, int, float, str)):
        h.update(f"V{type(obj).__name__}:{obj!r}".encode())
    else:
        raise TypeError(f"cannot checksum a {type(obj).__name__} (tensors, containers and "
                        "plain values only)")


def payload_digest(payload: Any) -> str:
    """SHA-256 over a payload of tensors (dtype, shape, bytes), dicts, lists and plain values."""
    h = hashlib.sha256()
    _update_digest(h, payload)
    return h.hexdigest()


def save_torch(path: str | os.PathLike, payload: dict[str, Any]) -> Path:
    """``torch.save`` ``payload`` plus its ``"sha256"`` atomically; returns the path."""
    import torch

    if "sha256" in payload:
        raise ValueError("payload must not hold a 'sha256' entry (it is added here)")
    blob = {**payload, "sha256": payload_digest(payload)}
    buf = io.BytesIO()
    torch.save(blob, buf)
    return atomic_write(path, lambda fh: fh.write(buf.getvalue()), binary=True, clean_stale=True)


def load_torch(path: str | os.PathLike, *, what: str, fmt: str | None = None
               ) -> dict[str, Any]:
    """Read a payload written by :func:`save_torch` (``weights_only=True``: tensors and plain
    containers only) and check its checksum and, when given, its ``"format"`` entry.

    Raises ``ValueError`` naming the file when it cannot be read, is not such a payload or its
    content does not match its checksum (a damaged file).
    """
    import torch

    path = _existing(path)
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except _READ_ERRORS as exc:
        raise ValueError(f"path {path} is not a readable {what} file (robustrl torch format): "
                         f"{type(exc).__name__}: {str(exc)[:300]}") from None
    if not isinstance(blob, dict):
        raise ValueError(f"path {path} is not a {what} file: it holds a {type(blob).__name__}")
    if fmt is not None and blob.get("format") != fmt:
        raise ValueError(f"path {path} is not a {what} file (format {blob.get('format')!r}, "
                         f"expected {fmt!r})")
    stored = blob.pop("sha256", None)
    if not isinstance(stored, str):
        raise ValueError(f"path {path} ({what}) has no sha256 checksum; it was not written by "
                         "this version of robustrl: save it again")
    try:
        actual = payload_digest(blob)
    except TypeError as exc:
        raise ValueError(f"path {path} ({what}): {exc}") from None
    if actual != stored:
        raise ValueError(f"path {path} ({what}) is damaged: its content does not match its "
                         f"sha256 checksum ({actual[:12]}... != {stored[:12]}...)")
    return blob


def load_torch_agent(cls, path, env, device) -> tuple[Any, dict, dict]:
    """``(agent rebuilt from its saved hyperparameters, blob, shapes)`` from a neural agent's
    file; ``ValueError`` naming the file otherwise. ``load(path, device)`` is deprecated."""
    if isinstance(env, str):
        warnings.warn("load(path, device) is deprecated; use load(path, env=None, "
                      "device=...)", DeprecationWarning, stacklevel=3)
        env, device = None, env
    blob = load_torch(path, what=f"saved {cls.__name__}")
    if blob.get("class") != cls.__name__:
        raise ValueError(f"path holds a {blob.get('class')}, not a {cls.__name__}: {path}")
    hp = blob.get("hyperparams")
    if not isinstance(hp, dict):
        raise ValueError(f"path {path}: 'hyperparams' must be a dict")
    try:
        agent = cls(env, **hp, device=device)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"path {path}: the saved hyperparameters do not rebuild a "
                         f"{cls.__name__}: {exc}") from None
    shapes = blob.get("shapes")
    if not isinstance(shapes, dict):
        raise ValueError(f"path {path}: 'shapes' must be a dict")
    return agent, blob, shapes


def load_state_dict_checked(module, state: Any, path: str | os.PathLike, name: str) -> None:
    """``module.load_state_dict(state, strict=True)`` after checking that ``state`` maps names to
    finite tensors; raises ``ValueError`` naming the file and the entry."""
    import torch

    if not isinstance(state, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise ValueError(f"path {path}: {name!r} must map parameter names to tensors")
    for key, tensor in state.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise ValueError(f"path {path}: tensor {name}[{key!r}] must be finite")
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ValueError(f"path {path}: {name!r} does not fit the network: "
                         f"{str(exc)[:500]}") from None


# ------------------------------------------------------------------------------ SB3 policies
SB3_POLICY_FORMAT = "robustrl.sb3-policy/1"


def save_sb3_policy(path: str | os.PathLike, model, config: dict[str, Any]) -> Path:
    """Write ``model.policy``'s state dict and the JSON ``config`` needed to rebuild it
    (atomically, with a checksum); no SB3 archive and nothing pickled but tensors."""
    state = {k: v.detach().cpu().clone() for k, v in model.policy.state_dict().items()}
    return save_torch(path, {"format": SB3_POLICY_FORMAT,
                             "config_json": json.dumps(config, sort_keys=True),
                             "state_dict": state})


def load_sb3_policy_state(path: str | os.PathLike, *, what: str
                          ) -> tuple[dict[str, Any], dict[str, Any]]:
    """The ``(config, state_dict)`` of a file written by :func:`save_sb3_policy`."""
    blob = load_torch(path, what=what, fmt=SB3_POLICY_FORMAT)
    try:
        config = json.loads(blob["config_json"])
    except (KeyError, TypeError, json.JSONDecodeError) as exc:
        raise ValueError(f"path {path} ({what}): bad 'config_json': {exc}") from None
    if not isinstance(config, dict):
        raise ValueError(f"path {path} ({what}): 'config_json' must be a JSON object")
    return config, blob.get("state_dict")
