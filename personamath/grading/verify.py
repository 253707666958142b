"""verify(gold, prediction): the verdict that every accepted row rests on."""

from __future__ import annotations

import re
from functools import lru_cache

from personamath.grading.deadline import GradingTimeout, run_with_deadline
from personamath.grading.extract import extract_answer
from personamath.grading.verdict import Verdict

_STRIP = [r"\\left", r"\\right", r"\\!", r"\\,", r"\\;", r"\\ ", r"\s+", r"\$"]


def _norm(s: str) -> str:
    s = s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    for pat in _STRIP:
        s = re.sub(pat, "", s)
    return s.rstrip(".")


@lru_cache(maxsize=65536)
def _sympify(s: str):  # type: ignore[no-untyped-def]
    from latex2sympy2_extended import latex2sympy

    return latex2sympy(s)


def _sympy_equal(a: str, b: str) -> bool:
    import sympy

    ea, eb = _sympify(a), _sympify(b)
    return bool(sympy.simplify(ea - eb) == 0)


def verify(
    gold: str, prediction: str, dataset: str | None = None, timeout_s: float = 5.0
) -> Verdict:
    """Compare ``prediction`` (a response or a bare answer) with ``gold``."""
    extracted = extract_answer(prediction, dataset)
    if extracted is None:
        return Verdict("error", "no answer found in prediction", gold, None, None)
    g, p = _norm(str(gold)), _norm(extracted)
    if g == p:
        return Verdict("correct", "identical after normalisation", g, p, extracted)
    try:
        same = run_with_deadline(lambda: _sympy_equal(g, p), timeout_s)
    except GradingTimeout as exc:
        return Verdict("error", str(exc), g, p, extracted)
    except Exception as exc:  # noqa: BLE001
        return Verdict("error", f"could not parse: {exc}", g, p, extracted)
    if same:
        return Verdict("correct", "symbolically equal", g, p, extracted)
    return Verdict("incorrect", "values differ", g, p, extracted)
