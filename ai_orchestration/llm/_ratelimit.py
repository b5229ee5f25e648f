"""Per-tenant requests- and tokens-per-minute limits over a sliding window.

Two implementations of one :class:`RateLimiter` protocol: :class:`InProcessRateLimiter` for the
embedded default (one process), and :class:`RedisRateLimiter`, which keeps each tenant's window
in a Redis sorted set and decides in one Lua script, so replicas share the limit and two calls
racing for the last slot cannot both get it.

A call is admitted when, counting it, the calls and the tokens admitted in the last
``window_seconds`` stay within the limits; otherwise :class:`RateLimitedError` says which limit,
how much is used and how long until enough of the window has slid by (``retry_after``).
Tokens are counted at admission from the caller's estimate.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Final, Literal, Protocol

import redis.asyncio

from ai_orchestration import _redis
from ai_orchestration.errors import QuotaViolation
from ai_orchestration.llm._types import RateLimitedError

__all__ = [
    "InProcessRateLimiter",
    "RateLimiter",
    "RateLimits",
    "RedisRateLimiter",
]

DEFAULT_WINDOW_SECONDS: Final[float] = 60.0

Limit = Literal["requests_per_minute", "tokens_per_minute"]


@dataclass(frozen=True, slots=True)
class RateLimits:
    """A tenant's per-window limits; 0 means no limit."""

    requests_per_minute: int = 0
    """Calls admitted per window."""
    tokens_per_minute: int = 0
    """Estimated tokens admitted per window."""

    @property
    def unlimited(self) -> bool:
        """True when neither limit is set."""
        return self.requests_per_minute <= 0 and self.tokens_per_minute <= 0


class RateLimiter(Protocol):
    """Admits a call for a tenant or raises :class:`RateLimitedError`."""

    async def acquire(self, tenant_id: str, tokens: int, limits: RateLimits) -> None:
        """Count a call of ``tokens`` estimated tokens, or raise if it would break a limit."""

    async def close(self) -> None:
        """Release connections; safe to call twice."""


def _refusal(
    tenant_id: str, limit: Limit, *, used: int, allowed: int, retry_after: float, tokens: int
) -> RateLimitedError:
    wait = timedelta(seconds=max(retry_after, 0.001))
    unit = "calls" if limit == "requests_per_minute" else "tokens"
    if limit == "tokens_per_minute" and tokens > allowed:
        description = (
            f"{limit}: one call of {tokens} estimated tokens is more than the limit of "
            f"{allowed} per minute; lower max_tokens or raise the limit"
        )
    else:
        description = (
            f"{limit}: {used} of {allowed} {unit} used in the last minute; room for this call "
            f"in {wait.total_seconds():.3f} s"
        )
    return RateLimitedError(
        f"rate limit reached for tenant {tenant_id}: {description}",
        metadata={"limit": limit, "used": str(used), "allowed": str(allowed)},
        quota_violations=[QuotaViolation(subject=f"tenant:{tenant_id}", description=description)],
        retry_after=wait,
    )


