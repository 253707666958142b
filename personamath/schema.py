"""Record types that flow between the steps, and their Arrow schemas.

Every input question ends as exactly one `Outcome` (accepted with n rows, or rejected
with a reason); every training row carries its lineage. The Arrow schemas are fixed so
that shards written by different processes concatenate without surprises.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

import pyarrow as pa


class RejectReason:
    """Named reasons a question (or input row) is dropped; counted in the summary."""

    INVALID_INPUT = "invalid_input"
    WRONG_AFTER_REFLECTION = "wrong_after_reflection"
    UNPARSABLE_ANSWER = "unparsable_answer"
    TRUNCATED = "truncated"
    TEACHER_ERROR = "teacher_error"
    DUPLICATE = "duplicate"
    CONTAMINATED = "contaminated"
    NO_REFLECTION = "wrong_no_reflection"  # R = 0: wrong in Stage 1 and never reflected on

    ALL = (
        INVALID_INPUT, WRONG_AFTER_REFLECTION, UNPARSABLE_ANSWER, TRUNCATED,
        TEACHER_ERROR, DUPLICATE, CONTAMINATED, NO_REFLECTION,
    )


@dataclass(frozen=True)
class Question:
    """One source question in the common schema."""

    id: str
    dataset: str
    split: str
    question: str
    gold: str
    level: str | None = None
    subject: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class InputRejection:
    """An input row that could not become a Question (missing answer, empty question...)."""

    id: str
    dataset: str
    reason: str
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Row:
    """One verified (problem, response) pair with its lineage."""

    problem: str
    response: str
    source_id: str
    source_dataset: str
    stage: int
    kind: str  # "original" | "rewrite"
    persona: str | None
    persona_occupation: str | None
    rewrite_index: int | None
    attempt: int  # 0 = first solve, n = n-th reflection
    teacher_model: str
    teacher_provider: str
    prompt_version: str
    gold_answer: str
    extracted_answer: str
    verdict: str
    verdict_reason: str
    level: str | None
    subject: str | None
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    row_id: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Outcome:
    """How one question ended in a stage. For Stage 1 a failed question carries its
    last attempt so that Stage 2 can reflect on it."""

    question_id: str
    dataset: str
    stage: int
    status: str  # "accepted" | "rejected" | "to_stage2"
    reason: str  # "" when accepted
    rows: int
    rewrites_tried: int
    rewrites_kept: int
    last_response: str
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


QUESTION_SCHEMA = pa.schema([
    ("id", pa.string()), ("dataset", pa.string()), ("split", pa.string()),
    ("question", pa.string()), ("gold", pa.string()),
    ("level", pa.string()), ("subject", pa.string()),
])

REJECTION_SCHEMA = pa.schema([
    ("id", pa.string()), ("dataset", pa.string()), ("reason", pa.string()), ("detail", pa.string()),
])



def _schema_for(cls: type) -> pa.Schema:
    hints = {"str": pa.string(), "int": pa.int64(), "float": pa.float64(),
             "str | None": pa.string(), "int | None": pa.int64()}
    return pa.schema([(f.name, hints[str(f.type)]) for f in fields(cls)])


ROW_SCHEMA = _schema_for(Row)
OUTCOME_SCHEMA = _schema_for(Outcome)


def to_table(records: list[Any], schema: pa.Schema) -> pa.Table:
    """Build a table with a fixed schema (an empty list still has every column)."""
    dicts = [r.to_dict() if hasattr(r, "to_dict") else r for r in records]
    return pa.Table.from_pylist(dicts, schema=schema)


def questions_from_table(table: pa.Table) -> list[Question]:
    return [Question(**d) for d in table.to_pylist()]
