"""Atomic file writes (a crash never leaves a half-written result behind) and file locks.

A writer holds an exclusive ``flock`` on its temporary file while it writes, so that
:func:`clean_stale_temporaries` can tell the ``.<name>.<random>.tmp`` left by a killed writer
(no lock holder) from one being written right now.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # pragma: no cover - non-POSIX
    fcntl = None  # type: ignore[assignment]

# mkstemp's names: ``.{name}.`` + 8 random characters + ``.tmp``
_TMP_RE = re.compile(r"^\..+\.[A-Za-z0-9_]{8}\.tmp$")


def current_umask() -> int:
    """The process umask, read without changing it where Linux allows (``/proc``)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)  # elsewhere: the classic read-by-setting (not thread-safe)
    os.umask(mask)
    return mask


def _with_path(exc: OSError, path: Path) -> OSError:
    """``exc`` with the path it concerns (write/fsync errors such as ENOSPC carry none)."""
    if exc.filename is not None or exc.errno is None:
        return exc
    return OSError(exc.errno, exc.strerror, str(path))


def atomic_write(path: str | os.PathLike, write: Callable[[Any], None], *, binary: bool,
                 clean_stale: bool = False) -> Path:
    """Call ``write(fileobj)`` on a temporary file beside ``path``, then rename it into place.

    The rename is atomic on POSIX, so readers see either the old file or the complete new one.
    The file gets the mode ``open()`` would give it (``0o666 & ~umask``), not mkstemp's 0600.
    An ``OSError`` without a file name (ENOSPC, EIO on write) is re-raised naming ``path``.
    With ``clean_stale`` the temporaries of ``path`` left by killed earlier writers are removed
    after the write (:func:`clean_stale_temporaries` restricted to this file name); the runner,
    which writes thousands of files into one folder, cleans whole folders once per run instead.
    """
    path = Path(path)
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb" if binary else "w") as fh:
            if fcntl is not None:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX)  # released when fh closes or we die
            if hasattr(os, "fchmod"):
                os.fchmod(fh.fileno(), 0o666 & ~current_umask())
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        tmp = None
        if clean_stale:
            clean_stale_temporaries(path.parent, name=path.name)
    except OSError as exc:
        _discard(tmp)
        new = _with_path(exc, path)
        if new is exc:
            raise
        raise new from exc
    except BaseException:
        _discard(tmp)
        raise
    return path


def _discard(tmp: str | None) -> None:
    if tmp is not None:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    return atomic_write(path, lambda fh: json.dump(obj, fh, indent=2, sort_keys=True), binary=False)


def clean_stale_temporaries(directory: str | os.PathLike, *, min_age_s: float = 1.0,
                            name: str | None = None) -> list[Path]:
    """Delete the ``.<name>.<random>.tmp`` files in ``directory`` left by killed writers
    (only those of the file ``name`` when it is given).

    A temporary is removed only if no live process holds its lock (an atomic write in progress
    does) and it is at least ``min_age_s`` seconds old (covering the instant between creating
    and locking it). Where ``fcntl`` is missing only files older than an hour are removed.
    Returns the paths removed; a file that cannot be removed gets a warning.
    """
    directory = Path(directory)
    if fcntl is None:  # pragma: no cover - non-POSIX
        min_age_s = max(min_age_s, 3600.0)
    removed: list[Path] = []
    try:
        entries = list(os.scandir(directory))
    except (FileNotFoundError, NotADirectoryError):
        return removed
    now = time.time()
    for entry in entries:
        if not _TMP_RE.match(entry.name) or not entry.is_file(follow_symlinks=False):
            continue
        if name is not None and not (entry.name.startswith(f".{name}.")
                                     and len(entry.name) == len(name) + 14):
            continue
        path = Path(entry.path)
        try:
            if now - entry.stat(follow_symlinks=False).st_mtime < min_age_s:
                continue
            with open(path, "rb") as fh:
                if fcntl is not None:
                    try:
                        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                    except BlockingIOError:
                        continue  # a live writer
                path.unlink()
            removed.append(path)
        except FileNotFoundError:
            continue  # renamed into place or removed meanwhile
        except OSError as exc:
            warnings.warn(f"cannot remove the stale temporary file {path}: {exc.strerror}",
                          RuntimeWarning, stacklevel=2)
    return removed


@contextlib.contextmanager
def file_lock(lock_path: str | os.PathLike, if_held: Exception | None = None
              ) -> Iterator[None]:
    """Hold an exclusive POSIX ``flock`` on ``lock_path`` (created if missing; a no-op where
    ``fcntl`` is unavailable), so that parallel runner workers build a shared cached file once.
    Waits for a lock held elsewhere, or raises ``if_held`` when given."""
    if fcntl is None:  # pragma: no cover - non-POSIX
        yield
        return
    lock_path = Path(lock_path)
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | (0 if if_held is None else fcntl.LOCK_NB))
        except OSError:
            if if_held is None:
                raise
            raise if_held from None
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
