"""Smoke tests of the public interface."""

from personamath.grading import GRADER_VERSION, Verdict, extract_answer, verify


def test_interface() -> None:
    v = verify("72", "She sold 48 + 24 = 72 clips.\n#### 72", "gsm8k")
    assert isinstance(v, Verdict) and v.correct and v.extracted == "72"
    assert GRADER_VERSION.startswith("grader-")


def test_extract_boxed_nested() -> None:
    assert extract_answer(r"so $\boxed{\frac{1}{2}}$.") == r"\frac{1}{2}"


def test_incorrect() -> None:
    assert verify("18", "#### 72", "gsm8k").status == "incorrect"
