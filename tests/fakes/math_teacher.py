"""A scripted math teacher for the fake server: answers known questions right or wrong
on purpose, so a pipeline test can predict every count.

It reads the request like a real model would: a rewrite request (the persona prompt)
gets a rewritten question that keeps the original text; a solve request gets a CoT
ending in \\boxed{}; a reflection request (an earlier attempt, then "Your solution above
is incorrect") gets a new attempt. Each known question has a `Behaviour`.

Also usable as a standalone fake's script: `python -m tests.fakes.fake_teacher --script
tests/fakes/math_teacher.py` with MATH_TEACHER_PLAN=/path/plan.json, a JSON list of
{"question", "gold", "solve", "reflect", "rewrite_solve"}.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tests.fakes.fake_teacher import Reply

SOLVE_OUTCOMES = ("right", "wrong", "unparsable", "truncated")


@dataclass(frozen=True)
class Behaviour:
    solve: str = "right"          # first solve of the original question
    reflect: str = "right"        # every reflection on this question (and its rewrites)
    rewrite_solve: str = "right"  # first solve of each persona rewrite

    def __post_init__(self) -> None:
        for v in (self.solve, self.reflect, self.rewrite_solve):
            assert v in SOLVE_OUTCOMES, v


@dataclass(frozen=True)
class Plan:
    question: str
    gold: str
    behaviour: Behaviour


def wrong_answer(gold: str) -> str:
    """A parsable answer that is certainly not the gold one."""
    try:
        return str(int(float(gold.replace(",", ""))) + 7)
    except ValueError:
        return "987654"


def answer_text(gold: str, outcome: str) -> str | Reply:
    if outcome == "right":
        return (f"Let me solve this step by step.\nFirst, read the quantities carefully.\n"
                f"Then combine them.\nTherefore the final answer is \\boxed{{{gold}}}.")
    if outcome == "wrong":
        return (f"Step by step: I add the numbers.\nSo the answer is "
                f"\\boxed{{{wrong_answer(gold)}}}.")
    if outcome == "unparsable":
        return "I am not sure how to finish this problem."
    return Reply("Let me solve this step by step. First " + "we compute " * 40,
                 finish_reason="length")


class MathTeacher:
    """Responder for FakeTeacher. `plans` maps original question text to its plan."""

    REWRITE_TAG = "[rewritten for a {title}]"

    def __init__(self, plans: list[Plan]) -> None:
        self.plans = {p.question.strip(): p for p in plans}

    @classmethod
    def from_json(cls, path: str) -> MathTeacher:
        rows = json.loads(Path(path).read_text())
        return cls([Plan(r["question"], r["gold"], Behaviour(
            r.get("solve", "right"), r.get("reflect", "right"), r.get("rewrite_solve", "right")))
            for r in rows])

    def to_json(self) -> str:
        return json.dumps([{"question": p.question, "gold": p.gold, **asdict(p.behaviour)}
                           for p in self.plans.values()])

    def find(self, text: str) -> tuple[Plan | None, bool]:
        """(plan, is_rewrite): the known question contained in `text`."""
        text = text.strip()
        if text in self.plans:
            return self.plans[text], False
        for q, p in self.plans.items():
            if q in text:
                return p, True
        return None, False

    def __call__(self, messages: list[dict[str, str]], body: dict[str, Any]) -> str | Reply:
        system = messages[0]["content"] if messages and messages[0]["role"] == "system" else ""
        users = [m["content"] for m in messages if m["role"] == "user"]
        if "rewrite math word problems" in system:
            original = users[-1].split("Original problem:", 1)[-1].strip()
            title = re.search(r"working context of an? (.+?) \(", users[-1])
            tag = self.REWRITE_TAG.format(title=title.group(1) if title else "worker")
            return f"Rewritten problem: {tag} {original}"
        problem = users[0].split("Problem:", 1)[-1].strip()
        plan, is_rewrite = self.find(problem)
        if plan is None:
            return "I do not know this problem. \\boxed{0}"
        b = plan.behaviour
        if len(users) > 1:  # a reflection request
            return answer_text(plan.gold, b.reflect)
        return answer_text(plan.gold, b.rewrite_solve if is_rewrite else b.solve)


_PLAN = os.environ.get("MATH_TEACHER_PLAN")
_TEACHER = MathTeacher.from_json(_PLAN) if _PLAN else None


def respond(messages: list[dict[str, str]], body: dict[str, Any]) -> str | Reply:
    """Entry point for `fake_teacher --script tests/fakes/math_teacher.py`."""
    if _TEACHER is None:
        raise RuntimeError("set MATH_TEACHER_PLAN to a plan JSON file")
    return _TEACHER(messages, body)
