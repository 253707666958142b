"""Tokenizer shared by the structure parser and the expression parser.

One tokenizer for LaTeX and plain text alike: ``\\frac{1}{2}``, ``1/2``, ``sqrt(3)/2``
and ``-2*pi`` all become the same small token vocabulary.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

PLAIN_FUNCS = {
    "sqrt", "sin", "cos", "tan", "sec", "csc", "cot", "arcsin", "arccos", "arctan",
    "sinh", "cosh", "tanh", "log", "ln", "exp", "abs", "asin", "acos", "atan", "cbrt",
}  # fmt: skip
PLAIN_CONSTS = {"pi", "inf", "infty", "infinity", "oo"}
MATH_WORDS = PLAIN_FUNCS | PLAIN_CONSTS | {"and", "or", "mod", "gcd", "lcm", "deg", "min", "max"}

_TOKEN_RE = re.compile(
    r"""
     (?P<ws>\s+)
    |(?P<num>(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+(?![\d.a-zA-Z]))?)
    |(?P<cmd>\\[a-zA-Z]+|\\.)
    |(?P<word>[a-zA-Z]+(?:\d+(?![\d.]))?)
    |(?P<op>\*\*|<=|>=|!=|=>|==|.)
    """,
    re.X,
)


@dataclass(frozen=True)
class Tok:
    """One token: ``kind`` is num, id, func, const, cmd, text, sep or op."""

    kind: str
    value: str


OPENERS = {"(", "[", "{", "\\{", "\\langle", "\\lfloor", "\\lceil"}
CLOSERS = {")", "]", "}", "\\}", "\\rangle", "\\rfloor", "\\rceil"}


class TokenizeError(ValueError):
    """The string contains something the grader does not read."""


def _read_group(s: str, i: int) -> tuple[str, int]:
    """Brace group starting at ``s[i] == '{'``: its content and the index after it."""
    depth = 0
    for j in range(i, len(s)):
        if s[j] == "{" and (j == 0 or s[j - 1] != "\\"):
            depth += 1
        elif s[j] == "}" and (j == 0 or s[j - 1] != "\\"):
            depth -= 1
            if depth == 0:
                return s[i + 1 : j], j + 1
    raise TokenizeError("unbalanced braces")


def _word_tokens(word: str) -> list[Tok]:
    """Split a run of letters: known names stay whole, other letters are variables."""
    m = re.fullmatch(r"([a-zA-Z]+)(\d*)", word)
    assert m is not None
    letters, digits = m.group(1), m.group(2)
    low = letters.lower()
    if low in ("and", "or") and not digits:
        return [Tok("sep", low)]
    if low in PLAIN_FUNCS:
        out = [Tok("func", low)]
        return out + ([Tok("num", digits)] if digits else [])
    if low in PLAIN_CONSTS:
        out = [Tok("const", low)]
        return out + ([Tok("num", digits)] if digits else [])
    toks = [Tok("id", ch) for ch in letters]
    if digits:  # x2 is a subscripted name, never 2x
        toks[-1] = Tok("id", f"{letters[-1]}_{digits}")
    return toks


def _bare_letter(out: list[Tok]) -> bool:
    """The last token is a one-letter variable with no subscript yet."""
    return bool(out) and out[-1].kind == "id" and len(out[-1].value) == 1


def tokenize(s: str) -> list[Tok]:
    """Tokens of a cleaned answer string; ``\\text{...}`` becomes one ``text`` token."""
    out: list[Tok] = []
    i = 0
    while i < len(s):
        m = _TOKEN_RE.match(s, i)
        if m is None:  # pragma: no cover - the op branch matches any character
            raise TokenizeError(f"cannot read {s[i:]!r}")
        kind = m.lastgroup or "op"
        value = m.group(0)
        i = m.end()
        if kind == "ws":
            continue
        if kind == "num" and value.isdigit() and _bare_letter(out):
            # Spaces do not count in LaTeX math: ``x 2`` renders as x2, the name x_2
            # (as ``x2`` is read), never the product 2x.
            out[-1] = Tok("id", f"{out[-1].value}_{value}")
            continue
        if kind == "cmd" and value == "\\text":
            j = i
            while j < len(s) and s[j] == " ":
                j += 1
            if j < len(s) and s[j] == "{":
                content, i = _read_group(s, j)
                out.append(Tok("text", content.strip()))
                continue
        if kind == "word":
            out.extend(_word_tokens(value))
        else:
            out.append(Tok(kind, value))
    return out
