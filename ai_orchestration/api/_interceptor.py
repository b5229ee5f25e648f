"""The server interceptor every RPC passes through.

Per call, in order: a correlation id; authentication and the role check (``security``); a
request body that did not decode is ``INVALID_ARGUMENT`` (reason ``MALFORMED_REQUEST``); request
validation from the protos' ``buf.validate`` rules; the handler; then errors mapped to status
codes with ``google.rpc.Status`` details (``_errors``), the call counted in the metrics, and its
access line logged (``ai_orchestration.access``: every failed call, a sample of the others).
The call's correlation id, tenant and method are bound to its log records, and set on its
trace span (OpenTelemetry's interceptor, in front of this one, makes the span).
Unexpected exceptions become INTERNAL with a fixed message; the exception is logged with the
correlation id, which goes back in the ``x-correlation-id`` trailer.

Request bodies are decoded by the pipeline's own deserializer: grpc's would answer ``UNKNOWN``
for a body that is no message and log a traceback per call, so any client could flood the log.
Malformed bodies are logged as one warning a minute at most.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import random
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, NoReturn

import grpc
import grpc.aio
from google.protobuf.message import DecodeError, Message
from opentelemetry import trace

from ai_orchestration import errors
from ai_orchestration._outage import OutageLog
from ai_orchestration.api._errors import (
    CORRELATION_KEY,
    STATUS_DETAILS_KEY,
    internal_status,
    rich_status,
)
from ai_orchestration.api._validation import validate_request, validates_itself
from ai_orchestration.observability import LogContext, Metrics, bind_log_context, set_attributes
from ai_orchestration.security import Authenticator, set_principal

_log = logging.getLogger(__name__)
_access = logging.getLogger("ai_orchestration.access")
_SAFE_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
MALFORMED_REQUEST = "MALFORMED_REQUEST"
"""``ErrorInfo.reason`` of a request body that is not the method's message."""


class _Malformed:
    """A request body that did not decode, standing in for the request."""

    __slots__ = ("why",)

    def __init__(self, why: str) -> None:
        self.why = why


