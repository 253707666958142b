"""ArtifactStore over s3:// against moto's S3 server (fast, in-process), through a small
fault-injecting HTTP proxy for throttling (503 SlowDown), connection resets and silence."""

from __future__ import annotations

import http.client
import socket
import struct
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import boto3
import pyarrow as pa
import pytest

from storage import ArtifactStore, StoreError, selfcheck

moto_server = pytest.importorskip("moto.server")

pytestmark = pytest.mark.timeout(120)

AWS_VARS = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3",
            "AWS_DEFAULT_REGION", "PERSONAMATH_AWS_CREDENTIALS_BLOCK",
            "PERSONAMATH_S3_ADDRESSING", "PERSONAMATH_S3_RETRY_ATTEMPTS",
            "PERSONAMATH_S3_RETRY_DEADLINE", "PERSONAMATH_S3_REQUEST_TIMEOUT")
SLOW_DOWN = (b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code>'
             b"<Message>Please reduce your request rate.</Message></Error>")
ACCESS_DENIED = (b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code>'
                 b"<Message>Access Denied</Message></Error>")


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


class FaultProxy(ThreadingHTTPServer):
    """Forwards S3 requests to moto, except that the next queued faults are served
    instead: '503' (SlowDown), '403' (AccessDenied), 'reset' (TCP RST), 'silent'."""

    daemon_threads = True
    request_queue_size = 128  # socketserver's default of 5 can refuse parallel uploads

    def __init__(self, upstream: str) -> None:
        super().__init__(("127.0.0.1", 0), ProxyHandler)
        self.upstream = upstream.split("://", 1)[1]
        self.faults: list[str] = []
        self.requests = 0
        self.lock = threading.Lock()

    def next_fault(self) -> str | None:
        with self.lock:
            self.requests += 1
            return self.faults.pop(0) if self.faults else None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: FaultProxy

    def log_message(self, *args: object) -> None:  # keep test output clean
        pass

    def _handle(self) -> None:
        body = self._body()
        fault = self.server.next_fault()
        if fault in ("503", "403"):
            status, payload = (503, SLOW_DOWN) if fault == "503" else (403, ACCESS_DENIED)
            self.send_response(status)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload if self.command != "HEAD" else b"")
        elif fault == "reset":
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       struct.pack("ii", 1, 0))
            self.close_connection = True
            self.connection.close()
        elif fault == "silent":
            time.sleep(30)
            self.close_connection = True
        else:
            self._forward(body)

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while size := int(self.rfile.readline().split(b";")[0], 16):
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            self.rfile.readline()
            return b"".join(chunks)
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _forward(self, body: bytes) -> None:
        conn = http.client.HTTPConnection(self.server.upstream, timeout=30)
        headers = {k: v for k, v in self.headers.items()
                   if k.lower() not in ("transfer-encoding", "content-length")}
        headers["Content-Length"] = str(len(body))
        conn.request(self.command, self.path, body=body, headers=headers)
        resp = conn.getresponse()
        # moto names this element ...Response where S3 says ...Result, and pyarrow then
        # reports "error embedded in a 200 OK response": fix moto's spelling here.
        data = resp.read().replace(b"CompleteMultipartUploadResponse",
                                   b"CompleteMultipartUploadResult")
        self.send_response(resp.status)
        for key, value in resp.getheaders():
            if key.lower() not in ("transfer-encoding", "content-length", "connection"):
                self.send_header(key, value)
        length = resp.getheader("Content-Length", "0") if self.command == "HEAD" else len(data)
        self.send_header("Content-Length", str(length))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        conn.close()

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle


def s3_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, endpoint: str) -> None:
    for var in AWS_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing-secret")
    monkeypatch.setenv("AWS_REGION", "us-east-1")


@pytest.fixture(scope="module")
def proxy(moto_endpoint: str) -> Iterator[FaultProxy]:
    """Every test talks to moto through the fault proxy (faults only when queued)."""
    server = FaultProxy(moto_endpoint)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def bucket(moto_endpoint: str, proxy: FaultProxy, monkeypatch: pytest.MonkeyPatch,
           tmp_path: Path) -> str:
    """A fresh bucket on moto; the AWS environment points at the proxy in front of it."""
    proxy.faults.clear()
    s3_env(monkeypatch, tmp_path, proxy.endpoint)
    name = f"pm-{uuid.uuid4().hex[:10]}"
    boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1").create_bucket(
        Bucket=name)
    return name


@pytest.mark.parametrize("check", ["roundtrip", "corruption", "orphans", "concurrent"])
def test_contract(bucket: str, check: str) -> None:
    selfcheck.CHECKS[check](f"s3://{bucket}/store")


def test_readers_pandas_pyarrow_datasets(bucket: str, tmp_path: Path) -> None:
    selfcheck.check_readers(f"s3://{bucket}/store", cache_dir=str(tmp_path / "hf"))


def test_missing_bucket(bucket: str, proxy: FaultProxy) -> None:
    with pytest.raises(StoreError) as info:
        ArtifactStore("s3://no-such-bucket/x")
    msg = str(info.value)
    assert "'no-such-bucket' does not exist" in msg and proxy.endpoint in msg
    assert "testing-secret" not in msg


def test_slowdown_is_retried(proxy: FaultProxy, bucket: str) -> None:
    store = ArtifactStore(f"s3://{bucket}/p")
    proxy.faults[:] = ["503", "503"]
    store.commit_shard("step", 0, {"rows": pa.table({"x": [1]})})
    assert proxy.faults == []
    assert store.load_manifest("step", 0, verify=True) is not None


