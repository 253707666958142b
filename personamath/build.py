"""Build PersonaMathQA: merge the verified rows of both stages, deduplicate,
decontaminate against the GSM8K/MATH test sets, export Parquet, and account for every
input question. The build refuses to finish when the counts do not add up."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import pyarrow as pa

from personamath.runner import (
    STEP_INGEST,
    STEP_STAGE1,
    STEP_STAGE2,
    RunContext,
    num_shards,
)
from personamath.schema import ROW_SCHEMA, RejectReason
from personamath.sources import load_questions
from storage import ArtifactStore

NGRAM = 13
DECONTAM_SETS = (("gsm8k", "builtin:gsm8k/test"), ("math", "builtin:math/test"))
_WORD = re.compile(r"[a-z0-9]+")


class AccountingError(AssertionError):
    """The question counts do not add up: something was lost or counted twice."""


class BuildError(RuntimeError):
    """A build input is missing (a stage has unfinished shards)."""


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def normalise(text: str) -> str:
    return " ".join(words(text))


@lru_cache(maxsize=1)
def test_index() -> tuple[frozenset[tuple[str, ...]], frozenset[str]]:
    """13-grams of every test question, plus whole normalised short questions."""
    grams: set[tuple[str, ...]] = set()
    short: set[str] = set()
    for dataset, uri in DECONTAM_SETS:
        for q in load_questions(dataset, uri, "test").questions:
            w = words(q.question)
            if len(w) < NGRAM:
                short.add(" ".join(w))
            grams.update(tuple(w[i:i + NGRAM]) for i in range(len(w) - NGRAM + 1))
    return frozenset(grams), frozenset(short)


def contaminated(text: str) -> bool:
    """True when the text shares a 13-word window with a test question (or, for short
    texts, equals one after normalisation)."""
    grams, short = test_index()
    w = words(text)
    if len(w) < NGRAM:
        return " ".join(w) in short
    return any(tuple(w[i:i + NGRAM]) in grams for i in range(len(w) - NGRAM + 1))


@dataclass
class Collected:
    rows: list[dict[str, Any]] = field(default_factory=list)
    outcomes: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    engine: Counter = field(default_factory=Counter)
    errors: Counter = field(default_factory=Counter)
    stats: Counter = field(default_factory=Counter)
    wall_s: float = 0.0


def collect(ctx: RunContext, store: ArtifactStore, step_name: str, shards: int) -> Collected:
    """Read every shard of a stage; fail naming the shards that are not committed."""
    out = Collected()
    missing = []
    step = ctx.step(step_name)
    for i in range(shards):
        m = store.load_manifest(step, i, verify=False)  # read_shard verifies what it reads
        if m is None:
            missing.append(f"{i:05d}")
            continue
        out.rows.extend(store.read_shard(m, "rows").to_pylist())
        out.outcomes[i] = store.read_shard(m, "outcomes").to_pylist()
        engine = m.counts.get("engine", {})
        out.engine.update({k: v for k, v in engine.items()
                           if isinstance(v, int | float) and not isinstance(v, bool)})
        out.errors.update(engine.get("errors", {}))
        out.stats.update(m.counts.get("stats", {}))
        out.wall_s += m.counts.get("wall_s", 0.0)
    if missing:
        raise BuildError(f"{step_name}: shards not done: {', '.join(missing)}; rerun the stage")
    return out


def build(ctx: RunContext) -> dict[str, Any]:
    """Write the dataset, rejections and summary; return the summary."""
    store = ctx.store()
    ingest = store.load_manifest(ctx.step(STEP_INGEST), 0, verify=False)
    if ingest is None:
        raise BuildError("ingest has not run; run the pipeline or stage1 first")
    n_valid = ingest.counts["questions"]
    invalid = store.read_shard(ingest, "rejections").to_pylist()
    questions = store.read_shard(ingest, "questions").to_pylist()
    shards = num_shards(n_valid, ctx.settings.shard_size)
    s1 = collect(ctx, store, STEP_STAGE1, shards)
    s2 = collect(ctx, store, STEP_STAGE2, shards)

    rows = sorted(s1.rows + s2.rows, key=_row_order)
    kept, dropped = dedupe_and_decontaminate(rows, questions, ctx.settings.decontaminate)
    final = final_outcomes(questions, invalid, s1, s2, kept, dropped)
    summary = summarise(ctx, questions, invalid, s1, s2, rows, kept, dropped, final)
    check_accounting(summary)

    table = pa.Table.from_pylist(kept, schema=ROW_SCHEMA)
    store.write_table(f"{ctx.base}/dataset/{ctx.settings.dataset_name}.parquet", table)
    store.write_table(f"{ctx.base}/rejections.parquet", pa.Table.from_pylist(
        [r for r in final if r["status"] == "rejected"]))
    from personamath.report import diversity_report, summary_markdown

    summary["diversity"] = diversity_report(store, ctx.base, questions, kept)
    store.write_json(f"{ctx.base}/summary.json", summary)
    store.write_bytes(f"{ctx.base}/summary.md", summary_markdown(summary).encode())
    return summary


def _row_order(r: dict[str, Any]) -> tuple:
    idx = -1 if r["rewrite_index"] is None else r["rewrite_index"]
    return (r["source_dataset"], r["source_id"], r["stage"], r["kind"], idx, r["attempt"])


def dedupe_and_decontaminate(rows: list[dict[str, Any]], questions: list[dict[str, Any]],
                             decontaminate: bool) -> tuple[list[dict], dict[str, str]]:
    """Keep the first row of each normalised problem; drop rows whose problem (or whose
    source question) overlaps a test question. Returns kept rows and, per dropped
    row_id, the reason."""
    bad_sources = ({q["id"] for q in questions if contaminated(q["question"])}
                   if decontaminate else set())
    seen: set[str] = set()
    kept, dropped = [], {}
    for r in rows:
        key = normalise(r["problem"])
        if decontaminate and (r["source_id"] in bad_sources or contaminated(r["problem"])):
            dropped[r["row_id"]] = RejectReason.CONTAMINATED
        elif key in seen:
            dropped[r["row_id"]] = RejectReason.DUPLICATE
        else:
            seen.add(key)
            kept.append(r)
    return kept, dropped


def final_outcomes(questions: list[dict], invalid: list[dict], s1: Collected, s2: Collected,
                   kept: list[dict], dropped: dict[str, str]) -> list[dict[str, Any]]:
    """Exactly one final record per input question: accepted with n rows, or rejected
    with the reason from the stage (or build step) where it was lost."""
    rows_by_q = Counter(r["source_id"] for r in kept)
    by_q: dict[str, dict] = {}
    for outs in list(s1.outcomes.values()) + list(s2.outcomes.values()):
        for o in outs:
            if o["status"] != "to_stage2":
                by_q[o["question_id"]] = o
    lost: dict[str, Counter] = {}
    all_rows = s1.rows + s2.rows
    for r in all_rows:
        if r["row_id"] in dropped:
            lost.setdefault(r["source_id"], Counter())[dropped[r["row_id"]]] += 1
    final = [{"id": r["id"], "dataset": r["dataset"], "stage": 0, "status": "rejected",
              "reason": r["reason"], "detail": r["detail"], "rows": 0} for r in invalid]
    for q in questions:
        o = by_q.get(q["id"])
        base = {"id": q["id"], "dataset": q["dataset"], "stage": o["stage"] if o else 0}
        if o is None:
            final.append({**base, "status": "rejected", "reason": "missing_outcome",
                          "detail": "no stage reported this question", "rows": 0})
        elif o["status"] == "rejected":
            final.append({**base, "status": "rejected", "reason": o["reason"],
                          "detail": o.get("detail", ""), "rows": 0})
        elif rows_by_q[q["id"]] > 0:
            final.append({**base, "status": "accepted", "reason": "", "detail": "",
                          "rows": rows_by_q[q["id"]]})
        else:
            reason = lost[q["id"]].most_common(1)[0][0] if q["id"] in lost else "missing_rows"
            final.append({**base, "status": "rejected", "reason": reason,
                          "detail": "every row of this question was removed by the build",
                          "rows": 0})
    return final


def _stage_counts(outcomes: dict[int, list[dict]]) -> dict[str, Any]:
    flat = [o for outs in outcomes.values() for o in outs]
    rejected = Counter(o["reason"] for o in flat if o["status"] == "rejected")
    return {
        "in": len(flat),
        "accepted": sum(o["status"] == "accepted" for o in flat),
        "to_stage2": sum(o["status"] == "to_stage2" for o in flat),
        "rejected": dict(sorted(rejected.items())),
        "rewrites_tried": sum(o["rewrites_tried"] for o in flat),
        "rewrites_kept": sum(o["rewrites_kept"] for o in flat),
    }


def summarise(ctx: RunContext, questions: list[dict], invalid: list[dict], s1: Collected,
              s2: Collected, rows: list[dict], kept: list[dict], dropped: dict[str, str],
              final: list[dict]) -> dict[str, Any]:
    engine = s1.engine + s2.engine
    return {
        "fingerprint": ctx.fingerprint,
        "run_uri": ctx.uri,
        "dataset_uri": f"{ctx.uri}/dataset/{ctx.settings.dataset_name}.parquet",
        "teacher": {"provider": ctx.settings.teacher.provider,
                    "model": ctx.settings.teacher.resolved_model},
        "questions_in": len(questions) + len(invalid),
        "ingest": {"valid": len(questions), "invalid": len(invalid),
                   "by_dataset": dict(Counter(q["dataset"] for q in questions))},
        "stage1": _stage_counts(s1.outcomes),
        "stage2": _stage_counts(s2.outcomes),
        "build": {"rows_verified": len(rows), "rows_out": len(kept),
                  "removed": dict(Counter(dropped.values()))},
        "final": {
            "accepted": sum(f["status"] == "accepted" for f in final),
            "rejected": dict(sorted(Counter(f["reason"] for f in final
                                            if f["status"] == "rejected").items())),
        },
        "rows_by_stage": _count(kept, "stage"),
        "rows_by_kind": _count(kept, "kind"),
        "rows_by_persona": _count(kept, "persona"),
        "rows_by_source": _count(kept, "source_dataset"),
        "teacher_calls": {
            "requests": int(engine.get("requests", 0)),
            "prompt_tokens": int(engine.get("prompt_tokens", 0)),
            "completion_tokens": int(engine.get("completion_tokens", 0)),
            "cost_usd": round(float(engine.get("cost_usd", 0.0)), 6),
            "retries": int(engine.get("retries", 0)),
            "ledger_hits": int(engine.get("ledger_hits", 0)),
            "errors": dict(sorted((s1.errors + s2.errors).items())),
            "by_kind": {k[len("requests_"):]: v for k, v in (s1.stats + s2.stats).items()
                        if k.startswith("requests_")},
            "shard_wall_s": round(s1.wall_s + s2.wall_s, 2),
        },
    }


def _count(rows: list[dict], key: str) -> dict[str, int]:
    return dict(sorted(Counter(str(r[key]) if r[key] is not None else "none"
                               for r in rows).items()))


def check_accounting(summary: dict[str, Any]) -> None:
    """Fail loudly unless every question is accounted for exactly once."""
    s1, s2, final = summary["stage1"], summary["stage2"], summary["final"]
    problems = []
    if summary["ingest"]["valid"] != s1["in"]:
        problems.append(f"ingest gave {summary['ingest']['valid']} questions, "
                        f"stage1 saw {s1['in']}")
    if s1["in"] != s1["accepted"] + s1["to_stage2"] + sum(s1["rejected"].values()):
        problems.append("stage1: in != accepted + to_stage2 + rejected")
    if s1["to_stage2"] != s2["in"]:
        problems.append(f"stage1 sent {s1['to_stage2']} to stage2, stage2 saw {s2['in']}")
    if s2["in"] != s2["accepted"] + sum(s2["rejected"].values()):
        problems.append("stage2: in != accepted + rejected")
    total = final["accepted"] + sum(final["rejected"].values())
    if total != summary["questions_in"]:
        problems.append(f"{summary['questions_in']} questions in, {total} accounted for")
    if "missing_outcome" in final["rejected"] or "missing_rows" in final["rejected"]:
        problems.append("some questions have no outcome or lost rows without a reason")
    if problems:
        raise AccountingError("build accounting does not add up: " + "; ".join(problems))
