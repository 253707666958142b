"""Final-answer extraction from a model response.

Priority order (first rule that finds something wins; within a rule the *last*
occurrence wins, because models restate and correct themselves before concluding):

1. GSM8K ``#### N`` when ``dataset == "gsm8k"`` (the dataset's own answer marker).
2. The last ``\\boxed{...}`` / ``\\fbox{...}`` (nested braces respected), or ``\\boxed 5``.
3. "Final Answer: The final answer is X" (the Minerva/MATH few-shot format).
4. "The answer is X" / "Answer: X" / "The correct option is X".
5. ``#### N`` for any dataset.
6. The last bold markdown span (``**X**``) that contains a digit or math.
7. A bare answer: a text with at most two prose words is itself the answer
   (``3/4``, ``\\frac12``, ``(C)``, ``12 inches``, ``no solution``).
8. The last math span (``$...$``, ``$$...$$``, ``\\[...\\]``) when it holds a value
   and no number follows it.
9. The last number in the text, as a last resort.

For the marker rules (3 to 5) the answer is the sentence after the marker: it ends at
``. ``, ``! ``, ``? ``, ``; `` before a word, or a parenthetical after the value, so
"The answer is 60. (Had she not lost 12: 72.)" answers 60. A ``\\boxed{`` that never
closes means the reply was cut off while giving its answer: then only a later line can
give one, and an earlier number never does.

A reply that gives an explicit answer (rules 1 to 6) and then starts a new
"Question:", "Q:", "Problem:" or "User:" line, as small models do, ends at that line:
the made-up question's answer is never the reply's. Bold text that is a sentence
(``**Janet makes $18 every day.**``) gives its value, as a marker's sentence does.

Only the last 20,000 characters are scanned. ``None`` when nothing is found.
Extraction never judges correctness; it only decides which substring the grader
compares. Boxes on one line joined by "and" or commas (``x = \\boxed{-2}`` and
``x = \\boxed{3}``) form one list answer.
"""

from __future__ import annotations

import re

from personamath.grading.tokens import MATH_WORDS

MAX_SCAN_CHARS = 20000
_BOX_RE = re.compile(r"\\(?:boxed|fbox)\s*")
_FINAL_RE = re.compile(r"final answer\s*(?:is|:)?\s*(?:the final answer is)?\s*:?\s*", re.I)
_ANSWER_IS_RE = re.compile(
    r"(?:(?:the\s+)?(?:final\s+)?answer\s*(?:is|:|=)"
    r"|(?:the\s+)?(?:correct|right|best)\s+(?:option|choice|answer)\s*(?:is|:))\s*:?\s*",
    re.I,
)
_HASH_RE = re.compile(r"####\s*([^\n]*)")
_BOLD_RE = re.compile(r"\*\*([^*\n]{1,120}?)\*\*")
_NUMBER_RE = re.compile(r"[-−]?\d[\d,]*(?:\.\d+)?(?:/\d+)?|[-−]?\.\d+")
_WORD_RE = re.compile(r"(?<![\\a-zA-Z])[a-zA-Z]{2,}")
_TEXT_CMD_RE = re.compile(r"\\(?:text|textbf|mathrm|mbox|textit|operatorname)\s*\{[^{}]*\}")
_CONNECTIVE_RE = re.compile(r"^(?:so|thus|therefore|hence|then|finally)\b\s*,?\s*", re.I)
_CALC_RE = re.compile(r"<<[^<>\n]{0,200}>>")
_CLAUSE_RE = re.compile(r",?\s+(?:since|because|which|as this|so that|given that)\b", re.I)
_JOINER_RE = re.compile(r"[\s$]*(?:,|and|or|,\s*and)?[\s$]*(?:[a-zA-Z]_?\d?\s*=\s*)?[\s$]*")
_MATH_SPAN_RE = re.compile(r"\$\$(.+?)\$\$|\\\[(.+?)\\\]|\$([^$]+?)\$|\\\((.+?)\\\)", re.S)
# A new question after the answer: "Question: ...", "Q: ...", "### Problem 2:", "User:".
_NEXT_QUESTION_RE = re.compile(
    r"\n[ \t]*(?:#+[ \t]*)?(?:\*\*)?(?:question|problem|q|human|user)[ \t]*\d*[ \t]*(?:\*\*)?:",
    re.I,
)
_TAIL_RE = re.compile(r"\s*(?:I hope it is correct\.?|\.\s*$)", re.I)


def _balanced(text: str, start: int) -> tuple[str, int] | None:
    """Content of the brace group opening at ``text[start]`` and the index after it."""
    if start >= len(text) or text[start] != "{":
        return None
    depth = 0
    for i in range(start, len(text)):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text) and text[i + 1] in "{}":
            continue
        if ch == "{" and (i == 0 or text[i - 1] != "\\"):
            depth += 1
        elif ch == "}" and (i == 0 or text[i - 1] != "\\"):
            depth -= 1
            if depth == 0:
                return text[start + 1 : i], i + 1
    return None


