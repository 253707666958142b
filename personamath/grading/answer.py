"""Parsed answers: what kind of object an answer string denotes.

The structure is decided before any value is computed, because the kind decides
the comparison: tuples are ordered, sets and solution lists are not, interval
brackets matter, an equation ``x = 3`` may stand for its value, a text answer is
compared as text. Separators inside brackets never split the answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache

import sympy

from personamath.grading.expr import PM, Flags, ParseError, parse_tokens
from personamath.grading.normalize import clean
from personamath.grading.tokens import CLOSERS, MATH_WORDS, OPENERS, Tok, TokenizeError, tokenize

RELATIONS = {
    "=": "=", "==": "=", "\\approx": "≈", "≈": "≈", "<": "<", "\\lt": "<", ">": ">", "\\gt": ">",
    "<=": "<=", "\\le": "<=", "\\leq": "<=", "\\leqslant": "<=", ">=": ">=", "\\ge": ">=",
    "\\geq": ">=", "\\geqslant": ">=", "!=": "!=", "\\ne": "!=", "\\neq": "!=",
}  # fmt: skip
_EMPTY_RE = re.compile(
    r"(?:\\emptyset|\\varnothing|\\\{\s*\\\}|\{\s*\}|\\text\{\s*(?:no solutions?|none|empty set|"
    r"no real solutions?|\\emptyset)\s*\}|no solutions?|none|empty set|no real solutions?|"
    r"\\mathbb\{R\}\s*\\setminus\s*\\mathbb\{R\})",
    re.I,
)
_CHOICE_FULL_RE = re.compile(r"(?:\\text\{\s*)?\(?\s*([A-J])\s*\)?\s*\}?(?:\s*[.:])?")
_CHOICE_MARK_RE = re.compile(r"\(\s*([A-J])\s*\)")
_CHOICE_PREFIX_RE = re.compile(
    r"(?:(?i:option|choice|answer)\s*:?\s*)?(?:\\text(?:bf)?\{\s*)?(?:\(([A-J])\)|([A-J])\))"
    r"|(?i:option|choice)\s+\(?([A-J])\)?\s*$"
)
_MATRIX_RE = re.compile(
    r"\\begin\{([a-zA-Z]*matrix\*?|array)\}(?:\{[^{}]*\})?(.*)\\end\{\1\}", re.S
)
_BASED_RE = re.compile(r"(-?[0-9A-Za-z]+(?:\.[0-9A-Za-z]+)?)_\{?\(?(\d{1,2})\)?\}?")
_IN_PREFIX_RE = re.compile(r"^[a-zA-Z]\s*\\in\s*")
_TEXT_WRAP_RE = re.compile(r"\\text\{([^{}]*)\}")
_SHORT_WORDS = {"yes", "no"}
VECTOR = ("⟨", "⟩")  # brackets of a tuple that is certainly a vector (pmatrix, \langle)
# Set-builder notation: {x | x < 2}, {x : x < 2}, {x \mid x < 2}.
_SET_BUILDER_RE = re.compile(
    r"\\\{\s*[a-zA-Z]\s*(?:\\in\s*\\mathbb\{?R\}?\s*)?(?:\\mid|\||:)\s*(.+?)\s*\\\}"
)
# A clock time (``05:00``, ``4:51:06 p.m.``), not a ratio: two-digit minutes plus a
# leading zero, seconds or am/pm.
_AMPM = r"\s*(?:\\text\{)?\s*[ap]\.?\s*m\.?\s*\}?"
_TIME_RE = re.compile(
    r"(?:0\d:[0-5]\d(?::[0-5]\d)?|\d{1,2}:[0-5]\d:[0-5]\d|\d{1,2}:00)(?:" + _AMPM + r")?"
    r"|\d{1,2}(?::[0-5]\d)?" + _AMPM
)
_TEXT_SYNONYMS = {"dne": "does not exist", "doesn t exist": "does not exist", "y": "yes",
                  "n": "no", "true": "yes", "false": "no"}  # fmt: skip


@dataclass(frozen=True)
class Scalar:
    """A single value; ``decimals`` holds the digit counts of its decimal literals."""

    expr: sympy.Expr
    decimals: tuple[int, ...] = ()
    percent: bool = False
    degree: bool = False

    def show(self) -> str:
        suffix = "%" if self.percent else ("°" if self.degree else "")
        try:
            text = sympy.sstr(self.expr)
        except ValueError:  # integers beyond Python's str() digit limit
            text = "<very large number>"
        return f"{text[:200]}{suffix}"


@dataclass(frozen=True)
class Based:
    """A numeral written with a base subscript: ``10110_2``, ``1A_{16}``, ``0.0011_2``."""

    digits: str
    base: int

    def show(self) -> str:
        return f"{self.digits}_{self.base}"


@dataclass(frozen=True)
class Seq:
    """A collection: ``tuple`` (ordered, with brackets), ``set`` or ``list`` (unordered)."""

    kind: str
    items: tuple[Answer, ...]
    left: str = ""
    right: str = ""
    alternatives: bool = False  # a list joined by "or": "x + 11 or 11 + x"
    conjunction: bool = False  # joined by "and": "x > 2 and x < 5" is an intersection

    def show(self) -> str:
        inner = ", ".join(item.show() for item in self.items)
        if self.kind == "set":
            return "{" + inner + "}"
        return f"{self.left}{inner}{self.right}"


@dataclass(frozen=True)
class Matrix:
    """A matrix with at least two rows and two columns (vectors are tuples)."""

    rows: tuple[tuple[Answer, ...], ...]

    def show(self) -> str:
        return "[" + "; ".join(", ".join(c.show() for c in row) for row in self.rows) + "]"


@dataclass(frozen=True)
class Relation:
    """An equation or inequality chain ``a op b op c``."""

    parts: tuple[Answer, ...]
    ops: tuple[str, ...]

    def show(self) -> str:
        out = self.parts[0].show()
        for op, part in zip(self.ops, self.parts[1:], strict=True):
            out += f" {op} {part.show()}"
        return out


@dataclass(frozen=True)
class Union:
    """A union of intervals or sets (``\\cup``)."""

    parts: tuple[Answer, ...]

    def show(self) -> str:
        return " U ".join(p.show() for p in self.parts)


@dataclass(frozen=True)
class Text:
    """A word answer, compared after case and punctuation folding."""

    text: str

    def show(self) -> str:
        return repr(self.text)


@dataclass(frozen=True)
class Choice:
    """A multiple-choice letter, with the option's value when one follows it."""

    letter: str
    value: Answer | None = None

    def show(self) -> str:
        return f"({self.letter})"


