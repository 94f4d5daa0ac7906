"""Backends that run cells: in process, a process pool, Ray; and the inner progress bars.

Part of :mod:`robustrl.runner` (see its docstring for the runner's contract)."""

from __future__ import annotations

import contextlib
import os
import sys
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from robustrl.runner import worker as _exec
from robustrl.runner.store import (
    Cell,
    RunnerError,
)
from robustrl.runner.worker import ModuleRef, execute

# --------------------------------------------------------------------------- backends
Outcomes = Iterator[tuple[Cell, dict]]


def _failed(text: str) -> dict:
    return {"ok": False, "error": text, "wall_time_s": float("nan")}


def _run_in_process(ref: ModuleRef, cells: Sequence[Cell], inner_progress: bool) -> Outcomes:
    for cell in cells:
        yield cell, execute(ref, cell.params, cell.seed, inner_progress)


#: Without ``--workers``, cells run in the driver's process while the sweep's estimated
#: remaining time stays below this many seconds: a spawned worker pays its own start (Python,
#: NumPy, Numba and the experiment's imports, about 1-3 s on a busy machine) and its memory
#: (another interpreter), which a job of a few seconds never wins back.
POOL_MIN_SECONDS = 10.0


def _run_auto(ref: ModuleRef, cells: Sequence[Cell], max_workers: int, inner_progress: bool,
              min_seconds: float = POOL_MIN_SECONDS) -> Outcomes:
    """The default local backend: cells run in this process, and the rest go to a pool of up
    to ``max_workers`` processes once the remaining cells, at the median time per cell measured
    so far (from the second cell on: the first pays the imports; the median ignores the few
    cells that compile a kernel on a cold cache), are estimated to take more than
    ``min_seconds``."""
    import statistics
    import time

    times: list[float] = []
    for i, cell in enumerate(cells):
        rest = len(cells) - i
        if i >= 2 and max_workers > 1 and rest > 1:
            if statistics.median(times[1:]) * rest > min_seconds:
                yield from _run_pool(ref, cells[i:], min(max_workers, rest))
                return
        t0 = time.perf_counter()
        yield cell, execute(ref, cell.params, cell.seed, inner_progress)
        times.append(time.perf_counter() - t0)


def _exit_description(code: int | None) -> str:
    if code is None:
        return "exit status unknown"
    if code < 0:
        import signal

        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
        return f"killed by signal {-code}"
    return f"exit status {code}"


def _run_pool(ref: ModuleRef, cells: Sequence[Cell], workers: int) -> Outcomes:
    """Run ``cells`` in a spawn process pool with at most ``workers`` cells in flight.

    A worker that dies (killed, out of memory, segfault) breaks a ``ProcessPoolExecutor`` and
    every cell in flight gets ``BrokenProcessPool``, whichever worker ran it. Those cells become
    suspects: the pool is restarted and each suspect runs again alone, so that only a cell that
    kills its worker while running alone is reported failed; the others are resubmitted.
    """
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    # spawn, not fork: forking a driver that already runs numba/tqdm threads is unsafe, and
    # spawn behaves the same on every OS.
    ctx = multiprocessing.get_context("spawn")
    queue, suspects = deque(cells), deque()
    inflight: dict[Any, Cell] = {}
    pool: ProcessPoolExecutor | None = None
    procs: dict[int, Any] = {}
    finished = False
    try:
        while queue or suspects or inflight:
            if pool is None:
                pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx,
                                           initializer=_exec.worker_init,
                                           initargs=(os.getpid(),))
                procs = {}
            isolating = bool(suspects)  # then exactly one cell is in flight
            source, limit = (suspects, 1) if suspects else (queue, workers)
            while source and len(inflight) < limit:
                cell = source.popleft()
                try:
                    fut = pool.submit(execute, ref, cell.params, cell.seed, False)
                except BrokenProcessPool:  # a worker died since the last wait
                    source.appendleft(cell)
                    break
                inflight[fut] = cell
                procs.update(getattr(pool, "_processes", None) or {})
            if not inflight:  # broken with nothing in flight: nobody to blame
                pool.shutdown(wait=True)
                pool = None
                continue
            done, _ = wait(inflight, return_when=FIRST_COMPLETED)
            broken: list[Cell] = []
            if any(isinstance(f.exception(), BrokenProcessPool) for f in done):
                # every other future in flight fails at the same moment
                done, _ = wait(inflight)
            for fut in sorted(done, key=lambda f: inflight[f].index):
                cell = inflight.pop(fut)
                exc = fut.exception()
                if isinstance(exc, BrokenProcessPool):
                    broken.append(cell)
                    continue
                outcome = fut.result() if exc is None else _failed(
                    f"worker process failed: {type(exc).__name__}: {exc}\n")
                yield cell, outcome
            if not broken:
                continue
            pool.shutdown(wait=True)
            pool = None
            dead = sorted({_exit_description(p.exitcode) for p in procs.values()
                           if p.exitcode not in (None, 0, -15)})
            how = "; ".join(dead) or "exit status unknown"
            if isolating:
                (cell,) = broken
                yield cell, _failed(
                    f"the worker process died while running this cell alone ({how}); the "
                    "other cells were resubmitted\n")
            else:
                suspects.extend(broken)
        finished = True
    finally:
        if pool is not None:
            _stop_pool(pool, wait_for_cells=finished)


