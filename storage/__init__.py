"""Artifact storage over file:// and s3:// with shard manifests (DESIGN.md §3)."""

from storage.store import ArtifactStore, Manifest, ShardCorrupt, StoreError, open_store

__all__ = ["ArtifactStore", "Manifest", "ShardCorrupt", "StoreError", "open_store"]
