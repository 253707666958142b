"""Evaluation with a scripted generator (no model): generations are stored in shards,
a rerun generates nothing, a larger limit generates only the new questions, and the
per-question Parquet, metrics, plot and report are written."""

from __future__ import annotations

import pytest

from personamath.train.backends import Generation
from personamath.train.evaluate import load_benchmark, run_evaluation
from personamath.train.report import table_rows
from personamath.train.settings import EvalSettings
from storage.store import ArtifactStore


class ScriptedGenerator:
    """Answers every other question correctly (with the gold in a box)."""

    def __init__(self) -> None:
        self.prompts: list[str] = []
        self.gold = {q.question: q.gold for b in ("gsm8k", "math500")
                     for q in load_benchmark(b, 10)}

    def generate(self, prompts: list[str]) -> list[Generation]:
        out = []
        for p in prompts:
            self.prompts.append(p)
            problem = p.split("### Instruction:\n", 1)[1].rsplit("\n\n### Response:", 1)[0]
            right = len(self.prompts) % 2 == 1
            answer = self.gold[problem] if right else "-12345"
            out.append(Generation(f"Working... so \\boxed{{{answer}}}", "stop", 7))
        return out


@pytest.fixture()
def settings(tmp_path) -> EvalSettings:
    return EvalSettings(model="scripted", store=str(tmp_path / "store"),
                        benchmarks=["gsm8k", "math500"], limit=4, shard_size=3, batch_size=2)


def test_generations_are_stored_and_never_regenerated(settings) -> None:
    gen = ScriptedGenerator()
    first = run_evaluation(settings, generator=gen)
    assert (first.questions, first.generated, first.reused) == (8, 8, 0)
    assert len(gen.prompts) == 8 and all(p.endswith("### Response:\n") for p in gen.prompts)
    assert first.accuracy == {"gsm8k": 0.5, "math500": 0.5}

    again = run_evaluation(settings, generator=gen)
    assert (again.generated, again.reused) == (0, 8) and len(gen.prompts) == 8
    assert again.accuracy == first.accuracy

    more = run_evaluation(settings.model_copy(update={"limit": 6}), generator=gen)
    assert (more.questions, more.generated, more.reused) == (12, 4, 8)
    assert len(gen.prompts) == 12


def test_outputs_per_question_metrics_plot_report(settings) -> None:
    result = run_evaluation(settings, generator=ScriptedGenerator())
    store = ArtifactStore(settings.store)
    key = result.results_uri[len(settings.store) + 1:]
    table = store.read_table(key)
    assert table.num_rows == 8
    for col in ("question", "response", "extracted", "verdict", "reason", "level", "subject"):
        assert col in table.column_names
    assert set(table.column("verdict").to_pylist()) <= {"correct", "incorrect", "error"}
    m = result.metrics
    assert m["overall"]["n"] == 8 and "math500" in m["by_level"] and "math500" in m["by_subject"]
    assert sum(c["n"] for c in m["by_level"]["math500"].values()) == 4
    png = store.read_bytes(result.plot_uri[len(settings.store) + 1:])
    assert png.startswith(b"\x89PNG")
    report = store.read_bytes(result.report_uri[len(settings.store) + 1:]).decode()
    assert "## math500 by level" in report and "Overall: 50.0%" in report
    assert {r["group"] for r in table_rows(m)} == {"all", "subject", "level"}


def test_a_crash_keeps_the_committed_shards(settings) -> None:
    class Crashing(ScriptedGenerator):
        def generate(self, prompts: list[str]) -> list[Generation]:
            if len(self.prompts) >= 4:
                raise RuntimeError("worker lost")
            return super().generate(prompts)

    with pytest.raises(RuntimeError):
        run_evaluation(settings, generator=Crashing())
    gen = ScriptedGenerator()
    result = run_evaluation(settings, generator=gen)
    assert result.reused == 3 and result.generated == 5  # shard 0 (3 rows) survived


def test_a_grader_failure_is_an_error_not_a_wrong_answer(settings, monkeypatch) -> None:
    import personamath.train.evaluate as ev

    def broken(gold: str, response: str, dataset: str | None = None):
        raise RecursionError("deeply nested latex")

    monkeypatch.setattr(ev, "verify", broken)
    result = run_evaluation(settings, generator=ScriptedGenerator())
    overall = result.metrics["overall"]
    assert overall["errors"] == overall["n"] == 8 and overall["correct"] == 0
