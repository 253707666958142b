"""Wall-clock limits that work in any thread or worker process (no signals).

``signal.alarm`` only works in the main thread of the main interpreter, and Prefect
runs tasks in worker threads, so the slow part of grading runs in a daemon worker
thread that the caller stops waiting for when the limit passes:

* workers are kept in a small idle pool and reused, because starting a thread per
  comparison costs more than most comparisons;
* a worker that overruns is abandoned (never returned to the pool), so a hung
  computation can delay nobody else; being a daemon it cannot block interpreter exit;
* a forked worker process starts with an empty pool (threads do not survive fork);
* the work also checks a cooperative deadline between steps (``check_deadline``), so
  an abandoned worker usually stops soon after instead of burning CPU.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

_local = threading.local()
_idle: list[_Worker] = []
_idle_lock = threading.Lock()


class GradingTimeout(Exception):
    """The time limit passed before the comparison finished."""


class _Worker:
    """A daemon thread that runs one job at a time from its own queue."""

    def __init__(self) -> None:
        self.jobs: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self.abandoned = False
        thread = threading.Thread(target=self._loop, name="grading-worker", daemon=True)
        thread.start()

    def _loop(self) -> None:
        while not self.abandoned:  # an abandoned worker exits once its job ends
            self.jobs.get()()


def _acquire() -> _Worker:
    with _idle_lock:
        if _idle:
            return _idle.pop()
    return _Worker()


def _release(worker: _Worker) -> None:
    with _idle_lock:
        _idle.append(worker)


def _forget_workers_after_fork() -> None:
    """A forked child inherits the idle list but not the threads behind it."""
    global _idle_lock
    _idle.clear()
    _idle_lock = threading.Lock()


if hasattr(os, "register_at_fork"):  # POSIX; elsewhere processes are spawned, not forked
    os.register_at_fork(after_in_child=_forget_workers_after_fork)


def check_deadline() -> None:
    """Raise ``GradingTimeout`` if the current grading job is past its deadline."""
    deadline = getattr(_local, "deadline", None)
    if deadline is not None and time.monotonic() > deadline:
        raise GradingTimeout("time limit exceeded")


def run_with_deadline(fn: Callable[[], T], timeout_s: float) -> T:
    """Run ``fn`` on a worker thread; raise ``GradingTimeout`` if it takes too long."""
    box: dict[str, object] = {}
    done = threading.Event()
    deadline = time.monotonic() + timeout_s

    def job() -> None:
        _local.deadline = deadline
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller
            box["error"] = exc
        finally:
            _local.deadline = None
            done.set()

    worker = _acquire()
    worker.jobs.put(job)
    if not done.wait(timeout_s):
        worker.abandoned = True
        raise GradingTimeout(f"no verdict within {timeout_s:g}s")
    _release(worker)
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box["value"]  # type: ignore[return-value]
