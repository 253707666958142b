"""The whole pipeline (real flows, tasks, store, engine) against the fake HTTP teacher.

The scripted teacher answers known subsets right, wrong, fixed on reflection,
unparsable or truncated; the test predicts every count and checks every row's lineage.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from flows.pipeline import pipeline_flow
from personamath.grading import verify
from personamath.settings import build_settings
from personamath.sources import load_questions
from tests.fakes.fake_teacher import FakeTeacher
from tests.fakes.math_teacher import Behaviour, MathTeacher, Plan

FIX = Path(__file__).parent.parent / "fixtures"
K1, K2 = 2, 3

# group -> (behaviour, stage where it ends, rows it yields, rejection reason)
GROUPS = {
    "A": (Behaviour("right", "right", "right"), 1, 1 + K1, None),
    "B": (Behaviour("right", "right", "wrong"), 1, 1, None),
    "C": (Behaviour("wrong", "right", "right"), 2, 1 + K2, None),
    "D": (Behaviour("wrong", "wrong", "right"), 2, 0, "wrong_after_reflection"),
    "E": (Behaviour("unparsable", "unparsable", "right"), 2, 0, "unparsable_answer"),
    "F": (Behaviour("truncated", "truncated", "right"), 2, 0, "truncated"),
    "G": (Behaviour("wrong", "right", "wrong"), 2, 1 + K2, None),
}
ORDER = "ABCDEFG"


def make_inputs(tmp: Path) -> tuple[list[dict], dict[str, str], list[Plan]]:
    """Sources (50 train questions, 4 malformed rows, a duplicate, a test question) and
    the group of every question."""
    g = load_questions("gsm8k", str(FIX / "gsm8k_train_30.jsonl")).questions
    m = load_questions("math", str(FIX / "math_train_20.jsonl")).questions
    group = {q.id: ORDER[i % len(ORDER)] for i, q in enumerate(sorted(g + m, key=lambda q:
                                                                         (q.dataset, q.id)))}
    plans = [Plan(q.question, q.gold, GROUPS[group[q.id]][0]) for q in g + m]
    dup_of = next(q for q in g if group[q.id] == "B")
    test_q = load_questions("gsm8k", str(FIX / "gsm8k_test_20.jsonl"), "test").questions[3]
    extra = tmp / "extra.jsonl"
    extra.write_text(
        json.dumps({"id": "gsm8k-zdup-1", "question": dup_of.question,
                    "answer": f"#### {dup_of.gold}"}) + "\n"
        + json.dumps({"id": "gsm8k-zleak-1", "question": test_q.question,
                      "answer": f"#### {test_q.gold}"}) + "\n")
    plans.append(Plan(test_q.question, test_q.gold, GROUPS["A"][0]))
    group["gsm8k-zdup-1"] = "dup"
    group["gsm8k-zleak-1"] = "leak"
    sources = [
        {"dataset": "gsm8k", "uri": str(FIX / "gsm8k_train_30.jsonl")},
        {"dataset": "math", "uri": str(FIX / "math_train_20.jsonl")},
        {"dataset": "gsm8k", "uri": str(FIX / "gsm8k_malformed.jsonl")},
        {"dataset": "gsm8k", "uri": str(extra)},
    ]
    return sources, group, plans


def settings_for(url: str, provider: str, store: Path, sources: list[dict]) -> dict:
    return {
        "sources": sources,
        "teacher": {"provider": provider, "base_url": url, "model": "fake-model",
                    "api_key_env": "FAKE_TEACHER_KEY", "concurrency": 4, "max_tokens": 400,
                    "max_retries": 2},
        "k1": K1, "k2": K2, "reflection_attempts": 1, "shard_size": 8,
        "store": f"file://{store}",
    }


def expected(group: dict[str, str]) -> dict:
    n = Counter(group.values())
    s1_in = sum(n.values())
    s1_acc = n["A"] + n["B"] + n["dup"] + n["leak"]
    rejected = Counter({GROUPS[k][3]: n[k] for k in "DEF"})
    rejected.update({"invalid_input": 4, "duplicate": 1, "contaminated": 1})
    rows = sum(GROUPS[k][2] * n[k] for k in ORDER)
    return {"stage1_in": s1_in, "stage1_acc": s1_acc, "to_stage2": s1_in - s1_acc,
            "stage2_acc": n["C"] + n["G"], "rejected": dict(rejected), "rows": rows,
            "accepted": sum(n[k] for k in "ABCG")}


@pytest.fixture()
def key_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_TEACHER_KEY", "sk-test-secret-never-logged")


@pytest.mark.slow
def test_pipeline_openai_counts_lineage_and_idempotent_rerun(tmp_path: Path, key_env: None):
    sources, group, plans = make_inputs(tmp_path)
    with FakeTeacher(MathTeacher(plans)) as fake:
        s = build_settings(settings_for(fake.base_url_openai, "openai", tmp_path / "store",
                                        sources))
        summary = pipeline_flow(settings=s)
        first_requests = fake.count()
        exp = expected(group)
        assert summary["questions_in"] == 50 + 4 + 2
        assert summary["stage1"]["in"] == exp["stage1_in"]
        assert summary["stage1"]["accepted"] == exp["stage1_acc"]
        assert summary["stage1"]["to_stage2"] == exp["to_stage2"]
        assert summary["stage2"]["accepted"] == exp["stage2_acc"]
        assert summary["final"]["accepted"] == exp["accepted"]
        assert summary["final"]["rejected"] == exp["rejected"]
        assert summary["build"]["rows_out"] == exp["rows"]
        assert summary["build"]["removed"] == {"duplicate": 1, "contaminated": 1 + K1}
        calls = summary["teacher_calls"]
        # The summary counts every attempt the engine made. An attempt refused at
        # connect time (a full listen backlog) is retried but never reaches the fake,
        # so it is the one kind of attempt the fake cannot count.
        unseen = calls["errors"].get("connection", 0)
        assert calls["requests"] - unseen == first_requests, calls
        assert calls["retries"] == sum(calls["errors"].values()), calls

        table = pq.read_table(summary["dataset_uri"].removeprefix("file://"))
        check_rows(table.to_pylist(), group, sources)

        fake.reset_counts()
        again = pipeline_flow(settings=s)
        assert fake.count() == 0, "a rerun of the same settings must not call the teacher"
        assert pq.read_table(again["dataset_uri"].removeprefix("file://")).equals(table)
    assert_no_secret_anywhere(tmp_path / "store")


def assert_no_secret_anywhere(store: Path) -> None:
    """The key must reach neither the store (Parquet, manifests, ledger, summaries,
    Prefect results) nor Prefect's database (parameters, logs, artifacts)."""
    import os

    places = list(store.rglob("*"))
    home = Path(os.environ["PREFECT_HOME"])
    places += list(home.rglob("*"))
    checked = 0
    for f in places:
        if f.is_file():
            assert b"sk-test-secret" not in f.read_bytes(), f
            checked += 1
    assert checked > 10