def test_connection_reset_is_retried(proxy: FaultProxy, bucket: str) -> None:
    store = ArtifactStore(f"s3://{bucket}/p")
    proxy.faults[:] = ["reset"]
    store.write_json("a.json", {"ok": True})
    proxy.faults[:] = ["reset"]
    assert store.read_json("a.json") == {"ok": True}
    assert proxy.faults == []


def test_persistent_slowdown_gives_up_with_the_endpoint_named(
        proxy: FaultProxy, bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PERSONAMATH_S3_RETRY_ATTEMPTS", "3")
    store = ArtifactStore(f"s3://{bucket}/p")
    proxy.faults[:] = ["503"] * 10
    before = proxy.requests
    with pytest.raises(StoreError) as info:
        store.write_json("a.json", {})
    assert proxy.requests - before == 3
    assert "SLOW_DOWN" in str(info.value) and proxy.endpoint in str(info.value)


def test_silent_endpoint_fails_in_bounded_time(
        proxy: FaultProxy, bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A server that accepts and never answers: each try ends at the request timeout,
    and no new try starts after the retry deadline."""
    monkeypatch.setenv("PERSONAMATH_S3_REQUEST_TIMEOUT", "1")
    monkeypatch.setenv("PERSONAMATH_S3_RETRY_DEADLINE", "2")
    store = ArtifactStore(f"s3://{bucket}/p")
    proxy.faults[:] = ["silent"] * 10
    start = time.monotonic()
    with pytest.raises(StoreError) as info:
        store.write_json("a.json", {})
    assert time.monotonic() - start < 6
    assert proxy.endpoint in str(info.value)


def test_closed_port_fails_fast_at_open(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    s3_env(monkeypatch, tmp_path, dead)
    start = time.monotonic()
    with pytest.raises(StoreError) as info:
        ArtifactStore("s3://bucket/x")
    assert time.monotonic() - start < 10
    assert f"cannot reach S3 endpoint {dead}" in str(info.value)
    assert "'bucket'" in str(info.value) and "testing-secret" not in str(info.value)


@pytest.mark.slow
def test_silent_endpoint_with_default_timeouts_under_30s(
        proxy: FaultProxy, bucket: str) -> None:
    """The promise in docs/storage.md with the default settings: opening a store whose
    endpoint never answers, and a write to it, each fail in under 30 s."""
    store = ArtifactStore(f"s3://{bucket}/p")
    proxy.faults[:] = ["silent"] * 20
    for action in (lambda: ArtifactStore(f"s3://{bucket}/p"), lambda: store.write_json("a", 1)):
        start = time.monotonic()
        with pytest.raises(StoreError):
            action()
        assert time.monotonic() - start < 30


def test_prefix_scoped_credentials_open(proxy: FaultProxy, bucket: str) -> None:
    """HEAD on the bucket denied (an IAM policy scoped to a prefix) but the prefix
    readable: the store opens."""
    proxy.faults[:] = ["403"]
    ArtifactStore(f"s3://{bucket}/p").write_json("a.json", 1)
    assert proxy.faults == []


def test_access_denied_everywhere(proxy: FaultProxy, bucket: str) -> None:
    proxy.faults[:] = ["403"] * 4
    with pytest.raises(StoreError, match=f"access denied to bucket '{bucket}'"):
        ArtifactStore(f"s3://{bucket}/p")


def test_read_dataset_from_a_dead_endpoint_is_a_store_error(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from storage import read_dataset

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    s3_env(monkeypatch, tmp_path, dead)
    monkeypatch.setenv("PERSONAMATH_S3_RETRY_ATTEMPTS", "2")
    with pytest.raises(StoreError, match=f"reading s3://b/x at {dead} failed"):
        read_dataset("s3://b/x")


def test_unknown_profile_is_a_store_error(monkeypatch: pytest.MonkeyPatch,
                                          tmp_path: Path) -> None:
    s3_env(monkeypatch, tmp_path, "http://127.0.0.1:1")
    monkeypatch.setenv("AWS_PROFILE", "no-such-profile")
    with pytest.raises(StoreError, match="no-such-profile"):
        ArtifactStore("s3://b/x")


@pytest.mark.slow
def test_prefect_aws_block_end_to_end(bucket: str, proxy: FaultProxy,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A real prefect-aws AwsCredentials block, saved to Prefect's ephemeral API, is all
    the store needs: no AWS_* variables at all."""
    prefect_aws = pytest.importorskip("prefect_aws")
    name = f"pm-s3-{uuid.uuid4().hex[:8]}"
    prefect_aws.AwsCredentials(
        aws_access_key_id="blockkey", aws_secret_access_key="block-secret",
        region_name="us-east-1",
        aws_client_parameters={"endpoint_url": proxy.endpoint},
    ).save(name)
    for var in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("PERSONAMATH_AWS_CREDENTIALS_BLOCK", name)
    store = ArtifactStore(f"s3://{bucket}/p")
    assert store.s3 is not None and store.s3.endpoint_url == proxy.endpoint
    assert "prefect-aws block" in store.s3.source and store.s3.access_key == "blockkey"
    store.commit_shard("step", 0, {"rows": pa.table({"x": [1]})})
    assert store.done_shards("step") == [0]
