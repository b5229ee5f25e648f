"""Bearer-token verification: HS256 secret, RS256 public key or a JWKS file."""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import jwt

from ai_orchestration.config import Settings
from ai_orchestration.errors import AuthenticationError
from ai_orchestration.security._principal import TENANT_ID_PATTERN, Principal
from ai_orchestration.security._roles import effective_roles

DEV_TENANT = "dev"
VERIFIED_CACHE_SIZE: Final[int] = 4096
"""Most verified tokens remembered per server (least recently used forgotten first)."""


@dataclass(frozen=True)
class _Key:
    algorithm: str
    key: Any


class TokenVerifier:
    """Turns an ``authorization`` header value into a :class:`Principal` or raises
    :class:`AuthenticationError` with a reason the caller can act on.

    A client sends the same token with every call until it expires, and checking its signature
    and claims cost more than the rest of a ScoreLead call. So a token that passed every check
    is remembered, with its principal, until its ``exp`` (plus the leeway): the checks a later
    call would repeat give the same answer for the same token string, except expiry, which is
    checked on every call. Rejected tokens are never remembered, so the cache holds only
    tokens signed by a trusted key, at most :data:`VERIFIED_CACHE_SIZE` of them.
    """

    def __init__(
        self,
        *,
        keys: Sequence[_Key] = (),
        jwks: jwt.PyJWKSet | None = None,
        issuer: str = "",
        audience: str = "",
        leeway_seconds: int = 30,
        clock: Callable[[], float] = time.time,
        cache_size: int = VERIFIED_CACHE_SIZE,
    ) -> None:
        self._clock = clock
        self._cache_size = cache_size
        self._verified: OrderedDict[str, tuple[Principal, float]] = OrderedDict()
        self._keys = tuple(keys)
        self._jwks = jwks
        self._issuer = issuer
        self._audience = audience
        self._leeway = leeway_seconds

    @classmethod
    def from_settings(cls, settings: Settings) -> TokenVerifier:
        """Build from the ``AIO_AUTH_*`` settings (at least one key must be configured)."""
        keys: list[_Key] = []
        if settings.auth_hs256_secret:
            keys.append(_Key("HS256", settings.auth_hs256_secret))
        if settings.auth_public_key_file is not None:
            keys.append(_Key("RS256", Path(settings.auth_public_key_file).read_text()))
        jwks = None
        if settings.auth_jwks_file is not None:
            jwks = jwt.PyJWKSet.from_dict(json.loads(Path(settings.auth_jwks_file).read_text()))
        return cls(
            keys=keys,
            jwks=jwks,
            issuer=settings.auth_issuer,
            audience=settings.auth_audience,
            leeway_seconds=settings.auth_leeway_seconds,
        )

    def verify(self, authorization: str | None) -> Principal:
        """Verify ``Bearer <JWT>``; claims ``tenant_id`` and ``roles`` are required."""
        if not authorization:
            raise AuthenticationError(
                "missing credentials: send 'authorization: Bearer <JWT>' metadata",
                reason="CREDENTIALS_MISSING",
            )
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthenticationError(
                "the authorization metadata must be 'Bearer <JWT>'", reason="CREDENTIALS_MALFORMED"
            )
        token = token.strip()
        if (known := self._verified.get(token)) is not None:
            principal, valid_until = known
            if self._clock() >= valid_until:
                del self._verified[token]
                raise _expired()
            self._verified.move_to_end(token)
            return principal
        claims = self._decode(token)
        principal = _principal_from_claims(claims)
        self._remember(token, principal, claims)
        return principal

    def _remember(self, token: str, principal: Principal, claims: dict[str, Any]) -> None:
        expiry = claims.get("exp")
        if not isinstance(expiry, int | float) or isinstance(expiry, bool):
            return  # PyJWT requires and checks exp; anything else is not worth remembering
        self._verified[token] = (principal, float(expiry) + self._leeway)
        if len(self._verified) > self._cache_size:
            self._verified.popitem(last=False)

    def _candidate_keys(self, token: str) -> list[_Key]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise AuthenticationError("the token is not a JWT", reason="TOKEN_INVALID") from exc
        algorithm = str(header.get("alg", ""))
        candidates = [key for key in self._keys if key.algorithm == algorithm]
        kid = header.get("kid")
        if self._jwks is not None:
            for jwk in self._jwks.keys:
                if (kid is None or jwk.key_id == kid) and jwk.algorithm_name in ("", algorithm):
                    candidates.append(_Key(algorithm, jwk.key))
        if not candidates:
            raise AuthenticationError(
                f"tokens signed with {algorithm or 'no algorithm'!r} are not accepted",
                reason="TOKEN_ALGORITHM_REJECTED",
            )
        return candidates

    def _decode(self, token: str) -> dict[str, Any]:
        last_error: jwt.PyJWTError | None = None
        for key in self._candidate_keys(token):
            try:
                return jwt.decode(
                    token,
                    key.key,
                    algorithms=[key.algorithm],
                    audience=self._audience or None,
                    issuer=self._issuer or None,
                    leeway=self._leeway,
                    options={"require": ["exp"], "verify_aud": bool(self._audience)},
                )
            except jwt.ExpiredSignatureError as exc:
                raise _expired() from exc
            except jwt.PyJWTError as exc:
                last_error = exc
        raise AuthenticationError(
            f"the token was rejected: {_describe(last_error)}", reason="TOKEN_INVALID"
        )


def _expired() -> AuthenticationError:
    return AuthenticationError("the token has expired: get a new one", reason="TOKEN_EXPIRED")


def _describe(error: jwt.PyJWTError | None) -> str:
    # PyJWT's messages name the failed check (signature, issuer, audience, missing claim)
    # without echoing the token, so they are safe and useful to return.
    return str(error) if error is not None else "no key matched"


def _principal_from_claims(claims: dict[str, Any]) -> Principal:
    tenant = claims.get("tenant_id")
    if not isinstance(tenant, str) or not TENANT_ID_PATTERN.match(tenant):
        raise AuthenticationError(
            "the token needs a 'tenant_id' claim of lowercase letters, digits, '-' or '_'",
            reason="TOKEN_TENANT_INVALID",
        )
    roles = claims.get("roles", [])
    if not isinstance(roles, list) or not all(isinstance(role, str) for role in roles):
        raise AuthenticationError(
            "the token's 'roles' claim must be a list of strings", reason="TOKEN_ROLES_INVALID"
        )
    return Principal(
        tenant_id=tenant, subject=str(claims.get("sub", "")), roles=effective_roles(roles)
    )


def dev_principal() -> Principal:
    """The caller in dev mode (no auth configured, loopback only): tenant ``dev``, all roles."""
    return Principal(tenant_id=DEV_TENANT, subject="dev", roles=effective_roles(["admin"]))