def check_rows(rows: list[dict], group: dict[str, str], sources: list[dict]) -> None:
    """Lineage and verification of every row."""
    golds = {}
    for src in sources:
        for q in load_questions(src["dataset"], src["uri"]).questions:
            golds[q.id] = q.gold
    per_q = Counter(r["source_id"] for r in rows)
    for qid, g in group.items():
        if g in GROUPS:
            assert per_q[qid] == GROUPS[g][2], (qid, g)
    for r in rows:
        g = group[r["source_id"]]
        assert r["gold_answer"] == golds[r["source_id"]]
        assert verify(golds[r["source_id"]], r["response"], r["source_dataset"]).correct
        assert r["verdict"] == "correct"
        assert r["stage"] == (1 if g in "AB" else 2)
        assert r["teacher_model"] == "fake-model" and r["teacher_provider"] == "openai"
        if r["kind"] == "rewrite":
            assert r["persona"] and r["persona_occupation"]
            assert r["rewrite_index"] is not None and r["problem"].startswith("[rewritten for")
            assert r["attempt"] == (1 if g == "G" else 0)
        else:
            assert r["persona"] is None and r["attempt"] == (1 if g in "CG" else 0)
        assert "sk-test-secret" not in json.dumps(r)


@pytest.mark.slow
def test_pipeline_anthropic_endpoint(tmp_path: Path, key_env: None):
    g = load_questions("gsm8k", str(FIX / "gsm8k_train_30.jsonl")).questions[:7]
    plans = [Plan(q.question, q.gold, GROUPS[ORDER[i]][0]) for i, q in enumerate(g)]
    src = tmp_path / "seven.jsonl"
    src.write_text("".join(json.dumps({"id": q.id, "question": q.question,
                                       "answer": f"#### {q.gold}"}) + "\n" for q in g))
    with FakeTeacher(MathTeacher(plans)) as fake:
        s = build_settings(settings_for(fake.base_url_anthropic, "anthropic",
                                        tmp_path / "store", [{"dataset": "gsm8k",
                                                              "uri": str(src)}]))
        summary = pipeline_flow(settings=s)
        assert fake.count(route="anthropic") == fake.count() > 0
    assert summary["stage1"]["accepted"] == 2
    assert summary["stage2"]["accepted"] == 2
    assert summary["final"]["rejected"] == {"truncated": 1, "unparsable_answer": 1,
                                            "wrong_after_reflection": 1}
    assert summary["build"]["rows_out"] == (1 + K1) + 1 + 2 * (1 + K2)


@pytest.mark.slow
def test_same_settings_new_store_is_not_answered_from_the_cache(tmp_path: Path,
                                                               key_env: None) -> None:
    """Prefect's cache must not stand in for data that is not in *this* store."""
    g = load_questions("gsm8k", str(FIX / "gsm8k_train_30.jsonl")).questions[:3]
    plans = [Plan(q.question, q.gold, GROUPS["A"][0]) for q in g]
    src = [{"dataset": "gsm8k", "uri": str(FIX / "gsm8k_train_30.jsonl"), "limit": 3}]
    with FakeTeacher(MathTeacher(plans)) as fake:
        for name in ("one", "two"):
            s = build_settings(settings_for(fake.base_url_openai, "openai", tmp_path / name,
                                            src))
            summary = pipeline_flow(settings=s)
            assert summary["build"]["rows_out"] == 3 * (1 + K1)
            assert Path(summary["dataset_uri"].removeprefix("file://")).exists()
