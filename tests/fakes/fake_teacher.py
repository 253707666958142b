"""A fake OpenAI/Anthropic teacher: a real HTTP server with scripted replies and faults.

Why: the engine and the pipeline must be tested against real HTTP (status codes,
headers, timeouts, broken bodies) without a network or a paid API. One server speaks
both dialects so one fixture serves every provider.

Python API
----------
    with FakeTeacher(responder=None) as fake:      # 127.0.0.1, free port, < 1 s
        fake.base_url_openai       # "http://127.0.0.1:PORT/v1"
        fake.base_url_anthropic    # "http://127.0.0.1:PORT"
        fake.add_fault("status", status=500, contains="X")        # forever, until healed
        fake.add_fault("status", status=429, times=2, retry_after=0.2)   # next 2 requests
        fake.add_fault("hang", delay=5)      # no reply for 5 s (or until heal/close)
        fake.heal(contains="X")   # or heal(fault_id) / heal() for all
        fake.count(), fake.count(contains="X"), fake.count(route="anthropic")
        fake.requests             # list of RequestLog (route, body, messages, fault, t)
        fake.max_in_flight        # peak concurrent requests seen
        fake.reset_counts()

`responder(messages, body) -> str | Reply` gets the messages normalised to
`[{"role", "content": str}]` (Anthropic's `system=` becomes a leading system message)
and the raw request body. Default: "The answer is \\boxed{42}.".
A reply longer than the request's max_tokens (~4 chars a token) is cut and marked
finish_reason "length", like a real server (`enforce_max_tokens=False` turns it off).

Fault kinds (`Fault` fields: kind, contains, times, probability, route, status,
retry_after, delay, message):
    latency         sleep `delay` s, then carry on (other faults may still apply)
    status          reply HTTP `status` (429 sends Retry-After / retry-after-ms when
                    `retry_after` is set); the error body echoes `message`
    hang            send nothing for `delay` s (default 3600) or until heal/close, then drop
    disconnect      close the connection without a reply
    truncate        200, text cut in half, finish_reason length / stop_reason max_tokens
    malformed       200, Content-Type JSON, body not JSON
    missing_fields  200, valid JSON without choices / content
A fault matches when its `route` ("openai" | "anthropic" | None = both) matches, its
`contains` is a substring of the last user message (None = any), and a draw under
`probability` succeeds. `times=N` expires it after N hits; None keeps it until healed.
Latency faults add up; the first matching non-latency fault decides the outcome.

Auth: OpenAI accepts any `Authorization: Bearer ...` (or none); Anthropic requires an
`x-api-key` header (any value); `Authorization: Bearer` is accepted as well, because
anthropic SDK 2.x sends the API key that way. With `require_key="k"` any other key gets a 401 whose
message echoes the key sent, as real servers partly do (to test that clients scrub it).

Standalone process
------------------
    python -m tests.fakes.fake_teacher --port 8765 [--script FILE.py|FILE.json] [--seed N]
prints `FAKE_TEACHER_URL http://127.0.0.1:PORT` on its first stdout line (port 0 picks
a free port). A .py script defines `respond(messages, body)`; a JSON script is
`{"default": "text", "rules": [{"contains": "..", "reply": "..", "finish_reason": ..}]}`.
Admin HTTP API (JSON in and out), used by another process such as a Prefect worker
(`FakeTeacherClient(url)` wraps it with the same methods as FakeTeacher):
    POST /_admin/faults   {"kind": ..., ...} or {"faults": [{...}, ...]} -> {"ids": [..]}
    POST /_admin/heal     {} (all) | {"contains": ".."} | {"id": N}     -> {"removed": n}
    GET  /_admin/counts[?contains=..&route=..] -> {"total", "by_route", "matched",
                                                  "in_flight", "max_in_flight"}
    GET  /_admin/requests -> {"requests": [{"route", "body", "messages", "fault", "t"}]}
    POST /_admin/reset    clears counts and the request log (faults stay; see heal)
    POST /_admin/script   same JSON as a JSON --script: replaces the responder
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import json
import random
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

DEFAULT_TEXT = "The answer is \\boxed{42}."
FAULT_KINDS = (
    "latency", "status", "hang", "disconnect", "truncate", "malformed", "missing_fields",
)


@dataclass
class Reply:
    """What a responder may return instead of a bare string."""

    text: str
    finish_reason: str = "stop"  # "stop" | "length"
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


Responder = Callable[[list[dict[str, str]], dict[str, Any]], "str | Reply"]


@dataclass
class Fault:
    """One fault rule; see the module docstring for the kinds and matching."""

    kind: str
    contains: str | None = None
    times: int | None = None
    probability: float = 1.0
    route: str | None = None
    status: int = 500
    retry_after: float | None = None
    delay: float | None = None
    message: str = "injected fault"
    id: int = 0

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; one of {FAULT_KINDS}")


@dataclass
class RequestLog:
    route: str
    body: dict[str, Any]
    messages: list[dict[str, str]]
    fault: str | None
    t: float
    last_user: str = ""


def default_responder(messages: list[dict[str, str]], body: dict[str, Any]) -> str:
    return DEFAULT_TEXT


def estimate_tokens(text: str) -> int:
    """~4 characters a token: good enough for usage and max_tokens checks."""
    return max(1, (len(text) + 3) // 4)


def _text_of(content: Any) -> str:
    """Anthropic/OpenAI content may be a string or a list of blocks."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(b.get("text", "") for b in content if isinstance(b, dict))
    return "" if content is None else str(content)


