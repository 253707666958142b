"""Which storage errors are retried, and for how long (pure: fake clock and sleep)."""

from __future__ import annotations

import pytest

from storage.backends import RetryPolicy, call_with_retries, is_transient

# Messages as pyarrow (AWS C++ SDK + curl) words them.
TRANSIENT = [
    "When writing key 'a' in bucket 'b': AWS Error SLOW_DOWN during PutObject operation: "
    "Please reduce your request rate.",
    "AWS Error SERVICE_UNAVAILABLE during HeadObject operation",
    "AWS Error NETWORK_CONNECTION during HeadBucket operation: curlCode: 7, Could not "
    "connect to server",
    "curlCode: 56, Failure when receiving data from the peer",
    "AWS Error UNKNOWN (HTTP status 503) during GetObject operation",
    "AWS Error INTERNAL_FAILURE during PutObject operation",
    "AWS Error REQUEST_TIMEOUT during UploadPart operation",
    "Connection reset by peer",
]
PERMANENT = [
    "When getting information for bucket 'b': AWS Error ACCESS_DENIED during HeadBucket "
    "operation: No response body.",
    "AWS Error NO_SUCH_BUCKET during PutObject operation",
    "AWS Error UNKNOWN (HTTP status 411) during UploadPart operation: MissingContentLength",
    # a key that merely looks like a status code or a timeout is not an error kind
    "When reading key 'step/shard-00503.timeout.parquet' in bucket 'b': AWS Error "
    "ACCESS_DENIED during GetObject operation",
]


@pytest.mark.parametrize("message", TRANSIENT)
def test_transient(message: str) -> None:
    assert is_transient(OSError(message))


@pytest.mark.parametrize("message", PERMANENT)
def test_permanent(message: str) -> None:
    assert not is_transient(OSError(message))


def test_python_network_errors_are_transient_missing_files_are_not() -> None:
    assert is_transient(ConnectionResetError("reset"))
    assert is_transient(TimeoutError("slow"))
    assert not is_transient(FileNotFoundError("timed out"))
    assert not is_transient(PermissionError("503"))


class FakeTime:
    def __init__(self, per_call: float = 0.0) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []
        self.per_call = per_call

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def flaky(failures: list[BaseException], result: str = "ok", clock: FakeTime | None = None):
    calls = {"n": 0}

    def fn() -> str:
        calls["n"] += 1
        if clock is not None:
            clock.now += clock.per_call
        if failures:
            raise failures.pop(0)
        return result

    return fn, calls


def test_transient_errors_are_retried_with_growing_jittered_backoff() -> None:
    t = FakeTime()
    fn, calls = flaky([OSError("AWS Error SLOW_DOWN")] * 3)
    assert call_with_retries(fn, RetryPolicy(attempts=5, base=0.5, cap=8, deadline=60),
                             t.sleep, t.clock) == "ok"
    assert calls["n"] == 4
    for i, pause in enumerate(t.sleeps):  # base * 2**i, +-50 %
        assert 0.25 * 2**i <= pause <= 0.75 * 2**i


def test_permanent_errors_surface_at_once() -> None:
    t = FakeTime()
    fn, calls = flaky([OSError("AWS Error ACCESS_DENIED")])
    with pytest.raises(OSError, match="ACCESS_DENIED"):
        call_with_retries(fn, RetryPolicy(), t.sleep, t.clock)
    assert calls["n"] == 1 and t.sleeps == []


def test_attempts_are_bounded() -> None:
    t = FakeTime()
    fn, calls = flaky([OSError("curlCode: 7")] * 10)
    with pytest.raises(OSError, match="curlCode"):
        call_with_retries(fn, RetryPolicy(attempts=3, deadline=60), t.sleep, t.clock)
    assert calls["n"] == 3


def test_no_attempt_starts_after_the_deadline() -> None:
    """Each attempt times out after 10 s: a 15 s deadline allows two, never a third."""
    t = FakeTime(per_call=10.0)
    fn, calls = flaky([OSError("AWS Error REQUEST_TIMEOUT")] * 10, clock=t)
    with pytest.raises(OSError):
        call_with_retries(fn, RetryPolicy(attempts=10, deadline=15), t.sleep, t.clock)
    assert calls["n"] == 2 and t.now < 30


def test_policy_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PERSONAMATH_S3_RETRY_ATTEMPTS", "2")
    monkeypatch.setenv("PERSONAMATH_S3_RETRY_DEADLINE", "3.5")
    assert RetryPolicy.from_env() == RetryPolicy(attempts=2, deadline=3.5)
