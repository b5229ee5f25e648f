"""Exact-match response cache: the same request (after normalisation) gets the same answer.

The key is the SHA-256 of the tenant, the logical model, the messages (role plus content with
whitespace collapsed and stripped) and every generation parameter (``max_tokens``,
``temperature``, and the response schema, stop sequences, penalties and ``top_p`` when set): two
tenants never share an entry, and a change of any parameter is a different request. Only
complete answers are stored: degraded (template), truncated (a stream cut mid-way), errored,
empty or already-cached completions are not. A hit returns the stored answer with
``cached="exact"`` and zero usage, because nothing was spent on it.

Backends implement :class:`CacheBackend`: :class:`InProcessCacheBackend` (bounded LRU with TTL,
O(1) per operation) and :class:`RedisCacheBackend` (``SET key value EX ttl``, compact JSON
values). A cache is best-effort: a Redis error is a miss (or a skipped store), logged and
counted, never a failed LLM call.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Final, Protocol

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from ai_orchestration._outage import OutageLog
from ai_orchestration.llm._types import ChatMessage, Completion, CompletionRequest, Usage

__all__ = [
    "DEFAULT_CACHE_TTL_SECONDS",
    "CacheBackend",
    "CacheStats",
    "ExactResponseCache",
    "InProcessCacheBackend",
    "LookupObserver",
    "RedisCacheBackend",
    "completion_from_json",
    "completion_to_json",
    "exact_cache_key",
    "is_cacheable",
    "normalise_messages",
]

_log = logging.getLogger(__name__)

DEFAULT_CACHE_TTL_SECONDS: Final[float] = 3600.0
"""How long a cached answer is served by default."""

LookupObserver = Callable[[str, bool], None]
"""Called after every cache lookup with the cache kind (``exact``, ``semantic``) and hit."""

_WHITESPACE = re.compile(r"\s+")


def normalise_messages(messages: Sequence[ChatMessage]) -> list[tuple[str, str]]:
    """(role, content with runs of whitespace collapsed to one space and stripped) per message."""
    return [(m.role, _WHITESPACE.sub(" ", m.content).strip()) for m in messages]


def exact_cache_key(request: CompletionRequest) -> str:
    """SHA-256 hex of what makes two requests the same for the exact cache."""
    material = [
        request.context.tenant_id,
        request.model,
        normalise_messages(request.messages),
        *_generation_parameters(request),
    ]
    return hashlib.sha256(_key_json(material)).hexdigest()


def _generation_parameters(request: CompletionRequest) -> list[object]:
    """Everything besides the messages that changes the answer, as JSON-ready values."""
    parameters: list[object] = [request.max_tokens, float(request.temperature)]
    # Only when set: requests without constraints keep the keys they had before these existed.
    if constraints := request.constraints():
        parameters.append(constraints)
    return parameters


def _key_json(material: object) -> bytes:
    # Keys are not sorted: the order of a schema's properties is the order of the answer's.
    return json.dumps(material, ensure_ascii=False, separators=(",", ":"), default=_plain).encode()


def _plain(value: object) -> object:
    """JSON-ready stand-in for the non-dict mappings and sequences a schema may contain."""
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def is_cacheable(completion: Completion) -> bool:
    """Whether ``completion`` is a complete, fresh answer worth serving again."""
    return not (
        completion.degraded
        or completion.truncated
        or completion.cached
        or completion.finish_reason == "error"
        or not completion.text
    )


def completion_to_json(completion: Completion) -> bytes:
    """Compact JSON of the parts of a completion a hit serves (usage is zero on hits)."""
    body = {
        "t": completion.text,
        "m": completion.model,
        "d": completion.deployment,
        "f": completion.finish_reason,
    }
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def completion_from_json(raw: bytes) -> Completion | None:
    """The completion in ``raw``, or None when it is not a value this module wrote."""
    try:
        body = json.loads(raw)
        return Completion(
            text=str(body["t"]),
            model=str(body["m"]),
            deployment=str(body["d"]),
            usage=Usage(),
            finish_reason=str(body["f"]),
        )
    except (ValueError, KeyError, TypeError):
        return None


class CacheBackend(Protocol):
    """Where cached completions live, by key."""

    async def get(self, key: str) -> Completion | None:
        """The completion stored under ``key``, unless absent or expired."""

    async def set(self, key: str, completion: Completion, ttl_seconds: float) -> None:
        """Store ``completion`` under ``key`` for ``ttl_seconds``."""


class InProcessCacheBackend:
    """A bounded LRU map with per-entry expiry, for one process."""

    def __init__(
        self, *, max_entries: int = 10_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self._max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, Completion]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    async def get(self, key: str) -> Completion | None:
        """The live entry under ``key`` (and mark it recently used)."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires_at, completion = entry
        if expires_at <= self._clock():
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return completion

    async def set(self, key: str, completion: Completion, ttl_seconds: float) -> None:
        """Store an entry, evicting the least recently used ones beyond ``max_entries``."""
        self._entries[key] = (self._clock() + ttl_seconds, completion)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)


