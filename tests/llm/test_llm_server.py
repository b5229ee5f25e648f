"""litellm against the real LLM test server, and the network guard.

What litellm 1.106.2 makes of each injected fault (``max_retries=0``, so one request per call;
the classes live in ``litellm.exceptions``, ``MidStreamFallbackError`` only there):

- ``fail_next(n, 429, retry_after=s)`` -> ``litellm.RateLimitError`` (status 429). The
  ``Retry-After`` value is in ``exc.litellm_response_headers`` (an ``httpx.Headers`` of the 429
  response, so ``exc.litellm_response_headers.get("retry-after")`` -> ``"7"``; the server also
  sends ``retry-after-ms``), on both the OpenAI and the Anthropic paths. Not elsewhere:
  ``exc.response`` is a synthetic ``httpx.Response`` with *no* headers and ``exc.headers`` is
  ``None``.
- ``fail_next(n, 500)`` -> ``litellm.InternalServerError``; ``down()`` (503) ->
  ``litellm.ServiceUnavailableError``; both are ``openai.APIStatusError`` with ``status_code``.
- ``hang_next(n, s)`` with ``timeout=`` smaller than ``s`` -> ``litellm.Timeout``.
- ``cut_stream_after(k)`` -> after ``k`` chunks were yielded, iterating raises
  ``litellm.MidStreamFallbackError`` (a ``ServiceUnavailableError``) whose ``generated_content``
  holds the text streamed so far and whose ``original_exception`` is a
  ``litellm.APIConnectionError`` (connection reset by peer); ``is_pre_first_chunk`` is False.
- ``delay_first_token(s)`` with ``timeout=`` smaller than ``s`` on a stream -> *not*
  ``litellm.Timeout``: the headers came in time, so the read timeout surfaces while iterating as
  ``MidStreamFallbackError`` with ``is_pre_first_chunk`` True, ``generated_content`` ``""`` and
  an ``APIConnectionError`` ("Timeout on reading data from socket") as ``original_exception``.
"""

from __future__ import annotations

import json
import math
import os
import signal
import socket
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fixtures.llm_server import LlmTestServer
from tests.fixtures.network_guard import NetworkGuard

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("LITELLM_LOCAL_ANTHROPIC_BETA_HEADERS", "True")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import litellm
from litellm.exceptions import (
    APIConnectionError,
    InternalServerError,
    MidStreamFallbackError,
    RateLimitError,
    ServiceUnavailableError,
    Timeout,
)
from litellm.llms.custom_httpx.async_client_cleanup import close_litellm_async_clients

litellm.suppress_debug_info = True

# pydantic warns inside litellm 1.106.2 (its Message schema on first use, its streaming handler
# on every stream); not our code, and with warnings as errors every completion would fail.
pytestmark = [
    pytest.mark.filterwarnings(
        "ignore:Item .* on TypedDict class .* is using the `ReadOnly` qualifier:UserWarning"
    ),
    pytest.mark.filterwarnings(
        "ignore:Accessing the 'model_\\w+' attribute on the instance is deprecated"
    ),
]

REPO_ROOT = Path(__file__).resolve().parents[2]
PROMPT = "one two three four five"
EXPECTED = "Echo: one two three four five"
PROVIDERS = ("openai", "anthropic")


@pytest.fixture(autouse=True)
async def _close_litellm_clients() -> AsyncIterator[None]:
    """Close the HTTP clients litellm kept during the test, on the test's own event loop.

    litellm keeps clients (and their keep-alive connections) in a process-wide cache keyed by
    event loop, plus one module-level client (Anthropic streams use it); each test has its own
    loop, so without this they outlive it and surface later as ResourceWarnings. The module
    client's aiohttp transport opens a fresh session on next use once this one is closed.
    """
    yield
    await close_litellm_async_clients()  # type: ignore[no-untyped-call]
    litellm.in_memory_llm_clients_cache.flush_cache()  # type: ignore[no-untyped-call]
    transport = getattr(litellm.module_level_aclient.client, "_transport", None)
    if transport is not None:
        await transport.aclose()


def _target(server: LlmTestServer, provider: str) -> dict[str, Any]:
    """litellm keyword arguments that reach ``server`` in ``provider``'s wire format."""
    if provider == "openai":
        return {"model": "openai/test-model", "api_base": server.base_url + "/v1"}
    return {"model": "anthropic/claude-test", "api_base": server.base_url}


async def _complete(server: LlmTestServer, provider: str = "openai", **extra: Any) -> Any:
    return await litellm.acompletion(
        **_target(server, provider),
        api_key="sk-test",
        max_retries=0,
        messages=[{"role": "user", "content": PROMPT}],
        **extra,
    )


