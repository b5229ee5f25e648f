"""Traces: the service's tracer provider, configured by the standard ``OTEL_*`` variables.

Tracing is off unless an OTLP endpoint is set (``OTEL_EXPORTER_OTLP_ENDPOINT`` or
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) or ``OTEL_TRACES_EXPORTER=console``; off, no interceptor
is installed and every tracer is the API's no-op one, so an untraced server pays nothing. On:

- ``OTEL_EXPORTER_OTLP_(TRACES_)PROTOCOL``: ``grpc`` (default) or ``http/protobuf``; the
  exporter reads its own variables (headers, timeout, compression, certificates);
- ``OTEL_TRACES_SAMPLER`` / ``OTEL_TRACES_SAMPLER_ARG``: e.g. ``parentbased_traceidratio`` and
  ``0.1`` for 10% of new traces (the SDK's default: every trace, and a caller's decision wins);
- ``OTEL_SERVICE_NAME`` and ``OTEL_RESOURCE_ATTRIBUTES`` (service name ``ai-orchestration``
  when neither names one);
- ``OTEL_SDK_DISABLED=true`` turns it all off; ``OTEL_BSP_*`` tune the batch processor.

The provider is owned by the server and handed to whoever makes spans: nothing here sets the
OpenTelemetry global provider, so two servers in one process (the tests) keep their spans apart.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import grpc.aio
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SpanExporter,
)
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    ParentBased,
    Sampler,
    TraceIdRatioBased,
)
from opentelemetry.trace import NoOpTracer, Span, SpanContext, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from ai_orchestration.errors import InvalidArgumentError

__all__ = [
    "NO_TRACER",
    "Tracing",
    "context_of",
    "current_traceparent",
    "link_current_span",
    "set_attributes",
    "span_context_of",
]

NO_TRACER: Tracer = NoOpTracer()
"""The tracer of a collaborator built without tracing (its spans cost nothing)."""

SERVICE_NAME = "ai-orchestration"
_W3C = TraceContextTextMapPropagator()
_TRUE = ("true", "1", "yes")


def _exporter(environ: Mapping[str, str]) -> SpanExporter | None:
    chosen = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if chosen in ("none", ""):
        endpoint = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or environ.get(
            "OTEL_EXPORTER_OTLP_ENDPOINT"
        )
        if chosen == "none" or not endpoint:
            return None
        chosen = "otlp"
    if chosen == "console":
        return ConsoleSpanExporter()
    if chosen != "otlp":
        raise InvalidArgumentError(
            f"OTEL_TRACES_EXPORTER={chosen!r} is not supported: use otlp, console or none",
            reason="BAD_TRACING_CONFIG",
        )
    protocol = (
        environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "grpc"
    )
    signal = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    base = environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    # The endpoint is passed, not left to the exporter's own reading of os.environ, so that the
    # mapping given is the whole configuration; headers, timeout and TLS it still reads itself.
    # Imported here: an untraced server never loads the exporters (or their HTTP stacks).
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (  # noqa: PLC0415
            OTLPSpanExporter as GrpcExporter,
        )

        return GrpcExporter(endpoint=signal or base)
    if protocol == "http/protobuf":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # noqa: PLC0415
            OTLPSpanExporter as HttpExporter,
        )

        traces = signal or (f"{base.rstrip('/')}/v1/traces" if base else None)
        return HttpExporter(endpoint=traces)
    raise InvalidArgumentError(
        f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol!r} is not supported: use grpc or http/protobuf",
        reason="BAD_TRACING_CONFIG",
    )


def _sampler(environ: Mapping[str, str]) -> Sampler:
    name = environ.get("OTEL_TRACES_SAMPLER", "parentbased_always_on").strip().lower()
    argument = environ.get("OTEL_TRACES_SAMPLER_ARG", "").strip()
    try:
        ratio = float(argument) if argument else 1.0
    except ValueError:
        ratio = -1.0
    if not 0.0 <= ratio <= 1.0:
        raise InvalidArgumentError(
            f"OTEL_TRACES_SAMPLER_ARG={argument!r} is not a ratio between 0 and 1",
            reason="BAD_TRACING_CONFIG",
        )
    samplers: dict[str, Sampler] = {
        "always_on": ALWAYS_ON,
        "always_off": ALWAYS_OFF,
        "traceidratio": TraceIdRatioBased(ratio),
        "parentbased_always_on": ParentBased(ALWAYS_ON),
        "parentbased_always_off": ParentBased(ALWAYS_OFF),
        "parentbased_traceidratio": ParentBased(TraceIdRatioBased(ratio)),
    }
    if name not in samplers:
        raise InvalidArgumentError(
            f"OTEL_TRACES_SAMPLER={name!r} is not supported: use one of {', '.join(samplers)}",
            reason="BAD_TRACING_CONFIG",
        )
    return samplers[name]


def _resource(environ: Mapping[str, str]) -> Resource:
    named = environ.get("OTEL_SERVICE_NAME") or "service.name=" in environ.get(
        "OTEL_RESOURCE_ATTRIBUTES", ""
    )
    # Resource.create reads OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES from the process.
    return Resource.create({} if named else {"service.name": SERVICE_NAME})


class Tracing:
    """The tracer provider of one server (or none: tracing off)."""

    def __init__(self, provider: TracerProvider | None = None, *, destination: str = "") -> None:
        """``provider``: the SDK provider spans go to (tests pass one with an in-memory
        exporter); None turns tracing off. ``destination``: where they go, for the logs."""
        self.provider = provider
        self.destination = destination

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> Tracing:
        """Tracing as the ``OTEL_*`` variables in ``environ`` configure it (module docstring).

        Raises:
            InvalidArgumentError: an exporter or protocol this service does not ship.
        """
        if environ.get("OTEL_SDK_DISABLED", "").strip().lower() in _TRUE:
            return cls(None)
        exporter = _exporter(environ)
        if exporter is None:
            return cls(None)
        tracing = cls.exporting_to(
            BatchSpanProcessor(exporter), resource=_resource(environ), sampler=_sampler(environ)
        )
        endpoint = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or environ.get(
            "OTEL_EXPORTER_OTLP_ENDPOINT", ""
        )
        sampler = environ.get("OTEL_TRACES_SAMPLER", "parentbased_always_on")
        ratio = environ.get("OTEL_TRACES_SAMPLER_ARG", "")
        where = f"OTLP {endpoint}" if endpoint else type(exporter).__name__
        tracing.destination = f"to {where}, sampler {sampler}{' ' + ratio if ratio else ''}"
        return tracing

    @classmethod
    def exporting_to(
        cls,
        processor: SpanProcessor,
        *,
        resource: Resource | None = None,
        sampler: Sampler = ALWAYS_ON,
    ) -> Tracing:
        """Tracing whose spans go to ``processor`` (every span by default)."""
        default = Resource.create({"service.name": SERVICE_NAME})
        provider = TracerProvider(resource=resource or default, sampler=sampler)
        provider.add_span_processor(processor)
        return cls(provider, destination=f"to {type(processor).__name__}")

    def describe(self) -> str:
        """Where spans go, for the start-up log line."""
        if self.provider is None:
            return "off (set OTEL_EXPORTER_OTLP_ENDPOINT to export)"
        return self.destination

    @property
    def enabled(self) -> bool:
        """Whether spans are made at all."""
        return self.provider is not None

    def tracer(self, name: str) -> Tracer:
        """The tracer of instrumentation scope ``name`` (the no-op tracer when off)."""
        if self.provider is None:
            return NO_TRACER
        return self.provider.get_tracer(name)

    def server_interceptors(self) -> list[grpc.aio.ServerInterceptor]:
        """OpenTelemetry's gRPC server interceptor (one SERVER span per RPC, the caller's
        ``traceparent`` continued), or none when tracing is off."""
        if self.provider is None:
            return []
        from opentelemetry.instrumentation.grpc import aio_server_interceptor  # noqa: PLC0415

        interceptor: grpc.aio.ServerInterceptor = aio_server_interceptor(  # type: ignore[no-untyped-call]
            tracer_provider=self.provider
        )
        return [interceptor]

    def shutdown(self) -> None:
        """Flush the spans still buffered and stop exporting (idempotent)."""
        if self.provider is not None:
            self.provider.shutdown()
            self.provider = None


def current_traceparent() -> str:
    """The current span's W3C ``traceparent``, to store with work that goes on elsewhere (a
    queued run); "" when there is no valid span."""
    carrier: dict[str, str] = {}
    if trace.get_current_span().get_span_context().is_valid:
        _W3C.inject(carrier)
    return carrier.get("traceparent", "")


def context_of(traceparent: str) -> Context | None:
    """The context to start a child span in, from a stored :func:`current_traceparent`."""
    if not traceparent:
        return None
    return _W3C.extract({"traceparent": traceparent})


def span_context_of(traceparent: str) -> SpanContext | None:
    """The span a stored :func:`current_traceparent` names (None if it names none)."""
    context = context_of(traceparent)
    if context is None:
        return None
    span_context = trace.get_current_span(context).get_span_context()
    return span_context if span_context.is_valid else None


def link_current_span(traceparent: str, **attributes: str) -> None:
    """Link the current span (an RPC acting on a run) to the span of ``traceparent``."""
    span = trace.get_current_span()
    target = span_context_of(traceparent)
    if target is not None and span.is_recording():
        span.add_link(target, attributes)


def set_attributes(span: Span, attributes: Mapping[str, Any]) -> None:
    """Set the attributes whose value is not None (OpenTelemetry refuses None)."""
    if span.is_recording():
        span.set_attributes({k: v for k, v in attributes.items() if v is not None})
