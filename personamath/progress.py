"""A tiny progress hook: pure code reports, whoever runs it (CLI, Prefect task) listens.

Keeps the core free of rich and Prefect while still letting a terminal show a live bar
and a flow update a progress artifact.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable

Reporter = Callable[[str, int, int], None]  # (step, done, total)

_lock = threading.Lock()
_reporters: list[Reporter] = []


def add_reporter(fn: Reporter) -> None:
    with _lock:
        _reporters.append(fn)


def remove_reporter(fn: Reporter) -> None:
    with _lock:
        if fn in _reporters:
            _reporters.remove(fn)


def report(step: str, done: int, total: int) -> None:
    """Tell every listener that `done` of `total` items of `step` are finished."""
    with _lock:
        listeners = list(_reporters)
    for fn in listeners:
        with contextlib.suppress(Exception):  # a broken display must never stop a run
            fn(step, done, total)
