"""A real S3 server for tests: Ceph RadosGW through scripts/s3-server.sh.

Fixtures (import them into a conftest.py, as tests/integration/conftest.py does):

- `s3_server` (session): one private cluster per pytest session, in its own data dir
  under /tmp and on free ports, so parallel sessions and a developer's own server on
  7480 do not collide. Skipped with the reason when the Ceph binaries are missing;
  with PERSONAMATH_REQUIRE_S3=1 (CI) that is a failure instead.
- `s3_bucket` (function): a fresh bucket, and the AWS_* variables of the server set
  for the test (and cleared of a developer's profile/config files). `s3_bucket.env` is
  the same environment for a subprocess (e.g. a pipeline run killed midway).

`CephS3Server.stop_rgw()` / `kill_rgw()` / `start_rgw()` stop (or crash) and restart
radosgw alone (the cluster keeps its data) for fault tests; `s3_bucket` restarts a
radosgw that a failed test left down.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "s3-server.sh"
REQUIRE_ENV = "PERSONAMATH_REQUIRE_S3"
CEPH_BINARIES = ("ceph-mon", "ceph-osd", "radosgw", "radosgw-admin", "ceph", "monmaptool",
                 "ceph-authtool", "curl", "uuidgen", "setsid", "ss")
TEST_ACCESS_KEY = "PERSONAMATHTESTKEY01"
TEST_SECRET_KEY = "personamath-test-secret-key-0001"

# A developer's own AWS setup must not leak into tests (a profile, an endpoint in
# ~/.aws/config, a credentials block): these are cleared, the config files hidden.
AWS_VARS_CLEARED = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN",
                    "AWS_ENDPOINT_URL_S3", "AWS_DEFAULT_REGION",
                    "PERSONAMATH_AWS_CREDENTIALS_BLOCK", "PERSONAMATH_S3_ADDRESSING")


def free_port() -> int:
    """A TCP port nothing listens on right now (the OS picks it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def missing_binaries() -> list[str]:
    return [b for b in CEPH_BINARIES if shutil.which(b) is None]


def unavailable(reason: str) -> None:
    """Skip, or fail when the run demands the real S3 server (CI)."""
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{reason} ({REQUIRE_ENV}=1: the real S3 server is required)")
    pytest.skip(reason)


@dataclass
class CephS3Server:
    """One single-node Ceph cluster run by scripts/s3-server.sh."""

    data_dir: Path
    port: int
    mon_port: int
    mon_v1_port: int
    access_key: str = TEST_ACCESS_KEY
    secret_key: str = field(default=TEST_SECRET_KEY, repr=False)
    startup_s: float = 0.0

    @classmethod
    def private(cls) -> CephS3Server:
        """A server with its own short data dir (unix socket paths are limited to 107
        bytes) and free ports."""
        data_dir = Path(tempfile.mkdtemp(prefix="pm-ceph-", dir="/tmp"))
        return cls(data_dir, free_port(), free_port(), free_port())

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def script(self, command: str, timeout: float = 150) -> subprocess.CompletedProcess[str]:
        env = {**os.environ,
               "PERSONAMATH_CEPH_DIR": str(self.data_dir),
               "PERSONAMATH_S3_PORT": str(self.port),
               "PERSONAMATH_CEPH_MON_PORT": str(self.mon_port),
               "PERSONAMATH_CEPH_MON_V1_PORT": str(self.mon_v1_port),
               "PERSONAMATH_S3_ACCESS_KEY": self.access_key,
               "PERSONAMATH_S3_SECRET_KEY": self.secret_key}
        return subprocess.run(["bash", str(SCRIPT), command], env=env, capture_output=True,
                              text=True, timeout=timeout, check=False)

    def _must(self, command: str, timeout: float = 150) -> None:
        done = self.script(command, timeout)
        if done.returncode != 0:
            raise RuntimeError(f"s3-server.sh {command} failed ({done.returncode}):\n"
                               f"{done.stdout}{done.stderr}\nlogs in {self.data_dir}/log")

    def start(self) -> None:
        t0 = time.monotonic()
        self._must("start")
        self.startup_s = time.monotonic() - t0

    def stop(self) -> None:
        self._must("stop", timeout=60)

    def stop_rgw(self) -> None:
        """Stop radosgw only: S3 goes away, the cluster keeps its objects."""
        self._must("stop-rgw", timeout=60)

    def kill_rgw(self) -> None:
        """SIGKILL radosgw: a crash, with requests in flight cut off."""
        self._must("kill-rgw", timeout=30)

    def start_rgw(self) -> None:
        """Start radosgw again (no-op when it runs) and wait until S3 answers."""
        self._must("start-rgw", timeout=90)

    def running(self) -> bool:
        return self.script("status", timeout=30).returncode == 0

    def rss_mb(self) -> float:
        """Resident memory of the cluster's daemons, in MB."""
        total = 0
        for name in ("mon", "osd", "rgw"):
            pid_file = self.data_dir / f"{name}.pid"
            if not pid_file.exists():
                continue
            status = Path(f"/proc/{pid_file.read_text().strip()}/status")
            if status.exists():
                for line in status.read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        return total / 1024

    def aws_env(self) -> dict[str, str]:
        """The AWS settings that point any client (boto3, pyarrow, s3fs) at this server."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_REGION": "us-east-1",
            "AWS_REQUEST_CHECKSUM_CALCULATION": "WHEN_REQUIRED",
            "AWS_RESPONSE_CHECKSUM_VALIDATION": "WHEN_REQUIRED",
        }

    def client(self) -> Any:
        """A boto3 S3 client with the test user's keys (path-style, no retries to wait on)."""
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3", endpoint_url=self.endpoint, region_name="us-east-1",
            aws_access_key_id=self.access_key, aws_secret_access_key=self.secret_key,
            config=Config(s3={"addressing_style": "path"}, connect_timeout=3, read_timeout=30,
                          retries={"max_attempts": 2},
                          request_checksum_calculation="when_required",
                          response_checksum_validation="when_required"),
        )

    def create_bucket(self, name: str | None = None) -> str:
        name = name or f"pm-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name

    def empty_bucket(self, name: str) -> None:
        """Delete everything in a bucket, pending uploads included, so the in-memory OSD
        (1 GiB) does not fill up over a session. The bucket itself stays: after a crash
        RadosGW takes ~25 s to delete one, and the cluster is thrown away at the end."""
        client = self.client()
        try:
            for up in client.list_multipart_uploads(Bucket=name).get("Uploads", []):
                client.abort_multipart_upload(Bucket=name, Key=up["Key"],
                                              UploadId=up["UploadId"])
            for page in client.get_paginator("list_objects_v2").paginate(Bucket=name):
                keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
                if keys:
                    client.delete_objects(Bucket=name, Delete={"Objects": keys})
        except Exception:  # cleanup must not mask the test's own result
            pass


