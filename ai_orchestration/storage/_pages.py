"""Opaque page tokens shared by every listing of the repositories (keyset pagination).

A token is urlsafe base64 (unpadded) of ``[cursor, seal]``: the cursor is the last row's sort
key, the seal a digest binding it to the query (``scope``) it came from, so a token replayed on
another query or edited is refused with :class:`InvalidPageTokenError`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Final, TypeVar

from ai_orchestration.records import JsonValue
from ai_orchestration.storage._common import require_aware

__all__ = [
    "InvalidPageTokenError",
    "cursor_text",
    "cursor_time",
    "decode_page_token",
    "encode_page_token",
    "require_page_size",
]

_T = TypeVar("_T")
_TOKEN_SEAL_CHARS: Final[int] = 32


class InvalidPageTokenError(ValueError):
    """A page token this repository did not issue (or for another query)."""


def require_page_size(page_size: int) -> None:
    """Raises ``ValueError`` unless ``page_size`` is an integer of at least 1."""
    if isinstance(page_size, bool) or not isinstance(page_size, int) or page_size < 1:
        raise ValueError(f"page_size must be an integer of at least 1, got {page_size!r}")


def _seal(scope: Sequence[str], cursor: list[JsonValue]) -> str:
    # Binds the cursor to the query it came from and catches edited tokens. Not a secret: a
    # forged token could only move the cursor within rows the query shows the caller anyway.
    material = json.dumps([list(scope), cursor], separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(material.encode()).hexdigest()[:_TOKEN_SEAL_CHARS]


def encode_page_token(scope: Sequence[str], cursor: list[JsonValue]) -> str:
    """An opaque token: urlsafe base64 (unpadded) of ``[cursor, seal]``."""
    body = json.dumps([cursor, _seal(scope, cursor)], separators=(",", ":"), ensure_ascii=True)
    return base64.urlsafe_b64encode(body.encode()).decode().rstrip("=")


def decode_page_token(
    token: str, scope: Sequence[str], parse: Callable[[list[JsonValue]], _T]
) -> _T:
    """The cursor in ``token``, checked against ``scope`` and converted by ``parse``."""
    invalid = InvalidPageTokenError(
        "page_token was not issued for this query; pass the next_page_token of the previous "
        "page unchanged, or an empty token for the first page"
    )
    try:
        padded = token + "=" * (-len(token) % 4)
        decoded = json.loads(base64.b64decode(padded, altchars=b"-_", validate=True))
        cursor, seal = decoded
        if not isinstance(cursor, list) or not isinstance(seal, str):
            raise invalid
        if not hmac.compare_digest(seal, _seal(scope, cursor)):
            raise invalid
        return parse(cursor)
    except InvalidPageTokenError:
        raise
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        raise invalid from None


def cursor_time(value: JsonValue) -> datetime:
    """A cursor's timestamp part (``TypeError`` or ``ValueError`` when it is not one)."""
    if not isinstance(value, str):
        raise TypeError("cursor time must be a string")
    return require_aware("cursor", datetime.fromisoformat(value))


def cursor_text(value: JsonValue) -> str:
    """A cursor's key part (``TypeError`` when it is not a string)."""
    if not isinstance(value, str):
        raise TypeError("cursor key must be a string")
    return value
