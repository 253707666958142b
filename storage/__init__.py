"""Artifact storage over file:// and s3:// with shard manifests (DESIGN.md §3).

See docs/storage.md for pointing it at a local folder, MinIO, Ceph or AWS S3.
"""

from storage import selfcheck
from storage.backends import RetryPolicy
from storage.reading import dataset_files, filesystem, read_dataset, storage_options
from storage.s3 import S3Config, S3ConfigError, resolve_s3_config
from storage.store import ArtifactStore, Manifest, ShardCorrupt, StoreError, open_store

__all__ = [
    "ArtifactStore",
    "Manifest",
    "RetryPolicy",
    "S3Config",
    "S3ConfigError",
    "ShardCorrupt",
    "StoreError",
    "dataset_files",
    "filesystem",
    "open_store",
    "read_dataset",
    "selfcheck",
    "resolve_s3_config",
    "storage_options",
]
