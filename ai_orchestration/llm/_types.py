"""Value types shared by every part of the LLM gateway (no litellm, no grpc imports here).

A caller builds a :class:`CompletionRequest` (logical model name, messages, a
:class:`CallContext` saying whom the call is for) and gets back a :class:`Completion` that always
says which deployment answered, what it cost, and whether the answer is degraded (the
deterministic template), cached, or truncated (a stream that failed after its first token).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from ai_orchestration import errors

__all__ = [
    "BudgetExceededError",
    "CallContext",
    "ChatMessage",
    "Completion",
    "CompletionRequest",
    "LlmUnavailableError",
    "RateLimitedError",
    "ResponseCache",
    "Role",
    "TokenDelta",
    "Usage",
    "UsageLedger",
]

Role = Literal["system", "user", "assistant", "tool"]
CacheKind = Literal["", "exact", "semantic"]

DEGRADED_DEPLOYMENT = "fallback/template"
"""``Completion.deployment`` of the deterministic answer given when every deployment failed."""


@dataclass(frozen=True, slots=True)
class ChatMessage:
    """One chat message, as the OpenAI chat API has it."""

    role: Role
    content: str


@dataclass(frozen=True, slots=True)
class CallContext:
    """Whom an LLM call is for: used for budgets, rate limits, cache scoping and accounting."""

    tenant_id: str
    """The caller's tenant (from its credentials)."""
    run_id: str = ""
    """Workflow run the call belongs to, if any."""
    step: str = ""
    """Workflow step / agent that made the call, if any."""
    template: str = ""
    """Name of the prompt template the messages came from, if any."""
    template_version: int = 0
    """Version of that template."""


@dataclass(frozen=True, slots=True)
class CompletionRequest:
    """A chat completion to run through the gateway."""

    model: str
    """Logical model name from the routing config (``fast``, ``smart``, ...)."""
    messages: tuple[ChatMessage, ...]
    """The conversation; the last message is usually the user's."""
    context: CallContext
    """Whom the call is for."""
    max_tokens: int = 256
    """Most tokens to generate."""
    temperature: float = 0.0
    """Sampling temperature; 0 is deterministic where the provider allows."""
    use_cache: bool = True
    """Per-call opt-out of the response caches."""
    allow_degraded: bool = True
    """Whether a deterministic template answer is acceptable when every deployment fails; if
    not, the call raises :class:`LlmUnavailableError`."""
    metadata: Mapping[str, str] = field(default_factory=dict)
    """Free-form labels recorded with the call."""
    fallback_text: str = ""
    """The caller's deterministic text for the degraded answer (when every deployment failed
    and ``allow_degraded``); empty means a generic sentence saying the model is unavailable."""
    response_schema: Mapping[str, Any] | None = None
    """A JSON schema the answer must follow (sent as a strict ``json_schema`` response format);
    None leaves the answer free text. Providers without structured output drop it."""
    response_schema_name: str = "answer"
    """Name of ``response_schema`` on the wire (OpenAI requires one)."""
    stop: tuple[str, ...] = ()
    """Sequences that end the answer where they first appear (not part of the text)."""
    frequency_penalty: float = 0.0
    """OpenAI semantics: positive values discourage tokens by how often they already
    appeared; 0 sends nothing."""
    presence_penalty: float = 0.0
    """OpenAI semantics: positive values discourage tokens that appeared at all; 0 sends
    nothing."""
    top_p: float = 1.0
    """Nucleus sampling: sample only from the most likely tokens whose probabilities add up to
    this; 1 sends nothing."""

    def constraints(self) -> dict[str, Any]:
        """The optional generation parameters that differ from their defaults, by their OpenAI
        names (``response_format``, ``stop``, the penalties, ``top_p``): what the gateway adds
        to a call, and what makes two otherwise equal requests different in the caches. A plain
        request has none, so its call and cache key are what they were before these existed."""
        arguments: dict[str, Any] = {}
        if self.response_schema is not None:
            arguments["response_format"] = {
                "type": "json_schema",
                "json_schema": {
                    "name": self.response_schema_name,
                    "schema": dict(self.response_schema),
                    "strict": True,
                },
            }
        if self.stop:
            arguments["stop"] = list(self.stop)
        if self.frequency_penalty:
            arguments["frequency_penalty"] = self.frequency_penalty
        if self.presence_penalty:
            arguments["presence_penalty"] = self.presence_penalty
        if self.top_p < 1.0:
            arguments["top_p"] = self.top_p
        return arguments


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens and cost of one call."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0

    @property
    def total_tokens(self) -> int:
        """Prompt plus completion tokens."""
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True, slots=True)
class Completion:
    """The answer to a :class:`CompletionRequest`; always says where it came from."""

    text: str
    """The generated text (the partial text when ``truncated``)."""
    model: str
    """The logical model that was asked for."""
    deployment: str
    """The deployment that answered (``DEGRADED_DEPLOYMENT`` for the template answer)."""
    usage: Usage
    """Tokens and cost (zero for cache hits and the degraded answer)."""
    finish_reason: str = "stop"
    """``stop``, ``length``, or ``error`` when truncated."""
    degraded: bool = False
    """True when every deployment failed and this is the deterministic template answer."""
    cached: CacheKind = ""
    """Which cache answered, if any."""
    truncated: bool = False
    """True when a stream failed after its first token: ``text`` is only what arrived."""
    error: str = ""
    """Why the answer is degraded or truncated (empty otherwise)."""


@dataclass(frozen=True, slots=True)
class TokenDelta:
    """A piece of streamed text."""

    text: str


class UsageLedger(Protocol):
    """Where the gateway checks budgets before a call and records usage after it."""

    async def check(self, context: CallContext, model: str, estimated_tokens: int) -> None:
        """Raise :class:`BudgetExceededError` or :class:`RateLimitedError` if the call may not
        run now."""

    async def record(self, request: CompletionRequest, completion: Completion) -> None:
        """Record the tokens and cost of a finished call."""


class ResponseCache(Protocol):
    """A response cache the gateway consults before a call and fills after it."""

    async def get(self, request: CompletionRequest) -> Completion | None:
        """The cached answer to ``request`` (with ``cached`` set), or None."""

    async def put(self, request: CompletionRequest, completion: Completion) -> None:
        """Remember ``completion`` as the answer to ``request``."""


class LlmUnavailableError(errors.UnavailableError):
    """Every deployment of the logical model failed (or its circuit is open)."""

    default_reason = "LLM_UNAVAILABLE"


class BudgetExceededError(errors.ResourceExhaustedError):
    """The tenant's monthly budget (USD or tokens) would be exceeded by the call."""

    default_reason = "LLM_BUDGET_EXCEEDED"


class RateLimitedError(errors.ResourceExhaustedError):
    """The tenant's requests- or tokens-per-minute limit is reached; retry after a while."""

    default_reason = "LLM_RATE_LIMITED"