def _usage(response: Any) -> tuple[int, int, int]:
    usage = response.usage
    return int(usage.prompt_tokens), int(usage.completion_tokens), int(usage.total_tokens)


def _response_header(error: Exception, name: str) -> str | None:
    """A header of the HTTP response behind a litellm error (litellm sets the attribute late)."""
    headers = getattr(error, "litellm_response_headers", None)
    return None if headers is None else headers.get(name)


async def _stream(server: LlmTestServer, provider: str, **extra: Any) -> tuple[list[str], Any]:
    """The content deltas of a streamed completion and the last usage seen."""
    stream = await _complete(server, provider, stream=True, **extra)
    deltas: list[str] = []
    usage = None
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            deltas.append(str(chunk.choices[0].delta.content))
        usage = getattr(chunk, "usage", None) or usage
    return deltas, usage


async def test_openai_completion_text_usage_and_recorded_request(llm_server: LlmTestServer) -> None:
    response = await _complete(llm_server)

    assert response.choices[0].message.content == EXPECTED
    assert response.choices[0].finish_reason == "stop"
    assert _usage(response) == (5, 6, 11)
    [request] = llm_server.requests
    assert request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == "Bearer sk-test"
    assert request.body["model"] == "test-model"
    assert request.body["messages"] == [{"role": "user", "content": PROMPT}]


async def test_default_reply_is_cut_at_max_tokens_and_reply_with_overrides_it(
    llm_server: LlmTestServer,
) -> None:
    short = await _complete(llm_server, max_tokens=3)
    llm_server.reply_with("a fixed answer")
    fixed = await _complete(llm_server)
    llm_server.reply_with(None)
    default = await _complete(llm_server)

    assert short.choices[0].message.content == "Echo: one two"
    assert short.choices[0].finish_reason == "length"
    assert fixed.choices[0].message.content == "a fixed answer"
    assert default.choices[0].message.content == EXPECTED


async def test_openai_stream_is_one_word_per_chunk_with_usage(llm_server: LlmTestServer) -> None:
    deltas, usage = await _stream(llm_server, "openai", stream_options={"include_usage": True})

    assert deltas == ["Echo:", " one", " two", " three", " four", " five"]
    assert "".join(deltas) == EXPECTED
    assert (usage.prompt_tokens, usage.completion_tokens) == (5, 6)
    assert llm_server.requests[0].body["stream_options"] == {"include_usage": True}


async def test_anthropic_format_completion_and_stream(llm_server: LlmTestServer) -> None:
    response = await _complete(llm_server, "anthropic")
    deltas, usage = await _stream(llm_server, "anthropic", stream_options={"include_usage": True})

    assert response.choices[0].message.content == EXPECTED
    assert _usage(response) == (5, 6, 11)
    assert "".join(deltas) == EXPECTED
    assert len(deltas) == 6
    assert (usage.prompt_tokens, usage.completion_tokens) == (5, 6)
    assert [r.path for r in llm_server.requests] == ["/v1/messages", "/v1/messages"]
    assert llm_server.requests[0].headers["x-api-key"] == "sk-test"
    assert llm_server.requests[0].body["model"] == "claude-test"


DEAL_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "title": {"type": "string"},
        "summary": {"type": "string", "maxLength": 8},
        "stage": {"type": "string", "enum": ["qualified", "won", "lost"]},
        "amount": {"type": "number"},
        "seats": {"type": "integer"},
        "urgent": {"type": "boolean"},
        "risks": {"type": "array", "items": {"type": "string"}},
        "owner": {
            "type": "object",
            "properties": {"name": {"type": "string"}, "team": {"$ref": "#/$defs/team"}},
        },
    },
    "$defs": {"team": {"type": "string", "maxLength": 6}},
    "required": ["title", "summary", "stage", "amount", "seats", "urgent", "risks", "owner"],
    "additionalProperties": False,
}
DEAL = {
    "title": "Echo title.",
    "summary": "Echo su.",  # "Echo summary." cut to maxLength 8, still ending with "."
    "stage": "qualified",
    "amount": 0,
    "seats": 0,
    "urgent": False,
    "risks": [],
    "owner": {"name": "Echo name.", "team": "Echo."},  # no space left before the period
}
DEAL_FORMAT = {
    "type": "json_schema",
    "json_schema": {"name": "deal", "schema": DEAL_SCHEMA, "strict": True},
}


async def test_a_json_schema_response_format_gets_a_conforming_document(
    llm_server: LlmTestServer,
) -> None:
    response = await _complete(llm_server, response_format=DEAL_FORMAT)
    deltas, usage = await _stream(
        llm_server, "openai", response_format=DEAL_FORMAT, stream_options={"include_usage": True}
    )

    text = response.choices[0].message.content
    assert json.loads(text) == DEAL
    assert len(json.loads(text)["summary"]) == 8
    assert response.choices[0].finish_reason == "stop"
    assert len(deltas) > 1  # split like any text, and the pieces join back exactly
    assert "".join(deltas) == text
    assert usage.completion_tokens == len(text.split())
    assert llm_server.requests[0].body["response_format"] == DEAL_FORMAT


