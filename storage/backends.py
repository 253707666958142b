"""Filesystem backends for ArtifactStore (a local folder, or S3 through pyarrow) and the
retry policy for transient storage errors.

S3 settings come from the standard AWS environment or a prefect-aws block (see
storage.s3), so MinIO, Ceph RadosGW and AWS all work unchanged.
"""

from __future__ import annotations

import os
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from pyarrow import fs as pafs

from storage.s3 import S3Config, resolve_s3_config

T = TypeVar("T")

RETRY_ATTEMPTS_ENV = "PERSONAMATH_S3_RETRY_ATTEMPTS"
RETRY_DEADLINE_ENV = "PERSONAMATH_S3_RETRY_DEADLINE"

# What pyarrow (AWS C++ SDK + curl) and botocore say for errors worth retrying:
# throttling (503 SlowDown), 5xx, timeouts, refused/reset connections. Matched on the
# message with quoted names removed, so a key such as 'shard-00503' cannot match.
TRANSIENT = re.compile(
    r"slow[ _]?down|service[ _]?unavailable|throttl|too many requests|request[ _]?timeout"
    r"|timed? ?out|timeout|network[ _]?connection|curlcode|could not connect|unable to connect"
    r"|connection (?:reset|refused|aborted|closed)|broken pipe|empty reply|internal[ _]?error"
    r"|internal[ _]?failure|bad gateway|http(?: status)?(?: code)?[ :]*5\d\d",
    re.IGNORECASE,
)
NEVER_TRANSIENT = (FileNotFoundError, FileExistsError, PermissionError, IsADirectoryError,
                   NotADirectoryError)


@dataclass(frozen=True)
class Location:
    """Where a store lives: the filesystem, the root path in it, and (for S3) the
    resolved settings used to describe errors."""

    fs: pafs.FileSystem
    root: str
    s3: S3Config | None = None


def make_location(uri: str) -> Location:
    """Filesystem and root path for a file:// or s3:// URI."""
    if uri.startswith("file://"):
        root = Path(uri[len("file://"):]).expanduser().resolve()
        root.mkdir(parents=True, exist_ok=True)
        return Location(pafs.LocalFileSystem(), str(root))
    if uri.startswith("s3://"):
        root = uri[len("s3://"):].strip("/")
        if not root:
            raise ValueError(f"store URI {uri!r} names no bucket: use s3://bucket/prefix")
        config = resolve_s3_config()
        return Location(config.filesystem(), root, config)
    raise ValueError(f"unsupported store URI {uri!r}: use file:// or s3://")


def make_filesystem(uri: str) -> tuple[pafs.FileSystem, str]:
    """(filesystem, root path) for a file:// or s3:// URI."""
    loc = make_location(uri)
    return loc.fs, loc.root


def s3_filesystem() -> pafs.S3FileSystem:
    """pyarrow S3 filesystem for the current S3 settings (storage.s3), for callers that
    read s3:// inputs directly (personamath.sources)."""
    return resolve_s3_config().filesystem()


# -- retries ------------------------------------------------------------------------------
@dataclass(frozen=True)
class RetryPolicy:
    """Jittered exponential backoff, bounded both in attempts and in time: no new attempt
    starts after `deadline` seconds, so with pyarrow's request timeout (10 s) a dead
    endpoint surfaces in under deadline + one request."""

    attempts: int = 5
    base: float = 0.25
    cap: float = 4.0
    deadline: float = 15.0

    @classmethod
    def from_env(cls) -> RetryPolicy:
        """Defaults, overridable by PERSONAMATH_S3_RETRY_ATTEMPTS / _DEADLINE (seconds)."""
        attempts = int(os.environ.get(RETRY_ATTEMPTS_ENV) or cls.attempts)
        deadline = float(os.environ.get(RETRY_DEADLINE_ENV) or cls.deadline)
        return cls(attempts=max(1, attempts), deadline=deadline)

    def delay(self, attempt: int) -> float:
        """Sleep before retry number `attempt` (0-based), with +-50% jitter so that many
        shards hitting a throttled bucket do not retry in lockstep."""
        return min(self.cap, self.base * 2**attempt) * (0.5 + random.random())


# Opening a store should say quickly that the endpoint is wrong.
OPEN_POLICY = RetryPolicy(attempts=3, deadline=5.0)


def is_transient(err: BaseException) -> bool:
    """True for errors that a later attempt may not see (throttling, 5xx, network)."""
    if isinstance(err, NEVER_TRANSIENT):
        return False
    if isinstance(err, ConnectionError | TimeoutError):
        return True
    text = re.sub(r"'[^']*'", "''", str(err))
    return bool(TRANSIENT.search(text))


def call_with_retries(fn: Callable[[], T], policy: RetryPolicy | None = None,
                      sleep: Callable[[float], None] = time.sleep,
                      clock: Callable[[], float] = time.monotonic) -> T:
    """Run `fn`, retrying transient OSErrors per `policy`; anything else, or the last
    transient error, surfaces unchanged. `sleep`/`clock` are injectable for tests."""
    policy = policy or RetryPolicy.from_env()
    start = clock()
    for attempt in range(policy.attempts):
        try:
            return fn()
        except OSError as err:
            if not is_transient(err) or attempt == policy.attempts - 1:
                raise
            pause = policy.delay(attempt)
            if clock() - start + pause > policy.deadline:
                raise
            sleep(pause)
    raise AssertionError("unreachable")
