"""Self-agreement on the 5,000 MATH test gold answers (fixture copied from MATH)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from personamath.grading import verify
from personamath.grading.answer import parse_answer
from personamath.grading.compare import same

FIXTURE = Path(__file__).parents[2] / "fixtures" / "math_test_golds.jsonl"


@pytest.fixture(scope="module")
def golds() -> list[str]:
    rows = [json.loads(line) for line in FIXTURE.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 5000
    return [row["answer"] for row in rows]


def test_every_gold_verifies_against_itself_and_boxed(golds: list[str]) -> None:
    failures = []
    for gold in golds:
        for pred in (gold, f"So the final answer is $\\boxed{{{gold}}}$."):
            verdict = verify(gold, pred)
            if not verdict.correct:
                failures.append((gold, pred, verdict))
    assert failures == []


def test_every_gold_survives_the_marker_forms(golds: list[str]) -> None:
    """Stated after a marker ("Final Answer", "The answer is") and followed by more
    prose, every gold is still read whole: a union, a `11,\\! 111` or an interval must
    not be cut where the answer sentence is taken to end."""
    failures = []
    for gold in golds:
        for pred in (f"Final Answer: The final answer is ${gold}$. I hope it is correct.",
                     f"The answer is ${gold}$. We checked it twice."):
            verdict = verify(gold, pred)
            if not verdict.correct:
                failures.append((gold, pred, verdict))
    assert failures == []


def test_every_gold_parses_and_equals_its_parse(golds: list[str]) -> None:
    """The string shortcut aside, the structured comparison must also agree."""
    failures = []
    for gold in set(golds):
        parsed = parse_answer(gold)
        if not same(parsed, parsed).equal:
            failures.append(gold)
    assert failures == []