@dataclass(frozen=True)
class Empty:
    """The empty set / no solution."""

    def show(self) -> str:
        return "∅"


Answer = Scalar | Based | Seq | Matrix | Relation | Union | Text | Choice | Empty


def fold_text(s: str) -> str:
    """Case- and punctuation-insensitive form of a text answer."""
    s = _TEXT_WRAP_RE.sub(lambda m: m.group(1), s)
    s = re.sub(r"\\[a-zA-Z]+", " ", s).lower()
    s = re.sub(r"[^a-z0-9]+", " ", s).strip()
    s = re.sub(r"\b([ap]) m\b", r"\1m", s)  # p.m. -> pm
    s = re.sub(r"\b0+(\d)", r"\1", s)  # 05 00 -> 5 00
    s = re.sub(r"^(?:the|a|an) ", "", s)
    return _TEXT_SYNONYMS.get(s, s)


def _is_text(s: str) -> bool:
    """True when the answer is words rather than mathematics."""
    unwrapped = _TEXT_WRAP_RE.sub(lambda m: " " + m.group(1) + " ", s)
    plain = re.sub(r"\\[a-zA-Z]+", " ", unwrapped)
    words = [w.lower() for w in re.findall(r"[A-Za-z]{3,}", plain)]
    if any(w not in MATH_WORDS for w in words):
        return True
    if fold_text(s) in _SHORT_WORDS:
        return True
    whole = _TEXT_WRAP_RE.fullmatch(s.strip())
    content = re.sub(r"\b(?:and|or)\b", " ", whole.group(1)) if whole else ""
    return bool(whole and re.search(r"[A-Za-z]", content))


def based_value(digits: str, base: int) -> Fraction:
    """Value of ``digits`` (sign and radix point allowed) in ``base``; ValueError if bad."""
    sign = -1 if digits.startswith("-") else 1
    whole, _, frac = digits.lstrip("-").partition(".")
    value = Fraction(int(whole, base))
    if frac:
        value += Fraction(int(frac, base), base ** len(frac))
    return sign * value


def _valid_digits(digits: str, base: int) -> bool:
    try:
        based_value(digits, base)
    except ValueError:
        return False
    return 2 <= base <= 36 and any(c.isdigit() for c in digits)


def _split_top(toks: list[Tok], seps: set[str], words: bool = True) -> list[list[Tok]]:
    """Split at separators that are outside every bracket.

    ``words`` also splits at "and"/"or" (plain or ``\\text``), as in ``2 \\text{ or } 3``.
    """
    parts: list[list[Tok]] = [[]]
    depth = 0
    for tok in toks:
        bracket = tok.kind in ("op", "cmd")
        if bracket and tok.value in OPENERS:
            depth += 1
        elif bracket and tok.value in CLOSERS:
            depth -= 1
        is_word = tok.kind == "sep" or (
            tok.kind == "text" and tok.value.strip(" ,").lower() in ("and", "or", "")
        )
        if depth == 0 and ((bracket and tok.value in seps) or (words and is_word)):
            parts.append([])
        else:
            parts[-1].append(tok)
    return [p for p in parts if p]


