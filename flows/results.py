"""Prefect result storage on the pipeline's own store.

Shard tasks persist their (small) results next to the data they describe, in a saved
block, so that a flow run retried by another process or worker finds them and shows
finished shards as Cached. A `file://` store gets a LocalFileSystem block; an `s3://`
store an S3Bucket block (prefect-aws) whose credentials are left empty on purpose:
each worker resolves them from its own AWS environment, so no secret is written into
Prefect's database.
"""

from __future__ import annotations

import hashlib
import logging
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

log = logging.getLogger("personamath")


def _block_name(store: str) -> str:
    return "personamath-results-" + hashlib.sha256(store.encode()).hexdigest()[:12]


@lru_cache(maxsize=16)
def result_storage_for(store: str) -> Any:
    """A saved block for `{store}/prefect-results`, or None (Prefect's default) when
    it cannot be made (no API to save it to, or prefect-aws missing for S3)."""
    try:
        block = _local_block(store) if store.startswith("file://") else _s3_block(store)
        if block is None:
            return None
        block.save(_block_name(store), overwrite=True)
        return block
    except Exception as err:  # noqa: BLE001 - fall back to Prefect's default storage
        log.warning("result storage on %s unavailable (%s); using Prefect's default", store, err)
        return None


def _local_block(store: str) -> Any:
    from prefect.filesystems import LocalFileSystem

    root = Path(store[len("file://"):]).expanduser().resolve() / "prefect-results"
    root.mkdir(parents=True, exist_ok=True)
    return LocalFileSystem(basepath=str(root))


def _s3_block(store: str) -> Any:
    try:
        from prefect_aws import AwsCredentials, S3Bucket
        from prefect_aws.client_parameters import AwsClientParameters
    except ImportError:
        log.warning("pip install 'personamath[aws]' to keep Prefect results on %s", store)
        return None
    bucket, _, prefix = store[len("s3://"):].partition("/")
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    creds = AwsCredentials(
        region_name=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION"),
        aws_client_parameters=AwsClientParameters(endpoint_url=endpoint),
    )
    folder = f"{prefix.strip('/')}/prefect-results".lstrip("/")
    return S3Bucket(bucket_name=bucket, bucket_folder=folder, credentials=creds)
