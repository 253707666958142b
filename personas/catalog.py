"""Persona catalog loading, the deterministic draw, and the rewrite prompt."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

import yaml

REWRITE_PROMPT_VERSION = "rewrite-1"


@dataclass(frozen=True)
class Occupation:
    title: str
    context: str


@dataclass(frozen=True)
class Category:
    code: str
    name: str
    description: str
    occupations: tuple[Occupation, ...]


@dataclass(frozen=True)
class Catalog:
    version: str
    categories: tuple[Category, ...]


@dataclass(frozen=True)
class Persona:
    """One drawn persona: a category and one of its occupations."""

    category: Category
    occupation: Occupation

    @property
    def label(self) -> str:
        return f"{self.category.name} / {self.occupation.title}"


class CatalogError(ValueError):
    """The catalog file is malformed; the message names the entry."""


@lru_cache(maxsize=4)
def load_catalog(path: str | None = None) -> Catalog:
    """Load and validate the catalog (the packaged one unless `path` is given)."""
    if path:
        text = Path(path).read_text()
    else:
        text = resources.files("personas").joinpath("catalog.yaml").read_text()
    data = yaml.safe_load(text)
    cats = []
    for i, c in enumerate(data.get("categories") or []):
        try:
            occs = tuple(Occupation(o["title"], o["context"]) for o in c["occupations"])
            cats.append(Category(str(c["code"]), c["name"], c["description"], occs))
        except (KeyError, TypeError) as err:
            raise CatalogError(f"persona category #{i}: missing field {err}") from None
        if not occs:
            raise CatalogError(f"persona category {c.get('name')!r} has no occupations")
    if not cats:
        raise CatalogError("persona catalog has no categories")
    return Catalog(str(data.get("version", "unversioned")), tuple(cats))


def draw_persona(catalog: Catalog, question_id: str, rewrite_index: int, seed: int) -> Persona:
    """Deterministic given (question id, rewrite index, seed): a hash picks the category,
    and consecutive rewrites of one question walk different categories before repeating."""
    h = int.from_bytes(hashlib.sha256(f"{seed}|{question_id}".encode()).digest()[:8], "big")
    n = len(catalog.categories)
    cat = catalog.categories[(h + rewrite_index) % n]
    h2 = int.from_bytes(
        hashlib.sha256(f"{seed}|{question_id}|{rewrite_index}".encode()).digest()[:8], "big"
    )
    return Persona(cat, cat.occupations[h2 % len(cat.occupations)])


REWRITE_SYSTEM = (
    "You rewrite math word problems. You keep every number, quantity and relation exactly, "
    "so that the answer does not change, and you only change the setting and wording."
)

REWRITE_TEMPLATE = """Rewrite the following math problem in the voice and working context of \
a {title} ({category}: {context}).

Rules:
- Keep every number, quantity, unit and mathematical relation exactly as in the original, \
so the answer stays the same.
- Write only the new problem: no solution, no answer, no hints.
- Start your reply with "Rewritten problem:".

Original problem:
{question}"""


def rewrite_messages(question: str, persona: Persona) -> list[tuple[str, str]]:
    """(role, content) pairs of the rewrite request."""
    user = REWRITE_TEMPLATE.format(
        title=persona.occupation.title, category=persona.category.name,
        context=persona.occupation.context, question=question,
    )
    return [("system", REWRITE_SYSTEM), ("user", user)]


_LEAD = re.compile(r"^\s*(\*\*)?\s*rewritten problem\s*:?\s*(\*\*)?\s*:?", re.IGNORECASE)


def parse_rewrite(text: str) -> str | None:
    """The rewritten question from the reply, or None when the reply is unusable (empty,
    or it contains a solution or boxed answer instead of a question)."""
    body = _LEAD.sub("", text.strip(), count=1).strip()
    if "\\boxed" in body or len(body) < 10:
        return None
    body = re.split(r"\n\s*(?:\*\*)?(?:solution|answer)\s*:", body, flags=re.IGNORECASE)[0]
    return body.strip() or None
