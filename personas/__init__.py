"""Occupation personas (ISCO-08 major groups + students), their deterministic draw and
the rewrite prompt. The catalog is data (catalog.yaml); its version enters the run
fingerprint so that changing a persona's text changes where outputs go."""

from personas.catalog import (
    Catalog,
    Category,
    Occupation,
    Persona,
    draw_persona,
    load_catalog,
    parse_rewrite,
    rewrite_messages,
)

__all__ = [
    "Catalog", "Category", "Occupation", "Persona", "draw_persona", "load_catalog",
    "parse_rewrite", "rewrite_messages",
]
