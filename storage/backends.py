"""Filesystem backends for ArtifactStore: a local folder or S3 through pyarrow.

S3 settings come from the standard AWS environment (AWS_ENDPOINT_URL, AWS_REGION,
AWS_ACCESS_KEY_ID, ...) so MinIO, Ceph RadosGW and AWS all work unchanged.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from pyarrow import fs as pafs

T = TypeVar("T")

TRANSIENT_MARKERS = ("SlowDown", "503", "Connection reset", "timed out", "Timeout",
                     "connection refused", "Couldn't connect", "curlCode: 7", "RequestTimeout",
                     "InternalError", "ServiceUnavailable", "Unable to connect")


def make_filesystem(uri: str) -> tuple[pafs.FileSystem, str]:
    """(filesystem, root path) for a file:// or s3:// URI."""
    if uri.startswith("file://"):
        root = Path(uri[len("file://"):]).expanduser().resolve()
        root.mkdir(parents=True, exist_ok=True)
        return pafs.LocalFileSystem(), str(root)
    if uri.startswith("s3://"):
        return s3_filesystem(), uri[len("s3://"):].rstrip("/")
    raise ValueError(f"unsupported store URI {uri!r}: use file:// or s3://")


def s3_filesystem() -> pafs.S3FileSystem:
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    kwargs: dict[str, object] = {
        "region": os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1",
        "connect_timeout": 5,
        "request_timeout": 30,
    }
    if endpoint:
        scheme, _, host = endpoint.partition("://")
        kwargs["endpoint_override"] = host or endpoint
        kwargs["scheme"] = scheme if host else "https"
        kwargs["force_virtual_addressing"] = False
    if os.environ.get("AWS_ACCESS_KEY_ID"):
        kwargs["access_key"] = os.environ["AWS_ACCESS_KEY_ID"]
        kwargs["secret_key"] = os.environ.get("AWS_SECRET_ACCESS_KEY", "")
        if os.environ.get("AWS_SESSION_TOKEN"):
            kwargs["session_token"] = os.environ["AWS_SESSION_TOKEN"]
    return pafs.S3FileSystem(**kwargs)


def is_transient(err: BaseException) -> bool:
    text = str(err)
    return any(m.lower() in text.lower() for m in TRANSIENT_MARKERS)


def call_with_retries(fn: Callable[[], T], attempts: int = 4, base: float = 0.5) -> T:
    """Retry transient storage errors (503 SlowDown, resets, timeouts) with jittered
    exponential backoff; everything else surfaces at once."""
    for i in range(attempts):
        try:
            return fn()
        except OSError as err:
            if isinstance(err, FileNotFoundError) or not is_transient(err) or i == attempts - 1:
                raise
            time.sleep(base * (2**i) * (0.5 + random.random()))
    raise AssertionError("unreachable")
