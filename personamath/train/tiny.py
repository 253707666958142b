"""Tiny offline fixtures for tests and smoke runs: a tokenizer, a model, a dataset.

Nothing here is downloaded: a character-level tokenizer over printable ASCII and a
two-layer Llama with hidden size 32 train a few steps in seconds on a CPU, which is
what the fast tests need to exercise the real TRL/transformers path; the synthetic
rows have the pipeline's output shape (problem, response ending in \\boxed{}, lineage).
"""

from __future__ import annotations

import string
from typing import Any

SPECIALS = ["<unk>", "<pad>", "<s>", "</s>"]


def char_tokenizer() -> Any:
    """A fast tokenizer with one token per printable character; BOS prepended."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    chars = sorted(set(string.printable))
    vocab = {tok: i for i, tok in enumerate(SPECIALS + chars)}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Split(pattern="", behavior="isolated")
    core.post_processor = processors.TemplateProcessing(
        single="<s> $A", special_tokens=[("<s>", vocab["<s>"])])
    core.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(tokenizer_object=core, unk_token="<unk>", pad_token="<pad>",
                                   bos_token="<s>", eos_token="</s>")


def save_tiny_llama(path: str, seed: int = 0) -> str:
    """Save a random Llama (hidden 32, 2 layers) and the char tokenizer to `path`."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = char_tokenizer()
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=1024, bos_token_id=tok.bos_token_id,
                         eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    LlamaForCausalLM(config).save_pretrained(path)
    tok.save_pretrained(path)
    return path


PERSONAS = ("a bakery owner", "a nurse", "a welder", "a farmer")


def synthetic_rows(n: int = 32) -> list[dict[str, Any]]:
    """PersonaMathQA-shaped rows: a persona-flavoured question, a short CoT ending in
    \\boxed{}, and lineage columns (which training ignores)."""
    rows = []
    for i in range(n):
        a, b = 3 + i, 2 + (i % 5)
        who = PERSONAS[i % len(PERSONAS)]
        rows.append({
            "problem": f"As {who}, you pack {a} boxes with {b} items each. "
                       "How many items do you pack?",
            "response": f"Each box holds {b} items and there are {a} boxes.\n"
                        f"So the total is {a} * {b} = {a * b}.\n"
                        f"The answer is \\boxed{{{a * b}}}.",
            "source_id": f"synthetic-{i:03d}", "source_dataset": "gsm8k", "stage": 1,
            "kind": "rewrite", "persona": who,
        })
    return rows


def write_synthetic_dataset(path: str, n: int = 32) -> str:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(synthetic_rows(n)), path)
    return path