def normalise_messages(route: str, body: dict[str, Any]) -> list[dict[str, str]]:
    msgs = [{"role": str(m.get("role")), "content": _text_of(m.get("content"))}
            for m in body.get("messages") or [] if isinstance(m, dict)]
    if route == "anthropic" and body.get("system"):
        msgs.insert(0, {"role": "system", "content": _text_of(body["system"])})
    return msgs


def last_user(messages: list[dict[str, str]]) -> str:
    for m in reversed(messages):
        if m["role"] == "user":
            return m["content"]
    return ""


class _State:
    """Everything the handler threads share, behind one lock."""

    def __init__(self, responder: Responder, seed: int, enforce_max_tokens: bool,
                 require_key: str | None) -> None:
        self.lock = threading.Lock()
        self.responder = responder
        self.rng = random.Random(seed)
        self.enforce_max_tokens = enforce_max_tokens
        self.require_key = require_key
        self.faults: list[Fault] = []
        self.ids = itertools.count(1)
        self.log: list[RequestLog] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.wake = threading.Event()  # set on heal/close: hanging handlers give up

    def add(self, fault: Fault) -> int:
        with self.lock:
            fault.id = next(self.ids)
            self.faults.append(fault)
            return fault.id

    def heal(self, contains: str | None = None, fault_id: int | None = None) -> int:
        with self.lock:
            keep = [f for f in self.faults
                    if not ((fault_id is None or f.id == fault_id)
                            and (contains is None or f.contains == contains))]
            removed = len(self.faults) - len(keep)
            self.faults = keep
        self.wake.set()
        self.wake = threading.Event()
        return removed

    def match(self, route: str, text: str) -> tuple[float, Fault | None]:
        """Total latency of matching latency faults and the first deciding fault."""
        delay, decisive = 0.0, None
        with self.lock:
            for f in list(self.faults):
                if not self._hits(f, route, text):
                    continue
                if f.kind == "latency":
                    delay += f.delay or 0.0
                elif decisive is None:
                    decisive = f
                else:
                    continue
                self._consume(f)
        return delay, decisive

    def _hits(self, f: Fault, route: str, text: str) -> bool:
        if f.route not in (None, route) or (f.contains is not None and f.contains not in text):
            return False
        return f.probability >= 1.0 or self.rng.random() < f.probability

    def _consume(self, f: Fault) -> None:
        if f.times is not None:
            f.times -= 1
            if f.times <= 0:
                self.faults.remove(f)

    def enter(self, entry: RequestLog) -> None:
        with self.lock:
            self.log.append(entry)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def leave(self) -> None:
        with self.lock:
            self.in_flight -= 1

    def count(self, contains: str | None = None, route: str | None = None) -> int:
        with self.lock:
            return sum(1 for e in self.log
                       if (route is None or e.route == route)
                       and (contains is None or contains in e.last_user))

    def counts(self, contains: str | None = None, route: str | None = None) -> dict[str, Any]:
        with self.lock:
            by_route: dict[str, int] = {}
            for e in self.log:
                by_route[e.route] = by_route.get(e.route, 0) + 1
            snapshot = {"total": len(self.log), "by_route": by_route,
                        "in_flight": self.in_flight, "max_in_flight": self.max_in_flight}
        snapshot["matched"] = self.count(contains, route)
        return snapshot

    def reset(self) -> None:
        with self.lock:
            self.log.clear()
            self.max_in_flight = self.in_flight


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib name
        """Quiet: test output stays readable."""

    # ---- plumbing -------------------------------------------------------------
    def _read_json(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        return json.loads(raw) if raw else {}

    def _send(self, status: int, payload: Any, headers: dict[str, str] | None = None,
              raw: bytes | None = None) -> None:
        data = raw if raw is not None else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    # ---- routing --------------------------------------------------------------
    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        url = urlparse(self.path)
        q = {k: v[0] for k, v in parse_qs(url.query).items()}
        st = self.server.state
        if url.path == "/v1/models":
            self._send(200, {"object": "list", "data": [
                {"id": "fake-model", "object": "model", "owned_by": "fake"}]})
        elif url.path == "/_admin/counts":
            self._send(200, st.counts(q.get("contains"), q.get("route")))
        elif url.path == "/_admin/requests":
            with st.lock:
                reqs = [asdict(e) for e in st.log]
            self._send(200, {"requests": reqs})
        else:
            self._send(404, {"error": {"message": f"no route {url.path}"}})

    def do_POST(self) -> None:  # noqa: N802 - stdlib name
        path = urlparse(self.path).path
        try:
            body = self._read_json()
        except (ValueError, UnicodeDecodeError):
            self._send(400, {"error": {"message": "request body is not JSON",
                                       "type": "invalid_request_error"}})
            return
        if path.startswith("/_admin/"):
            self._admin(path, body)
        elif path in ("/v1/chat/completions", "/chat/completions"):
            self._chat("openai", body)
        elif path in ("/v1/messages", "/messages"):
            self._chat("anthropic", body)
        else:
            self._send(404, {"error": {"message": f"no route {path}"}})

    def _admin(self, path: str, body: dict[str, Any]) -> None:
        st = self.server.state
        if path == "/_admin/faults":
            specs = body.get("faults", [body]) if isinstance(body, dict) else body
            try:
                ids = [st.add(Fault(**spec)) for spec in specs]
            except (TypeError, ValueError) as err:
                self._send(400, {"error": str(err)})
                return
            self._send(200, {"ids": ids})
        elif path == "/_admin/heal":
            self._send(200, {"removed": st.heal(body.get("contains"), body.get("id"))})
        elif path == "/_admin/reset":
            st.reset()
            self._send(200, {"ok": True})
        elif path == "/_admin/script":
            st.responder = json_script_responder(body)
            self._send(200, {"ok": True})
        else:
            self._send(404, {"error": f"no admin route {path}"})

    # ---- the chat endpoints ---------------------------------------------------
    def _auth_error(self, route: str) -> str | None:
        auth = self.headers.get("Authorization") or ""
        key = self.headers.get("x-api-key") or auth.removeprefix("Bearer ").strip() or None
        if route == "anthropic" and not key:
            return "missing x-api-key header"
        want = self.server.state.require_key
        if want is not None and key != want:
            return f"Incorrect API key provided: {key}"
        return None

    def _chat(self, route: str, body: dict[str, Any]) -> None:
        st = self.server.state
        messages = normalise_messages(route, body)
        text = last_user(messages)
        delay, fault = st.match(route, text)
        st.enter(RequestLog(route, body, messages, fault.kind if fault else None,
                            time.time(), text))
        try:
            if delay:
                time.sleep(delay)
            auth = self._auth_error(route)
            if auth:
                self._send(401, _error_body(route, auth, "authentication_error"))
            elif fault is not None and fault.kind != "truncate":
                self._fault(route, fault)
            else:
                self._reply(route, body, messages, truncate=fault is not None)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        finally:
            st.leave()

    def _fault(self, route: str, fault: Fault) -> None:
        if fault.kind == "status":
            headers = {}
            if fault.retry_after is not None:
                headers["Retry-After"] = f"{fault.retry_after:g}"
                headers["retry-after-ms"] = str(int(fault.retry_after * 1000))
            self._send(fault.status, _error_body(route, fault.message, _err_type(fault.status)),
                       headers)
        elif fault.kind == "hang":
            self.server.state.wake.wait(fault.delay if fault.delay is not None else 3600)
            self.close_connection = True
        elif fault.kind == "disconnect":
            self.close_connection = True
        elif fault.kind == "malformed":
            self._send(200, None, raw=b'{"id": "broken", "choices": [ {"mess')
        elif fault.kind == "missing_fields":
            self._send(200, {"id": "fake-missing", "object": "chat.completion", "model": "x"}
                       if route == "openai" else {"id": "fake-missing", "type": "message"})

    def _reply(self, route: str, body: dict[str, Any], messages: list[dict[str, str]],
               truncate: bool) -> None:
        reply = self.server.state.responder(messages, body)
        if isinstance(reply, str):
            reply = Reply(reply)
        if truncate:
            reply = Reply(reply.text[: max(1, len(reply.text) // 2)], "length")
        limit = body.get("max_tokens") or body.get("max_completion_tokens")
        if (self.server.state.enforce_max_tokens and isinstance(limit, int)
                and reply.completion_tokens is None and estimate_tokens(reply.text) > limit):
            reply = Reply(reply.text[: limit * 4], "length")
        prompt_toks = reply.prompt_tokens or sum(estimate_tokens(m["content"]) for m in messages)
        out_toks = reply.completion_tokens or estimate_tokens(reply.text)
        model = str(body.get("model") or "fake-model")
        make = _openai_body if route == "openai" else _anthropic_body
        self._send(200, make(model, reply, prompt_toks, out_toks))


def _err_type(status: int) -> str:
    return {400: "invalid_request_error", 401: "authentication_error",
            403: "permission_error", 404: "not_found_error", 429: "rate_limit_error",
            529: "overloaded_error"}.get(status, "api_error")


def _error_body(route: str, message: str, etype: str) -> dict[str, Any]:
    if route == "anthropic":
        return {"type": "error", "error": {"type": etype, "message": message}}
    return {"error": {"message": message, "type": etype, "param": None, "code": None}}


_ids = itertools.count(1)


def _openai_body(model: str, reply: Reply, p: int, c: int) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-fake-{next(_ids)}", "object": "chat.completion",
        "created": int(time.time()), "model": model,
        "choices": [{"index": 0, "finish_reason": reply.finish_reason, "logprobs": None,
                     "message": {"role": "assistant", "content": reply.text}}],
        "usage": {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c},
    }


def _anthropic_body(model: str, reply: Reply, p: int, c: int) -> dict[str, Any]:
    stop = "max_tokens" if reply.finish_reason == "length" else "end_turn"
    return {
        "id": f"msg_fake_{next(_ids)}", "type": "message", "role": "assistant",
        "model": model, "content": [{"type": "text", "text": reply.text}],
        "stop_reason": stop, "stop_sequence": None,
        "usage": {"input_tokens": p, "output_tokens": c},
    }


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    # socketserver's default backlog of 5 overflowed when several shards opened their
    # connections at once: the kernel refused one, the client retried, and the fake's
    # count fell one short of the engine's. Real servers listen with a deep backlog.
    request_queue_size = 128
    state: _State


class FakeTeacher:
    """The fake server, run in a background thread. Use as a context manager."""

    def __init__(self, responder: Responder | None = None, *, host: str = "127.0.0.1",
                 port: int = 0, seed: int = 0, enforce_max_tokens: bool = True,
                 require_key: str | None = None) -> None:
        self.state = _State(responder or default_responder, seed, enforce_max_tokens,
                            require_key)
        self._server = _Server((host, port), _Handler)
        self._server.state = self.state
        self._thread: threading.Thread | None = None

    # ---- lifecycle --------------------------------------------------------------
    def start(self) -> FakeTeacher:
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        self.state.wake.set()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeTeacher:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url_openai(self) -> str:
        return self.base_url + "/v1"

    @property
    def base_url_anthropic(self) -> str:
        return self.base_url

    # ---- control ------------------------------------------------------------------
    def set_responder(self, responder: Responder) -> None:
        self.state.responder = responder

    def add_fault(self, kind: str, **kw: Any) -> int:
        return self.state.add(Fault(kind, **kw))

    def fail(self, status: int, **kw: Any) -> int:
        """Shortcut: `fake.fail(500, contains="X")` fails matching requests forever."""
        return self.add_fault("status", status=status, **kw)

    def heal(self, fault_id: int | None = None, *, contains: str | None = None) -> int:
        return self.state.heal(contains, fault_id)

    @property
    def faults(self) -> list[Fault]:
        with self.state.lock:
            return list(self.state.faults)

    # ---- observation --------------------------------------------------------------
    def count(self, contains: str | None = None, route: str | None = None) -> int:
        return self.state.count(contains, route)

    def counts(self) -> dict[str, Any]:
        return self.state.counts()

    @property
    def requests(self) -> list[RequestLog]:
        with self.state.lock:
            return list(self.state.log)

    @property
    def in_flight(self) -> int:
        return self.state.in_flight

    @property
    def max_in_flight(self) -> int:
        return self.state.max_in_flight

    def reset_counts(self) -> None:
        self.state.reset()


class FakeTeacherClient:
    """Controls a fake running in another process through its admin API."""

    def __init__(self, base_url: str, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/").removesuffix("/v1")
        self.timeout = timeout

    def _call(self, method: str, path: str, payload: Any = None) -> Any:
        data = None if payload is None else json.dumps(payload).encode()
        req = urllib.request.Request(self.base_url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=self.timeout) as resp:
            return json.loads(resp.read())

    def add_fault(self, kind: str, **kw: Any) -> int:
        return int(self._call("POST", "/_admin/faults", {"kind": kind, **kw})["ids"][0])

    def fail(self, status: int, **kw: Any) -> int:
        return self.add_fault("status", status=status, **kw)

    def heal(self, fault_id: int | None = None, *, contains: str | None = None) -> int:
        payload: dict[str, Any] = {}
        if fault_id is not None:
            payload["id"] = fault_id
        if contains is not None:
            payload["contains"] = contains
        return int(self._call("POST", "/_admin/heal", payload)["removed"])

    def counts(self, contains: str | None = None, route: str | None = None) -> dict[str, Any]:
        q = "&".join(f"{k}={urllib.request.quote(v)}"
                     for k, v in (("contains", contains), ("route", route)) if v is not None)
        return dict(self._call("GET", "/_admin/counts" + (f"?{q}" if q else "")))

    def count(self, contains: str | None = None, route: str | None = None) -> int:
        return int(self.counts(contains, route)["matched"])

    def requests(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "/_admin/requests")["requests"])

    def reset_counts(self) -> None:
        self._call("POST", "/_admin/reset", {})

    def set_script(self, script: dict[str, Any]) -> None:
        self._call("POST", "/_admin/script", script)


def json_script_responder(script: dict[str, Any]) -> Responder:
    """Rules in order: the first whose `contains` is in the last user message wins."""
    rules = list(script.get("rules", []))
    default = str(script.get("default", DEFAULT_TEXT))

    def respond(messages: list[dict[str, str]], body: dict[str, Any]) -> str | Reply:
        text = last_user(messages)
        for rule in rules:
            if rule.get("contains", "") in text:
                return Reply(str(rule.get("reply", default)), rule.get("finish_reason", "stop"))
        return default

    return respond


def load_script(path: str) -> Responder:
    p = Path(path)
    if p.suffix == ".json":
        return json_script_responder(json.loads(p.read_text()))
    spec = importlib.util.spec_from_file_location("fake_teacher_script", p)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load script {p}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses in the script look their module up here
    spec.loader.exec_module(module)
    fn = getattr(module, "respond", None) or getattr(module, "responder", None)
    if fn is None:
        raise SystemExit(f"script {p} must define respond(messages, body)")
    return fn  # type: ignore[no-any-return]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Fake OpenAI/Anthropic teacher server.")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8765)
    ap.add_argument("--script", help="responder: a .py defining respond() or a .json")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--require-key", default=None)
    args = ap.parse_args(argv)
    responder = load_script(args.script) if args.script else None
    fake = FakeTeacher(responder, host=args.host, port=args.port, seed=args.seed,
                       require_key=args.require_key)
    print(f"FAKE_TEACHER_URL http://{args.host}:{fake.port}", flush=True)
    try:
        fake._server.serve_forever(poll_interval=0.1)
    except KeyboardInterrupt:
        pass
    finally:
        fake.state.wake.set()
        fake._server.server_close()
    sys.exit(0)


if __name__ == "__main__":
    main()
