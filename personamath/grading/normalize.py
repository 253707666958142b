"""String-level clean-up of an answer before it is parsed.

Everything here is deliberate: each rule removes one kind of presentation
(delimiters, spacing macros, thousands separators, units, currency) and none of
them deletes letters that could be variables. Units are only removed when they
are marked as text (``\\text{ cm}``) or are known multi-letter unit words that
follow a number.
"""

from __future__ import annotations

import re

_UNICODE = {
    "−": "-", "–": "-", "—": "-", "‐": "-", "‑": "-", "‒": "-", "﹣": "-",
    "－": "-", "×": "\\times ", "·": "\\cdot ", "÷": "\\div ",
    "√": "\\sqrt ", "π": "\\pi ", "∞": "\\infty ", "°": "^\\circ", "≤": "\\le ",
    "≥": "\\ge ", "≠": "\\ne ", "∅": "\\emptyset ", "∪": "\\cup ", "∩": "\\cap ",
    "±": "\\pm ", "∓": "\\mp ", "\u00a0": " ", "\u2009": " ", "\u202f": " ",
    "⟨": "\\langle ", "⟩": "\\rangle ", "²": "^2", "³": "^3", "€": "", "£": "", "¥": "",
    "₹": "", "＄": "", "’": "'", "θ": "\\theta ", "α": "\\alpha ", "β": "\\beta ",
    "½": "\\frac{1}{2}", "⅓": "\\frac{1}{3}", "⅔": "\\frac{2}{3}", "¼": "\\frac{1}{4}",
    "¾": "\\frac{3}{4}", "⅕": "\\frac{1}{5}", "⅙": "\\frac{1}{6}", "⅛": "\\frac{1}{8}",
    "∈": "\\in ", "⅜": "\\frac{3}{8}", "⅝": "\\frac{5}{8}", "⅞": "\\frac{7}{8}", "ℝ": "\\mathbb{R}",
}  # fmt: skip
_UNICODE_RE = re.compile("|".join(map(re.escape, _UNICODE)))

# Commands whose argument is kept as plain text.
_TEXT_CMDS = r"text|textbf|textit|textrm|textnormal|mbox|mathrm|mathbf|mathit|mathsf|rm|bf"

UNIT_WORDS = {
    "unit", "units", "sq", "square", "cubic", "cm", "centimeter", "centimeters", "centimetre",
    "centimetres", "meter", "meters", "metre", "metres", "km", "kilometer", "kilometers",
    "mm", "millimeter", "millimeters", "inch", "inches", "foot", "feet", "ft", "yard",
    "yards", "yd", "mile", "miles", "mi", "mph", "kph", "hour", "hours", "hr", "hrs",
    "minute", "minutes", "min", "mins", "second", "seconds", "sec", "secs", "day", "days",
    "week", "weeks", "month", "months", "year", "years", "dollar", "dollars", "cent",
    "cents", "degree", "degrees", "pound", "pounds", "lb", "lbs", "ounce", "ounces", "oz",
    "gram", "grams", "kg", "kilogram", "kilograms", "liter", "liters", "litre", "litres",
    "ml", "gallon", "gallons", "quart", "quarts", "pint", "pints", "cup", "cups", "people",
    "persons", "students", "times", "ways", "items", "pieces", "points", "percent", "usd",
    "euros", "euro", "rupees", "radians", "radian", "rad", "calories",
    "square units", "sq units", "cubic units", "inches squared", "feet squared", "each",
    "per", "an", "a", "of", "in", "m", "s", "g", "l", "kilometres", "gm", "gms",
    "sq ft", "cc",
}  # fmt: skip

# Units that may appear in plain text after a number (multi-letter only, so that a
# trailing single-letter variable is never taken for a unit).
_PLAIN_UNITS = sorted((w for w in UNIT_WORDS if len(w) >= 2 and w not in {"an", "of", "in", "per"}),
                      key=len, reverse=True)  # fmt: skip
_PLAIN_UNIT_RE = re.compile(
    r"(?<=[\d}).%\s])\s*(?:(?:" + "|".join(_PLAIN_UNITS) + r")\.?(?:\^\{?[23]\}?)?\s*)+$",
    re.I,
)


# ``\text{13}``, ``\text{E}``, ``\text{A, D}``: text that is really a value or letters.
_TEXT_UNWRAP_RE = re.compile(
    r"\\text\{(\s*[^{}a-zA-Z]*\s*|[A-Za-z]|\s*[A-Z](?:\s*,\s*[A-Z])+\s*)\}"
)


