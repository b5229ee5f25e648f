"""The gateway against real HTTP servers (OpenAI and Anthropic formats) and a real Redis.

Every count below is the test server's own record of the HTTP requests it received, so a hidden
SDK retry or a call that should have failed fast shows up as an extra request.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import random
import re
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
import redis.asyncio as aioredis
import yaml
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from ai_orchestration.llm._breaker import InProcessBreakerStore, RedisBreakerStore
from ai_orchestration.llm._config import LOCAL_MODEL as LOCAL
from ai_orchestration.llm._config import BreakerPolicy, GatewayConfig, default_config, parse_config
from ai_orchestration.llm._gateway import DEFAULT_FALLBACK_TEXT, LlmGateway
from ai_orchestration.llm._local import (
    LocalModel,
    register_local_provider,
    unregister_local_provider,
)
from ai_orchestration.llm._types import (
    DEGRADED_DEPLOYMENT,
    CallContext,
    ChatMessage,
    Completion,
    CompletionRequest,
    LlmUnavailableError,
    TokenDelta,
)
from tests.fixtures.llm_server import LlmTestServer

ServerFactory = Callable[[], LlmTestServer]

# Two pydantic warnings litellm 1.106 triggers on its own models (a TypedDict with ReadOnly
# items; model_fields read on an instance while streaming); under `-W error` they would
# turn every call into a failure. Candidates for pyproject's filterwarnings.
pytestmark = [
    pytest.mark.filterwarnings("ignore:Item .* is using the `ReadOnly` qualifier"),
    pytest.mark.filterwarnings("ignore:Accessing the 'model_(computed_)?fields' attribute"),
]


class FakeClock:
    """Wall clock of the breaker, moved by hand so cooldowns need no sleeping."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def deployment(
    name: str, ident: str, server: LlmTestServer, *, anthropic: bool = False, **info: object
) -> dict[str, object]:
    """A model_list entry pointing at a test server, with fast retries."""
    params = (
        {"model": "anthropic/test-model", "api_base": server.base_url, "api_key": "test"}
        if anthropic
        else {"model": "openai/test-model", "api_base": f"{server.base_url}/v1", "api_key": "test"}
    )
    model_info = {"id": ident, "retry_base_delay": 0.01, "retry_max_delay": 0.05, **info}
    return {"model_name": name, "litellm_params": params, "model_info": model_info}


def config(*entries: dict[str, object], **router: object) -> GatewayConfig:
    document = {"model_list": list(entries), "router_settings": {"allowed_fails": 100, **router}}
    return parse_config(yaml.safe_dump(document), environ={}, source="test.yaml")


def request(
    text: str = "hello there world", model: str = "fast", **fields: object
) -> CompletionRequest:
    return CompletionRequest(
        model=model,
        messages=(ChatMessage("user", text),),
        context=CallContext(tenant_id="acme"),
        **fields,  # type: ignore[arg-type]
    )


async def collect(items: AsyncIterator[TokenDelta | Completion]) -> tuple[str, Completion]:
    """Joined delta text and the final Completion (checked to be the last item, and only one)."""
    deltas: list[str] = []
    finals: list[Completion] = []
    async for item in items:
        assert not finals, "an item arrived after the Completion"
        if isinstance(item, TokenDelta):
            deltas.append(item.text)
        else:
            finals.append(item)
    assert len(finals) == 1
    return "".join(deltas), finals[0]


@pytest.fixture
def two_servers(llm_server_factory: ServerFactory) -> Iterator[tuple[LlmTestServer, LlmTestServer]]:
    yield llm_server_factory(), llm_server_factory()


async def test_completion_names_its_deployment_with_usage_and_registered_cost(
    llm_server: LlmTestServer,
) -> None:
    priced = deployment(
        "fast", "primary", llm_server, input_cost_per_token=0.001, output_cost_per_token=0.01
    )
    gateway = LlmGateway(config=config(priced), breaker_store=InProcessBreakerStore())
    answer = await gateway.complete(request())
    assert answer.text == "Echo: hello there world"
    assert (answer.deployment, answer.model, answer.finish_reason) == ("primary", "fast", "stop")
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (3, 4)
    assert answer.usage.cost_usd == pytest.approx(3 * 0.001 + 4 * 0.01)
    assert not (answer.degraded or answer.truncated or answer.cached)
    assert len(llm_server.requests) == 1
    assert llm_server.requests[0].body["max_tokens"] == 256


