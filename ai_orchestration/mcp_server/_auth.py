"""The gRPC API's authentication and role table, applied to MCP requests and tool calls.

Two checks, as on the gRPC side: the SDK's bearer middleware refuses a request without a
valid token (HTTP 401) before any MCP message is read, and each tool call then checks the
role of the RPC the tool stands for, so a token without it gets a refused tool call.
"""

from __future__ import annotations

from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.provider import AccessToken

from ai_orchestration.errors import AuthenticationError, PermissionDeniedError
from ai_orchestration.security import Authenticator, Principal


class BearerTokens:
    """The SDK's ``TokenVerifier`` over the server's :class:`Authenticator`."""

    def __init__(self, authenticator: Authenticator) -> None:
        self._authenticator = authenticator

    async def verify_token(self, token: str) -> AccessToken | None:
        """The token as the SDK keeps it, or ``None`` (HTTP 401) when it does not verify."""
        try:
            # Signature, expiry and claims; roles are checked per tool call.
            principal = self._authenticator.identify([("authorization", f"Bearer {token}")])
        except AuthenticationError:
            return None
        return AccessToken(
            token=token, client_id=principal.subject, subject=principal.subject, scopes=[]
        )


def caller(authenticator: Authenticator, method: str) -> Principal:
    """The caller of a tool that stands for the gRPC ``method``, with that RPC's role.

    In dev mode (no verification configured) there is no token and the caller is the ``dev``
    tenant, as on the gRPC server.

    Raises:
        AuthenticationError: no valid token (not reached behind the bearer middleware).
        PermissionDeniedError: the token lacks the role ``method`` needs.
    """
    access = get_access_token()
    metadata = [] if access is None else [("authorization", f"Bearer {access.token}")]
    principal = authenticator.authenticate(method, metadata)
    if principal is None:  # pragma: no cover - tools never stand for a public RPC
        raise PermissionDeniedError(f"{method} is not a tenant's RPC")
    return principal
