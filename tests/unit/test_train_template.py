"""The SFT template and label masking: prompt tokens carry no loss, the response
keeps its ids and ends with EOS; and the core import never pulls in torch."""

from __future__ import annotations

import subprocess
import sys

import pytest

from personamath.train.settings import EvalSettings, FinetuneSettings
from personamath.train.template import (
    IGNORE_INDEX,
    STOP_SEQUENCES,
    build_example,
    cut_at_stop,
    format_prompt,
)


def test_prompt_is_the_alpaca_no_input_template() -> None:
    p = format_prompt("  What is 2+2?\n")
    assert p.startswith("Below is an instruction that describes a task. Write a response "
                        "that appropriately completes the request.\n\n")
    assert p.endswith("### Instruction:\nWhat is 2+2?\n\n### Response:\n")


@pytest.fixture(scope="module")
def tokenizer():
    pytest.importorskip("tokenizers")
    pytest.importorskip("transformers")
    from personamath.train.tiny import char_tokenizer

    return char_tokenizer()


def test_prompt_tokens_are_masked_and_response_ends_with_eos(tokenizer) -> None:
    problem, response = "What is 2+2?", "2+2=4, so \\boxed{4}."
    ex = build_example(tokenizer, problem, response, max_length=512)
    prompt_ids = tokenizer(format_prompt(problem))["input_ids"]
    n = len(prompt_ids)
    assert ex.input_ids[:n] == prompt_ids
    assert ex.labels[:n] == [IGNORE_INDEX] * n
    assert ex.labels[n:] == ex.input_ids[n:]
    assert IGNORE_INDEX not in ex.labels[n:]
    assert ex.input_ids[-1] == tokenizer.eos_token_id
    assert tokenizer.decode(ex.input_ids[n:-1]) == response
    assert not ex.truncated
    assert ex.to_dict()["attention_mask"] == [1] * len(ex.input_ids)


def test_long_response_is_truncated_and_prompt_alone_too_long_is_dropped(tokenizer) -> None:
    n = len(tokenizer(format_prompt("q"))["input_ids"])
    ex = build_example(tokenizer, "q", "x" * 100, max_length=n + 10)
    assert ex is not None and ex.truncated and len(ex.input_ids) == n + 10
    assert ex.labels[:n] == [IGNORE_INDEX] * n and ex.labels[n:] == ex.input_ids[n:]
    assert build_example(tokenizer, "q", "x", max_length=n) is None


def test_cut_at_stop_keeps_text_before_the_first_stop() -> None:
    assert cut_at_stop("so \\boxed{4}.\n\n### Instruction:\nnext") == "so \\boxed{4}."
    assert cut_at_stop("no stop here") == "no stop here"
    assert "### Instruction:" in STOP_SEQUENCES


def test_fingerprints_follow_outputs_not_plumbing() -> None:
    base = FinetuneSettings(dataset_uri="d.parquet", store="/tmp/x")
    assert base.store == "file:///tmp/x"
    fp = base.fingerprint("digest", "model")
    assert base.model_copy(update={"logging_steps": 1, "work_dir": "/w"}).fingerprint(
        "digest", "model") == fp
    assert base.model_copy(update={"learning_rate": 1e-5}).fingerprint("digest", "model") != fp
    assert base.fingerprint("other-data", "model") != fp
    ev = EvalSettings(model="m")
    assert ev.generation_fingerprint("a") != ev.generation_fingerprint("b")
    assert ev.model_copy(update={"batch_size": 1}).generation_fingerprint("a") == \
        ev.generation_fingerprint("a")
    with pytest.raises(ValueError):
        EvalSettings(model="m", benchmarks=["gsm8k", "aime"])


def test_paper_recipe_defaults() -> None:
    s = FinetuneSettings(dataset_uri="d")
    assert (s.epochs, s.learning_rate, s.lr_scheduler, s.warmup_ratio, s.max_length,
            s.weight_decay, s.lora) == (3.0, 2e-5, "cosine", 0.03, 4096, 0.0, False)


def test_importing_the_core_does_not_import_torch() -> None:
    code = ("import sys, personamath, personamath.train, personamath.train.cli, "
            "personamath.train.finetune, personamath.train.evaluate, personamath.train.backends;"
            "heavy = [m for m in ('torch', 'transformers', 'trl', 'peft', 'vllm', 'llama_cpp')"
            " if m in sys.modules]; print(heavy); sys.exit(1 if heavy else 0)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
