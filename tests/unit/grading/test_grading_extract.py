"""extract_answer: the documented priority order, one rule at a time."""

from __future__ import annotations

import pytest

from personamath.grading import extract_answer

CASES = [
    (r"so $\boxed{\frac{1}{2}}$.", None, r"\frac{1}{2}"),
    (r"first $\boxed{3}$ then $\boxed{4}$", None, "4"),
    (r"\boxed{\left(\frac{1}{2}, \sqrt{3}\right)}", None, r"\left(\frac{1}{2}, \sqrt{3}\right)"),
    (r"\fbox{7}", None, "7"),
    (r"The answer is $\boxed 5$.", None, "5"),
    ("Final Answer: The final answer is $12$. I hope it is correct.", None, "12"),
    (
        "Final Answer: The final answer is $\\frac{3}{4}$. I hope it is correct.",
        None,
        "\\frac{3}{4}",
    ),
    ("Thus the answer is 17.", None, "17"),
    ("Answer: 2, 3", None, "2, 3"),
    ("work 3 + 4 = 7\n#### 7", None, "7"),
    ("#### 1,000", "gsm8k", "1,000"),
    ("The answer is 5 \\boxed{6}", "gsm8k", "6"),
    ("wrong path #### 3 ... final \\boxed{4}", None, "4"),
    ("wrong path \\boxed{4}\n#### 3", "gsm8k", "3"),
    ("**Step 1:** add.\nThe total is **42**.", None, "42"),
    ("3/4", None, "3/4"),
    (r"\frac12", None, r"\frac12"),
    ("(C)", None, "(C)"),
    ("12 inches", None, "12 inches"),
    ("There were 3 cats and then 5 more came, so 8 cats", None, "8"),
    ("The point we need is $(3, -1)$.", None, "(3, -1)"),
    ("We know $x > 0$ so the count is 7", None, "7"),
    ("-4.5", None, "-4.5"),
]


@pytest.mark.parametrize(("text", "dataset", "expected"), CASES)
def test_extract(text: str, dataset: str | None, expected: str) -> None:
    assert extract_answer(text, dataset) == expected


@pytest.mark.parametrize("text", ["", "   ", "I do not know how to solve this problem at all."])
def test_extract_nothing(text: str) -> None:
    assert extract_answer(text) is None


def test_a_box_cut_off_leaves_no_answer() -> None:
    """The reply stopped while stating its answer: an earlier number is not the answer."""
    assert extract_answer(r"the value is 9 and \boxed{\frac{1}{2}") is None
    assert extract_answer("48 + 24 = 72 clips.\nSo the final answer is \\boxed{7") is None
    assert extract_answer("so \\boxed{7\nThe answer is 72.") == "72"  # a later line still counts


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Thus\n$$\nx = \\frac{1}{2}\n$$", "x = \\frac{1}{2}"),
        ("Therefore\n\\[\n\\frac{\\sqrt{3}}{2}\n\\]\nas required.", "\\frac{\\sqrt{3}}{2}"),
        ("The total is 42 apples, where each is $a$.", "42"),
        ("The correct option is C.", "C"),
        ("The correct answer is (B).", "(B)"),
        ("Let me check each option: (A) is 5, so 12.", "12"),
        ("15 * 8 = <<15*8=120>>120 pints", "15 * 8 = 120 pints"),
        ("**Final Answer**\n\nThe total is 5.", "5"),
        ("The final answer is that there are $\\frac{3}{4}$ of them.", "\\frac{3}{4}"),
        ("The answer is 5 apples.", "5 apples"),
        ("The answer is $(2, 5]$.", "(2, 5]"),
    ],
)
def test_extract_fallbacks(text: str, expected: str) -> None:
    assert extract_answer(text) == expected