def _boxes(text: str) -> list[tuple[str, int, int]]:
    """Outermost ``\\boxed``/``\\fbox`` groups as (content, start, end), in order."""
    found: list[tuple[str, int, int]] = []
    pos = 0
    while True:
        m = _BOX_RE.search(text, pos)
        if m is None:
            return found
        end = m.end()
        if end < len(text) and text[end] == "{":
            group = _balanced(text, end)
            if group is not None:
                found.append((group[0].strip(), m.start(), group[1]))
                pos = group[1]
                continue
        elif m.group(0) != m.group(0).rstrip():
            tail = re.match(r"[^\s$\\]+|\\[a-zA-Z]+(?:\{[^{}]*\})*", text[end:])
            if tail:
                found.append((tail.group(0).strip(), m.start(), end + tail.end()))
                pos = end + tail.end()
                continue
        pos = m.end()


def last_box(text: str) -> str | None:
    """Content of the last outermost ``\\boxed``/``\\fbox`` alone (no joining): the rule
    for MATH reference solutions, whose gold is their last box."""
    boxes = _boxes(text)
    return boxes[-1][0] if boxes else None


def last_boxed(text: str) -> str | None:
    """The last outermost boxed answer; boxes on one line joined by "and"/"," form a list.

    ``$x = \\boxed{-2}$ and $x = \\boxed{3}$`` answers "-2, 3"; boxes on different lines
    are successive attempts, and only the last one counts.
    """
    boxes = _boxes(text)
    if not boxes:
        return None
    group = [boxes[-1]]
    joiners: list[str] = []
    for box in reversed(boxes[:-1]):
        between = text[box[2] : group[0][1]]
        if len(between) > 40 or "\n" in between or not _JOINER_RE.fullmatch(between):
            break
        group.insert(0, box)
        joiners.insert(0, " or " if re.search(r"\bor\b", between) else ", ")
    out = group[0][0]
    for joiner, (content, _, _) in zip(joiners, group[1:], strict=True):
        out += joiner + content
    return out


def _strip_answer(s: str) -> str:
    """Trim math delimiters and trailing sentence punctuation around an answer."""
    s = s.strip().strip("*").strip()
    s = _CONNECTIVE_RE.sub("", s)
    s = _TAIL_RE.sub("", s).strip()
    for left, right in (("$$", "$$"), ("\\[", "\\]"), ("\\(", "\\)"), ("$", "$")):
        if s.startswith(left) and s.endswith(right) and len(s) >= len(left) + len(right):
            s = s[len(left) : len(s) - len(right)].strip()
    s = s.strip("$ *").rstrip(".").strip()
    boxed = last_boxed(s)
    return boxed if boxed is not None else s


# Where the sentence that states an answer ends: a full stop, "!" or "?" followed by
# more text (a decimal point is never followed by a space; ``\\!`` is a LaTeX space),
# "; " before a word, or a parenthetical remark with a word in it after the value
# ("60 (not 72)", "18 (9 eggs x $2)"). Math spans and open brackets never end it.
_SENTENCE_END_RE = re.compile(
    r"(?<!\\)[.!?](?:\s+(?=\S)|\s*$)|;\s+(?=[A-Za-z]{2})"
    r"|(?<=\S)\s+\((?=[^()$]*?(?<![\\a-zA-Z])[A-Za-z]{3,})"
)


def _first_sentence(line: str) -> str:
    """The answer sentence of a line: ``The answer is 60. (Had she not lost 12, 72.)``
    states 60, and the numbers after it are commentary, never the answer."""
    line = line.strip()
    spans = [m.span() for m in _MATH_SPAN_RE.finditer(line)]
    for m in _SENTENCE_END_RE.finditer(line):
        at = m.start()
        # "$18. She sells 9 eggs at $2" is currency, not a math span: a full stop before
        # a capitalised word ends the sentence wherever it stands.
        prose = re.match(r"[.!?]\s+[A-Z][a-z]", line[at:]) is not None
        if not prose and (any(a < at < b for a, b in spans) or _open_brackets(line[:at])):
            continue
        head = line[:at]
        return head if head.strip() else line
    return line


def _answer_line(rest: str) -> str:
    """The line after a marker, continued while a ``$`` span or a brace group is still
    open (``$90\\text{ square\nunits}$``), for at most three more lines."""
    lines = rest.split("\n")
    line = lines[0]
    for extra in lines[1:4]:
        if line.count("$") % 2 == 0 and line.count("{") <= line.count("}"):
            break
        line += "\n" + extra
    return line


def _open_brackets(text: str) -> bool:
    depth = 0
    for ch in re.sub(r"\\[{}]", "", text):
        depth += ch in "([{"
        depth -= ch in ")]}"
    return depth > 0


def _after_marker(text: str, pattern: re.Pattern[str]) -> str | None:
    """The rest of the line after the last match of ``pattern``, cleaned."""
    matches = list(pattern.finditer(text))
    for m in reversed(matches):
        rest = text[m.end() :]
        if not rest.split("\n", 1)[0].strip(" *:#"):  # "**Final Answer**" on its own line
            rest = rest.lstrip(" *:#\n")
        hope = re.search(r"\.?\s*I hope it is correct", rest)
        line = rest[: hope.start()] if hope else _answer_line(rest)
        cleaned = _value_in(_strip_answer(_first_sentence(_CLAUSE_RE.split(line, maxsplit=1)[0])))
        if cleaned:
            return cleaned
    return None