class InProcessRateLimiter:
    """Sliding-window log per tenant in this process (the embedded default)."""

    def __init__(
        self,
        *,
        window_seconds: float = DEFAULT_WINDOW_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``clock`` returns seconds (monotonic); injected so tests can move time."""
        self._window = window_seconds
        self._clock = clock
        # Per tenant: (admitted at, tokens) oldest first, and the running token sum.
        self._calls: dict[str, deque[tuple[float, int]]] = {}
        self._tokens: dict[str, int] = {}

    async def acquire(self, tenant_id: str, tokens: int, limits: RateLimits) -> None:
        """Admit or raise; no await inside, so concurrent tasks cannot interleave a decision."""
        if limits.unlimited:
            return
        now = self._clock()
        calls = self._calls.setdefault(tenant_id, deque())
        used = self._tokens.get(tenant_id, 0)
        while calls and calls[0][0] <= now - self._window:
            used -= calls.popleft()[1]
        self._tokens[tenant_id] = used
        rpm, tpm = limits.requests_per_minute, limits.tokens_per_minute
        if rpm > 0 and len(calls) + 1 > rpm:
            retry = calls[0][0] + self._window - now
            raise _refusal(
                tenant_id,
                "requests_per_minute",
                used=len(calls),
                allowed=rpm,
                retry_after=retry,
                tokens=tokens,
            )
        if tpm > 0 and used + tokens > tpm:
            if tokens > tpm:
                retry = self._window
            else:
                retry = _token_wait(calls, used + tokens - tpm) + self._window - now
            raise _refusal(
                tenant_id,
                "tokens_per_minute",
                used=used,
                allowed=tpm,
                retry_after=retry,
                tokens=tokens,
            )
        calls.append((now, tokens))
        self._tokens[tenant_id] = used + tokens

    async def close(self) -> None:
        """Nothing to release."""
        self._calls.clear()
        self._tokens.clear()


def _token_wait(calls: Sequence[tuple[float, int]], excess: int) -> float:
    """When (admission time of the call) enough tokens leave the window to free ``excess``."""
    freed = 0
    for admitted, tokens in calls:
        freed += tokens
        if freed >= excess:
            return admitted
    return calls[-1][0]


# KEYS[1]: sorted set of admitted calls (score = admission ms, member = "<seq>:<tokens>");
# KEYS[2]: sequence making members unique. ARGV: window ms, rpm, tpm, tokens.
# Redis TIME, not the replicas' clocks, so every replica judges the same window.
_ACQUIRE_LUA: Final[str] = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000 + math.floor(tonumber(now_parts[2]) / 1000)
local window = tonumber(ARGV[1])
local rpm, tpm, tokens = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local entries = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
local count = #entries / 2
if rpm > 0 and count + 1 > rpm then
  return {0, 'requests_per_minute', count, tonumber(entries[2]) + window - now}
end
if tpm > 0 then
  local used = 0
  for i = 1, #entries, 2 do
    used = used + tonumber(string.match(entries[i], ':(%d+)$'))
  end
  if used + tokens > tpm then
    if tokens > tpm then
      return {0, 'tokens_per_minute', used, window}
    end
    local excess, freed = used + tokens - tpm, 0
    for i = 1, #entries, 2 do
      freed = freed + tonumber(string.match(entries[i], ':(%d+)$'))
      if freed >= excess then
        return {0, 'tokens_per_minute', used, tonumber(entries[i + 1]) + window - now}
      end
    end
  end
end
local seq = redis.call('INCR', KEYS[2])
redis.call('ZADD', KEYS[1], now, seq .. ':' .. tokens)
redis.call('PEXPIRE', KEYS[1], window + 1000)
redis.call('PEXPIRE', KEYS[2], window + 1000)
return {1, '', 0, 0}
"""


class RedisRateLimiter:
    """Sliding-window log per tenant in Redis, shared by every replica; atomic per call."""

    def __init__(
        self,
        *,
        redis_client: redis.asyncio.Redis,
        window_seconds: float = DEFAULT_WINDOW_SECONDS,
        key_prefix: str = "aio:llm:rl",
        owns_client: bool = False,
    ) -> None:
        """``owns_client``: :meth:`close` closes ``redis_client`` too."""
        self._redis = redis_client
        self._window_ms = max(1, math.ceil(window_seconds * 1000))
        self._prefix = key_prefix
        self._owns_client = owns_client
        self._script = redis_client.register_script(_ACQUIRE_LUA)
        self._closed = False

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        window_seconds: float = DEFAULT_WINDOW_SECONDS,
        key_prefix: str = "aio:llm:rl",
    ) -> RedisRateLimiter:
        """A limiter with its own client for ``url`` (closed by :meth:`close`)."""
        return cls(
            redis_client=_redis.redis_client(url),
            window_seconds=window_seconds,
            key_prefix=key_prefix,
            owns_client=True,
        )

    async def acquire(self, tenant_id: str, tokens: int, limits: RateLimits) -> None:
        """Admit or raise, decided inside Redis in one script run."""
        if limits.unlimited:
            return
        # The hash tag keeps a tenant's two keys in one Redis Cluster slot.
        base = f"{self._prefix}:{{{tenant_id}}}"
        reply = await self._script(
            keys=[f"{base}:calls", f"{base}:seq"],
            args=[
                self._window_ms,
                limits.requests_per_minute,
                limits.tokens_per_minute,
                max(tokens, 0),
            ],
        )
        admitted, limit, used, wait_ms = reply
        if int(admitted) == 1:
            return
        name: Limit = (
            "requests_per_minute" if _text(limit) == "requests_per_minute" else "tokens_per_minute"
        )
        allowed = (
            limits.requests_per_minute
            if name == "requests_per_minute"
            else limits.tokens_per_minute
        )
        raise _refusal(
            tenant_id,
            name,
            used=int(used),
            allowed=allowed,
            retry_after=int(wait_ms) / 1000,
            tokens=tokens,
        )

    async def close(self) -> None:
        """Close the client if this limiter created it; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        if self._owns_client:
            await self._redis.aclose()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
