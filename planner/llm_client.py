"""One conversation turn with an OpenAI-compatible endpoint, in whichever output mode it supports.

The openai SDK does the transport: retries with backoff on connection errors, 429 and 5xx (it
honours Retry-After) and per-request timeouts, both from `LLMSettings`. This module picks the
output mode (native structured output, a forced tool call, or JSON asked for in the prompt),
turns SDK errors into our small error classes, and counts tokens.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from planner.llm_errors import LLMError, LLMNotConfigured, LLMRefused, LLMUnavailable
from planner.llm_settings import LLMSettings, OutputMode
from planner.llm_wire import PLAN_TOOL_NAME

if TYPE_CHECKING:
    from openai import OpenAI

# the order `auto` tries; a server that rejects a mode with 400/422 gets the next one
_CASCADE: tuple[OutputMode, ...] = ("json_schema", "tools", "json")
_PLACEHOLDER_KEY = "not-needed"  # local servers ignore the key, but the SDK insists on one


@dataclass
class Usage:
    """Tokens spent, summed over every call of a planning job."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    calls: int = 0

    def add(self, usage: Any) -> None:
        self.calls += 1
        if usage is None:
            return
        self.prompt_tokens += int(getattr(usage, "prompt_tokens", 0) or 0)
        self.completion_tokens += int(getattr(usage, "completion_tokens", 0) or 0)
        self.total_tokens += int(getattr(usage, "total_tokens", 0) or 0)

    def to_data(self) -> dict[str, int]:
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                "total_tokens": self.total_tokens, "calls": self.calls}


@dataclass
class Answer:
    """What the model said in one turn."""

    text: str
    """The JSON text (structured modes) or prose."""
    mode: OutputMode
    """The output mode that produced it."""
    truncated: bool = False
    """The answer hit the token cap and is cut off."""
    finish_reason: str | None = None


class _ModeRejected(Exception):
    """The server does not support the requested output mode (400/422 on the request)."""


