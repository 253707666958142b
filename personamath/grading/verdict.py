"""The grader's result type: one verdict per (gold, prediction) pair."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Status = Literal["correct", "incorrect", "error"]


@dataclass(frozen=True)
class Verdict:
    """Outcome of comparing a prediction with a gold answer.

    ``error`` means the grader could not decide (unparseable input, timeout); it is
    kept apart from ``incorrect`` so that grader failures are never counted as model
    failures.
    """

    status: Status
    reason: str
    gold_parsed: str | None
    pred_parsed: str | None
    extracted: str | None

    @property
    def correct(self) -> bool:
        """True only for a ``correct`` verdict."""
        return self.status == "correct"
