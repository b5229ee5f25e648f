"""A circuit breaker per deployment, its state in a store every replica can share.

States: *closed* (calls pass) → *open* after ``failure_threshold`` failures within ``window``
seconds (calls are refused without reaching the provider) → *half-open* once ``cooldown``
seconds have passed (exactly one probe call is let through; the others stay refused until the
probe reports or its lease of ``cooldown`` seconds runs out) → *closed* on the probe's success,
*open* again on its failure.

Two stores: :class:`InProcessBreakerStore` (the embedded default; one event loop, so every
method is atomic by construction) and :class:`RedisBreakerStore` (one hash per deployment,
updated by Lua scripts so concurrent replicas never lose a failure or let two probes through).
Times are wall-clock seconds from the caller's clock so replicas agree on them.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Literal, Protocol

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from ai_orchestration._outage import OutageLog
from ai_orchestration.llm._config import BreakerPolicy

__all__ = [
    "BreakerState",
    "BreakerStore",
    "CircuitBreaker",
    "InProcessBreakerStore",
    "RedisBreakerStore",
]

_log = logging.getLogger(__name__)

BreakerState = Literal["closed", "open", "half_open"]


class BreakerStore(Protocol):
    """Where breaker state lives; every method is atomic with respect to other callers."""

    async def admit(self, key: str, now: float, policy: BreakerPolicy) -> bool:
        """Whether a call may go to ``key`` now (taking the probe lease when half-open)."""

    async def record_success(self, key: str) -> None:
        """A call to ``key`` succeeded: close its circuit."""

    async def record_failure(self, key: str, now: float, policy: BreakerPolicy) -> bool:
        """A call to ``key`` failed; True when this failure opened the circuit."""

    async def state(self, key: str, now: float) -> BreakerState:
        """The circuit's state at ``now`` (for metrics and tests)."""


@dataclass(slots=True)
class _Circuit:
    open_until: float = 0.0
    probe_until: float = 0.0
    window_start: float = 0.0
    failures: int = 0


def _state_of(open_until: float, now: float) -> BreakerState:
    if open_until == 0:
        return "closed"
    return "open" if now < open_until else "half_open"


class InProcessBreakerStore:
    """Breaker state in this process (no awaits inside, so each method is atomic)."""

    def __init__(self) -> None:
        self._circuits: dict[str, _Circuit] = {}

    async def admit(self, key: str, now: float, policy: BreakerPolicy) -> bool:
        """See :meth:`BreakerStore.admit`."""
        circuit = self._circuits.get(key)
        if circuit is None or circuit.open_until == 0:
            return True
        if now < circuit.open_until or circuit.probe_until > now:
            return False
        circuit.probe_until = now + policy.cooldown
        return True

    async def record_success(self, key: str) -> None:
        """See :meth:`BreakerStore.record_success`."""
        self._circuits.pop(key, None)

    async def record_failure(self, key: str, now: float, policy: BreakerPolicy) -> bool:
        """See :meth:`BreakerStore.record_failure`."""
        circuit = self._circuits.setdefault(key, _Circuit())
        if circuit.open_until:
            if now < circuit.open_until:
                return False  # a call that started before the circuit opened
            circuit.open_until, circuit.probe_until = now + policy.cooldown, 0.0
            return True
        if now - circuit.window_start > policy.window:
            circuit.window_start, circuit.failures = now, 0
        circuit.failures += 1
        if circuit.failures < policy.failure_threshold:
            return False
        circuit.open_until, circuit.probe_until, circuit.failures = now + policy.cooldown, 0.0, 0
        return True

    async def state(self, key: str, now: float) -> BreakerState:
        """See :meth:`BreakerStore.state`."""
        circuit = self._circuits.get(key)
        return _state_of(circuit.open_until if circuit else 0.0, now)


# Fields of the hash: open_until (0: closed), probe_until, window_start, failures.
_ADMIT: Final[str] = """
local open_until = tonumber(redis.call('HGET', KEYS[1], 'open_until') or '0')
if open_until == 0 then return 1 end
local now = tonumber(ARGV[1])
if now < open_until then return 0 end
local probe_until = tonumber(redis.call('HGET', KEYS[1], 'probe_until') or '0')
if probe_until > now then return 0 end
redis.call('HSET', KEYS[1], 'probe_until', tostring(now + tonumber(ARGV[2])))
return 1
"""

