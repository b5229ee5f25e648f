"""The service's one exception hierarchy.

Domain code raises these; the error interceptor (``ai_orchestration.api._errors``) maps each class
to a gRPC status code from a single table and attaches ``google.rpc`` details. Anything that is not
an :class:`OrchestrationError` becomes ``INTERNAL`` with a fixed message and a correlation id.

::

    OrchestrationError
    ├── InvalidArgumentError        INVALID_ARGUMENT  (carries field violations)
    ├── AuthenticationError         UNAUTHENTICATED
    ├── PermissionDeniedError       PERMISSION_DENIED
    ├── NotFoundError               NOT_FOUND
    ├── AlreadyExistsError          ALREADY_EXISTS
    ├── ConflictError               ABORTED           (e.g. request_id reused with another body)
    ├── FailedPreconditionError     FAILED_PRECONDITION
    ├── ResourceExhaustedError      RESOURCE_EXHAUSTED
    ├── UnavailableError            UNAVAILABLE
    └── NotImplementedYetError      UNIMPLEMENTED     (an RPC whose issue is still open)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta

__all__ = [
    "AlreadyExistsError",
    "AuthenticationError",
    "ConflictError",
    "FailedPreconditionError",
    "FieldViolation",
    "InvalidArgumentError",
    "NotFoundError",
    "NotImplementedYetError",
    "OrchestrationError",
    "PermissionDeniedError",
    "QuotaViolation",
    "ResourceExhaustedError",
    "UnavailableError",
]

ERROR_DOMAIN = "ai-orchestration.crm"


@dataclass(frozen=True)
class FieldViolation:
    """One invalid field of a request."""

    field: str
    """Dotted path of the field in the request, e.g. ``lead.email``."""
    description: str
    """What is wrong and what to send instead."""
    rule: str = ""
    """Identifier of the broken rule (the protovalidate rule id where there is one)."""


@dataclass(frozen=True)
class QuotaViolation:
    """One exhausted quota (goes out as a ``google.rpc.QuotaFailure`` violation)."""

    subject: str
    """Whose quota it is, e.g. ``tenant:acme``."""
    description: str
    """Which limit, how much of it is used, and when it resets."""


class OrchestrationError(Exception):
    """Base of every error the service raises on purpose.

    ``reason`` is a stable UPPER_SNAKE_CASE identifier callers may branch on; it goes out as
    ``google.rpc.ErrorInfo.reason`` with ``metadata``.
    """

    default_reason = "ERROR"
    status_name = "INTERNAL"
    """The gRPC status code name the error goes out with (``google.rpc.Code``)."""

    def __init__(
        self,
        message: str,
        *,
        reason: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason or self.default_reason
        self.metadata: dict[str, str] = dict(metadata or {})


class InvalidArgumentError(OrchestrationError):
    """The request is malformed; ``violations`` says which fields and why."""

    default_reason = "INVALID_ARGUMENT"
    status_name = "INVALID_ARGUMENT"

    def __init__(
        self,
        message: str,
        violations: Sequence[FieldViolation] = (),
        *,
        reason: str | None = None,
    ) -> None:
        super().__init__(message, reason=reason)
        self.violations: tuple[FieldViolation, ...] = tuple(violations)


class AuthenticationError(OrchestrationError):
    """The caller's credentials are missing, expired or invalid."""

    default_reason = "UNAUTHENTICATED"
    status_name = "UNAUTHENTICATED"


class PermissionDeniedError(OrchestrationError):
    """The caller is authenticated but its roles may not call this RPC or see this resource."""

    default_reason = "PERMISSION_DENIED"
    status_name = "PERMISSION_DENIED"


class NotFoundError(OrchestrationError):
    """The named resource does not exist for the caller's tenant."""

    default_reason = "NOT_FOUND"
    status_name = "NOT_FOUND"


class AlreadyExistsError(OrchestrationError):
    """A resource with that identity exists already."""

    default_reason = "ALREADY_EXISTS"
    status_name = "ALREADY_EXISTS"


class ConflictError(OrchestrationError):
    """Concurrent or contradictory use, e.g. a ``request_id`` reused with a different request."""

    default_reason = "CONFLICT"
    status_name = "ABORTED"


class FailedPreconditionError(OrchestrationError):
    """The system is not in a state in which the request can run."""

    default_reason = "FAILED_PRECONDITION"
    status_name = "FAILED_PRECONDITION"


class ResourceExhaustedError(OrchestrationError):
    """A quota, budget or size limit was reached.

    ``quota_violations`` say which quotas (``google.rpc.QuotaFailure``); ``retry_after``, when
    set, is how long to wait before retrying (``google.rpc.RetryInfo``).
    """

    default_reason = "RESOURCE_EXHAUSTED"
    status_name = "RESOURCE_EXHAUSTED"

    def __init__(
        self,
        message: str,
        *,
        reason: str | None = None,
        metadata: Mapping[str, str] | None = None,
        quota_violations: Sequence[QuotaViolation] = (),
        retry_after: timedelta | None = None,
    ) -> None:
        super().__init__(message, reason=reason, metadata=metadata)
        self.quota_violations: tuple[QuotaViolation, ...] = tuple(quota_violations)
        self.retry_after = retry_after


class UnavailableError(OrchestrationError):
    """A dependency is down; retrying later may succeed."""

    default_reason = "UNAVAILABLE"
    status_name = "UNAVAILABLE"


class NotImplementedYetError(OrchestrationError):
    """The RPC is part of the contract but not served by this version."""

    default_reason = "NOT_IMPLEMENTED"
    status_name = "UNIMPLEMENTED"
