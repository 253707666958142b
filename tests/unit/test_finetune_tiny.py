"""The real TRL path on a tiny random Llama (hidden 32, 2 layers): loss falls, the
model is saved to the store and reloads, a crashed run resumes from the checkpoint in
the store, a finished run is not trained again, LoRA merges, and the pipeline trigger
runs fine-tune then evaluation in-process."""

from __future__ import annotations

import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from personamath.train.settings import FinetuneSettings

if os.environ.get("PERSONAMATH_REQUIRE_TRAIN") != "1":
    pytest.importorskip("torch")
    pytest.importorskip("trl")

pytestmark = pytest.mark.train


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> str:
    from personamath.train.tiny import save_tiny_llama

    return save_tiny_llama(str(tmp_path_factory.mktemp("tiny") / "model"))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> str:
    rows = [{"problem": f"What is {i} plus {i}?", "response": f"{i}+{i}={2 * i}, so the "
             f"answer is \\boxed{{{2 * i}}}.", "source_id": f"q{i}", "stage": 1}
            for i in range(32)]
    path = tmp_path_factory.mktemp("data") / "personamathqa.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    return str(path)


def _settings(dataset: str, model: str, tmp_path, **kw) -> FinetuneSettings:
    base = {"dataset_uri": dataset, "base_model": model, "store": str(tmp_path / "store"),
            "max_steps": 8, "per_device_batch_size": 8, "gradient_accumulation_steps": 1,
            "learning_rate": 3e-3, "logging_steps": 1, "max_length": 256, "save_steps": 100,
            "work_dir": str(tmp_path / "work")}
    return FinetuneSettings(**{**base, **kw})


def test_tiny_llama_trains_saves_and_reloads(dataset, tiny_model, tmp_path) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    from personamath.train.finetune import run_finetune
    from personamath.train.modelio import MODEL_CARD, resolve_model

    result = run_finetune(_settings(dataset, tiny_model, tmp_path))
    assert result.steps == 8 and result.steps_this_run == 8 and result.examples == 32
    assert len(result.losses) == 8
    assert sum(result.losses[-2:]) < sum(result.losses[:2])  # epoch 2 < epoch 1 (same rows)

    local = resolve_model(result.model_uri)
    assert os.path.exists(os.path.join(local.path, MODEL_CARD))
    trained = AutoModelForCausalLM.from_pretrained(local.path)
    initial = AutoModelForCausalLM.from_pretrained(tiny_model)
    name, weight = next(iter(trained.state_dict().items()))
    assert not torch.equal(weight, initial.state_dict()[name])

    again = run_finetune(_settings(dataset, tiny_model, tmp_path))
    assert again.already_done and again.steps_this_run == 0
    assert again.fingerprint == result.fingerprint


def test_a_crashed_run_resumes_from_the_stored_checkpoint(dataset, tiny_model, tmp_path) -> None:
    from transformers import TrainerCallback

    from personamath.train.finetune import run_finetune

    class Crash(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 3:
                raise RuntimeError("preempted")

    settings = _settings(dataset, tiny_model, tmp_path, save_steps=2)
    with pytest.raises(RuntimeError, match="preempted"):
        run_finetune(settings, callbacks=[Crash()])
    # A retry on another machine: empty local scratch, same store.
    retry = settings.model_copy(update={"work_dir": str(tmp_path / "other-machine")})
    result = run_finetune(retry)
    assert result.resumed_from == "checkpoint-2"
    assert result.steps == 8 and result.steps_this_run == 6


def test_lora_trains_and_saves_a_merged_model(dataset, tiny_model, tmp_path) -> None:
    from transformers import AutoModelForCausalLM

    from personamath.train.finetune import run_finetune
    from personamath.train.modelio import resolve_model

    result = run_finetune(_settings(dataset, tiny_model, tmp_path, lora=True, lora_r=4,
                                    gradient_checkpointing=True,
                                    lora_alpha=8, max_steps=4))
    assert result.steps == 4 and result.losses
    merged = AutoModelForCausalLM.from_pretrained(resolve_model(result.model_uri).path)
    assert not any("lora" in k for k in merged.state_dict())


def test_accelerate_command_uses_the_named_config(tmp_path) -> None:
    from personamath.train.finetune import accelerate_command

    s = FinetuneSettings(dataset_uri="d", accelerate_config="deepspeed_zero3", num_processes=8)
    cmd = accelerate_command(s, "/tmp/s.json")
    assert cmd[1:3] == ["-m", "accelerate.commands.launch"]
    assert cmd[cmd.index("--num_processes") + 1] == "8"
    config = cmd[cmd.index("--config_file") + 1]
    assert config.endswith("deployments/accelerate/deepspeed_zero3.yaml")
    assert os.path.exists(config)
    assert cmd[-2:] == ["personamath.train.finetune", "/tmp/s.json"]


def test_trigger_runs_finetune_then_evaluate_in_process(dataset, tiny_model, tmp_path) -> None:
    from flows.finetune import run_training_and_eval

    ft = _settings(dataset, tiny_model, tmp_path, max_steps=2)
    out = run_training_and_eval(
        dataset, finetune=ft,
        evaluate={"benchmarks": ["gsm8k", "math500"], "limit": 2, "max_new_tokens": 4,
                  "n_threads": 1},
        use_deployments=False)
    assert out["finetune"]["steps"] == 2
    ev = out["evaluate"]
    assert ev["model"] == out["finetune"]["model_uri"]
    assert ev["questions"] == 4 and ev["generated"] == 4
    assert set(ev["accuracy"]) == {"gsm8k", "math500"}


def test_cli_finetune_then_evaluate(dataset, tiny_model, tmp_path) -> None:
    import json

    from typer.testing import CliRunner

    from personamath.train.cli import train_app

    store = f"file://{tmp_path / 'store'}"
    runner = CliRunner()
    ft = runner.invoke(train_app, ["finetune", "--dataset", dataset, "--model", tiny_model,
                                   "--store", store, "--max-steps", "2", "--batch-size", "8",
                                   "--grad-accum", "1", "--max-length", "256", "--no-prefect"])
    assert ft.exit_code == 0, ft.output
    model_uri = json.loads(ft.output[ft.output.rindex("{\n \""):])["model_uri"]
    args = ["evaluate", "--model", model_uri, "--benchmark", "gsm8k", "--limit", "2",
            "--max-new-tokens", "4", "--store", store, "--no-prefect"]
    ev = runner.invoke(train_app, args)
    assert ev.exit_code == 0, ev.output
    out = json.loads(ev.output[ev.output.rindex("{\n \""):])
    assert out["questions"] == 2 and out["generated"] == 2 and "gsm8k" in out["accuracy"]