async def test_thirty_percent_failures_all_calls_succeed_through_retries_and_fallback(
    two_servers: tuple[LlmTestServer, LlmTestServer],
) -> None:
    first, second = two_servers
    first.set_failure_rate(0.3, seed=1)
    second.set_failure_rate(0.3, seed=2)
    gateway = LlmGateway(
        config=config(deployment("fast", "a", first), deployment("fast", "b", second)),
        breaker_store=InProcessBreakerStore(),
        rng=random.Random(0),
    )
    answers: list[Completion] = []
    for batch in range(6):
        calls = [
            gateway.complete(request(f"call {batch}-{i}", allow_degraded=False)) for i in range(10)
        ]
        answers += await asyncio.gather(*calls)
    assert [a.text for a in answers] == [f"Echo: call {b}-{i}" for b in range(6) for i in range(10)]
    assert not any(a.degraded for a in answers)
    attempts = len(first.requests) + len(second.requests)
    # Failures really happened and were absorbed, within 3 attempts per deployment per call.
    assert 60 < attempts <= 60 * 6
    assert {a.deployment for a in answers} <= {"a", "b"}


async def test_retry_after_is_honoured_before_the_next_attempt(llm_server: LlmTestServer) -> None:
    delays: list[float] = []

    async def sleep(seconds: float) -> None:
        delays.append(seconds)
        await asyncio.sleep(seconds)

    gateway = LlmGateway(
        config=config(deployment("fast", "primary", llm_server, retries=1)),
        breaker_store=InProcessBreakerStore(),
        sleep=sleep,
    )
    llm_server.fail_next(1, 429, retry_after=0.4)
    started = time.monotonic()
    answer = await gateway.complete(request())
    assert time.monotonic() - started >= 0.4  # a lower bound only: never earlier than asked
    assert delays and delays[0] >= 0.4
    assert answer.deployment == "primary"
    assert len(llm_server.requests) == 2


async def test_retry_after_beyond_the_cap_moves_to_the_next_deployment(
    two_servers: tuple[LlmTestServer, LlmTestServer],
) -> None:
    first, second = two_servers
    gateway = LlmGateway(
        config=config(
            deployment("fast", "a", first, retries=3, max_retry_after=1),
            deployment("fast", "b", second),
        ),
        breaker_store=InProcessBreakerStore(),
    )
    first.fail_next(1, 429, retry_after=60)
    answer = await gateway.complete(request())
    assert answer.deployment == "b"
    assert (len(first.requests), len(second.requests)) == (1, 1)


@pytest.mark.parametrize("anthropic", [False, True])
async def test_no_hidden_retries_attempts_are_exactly_ours(
    llm_server: LlmTestServer, anthropic: bool
) -> None:
    gateway = LlmGateway(
        config=config(deployment("fast", "p", llm_server, anthropic=anthropic, retries=2)),
        breaker_store=InProcessBreakerStore(),
    )
    llm_server.fail_next(100, 500)
    with pytest.raises(LlmUnavailableError, match="every deployment of 'fast' failed"):
        await gateway.complete(request(allow_degraded=False))
    assert len(llm_server.requests) == 3
    llm_server.reset()
    llm_server.fail_next(100, 400)  # the request's fault: not retried anywhere
    with pytest.raises(LlmUnavailableError):
        await gateway.complete(request(allow_degraded=False))
    assert len(llm_server.requests) == 1


async def test_total_timeout_moves_on_to_the_next_deployment(
    two_servers: tuple[LlmTestServer, LlmTestServer],
) -> None:
    first, second = two_servers
    gateway = LlmGateway(
        config=config(
            deployment("fast", "slow", first, retries=0, total_timeout=0.3),
            deployment("fast", "b", second),
        ),
        breaker_store=InProcessBreakerStore(),
    )
    first.hang_next(1, 5)
    answer = await gateway.complete(request())
    assert answer.deployment == "b"
    assert len(first.requests) == 1


