"""A typed view of the service's errors, decoded from ``google.rpc.Status`` details."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import grpc
from google.rpc import error_details_pb2, status_pb2

_STATUS_TRAILER = "grpc-status-details-bin"
CORRELATION_TRAILER = "x-correlation-id"


@dataclass(frozen=True)
class FieldViolation:
    """One invalid request field, from ``google.rpc.BadRequest``."""

    field: str
    description: str
    reason: str = ""


@dataclass(frozen=True)
class ServiceError(Exception):
    """An RPC failure with its details decoded.

    ``reason``/``domain``/``metadata`` come from ``google.rpc.ErrorInfo``; ``field_violations``
    from ``google.rpc.BadRequest``; ``correlation_id`` from the trailing metadata (quote it when
    reporting an INTERNAL error).
    """

    code: grpc.StatusCode
    message: str
    reason: str = ""
    domain: str = ""
    metadata: dict[str, str] = field(default_factory=dict)
    field_violations: tuple[FieldViolation, ...] = ()
    quota_violations: tuple[str, ...] = ()
    correlation_id: str = ""

    def __str__(self) -> str:
        return f"{self.code.name}: {self.message}"

    @classmethod
    def from_rpc_error(cls, error: BaseException) -> ServiceError:
        """Decode a ``grpc.RpcError`` (sync or asyncio); re-raise anything else as is."""
        if not isinstance(error, grpc.RpcError):
            raise error
        call: Any = error  # RpcError raised by a call is also a grpc.Call
        code: grpc.StatusCode = call.code()
        message: str = call.details() or ""
        trailers: tuple[tuple[str, str | bytes], ...] = tuple(call.trailing_metadata() or ())
        status = status_pb2.Status()
        correlation_id = ""
        for key, value in trailers:
            if key == _STATUS_TRAILER and isinstance(value, bytes):
                status.ParseFromString(value)
            elif key == CORRELATION_TRAILER:
                correlation_id = str(value)
        return cls._from_status(code, message, status, correlation_id)

    @classmethod
    def _from_status(
        cls, code: grpc.StatusCode, message: str, status: status_pb2.Status, correlation_id: str
    ) -> ServiceError:
        info = error_details_pb2.ErrorInfo()
        bad = error_details_pb2.BadRequest()
        quota = error_details_pb2.QuotaFailure()
        for detail in status.details:
            for target in (info, bad, quota):
                if detail.Is(target.DESCRIPTOR):
                    detail.Unpack(target)
        return cls(
            code=code,
            message=message,
            reason=info.reason,
            domain=info.domain,
            metadata=dict(info.metadata),
            field_violations=tuple(
                FieldViolation(v.field, v.description, v.reason) for v in bad.field_violations
            ),
            quota_violations=tuple(v.description for v in quota.violations),
            correlation_id=correlation_id,
        )
