"""Equality of parsed answers: the grading semantics.

Rules (gold first, prediction second; each rule is exercised by near-miss tests):

* Exact values compare exactly: rationals as rationals, anything else numerically to
  35 significant digits, confirmed at 160 digits (``\\sqrt{10^{40}+1}`` is not 10^20).
* The decimal rule. A decimal literal is an exact number (``0.25 == 1/4``). Exact
  values are never rounded: 0.333 is not 1/3 and 1/3 is not 0.333, 3.14 is not pi,
  and no decimal, however long, equals a value whose expansion does not terminate.
  Tolerances exist only between two plain decimals and are scaled to the digits
  given. An unrounded decimal prediction, with at least two more digits than a
  decimal gold, is correct when it rounds to the gold (3.1416 or 3.14159 for 3.14;
  not 3.1512, and not 0.63 for 0.6: one extra digit reads as a different answer).
  A decimal of 12+ significant digits (``0.30000000000000004``) matches a
  terminating value within double-precision noise (relative 1e-14).
* Percent: ``50%`` equals ``50`` and ``0.5`` when the other side has no percent sign
  (never ``x * 100``: 500 is not 5). Degrees: ``45°`` equals ``45``, and ``pi/4``
  when the other side is in radians (has pi); inside a trigonometric function a
  degree sign makes an angle (``\\sin 60°`` is sqrt(3)/2, ``\\sin 60`` is not).
  A percent never equals a degree.
* Tuples are ordered and, for two items, every bracket matters (``(2,5)`` is not
  ``[2,5)``); with three or more, ``(...)`` and ``[...]`` are both vectors. Sets and
  solution lists are unordered and matched one-to-one (multiplicity counts); ``\\pm``
  has been expanded into two values by the parser. ``x = 2, y = 3`` answers the pair
  ``(2, 3)`` (values ordered by variable name). Only a list joined by "or" whose every
  form equals a single gold (``x + 11 or 11 + x``) stands for it.
* Matrices compare entry by entry with the same shape; ``[[1, 2], [3, 4]]`` is one.
* ``x = 3`` stands for 3 when its left side is a bare name; ``y = 2`` is not ``x = 2``.
  A predicted chain may show its work (``a + b = 10`` answers 10; ``sqrt(2) ≈ 1.414``
  offers both values). Equations with general sides are equivalent when one is a
  constant multiple of the other. Inequalities compare as sets of reals, so
  ``x > 2`` equals ``(2, \\infty)`` and ``|x| < 3`` equals ``(-3, 3)``; inequalities
  joined by "and" intersect, by "or" or commas unite; an interval closed at infinity
  is not an interval.
* A choice with a value (``\\textbf{(C) }7``) answers a gold without a letter by its
  value; between two choices the letters decide.
* ``j`` is the imaginary unit only on a side without ``i`` facing a complex value.
* Expressions with variables are equal when they agree at several fixed random points
  (numerical identity testing; it never returns "equal" for expressions that differ
  at any of the points).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

import sympy

from personamath.grading.answer import (
    VECTOR,
    Answer,
    Based,
    Choice,
    Empty,
    Matrix,
    Relation,
    Scalar,
    Seq,
    Text,
    Union,
    based_value,
)
from personamath.grading.deadline import check_deadline

_J = sympy.Symbol("j")
_POINTS = (
    (sympy.Rational(7, 5), sympy.Rational(13, 11), sympy.Rational(19, 7)),
    (sympy.Rational(23, 9), sympy.Rational(5, 17), sympy.Rational(11, 13)),
    (sympy.Rational(-8, 7), sympy.Rational(31, 12), sympy.Rational(3, 19)),
    (sympy.Rational(41, 29), sympy.Rational(-9, 13), sympy.Rational(17, 6)),
)
_EXACT_TOL = sympy.Float("1e-35", 60)
# A difference under _EXACT_TOL at 50 digits is confirmed at 160: sqrt(10^40 + 1) is
# within 1e-41 (relative) of 10^20 but not equal to it.
_FINE_DIGITS = 160
_FINE_TOL = sympy.Float("1e-120", 170)
_INEQ = {"<", ">", "<=", ">="}
FLOAT_DIGITS = 12  # a decimal this long is machine output, not a rounded answer
FLOAT_NOISE = sympy.Rational(1, 10**14)  # relative; double precision is ~1.1e-16


@dataclass(frozen=True)
class Result:
    """Outcome of a comparison with the reason it was decided."""

    equal: bool
    reason: str


def same(g: Answer, p: Answer) -> Result:
    """Compare a parsed gold with a parsed prediction."""
    check_deadline()
    if isinstance(g, Choice) or isinstance(p, Choice):
        return _choice(g, p)
    if isinstance(g, Text) or isinstance(p, Text):
        if isinstance(g, Text) and isinstance(p, Text) and g.text == p.text:
            return Result(True, "same text")
        return Result(False, "different text" if type(g) is type(p) else "text vs non-text")
    if isinstance(g, Based) or isinstance(p, Based):
        return _based(g, p)
    if isinstance(g, Relation) or isinstance(p, Relation):
        return _relation(g, p)
    if _setlike(g) or _setlike(p):
        return _sets(g, p)
    if isinstance(g, Seq) and isinstance(p, Seq):
        return _seq(_named_tuple(g, p), _named_tuple(p, g))
    if isinstance(p, Seq) and p.kind == "list" and isinstance(g, Scalar):
        # "x + 11 or 11 + x": alternative forms, every one of which equals the gold.
        if p.alternatives and all(same(g, item).equal for item in p.items):
            return Result(True, "every listed form equals the gold")
        return Result(False, "a list for a single answer")
    if isinstance(g, Matrix) or isinstance(p, Matrix):
        mg, mp = _as_matrix(g), _as_matrix(p)
        if mg is None or mp is None:
            return Result(False, f"{_kind(g)} vs {_kind(p)}")
        return _matrix(mg, mp)
    if isinstance(g, Scalar) and isinstance(p, Scalar):
        return _scalar(g, p)
    return Result(False, f"{_kind(g)} vs {_kind(p)}")


def _kind(a: Answer) -> str:
    return a.kind if isinstance(a, Seq) else type(a).__name__.lower()


# -- simple kinds ------------------------------------------------------------------------
def _choice_value(r: Result) -> Result:
    return Result(r.equal, f"option value: {r.reason}")


def _choice(g: Answer, p: Answer) -> Result:
    def letter(a: Answer) -> str | None:
        if isinstance(a, Choice):
            return a.letter
        if isinstance(a, Scalar) and isinstance(a.expr, sympy.Symbol) and len(a.expr.name) == 1:
            return a.expr.name.upper()
        return None

    lg, lp = letter(g), letter(p)
    if lg is None or lp is None:
        # "(C) 7" against 7: the option's value answers a gold without a letter.
        if isinstance(g, Choice) and g.value is not None and not isinstance(p, Choice):
            return _choice_value(same(g.value, p))
        if isinstance(p, Choice) and p.value is not None and not isinstance(g, Choice):
            return _choice_value(same(g, p.value))
        return Result(False, "choice vs non-choice")
    return Result(lg == lp, "same choice" if lg == lp else "different choice")


def _based(g: Answer, p: Answer) -> Result:
    def integer(a: Answer) -> int | None:
        if isinstance(a, Scalar) and a.expr.is_Integer and not a.decimals:
            return int(a.expr)
        return None

    if isinstance(g, Based) and isinstance(p, Based):
        ok = based_value(g.digits, g.base) == based_value(p.digits, p.base)
    elif isinstance(g, Based):
        ok = _digits_of(p) is not None and _read_base(_digits_of(p), g.base) == based_value(
            g.digits, g.base
        )
    else:
        # A gold without a base is a base-10 value (every base-n gold in the MATH test
        # set carries its subscript), so 101_2 answers 5 and never 101.
        assert isinstance(p, Based)
        value = integer(g)
        ok = value is not None and value == based_value(p.digits, p.base)
    return Result(ok, "same number in base" if ok else "different number in base")


def _digits_of(a: Answer) -> str | None:
    """The digit string of a plain (possibly decimal) number, as written in base 10."""
    if not isinstance(a, Scalar) or not a.expr.is_Rational:
        return None
    if a.expr.is_Integer:
        return str(a.expr)
    places = max(a.decimals) if a.decimals else 0
    if not places:
        return None
    return f"{float(a.expr):.{places}f}"


def _read_base(digits: str | None, base: int) -> Fraction | None:
    try:
        return based_value(digits, base) if digits is not None else None
    except ValueError:
        return None


# -- scalars -----------------------------------------------------------------------------
def _readings(a: Scalar, other: Scalar) -> list[sympy.Expr]:
    """Values ``a`` may stand for: ``50%`` is also 0.5, ``45°`` is also pi/4 (vs radians)."""
    values = [a.expr]
    if a.percent and not other.percent:
        values.append(a.expr / 100)
    if a.degree and not other.degree and other.expr.has(sympy.pi):
        values.append(a.expr * sympy.pi / 180)
    return values


def _scalar(g: Scalar, p: Scalar) -> Result:
    if (g.percent and p.degree) or (g.degree and p.percent):
        return Result(False, "percent vs degrees")
    gvals, pvals = _readings(g, p), _readings(p, g)
    last = Result(False, "different values")
    for gv in gvals:
        for pv in pvals:
            last = values_equal(gv, pv, g.decimals, p.decimals)
            if last.equal:
                return last
    return last


def _swap_j(a: sympy.Expr, b: sympy.Expr) -> sympy.Expr:
    """Read ``j`` in ``b`` as the imaginary unit when that is unambiguous.

    That is when ``b`` has no ``i`` of its own (``i + j`` is two unit vectors) and the
    other side is complex without a ``j``.
    """
    if _J in b.free_symbols and not b.has(sympy.I) and _J not in a.free_symbols and a.has(sympy.I):
        return b.subs(_J, sympy.I)
    return b


def values_equal(
    a: sympy.Expr, b: sympy.Expr, gdec: tuple[int, ...] = (), pdec: tuple[int, ...] = ()
) -> Result:
    """Equality of two sympy values under the decimal rule (see module docstring)."""
    b, a = _swap_j(a, b), _swap_j(b, a)
    if a == b:
        return Result(True, "identical values")
    if a.free_symbols or b.free_symbols:
        return _symbolic_equal(a, b)
    if a.has(sympy.oo, -sympy.oo, sympy.zoo, sympy.nan) or b.has(sympy.oo, sympy.zoo, sympy.nan):
        return Result(False, "different infinities")
    if a.is_Rational and b.is_Rational:
        size: sympy.Expr = abs(a - b)
    else:
        diff = _numeric_diff(a, b)
        if diff is None:
            return Result(False, "cannot evaluate numerically")
        size, scale = diff
        if size <= _EXACT_TOL * scale:
            floats = a.has(sympy.Float) or b.has(sympy.Float)
            fine = None if floats else _numeric_diff(a, b, _FINE_DIGITS)
            if fine is None or fine[0] <= _FINE_TOL * fine[1]:
                return Result(True, "equal values")
            size = fine[0]
    for value, dec, other in ((a, gdec, b), (b, pdec, a)):
        if long_decimal(value, dec) and terminating(other) and size <= FLOAT_NOISE * abs(other):
            return Result(True, "equal up to double-precision noise")
    if rounds_to(size, gdec, pdec):
        return Result(True, "prediction rounds to the gold's decimals")
    return Result(False, "different values")


def rounds_to(size: sympy.Expr | Fraction, gdec: tuple[int, ...], pdec: tuple[int, ...]) -> bool:
    """An unrounded decimal prediction (2+ more digits than a decimal gold) rounding to it.

    ``size`` is |gold - prediction|. One extra digit does not count (0.63 is a different
    answer from 0.6 far more often than it is 0.6 unrounded), nor do ties (3.75, 3.7).
    """
    if len(gdec) != 1 or len(pdec) != 1 or pdec[0] < gdec[0] + 2:
        return False
    return bool(size * 2 * 10 ** gdec[0] < 1)


def terminating(value: sympy.Expr) -> bool:
    """A rational with a finite decimal expansion (denominator 2^a 5^b)."""
    if not value.is_Rational:
        return False
    q = int(value.q)
    for p in (2, 5):
        while q % p == 0:
            q //= p
    return q == 1


def long_decimal(value: sympy.Expr, dec: tuple[int, ...]) -> bool:
    """A plain decimal literal with at least ``FLOAT_DIGITS`` significant digits."""
    if len(dec) != 1 or not value.is_Rational:
        return False
    return len(str(abs(int(value * sympy.Integer(10) ** dec[0])))) >= FLOAT_DIGITS


def _numeric_diff(
    a: sympy.Expr, b: sympy.Expr, digits: int = 50
) -> tuple[sympy.Expr, sympy.Expr] | None:
    try:
        av, bv = sympy.N(a, digits), sympy.N(b, digits)
        size = sympy.Abs(av - bv)
        scale = sympy.Max(1, sympy.Abs(av), sympy.Abs(bv))
        if not (size.is_number and scale.is_number) or size.has(sympy.nan, sympy.zoo):
            return None
        if not size.is_comparable:
            return None
        return size, scale
    except (TypeError, ValueError, ZeroDivisionError, ArithmeticError):
        return None


def _symbolic_equal(a: sympy.Expr, b: sympy.Expr) -> Result:
    symbols = sorted(a.free_symbols | b.free_symbols, key=lambda s: s.name)
    checked = 0
    for point in _POINTS:
        diff = _diff_at(a, b, symbols, point, 60)
        if diff is None:
            continue
        size, scale = diff
        if size > sympy.Float("1e-25") * scale:
            return Result(False, "expressions differ")
        checked += 1
    if checked >= 2:
        # Confirm at 170 digits, as exact values are: x + 10^{-30} agrees with x to 25
        # digits and is still not x.
        for point in _POINTS[:2]:
            diff = _diff_at(a, b, symbols, point, _FINE_DIGITS + 20)
            if diff is not None and diff[0] > _FINE_TOL * diff[1]:
                return Result(False, "expressions differ")
        return Result(True, "expressions agree at random points")
    check_deadline()
    if sympy.simplify(a - b) == 0:
        return Result(True, "symbolically equal")
    return Result(False, "expressions not shown equal")


def _diff_at(
    a: sympy.Expr, b: sympy.Expr, symbols: list[sympy.Symbol], point: tuple, digits: int
) -> tuple[sympy.Expr, sympy.Expr] | None:
    """|a - b| and the scale at one fixed point, with every symbol a ``digits``-digit
    float: floats, not rationals, so x^(10^5) never builds a 50,000-digit integer."""
    check_deadline()
    subs = {
        s: sympy.Float(point[i % 3] + sympy.Rational(i // 3, 7), digits)
        for i, s in enumerate(symbols)
    }
    try:
        return _numeric_diff(a.subs(subs), b.subs(subs), max(50, digits - 10))
    except (TypeError, ValueError, ZeroDivisionError, ArithmeticError):
        return None


# -- collections -------------------------------------------------------------------------
_TUPLE_CLASS = {"(": "(", "[": "["}


def _named_tuple(a: Seq, other: Seq) -> Seq:
    """``x = 2, y = 3`` read as the tuple (2, 3) when compared with a tuple.

    The values are ordered by variable name (x before y, a before b), the order in
    which ordered-pair questions name them.
    """
    if a.kind != "list" or other.kind != "tuple" or len(a.items) != len(other.items):
        return a
    pairs = []
    for item in a.items:
        if not (isinstance(item, Relation) and item.ops == ("=",) and _is_name(item.parts[0])):
            return a
        pairs.append((str(item.parts[0].expr), item.parts[1]))  # type: ignore[union-attr]
    if len({name for name, _ in pairs}) != len(pairs):
        return a
    return Seq(
        "tuple", tuple(v for _, v in sorted(pairs, key=lambda p: p[0])), other.left, other.right
    )


def _is_name(a: Answer) -> bool:
    return isinstance(a, Scalar) and isinstance(a.expr, sympy.Symbol)


def _seq(g: Seq, p: Seq) -> Result:
    if len(g.items) != len(p.items):
        return Result(False, "different number of elements")
    if g.kind == "tuple" and p.kind == "tuple":
        same_brackets = (g.left, g.right) == (p.left, p.right)
        # With three or more items (a) and [a] are both vector notations; two items
        # may be an interval, where every bracket counts, unless one side is
        # certainly a vector (a pmatrix column or \langle ... \rangle).
        either_vector = _is_vector(g) or _is_vector(p)
        vectors = (len(g.items) > 2 or either_vector) and _matched(g) and _matched(p)
        if not (same_brackets or vectors):
            return Result(False, "different brackets")
        return _ordered(g.items, p.items)
    if g.kind != "tuple" and p.kind != "tuple":
        return _unordered(g.items, p.items)
    return Result(False, "ordered vs unordered collection")


def _matched(a: Seq) -> bool:
    return (a.left, a.right) in (("(", ")"), ("[", "]"), VECTOR)


def _is_vector(a: Seq) -> bool:
    return (a.left, a.right) == VECTOR


def _ordered(gs: tuple[Answer, ...], ps: tuple[Answer, ...]) -> Result:
    for i, (gi, pi) in enumerate(zip(gs, ps, strict=True)):
        r = same(gi, pi)
        if not r.equal:
            return Result(False, f"element {i + 1}: {r.reason}")
    return Result(True, "all elements equal in order")


def _unordered(gs: tuple[Answer, ...], ps: tuple[Answer, ...]) -> Result:
    """One-to-one matching (augmenting paths) of gold elements to predicted ones."""
    cache: dict[tuple[int, int], bool] = {}

    def eq(i: int, j: int) -> bool:
        if (i, j) not in cache:
            cache[(i, j)] = same(gs[i], ps[j]).equal
        return cache[(i, j)]

    owner: dict[int, int] = {}

    def augment(i: int, seen: set[int]) -> bool:
        for j in range(len(ps)):
            if j not in seen and eq(i, j):
                seen.add(j)
                if j not in owner or augment(owner[j], seen):
                    owner[j] = i
                    return True
        return False

    for i in range(len(gs)):
        if not augment(i, set()):
            return Result(False, f"no match for element {i + 1}")
    return Result(True, "same elements")


def _as_matrix(a: Answer) -> Matrix | None:
    """A matrix, or a tuple of equal-length tuples such as ``[[1, 2], [3, 4]]``."""
    if isinstance(a, Matrix):
        return a
    if not (isinstance(a, Seq) and a.kind == "tuple" and len(a.items) >= 2):
        return None
    rows = [r.items for r in a.items if isinstance(r, Seq) and r.kind == "tuple"]
    if len(rows) != len(a.items) or len({len(r) for r in rows}) != 1:
        return None
    return Matrix(tuple(rows))


def _matrix(g: Matrix, p: Matrix) -> Result:
    if len(g.rows) != len(p.rows) or len(g.rows[0]) != len(p.rows[0]):
        return Result(False, "different matrix shape")
    flat_g = tuple(c for row in g.rows for c in row)
    flat_p = tuple(c for row in p.rows for c in row)
    return _ordered(flat_g, flat_p)


# -- relations and sets ------------------------------------------------------------------
def _is_label(a: Answer) -> bool:
    if isinstance(a, Scalar):
        return isinstance(a.expr, sympy.Symbol) or not a.expr.free_symbols
    return isinstance(a, Seq) and a.kind == "tuple" and all(_is_label(i) for i in a.items)


def _relation(g: Answer, p: Answer) -> Result:
    if _setlike(g) or _setlike(p):
        return _sets(g, p)
    if isinstance(g, Relation) and isinstance(p, Relation):
        return _two_equations(g, p)
    rel, other = (g, p) if isinstance(g, Relation) else (p, g)
    assert isinstance(rel, Relation)
    value = rel.parts[-1]
    # A gold equation stands for its value only when it names something (x = 3); a
    # predicted one may also just show its work (a + b = 10).
    shows_value = rel is p and isinstance(value, Scalar) and not value.expr.free_symbols
    if not (_is_label(rel.parts[0]) or shows_value):
        return Result(False, "equation vs value")
    values = [value]
    if "≈" in rel.ops:  # "sqrt(2) ≈ 1.414" gives both the exact and the rounded value
        values.insert(0, rel.parts[rel.ops.index("≈")])
    for v in values:
        r = same(v, other) if rel is g else same(other, v)
        if r.equal:
            break
    return Result(r.equal, f"value of the equation: {r.reason}")


def _two_equations(g: Relation, p: Relation) -> Result:
    if _is_label(g.parts[0]) and _is_label(p.parts[0]) and same(g.parts[0], p.parts[0]).equal:
        r = same(g.parts[-1], p.parts[-1])
        return Result(r.equal, f"right-hand sides: {r.reason}")
    parts = (*g.parts, *p.parts)
    if len(g.parts) != 2 or len(p.parts) != 2 or not all(isinstance(x, Scalar) for x in parts):
        return Result(False, "equations not comparable")
    eg = g.parts[0].expr - g.parts[1].expr  # type: ignore[union-attr]
    ep = p.parts[0].expr - p.parts[1].expr  # type: ignore[union-attr]
    if ep == 0 or eg == 0:
        return Result(eg == ep, "trivial equation")
    ratio = sympy.cancel(eg / ep)
    if not ratio.free_symbols and ratio != 0:
        return Result(True, "equivalent equations")
    return _constant_ratio(eg, ep)


def _constant_ratio(eg: sympy.Expr, ep: sympy.Expr) -> Result:
    symbols = sorted(eg.free_symbols | ep.free_symbols, key=lambda s: s.name)
    ratios = []
    for point in _POINTS:
        subs = {s: point[i % 3] + sympy.Rational(i // 3, 7) for i, s in enumerate(symbols)}
        den = sympy.N(ep.subs(subs), 40)
        if den == 0 or not den.is_number:
            continue
        ratios.append(sympy.N(eg.subs(subs), 40) / den)
    ok = len(ratios) >= 2 and all(abs(r - ratios[0]) < 1e-20 for r in ratios) and ratios[0] != 0
    return Result(ok, "equivalent equations" if ok else "different equations")


def _setlike(a: Answer) -> bool:
    if isinstance(a, Union | Empty):
        return True
    if isinstance(a, Relation):
        return any(op in _INEQ or op == "!=" for op in a.ops)
    if isinstance(a, Seq) and a.kind == "list":
        return any(_setlike(i) for i in a.items)
    return False


def _sets(g: Answer, p: Answer) -> Result:
    sg, sp = as_set(g), as_set(p)
    if (sg is None or sp is None) and isinstance(g, Relation) and isinstance(p, Relation):
        return _same_chain(g, p)
    if sg is None or sp is None:
        if isinstance(g, Empty) or isinstance(p, Empty):
            return Result(False, "empty set vs non-empty answer")
        return Result(False, "not comparable as sets")
    try:
        ok = bool(sg == sp) or bool(sympy.simplify(sympy.Complement(sg, sp)) == sympy.EmptySet
                                    and sympy.Complement(sp, sg) == sympy.EmptySet)  # fmt: skip
    except (TypeError, ValueError):
        ok = False
    return Result(ok, "same set" if ok else "different sets")


def _same_chain(g: Relation, p: Relation) -> Result:
    """Relations that are not sets of reals (``f(2) < f(1)``): same chain, term by term."""
    if g.ops != p.ops:
        return Result(False, "different relations")
    r = _ordered(g.parts, p.parts)
    return Result(r.equal, "same relation chain" if r.equal else r.reason)


def _real(a: Answer) -> sympy.Expr | None:
    if (
        isinstance(a, Scalar)
        and not a.expr.free_symbols
        and (a.expr.is_real or a.expr in (sympy.oo, -sympy.oo))
    ):
        return a.expr
    return None


def as_set(a: Answer) -> sympy.Set | None:
    """The set of reals (or finite set) an answer denotes, or None."""
    if isinstance(a, Empty):
        return sympy.EmptySet
    if isinstance(a, Union):
        parts = [as_set(x) for x in a.parts]
        return None if any(x is None for x in parts) else sympy.Union(*parts)
    if isinstance(a, Seq) and a.kind == "tuple" and len(a.items) == 2 and not _is_vector(a):
        lo, hi = _real(a.items[0]), _real(a.items[1])
        if lo is None or hi is None or not bool(lo <= hi):
            return None
        if (lo.is_infinite and a.left == "[") or (hi.is_infinite and a.right == "]"):
            return None  # [-oo, 2) is not an interval of reals
        return sympy.Interval(lo, hi, a.left == "(", a.right == ")")
    if isinstance(a, Seq) and a.kind in ("set", "list"):
        if any(_setlike(i) for i in a.items):
            parts = [as_set(x) for x in a.items]
            if any(x is None for x in parts):
                return None
            # "x > 2 and x < 5" is both at once; "x < -1 or x > 2" (or a comma) is either.
            both = a.conjunction and not a.alternatives
            return sympy.Intersection(*parts) if both else sympy.Union(*parts)
        reals = [_real(x) for x in a.items]
        return None if any(x is None for x in reals) else sympy.FiniteSet(*reals)
    if isinstance(a, Relation):
        return _relation_set(a)
    value = _real(a)
    return sympy.FiniteSet(value) if value is not None else None


_OP_SET: dict[str, Callable[[sympy.Expr], sympy.Set]] = {
    "<": lambda c: sympy.Interval.open(-sympy.oo, c),
    "<=": lambda c: sympy.Interval(-sympy.oo, c),
    ">": lambda c: sympy.Interval.open(c, sympy.oo),
    ">=": lambda c: sympy.Interval(c, sympy.oo),
    "!=": lambda c: sympy.Complement(sympy.Reals, sympy.FiniteSet(c)),
    "=": lambda c: sympy.FiniteSet(c),
    "≈": lambda c: sympy.FiniteSet(c),
}
_FLIP = {"<": ">", ">": "<", "<=": ">=", ">=": "<=", "!=": "!=", "=": "=", "≈": "≈"}


def _relation_set(rel: Relation) -> sympy.Set | None:
    """``1 < x <= 3`` or ``|x| < 3`` as a set of reals; None unless one variable."""
    exprs = [p.expr for p in rel.parts if isinstance(p, Scalar)]
    if len(exprs) != len(rel.parts):
        return None
    symbols = set().union(*(e.free_symbols for e in exprs))
    if len(symbols) != 1:
        return None
    var = symbols.pop()
    result: sympy.Set = sympy.Reals
    for i, op in enumerate(rel.ops):
        left, right = exprs[i], exprs[i + 1]
        if left == var and not right.free_symbols and _real_expr(right):
            piece = _OP_SET[op](right)
        elif right == var and not left.free_symbols and _real_expr(left):
            piece = _OP_SET[_FLIP[op]](left)
        else:
            piece = _solve_piece(left, op, right, var)
            if piece is None:
                return None
        result = sympy.Intersection(result, piece)
    return result


def _real_expr(e: sympy.Expr) -> bool:
    return bool(e.is_real) or e in (sympy.oo, -sympy.oo)


def _solve_piece(
    left: sympy.Expr, op: str, right: sympy.Expr, var: sympy.Symbol
) -> sympy.Set | None:
    """Solve one comparison over the reals (``|x| < 3``); None if sympy cannot."""
    builders = {"<": sympy.Lt, "<=": sympy.Le, ">": sympy.Gt, ">=": sympy.Ge, "=": sympy.Eq,
                "!=": sympy.Ne, "≈": sympy.Eq}  # fmt: skip
    real = sympy.Symbol(var.name, real=True)
    check_deadline()
    try:
        relation = builders[op](left.subs(var, real), right.subs(var, real))
        solved = sympy.solveset(relation, real, domain=sympy.Reals)
    except (TypeError, ValueError, NotImplementedError):
        return None
    return (
        solved
        if isinstance(solved, sympy.Set) and not isinstance(solved, sympy.ConditionSet)
        else None
    )
