"""The dataset report: diversity statistics (word types, type-token ratio, question
lengths) with a plot, and the Markdown summary of a build."""

from __future__ import annotations

import io
import re
import statistics
from typing import Any

from storage import ArtifactStore

_WORDS = re.compile(r"[A-Za-z]+")


def text_stats(texts: list[str]) -> dict[str, Any]:
    """Word types, tokens, type-token ratio and length quantiles (in words)."""
    tokens = [w.lower() for t in texts for w in _WORDS.findall(t)]
    lengths = [len(t.split()) for t in texts]
    if not texts:
        return {"texts": 0, "tokens": 0, "word_types": 0, "ttr": 0.0}
    qs = statistics.quantiles(lengths, n=10) if len(lengths) > 1 else [lengths[0]] * 9
    return {
        "texts": len(texts),
        "tokens": len(tokens),
        "word_types": len(set(tokens)),
        "ttr": round(len(set(tokens)) / max(1, len(tokens)), 4),
        "length_mean": round(statistics.fmean(lengths), 2),
        "length_median": statistics.median(lengths),
        "length_p10": qs[0],
        "length_p90": qs[-1],
    }


def diversity_report(store: ArtifactStore, base: str, questions: list[dict[str, Any]],
                     rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Compare source questions with the dataset's problems; save a length histogram."""
    src = [q["question"] for q in questions]
    out = [r["problem"] for r in rows]
    report = {"source_questions": text_stats(src), "dataset_problems": text_stats(out),
              "rewrites": text_stats([r["problem"] for r in rows if r["kind"] == "rewrite"])}
    png = length_plot(src, out)
    if png:
        store.write_bytes(f"{base}/report/question_lengths.png", png)
        report["plot"] = f"{base}/report/question_lengths.png"
    return report


def length_plot(src: list[str], out: list[str]) -> bytes | None:
    """Histogram of question lengths (words), source vs dataset, as PNG bytes."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, ax = plt.subplots(figsize=(7, 4))
    longest = max(len(t.split()) for t in src + out) if src + out else 10
    bins = list(range(0, longest + 11, max(1, (longest + 10) // 25)))
    ax.hist([len(t.split()) for t in src], bins=bins, alpha=0.6, label="source questions")
    if out:
        ax.hist([len(t.split()) for t in out], bins=bins, alpha=0.6, label="PersonaMathQA problems")
    ax.set_xlabel("question length (words)")
    ax.set_ylabel("count")
    ax.set_title("Question length distribution")
    ax.legend()
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()


def _table(title: str, data: dict[str, Any]) -> list[str]:
    lines = [f"| {title} | count |", "|---|---:|"]
    lines += [f"| {k} | {v} |" for k, v in data.items()] or ["| (none) | 0 |"]
    return lines + [""]


def summary_markdown(s: dict[str, Any]) -> str:
    """A human-readable build summary (also used as the Prefect markdown artifact)."""
    f, s1, s2, b, t = s["final"], s["stage1"], s["stage2"], s["build"], s["teacher_calls"]
    lines = [
        "# PersonaMathQA build summary", "",
        f"- Dataset: `{s['dataset_uri']}`",
        f"- Fingerprint: `{s['fingerprint']}`; teacher: {s['teacher']['provider']} / "
        f"{s['teacher']['model']}",
        f"- Questions in: **{s['questions_in']}** ({s['ingest']['invalid']} invalid input rows); "
        f"accepted: **{f['accepted']}**; rows out: **{b['rows_out']}**", "",
        "## Stages", "",
        "| step | in | accepted | to Stage 2 | rejected | rewrites kept/tried |",
        "|---|---:|---:|---:|---|---:|",
        f"| Stage 1 | {s1['in']} | {s1['accepted']} | {s1['to_stage2']} | "
        f"{_fmt(s1['rejected'])} | {s1['rewrites_kept']}/{s1['rewrites_tried']} |",
        f"| Stage 2 | {s2['in']} | {s2['accepted']} | - | {_fmt(s2['rejected'])} | "
        f"{s2['rewrites_kept']}/{s2['rewrites_tried']} |",
        f"| Build | {b['rows_verified']} rows | {b['rows_out']} rows | - | "
        f"{_fmt(b['removed'])} | - |", "",
        "## Final outcome per question", "",
        *_table("rejected reason", f["rejected"]),
        "## Rows", "",
        *_table("stage", s["rows_by_stage"]),
        *_table("persona", s["rows_by_persona"]),
        *_table("source", s["rows_by_source"]),
        "## Teacher", "",
        f"- Requests: {t['requests']} ({_fmt(t['by_kind'])}); tokens in/out: "
        f"{t['prompt_tokens']}/{t['completion_tokens']}; cost: ${t['cost_usd']:.4f}; "
        f"shard wall time: {t['shard_wall_s']} s",
        f"- Retries: {t.get('retries', 0)} (errors: {_fmt(t.get('errors', {}))}); "
        f"replies replayed from the ledger: {t.get('ledger_hits', 0)}",
    ]
    d = s.get("diversity")
    if d:
        lines += ["", "## Diversity", "", "| texts | n | word types | TTR | mean length |",
                  "|---|---:|---:|---:|---:|"]
        for name, st in d.items():
            if isinstance(st, dict):
                lines.append(f"| {name} | {st['texts']} | {st['word_types']} | {st['ttr']} | "
                             f"{st.get('length_mean', '-')} |")
    return "\n".join(lines) + "\n"


def _fmt(d: dict[str, Any]) -> str:
    return ", ".join(f"{k}: {v}" for k, v in d.items()) or "none"
