"""The LLM gateway: the only place that imports litellm (issue #4).

Every agent and insight call goes through it: routing and failover across deployments, the
bundled local model, cost accounting and budgets, caches, prompt templates and guards.
"""

from ai_orchestration.llm._types import (
    BudgetExceededError,
    CallContext,
    ChatMessage,
    Completion,
    CompletionRequest,
    LlmUnavailableError,
    RateLimitedError,
    TokenDelta,
    Usage,
    UsageLedger,
)

__all__ = [
    "BudgetExceededError",
    "CallContext",
    "ChatMessage",
    "Completion",
    "CompletionRequest",
    "LlmUnavailableError",
    "RateLimitedError",
    "TokenDelta",
    "Usage",
    "UsageLedger",
]