# ``\text{5 cm}``: a number and its unit written as one text run.
_TEXT_NUMBER_UNIT_RE = re.compile(r"\\text\{\s*(-?[\d.,]+)\s+([A-Za-z .]+?)\s*\}")


def _text_number_unit(m: re.Match[str]) -> str:
    return m.group(1) if _is_unit_text(m.group(2)) else m.group(0)


def _replace_thousands(s: str) -> str:
    """Join digit groups split by ``{,}``, ``,\\!``, ``\\,`` or a bare ``,``.

    The explicit LaTeX separators always join; a bare comma joins only when every
    group after it has exactly three digits and no space follows the comma, so that
    ``0,4`` or ``2, 500`` stay lists.
    """
    s = re.sub(r"(?<=\d)(?:\{,\}|,\s*\\!\s*|,\\,|\\,|\\ |\\!|\{\\,\})(?=\d{3}(?!\d))", "", s)
    s = re.sub(r"(?<=\d)\{,\}(?=\d)", "", s)

    def join(m: re.Match[str]) -> str:
        before = s[: m.start()]
        depth = sum(before.count(c) for c in "([{") - sum(before.count(c) for c in ")]}")
        # Inside brackets a comma separates coordinates: (-36,104] is an interval.
        return m.group(0) if depth > 0 else m.group(0).replace(",", "")

    return re.sub(r"(?<![\d.,])[1-9]\d{0,2}(?:,\d{3})+(?![\d,]|\.\d*,)", join, s)


def _strip_delimiters(s: str) -> str:
    s = s.strip()
    changed = True
    while changed:
        changed = False
        for left, right in (("$$", "$$"), ("\\[", "\\]"), ("\\(", "\\)"), ("$", "$")):
            if s.startswith(left) and s.endswith(right) and len(s) >= len(left) + len(right):
                s = s[len(left) : len(s) - len(right)].strip()
                changed = True
    return s


def _unwrap_text_commands(s: str) -> str:
    """``\\mathrm{cm}`` and friends become ``\\text{cm}``; nested braces are kept."""
    return re.sub(r"\\(?:" + _TEXT_CMDS + r")\b\s*(?=\{)", r"\\text", s)


def _is_unit_text(content: str) -> bool:
    """Prose after a value (``\\text{ cm}``, ``\\text{ of the pie}``) is a label.

    Connectives (``\\text{ and }``) and anything with digits or brackets are not.
    """
    words = re.findall(r"[A-Za-z]+", content)
    if not words or len(words) > 6 or re.search(r"[\d()\\]", content):
        return False
    if re.fullmatch(r"\s*[ap]\.?\s*m\.?\s*", content, re.I):  # a clock time's a.m./p.m.
        return False
    return not (len(words) == 1 and words[0].lower() in ("and", "or"))


def strip_units(s: str) -> str:
    """Drop unit labels that follow a value: ``\\text{ cm}^2``, ``12 inches``, ``\\$``."""
    s = re.sub(
        r"\\\$|\\(?:dollar|textdollar|pounds|euro|textcent|cent)\b|¢|(?<![a-zA-Z])(?:USD|Rs\.?)\s*",
        "",
        s,
    )

    def drop(m: re.Match[str]) -> str:
        return "" if _is_unit_text(m.group(1)) else m.group(0)

    s = re.sub(r"(?<=[\d}).%\s])\s*\\text\{([^{}]*)\}(?:\s*\^\s*\{?[23]\}?)?\s*$", drop, s)
    s = re.sub(r"(?<=[\w}).%])\s*\\text\{([^{}]*)\}(?:\s*\^\s*\{?[23]\}?)?(?=\s*(?:,|$))",
               drop, s)  # fmt: skip
    prev = None
    while prev != s:
        prev = s
        s = _PLAIN_UNIT_RE.sub("", s).rstrip()
    return _TRAILING_WORDS_RE.sub(_drop_label_words, s)


# "5 apples", "12 red marbles": up to three plain words after a number label it.
_TRAILING_WORDS_RE = re.compile(r"(?<=\d)\s+([A-Za-z]{3,}(?:\s+[A-Za-z]{2,}){0,2})\.?$")
_FILLER_RE = re.compile(r"^(?:approximately|approx\.?|about|roughly|around|exactly|only)\s+", re.I)


