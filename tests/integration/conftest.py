"""Fixtures for integration tests: the real S3 server (see s3_server.py)."""

from tests.integration.s3_server import s3_bucket, s3_server

__all__ = ["s3_bucket", "s3_server"]