class RedisCacheBackend:
    """Entries as ``SET <prefix><key> <json> EX <ttl>`` in Redis, shared by every replica."""

    def __init__(self, *, client: aioredis.Redis, prefix: str = "aio:llm:cache:") -> None:
        self._client = client
        self._prefix = prefix
        self.errors = 0
        self._outage = OutageLog(_log)
        """Redis errors met so far (each one served as a miss or a skipped store)."""

    async def get(self, key: str) -> Completion | None:
        """The entry under ``key``; None when absent, expired, unreadable or Redis fails."""
        try:
            raw = await self._client.get(self._prefix + key)
        except RedisError as err:
            self._failed("get", err)
            return None
        if not isinstance(raw, bytes | str):
            return None
        return completion_from_json(raw.encode() if isinstance(raw, str) else raw)

    async def set(self, key: str, completion: Completion, ttl_seconds: float) -> None:
        """Store an entry; Redis expiry is in whole seconds, rounded up."""
        try:
            await self._client.set(
                self._prefix + key,
                completion_to_json(completion),
                ex=max(1, math.ceil(ttl_seconds)),
            )
        except RedisError as err:
            self._failed("set", err)

    def _failed(self, operation: str, err: RedisError) -> None:
        self.errors += 1
        self._outage.failed(
            "LLM response cache: Redis %s failed (%s)", operation, type(err).__name__
        )


@dataclass(frozen=True, slots=True)
class CacheStats:
    """Counters of one cache since it was created."""

    hits: int
    """Lookups answered from the cache."""
    misses: int
    """Lookups that found nothing usable."""
    bypassed: int
    """Requests not looked up (``use_cache=False``, or not eligible for this cache)."""
    stores: int
    """Completions stored."""
    rejected: int
    """Completions not stored because they were degraded, truncated, errored or empty."""

    @property
    def hit_ratio(self) -> float:
        """Hits over lookups (0 before the first lookup)."""
        lookups = self.hits + self.misses
        return self.hits / lookups if lookups else 0.0


class _Counters:
    def __init__(self, kind: str, on_lookup: LookupObserver | None) -> None:
        self.kind = kind
        self.on_lookup = on_lookup
        self.hits = self.misses = self.bypassed = self.stores = self.rejected = 0

    def lookup(self, hit: bool) -> None:
        if hit:
            self.hits += 1
        else:
            self.misses += 1
        if self.on_lookup is not None:
            self.on_lookup(self.kind, hit)

    def snapshot(self) -> CacheStats:
        return CacheStats(self.hits, self.misses, self.bypassed, self.stores, self.rejected)


class ExactResponseCache:
    """The exact-match :class:`~ai_orchestration.llm._types.ResponseCache`."""

    def __init__(
        self,
        *,
        backend: CacheBackend,
        ttl_seconds: float = DEFAULT_CACHE_TTL_SECONDS,
        on_lookup: LookupObserver | None = None,
    ) -> None:
        if ttl_seconds <= 0:
            raise ValueError("ttl_seconds must be positive")
        self._backend = backend
        self._ttl_seconds = ttl_seconds
        self._counters = _Counters("exact", on_lookup)

    async def get(self, request: CompletionRequest) -> Completion | None:
        """The stored answer with ``cached="exact"`` and zero usage, or None."""
        if not request.use_cache:
            self._counters.bypassed += 1
            return None
        stored = await self._backend.get(exact_cache_key(request))
        self._counters.lookup(stored is not None)
        if stored is None:
            return None
        return replace(stored, cached="exact", usage=Usage())

    async def put(self, request: CompletionRequest, completion: Completion) -> None:
        """Store ``completion`` unless the caller opted out or it is not a complete answer."""
        if not request.use_cache:
            return
        if not is_cacheable(completion):
            self._counters.rejected += 1
            return
        await self._backend.set(exact_cache_key(request), completion, self._ttl_seconds)
        self._counters.stores += 1

    def stats(self) -> CacheStats:
        """Counters since the cache was created."""
        return self._counters.snapshot()