def _stop_pool(pool: Any, wait_for_cells: bool) -> None:
    if wait_for_cells:
        pool.shutdown(wait=True)
        return
    # Interrupted or stopped early: cancel the queue and stop cells in progress now rather
    # than waiting for them (their results would not be written anyway), then join the
    # executor so that its queues and semaphores are released (no leaked-semaphore warnings).
    procs = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for proc in procs:
        with contextlib.suppress(Exception):
            proc.terminate()
    for proc in procs:
        with contextlib.suppress(Exception):
            proc.join(timeout=10)
    with contextlib.suppress(Exception):
        pool.shutdown(wait=True)


def _run_ray(ref: ModuleRef, cells: Sequence[Cell], workers: int | None,
             address: str | None, quiet: bool) -> Outcomes:
    try:
        import ray
    except ImportError:
        raise RunnerError("--backend ray needs the optional dependency ray: "
                          "pip install 'robustrl[ray]'") from None
    started = not ray.is_initialized()
    if started:
        kwargs: dict[str, Any] = {"include_dashboard": False, "logging_level": "WARNING",
                                  "log_to_driver": not quiet}
        if address:
            kwargs["address"] = address
        elif workers and not os.environ.get("RAY_ADDRESS"):
            kwargs["num_cpus"] = workers  # a local instance sized like the local pool
        ray.init(**kwargs)
    task = ray.remote(execute)
    queue = deque(cells)
    inflight: dict[Any, Cell] = {}
    limit = workers or len(cells)  # with no --workers, the cluster's scheduler decides
    try:
        while queue or inflight:
            while queue and len(inflight) < limit:
                cell = queue.popleft()
                inflight[task.remote(ref, cell.params, cell.seed, False)] = cell
            ready, _ = ray.wait(list(inflight), num_returns=1)
            for obj in ready:
                cell = inflight.pop(obj)
                try:
                    outcome = ray.get(obj)
                except Exception as exc:  # worker crash, node loss, ...
                    outcome = _failed(f"ray task failed: {type(exc).__name__}: {exc}\n")
                yield cell, outcome
    finally:
        for obj in inflight:
            with contextlib.suppress(Exception):
                ray.cancel(obj, force=True)
        if started:
            ray.shutdown()


def default_workers() -> int:
    """CPUs this process may use (the most workers the default backend starts)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1



# --------------------------------------------------------------------------- inner progress
def progress(iterable: Iterable | None = None, **kwargs: Any):
    """A tqdm bar for loops inside ``run_one``: shown when the cell runs in the runner's own
    process (``--workers 1``, not ``--quiet``), silent in pool and Ray workers."""
    from tqdm import tqdm

    kwargs.setdefault("leave", False)
    kwargs.setdefault("file", sys.stderr)
    return tqdm(iterable, disable=not _exec.INNER_PROGRESS, **kwargs)