async def test_logical_fallbacks_answer_when_the_model_is_down(
    two_servers: tuple[LlmTestServer, LlmTestServer],
) -> None:
    first, second = two_servers
    gateway = LlmGateway(
        config=config(
            deployment("fast", "fast-a", first, retries=1),
            deployment("smart", "smart-a", second),
            fallbacks=[{"fast": ["smart"]}],
        ),
        breaker_store=InProcessBreakerStore(),
    )
    first.down()
    answer = await gateway.complete(request())
    assert (answer.model, answer.deployment) == ("fast", "smart-a")
    assert len(first.requests) == 2


async def test_open_circuit_fails_fast_degrades_and_recovers_after_cooldown(
    llm_server: LlmTestServer,
) -> None:
    clock = FakeClock()
    gateway = LlmGateway(
        config=config(
            deployment("fast", "p", llm_server, retries=0), allowed_fails=1, cooldown_time=5
        ),
        breaker_store=InProcessBreakerStore(),
        clock=clock,
    )
    llm_server.down()
    for _ in range(2):
        with pytest.raises(LlmUnavailableError):
            await gateway.complete(request(allow_degraded=False))
    assert await gateway.breaker.state("p") == "open"
    assert len(llm_server.requests) == 2
    with pytest.raises(LlmUnavailableError, match="p: circuit open"):
        await gateway.complete(request(allow_degraded=False))
    degraded = await gateway.complete(request(fallback_text="Score 87: strong fit."))
    assert (degraded.text, degraded.deployment) == ("Score 87: strong fit.", DEGRADED_DEPLOYMENT)
    assert degraded.degraded and "circuit open" in degraded.error
    generic = await gateway.complete(request())
    assert generic.text == DEFAULT_FALLBACK_TEXT
    assert len(llm_server.requests) == 2  # nothing reached the server while open

    llm_server.up()
    clock.now += 5
    assert await gateway.breaker.state("p") == "half_open"
    recovered = await gateway.complete(request())
    assert (recovered.deployment, recovered.degraded) == ("p", False)
    assert await gateway.breaker.state("p") == "closed"


async def test_failed_probe_reopens_the_circuit(llm_server: LlmTestServer) -> None:
    clock = FakeClock()
    gateway = LlmGateway(
        config=config(
            deployment("fast", "p", llm_server, retries=0), allowed_fails=0, cooldown_time=5
        ),
        breaker_store=InProcessBreakerStore(),
        clock=clock,
    )
    llm_server.down()
    assert (await gateway.complete(request())).degraded
    clock.now += 5
    assert (await gateway.complete(request())).degraded  # the probe, which fails
    assert len(llm_server.requests) == 2
    assert await gateway.breaker.state("p") == "open"
    assert (await gateway.complete(request())).degraded
    assert len(llm_server.requests) == 2


async def test_a_circuit_opened_by_one_replica_is_open_for_another_through_redis(
    llm_server: LlmTestServer, redis_url: str
) -> None:
    clock = FakeClock()
    routing = config(
        deployment("fast", "p", llm_server, retries=0), allowed_fails=1, cooldown_time=5
    )
    first_client = aioredis.Redis.from_url(redis_url)
    second_client = aioredis.Redis.from_url(redis_url)
    try:
        replica_a = LlmGateway(
            config=routing, breaker_store=RedisBreakerStore(client=first_client), clock=clock
        )
        replica_b = LlmGateway(
            config=routing, breaker_store=RedisBreakerStore(client=second_client), clock=clock
        )
        llm_server.down()
        assert (await replica_a.complete(request())).degraded
        assert await replica_b.breaker.state("p") == "closed"
        assert (await replica_a.complete(request())).degraded
        assert len(llm_server.requests) == 2
        assert await replica_b.breaker.state("p") == "open"
        with pytest.raises(LlmUnavailableError, match="circuit open"):
            await replica_b.complete(request(allow_degraded=False))
        assert len(llm_server.requests) == 2

        llm_server.up()
        clock.now += 5
        assert (await replica_b.complete(request())).deployment == "p"  # B's probe closes it
        assert await replica_a.breaker.state("p") == "closed"
        assert (await replica_a.complete(request())).deployment == "p"
    finally:
        await first_client.aclose()
        await second_client.aclose()


