"""The SFT prompt template and the tokenisation that decides which tokens carry loss.

Training and evaluation must format a problem identically, or the evaluated model
sees a prompt it was never trained on; both import `format_prompt` from here, and
`TEMPLATE_VERSION` enters every fingerprint so that a template change means new
checkpoints and new generations, never a silent mix.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

TEMPLATE_VERSION = "alpaca-noinput-v1"

ALPACA_NO_INPUT = (
    "Below is an instruction that describes a task. "
    "Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n{problem}\n\n### Response:\n"
)

# Where a greedy decoder should stop: the start of a new Alpaca turn. EOS is handled
# by each backend itself.
STOP_SEQUENCES: tuple[str, ...] = ("### Instruction:", "\n\n### ", "</s>", "<|im_end|>")

IGNORE_INDEX = -100  # the label PyTorch's cross-entropy skips


def format_prompt(problem: str) -> str:
    """The prompt for one problem (PersonaMath's Alpaca no-input template)."""
    return ALPACA_NO_INPUT.format(problem=problem.strip())


def cut_at_stop(text: str, stops: tuple[str, ...] | list[str] = STOP_SEQUENCES) -> str:
    """Cut a generation at the first stop sequence (backends that cannot stop on
    strings themselves still return the same text as those that can)."""
    cut = len(text)
    for stop in stops:
        idx = text.find(stop)
        if idx >= 0:
            cut = min(cut, idx)
    return text[:cut]


@dataclass(frozen=True)
class Example:
    """One tokenised training example; `labels` is -100 on every prompt token."""

    input_ids: list[int]
    labels: list[int]
    truncated: bool

    def to_dict(self) -> dict[str, Any]:
        return {"input_ids": self.input_ids, "labels": self.labels,
                "attention_mask": [1] * len(self.input_ids)}


def build_example(tokenizer: Any, problem: str, response: str,
                  max_length: int) -> Example | None:
    """Tokenise prompt and response separately so the boundary is exact: the prompt
    gets label -100 (no loss), the response keeps its ids and ends with EOS so the
    model learns to stop. Too-long responses are cut at `max_length`; a prompt that
    alone fills `max_length` leaves nothing to learn from and returns None."""
    prompt_ids = list(tokenizer(format_prompt(problem))["input_ids"])
    response_ids = list(tokenizer(response.strip(), add_special_tokens=False)["input_ids"])
    if tokenizer.eos_token_id is None:
        raise ValueError("the tokenizer has no EOS token; the model could never learn to stop")
    response_ids.append(tokenizer.eos_token_id)
    if len(prompt_ids) >= max_length:
        return None
    ids = prompt_ids + response_ids
    truncated = len(ids) > max_length
    ids = ids[:max_length]
    labels = [IGNORE_INDEX] * len(prompt_ids) + ids[len(prompt_ids):]
    return Example(input_ids=ids, labels=labels, truncated=truncated)

