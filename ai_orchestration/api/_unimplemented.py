"""Handlers for the contract's RPCs whose issues are still open: they answer UNIMPLEMENTED.

Each is built from the service descriptor, so every RPC of the contract is routed (and passes
through authentication and validation like a served one) and says honestly that it is not
served yet, naming the issue that will serve it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
from google.protobuf import message_factory
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor

from ai_orchestration.errors import NotImplementedYetError


def _error(method: MethodDescriptor, issue: int | None) -> NotImplementedYetError:
    where = f" (issue #{issue})" if issue is not None else ""
    return NotImplementedYetError(
        f"{method.full_name} is part of the v1 contract but not served yet{where}",
        metadata={"issue": str(issue)} if issue is not None else {},
    )


def _handler(method: MethodDescriptor, issue: int | None) -> grpc.RpcMethodHandler[Any, Any]:
    request_cls = message_factory.GetMessageClass(method.input_type)
    response_cls = message_factory.GetMessageClass(method.output_type)
    kwargs: dict[str, Any] = {
        "request_deserializer": request_cls.FromString,
        "response_serializer": response_cls.SerializeToString,
    }

    async def unary(request: Any, context: Any) -> Any:
        raise _error(method, issue)

    async def streaming(request: Any, context: Any) -> AsyncIterator[Any]:
        raise _error(method, issue)
        yield  # pragma: no cover - makes this an async generator

    if method.client_streaming and method.server_streaming:
        return grpc.stream_stream_rpc_method_handler(streaming, **kwargs)
    if method.client_streaming:
        return grpc.stream_unary_rpc_method_handler(unary, **kwargs)
    if method.server_streaming:
        return grpc.unary_stream_rpc_method_handler(streaming, **kwargs)
    return grpc.unary_unary_rpc_method_handler(unary, **kwargs)


def unimplemented_service(service: ServiceDescriptor, issue: int | None) -> grpc.GenericRpcHandler:
    """A generic handler answering every RPC of ``service`` with UNIMPLEMENTED."""
    handlers = {method.name: _handler(method, issue) for method in service.methods}
    return grpc.method_handlers_generic_handler(service.full_name, handlers)
