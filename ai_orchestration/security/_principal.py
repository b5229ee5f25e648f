"""Who is calling: the tenant and roles of the current RPC."""

from __future__ import annotations

import contextvars
import re
from dataclasses import dataclass

from ai_orchestration.errors import FailedPreconditionError

TENANT_ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


@dataclass(frozen=True)
class Principal:
    """The authenticated caller of an RPC."""

    tenant_id: str
    """Tenant every read and write of the call is scoped to."""
    subject: str
    """``sub`` claim (service or user id), for audit logs."""
    roles: frozenset[str]
    """Roles from the token, implied roles included."""


_current: contextvars.ContextVar[Principal | None] = contextvars.ContextVar(
    "aio_principal", default=None
)


def current_principal() -> Principal:
    """The caller of the RPC being served; set by the auth interceptor."""
    principal = _current.get()
    if principal is None:
        # Only reachable if a handler runs outside the interceptor chain: a wiring bug.
        raise FailedPreconditionError("no authenticated caller in this context")
    return principal


def set_principal(principal: Principal | None) -> None:
    """Bind ``principal`` to the current context (the RPC's task)."""
    _current.set(principal)
