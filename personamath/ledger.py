"""A request ledger on the artifact store: replies are checkpointed as they arrive, so
a shard that crashes (or fails on one question) and is run again re-sends only the
requests whose replies were not yet saved — nobody pays twice for the same answer.

Objects are append-only chunks (`{prefix}/chunk-<token>-<n>.jsonl`), because S3 cannot
append; a chunk is written every `flush_every` replies and when the shard ends.
"""

from __future__ import annotations

import json
import threading
import uuid
from dataclasses import asdict
from typing import Any

from personamath.llm.types import ChatResponse, Usage
from storage import ArtifactStore


def response_to_dict(resp: ChatResponse) -> dict[str, Any]:
    d = asdict(resp)
    d.pop("from_ledger", None)
    return d


def response_from_dict(d: dict[str, Any]) -> ChatResponse:
    usage = Usage(**d.pop("usage"))
    return ChatResponse(usage=usage, **d)


class StoreLedger:
    """Implements the engine's Ledger protocol (get/put) over an ArtifactStore."""

    def __init__(self, store: ArtifactStore, prefix: str, flush_every: int = 1) -> None:
        self.store = store
        self.prefix = prefix
        self.flush_every = max(1, flush_every)
        self._token = uuid.uuid4().hex[:10]
        self._n = 0
        self._pending: list[str] = []
        self._lock = threading.Lock()
        self._replies: dict[str, dict[str, Any]] = {}
        self._load()

    def _load(self) -> None:
        for key in self.store.list(self.prefix):
            if not key.endswith(".jsonl"):
                continue
            for line in self.store.read_bytes(key).decode().splitlines():
                try:
                    rec = json.loads(line)
                    self._replies[rec["key"]] = rec["response"]
                except (ValueError, KeyError):
                    continue  # a torn line from a crash: that reply is simply re-requested

    def __len__(self) -> int:
        return len(self._replies)

    def get(self, key: str) -> ChatResponse | None:
        with self._lock:
            rec = self._replies.get(key)
        return response_from_dict(dict(rec)) if rec is not None else None

    def put(self, key: str, resp: ChatResponse) -> None:
        rec = response_to_dict(resp)
        with self._lock:
            self._replies[key] = rec
            self._pending.append(json.dumps({"key": key, "response": rec}))
            if len(self._pending) >= self.flush_every:
                self._flush_locked()

    def flush(self) -> None:
        with self._lock:
            self._flush_locked()

    def _flush_locked(self) -> None:
        if not self._pending:
            return
        self._n += 1
        body = ("\n".join(self._pending) + "\n").encode()
        self.store.write_bytes(f"{self.prefix}/chunk-{self._token}-{self._n:05d}.jsonl", body)
        self._pending.clear()