def _drop_label_words(m: re.Match[str]) -> str:
    from personamath.grading.tokens import MATH_WORDS

    words = m.group(1).lower().split()
    return m.group(0) if any(w in MATH_WORDS for w in words) else ""


def _unbox(s: str) -> str:
    """Remove ``\\boxed{...}`` wrappers left inside an extracted answer."""
    for _ in range(20):
        m = re.search(r"\\(?:boxed|fbox)\s*\{", s)
        if m is None:
            return s
        depth, end = 0, None
        for j in range(m.end() - 1, len(s)):
            depth += {"{": 1, "}": -1}.get(s[j], 0)
            if depth == 0:
                end = j
                break
        if end is None:
            return s
        s = s[: m.start()] + s[m.end() : end] + s[end + 1 :]
    return s


_OPERATORS = (
    "sin|cos|tan|sec|csc|cot|arcsin|arccos|arctan|arcsec|arccsc|arccot|sinh|cosh|tanh|"
    "ln|log|exp"
)
_BRACE_WORDS = {"\\lbrace": "\\{", "\\rbrace": "\\}", "\\lbrack": "[", "\\rbrack": "]"}


def _operator_names(s: str) -> str:
    """``\\operatorname{sin}`` and ``\\mathrm{sin}`` are ``\\sin``; another operator name
    (``\\operatorname{cm}``) is text; ``\\lbrace``/``\\rbrack`` are the plain brackets."""
    s = re.sub(r"\\(?:operatorname\*?|mathrm|text)\s*\{\s*(" + _OPERATORS + r")\s*\}",
               r"\\\1 ", s)
    s = re.sub(r"\\operatorname\*?\s*(?=\{)", r"\\text", s)
    return re.sub(r"\\[lr]brac(?:e|k)(?![a-zA-Z])", lambda m: _BRACE_WORDS[m.group(0)], s)


def clean(s: str) -> str:
    """Presentation-free form of an answer string (still LaTeX-ish text)."""
    s = _UNICODE_RE.sub(lambda m: _UNICODE[m.group(0)], s)
    s = _unbox(s)
    s = re.sub(r"\\phantom\s*\{[^{}]*\}|\\phantom\s*\S", "", s)
    s = re.sub(r"\\(?:text|mathrm)\{([0-9A-Za-z]+)\}(?=_)", r"\1", s)
    s = _strip_delimiters(s)
    s = _operator_names(s)
    s = re.sub(r"\\(?:displaystyle|textstyle|scriptstyle|limits|nolimits)\b", "", s)
    s = re.sub(r"\\(?:left|right|bigl|bigr|Bigl|Bigr|biggl|biggr|big|Big|bigg|Bigg)\s*\.", "", s)
    s = re.sub(r"\\(?:left|right|bigl|bigr|Bigl|Bigr|biggl|biggr|big|Big|bigg|Bigg)(?![a-zA-Z])",
               "", s)  # fmt: skip
    s = re.sub(r"\{([^{}]*)\\over(?![a-zA-Z])([^{}]*)\}", r"\\frac{\1}{\2}", s)
    s = re.sub(r"\{([^{}]*)\\choose(?![a-zA-Z])([^{}]*)\}", r"\\binom{\1}{\2}", s)
    s = re.sub(r"\\[dtc]frac(?![a-zA-Z])", r"\\frac", s)
    s = re.sub(r"\\infin(?![a-zA-Z])", r"\\infty", s)
    s = re.sub(r"^(?:=|\\approx(?![a-zA-Z])|≈)\s*", "", s.strip())
    s = re.sub(r"^(?:\\text\{)?\s*all real numbers\s*\}?$", r"\\mathbb{R}", s, flags=re.I)
    s = re.sub(r"\\text\{\s*(?:infinity|inf)\s*\}", r"\\infty", s, flags=re.I)
    s = re.sub(r"\\[dt]binom(?![a-zA-Z])", r"\\binom", s)
    s = _replace_thousands(s)
    if re.fullmatch(r"-?\d{1,3}(?: \d{3})+(?:\.\d+)?", s.strip()):
        s = s.replace(" ", "")
    s = re.sub(r"\\mathbb\s*\{?\s*R\s*\}?(?![a-zA-Z])", r"(-\\infty,\\infty)", s)
    s = s.replace("\\!", "")
    s = re.sub(r"(?<!\\)\\[,;: ]|\\q?quad\b|~", " ", s)
    s = re.sub(r"\^\s*\{\s*\\circ\s*\}|\^\s*\\circ\b|\\circ\b|\\degree\b|\^\s*\{\s*o\s*\}", "°", s)
    s = s.replace("\\%", "%").replace("\\$", "$")
    s = re.sub(r"(?<=[\d}])\s*(?:\\text\{\s*percent\s*\}|percent\b)", "%", s)
    s = re.sub(r"(?<=[\d}])\s*(?:\\text\{\s*degrees?\s*\}|degrees?\b)", "°", s)
    s = _unwrap_text_commands(s)
    s = re.sub(r"\\text\{\s*\}", "", s)
    s = _TEXT_UNWRAP_RE.sub(lambda m: m.group(1).strip(), s)
    s = _TEXT_NUMBER_UNIT_RE.sub(_text_number_unit, s)
    s = re.sub(r"\\hbox\b", r"\\text", s)
    s = s.replace("$", "")
    s = re.sub(r"(?<![.\d])[.,;:]\s*$", "", s.strip()).strip()
    s = _FILLER_RE.sub("", s)
    s = re.sub(r"(?<=\d)\s*[xX]\s*(?=10\s*\^)", r"\\times ", s)  # 1.2 x 10^5
    s = re.sub(r"(?<=[)\]])\s*(?:U|\\bigcup)\s*(?=[(\[])", r" \\cup ", s)  # (a,b) U (c,d)
    s = re.sub(r"(?<=\d)\s*(?:''|\"|'|′′|″|′)$", "", s)  # 6'' (inches), 5' (feet)
    # "2 1/2" written in plain text is a mixed number, as 2\frac12 is in LaTeX.
    s = re.sub(r"^(-?\d+)\s+(\d+)\s*/\s*(\d+)$", r"\1\\frac{\2}{\3}", s)
    s = re.sub(r"\(([0-9A-Za-z]+)\)_", r"\1_", s)  # (10110)_2
    s = strip_units(s)
    s = re.sub(r"\s+", " ", s).strip()
    s = re.sub(r"(?<![.\d])[.,;:]\s*$", "", s).strip()
    s = re.sub(r"(?<=\d)\.$", "", s).strip()
    return s


