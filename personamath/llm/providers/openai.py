"""OpenAI chat completions, and any OpenAI-compatible server (vLLM, llama.cpp server).

Why the SDK's retries are off: the engine owns retries, so one policy (backoff, jitter,
rate limits, stats) applies to every provider and retries are counted exactly once.
"""

from __future__ import annotations

import json
from typing import Any

import openai

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

NO_KEY = "not-needed"  # local OpenAI-compatible servers take any key, the SDK wants one
REASONING_PREFIXES = ("o1", "o3", "o4", "gpt-5")


def is_reasoning_model(model: str) -> bool:
    name = model.lower().rsplit("/", 1)[-1]
    return any(name == p or name.startswith(p + "-") for p in REASONING_PREFIXES)


class OpenAIProvider:
    """One request per `complete`; errors come back classified as LLMError."""

    name = "openai"

    def __init__(self, *, api_key: str | None = None, base_url: str | None = None,
                 timeout_s: float = 120.0) -> None:
        self._redact = Redactor(api_key)
        self._clients: LoopClients[openai.AsyncOpenAI] = LoopClients(
            lambda: openai.AsyncOpenAI(api_key=api_key or NO_KEY, base_url=base_url,
                                       max_retries=0, timeout=timeout_s + 5.0))

    async def complete(self, req: ChatRequest) -> ChatResponse:
        client = await self._clients.get()
        try:
            resp = await client.chat.completions.create(**self._params(req))
        except openai.APIStatusError as err:
            raise self._status(err) from None
        except openai.APITimeoutError:
            raise TransientLLMError("openai: request timed out", kind="timeout") from None
        except openai.APIConnectionError as err:
            raise TransientLLMError(self._redact(f"openai: connection error: {err}"),
                                    kind="connection") from None
        except (openai.APIResponseValidationError, json.JSONDecodeError, ValueError) as err:
            raise malformed("openai", self._redact(type(err).__name__ + ": " + str(err))[:300]
                            ) from None
        except openai.OpenAIError as err:
            raise PermanentLLMError(self._redact(f"openai: {err}"), kind="config") from None
        return self._parse(resp, req)

    async def aclose(self) -> None:
        await self._clients.aclose()

    @staticmethod
    def _params(req: ChatRequest) -> dict[str, Any]:
        params: dict[str, Any] = {
            "model": req.model,
            "messages": [{"role": m.role, "content": m.content} for m in req.messages],
        }
        if is_reasoning_model(req.model):
            # o-series and gpt-5 reject max_tokens and any temperature but the default.
            params["max_completion_tokens"] = req.max_tokens
        else:
            params["max_tokens"] = req.max_tokens
            params["temperature"] = req.temperature
        if req.seed is not None:
            params["seed"] = req.seed
        if req.stop:
            params["stop"] = list(req.stop)
        return params

    def _status(self, err: openai.APIStatusError) -> LLMError:
        retry_after = parse_retry_after(err.response.headers)
        message = error_message_from_body(err.body, err.message)
        return status_error("openai", err.status_code, message, retry_after, self._redact)

    def _parse(self, resp: Any, req: ChatRequest) -> ChatResponse:
        choices = getattr(resp, "choices", None)
        if not choices:
            raise malformed("openai", "no choices")
        choice = choices[0]
        finish = normalise_finish(getattr(choice, "finish_reason", None))
        message = getattr(choice, "message", None)
        text = getattr(message, "content", None)
        if text is None and finish != "length":
            raise malformed("openai", "no message content")
        usage = getattr(resp, "usage", None)
        return ChatResponse(
            text=text or "",
            finish_reason=finish,
            usage=Usage(getattr(usage, "prompt_tokens", 0) or 0,
                        getattr(usage, "completion_tokens", 0) or 0),
            request_id=getattr(resp, "id", None),
            model=getattr(resp, "model", None) or req.model,
            provider=self.name,
        )
