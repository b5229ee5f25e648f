"""TokenVerifier's memory of verified tokens: it answers as a full check would."""

from __future__ import annotations

import time

import jwt
import pytest

from ai_orchestration.errors import AuthenticationError
from ai_orchestration.security._tokens import TokenVerifier, _Key

SECRET = "unit-test-secret-with-at-least-32-bytes!!"


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def _token(tenant: str = "acme", *, expires_in: float = 3600, secret: str = SECRET) -> str:
    claims = {"tenant_id": tenant, "roles": ["viewer"], "exp": int(time.time() + expires_in)}
    return jwt.encode(claims, secret, algorithm="HS256")


def _verifier(clock: Clock, cache_size: int = 8) -> TokenVerifier:
    return TokenVerifier(
        keys=[_Key("HS256", SECRET)], leeway_seconds=5, clock=clock, cache_size=cache_size
    )


def test_a_remembered_token_gives_the_same_principal() -> None:
    verifier = _verifier(Clock())
    token = _token()
    first = verifier.verify(f"Bearer {token}")
    assert verifier.verify(f"Bearer {token}") == first
    assert first.tenant_id == "acme"


def test_a_remembered_token_expires_at_exp_plus_leeway() -> None:
    clock = Clock()
    verifier = _verifier(clock)
    token = _token(expires_in=60)
    verifier.verify(f"Bearer {token}")
    clock.now += 60 + 5 + 1
    with pytest.raises(AuthenticationError) as caught:
        verifier.verify(f"Bearer {token}")
    assert caught.value.reason == "TOKEN_EXPIRED"


def test_a_rejected_token_stays_rejected() -> None:
    verifier = _verifier(Clock())
    forged = _token(secret="another-secret-that-is-also-32-bytes-long")
    for _ in range(2):
        with pytest.raises(AuthenticationError) as caught:
            verifier.verify(f"Bearer {forged}")
        assert caught.value.reason == "TOKEN_INVALID"


def test_the_memory_is_bounded_and_forgets_the_least_recently_used() -> None:
    clock = Clock()
    verifier = _verifier(clock, cache_size=2)
    first, second, third = (_token(f"tenant-{n}", expires_in=60 + n) for n in range(3))
    verifier.verify(f"Bearer {first}")
    verifier.verify(f"Bearer {second}")
    verifier.verify(f"Bearer {first}")  # first is now the most recently used
    verifier.verify(f"Bearer {third}")  # second is forgotten
    assert len(verifier._verified) == 2
    assert set(verifier._verified) == {first, third}
