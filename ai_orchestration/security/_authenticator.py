"""Authentication and authorization of one RPC from its metadata."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from ai_orchestration.errors import PermissionDeniedError
from ai_orchestration.security._principal import Principal
from ai_orchestration.security._roles import REQUIRED_ROLE, is_public
from ai_orchestration.security._tokens import TokenVerifier, dev_principal


class Authenticator:
    """Decides who calls and whether they may.

    With ``verifier=None`` the server is in dev mode: every caller is the ``dev`` tenant with all
    roles. The server refuses to start in dev mode on a non-loopback address.
    """

    def __init__(
        self,
        *,
        verifier: TokenVerifier | None,
        required_roles: Mapping[str, str] = REQUIRED_ROLE,
    ) -> None:
        self._verifier = verifier
        self._required_roles = required_roles

    @property
    def dev_mode(self) -> bool:
        """True when no token verification is configured."""
        return self._verifier is None

    def identify(self, metadata: Iterable[tuple[str, str | bytes]]) -> Principal:
        """The caller the metadata's bearer token names (signature, expiry, issuer, audience
        checked), whatever it may call: roles are checked per method by :meth:`authenticate`.
        In dev mode, the ``dev`` tenant.

        Raises AuthenticationError (bad or missing token).
        """
        if self._verifier is None:
            return dev_principal()
        header = next((str(value) for key, value in metadata if key == "authorization"), None)
        return self._verifier.verify(header)

    def authenticate(
        self, method: str, metadata: Iterable[tuple[str, str | bytes]]
    ) -> Principal | None:
        """The caller of ``method``; ``None`` for public services (health, reflection).

        Raises AuthenticationError (bad or missing token) or PermissionDeniedError (role).
        """
        if is_public(method):
            return None
        principal = self.identify(metadata)
        required = self._required_roles.get(method)
        if required is None:
            raise PermissionDeniedError(
                f"{method} is not open to any role", reason="METHOD_NOT_ALLOWED"
            )
        if required not in principal.roles:
            raise PermissionDeniedError(
                f"{method} needs the role {required!r} (or one implying it); "
                f"the token grants {sorted(principal.roles) or 'none'}",
                reason="ROLE_MISSING",
                metadata={"requiredRole": required},
            )
        return principal