def _wrapped(toks: list[Tok]) -> bool:
    """True when the first token's bracket closes exactly at the last token."""
    if len(toks) < 2 or toks[0].value not in OPENERS or toks[-1].value not in CLOSERS:
        return False
    depth = 0
    for i, tok in enumerate(toks):
        if tok.kind not in ("op", "cmd"):
            continue
        if tok.value in OPENERS:
            depth += 1
        elif tok.value in CLOSERS:
            depth -= 1
            if depth == 0 and i != len(toks) - 1:
                return False
    return depth == 0


def _split_relations(toks: list[Tok]) -> tuple[list[list[Tok]], list[str]]:
    parts: list[list[Tok]] = [[]]
    ops: list[str] = []
    depth = 0
    for tok in toks:
        if tok.kind in ("op", "cmd") and tok.value in OPENERS:
            depth += 1
        elif tok.kind in ("op", "cmd") and tok.value in CLOSERS:
            depth -= 1
        if depth == 0 and tok.kind in ("op", "cmd") and tok.value in RELATIONS:
            ops.append(RELATIONS[tok.value])
            parts.append([])
        else:
            parts[-1].append(tok)
    return parts, ops


def _plain_number(toks: list[Tok]) -> bool:
    """A single (signed) number literal, possibly with % or °: the decimal rule's domain."""
    core = [t for t in toks if t.value not in ("-", "+", "%", "°")]
    return len(core) == 1 and core[0].kind == "num"


def _scalar(toks: list[Tok]) -> Answer:
    flags = Flags()
    expr = parse_tokens(toks, flags)
    decimals = tuple(flags.decimals) if _plain_number(toks) else ()
    base = Scalar(expr, decimals, flags.percent, flags.degree)
    if not flags.pm:
        return base
    values = []
    for sign in (1, -1):
        value = expr.subs(PM, sign)
        if value not in values:
            values.append(value)
    items = tuple(Scalar(v, base.decimals, base.percent, base.degree) for v in values)
    return items[0] if len(items) == 1 else Seq("list", items)


def parse_tokens_answer(toks: list[Tok]) -> Answer:
    """Structure of a token list: list, union, relation, bracketed collection, scalar."""
    parts = _split_top(toks, {",", ";"})
    if len(parts) > 1:
        words = {t.value.strip().lower() for t in toks if t.kind in ("sep", "text")}
        items = tuple(v for p in parts for v in _pm_values(parse_tokens_answer(p)))
        return Seq("list", items, alternatives="or" in words, conjunction="and" in words)
    toks = parts[0] if parts else []
    if not toks:
        raise ParseError("empty answer")
    has_cup = any(t.value == "\\cup" for t in toks)
    unions = _split_top(toks, {"\\cup"}, words=False) if has_cup else [toks]
    if len(unions) > 1:
        return Union(tuple(parse_tokens_answer(p) for p in unions))
    rel_parts, ops = _split_relations(toks)
    if ops:
        if any(not p for p in rel_parts):
            raise ParseError("relation with an empty side")
        parts = tuple(_function_label(p) or parse_tokens_answer(p) for p in rel_parts)
        return Relation(parts, tuple(ops))
    if _wrapped(toks) and toks[0].kind in ("op", "cmd") and toks[0].value != "{":
        return _bracketed(toks)
    braced = _wrapped(toks) and toks[0].value == "{"
    if braced:  # {1, 2, 3} written without backslashes is still a set
        items = _split_top(toks[1:-1], {","}, words=False)
        if len(items) == 1:
            return parse_tokens_answer(toks[1:-1])
        return Seq("set", tuple(parse_tokens_answer(p) for p in items))
    return _scalar(toks)


def _pm_values(item: Answer) -> tuple[Answer, ...]:
    """The values of one list element: ``\\pm 2, 3`` is the list 2, -2, 3.

    A part without a top-level comma parses to a plain list only through ``\\pm``
    expansion (see `_scalar`), so such a list, or an equation ``x = \\pm 2`` whose
    value is one, is spliced into the enclosing list before elements are matched."""
    if isinstance(item, Seq) and item.kind == "list":
        return item.items
    if (isinstance(item, Relation) and item.ops == ("=",)
            and isinstance(item.parts[1], Seq) and item.parts[1].kind == "list"):
        return tuple(Relation((item.parts[0], v), ("=",)) for v in item.parts[1].items)
    return (item,)


