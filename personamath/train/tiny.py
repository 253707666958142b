"""A tiny offline tokenizer and randomly initialised Llama, for tests and smoke runs.

Nothing here is downloaded: a character-level tokenizer over printable ASCII and a
two-layer Llama with hidden size 32 train a few steps in seconds on a CPU, which is
what the fast tests need to exercise the real TRL/transformers path.
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
