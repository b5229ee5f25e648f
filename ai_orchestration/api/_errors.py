"""Domain errors → gRPC status codes with ``google.rpc.Status`` details: the one table.

Every status fits in the trailers a default client accepts (gRPC's metadata soft limit is 8 KiB,
the hard one 16 KiB; the details travel base64-encoded): the message is cut at
:data:`MAX_MESSAGE_CHARS`, metadata values and violation texts likewise, ``BadRequest`` lists
the first :data:`MAX_VIOLATIONS` violations and one more saying how many were left out, and the
serialised status is kept under :data:`MAX_STATUS_BYTES` by listing fewer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

from ai_orchestration import errors

MAX_MESSAGE_CHARS: Final = 500
"""Longest status message (it goes out again, percent-encoded, in ``grpc-message``)."""
MAX_VIOLATIONS: Final = 50
"""Most field violations listed in ``BadRequest``; one more says how many were left out."""
MAX_STATUS_BYTES: Final = 4800
"""Largest serialised ``google.rpc.Status``: base64 in the trailers, 6.4 KiB, which leaves room
for ``grpc-message`` (500 characters, 1.5 KiB percent-encoded at worst) under 8 KiB."""
_MAX_TEXT: Final = 300
"""Longest field path, violation description or metadata value."""
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
    metadata = {key: _cut(value) for key, value in error.metadata.items()}
    metadata["correlationId"] = correlation_id
    info = error_details_pb2.ErrorInfo(
        reason=error.reason, domain=errors.ERROR_DOMAIN, metadata=metadata
    )
    details = [_pack(info)]
    if isinstance(error, errors.ResourceExhaustedError):
        details.extend(_quota_details(error))
    status = status_pb2.Status(
        code=_rpc_code(code), message=_cut(error.message, MAX_MESSAGE_CHARS), details=details
    )
    if isinstance(error, errors.InvalidArgumentError) and error.violations:
        _add_violations(status, error.violations)
    return code, status


def _cut(text: str, limit: int = _MAX_TEXT) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _add_violations(status: status_pb2.Status, violations: Sequence[errors.FieldViolation]) -> None:
    """``BadRequest`` with as many of ``violations`` as fit (at most :data:`MAX_VIOLATIONS`)
    and, when some do not, one saying how many were left out."""
    shown = min(len(violations), MAX_VIOLATIONS)
    while True:
        listed = [
            error_details_pb2.BadRequest.FieldViolation(
                field=_cut(item.field), description=_cut(item.description), reason=item.rule
            )
            for item in violations[:shown]
        ]
        if shown < len(violations):
            listed.append(
                error_details_pb2.BadRequest.FieldViolation(
                    description=f"{len(violations) - shown} more violations are not listed; "
                    "fix these and send the request again",
                    reason="MORE_VIOLATIONS",
                )
            )
        candidate = status_pb2.Status()
        candidate.CopyFrom(status)
        candidate.details.append(_pack(error_details_pb2.BadRequest(field_violations=listed)))
        if candidate.ByteSize() <= MAX_STATUS_BYTES or shown <= 1:
            status.CopyFrom(candidate)
            return
        shown = max(1, shown * 3 // 4)


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
