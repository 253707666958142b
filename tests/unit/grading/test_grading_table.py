"""Table-driven grading tests (see grading_table.py for the cases)."""

from __future__ import annotations

import pytest
from grading_table import TABLE

from personamath.grading import verify


def test_table_is_large_and_balanced() -> None:
    assert len(TABLE) >= 250
    assert sum(1 for row in TABLE if row[3] == "incorrect") >= 80


@pytest.mark.parametrize(
    ("category", "gold", "prediction", "expected"),
    TABLE,
    ids=[f"{i}-{row[0]}" for i, row in enumerate(TABLE)],
)
def test_grading_table(category: str, gold: str, prediction: str, expected: str) -> None:
    verdict = verify(gold, prediction)
    assert verdict.status == expected, (category, gold, prediction, verdict)
    assert verdict.correct == (expected == "correct")