async def test_json_object_gets_an_empty_object_and_reply_with_still_wins(
    llm_server: LlmTestServer,
) -> None:
    plain = await _complete(llm_server, response_format={"type": "json_object"})
    llm_server.reply_with('{"fixed": true}')
    fixed = await _complete(llm_server, response_format=DEAL_FORMAT)

    assert plain.choices[0].message.content == "{}"
    assert fixed.choices[0].message.content == '{"fixed": true}'


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_the_reply_ends_before_the_first_stop_sequence(
    llm_server: LlmTestServer, provider: str
) -> None:
    echo = await _complete(llm_server, provider, stop=["four", " thr"])
    deltas, _ = await _stream(llm_server, provider, stop=["four", " thr"])
    llm_server.reply_with("Subject: renewal\nBody: hello")
    fixed = await _complete(llm_server, provider, stop=["\n"])

    assert echo.choices[0].message.content == "Echo: one two"
    assert echo.choices[0].finish_reason == "stop"
    assert "".join(deltas) == "Echo: one two"
    assert fixed.choices[0].message.content == "Subject: renewal"
    sent = llm_server.requests[0].body
    assert sent.get("stop", sent.get("stop_sequences")) == ["four", " thr"]


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_429_is_a_rate_limit_error_with_retry_after_on_the_response(
    llm_server: LlmTestServer, provider: str
) -> None:
    llm_server.fail_next(1, 429, retry_after=7)

    with pytest.raises(RateLimitError) as caught:
        await _complete(llm_server, provider)

    assert caught.value.status_code == 429
    assert _response_header(caught.value, "retry-after") == "7"
    assert _response_header(caught.value, "retry-after-ms") == "7000"
    assert len(llm_server.requests) == 1
    # fail_next(1) is used up: the next call succeeds.
    assert (await _complete(llm_server, provider)).choices[0].message.content == EXPECTED


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_500_is_an_internal_server_error_and_down_is_unavailable(
    llm_server: LlmTestServer, provider: str
) -> None:
    llm_server.fail_next(1, 500)
    with pytest.raises(InternalServerError):
        await _complete(llm_server, provider)

    llm_server.down()
    with pytest.raises(ServiceUnavailableError):
        await _complete(llm_server, provider)
    llm_server.up()
    assert (await _complete(llm_server, provider)).choices[0].message.content == EXPECTED


async def test_error_bodies_follow_each_provider_shape(llm_server: LlmTestServer) -> None:
    llm_server.fail_next(2, 429, retry_after=0.5)
    async with httpx.AsyncClient(base_url=llm_server.base_url) as client:
        openai_error = await client.post("/v1/chat/completions", json={})
        anthropic_error = await client.post("/v1/messages", json={})

    assert openai_error.json()["error"]["code"] == "rate_limit_exceeded"
    assert set(openai_error.json()["error"]) == {"message", "type", "param", "code"}
    assert anthropic_error.json() == {
        "type": "error",
        "error": {"type": "rate_limit_error", "message": "injected failure"},
    }
    assert openai_error.headers["retry-after"] == "0.5"
    assert openai_error.headers["retry-after-ms"] == "500"
    async with httpx.AsyncClient(base_url=llm_server.base_url) as client:
        not_json = await client.post("/v1/chat/completions", content=b"{not json")
        no_messages = await client.post("/v1/messages", json={"model": "claude-test"})
    assert not_json.status_code == 400
    assert not_json.json()["error"]["type"] == "invalid_request_error"
    assert no_messages.status_code == 400
    assert no_messages.json()["error"]["type"] == "invalid_request_error"


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_hang_longer_than_the_timeout_is_a_timeout(
    llm_server: LlmTestServer, provider: str
) -> None:
    llm_server.hang_next(1, 60)

    with pytest.raises(Timeout):
        await _complete(llm_server, provider, timeout=0.3)
    assert (await _complete(llm_server, provider)).choices[0].message.content == EXPECTED


