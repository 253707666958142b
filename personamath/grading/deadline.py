"""Wall-clock limits that work in any thread or worker process (no signals).

``signal.alarm`` only works in the main thread of the main interpreter, and Prefect
runs tasks in worker threads, so the slow part of grading runs in a daemon thread
that the caller stops waiting for when the limit passes. The work itself also
checks a cooperative deadline between steps, so an abandoned thread stops soon
after instead of burning CPU in the background.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

_local = threading.local()


class GradingTimeout(Exception):
    """The time limit passed before the comparison finished."""


def check_deadline() -> None:
    """Raise ``GradingTimeout`` if the current grading job is past its deadline."""
    deadline = getattr(_local, "deadline", None)
    if deadline is not None and time.monotonic() > deadline:
        raise GradingTimeout("time limit exceeded")


def run_with_deadline(fn: Callable[[], T], timeout_s: float) -> T:
    """Run ``fn`` in a daemon thread; raise ``GradingTimeout`` if it takes too long."""
    box: dict[str, object] = {}
    done = threading.Event()
    deadline = time.monotonic() + timeout_s

    def target() -> None:
        _local.deadline = deadline
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller
            box["error"] = exc
        finally:
            done.set()

    thread = threading.Thread(target=target, name="grading-deadline", daemon=True)
    thread.start()
    if not done.wait(timeout_s):
        raise GradingTimeout(f"no verdict within {timeout_s:g}s")
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box["value"]  # type: ignore[return-value]
