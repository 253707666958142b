"""Versioned prompt templates for solving and reflecting (rewrite prompts live with the
personas). Every version string enters the run fingerprint: change a prompt, bump its
version, and outputs go to a new place instead of mixing with old ones."""

from __future__ import annotations

from personas.catalog import REWRITE_PROMPT_VERSION

SOLVE_PROMPT_VERSION = "solve-1"
REFLECT_PROMPT_VERSION = "reflect-1"

SOLVE_SYSTEM = (
    "You are a careful mathematician. Solve problems step by step, explaining each step, "
    "and put the final answer alone inside \\boxed{} at the end."
)

SOLVE_TEMPLATE = """Solve the following math problem. Reason step by step, showing your work, \
and end with the final answer in the form \\boxed{{answer}}.

Problem:
{question}"""

REFLECT_TEMPLATE = """Your solution above is incorrect. Reconsider the problem carefully: find \
the mistake in your reasoning, then write a complete corrected solution from the beginning, \
step by step, ending with the final answer in the form \\boxed{{answer}}.{hint}"""

REFLECT_HINT = " The correct final answer is {gold}; your solution must derive it."


def solve_messages(question: str) -> list[tuple[str, str]]:
    """(role, content) pairs asking for a detailed CoT ending in one \\boxed{}."""
    return [("system", SOLVE_SYSTEM), ("user", SOLVE_TEMPLATE.format(question=question))]


def reflect_messages(question: str, wrong_solution: str, gold: str | None) -> list[tuple[str, str]]:
    """The question, the earlier wrong attempt, and the request to find the error and
    re-solve. `gold` is shown only when the run reveals it (a setting)."""
    hint = REFLECT_HINT.format(gold=gold) if gold is not None else ""
    return [
        *solve_messages(question),
        ("assistant", wrong_solution or "(no solution was produced)"),
        ("user", REFLECT_TEMPLATE.format(hint=hint)),
    ]


def versions() -> dict[str, str]:
    """Every version that changes outputs (prompts, personas, grader)."""
    from personamath.grading import GRADER_VERSION
    from personas.catalog import load_catalog

    return {
        "solve": SOLVE_PROMPT_VERSION,
        "reflect": REFLECT_PROMPT_VERSION,
        "rewrite": REWRITE_PROMPT_VERSION,
        "personas": load_catalog().version,
        "grader": GRADER_VERSION,
    }


def prompt_version() -> str:
    """Compact label stored on every row."""
    return f"{SOLVE_PROMPT_VERSION}+{REFLECT_PROMPT_VERSION}+{REWRITE_PROMPT_VERSION}"