def _tolerant(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    """``deserializer``, answering a :class:`_Malformed` instead of raising."""
    if deserializer is None:
        return None

    def deserialize(data: bytes) -> Any:
        try:
            return deserializer(data)
        except (DecodeError, RecursionError) as error:
            return _Malformed(type(error).__name__)

    return deserialize


class _Call:
    """State of one RPC passing through the pipeline."""

    def __init__(
        self, pipeline: ServicePipeline, method: str, context: grpc.aio.ServicerContext[Any, Any]
    ) -> None:
        self.pipeline = pipeline
        self.method = method
        self.context = context
        self.started = time.perf_counter()
        self.code = grpc.StatusCode.OK
        self.recorded = False
        metadata = tuple(context.invocation_metadata() or ())
        self.metadata = metadata
        offered = next((str(v) for k, v in metadata if k in (CORRELATION_KEY, "x-request-id")), "")
        # A caller-supplied id is reused (so logs join up across services) only if it is tame.
        self.correlation_id = offered if _SAFE_ID.match(offered) else uuid.uuid4().hex
        self.tenant = ""
        bind_log_context(LogContext(correlation_id=self.correlation_id, rpc=method))

    def enter(self, request: Any, *, validate: bool) -> None:
        """Authenticates; refuses a request that did not decode; validates ``request`` when
        ``validate`` (not a request stream, nor a handler that validates its own)."""
        principal = self.pipeline.authenticator.authenticate(self.method, self.metadata)
        # Each RPC runs in its own task with a copied context, so the bindings cannot leak to
        # another call; they are not reset because a cancelled stream may be closed from another
        # context, where ContextVar.reset would raise.
        set_principal(principal)
        self.tenant = principal.tenant_id if principal is not None else ""
        bind_log_context(
            LogContext(correlation_id=self.correlation_id, tenant=self.tenant, rpc=self.method)
        )
        span = trace.get_current_span()
        if span.is_recording():
            request_id = _request_id(request)
            set_attributes(
                span,
                {
                    "crm.tenant_id": self.tenant,
                    "crm.correlation_id": self.correlation_id,
                    "crm.request_id": request_id,
                    "enduser.id": principal.subject if principal is not None else None,
                },
            )
        self.decoded(request)
        if validate:
            validate_request(request)

    def decoded(self, request: Any) -> None:
        """Raise ``INVALID_ARGUMENT`` (``MALFORMED_REQUEST``) for a body that did not decode."""
        if isinstance(request, _Malformed):
            self.pipeline.malformed.failed(
                "malformed request bodies (%s on %s)", request.why, self.method
            )
            what = f"a valid {self.method.rsplit('/', 1)[-1]} request message"
            raise errors.InvalidArgumentError(
                f"the request body is not {what}; send the method's protobuf message",
                [errors.FieldViolation("", f"the body does not decode as {what}", "MALFORMED")],
                reason=MALFORMED_REQUEST,
            )

    def exit(self) -> None:
        if self.recorded:
            return
        self.recorded = True
        elapsed = time.perf_counter() - self.started
        self.pipeline.metrics.observe(self.method, self.code.name, elapsed)
        self.pipeline.access(self, elapsed)

    async def fail(self, error: Exception) -> NoReturn:
        if (
            isinstance(error, NotImplementedError)
            and self.context.code() is grpc.StatusCode.UNIMPLEMENTED
        ):
            # grpc's generated servicer base sets UNIMPLEMENTED and then raises for a method
            # nobody implemented (the health service's List): that is no crash. Any other
            # NotImplementedError is a bug of ours and stays INTERNAL.
            error = errors.NotImplementedYetError(
                f"{self.method} is not implemented by this server", reason="UNIMPLEMENTED"
            )
        if isinstance(error, errors.OrchestrationError):
            code, status = rich_status(error, self.correlation_id)
            if code is grpc.StatusCode.INTERNAL or code is grpc.StatusCode.UNKNOWN:
                _log.error("%s failed [%s]: %s", self.method, self.correlation_id, error)
        else:
            code, status = grpc.StatusCode.INTERNAL, internal_status(self.correlation_id)
            _log.exception("%s crashed [%s]", self.method, self.correlation_id)
        self.code = code
        # Counted before the status goes out, so whoever sees the status also sees the count.
        self.exit()
        await self.context.abort(
            code,
            status.message,  # already cut to fit the trailers (see _errors)
            trailing_metadata=(
                (STATUS_DETAILS_KEY, status.SerializeToString()),
                (CORRELATION_KEY, self.correlation_id),
            ),
        )
        raise AssertionError("context.abort returned")  # pragma: no cover - abort always raises

    @contextlib.asynccontextmanager
    async def guard(self) -> AsyncIterator[None]:
        """The boundary around a handler: nothing but a status leaves it."""
        try:
            yield
        except grpc.aio.AbortError:
            self.note_abort()
            raise
        except Exception as error:
            await self.fail(error)
        finally:
            self.exit()

    def note_abort(self) -> None:
        # A handler aborted by itself (context.abort): keep its code for the metrics.
        code = self.context.code()
        self.code = code if isinstance(code, grpc.StatusCode) else grpc.StatusCode.UNKNOWN


def _request_id(request: Any) -> str | None:
    """The caller's ``request_id``: the request's own, or its ``run``'s (StreamRun)."""
    for holder in (request, getattr(request, "run", None)):
        value = getattr(holder, "request_id", None)
        if isinstance(value, str) and value:
            return value
    return None


async def _validated(call: _Call, requests: AsyncIterator[Any]) -> AsyncIterator[Message]:
    async for request in requests:
        call.decoded(request)
        validate_request(request)
        yield request


def is_malformed(request: object) -> bool:
    """Whether a message of a request stream did not decode. A stream handler marked
    ``validates_own_request`` receives such messages as they are, to reject them one by one
    (IngestInteractions) instead of failing the whole stream."""
    return isinstance(request, _Malformed)


def _passing_bytes(serializer: Callable[[Any], bytes] | None) -> Callable[[Any], bytes] | None:
    """``serializer``, except that a response already serialised (bytes) goes out as it is: a
    handler may build its messages elsewhere (BatchScoreLeads, in worker processes)."""
    if serializer is None:
        return None

    def serialize(response: Any) -> bytes:
        return response if isinstance(response, bytes) else serializer(response)

    return serialize


class ServicePipeline(grpc.aio.ServerInterceptor):
    """The one interceptor: auth, validation, error mapping, metrics."""

    def __init__(
        self,
        *,
        authenticator: Authenticator,
        metrics: Metrics,
        access_sample_rate: float = 1.0,
        rng: random.Random | None = None,
    ) -> None:
        """``access_sample_rate``: share of successful calls that get an access line (failed
        calls always do)."""
        self.authenticator = authenticator
        self.metrics = metrics
        self.access_sample_rate = access_sample_rate
        self._rng = rng or random.Random()
        self.malformed = OutageLog(_log)
        """Warnings about request bodies that did not decode, one a minute at most."""

    def access(self, call: _Call, seconds: float) -> None:
        """The access line of a finished call (method, code, duration, peer, correlation id)."""
        failed = call.code is not grpc.StatusCode.OK
        if not _access.isEnabledFor(logging.INFO):
            return
        if not failed and (
            self.access_sample_rate <= 0.0 or self._rng.random() >= self.access_sample_rate
        ):
            return
        duration_ms = round(seconds * 1000, 3)
        peer = call.context.peer() or ""
        _access.info(
            "%s %s %.3f ms %s",
            call.method,
            call.code.name,
            duration_ms,
            peer,
            extra={
                "method": call.method,
                "code": call.code.name,
                "duration_ms": duration_ms,
                "peer": peer,
            },
        )

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        method: str = handler_call_details.method
        return self._wrap(handler, method)

    def _wrap(
        self, handler: grpc.RpcMethodHandler[Any, Any], method: str
    ) -> grpc.RpcMethodHandler[Any, Any]:
        kwargs: dict[str, Any] = {
            "request_deserializer": _tolerant(handler.request_deserializer),
            "response_serializer": _passing_bytes(handler.response_serializer),
        }
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                self._unary_response(method, handler.unary_unary, streaming=False), **kwargs
            )
        if handler.stream_unary is not None:
            return grpc.stream_unary_rpc_method_handler(
                self._unary_response(method, handler.stream_unary, streaming=True), **kwargs
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                self._stream_response(method, handler.unary_stream, streaming=False), **kwargs
            )
        if handler.stream_stream is not None:
            return grpc.stream_stream_rpc_method_handler(
                self._stream_response(method, handler.stream_stream, streaming=True), **kwargs
            )
        return handler

    def _unary_response(
        self, method: str, behavior: Callable[..., Any], *, streaming: bool
    ) -> Callable[..., Awaitable[Any]]:
        checked = not validates_itself(behavior)

        async def wrapped(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            call = _Call(self, method, context)
            async with call.guard():
                call.enter(None if streaming else request, validate=checked and not streaming)
                arg = _validated(call, request) if streaming and checked else request
                return await behavior(arg, context)
            raise AssertionError("unreachable: guard() re-raises")  # pragma: no cover

        return wrapped

    def _stream_response(
        self, method: str, behavior: Callable[..., Any], *, streaming: bool
    ) -> Callable[..., AsyncIterator[Any]]:
        generates = inspect.isasyncgenfunction(behavior)
        checked = not streaming and not validates_itself(behavior)

        async def wrapped(
            request: Any, context: grpc.aio.ServicerContext[Any, Any]
        ) -> AsyncIterator[Any]:
            call = _Call(self, method, context)
            async with call.guard():
                call.enter(None if streaming else request, validate=checked)
                arg = _validated(call, request) if streaming else request
                if generates:
                    async for response in behavior(arg, context):
                        yield response
                else:
                    # Handlers may also stream by awaiting context.write() (the health
                    # service's Watch does); those return a coroutine, not an iterator.
                    await behavior(arg, context)

        return wrapped
