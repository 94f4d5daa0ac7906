"""robustrl._io: file locks, umask-respecting atomic writes, cleaning killed writers' files."""

from __future__ import annotations

import errno
import os
import signal
import stat
import subprocess
import sys
import threading
import time

import pytest

from robustrl._io import (
    atomic_write,
    atomic_write_json,
    clean_stale_temporaries,
    current_umask,
    file_lock,
)


def test_file_lock_excludes_a_second_holder(tmp_path):
    lock = tmp_path / "sub" / "x.lock"
    order: list[str] = []
    first_in = threading.Event()
    release_first = threading.Event()

    def first():
        with file_lock(lock):
            order.append("first in")
            first_in.set()
            release_first.wait(10)
            order.append("first out")

    def second():
        first_in.wait(10)
        with file_lock(lock):
            order.append("second in")

    t1, t2 = threading.Thread(target=first), threading.Thread(target=second)
    t1.start()
    t2.start()
    first_in.wait(10)
    t2.join(0.3)  # the second thread must still be waiting for the lock
    assert t2.is_alive() and order == ["first in"]
    release_first.set()
    t1.join(10)
    t2.join(10)
    assert order == ["first in", "first out", "second in"]
    assert lock.exists()


# --------------------------------------------------------------------------- atomic writes
@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_atomic_write_gives_the_mode_open_would_give(tmp_path, umask):
    old = os.umask(umask)
    try:
        path = atomic_write_json(tmp_path / "a.json", {"x": 1})
        plain = tmp_path / "plain.txt"
        plain.write_text("x")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask == \
        stat.S_IMODE(plain.stat().st_mode)
    assert current_umask() == old


def test_an_error_without_a_path_is_reraised_naming_the_file(tmp_path):
    def write(fh):
        fh.write("partial")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with pytest.raises(OSError, match="No space left on device") as info:
        atomic_write(tmp_path / "x.txt", write, binary=False)
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(tmp_path / "x.txt")
    assert list(tmp_path.iterdir()) == []  # the temporary is gone


KILLED_WRITER = """
import os, signal, sys
from robustrl._io import atomic_write

def write(fh):
    fh.write("half of it")
    fh.flush()
    if sys.argv[2] == "die":
        os.kill(os.getpid(), signal.SIGKILL)
    print("writing", flush=True)
    sys.stdin.readline()  # hold the temporary open (and locked) until told to go on

atomic_write(sys.argv[1], write, binary=False)
"""


def test_temporaries_of_killed_writers_are_cleaned_and_live_ones_kept(tmp_path):
    pytest.importorskip("fcntl")
    target = tmp_path / "out.json"
    dead = subprocess.run([sys.executable, "-c", KILLED_WRITER, str(target), "die"])
    assert dead.returncode == -signal.SIGKILL
    (stale,) = tmp_path.glob(".out.json.*.tmp")
    live = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(tmp_path / "b.json"),
                             "wait"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert live.stdout.readline() == "writing\n"
        (busy,) = tmp_path.glob(".b.json.*.tmp")
        now = time.time()  # both just written: their age must not depend on machine load
        for temporary in (stale, busy):
            os.utime(temporary, (now, now))
        assert clean_stale_temporaries(tmp_path) == []  # both younger than a second
        assert clean_stale_temporaries(tmp_path, min_age_s=0) == [stale]
        assert busy.exists() and not stale.exists()  # the live writer's lock protects it
        live.communicate("go\n", timeout=30)
    finally:
        live.kill()
    assert live.returncode == 0 and (tmp_path / "b.json").read_text() == "half of it"
    assert not busy.exists() and not target.exists()


KILLED_DATASET_SAVE = """
import os, signal, sys
import numpy as np
import robustrl._io as io
from robustrl.envs import SimulatedLinearMDPEnv
from robustrl.data import OfflineDataset

real = io.atomic_write
def dying(path, write, **kw):
    def write_then_die(fh):
        write(fh)
        fh.flush()
        os.kill(os.getpid(), signal.SIGKILL)
    return real(path, write_then_die, **kw)

import robustrl.data
ds = OfflineDataset.collect(SimulatedLinearMDPEnv(), 2, seed=0)
if sys.argv[2] == "die":
    robustrl.data.atomic_write = dying
ds.save(sys.argv[1])
"""


def test_a_dataset_save_removes_the_temporaries_of_a_killed_earlier_save(tmp_path):
    """``kill -9`` during ``OfflineDataset.save`` leaves ``.data.npz.*.tmp`` behind; the next
    save of the same file removes it (other files' temporaries are left alone)."""
    pytest.importorskip("fcntl")
    target = tmp_path / "data.npz"
    dead = subprocess.run([sys.executable, "-c", KILLED_DATASET_SAVE, str(target), "die"])
    assert dead.returncode == -signal.SIGKILL
    (stale,) = tmp_path.glob(".data.npz.*.tmp")
    other = tmp_path / ".other.npz.abcdefgh.tmp"
    other.write_text("not ours")
    old = stale.stat().st_mtime - 5
    os.utime(stale, (old, old))
    os.utime(other, (old, old))
    ok = subprocess.run([sys.executable, "-c", KILLED_DATASET_SAVE, str(target), "keep"])
    assert ok.returncode == 0 and target.exists()
    assert not stale.exists() and other.exists()
