"""Recursive-descent parser from tokens to sympy expressions.

Hand-written rather than ANTLR-based (latex2sympy): the common answer forms parse in
tens of microseconds, and every convention is explicit here:

* numbers are exact (``0.25`` is ``1/4``); the parser records how many decimal
  digits each literal had so that the comparison can apply the decimal rule;
* ``2\\frac12`` right after an integer is a mixed number (5/2);
* ``x2`` is the name x_2, never ``2x``; so is ``x 2`` (spaces do not count in math mode);
* ``^\\circ`` inside a trigonometric argument converts degrees to radians and is a
  plain label elsewhere; ``%`` is recorded as a flag, not divided out;
* ``\\pm`` becomes a marker symbol that the structure layer expands into two values;
* ``i`` is the imaginary unit, ``e`` is Euler's number, and huge powers or factorials
  are refused rather than computed.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import sympy

from personamath.grading.tokens import CLOSERS, Tok

PM = sympy.Symbol("PM__")
MAX_DIGITS = 20000  # refuse to build integers longer than this

_FUNCS: dict[str, Callable[..., sympy.Expr]] = {
    "sin": sympy.sin, "cos": sympy.cos, "tan": sympy.tan, "sec": sympy.sec,
    "csc": sympy.csc, "cot": sympy.cot, "arcsin": sympy.asin, "arccos": sympy.acos,
    "arctan": sympy.atan, "asin": sympy.asin, "acos": sympy.acos, "atan": sympy.atan,
    "sinh": sympy.sinh, "cosh": sympy.cosh, "tanh": sympy.tanh, "ln": sympy.log,
    "log": sympy.log, "exp": sympy.exp, "abs": sympy.Abs, "sqrt": sympy.sqrt,
    "cbrt": lambda v: _root(v, 3), "arcsec": sympy.asec, "arccsc": sympy.acsc, "arccot": sympy.acot,
}  # fmt: skip
_TRIG = {"sin", "cos", "tan", "sec", "csc", "cot"}
_GREEK = {
    "alpha", "beta", "gamma", "delta", "epsilon", "varepsilon", "zeta", "eta", "theta",
    "vartheta", "iota", "kappa", "lambda", "mu", "nu", "xi", "rho", "sigma", "tau",
    "upsilon", "phi", "varphi", "chi", "psi", "omega", "Gamma", "Delta", "Theta", "Lambda",
    "Xi", "Sigma", "Phi", "Psi", "Omega",
}  # fmt: skip
_MUL_OPS = {"*", "\\cdot", "\\times", "\\ast"}
_DIV_OPS = {"/", "\\div", ":"}  # a ratio 3:1 is the number 3
_SKIP_CMDS = {"\\mathbb", "\\mathcal", "\\mathbf", "\\boldsymbol", "\\vec", "\\hat", "\\bar",
              "\\overline", "\\underline", "\\widehat", "\\overrightarrow"}  # fmt: skip


class ParseError(ValueError):
    """The tokens do not form an expression the grader reads."""


@dataclass
class Flags:
    """What the parser saw besides the value; used by the comparison rules."""

    decimals: list[int] = field(default_factory=list)
    percent: bool = False
    degree: bool = False
    pm: bool = False


def _sym(name: str) -> sympy.Expr:
    if name == "i":
        return sympy.I
    if name == "e":
        return sympy.E
    return sympy.Symbol(name)


def _number(text: str, flags: Flags) -> sympy.Expr:
    mant, _, exp = text.lower().partition("e")
    if "." in mant and not exp:
        flags.decimals.append(len(mant.split(".", 1)[1]))
    if len(mant) > MAX_DIGITS or (exp and abs(int(exp)) > MAX_DIGITS):
        raise ParseError("number too large")
    return sympy.Rational(mant if not mant.startswith(".") else "0" + mant) * (
        sympy.Integer(10) ** int(exp) if exp else 1
    )


def _safe_pow(base: sympy.Expr, exp: sympy.Expr) -> sympy.Expr:
    """``base**exp`` unless it would build an absurdly large exact number."""
    if exp.is_Integer and base.is_Rational and base not in (0, 1, -1):
        size = abs(int(exp)) * max(
            math.log10(abs(int(base.p))) if base.p else 0,
            math.log10(int(base.q)) if base.q else 0,
        )
        if size > MAX_DIGITS:
            raise ParseError("power too large to compare exactly")
    if exp.is_Rational and abs(exp) > MAX_DIGITS:
        raise ParseError("power too large to compare exactly")
    return sympy.Pow(base, exp)


class ExprParser:
    """Parses one expression from a token list (``parse`` consumes all of it)."""

    def __init__(self, toks: list[Tok], flags: Flags | None = None) -> None:
        self.toks = toks
        self.pos = 0
        self.flags = flags or Flags()
        self.trig_depth = 0

    # -- token helpers -----------------------------------------------------------------
    def peek(self, offset: int = 0) -> Tok | None:
        i = self.pos + offset
        return self.toks[i] if i < len(self.toks) else None

    def at(self, *values: str) -> bool:
        tok = self.peek()
        return tok is not None and tok.kind in ("op", "cmd") and tok.value in values

    def take(self) -> Tok:
        tok = self.peek()
        if tok is None:
            raise ParseError("unexpected end of expression")
        self.pos += 1
        return tok

    def expect(self, value: str) -> None:
        tok = self.take()
        if tok.value != value:
            raise ParseError(f"expected {value!r}, found {tok.value!r}")

    # -- grammar -----------------------------------------------------------------------
    def parse(self) -> sympy.Expr:
        value = self.expr()
        if self.peek() is not None:
            raise ParseError(f"unexpected {self.peek().value!r}")  # type: ignore[union-attr]
        return value

    def expr(self) -> sympy.Expr:
        value = self.term()
        while self.at("+", "-", "\\pm", "\\mp"):
            op = self.take().value
            right = self.term()
            if op == "+":
                value = value + right
            elif op == "-":
                value = value - right
            else:
                self.flags.pm = True
                value = value + (PM if op == "\\pm" else -PM) * right
        return value

    def term(self) -> sympy.Expr:
        value = self.unary()
        while True:
            if self.at(*_MUL_OPS):
                self.take()
                value = value * self.unary()
            elif self.at(*_DIV_OPS):
                self.take()
                den = self.unary()
                if den == 0:
                    raise ParseError("division by zero")
                value = value / den
            elif self.starts_atom():
                before, after = self.peek(-1), self.peek()
                if before and after and before.kind == "id" and after.kind == "num":
                    # ``x 2`` renders as x2, a name, and is never the product 2x
                    raise ParseError("a number after a variable")
                value = value * self.power()
            else:
                return value

    def unary(self) -> sympy.Expr:
        if self.at("-"):
            self.take()
            return -self.unary()
        if self.at("+"):
            self.take()
            return self.unary()
        if self.at("\\pm", "\\mp"):
            op = self.take().value
            self.flags.pm = True
            return (PM if op == "\\pm" else -PM) * self.unary()
        return self.power()

    def power(self) -> sympy.Expr:
        base = self.postfix(self.atom())
        if self.at("^", "**"):
            self.take()
            exp = self.exponent()
            return self.postfix(_safe_pow(base, exp))
        return base

    def exponent(self) -> sympy.Expr:
        if self.at("{"):
            return self.group()
        if self.at("-"):
            self.take()
            return -self.exponent()
        if self.at("("):
            return self.atom()
        tok = self.peek()
        if tok is not None and tok.kind == "num" and len(tok.value) > 1 and "." not in tok.value:
            # ``2^10`` in plain text means 2**10; LaTeX ``2^10`` would be 2**1*0 but
            # nobody writes that on purpose.
            self.take()
            return sympy.Integer(tok.value)
        return self.power()

    def postfix(self, value: sympy.Expr) -> sympy.Expr:
        while True:
            if self.at("!"):
                self.take()
                if not (value.is_Integer and 0 <= value <= 5000):
                    raise ParseError("factorial of a non-integer or huge value")
                value = sympy.factorial(value)
            elif self.at("°"):
                self.take()
                if self.trig_depth:
                    value = value * sympy.pi / 180
                else:
                    self.flags.degree = True
            elif self.at("%"):
                self.take()
                self.flags.percent = True
            elif self.at("'", "\\prime"):
                raise ParseError("primes are not supported")
            else:
                return value

    def starts_atom(self) -> bool:
        tok = self.peek()
        if tok is None:
            return False
        if tok.kind in ("num", "id", "func", "const"):
            return True
        if tok.kind == "cmd":
            return tok.value not in _MUL_OPS | _DIV_OPS | CLOSERS | {
                "\\pm", "\\mp", "\\le", "\\ge", "\\leq", "\\geq", "\\ne", "\\neq", "\\lt",
                "\\gt", "\\cup", "\\cap", "\\in", "\\rvert", "\\rVert", "\\right",
            }  # fmt: skip
        return tok.kind == "op" and tok.value in ("(", "{", "[")

    def group(self) -> sympy.Expr:
        """A ``{...}`` argument."""
        self.expect("{")
        value = self.expr()
        self.expect("}")
        return value

    def arg(self) -> sympy.Expr:
        """A macro argument: ``{...}`` or a single token (``\\frac12``)."""
        if self.at("{"):
            return self.group()
        tok = self.take()
        if tok.kind == "num":
            if len(tok.value) > 1 and tok.value.isdigit():  # \frac12 -> 1, 2
                self.toks.insert(self.pos, Tok("num", tok.value[1:]))
                return sympy.Integer(tok.value[0])
            return _number(tok.value, self.flags)
        self.pos -= 1
        return self.atom()

    def atom(self) -> sympy.Expr:
        tok = self.take()
        if tok.kind == "num":
            return self.number_atom(tok)
        if tok.kind == "id":
            return _sym(self.subscripted(tok.value))
        if tok.kind == "const":
            return sympy.pi if tok.value == "pi" else sympy.oo
        if tok.kind == "func":
            return self.function(tok.value)
        if tok.kind == "text":
            return self.text_atom(tok.value)
        if tok.kind == "op":
            return self.op_atom(tok.value)
        return self.command(tok.value)

    def subscripted(self, name: str) -> str:
        """``x_1``, ``a_{n}``: a subscript is part of the name."""
        if not self.at("_"):
            return name
        self.take()
        if self.at("{"):
            self.take()
            parts = []
            while not self.at("}"):
                parts.append(self.take().value)
            self.take()
            return f"{name}_{''.join(parts)}"
        return f"{name}_{self.take().value}"

    def number_atom(self, tok: Tok) -> sympy.Expr:
        value = _number(tok.value, self.flags)
        if tok.value.isdigit() and self.at("\\frac"):
            mixed = self.try_mixed_fraction()
            if mixed is not None:
                return value + mixed
        if self.at("\\overline") and "." in tok.value:
            return self.repeating_decimal(tok.value)
        return value

    def try_mixed_fraction(self) -> sympy.Expr | None:
        """``2\\frac12``: an integer followed by a fraction of integers."""
        start = self.pos
        self.take()
        try:
            num, den = self.arg(), self.arg()
        except ParseError:
            self.pos = start
            return None
        if num.is_Integer and den.is_Integer and den != 0 and 0 <= num < den:
            return sympy.Rational(num, den)
        self.pos = start
        return None

    def repeating_decimal(self, head: str) -> sympy.Expr:
        self.take()
        body = self.take() if not self.at("{") else None
        if body is None:
            self.expect("{")
            body = self.take()
            self.expect("}")
        if body.kind != "num" or not body.value.isdigit():
            raise ParseError("bad repeating decimal")
        self.flags.decimals.pop()
        whole, _, frac = head.partition(".")
        n, k = len(frac), len(body.value)
        nonrep = sympy.Rational(f"{whole or 0}.{frac or 0}")
        rep = sympy.Rational(int(body.value), (10**k - 1) * 10**n)
        return nonrep + rep

    def text_atom(self, content: str) -> sympy.Expr:
        if content in ("i", "e"):
            return _sym(content)
        if content.lower() in ("infinity", "inf", "infty"):
            return sympy.oo
        if content.strip("(). ") == "":
            return sympy.Integer(1)
        raise ParseError(f"text inside an expression: {content!r}")

    def op_atom(self, op: str) -> sympy.Expr:
        if op in ("(", "["):
            value = self.expr()
            self.expect(")" if op == "(" else "]")
            return value
        if op == "{":
            value = self.expr()
            self.expect("}")
            return value
        if op == "|":
            value = self.expr()
            self.expect("|")
            return sympy.Abs(value)
        raise ParseError(f"unexpected {op!r}")

    def function(self, name: str) -> sympy.Expr:
        power = None
        if self.at("^"):
            self.take()
            power = self.exponent()
        base = None
        if name == "log" and self.at("_"):
            self.take()
            base = self.arg()
        self.trig_depth += name in _TRIG
        try:
            argument = self.atom() if self.at("(", "{", "[") else self.function_argument()
        finally:
            self.trig_depth -= name in _TRIG
        if power is not None and power == -1 and name in _TRIG:
            value = {"sin": sympy.asin, "cos": sympy.acos, "tan": sympy.atan}.get(name)
            if value is None:
                raise ParseError("inverse of this function")
            return value(argument)
        value = _FUNCS[name](argument) if base is None else sympy.log(argument, base)
        return _safe_pow(value, power) if power is not None else value

    def function_argument(self) -> sympy.Expr:
        """``\\sin 2x``: a product of atoms without a sign or another function."""
        value = self.power()
        while self.starts_atom() and self.peek().kind != "func":  # type: ignore[union-attr]
            if self.peek().kind == "cmd" and self.peek().value.lstrip("\\") in _FUNCS:  # type: ignore[union-attr]
                break
            value = value * self.power()
        return value

    def command(self, cmd: str) -> sympy.Expr:
        name = cmd[1:]
        if name == "frac":
            num, den = self.arg(), self.arg()
            if den == 0:
                raise ParseError("division by zero")
            return num / den
        if name == "sqrt":
            if self.at("["):
                self.take()
                index = self.expr()
                self.expect("]")
                return _root(self.arg(), index)
            return sympy.sqrt(self.arg())
        if name in _FUNCS:
            return self.function(name)
        if name == "binom":
            n, k = self.arg(), self.arg()
            return sympy.binomial(n, k)
        if name == "pi":
            return sympy.pi
        if name == "infty":
            return sympy.oo
        if name in ("emptyset", "varnothing"):  # only inside a bigger answer: {∅}
            return sympy.Symbol("∅")
        if name in ("imath", "mathrm"):
            return sympy.I if name == "imath" else self.arg()
        if name in _GREEK:
            return sympy.Symbol(name)
        return self.bracket_command(cmd)

    def bracket_command(self, cmd: str) -> sympy.Expr:
        pairs = {
            "\\lfloor": ("\\rfloor", sympy.floor), "\\lceil": ("\\rceil", sympy.ceiling),
            "\\lvert": ("\\rvert", sympy.Abs), "\\vert": ("\\vert", sympy.Abs),
            "\\|": ("\\|", sympy.Abs), "\\lVert": ("\\rVert", sympy.Abs),
            "\\{": ("\\}", lambda v: v), "\\langle": ("\\rangle", lambda v: v),
        }  # fmt: skip
        if cmd in pairs:
            close, fn = pairs[cmd]
            value = self.expr()
            self.expect(close)
            return fn(value)
        if cmd in _SKIP_CMDS:
            return self.arg()
        if cmd == "\\operatorname":
            raise ParseError("unknown operator")
        raise ParseError(f"unsupported command {cmd}")


def _root(value: sympy.Expr, index: sympy.Expr) -> sympy.Expr:
    """``\\sqrt[n]{a}``: the real root for an odd n and a negative a, as competition
    math reads it (``\\sqrt[3]{-8} = -2``), where sympy's principal root is complex."""
    if index.is_integer and index.is_odd and value.is_negative:
        return -sympy.root(-value, index)
    return sympy.root(value, index)


def parse_tokens(toks: list[Tok], flags: Flags | None = None) -> sympy.Expr:
    """Parse a whole token list as one expression (raises ``ParseError``)."""
    if not toks:
        raise ParseError("empty expression")
    return ExprParser(list(toks), flags).parse()
