"""Fixtures for integration tests: the real S3 server (see s3_server.py)."""

import sys
from pathlib import Path

_REPO = str(Path(__file__).resolve().parents[2])
if _REPO not in sys.path:  # plain `pytest` puts only this folder on sys.path
    sys.path.insert(0, _REPO)

from tests.integration.s3_server import s3_bucket, s3_server  # noqa: E402

__all__ = ["s3_bucket", "s3_server"]
