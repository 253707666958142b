"""Settings validation, fingerprints, and source loading with row-level rejections."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from personamath.prompts import versions
from personamath.settings import SettingsError, build_settings, demo_settings, load_settings
from personamath.sources import SourceError, last_box, load_questions

FIX = Path(__file__).parent.parent / "fixtures"


def test_invalid_setting_is_named() -> None:
    with pytest.raises(SettingsError, match=r"teacher\.temperature"):
        demo_settings(**{"teacher.temperature": 5})
    with pytest.raises(SettingsError, match=r"invalid setting k1"):
        demo_settings(k1=-1)
    with pytest.raises(SettingsError, match=r"shard_sizee"):
        demo_settings(shard_sizee=3)
    with pytest.raises(SettingsError, match="sources"):
        build_settings({"sources": []})


def test_missing_key_is_reported_with_variable_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    s = demo_settings(**{"teacher.provider": "openai"})
    with pytest.raises(SettingsError, match="OPENAI_API_KEY"):
        s.teacher.check_key()
    monkeypatch.setenv("OPENAI_API_KEY", "sk-x")
    s.teacher.check_key()
    local = demo_settings(**{"teacher.provider": "openai", "teacher.base_url": "http://x/v1"})
    local.teacher.check_key()  # a local OpenAI-compatible server needs no key


def test_fingerprint_tracks_outputs_not_operations() -> None:
    v = versions()
    base = demo_settings().fingerprint(v)
    assert demo_settings().fingerprint(v) == base
    assert demo_settings(**{"teacher.concurrency": 7}).fingerprint(v) == base
    assert demo_settings(**{"teacher.model": "other"}).fingerprint(v) != base
    assert demo_settings(k1=5).fingerprint(v) != base
    assert demo_settings().fingerprint({**v, "grader": "grader-x"}) != base


def test_yaml_config_and_overrides(tmp_path: Path) -> None:
    cfg = tmp_path / "run.yaml"
    cfg.write_text("sources:\n  - {dataset: gsm8k, uri: builtin:demo/gsm8k}\nk1: 4\n")
    s = load_settings(cfg, {"teacher.max_tokens": 99})
    assert s.k1 == 4 and s.teacher.max_tokens == 99 and s.store.startswith("file://")
    with pytest.raises(SettingsError, match="not found"):
        load_settings(tmp_path / "missing.yaml")


def test_sources_reject_malformed_rows_with_reasons() -> None:
    res = load_questions("gsm8k", str(FIX / "gsm8k_malformed.jsonl"))
    assert res.questions == []
    reasons = {r.id: r.detail for r in res.rejections}
    assert reasons["bad-missing-answer"] == "missing answer"
    assert reasons["bad-empty-question"] == "empty question"
    assert "unparsable GSM8K gold" in reasons["bad-gold"]
    assert any("not valid JSON" in d for d in reasons.values())
    assert all(r.reason == "invalid_input" for r in res.rejections)


def test_sources_gold_answers_and_limits(tmp_path: Path) -> None:
    g = load_questions("gsm8k", str(FIX / "gsm8k_train_30.jsonl"), limit=5)
    assert len(g.questions) == 5 and all(q.gold.lstrip("-").replace(".", "").isdigit()
                                         for q in g.questions)
    m = load_questions("math", str(FIX / "math_test_20.jsonl"), "test")
    assert len(m.questions) == 20 and all(q.level and q.subject for q in m.questions)
    pq_path = tmp_path / "q.parquet"
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist([{"question": "1+1?", "answer": "#### 2"}]), pq_path)
    assert load_questions("gsm8k", str(pq_path)).questions[0].gold == "2"
    with pytest.raises(SourceError, match="not found"):
        load_questions("gsm8k", str(tmp_path / "nope.jsonl"))
    with pytest.raises(SourceError, match="builtin"):
        load_questions("gsm8k", "builtin:nope")


def test_builtin_sets_are_complete() -> None:
    assert len(load_questions("gsm8k", "builtin:gsm8k/test", "test").questions) == 1319
    assert len(load_questions("math", "builtin:math/test", "test").questions) == 5000
    assert len(load_questions("math", "builtin:math/math500", "test").questions) == 500
    demo = load_questions("gsm8k", "builtin:demo/gsm8k").questions + load_questions(
        "math", "builtin:demo/math").questions
    assert len(demo) == 24


@pytest.mark.parametrize("text,want", [
    ("so \\boxed{\\frac{1}{2}}.", "\\frac{1}{2}"),
    ("\\boxed{a} then \\boxed{{b}}", "{b}"),
    ("\\boxed 5$", "5"),
    ("\\fbox{7}", "7"),
    ("no box", None),
])
def test_last_box(text: str, want: str | None) -> None:
    assert last_box(text) == want


def test_duplicate_ids_in_one_source_are_rejected(tmp_path: Path) -> None:
    p = tmp_path / "d.jsonl"
    p.write_text("\n".join(json.dumps({"id": "x", "question": f"q{i}", "answer": "#### 1"})
                           for i in range(2)))
    res = load_questions("gsm8k", str(p))
    assert len(res.questions) == 1 and res.rejections[0].detail == "duplicate id in the input"


@pytest.mark.parametrize("name", ["openai", "vllm", "anthropic"])
def test_example_configs_are_valid(name: str) -> None:
    path = Path(__file__).parent.parent.parent / "docs" / "examples" / f"{name}.yaml"
    s = load_settings(path)
    assert s.sources and s.teacher.provider in {"openai", "anthropic"}
