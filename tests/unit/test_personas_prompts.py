"""Persona catalog, deterministic draw, rewrite parsing and prompt versions."""

from __future__ import annotations

from collections import Counter

from personamath.prompts import reflect_messages, solve_messages, versions
from personas import draw_persona, load_catalog, parse_rewrite, rewrite_messages


def test_catalog_has_eleven_categories_with_occupations() -> None:
    c = load_catalog()
    assert len(c.categories) == 11
    assert {x.code for x in c.categories} == set("1234567890") | {"S"}
    assert all(len(x.occupations) >= 3 for x in c.categories)


def test_draw_is_deterministic_and_spreads() -> None:
    c = load_catalog()
    a = [draw_persona(c, "q1", i, 0).label for i in range(5)]
    assert a == [draw_persona(c, "q1", i, 0).label for i in range(5)]
    assert len({draw_persona(c, "q1", i, 0).category.code for i in range(11)}) == 11
    assert a != [draw_persona(c, "q1", i, 1).label for i in range(5)]
    cats = Counter(draw_persona(c, f"q{j}", 0, 0).category.code for j in range(1100))
    assert len(cats) == 11 and min(cats.values()) > 50


def test_rewrite_prompt_and_parse() -> None:
    p = draw_persona(load_catalog(), "q", 0, 0)
    msgs = rewrite_messages("Tom has 3 apples.", p)
    assert msgs[0][0] == "system" and "Tom has 3 apples." in msgs[1][1]
    assert p.occupation.title in msgs[1][1]
    assert parse_rewrite("Rewritten problem: A baker has 3 loaves. How many?") == \
        "A baker has 3 loaves. How many?"
    assert parse_rewrite("**Rewritten problem:** A nurse has 3 vials.\n\nSolution: 3") == \
        "A nurse has 3 vials."
    assert parse_rewrite("The answer is \\boxed{3}") is None
    assert parse_rewrite("  ") is None


def test_prompts_and_versions() -> None:
    assert "\\boxed" in solve_messages("What is 2+2?")[1][1]
    r = reflect_messages("Q?", "wrong work", None)
    assert [m[0] for m in r] == ["system", "user", "assistant", "user"]
    assert "incorrect" in r[-1][1] and "42" not in r[-1][1]
    assert "42" in reflect_messages("Q?", "w", "42")[-1][1]
    v = versions()
    assert set(v) == {"solve", "reflect", "rewrite", "personas", "grader"}
