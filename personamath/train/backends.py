"""Greedy generation backends for evaluation: transformers, llama.cpp, vLLM.

One small protocol (`generate(prompts) -> [Generation]`) and a factory, so the
evaluation loop does not care which engine runs. Every backend decodes greedily,
stops at the same stop sequences (and EOS), and returns text cut at the first stop,
so switching backends changes speed, not the meaning of a generation. Engines are
imported inside the factory: none is needed to import this module.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Protocol

from personamath.train.modelio import LocalModel, load_causal_lm, load_tokenizer
from personamath.train.settings import EvalSettings
from personamath.train.template import cut_at_stop


@dataclass(frozen=True)
class Generation:
    text: str
    finish_reason: str  # "stop" (EOS or a stop sequence) | "length"
    completion_tokens: int


class Generator(Protocol):
    def generate(self, prompts: list[str]) -> list[Generation]: ...


class TransformersGenerator:
    """Batched `model.generate` with left padding (CPU or GPU)."""

    def __init__(self, local: LocalModel, settings: EvalSettings) -> None:
        import torch

        if settings.n_threads:
            torch.set_num_threads(settings.n_threads)
        self.settings = settings
        self.tokenizer = load_tokenizer(local)
        self.tokenizer.padding_side = "left"
        self.model = load_causal_lm(local, settings.dtype).eval()
        if torch.cuda.is_available():
            self.model = self.model.to("cuda")

    def generate(self, prompts: list[str]) -> list[Generation]:
        import torch

        s, tok = self.settings, self.tokenizer
        batch = tok(prompts, return_tensors="pt", padding=True).to(self.model.device)
        with torch.inference_mode():
            out = self.model.generate(
                **batch, do_sample=False, max_new_tokens=s.max_new_tokens,
                stop_strings=s.stop, tokenizer=tok, pad_token_id=tok.pad_token_id,
            )
        new = out[:, batch["input_ids"].shape[1]:]
        return [self._one(row) for row in new]

    def _one(self, ids: Any) -> Generation:
        """Tokens up to the first EOS (generate pads finished rows, and the pad token
        is often EOS itself), decoded and cut at the first stop sequence."""
        tok, ids = self.tokenizer, ids.tolist()
        ended = tok.eos_token_id in ids
        if ended:
            ids = ids[:ids.index(tok.eos_token_id)]
        while ids and ids[-1] == tok.pad_token_id:
            ids.pop()
        raw = tok.decode(ids, skip_special_tokens=True)
        text = cut_at_stop(raw, self.settings.stop)
        stopped = ended or text != raw or len(ids) < self.settings.max_new_tokens
        return Generation(text, "stop" if stopped else "length", len(ids))


class LlamaCppGenerator:
    """llama-cpp-python on a GGUF file (CPU); one prompt at a time."""

    def __init__(self, local: LocalModel, settings: EvalSettings) -> None:
        from llama_cpp import Llama

        if not local.gguf_file:
            raise ValueError("the llama.cpp backend needs a .gguf model file")
        self.settings = settings
        self.llm = Llama(model_path=local.gguf_path, n_ctx=settings.n_ctx, verbose=False,
                         n_threads=settings.n_threads or os.cpu_count(), seed=0)

    def generate(self, prompts: list[str]) -> list[Generation]:
        return [self._one(p) for p in prompts]

    def _one(self, prompt: str) -> Generation:
        s = self.settings
        out = self.llm.create_completion(prompt, max_tokens=s.max_new_tokens, temperature=0.0,
                                         top_k=1, stop=s.stop)
        choice = out["choices"][0]
        return Generation(cut_at_stop(choice["text"], s.stop),
                          "length" if choice.get("finish_reason") == "length" else "stop",
                          int(out.get("usage", {}).get("completion_tokens", 0)))


class VllmGenerator:
    """vLLM on GPUs (the `gpu` extra): all prompts of a shard in one call."""

    def __init__(self, local: LocalModel, settings: EvalSettings) -> None:
        from vllm import LLM, SamplingParams

        if local.gguf_file:
            model, tokenizer = local.gguf_path, None
        else:
            model, tokenizer = local.path, local.path
        self.settings = settings
        self.llm = LLM(model=model, tokenizer=tokenizer, dtype=settings.dtype,
                       tensor_parallel_size=settings.tensor_parallel_size,
                       gpu_memory_utilization=settings.gpu_memory_utilization,
                       max_model_len=settings.n_ctx, seed=0)
        self.params = SamplingParams(temperature=0.0, max_tokens=settings.max_new_tokens,
                                     stop=settings.stop)

    def generate(self, prompts: list[str]) -> list[Generation]:
        outs = self.llm.generate(prompts, self.params, use_tqdm=False)
        return [Generation(cut_at_stop(o.outputs[0].text, self.settings.stop),
                           "length" if o.outputs[0].finish_reason == "length" else "stop",
                           len(o.outputs[0].token_ids)) for o in outs]


BACKENDS: dict[str, type] = {
    "transformers": TransformersGenerator,
    "llamacpp": LlamaCppGenerator,
    "vllm": VllmGenerator,
}


def make_generator(local: LocalModel, settings: EvalSettings) -> Generator:
    """The backend named in settings, with a clear message when its engine is missing."""
    extra = {"transformers": "train", "llamacpp": "local", "vllm": "gpu"}[settings.backend]
    try:
        return BACKENDS[settings.backend](local, settings)
    except ImportError as err:
        raise RuntimeError(f"backend {settings.backend!r} needs `pip install "
                           f"personamath[{extra}]` ({err})") from None
