"""Anthropic Messages API (AsyncAnthropic), `base_url` supported for proxies and fakes.

Why the translation: Anthropic takes the system prompt as `system=` and reports
`stop_reason` ("max_tokens" means truncated); both are mapped onto the neutral types.
"""

from __future__ import annotations

import json
from typing import Any

import anthropic

from personamath.llm.providers.base import (
    LoopClients,
    Redactor,
    error_message_from_body,
    malformed,
    normalise_finish,
    parse_retry_after,
    status_error,
)
from personamath.llm.types import (
    ChatRequest,
    ChatResponse,
    LLMError,
    PermanentLLMError,
    TransientLLMError,
    Usage,
)


class AnthropicProvider:
    """One request per `complete`; errors come back classified as LLMError."""

    name = "anthropic"

    def __init__(self, *, api_key: str | None = None, base_url: str | None = None,
                 timeout_s: float = 120.0) -> None:
        self._redact = Redactor(api_key)
        self._clients: LoopClients[anthropic.AsyncAnthropic] = LoopClients(
            lambda: anthropic.AsyncAnthropic(api_key=api_key or "not-needed",
                                             base_url=base_url, max_retries=0,
                                             timeout=timeout_s + 5.0))

    async def complete(self, req: ChatRequest) -> ChatResponse:
        client = await self._clients.get()
        try:
            resp = await client.messages.create(**self._params(req))
        except anthropic.APIStatusError as err:
            raise self._status(err) from None
        except anthropic.APITimeoutError:
            raise TransientLLMError("anthropic: request timed out", kind="timeout") from None
        except anthropic.APIConnectionError as err:
            raise TransientLLMError(self._redact(f"anthropic: connection error: {err}"),
                                    kind="connection") from None
        except (anthropic.APIResponseValidationError, json.JSONDecodeError, ValueError) as err:
            raise malformed("anthropic",
                            self._redact(type(err).__name__ + ": " + str(err))[:300]) from None
        except anthropic.AnthropicError as err:
            raise PermanentLLMError(self._redact(f"anthropic: {err}"), kind="config") from None
        return self._parse(resp, req)

    async def aclose(self) -> None:
        await self._clients.aclose()

    @staticmethod
    def _params(req: ChatRequest) -> dict[str, Any]:
        system = "\n\n".join(m.content for m in req.messages if m.role == "system")
        params: dict[str, Any] = {
            "model": req.model,
            "messages": [{"role": m.role, "content": m.content}
                         for m in req.messages if m.role != "system"],
            "max_tokens": req.max_tokens,
            # SDK 2.x dropped `temperature` from create(); the API still reads it from the
            # body. Anthropic's range is [0, 1].
            "extra_body": {"temperature": min(req.temperature, 1.0)},
        }
        if system:
            params["system"] = system
        if req.stop:
            params["stop_sequences"] = list(req.stop)
        return params

    def _status(self, err: anthropic.APIStatusError) -> LLMError:
        retry_after = parse_retry_after(err.response.headers)
        message = error_message_from_body(err.body, err.message)
        return status_error("anthropic", err.status_code, message, retry_after, self._redact)

    def _parse(self, resp: Any, req: ChatRequest) -> ChatResponse:
        content = getattr(resp, "content", None)
        if content is None:
            raise malformed("anthropic", "no content")
        text = "".join(getattr(b, "text", "") or "" for b in content
                       if getattr(b, "type", None) == "text")
        finish = normalise_finish(getattr(resp, "stop_reason", None))
        if not content and finish != "length":
            raise malformed("anthropic", "empty content")
        usage = getattr(resp, "usage", None)
        return ChatResponse(
            text=text,
            finish_reason=finish,
            usage=Usage(getattr(usage, "input_tokens", 0) or 0,
                        getattr(usage, "output_tokens", 0) or 0),
            request_id=getattr(resp, "id", None),
            model=getattr(resp, "model", None) or req.model,
            provider=self.name,
        )