_FAILURE: Final[str] = """
local now, threshold = tonumber(ARGV[1]), tonumber(ARGV[2])
local window, cooldown, ttl = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local open_until = tonumber(redis.call('HGET', KEYS[1], 'open_until') or '0')
local opened = 0
if open_until > 0 then
  if now < open_until then return 0 end
  redis.call('HSET', KEYS[1], 'open_until', tostring(now + cooldown), 'probe_until', '0')
  opened = 1
else
  local start = tonumber(redis.call('HGET', KEYS[1], 'window_start') or '0')
  local failures = tonumber(redis.call('HGET', KEYS[1], 'failures') or '0')
  if now - start > window then start = now; failures = 0 end
  failures = failures + 1
  if failures >= threshold then
    redis.call('HSET', KEYS[1], 'open_until', tostring(now + cooldown), 'probe_until', '0',
               'failures', '0', 'window_start', tostring(now))
    opened = 1
  else
    redis.call('HSET', KEYS[1], 'window_start', tostring(start), 'failures', tostring(failures))
  end
end
redis.call('EXPIRE', KEYS[1], ttl)
return opened
"""


class RedisBreakerStore:
    """Breaker state shared by every replica through Redis (atomic Lua scripts).

    If Redis cannot be reached the breaker *fails open*: calls are admitted and failures are
    not counted (logged once a minute), so an outage of Redis never blocks LLM calls. The
    breaker sits on every call's path: give ``client`` a short ``socket_timeout`` and few
    retries (redis-py's default retry policy backs off for seconds per command while Redis is
    down).
    """

    def __init__(self, *, client: aioredis.Redis, prefix: str = "aio:llm:breaker:") -> None:
        self._client = client
        self._prefix = prefix
        self._admit = client.register_script(_ADMIT)
        self._failure = client.register_script(_FAILURE)
        self._outage = OutageLog(_log)

    async def admit(self, key: str, now: float, policy: BreakerPolicy) -> bool:
        """See :meth:`BreakerStore.admit`."""
        try:
            admitted = await self._admit(keys=[self._prefix + key], args=[now, policy.cooldown])
        except RedisError as error:
            self._unreachable(error, "admitting call to %s", key)
            return True
        return bool(admitted)

    async def record_success(self, key: str) -> None:
        """See :meth:`BreakerStore.record_success`."""
        try:
            await self._client.delete(self._prefix + key)
        except RedisError as error:
            self._unreachable(error, "success of %s not recorded", key)

    async def record_failure(self, key: str, now: float, policy: BreakerPolicy) -> bool:
        """See :meth:`BreakerStore.record_failure`."""
        # The hash must outlive an open circuit and its probe lease.
        ttl = math.ceil(policy.window + 2 * policy.cooldown) + 1
        try:
            opened = await self._failure(
                keys=[self._prefix + key],
                args=[now, policy.failure_threshold, policy.window, policy.cooldown, ttl],
            )
        except RedisError as error:
            self._unreachable(error, "failure of %s not recorded", key)
            return False
        return bool(opened)

    def _unreachable(self, error: RedisError, consequence: str, key: str) -> None:
        self._outage.failed(
            "circuit breaker store unreachable (%s); " + consequence, type(error).__name__, key
        )

    async def state(self, key: str, now: float) -> BreakerState:
        """See :meth:`BreakerStore.state`."""
        raw = await self._client.hget(self._prefix + key, "open_until")
        return _state_of(float(raw) if raw is not None else 0.0, now)


class CircuitBreaker:
    """The breakers of all deployments: one policy, one store, one clock."""

    def __init__(
        self, *, store: BreakerStore, policy: BreakerPolicy, clock: Callable[[], float]
    ) -> None:
        self._store = store
        self._policy = policy
        self._clock = clock

    async def allow(self, deployment_id: str) -> bool:
        """Whether a call may go to the deployment now."""
        return await self._store.admit(deployment_id, self._clock(), self._policy)

    async def success(self, deployment_id: str) -> None:
        """Report a successful call."""
        await self._store.record_success(deployment_id)

    async def failure(self, deployment_id: str) -> bool:
        """Report a failed call; True when it opened the circuit."""
        opened = await self._store.record_failure(deployment_id, self._clock(), self._policy)
        if opened:
            _log.warning(
                "circuit of LLM deployment %s opened for %.0f s",
                deployment_id,
                self._policy.cooldown,
            )
        return opened

    async def state(self, deployment_id: str) -> BreakerState:
        """The deployment's circuit state now."""
        return await self._store.state(deployment_id, self._clock())