@dataclass
class S3Bucket:
    """A fresh bucket on the test server; `env` is the AWS environment for it."""

    server: CephS3Server
    name: str
    env: dict[str, str]

    def uri(self, prefix: str = "store") -> str:
        return f"s3://{self.name}/{prefix.strip('/')}" if prefix else f"s3://{self.name}"

    def subprocess_env(self) -> dict[str, str]:
        """os.environ plus this bucket's AWS settings, for a pipeline run in a subprocess."""
        base = {k: v for k, v in os.environ.items() if k not in AWS_VARS_CLEARED}
        return {**base, **self.env}


@pytest.fixture(scope="session")
def s3_server() -> Iterator[CephS3Server]:
    """A private Ceph RadosGW for this pytest session (~12 s to start, ~150 MB RSS)."""
    missing = missing_binaries()
    if missing:
        unavailable(f"Ceph S3 server unavailable: missing {', '.join(missing)} "
                    "(run scripts/install-ceph.sh)")
    server = CephS3Server.private()
    try:
        server.start()
    except (RuntimeError, subprocess.TimeoutExpired) as err:
        server.script("stop", timeout=60)
        pytest.fail(f"the Ceph S3 server did not start: {err}")
    try:
        yield server
    finally:
        server.script("stop", timeout=60)
        shutil.rmtree(server.data_dir, ignore_errors=True)


@pytest.fixture
def s3_bucket(s3_server: CephS3Server, monkeypatch: pytest.MonkeyPatch,
              tmp_path: Path) -> Iterator[S3Bucket]:
    """A fresh bucket and this test's AWS environment pointing at it."""
    if not s3_server.running():
        s3_server.start_rgw()  # an earlier fault test may have left radosgw down
    name = s3_server.create_bucket()
    env = s3_server.aws_env()
    for key in AWS_VARS_CLEARED:
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    hidden = {"AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
              "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials")}
    for key, value in hidden.items():
        monkeypatch.setenv(key, value)
    yield S3Bucket(s3_server, name, {**env, **hidden})
    if not s3_server.running():
        s3_server.start_rgw()
    s3_server.empty_bucket(name)