def _function_label(toks: list[Tok]) -> Scalar | None:
    """``f(x)``, ``g^{-1}(3)``, ``P(A)`` on one side of an equation: a name, not a product."""
    if len(toks) < 4 or toks[0].kind != "id" or toks[-1].value != ")":
        return None
    i = 1
    if toks[i].value == "^":
        exp = "".join(t.value for t in toks[i + 1 : i + 6])
        for form in ("{-1}", "-1"):
            if exp.startswith(form):
                i += 1 + len(form) if form == "-1" else 1 + 4
                break
        else:
            return None
    if toks[i].value != "(" or not _wrapped(toks[i:]):
        return None
    if any(t.kind not in ("id", "num", "op") for t in toks[i + 1 : -1]):
        return None
    return Scalar(sympy.Symbol("".join(t.value for t in toks)))


def _bracketed(toks: list[Tok]) -> Answer:
    left, right = toks[0].value, toks[-1].value
    inner = toks[1:-1]
    items = _split_top(inner, {",", ";"}) if inner else []
    if left == "\\{":
        return Seq("set", tuple(parse_tokens_answer(p) for p in items)) if items else Empty()
    if left in ("\\lfloor", "\\lceil") or (len(items) == 1 and left in ("(", "[")):
        return _scalar(toks)
    if not items:
        raise ParseError("empty brackets")
    if left == "\\langle":
        left, right = VECTOR
    return Seq("tuple", tuple(parse_tokens_answer(p) for p in items), left, right)


def _matrix(body: str) -> Answer:
    rows = [r for r in re.split(r"\\\\(?:\[[^\]]*\])?", body) if r.strip()]
    cells = [tuple(parse_clean(c) for c in row.split("&")) for row in rows]
    if not cells or len({len(r) for r in cells}) != 1:
        raise ParseError("ragged matrix")
    if len(cells) == 1 or len(cells[0]) == 1:
        flat = tuple(c for row in cells for c in row)
        return flat[0] if len(flat) == 1 else Seq("tuple", flat, *VECTOR)
    return Matrix(tuple(cells))


def _choice_value(rest: str) -> Answer | None:
    """The value after a choice letter: ``\\textbf{(C) }7`` offers 7."""
    rest = re.sub(r"^\s*\}?\s*[.:]?\s*", "", rest).strip()
    if not rest:
        return None
    try:
        value = parse_clean(rest)
    except ParseError:
        return None
    return None if isinstance(value, Choice) else value


def parse_clean(s: str) -> Answer:
    """Parse an already-cleaned answer string."""
    s = _IN_PREFIX_RE.sub("", s.strip())
    if not s:
        raise ParseError("empty answer")
    if _EMPTY_RE.fullmatch(s):
        return Empty()
    builder = _SET_BUILDER_RE.fullmatch(s)
    if builder:
        return parse_clean(builder.group(1))
    choice = _CHOICE_FULL_RE.fullmatch(s) or _CHOICE_PREFIX_RE.match(s)
    if choice:
        letter = next(g for g in choice.groups() if g).upper()
        more = _CHOICE_MARK_RE.findall(s[choice.end() :])
        if more:  # "(A) and (B)", "(A) 5 (B) 6": several options, not option A
            return Seq("list", tuple(Choice(x) for x in [letter, *more]))
        return Choice(letter, _choice_value(s[choice.end() :]))
    matrix = _MATRIX_RE.fullmatch(re.sub(r"^[(\[]\s*(\\begin.*\\end\{[^}]*\})\s*[)\]]$", r"\1", s))
    if matrix:
        return _matrix(matrix.group(2))
    based = _BASED_RE.fullmatch(s)
    if based and _valid_digits(based.group(1), int(based.group(2))):
        return Based(based.group(1).upper(), int(based.group(2)))
    if based and based.group(1)[:1].isdigit():  # 21010_2: digits the base does not have
        return Text(f"invalid base-{based.group(2)} numeral {based.group(1)}")
    if _is_text(s) or _TIME_RE.fullmatch(s):
        return Text(fold_text(s))
    whole = _TEXT_WRAP_RE.fullmatch(s)
    if whole:  # \text{5 and 7}: only numbers and connectives inside
        s = whole.group(1)
    try:
        return parse_tokens_answer(tokenize(s))
    except TokenizeError as exc:
        raise ParseError(str(exc)) from exc
    except (TypeError, ValueError, AttributeError, RecursionError) as exc:
        if isinstance(exc, ParseError):
            raise
        raise ParseError(f"{type(exc).__name__}: {exc}") from exc


@lru_cache(maxsize=16384)
def parse_answer(raw: str) -> Answer:
    """Parse an answer string (cached: golds repeat across samples)."""
    return parse_clean(clean(raw))
