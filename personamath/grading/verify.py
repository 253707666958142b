"""verify(gold, prediction): the verdict that every accepted row rests on.

Order of work, cheapest first:

1. extract the answer from the prediction (a bare answer is its own answer);
2. clean both strings (units, currency, separators; see normalize.py); two different
   recognised units (``5 cm`` vs ``5 m``) are incorrect, identical cleaned strings
   are correct;
3. plain numbers on both sides are compared exactly with ``fractions.Fraction`` (no
   sympy), under the same decimal rule as ``compare``;
4. otherwise both are parsed (the gold parse is cached) and compared, inside a
   daemon thread with a wall-clock limit, so a pathological input yields ``error``
   within ``timeout_s`` in any thread or process (no signals).

``error`` is reserved for "could not decide": nothing extracted, an unparseable
side, a timeout. A prediction that parses to something different is ``incorrect``.
"""

from __future__ import annotations

import re
from fractions import Fraction
from functools import lru_cache

from personamath.grading.answer import Answer, parse_clean
from personamath.grading.compare import FLOAT_DIGITS, rounds_to, same
from personamath.grading.deadline import GradingTimeout, run_with_deadline
from personamath.grading.expr import ParseError
from personamath.grading.extract import extract_answer
from personamath.grading.normalize import clean, unit_signature
from personamath.grading.verdict import Verdict

MAX_ANSWER_CHARS = 2000
_PLAIN_NUMBER_RE = re.compile(r"-?(?:\d+(?:\.\d+)?|\.\d+)")


@lru_cache(maxsize=131072)
def _clean_cached(s: str) -> str:
    return clean(s)


@lru_cache(maxsize=32768)  # bounded memory: parsed sympy objects are not tiny
def _parse_cached(cleaned: str) -> Answer | ParseError:
    """Parsed form of a cleaned answer; parse failures are cached too."""
    try:
        return parse_clean(cleaned)
    except ParseError as exc:
        return exc
    except RecursionError:
        return ParseError("expression nested too deeply")


def _fast_numbers(g: str, p: str) -> tuple[bool, str] | None:
    """Plain numbers on both sides: exact comparison with the decimal rule, no sympy."""
    if not (_PLAIN_NUMBER_RE.fullmatch(g) and _PLAIN_NUMBER_RE.fullmatch(p)):
        return None
    fg, fp = Fraction(g), Fraction(p)
    if fg == fp:
        return True, "equal numbers"
    for text, other in ((g, fp), (p, fg)):  # float noise; both sides terminate here
        digits = len(text.lstrip("-").replace(".", "").lstrip("0"))
        close = abs(fg - fp) <= Fraction(1, 10**14) * abs(other)
        if "." in text and digits >= FLOAT_DIGITS and close:
            return True, "equal up to double-precision noise"
    if rounds_to(abs(fg - fp), _decimals(g), _decimals(p)):
        return True, "prediction rounds to the gold's decimals"
    return False, "different numbers"


def _decimals(text: str) -> tuple[int, ...]:
    return (len(text.split(".", 1)[1]),) if "." in text else ()


def _compare(gold_clean: str, pred_clean: str) -> tuple[str, str, str | None, str | None]:
    """Full comparison of two cleaned answers: (status, reason, gold form, pred form)."""
    g = _parse_cached(gold_clean)
    if isinstance(g, ParseError):
        return "error", f"could not parse gold: {g}", None, None
    p = _parse_cached(pred_clean)
    if isinstance(p, ParseError):
        return "error", f"could not parse prediction: {p}", g.show(), None
    result = same(g, p)
    return ("correct" if result.equal else "incorrect"), result.reason, g.show(), p.show()


def verify(
    gold: str, prediction: str, dataset: str | None = None, timeout_s: float = 5.0
) -> Verdict:
    """Compare ``prediction`` (a whole response or a bare answer) with ``gold``."""
    if prediction is None or gold is None:
        return Verdict("error", "missing gold or prediction", None, None, None)
    gold = str(gold)
    extracted = extract_answer(str(prediction), dataset)
    if extracted is None:
        return Verdict("error", "no answer found in the prediction", gold, None, None)
    if len(extracted) > MAX_ANSWER_CHARS or len(gold) > MAX_ANSWER_CHARS:
        return Verdict("error", "answer too long to grade", gold, None, extracted)
    g, p = _clean_cached(gold), _clean_cached(extracted)
    if not g:
        return Verdict("error", "empty gold answer", gold, None, extracted)
    if not p:
        return Verdict("error", "empty answer after clean-up", g, None, extracted)
    gu, pu = unit_signature(gold), unit_signature(extracted)
    if gu is not None and pu is not None and gu != pu:
        return Verdict("incorrect", f"different units ({gu} vs {pu})", g, p, extracted)
    if g == p:
        return Verdict("correct", "identical after normalisation", g, p, extracted)
    fast = _fast_numbers(g, p)
    if fast is not None:
        return Verdict("correct" if fast[0] else "incorrect", fast[1], g, p, extracted)
    try:
        status, reason, gform, pform = run_with_deadline(lambda: _compare(g, p), timeout_s)
    except GradingTimeout as exc:
        return Verdict("error", f"timeout: {exc}", g, p, extracted)
    except Exception as exc:  # noqa: BLE001 - a grader bug must not look like a wrong answer
        return Verdict("error", f"grader failure: {type(exc).__name__}: {exc}", g, p, extracted)
    return Verdict(status, reason, gform, pform, extracted)  # type: ignore[arg-type]
