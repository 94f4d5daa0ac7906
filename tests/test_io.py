"""robustrl._io.file_lock: a second holder waits until the first releases."""

from __future__ import annotations

import threading

from robustrl._io import file_lock


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