async def test_redis_half_open_lets_exactly_one_probe_through(redis_url: str) -> None:
    client = aioredis.Redis.from_url(redis_url)
    try:
        store = RedisBreakerStore(client=client)
        policy = config(
            {"model_name": "f", "litellm_params": {"model": "openai/x"}},
            allowed_fails=0,
            cooldown_time=5,
        ).breaker
        assert await store.record_failure("d", 100.0, policy)
        assert not await store.admit("d", 104.0, policy)
        admitted = await asyncio.gather(*(store.admit("d", 105.0, policy) for _ in range(20)))
        assert admitted.count(True) == 1
        assert await store.state("d", 105.0) == "half_open"
        await store.record_success("d")
        assert await store.admit("d", 105.0, policy)
    finally:
        await client.aclose()


async def test_stream_cut_before_the_first_token_falls_back_transparently(
    two_servers: tuple[LlmTestServer, LlmTestServer],
) -> None:
    first, second = two_servers
    gateway = LlmGateway(
        config=config(
            deployment("fast", "a", first, retries=0),
            deployment("fast", "b", second, input_cost_per_token=0.002, output_cost_per_token=0.02),
        ),
        breaker_store=InProcessBreakerStore(),
    )
    first.cut_stream_after(0)
    text, final = await collect(gateway.stream(request()))
    assert text == final.text == "Echo: hello there world"
    assert (final.deployment, final.truncated, final.finish_reason) == ("b", False, "stop")
    assert (final.usage.prompt_tokens, final.usage.completion_tokens) == (3, 4)
    assert final.usage.cost_usd == pytest.approx(3 * 0.002 + 4 * 0.02)
    assert (len(first.requests), len(second.requests)) == (1, 1)
    assert second.requests[0].body["stream_options"] == {"include_usage": True}


async def test_stream_without_a_first_token_in_time_falls_back(
    two_servers: tuple[LlmTestServer, LlmTestServer],
) -> None:
    first, second = two_servers
    gateway = LlmGateway(
        config=config(
            deployment("fast", "a", first, retries=0, first_token_timeout=0.3),
            deployment("fast", "b", second),
        ),
        breaker_store=InProcessBreakerStore(),
    )
    first.delay_first_token(5)
    text, final = await collect(gateway.stream(request()))
    assert (text, final.deployment, final.truncated) == ("Echo: hello there world", "b", False)


async def test_stream_cut_after_the_first_token_ends_truncated_with_the_partial_text(
    two_servers: tuple[LlmTestServer, LlmTestServer],
) -> None:
    first, second = two_servers
    gateway = LlmGateway(
        config=config(deployment("fast", "a", first), deployment("fast", "b", second)),
        breaker_store=InProcessBreakerStore(),
    )
    first.cut_stream_after(2)
    text, final = await collect(gateway.stream(request()))
    assert text == final.text == "Echo: hello"
    assert (final.deployment, final.truncated, final.finish_reason) == ("a", True, "error")
    assert "after its first token" in final.error
    assert final.usage.completion_tokens > 0
    assert (len(first.requests), len(second.requests)) == (1, 0)  # never restarted elsewhere


async def test_stream_degrades_when_every_deployment_is_down(llm_server: LlmTestServer) -> None:
    gateway = LlmGateway(
        config=config(deployment("fast", "p", llm_server, retries=1)),
        breaker_store=InProcessBreakerStore(),
    )
    llm_server.down()
    text, final = await collect(gateway.stream(request(fallback_text="No summary available.")))
    assert text == final.text == "No summary available."
    assert final.degraded and final.deployment == DEGRADED_DEPLOYMENT
    with pytest.raises(LlmUnavailableError):
        await collect(gateway.stream(request(allow_degraded=False)))


async def test_anthropic_format_deployment_completes_and_streams(llm_server: LlmTestServer) -> None:
    gateway = LlmGateway(
        config=config(deployment("smart", "claude", llm_server, anthropic=True)),
        breaker_store=InProcessBreakerStore(),
    )
    answer = await gateway.complete(request(model="smart"))
    assert (answer.text, answer.deployment) == ("Echo: hello there world", "claude")
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (3, 4)
    text, final = await collect(gateway.stream(request("stream me", model="smart")))
    assert text == final.text == "Echo: stream me"
    assert (final.usage.prompt_tokens, final.usage.completion_tokens) == (2, 3)
    assert {r.path for r in llm_server.requests} == {"/v1/messages"}


EMAIL_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"subject": {"type": "string", "maxLength": 12}, "score": {"type": "integer"}},
    "required": ["subject", "score"],
    "additionalProperties": False,
}
CONSTRAINT_KEYS = {"response_format", "stop", "frequency_penalty", "presence_penalty", "top_p"}