@dataclass
class LLMClient:
    """A thin, typed wrapper of `openai.OpenAI` for the planner."""

    settings: LLMSettings
    client: OpenAI | None = None
    """An SDK client to use as it is (tests, custom transports); built from settings when None."""
    usage: Usage = field(default_factory=Usage)
    mode: OutputMode | None = None
    """The output mode the server accepted, once known."""

    def __post_init__(self) -> None:
        self._sampling: dict[str, Any] = {"temperature": self.settings.temperature,
                                          "max_tokens": self.settings.max_tokens}
        if self.client is None:
            if not self.settings.configured:
                raise LLMNotConfigured()
            from openai import OpenAI

            key = self.settings.api_key.get_secret_value() if self.settings.api_key else _PLACEHOLDER_KEY
            self.client = OpenAI(api_key=key or _PLACEHOLDER_KEY, base_url=self.settings.base_url,
                                 timeout=self.settings.timeout_s, max_retries=self.settings.max_retries)
        if self.settings.output_mode != "auto":
            self.mode = self.settings.output_mode

    @property
    def model(self) -> str:
        return self.settings.model

    # -- public --------------------------------------------------------------------------------
    def structured(self, messages: list[dict[str, Any]], schema: dict[str, Any],
                   json_messages: list[dict[str, Any]] | None = None) -> Answer:
        """Ask for a JSON answer matching `schema`. `json_messages` is the conversation to send in
        JSON mode (its system prompt spells the schema out); `messages` serves the other modes."""
        modes = (self.mode,) if self.mode else _CASCADE
        rejected: list[str] = []
        for mode in modes:
            try:
                answer = self._structured_once(mode, json_messages if mode == "json" and json_messages
                                               else messages, schema)
            except _ModeRejected as exc:
                rejected.append(f"{mode}: {exc}")
                continue
            self.mode = mode
            return answer
        raise LLMError("the endpoint rejected every output mode (" + "; ".join(rejected) + ")")

    def text(self, messages: list[dict[str, Any]]) -> Answer:
        """A plain prose answer (explanations)."""
        response = self._create(messages=messages)
        return self._answer(response, "json")

    # -- internals -----------------------------------------------------------------------------
    def _structured_once(self, mode: OutputMode, messages: list[dict[str, Any]],
                         schema: dict[str, Any]) -> Answer:
        extra: dict[str, Any] = {}
        if mode == "json_schema":
            extra["response_format"] = {"type": "json_schema", "json_schema": {
                "name": "workflow_plan", "strict": True, "schema": schema}}
        elif mode == "tools":
            extra["tools"] = [{"type": "function", "function": {
                "name": PLAN_TOOL_NAME, "description": "Submit the workflow plan.",
                "parameters": schema, "strict": True}}]
            extra["tool_choice"] = {"type": "function", "function": {"name": PLAN_TOOL_NAME}}
        response = self._create(messages=messages, mode_probe=self.mode is None and mode != "json", **extra)
        return self._answer(response, mode)

    def _create(self, *, messages: list[dict[str, Any]], mode_probe: bool = False, **extra: Any) -> Any:
        import openai

        assert self.client is not None
        try:
            response = self._send(messages, extra)
        except (openai.BadRequestError, openai.UnprocessableEntityError) as exc:
            if mode_probe:
                raise _ModeRejected(_error_message(exc)) from None
            raise LLMError(f"the endpoint rejected the request ({exc.status_code}): "
                           f"{_error_message(exc)}") from None
        except openai.APITimeoutError:
            raise LLMUnavailable(f"no answer within {self.settings.timeout_s:g}s "
                                 f"({self.settings.max_retries} retries)") from None
        except openai.APIConnectionError:
            raise LLMUnavailable(f"cannot connect to {self.settings.base_url or 'the OpenAI API'}") from None
        except openai.RateLimitError as exc:
            raise LLMUnavailable(f"rate limited after {self.settings.max_retries} retries: "
                                 f"{_error_message(exc)}", status=429) from None
        except openai.AuthenticationError as exc:
            raise LLMUnavailable(f"the endpoint refused the API key: {_error_message(exc)}",
                                 status=exc.status_code) from None
        except openai.NotFoundError as exc:
            raise LLMUnavailable(f"model `{self.settings.model}` or endpoint not found: "
                                 f"{_error_message(exc)}", status=404) from None
        except openai.APIStatusError as exc:
            raise LLMUnavailable(f"HTTP {exc.status_code} after {self.settings.max_retries} retries: "
                                 f"{_error_message(exc)}", status=exc.status_code) from None
        self.usage.add(getattr(response, "usage", None))
        return response

    def _send(self, messages: list[dict[str, Any]], extra: dict[str, Any]) -> Any:
        import openai

        assert self.client is not None
        for _ in range(3):
            try:
                return self.client.chat.completions.create(
                    model=self.settings.model, messages=messages,  # type: ignore[arg-type]
                    **self._sampling, **extra,
                )
            except (openai.BadRequestError, openai.UnprocessableEntityError) as exc:
                # reasoning models refuse `max_tokens` (they take `max_completion_tokens`) and any
                # temperature but the default: adapt and remember, whatever the output mode
                adapted = _adapt_sampling(self._sampling, _error_message(exc))
                if adapted is None:
                    raise
                self._sampling = adapted
        return self.client.chat.completions.create(
            model=self.settings.model, messages=messages, **self._sampling, **extra,  # type: ignore[arg-type]
        )

    def _answer(self, response: Any, mode: OutputMode) -> Answer:
        choices = getattr(response, "choices", None) or []
        if not choices:
            raise LLMError("the endpoint answered without any choice")
        choice = choices[0]
        message = choice.message
        finish = choice.finish_reason
        if getattr(message, "refusal", None):
            raise LLMRefused(str(message.refusal))
        if finish == "content_filter":
            raise LLMRefused("the endpoint's content filter stopped the answer")
        text = message.content or ""
        calls = getattr(message, "tool_calls", None) or []
        for call in calls:
            function = getattr(call, "function", None)
            if function is not None and function.arguments:
                text = function.arguments
                break
        return Answer(text=text, mode=mode, truncated=finish == "length", finish_reason=finish)


def _adapt_sampling(sampling: dict[str, Any], message: str) -> dict[str, Any] | None:
    """The sampling parameters without the one the endpoint rejected, or None when it is not that."""
    text = message.lower()
    if "max_tokens" in text and "max_tokens" in sampling:
        adapted = {k: v for k, v in sampling.items() if k != "max_tokens"}
        adapted["max_completion_tokens"] = sampling["max_tokens"]
        return adapted
    if "temperature" in text and "temperature" in sampling:
        return {k: v for k, v in sampling.items() if k != "temperature"}
    return None


def _error_message(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])
        if isinstance(inner, str):
            return inner
    message = getattr(exc, "message", None) or str(exc)
    return json.dumps(message) if not isinstance(message, str) else message
