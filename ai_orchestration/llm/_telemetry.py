"""What one gateway call tells the operators: a span and the GenAI histograms.

The span follows the OpenTelemetry GenAI semantic conventions (``chat {model}``, kind CLIENT):
operation, provider, request and response model, token usage, finish reasons, and the cache
that answered; failed attempts before the answer are span events. The histograms are the
conventions' ``gen_ai.client.token.usage`` and ``gen_ai.client.operation.duration``, in the
server's Prometheus registry.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from opentelemetry.trace import NoOpTracer, Span, SpanKind, Status, StatusCode, Tracer
from prometheus_client import CollectorRegistry, Histogram

from ai_orchestration.llm._config import Deployment
from ai_orchestration.llm._types import Completion, CompletionRequest

__all__ = ["CallTelemetry", "GenAiMetrics", "ObservedCall"]

OPERATION: Final[str] = "chat"
_TOKEN_BUCKETS: Final = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576)
_DURATION_BUCKETS: Final = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24)
_GENAI_LABELS: Final = ["operation", "provider", "request_model", "response_model"]


class GenAiMetrics:
    """``aio_gen_ai_client_token_usage`` and ``aio_gen_ai_client_operation_duration_seconds``."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.tokens = Histogram(
            "aio_gen_ai_client_token_usage",
            "Tokens per LLM call (gen_ai.client.token.usage), by operation, provider, "
            "requested (logical) model, answering model and token type (input, output). "
            "Cache hits and degraded answers use none and are not counted.",
            [*_GENAI_LABELS, "token_type"],
            registry=registry,
            buckets=_TOKEN_BUCKETS,
        )
        self.duration = Histogram(
            "aio_gen_ai_client_operation_duration_seconds",
            "Duration of LLM calls through the gateway (gen_ai.client.operation.duration), "
            "retries and failover included, cache hits too; error_type is empty on success.",
            [*_GENAI_LABELS, "error_type"],
            registry=registry,
            buckets=_DURATION_BUCKETS,
        )


@dataclass(slots=True)
class ObservedCall:
    """One call being observed: its request, span and start."""

    request: CompletionRequest
    span: Span
    started: float = field(default_factory=time.perf_counter)


class CallTelemetry:
    """Spans and histograms of gateway calls; either part may be absent."""

    def __init__(
        self,
        *,
        deployments: Mapping[str, Deployment],
        tracer: Tracer | None = None,
        metrics: GenAiMetrics | None = None,
    ) -> None:
        self._deployments = deployments
        self._tracer = tracer or NoOpTracer()
        self._metrics = metrics

    def begin(self, request: CompletionRequest, *, streaming: bool) -> ObservedCall:
        """Start the span of a call (a child of the current span; not made current, so that a
        streamed call may end in another context)."""
        span = self._tracer.start_span(f"{OPERATION} {request.model}", kind=SpanKind.CLIENT)
        if span.is_recording():
            context = request.context
            span.set_attributes(
                {
                    "gen_ai.operation.name": OPERATION,
                    "gen_ai.request.model": request.model,
                    "gen_ai.request.max_tokens": request.max_tokens,
                    "gen_ai.request.temperature": request.temperature,
                    "crm.llm.streaming": streaming,
                    "crm.tenant_id": context.tenant_id,
                    "crm.run_id": context.run_id,
                    "crm.step": context.step,
                }
            )
        return ObservedCall(request, span)

    def attempt_failed(self, call: ObservedCall, deployment: str, description: str) -> None:
        """One attempt of the route failed (the call goes on with the next)."""
        if call.span.is_recording():
            call.span.add_event(
                "gen_ai.attempt.failed",
                {"crm.llm.deployment": deployment, "error.message": description[:500]},
            )

    def finished(self, call: ObservedCall, completion: Completion) -> None:
        """End the call with its answer."""
        deployment = self._deployments.get(completion.deployment)
        provider = deployment.provider if deployment is not None else completion.deployment
        response_model = deployment.litellm_model if deployment is not None else ""
        error_type = "degraded" if completion.degraded else ""
        error_type = error_type or ("truncated" if completion.truncated else "")
        span = call.span
        if span.is_recording():
            span.set_attributes(
                {
                    "gen_ai.provider.name": provider,
                    "gen_ai.response.model": response_model,
                    "gen_ai.response.finish_reasons": [completion.finish_reason],
                    "gen_ai.usage.input_tokens": completion.usage.prompt_tokens,
                    "gen_ai.usage.output_tokens": completion.usage.completion_tokens,
                    "crm.llm.deployment": completion.deployment,
                    "crm.llm.cache_hit": bool(completion.cached),
                    "crm.llm.cache": completion.cached or "none",
                    "crm.llm.degraded": completion.degraded,
                    "crm.llm.cost_usd": completion.usage.cost_usd,
                }
            )
            if error_type:
                span.set_attribute("error.type", error_type)
                span.set_status(Status(StatusCode.ERROR, completion.error[:500]))
        span.end()
        if self._metrics is None:
            return
        labels = (OPERATION, provider, call.request.model, response_model)
        self._metrics.duration.labels(*labels, error_type).observe(
            time.perf_counter() - call.started
        )
        if not (completion.cached or completion.degraded):
            usage = completion.usage
            self._metrics.tokens.labels(*labels, "input").observe(usage.prompt_tokens)
            self._metrics.tokens.labels(*labels, "output").observe(usage.completion_tokens)

    def failed(self, call: ObservedCall, error: BaseException) -> None:
        """End a call that raised (refused by a budget, no degraded answer allowed, cancelled)."""
        span = call.span
        # An abandoned stream (closed by its reader) or a cancelled call is no failure of ours.
        quit_early = isinstance(error, GeneratorExit | asyncio.CancelledError)
        error_type = "cancelled" if quit_early else type(error).__name__
        if span.is_recording():
            span.set_attribute("error.type", error_type)
            span.set_status(Status(StatusCode.ERROR, str(error)[:500]))
        span.end()
        if self._metrics is not None:
            labels = (OPERATION, "", call.request.model, "", error_type)
            self._metrics.duration.labels(*labels).observe(time.perf_counter() - call.started)
