"""Domain errors → gRPC status codes with ``google.rpc.Status`` details: the one table."""

from __future__ import annotations

from collections.abc import Mapping

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

from ai_orchestration import errors

STATUS_DETAILS_KEY = "grpc-status-details-bin"
CORRELATION_KEY = "x-correlation-id"
INTERNAL_MESSAGE = "internal error; quote the x-correlation-id trailer when reporting it"

STATUS_CODES: Mapping[type[errors.OrchestrationError], grpc.StatusCode] = {
    cls: grpc.StatusCode[cls.status_name]
    for cls in vars(errors).values()
    if isinstance(cls, type)
    and issubclass(cls, errors.OrchestrationError)
    and cls is not errors.OrchestrationError
}
"""Domain error class -> gRPC status code; each class names its own (``status_name``)."""


def status_code_for(error: errors.OrchestrationError) -> grpc.StatusCode:
    """The status code of a domain error (its nearest mapped base class)."""
    for cls in type(error).__mro__:
        code = STATUS_CODES.get(cls)
        if code is not None:
            return code
    return grpc.StatusCode.UNKNOWN


def _pack(message: object) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)  # type: ignore[arg-type]
    return packed


def _rpc_code(code: grpc.StatusCode) -> int:
    return int(code_pb2.Code.Value(code.name))


def rich_status(
    error: errors.OrchestrationError, correlation_id: str
) -> tuple[grpc.StatusCode, status_pb2.Status]:
    """The code and ``google.rpc.Status`` (ErrorInfo, plus BadRequest for validation)."""
    code = status_code_for(error)
    metadata = dict(error.metadata)
    metadata["correlationId"] = correlation_id
    details = [
        _pack(
            error_details_pb2.ErrorInfo(
                reason=error.reason, domain=errors.ERROR_DOMAIN, metadata=metadata
            )
        )
    ]
    if isinstance(error, errors.InvalidArgumentError) and error.violations:
        details.append(
            _pack(
                error_details_pb2.BadRequest(
                    field_violations=[
                        error_details_pb2.BadRequest.FieldViolation(
                            field=item.field, description=item.description, reason=item.rule
                        )
                        for item in error.violations
                    ]
                )
            )
        )
    if isinstance(error, errors.ResourceExhaustedError):
        details.extend(_quota_details(error))
    status = status_pb2.Status(code=_rpc_code(code), message=error.message, details=details)
    return code, status


def _quota_details(error: errors.ResourceExhaustedError) -> list[any_pb2.Any]:
    """``QuotaFailure`` for the exhausted quotas and ``RetryInfo`` when a retry may succeed."""
    details: list[any_pb2.Any] = []
    if error.quota_violations:
        violations = [
            error_details_pb2.QuotaFailure.Violation(
                subject=item.subject, description=item.description
            )
            for item in error.quota_violations
        ]
        details.append(_pack(error_details_pb2.QuotaFailure(violations=violations)))
    if error.retry_after is not None:
        delay = duration_pb2.Duration()
        delay.FromTimedelta(error.retry_after)
        details.append(_pack(error_details_pb2.RetryInfo(retry_delay=delay)))
    return details


def internal_status(correlation_id: str) -> status_pb2.Status:
    """The fixed INTERNAL status for unexpected exceptions: no message from the exception."""
    info = error_details_pb2.ErrorInfo(
        reason="INTERNAL", domain=errors.ERROR_DOMAIN, metadata={"correlationId": correlation_id}
    )
    return status_pb2.Status(
        code=code_pb2.INTERNAL, message=INTERNAL_MESSAGE, details=[_pack(info)]
    )
