"""Accuracy tables, the accuracy plot and the Markdown report of an evaluation.

Errors (the grader could not decide) are counted apart from wrong answers: they count
against accuracy (the question was not solved) but are reported so a grader problem is
never mistaken for a model problem.
"""

from __future__ import annotations

import io
import re
from collections import defaultdict
from typing import Any


def _level(value: str | None) -> str:
    """'Level 3' (MATH) and '3' (MATH500) are the same level."""
    if value is None:
        return "-"
    m = re.search(r"\d+", str(value))
    return m.group(0) if m else str(value)


def _cell(rows: list[dict]) -> dict[str, Any]:
    n = len(rows)
    correct = sum(1 for r in rows if r["correct"])
    return {"n": n, "correct": correct, "accuracy": round(correct / n, 4) if n else 0.0,
            "errors": sum(1 for r in rows if r["verdict"] == "error"),
            "truncated": sum(1 for r in rows if r["finish_reason"] == "length")}


def _group(rows: list[dict], key: str) -> dict[str, dict[str, Any]]:
    groups: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        groups[_level(r["level"]) if key == "level" else (r[key] or "-")].append(r)
    return {k: _cell(v) for k, v in sorted(groups.items())}


def accuracy_tables(records: list[dict]) -> dict[str, Any]:
    """Overall, per benchmark, and per benchmark by subject and by level."""
    by_bench: dict[str, list[dict]] = defaultdict(list)
    for r in records:
        by_bench[r["benchmark"]].append(r)
    return {
        "overall": _cell(records),
        "by_benchmark": {b: _cell(rows) for b, rows in by_bench.items()},
        "by_subject": {b: _group(rows, "subject") for b, rows in by_bench.items()
                       if any(r["subject"] for r in rows)},
        "by_level": {b: _group(rows, "level") for b, rows in by_bench.items()
                     if any(r["level"] for r in rows)},
    }


def table_rows(metrics: dict[str, Any]) -> list[dict[str, Any]]:
    """Flat rows (benchmark, group, value, n, correct, accuracy) for a table artifact."""
    rows = [{"benchmark": b, "group": "all", "value": "all", **c}
            for b, c in metrics["by_benchmark"].items()]
    for kind in ("by_subject", "by_level"):
        for b, groups in metrics[kind].items():
            rows += [{"benchmark": b, "group": kind[3:], "value": k, **c}
                     for k, c in groups.items()]
    return rows


def plot_accuracy(metrics: dict[str, Any], title: str) -> bytes:
    """A PNG: accuracy per benchmark, by level and by subject (MATH-style sets)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    _bars(axes[0], {b: c["accuracy"] for b, c in metrics["by_benchmark"].items()}, "benchmark")
    for ax, kind in ((axes[1], "by_level"), (axes[2], "by_subject")):
        merged = {f"{b}:{k}" if len(metrics[kind]) > 1 else k: c["accuracy"]
                  for b, groups in metrics[kind].items() for k, c in groups.items()}
        _bars(ax, merged, kind[3:])
    fig.suptitle(f"Accuracy: {title}")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return buf.getvalue()


def _bars(ax: Any, values: dict[str, float], xlabel: str) -> None:
    ax.bar(range(len(values)), [100 * v for v in values.values()], color="#4477aa")
    ax.set_xticks(range(len(values)), list(values), rotation=45, ha="right", fontsize=8)
    ax.set_ylim(0, 100)
    ax.set_ylabel("accuracy (%)")
    ax.set_xlabel(xlabel)
    if not values:
        ax.text(0.5, 0.5, "no data", ha="center", transform=ax.transAxes)


def _md_table(groups: dict[str, dict[str, Any]], head: str) -> list[str]:
    lines = [f"| {head} | n | correct | accuracy | errors | truncated |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {k} | {c['n']} | {c['correct']} | {100 * c['accuracy']:.1f}% | "
              f"{c['errors']} | {c['truncated']} |" for k, c in groups.items()]
    return lines


def render_report(metrics: dict[str, Any]) -> str:
    """The Markdown report (also the flow's markdown artifact)."""
    o = metrics["overall"]
    lines = [f"# Evaluation: {metrics['label']}", "",
             f"Backend `{metrics['backend']}`, greedy, max_new_tokens "
             f"{metrics['max_new_tokens']}, grader `{metrics['grader_version']}`, generations "
             f"`{metrics['generation_fingerprint']}`.", "",
             f"**Overall: {100 * o['accuracy']:.1f}%** ({o['correct']}/{o['n']}; "
             f"{o['errors']} grader errors, {o['truncated']} truncated generations).", "",
             "## By benchmark", "", *_md_table(metrics["by_benchmark"], "benchmark")]
    for kind, title in (("by_level", "level"), ("by_subject", "subject")):
        for b, groups in metrics[kind].items():
            lines += ["", f"## {b} by {title}", "", *_md_table(groups, title)]
    return "\n".join(lines) + "\n"