async def test_latency_applies_to_every_request_until_cleared(llm_server: LlmTestServer) -> None:
    llm_server.set_latency(60)
    for _ in range(2):
        with pytest.raises(Timeout):
            await _complete(llm_server, timeout=0.3)

    llm_server.set_latency(0)
    assert (await _complete(llm_server)).choices[0].message.content == EXPECTED


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_cut_stream_raises_while_iterating_after_the_first_chunks(
    llm_server: LlmTestServer, provider: str
) -> None:
    llm_server.cut_stream_after(2)
    stream = await _complete(llm_server, provider, stream=True)
    received: list[str] = []

    with pytest.raises(MidStreamFallbackError) as caught:
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                received.append(str(chunk.choices[0].delta.content))

    assert received == ["Echo:", " one"]
    assert caught.value.generated_content == "Echo: one"
    assert not caught.value.is_pre_first_chunk
    assert isinstance(caught.value.original_exception, APIConnectionError)
    # times=1: the next stream is whole.
    deltas, _ = await _stream(llm_server, provider)
    assert "".join(deltas) == EXPECTED


async def test_a_late_first_token_trips_the_stream_read_timeout(llm_server: LlmTestServer) -> None:
    llm_server.delay_first_token(60)

    with pytest.raises(MidStreamFallbackError) as caught:
        await _stream(llm_server, "openai", timeout=0.3)

    assert caught.value.is_pre_first_chunk
    assert caught.value.generated_content == ""
    assert isinstance(caught.value.original_exception, APIConnectionError)


async def _failure_pattern(server: LlmTestServer, calls: int) -> list[bool]:
    pattern = []
    for _ in range(calls):
        try:
            await _complete(server)
        except InternalServerError:
            pattern.append(False)
        else:
            pattern.append(True)
    return pattern


async def test_failure_rate_is_reproducible_by_seed(
    llm_server_factory: Callable[[], LlmTestServer],
) -> None:
    first, second, third = llm_server_factory(), llm_server_factory(), llm_server_factory()
    first.set_failure_rate(0.5, seed=11)
    second.set_failure_rate(0.5, seed=11)
    third.set_failure_rate(0.5, seed=12)

    pattern = await _failure_pattern(first, 16)

    assert await _failure_pattern(second, 16) == pattern
    assert await _failure_pattern(third, 16) != pattern
    assert 0 < pattern.count(False) < 16
    first.reset()
    assert await _failure_pattern(first, 4) == [True] * 4


async def test_embeddings_are_deterministic_unit_vectors(llm_server: LlmTestServer) -> None:
    async def embed(texts: list[str]) -> list[list[float]]:
        response = await litellm.aembedding(
            model="openai/test-model",
            api_base=llm_server.base_url + "/v1",
            api_key="sk-test",
            input=texts,
        )
        return [[float(v) for v in item["embedding"]] for item in response.data]

    first = await embed(["alpha", "beta"])
    again = await embed(["alpha"])

    assert again[0] == pytest.approx(first[0])
    assert first[0] != pytest.approx(first[1])
    assert all(math.isclose(math.hypot(*v), 1.0, rel_tol=1e-5) for v in first)


def test_models_endpoint_and_cli_entry_point() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.fixtures.llm_server", "--port", "0", "--latency-ms", "1"],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        assert line.startswith("listening on http://127.0.0.1:")
        models = httpx.get(line.removeprefix("listening on ") + "/v1/models", timeout=30).json()
        assert [m["id"] for m in models["data"]] == ["test-model"]
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
        if process.stdout is not None:
            process.stdout.close()


def test_guard_refuses_non_loopback_connect_before_the_system_call(
    network_guard: NetworkGuard, llm_server: LlmTestServer
) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as refused:
        with pytest.raises(PermissionError):
            refused.connect(("192.0.2.1", 9))
        # A connect() that reached the kernel would have bound an ephemeral port: none is.
        assert refused.getsockname() == ("0.0.0.0", 0)
    with pytest.raises(PermissionError):
        socket.getaddrinfo("example.com", 443)

    assert [(v.event, v.target) for v in network_guard.take_violations()] == [
        ("socket.connect", "('192.0.2.1', 9)"),
        ("socket.getaddrinfo", "'example.com'"),
    ]
    port = int(llm_server.base_url.rsplit(":", 1)[1])
    with socket.create_connection(("localhost", port), timeout=30) as allowed:
        assert allowed.getsockname()[1] != 0
    assert network_guard.violations == ()


def test_guard_fails_a_test_that_swallows_the_refusal(tmp_path: Path) -> None:
    test_file = tmp_path / "test_swallowed.py"
    test_file.write_text(
        textwrap.dedent(
            """
            import socket

            def test_swallows() -> None:
                try:
                    socket.create_connection(("192.0.2.1", 9), timeout=1)
                except OSError:
                    pass
            """
        )
    )
    completed = subprocess.run(
        [
            *(sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"),
            *("-p", "tests.fixtures.network_guard", "--rootdir", str(tmp_path), str(test_file)),
        ],
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert completed.returncode == 1, completed.stdout
    assert "network outside loopback was tried during this test" in completed.stdout
    assert "192.0.2.1" in completed.stdout