async def test_constraints_reach_the_wire_only_when_set_and_the_answer_is_json(
    llm_server: LlmTestServer,
) -> None:
    gateway = LlmGateway(
        config=config(deployment("fast", "primary", llm_server)),
        breaker_store=InProcessBreakerStore(),
    )
    constrained = request(
        response_schema=EMAIL_SCHEMA,
        response_schema_name="email",
        stop=("<end>",),
        frequency_penalty=0.5,
        presence_penalty=0.25,
        top_p=0.9,
    )
    answer = await gateway.complete(constrained)
    text, final = await collect(gateway.stream(constrained))
    plain = await gateway.complete(request())

    assert json.loads(answer.text) == {"subject": "Echo subjec.", "score": 0}
    assert text == final.text == answer.text
    assert plain.text == "Echo: hello there world"
    bodies = [r.body for r in llm_server.requests]
    for body in bodies[:2]:
        assert body["response_format"] == {
            "type": "json_schema",
            "json_schema": {"name": "email", "schema": EMAIL_SCHEMA, "strict": True},
        }
        assert body["stop"] == ["<end>"]
        assert (body["frequency_penalty"], body["presence_penalty"], body["top_p"]) == (
            0.5,
            0.25,
            0.9,
        )
    assert bodies[1]["stream"] is True
    assert not CONSTRAINT_KEYS & set(bodies[2])


async def test_stop_ends_the_answer_and_request_fields_override_deployment_params(
    llm_server: LlmTestServer,
) -> None:
    tuned = deployment("fast", "primary", llm_server)
    params = tuned["litellm_params"]
    assert isinstance(params, dict)
    params["top_p"] = 0.5
    gateway = LlmGateway(config=config(tuned), breaker_store=InProcessBreakerStore())

    stopped = await gateway.complete(request(stop=(" world", " there")))
    text, final = await collect(gateway.stream(request(stop=(" world",), top_p=0.8)))

    assert (stopped.text, stopped.finish_reason) == ("Echo: hello", "stop")
    assert text == final.text == "Echo: hello there"
    assert [r.body["top_p"] for r in llm_server.requests] == [0.5, 0.8]


def _mask_emails(text: str) -> str:
    return re.sub(r"\S+@\S+", "[EMAIL]", text)


async def test_redaction_applies_only_to_deployments_that_ask_for_it(
    two_servers: tuple[LlmTestServer, LlmTestServer],
) -> None:
    external, internal = two_servers
    gateway = LlmGateway(
        config=config(
            deployment("fast", "external", external),
            deployment("smart", "internal", internal, redact_pii=False),
        ),
        breaker_store=InProcessBreakerStore(),
        redactor=_mask_emails,
    )
    await gateway.complete(request("mail ann@example.com now"))
    await gateway.complete(request("mail ann@example.com now", model="smart"))
    sent_out = external.requests[0].body["messages"]
    kept_in = internal.requests[0].body["messages"]
    assert sent_out == [{"role": "user", "content": "mail [EMAIL] now"}]
    assert kept_in == [{"role": "user", "content": "mail ann@example.com now"}]


class RecordingLedger:
    """A UsageLedger that remembers what it was told and can refuse."""

    def __init__(self) -> None:
        self.checks: list[tuple[str, str, int]] = []
        self.records: list[Completion] = []

    async def check(self, context: CallContext, model: str, estimated_tokens: int) -> None:
        self.checks.append((context.tenant_id, model, estimated_tokens))

    async def record(self, request: CompletionRequest, completion: Completion) -> None:
        self.records.append(completion)


class DictCache:
    """An exact-match ResponseCache keyed by the last message."""

    def __init__(self) -> None:
        self.entries: dict[str, Completion] = {}

    async def get(self, request: CompletionRequest) -> Completion | None:
        hit = self.entries.get(request.messages[-1].content)
        return None if hit is None else dataclasses.replace(hit, cached="exact")

    async def put(self, request: CompletionRequest, completion: Completion) -> None:
        self.entries[request.messages[-1].content] = completion