def _last_hash(text: str) -> str | None:
    matches = _HASH_RE.findall(text)
    if not matches:
        return None
    value = _first_sentence(matches[-1].strip())
    return _strip_answer(value) or None


def _last_bold(text: str) -> str | None:
    for content in reversed(_BOLD_RE.findall(text)):
        if re.search(r"[\d$\\]", content):
            content = content.strip().rstrip(":").strip()
            if ":" in content:
                content = content.rsplit(":", 1)[1]
            cleaned = _value_in(_strip_answer(content))
            if cleaned:
                return cleaned
    return None


def _value_in(cleaned: str) -> str:
    """The value of a marker's sentence or a bold span: itself when it reads as an
    answer, else its last math span or number ("Janet makes $18 every day" gives 18)."""
    if cleaned and not looks_bare(cleaned):
        return _last_math_span(cleaned) or _last_number(cleaned) or cleaned
    return cleaned


def looks_bare(text: str) -> bool:
    """True when ``text`` reads as an answer rather than as prose around one."""
    s = _CONNECTIVE_RE.sub("", text.strip())
    if not s or len(s) > 2000 or "\n" in s.strip():
        return False
    s = re.sub(r"\\(?:begin|end)\{[^}]*\}(?:\{[^}]*\})?", " ", s)
    words = [w for w in _WORD_RE.findall(_TEXT_CMD_RE.sub("", s)) if w.lower() not in MATH_WORDS]
    if len(s) > 160:  # a long answer is bare only when it is all math: (x+1)^{20} expanded
        return not words and not re.search(r"[.!?]\s", s)
    # Up to two prose words around a value ("12 inches"); a short phrase without any
    # number may be the answer itself ("all real numbers", "does not exist").
    limit = 3 if not re.search(r"\d", s) and not re.search(r"[.!?]\s", s) else 2
    return len(words) <= limit


def _last_math_span(text: str) -> str | None:
    """The last math span (``$...$``, ``$$...$$``, ``\\[...\\]``), if no number follows it.

    Only spans that look like a value (a digit or a macro such as ``\\frac``) count,
    so "where $x$ is the unknown" does not replace an earlier number.
    """
    spans = list(_MATH_SPAN_RE.finditer(text[-4000:]))
    if not spans:
        return None
    last = spans[-1]
    if re.search(r"\d", text[-4000:][last.end() :]):
        return None
    content = next((g for g in last.groups() if g), "").strip()
    if not re.search(r"\d|\\[a-zA-Z]", content):
        return None
    return _strip_answer(content) or None


def _last_number(text: str) -> str | None:
    numbers = _NUMBER_RE.findall(text)
    if not numbers:
        return None
    return numbers[-1].rstrip(",").replace("−", "-")


def extract_answer(text: str, dataset: str | None = None) -> str | None:
    """The final answer string of ``text`` (see the module docstring for the order)."""
    if not text or not text.strip():
        return None
    text = text[-MAX_SCAN_CHARS:]  # the final answer is at the end; bounds regex work
    text = _CALC_RE.sub("", text)  # GSM8K calculator annotations <<16-3-4=9>>
    return _extract(_before_next_question(text, dataset), dataset)


def _before_next_question(text: str, dataset: str | None) -> str:
    """Small models answer, then write a new "Question: ..." and answer that too; the
    reply ends at the first such line that follows an explicit answer."""
    for m in _NEXT_QUESTION_RE.finditer(text):
        head = text[: m.start()]
        if head.strip() and _explicit(head) is not None:
            return head
    return text


def _explicit(text: str) -> str | None:
    """An answer given by a box or a marker ("answer is", ``####``, bold), not guessed."""
    return last_boxed(text) or _marked(text)


def _marked(text: str) -> str | None:
    """Rules 3 to 6: "Final Answer", "The answer is", ``####``, bold, in that order."""
    for finder in (
        lambda t: _after_marker(t, _FINAL_RE),
        lambda t: _after_marker(t, _ANSWER_IS_RE),
        _last_hash,
        _last_bold,
    ):
        found = finder(text)
        if found:
            return found
    return None


def _extract(text: str, dataset: str | None) -> str | None:
    if dataset == "gsm8k":
        found = _last_hash(text)
        if found:
            return found
    boxed = last_boxed(text)
    if boxed:
        return boxed
    unclosed = [m.start() for m in _BOX_RE.finditer(text)]
    if unclosed:
        # A \boxed{ that never closes: the reply was cut off while stating its answer,
        # so nothing before it is the answer. Only a later line can still give one.
        rest = text[unclosed[-1]:].split("\n", 1)
        return _extract(rest[1], dataset) if len(rest) > 1 else None
    found = _marked(text)
    if found:
        return found
    if looks_bare(text):
        return _strip_answer(text) or None
    return _last_math_span(text) or _last_number(text)