_UNIT_CANON = {
    "centimeter": "cm", "centimetre": "cm", "meter": "m", "metre": "m", "kilometer": "km",
    "kilometre": "km", "millimeter": "mm", "millimetre": "mm", "inch": "in", "foot": "ft",
    "feet": "ft", "yard": "yd", "mile": "mi", "hour": "h", "hr": "h", "minute": "min",
    "second": "s", "sec": "s", "day": "d", "week": "wk", "year": "yr", "dollar": "$",
    "cent": "¢", "degree": "°", "pound": "lb", "ounce": "oz", "gram": "g", "gm": "g",
    "kilogram": "kg", "liter": "l", "litre": "l", "gallon": "gal", "radian": "rad",
}  # fmt: skip
_UNIT_TAIL_RE = re.compile(
    r"(?:\\text\{([^{}]*)\}|\\mbox\{([^{}]*)\}|\s([A-Za-z][A-Za-z ]*))"
    r"\s*(\^\s*\{?([23])\}?)?\s*\.?$"
)


def _canon_unit_word(word: str) -> str | None:
    word = word.lower()
    for cand in (
        word,
        word[:-1] if word.endswith("s") else word,
        word[:-2] if word.endswith("es") else word,
    ):
        if cand in _UNIT_CANON:
            return _UNIT_CANON[cand]
        if cand in _UNIT_CANON.values():
            return cand
    return None


def unit_signature(raw: str) -> str | None:
    """Canonical unit of an answer's trailing unit label (``cm^2`` for ``12 square cm``).

    None when there is no recognised unit; used only to tell ``5 cm`` from ``5 m``.
    """
    m = _UNIT_TAIL_RE.search(raw.strip().rstrip("$").strip())
    if m is None:
        return None
    words = re.findall(r"[A-Za-z]+", m.group(1) or m.group(2) or m.group(3) or "")
    power = m.group(5) or ""
    units = []
    for word in words:
        low = word.lower()
        if low in ("square", "sq"):
            power = "2"
        elif low == "cubic":
            power = "3"
        elif low in ("per", "of", "a", "an"):
            units.append("/" if low == "per" else "")
        else:
            canon = _canon_unit_word(low)
            if canon is None:
                return None
            units.append(canon)
    if not any(units):
        return None
    return "".join(units) + (f"^{power}" if power else "")