async def test_ledger_and_cache_see_every_call_and_only_clean_answers_are_cached(
    llm_server: LlmTestServer,
) -> None:
    ledger, cache = RecordingLedger(), DictCache()
    gateway = LlmGateway(
        config=config(deployment("fast", "p", llm_server, retries=0)),
        breaker_store=InProcessBreakerStore(),
        cache=cache,
        ledger=ledger,
    )
    first = await gateway.complete(request("one two three four", max_tokens=10))
    # 18 characters -> 5 tokens, + 4 of message framing, + max_tokens
    assert ledger.checks == [("acme", "fast", 5 + 4 + 10)]
    again = await gateway.complete(request("one two three four", max_tokens=10))
    assert (again.cached, again.text) == ("exact", first.text)
    assert len(llm_server.requests) == 1 and len(ledger.checks) == 1
    fresh = await gateway.complete(request("one two three four", max_tokens=10, use_cache=False))
    assert fresh.cached == "" and len(llm_server.requests) == 2

    llm_server.cut_stream_after(1)
    _, truncated = await collect(gateway.stream(request("cut me off")))
    assert truncated.truncated and "cut me off" not in cache.entries
    llm_server.down()
    degraded = await gateway.complete(request("nobody home"))
    assert degraded.degraded and "nobody home" not in cache.entries
    assert [c.truncated or c.degraded for c in ledger.records] == [False, False, False, True, True]


async def test_an_unreachable_redis_breaker_store_fails_open(llm_server: LlmTestServer) -> None:
    # No client-side retries: the breaker sits on every call's path (see RedisBreakerStore).
    client = aioredis.Redis(
        host="127.0.0.1", port=1, socket_connect_timeout=1, retry=Retry(NoBackoff(), 0)
    )
    try:
        gateway = LlmGateway(
            config=config(deployment("fast", "p", llm_server, retries=0), allowed_fails=0),
            breaker_store=RedisBreakerStore(client=client),
        )
        llm_server.down()
        assert (await gateway.complete(request())).degraded
        llm_server.up()
        assert (await gateway.complete(request())).deployment == "p"
        assert len(llm_server.requests) == 2
    finally:
        await client.aclose()


async def test_an_unreachable_breaker_store_is_logged_once_not_per_call(
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = aioredis.Redis(
        host="127.0.0.1", port=1, socket_connect_timeout=1, retry=Retry(NoBackoff(), 0)
    )
    store = RedisBreakerStore(client=client)
    policy = BreakerPolicy(allowed_fails=0)
    try:
        with caplog.at_level(logging.WARNING, logger="ai_orchestration.llm._breaker"):
            for _ in range(10):
                assert await store.admit("fast", time.time(), policy)  # fails open
                await store.record_success("fast")
                assert not await store.record_failure("fast", time.time(), policy)
    finally:
        await client.aclose()
    warnings = [r.getMessage() for r in caplog.records if r.name == "ai_orchestration.llm._breaker"]
    assert warnings == [
        "circuit breaker store unreachable (ConnectionError); admitting call to fast"
    ]


async def test_default_config_falls_back_to_the_real_local_model(llm_server: LlmTestServer) -> None:
    model = LocalModel()
    register_local_provider(model)
    try:
        keyless = LlmGateway(config=default_config({}), breaker_store=InProcessBreakerStore())
        answer = await keyless.complete(request("Name three colors.", max_tokens=8))
        assert (answer.deployment, answer.degraded, answer.usage.cost_usd) == (LOCAL, False, 0.0)
        assert answer.text.strip() and 0 < answer.usage.completion_tokens <= 8

        # An OpenAI-compatible server from the environment comes first; when it is down the
        # stream falls over to the local model before any token reached the caller.
        environ = {
            "AIO_LLM_OPENAI_COMPATIBLE_BASE_URL": f"{llm_server.base_url}/v1",
            "AIO_LLM_OPENAI_COMPATIBLE_MODEL": "test-model",
        }
        keyed = LlmGateway(config=default_config(environ), breaker_store=InProcessBreakerStore())
        assert (await keyed.complete(request(model="smart"))).text == "Echo: hello there world"
        llm_server.down()
        text, final = await collect(keyed.stream(request("Name three colors.", max_tokens=8)))
        assert (final.deployment, final.truncated, final.degraded) == (LOCAL, False, False)
        assert text == final.text and text.strip()
        assert len(llm_server.requests) == 1 + 3  # one answer, then 1 + 2 retries while down
    finally:
        unregister_local_provider()
        await model.aclose()
