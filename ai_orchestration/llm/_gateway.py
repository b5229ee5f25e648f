"""The LLM gateway: one call path with retries, failover, circuit breakers and accounting.

Why ``litellm.acompletion`` per deployment and not a ``litellm.Router``: the Router has its own
retries, cooldowns and fallbacks, and none of them cover what this layer must guarantee (a
stream that fails before its first token falls over, one that fails after it is reported, the
circuit state is shared through Redis, first-token and connect timeouts, the degraded answer).
Running the Router with all of that switched off would leave a second, idle routing engine
between us and the provider; calling ``acompletion`` with the deployment's own parameters keeps
one engine (this module) and one place where attempts are counted. litellm still does what it
is good at: provider formats (OpenAI, Anthropic, Gemini, Bedrock, Azure, ...), streaming, usage
and its price list. Every call passes ``max_retries=0``: no SDK retries behind our back.

For each request the gateway walks the route of the logical model (its deployments, then its
``fallbacks``, then ``default_fallbacks``): a deployment whose circuit is open is skipped without
a request; otherwise up to ``1 + retries`` attempts are made, separated by exponential backoff
with full jitter (at least the provider's ``Retry-After`` when it sent one). When every
deployment failed the caller gets the deterministic template answer (``degraded``) if it allowed
one, else :class:`LlmUnavailableError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import logging
import os
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, TypeVar

import aiohttp
import httpx
import openai

from ai_orchestration.llm._breaker import BreakerStore, CircuitBreaker
from ai_orchestration.llm._config import Deployment, GatewayConfig, RetryPolicy
from ai_orchestration.llm._telemetry import CallTelemetry, ObservedCall
from ai_orchestration.llm._types import (
    DEGRADED_DEPLOYMENT,
    Completion,
    CompletionRequest,
    LlmUnavailableError,
    ResponseCache,
    TokenDelta,
    Usage,
    UsageLedger,
)

# litellm reaches for the network at import time unless told otherwise.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("LITELLM_LOCAL_ANTHROPIC_BETA_HEADERS", "True")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
import litellm

litellm.suppress_debug_info = True

__all__ = ["DEFAULT_FALLBACK_TEXT", "LlmGateway"]

_log = logging.getLogger(__name__)

DEFAULT_FALLBACK_TEXT: Final[str] = (
    "The language model is unavailable right now, so this answer could not be generated. "
    "Please try again later."
)
"""The degraded answer's text when the request gave no ``fallback_text``."""

# Failures of one attempt: litellm maps provider errors to openai.* classes; transport errors
# can surface unmapped mid-stream; TimeoutError comes from our own deadlines.
_ATTEMPT_ERRORS: Final = (
    openai.OpenAIError,
    httpx.HTTPError,
    aiohttp.ClientError,
    ConnectionError,
    TimeoutError,
)
# Statuses that blame the request, not the deployment: not retried, circuit untouched.
_REQUEST_FAULTS: Final[frozenset[int]] = frozenset({400, 413, 422})
# Statuses that blame the deployment's configuration: not retried, but counted.
_PERMANENT: Final[frozenset[int]] = frozenset({401, 403, 404})
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class _AttemptFailure:
    """What one failed attempt tells the retry loop."""

    description: str
    retryable: bool
    counts_for_breaker: bool
    retry_after: float | None


class _RouteFailedError(Exception):
    """Every deployment of the route failed or was skipped."""

    def __init__(self, reasons: list[str]) -> None:
        super().__init__("; ".join(reasons))
        self.reasons = reasons


@dataclass(slots=True)
class _OpenStream:
    """A stream whose first token has arrived (or that ended without any text)."""

    chunks: AsyncIterator[Any]
    closer: Callable[[], Awaitable[None]] | None
    first_text: str
    deadline: float
    counts: tuple[int, int] | None = None
    """Prompt and completion tokens from the usage chunk, once it arrived."""
    finish_reason: str = "stop"
    ended: bool = False


class LlmGateway:
    """Runs completions through the configured deployments; see the module docstring."""

    def __init__(
        self,
        *,
        config: GatewayConfig,
        breaker_store: BreakerStore,
        cache: ResponseCache | None = None,
        ledger: UsageLedger | None = None,
        redactor: Callable[[str], str] | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
        telemetry: CallTelemetry | None = None,
    ) -> None:
        """``telemetry``: a span and the GenAI histograms per call (none by default)."""
        self._config = config
        self._telemetry = telemetry or CallTelemetry(
            deployments={d.id: d for d in config.deployments}
        )
        self._breaker = CircuitBreaker(store=breaker_store, policy=config.breaker, clock=clock)
        self._cache = cache
        self._ledger = ledger
        self._redactor = redactor
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._prices = {d.id: _unit_prices(d) for d in config.deployments}

    @property
    def config(self) -> GatewayConfig:
        """The routing config in use."""
        return self._config

    @property
    def breaker(self) -> CircuitBreaker:
        """The deployments' circuit breakers (for health reporting)."""
        return self._breaker

    async def complete(self, request: CompletionRequest) -> Completion:
        """Answer ``request``: from the cache, a deployment, or the degraded template."""
        call = self._telemetry.begin(request, streaming=False)
        try:
            completion = await self._complete(request, call)
        except BaseException as error:
            self._telemetry.failed(call, error)
            raise
        self._telemetry.finished(call, completion)
        return completion

    async def _complete(self, request: CompletionRequest, call: ObservedCall) -> Completion:
        cached = await self._cached(request)
        if cached is not None:
            return cached
        await self._check_budget(request)
        try:
            deployment, completion = await self._first_success(
                request, lambda d: self._complete_once(d, request), call
            )
        except _RouteFailedError as failed:
            return await self._finish(request, self._degraded(request, failed.reasons))
        _log.debug("completion for %s answered by %s", request.model, deployment.id)
        return await self._finish(request, completion)

    async def stream(self, request: CompletionRequest) -> AsyncIterator[TokenDelta | Completion]:
        """Stream ``request``'s answer as :class:`TokenDelta` items; the last item is always the
        :class:`Completion` (``truncated`` if the stream broke after its first token)."""
        call = self._telemetry.begin(request, streaming=True)
        last: TokenDelta | Completion | None = None
        try:
            async for last in self._stream(request, call):
                yield last
        except BaseException as error:
            self._telemetry.failed(call, error)
            raise
        if isinstance(last, Completion):
            self._telemetry.finished(call, last)
        else:  # pragma: no cover - _stream always ends with its Completion
            self._telemetry.failed(call, LlmUnavailableError("the stream ended without an answer"))

    async def _stream(
        self, request: CompletionRequest, call: ObservedCall
    ) -> AsyncIterator[TokenDelta | Completion]:
        cached = await self._cached(request)
        if cached is not None:
            yield TokenDelta(cached.text)
            yield cached
            return
        await self._check_budget(request)
        try:
            deployment, opened = await self._first_success(
                request, lambda d: self._open_stream(d, request), call
            )
        except _RouteFailedError as failed:
            degraded = self._degraded(request, failed.reasons)
            yield TokenDelta(degraded.text)
            yield await self._finish(request, degraded)
            return
        parts = [opened.first_text]
        if opened.first_text:
            yield TokenDelta(opened.first_text)
        error = ""
        try:
            while not opened.ended:
                try:
                    async with asyncio.timeout_at(opened.deadline):
                        chunk = await anext(opened.chunks)
                except StopAsyncIteration:
                    break
                text = _absorb(opened, chunk)
                if text:
                    parts.append(text)
                    yield TokenDelta(text)
        except _ATTEMPT_ERRORS as exc:
            error = f"stream from {deployment.id} failed after its first token: {_describe(exc)}"
            _log.warning("%s", error, exc_info=True)
            await self._breaker.failure(deployment.id)
        finally:
            if opened.closer is not None:
                with contextlib.suppress(*_ATTEMPT_ERRORS):
                    await opened.closer()
        yield await self._finish(request, self._streamed(request, deployment, opened, parts, error))

    # --- the route -----------------------------------------------------------------------

    async def _first_success(
        self,
        request: CompletionRequest,
        attempt: Callable[[Deployment], Awaitable[_T]],
        call: ObservedCall,
    ) -> tuple[Deployment, _T]:
        reasons: list[str] = []
        for deployment in self._config.route(request.model):
            for number in range(deployment.retry.retries + 1):
                if not await self._breaker.allow(deployment.id):
                    reasons.append(f"{deployment.id}: circuit open")
                    break
                try:
                    result = await attempt(deployment)
                except _ATTEMPT_ERRORS as exc:
                    failure = _classify(exc, deployment)
                    reasons.append(f"{deployment.id}: {failure.description}")
                    self._telemetry.attempt_failed(call, deployment.id, failure.description)
                    _log.info("LLM attempt on %s failed: %s", deployment.id, exc)
                    opened = failure.counts_for_breaker and await self._breaker.failure(
                        deployment.id
                    )
                    delay = self._backoff(deployment.retry, number, failure.retry_after)
                    if opened or not failure.retryable or delay is None:
                        break
                    if number < deployment.retry.retries:
                        await self._sleep(delay)
                    continue
                await self._breaker.success(deployment.id)
                return deployment, result
        raise _RouteFailedError(reasons)

    def _backoff(self, policy: RetryPolicy, number: int, retry_after: float | None) -> float | None:
        """Delay before retry ``number + 1``: full jitter, at least ``Retry-After``; None when
        the provider asks for a longer wait than the policy honours."""
        if retry_after is not None and retry_after > policy.max_retry_after:
            return None
        jitter = self._rng.uniform(0.0, min(policy.max_delay, policy.base_delay * 2**number))
        return max(jitter, retry_after or 0.0)

    # --- one attempt -----------------------------------------------------------------------

    async def _complete_once(
        self, deployment: Deployment, request: CompletionRequest
    ) -> Completion:
        async with asyncio.timeout(deployment.timeouts.total):
            response = await litellm.acompletion(**self._arguments(deployment, request))
        choice = response.choices[0]
        usage = self._usage(deployment, _usage_counts(getattr(response, "usage", None)), request)
        return Completion(
            text=str(choice.message.content or ""),
            model=request.model,
            deployment=deployment.id,
            usage=usage,
            finish_reason=str(choice.finish_reason or "stop"),
        )

    async def _open_stream(self, deployment: Deployment, request: CompletionRequest) -> _OpenStream:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + deployment.timeouts.total
        first_deadline = min(deadline, loop.time() + deployment.timeouts.first_token)
        stream: Any = None
        try:
            async with asyncio.timeout_at(first_deadline):
                stream = await litellm.acompletion(
                    **self._arguments(deployment, request),
                    stream=True,
                    stream_options={"include_usage": True},
                )
                opened = _OpenStream(
                    chunks=aiter(stream),
                    closer=getattr(stream, "aclose", None),
                    first_text="",
                    deadline=deadline,
                )
                while not opened.first_text:
                    try:
                        chunk = await anext(opened.chunks)
                    except StopAsyncIteration:
                        opened.ended = True
                        break
                    opened.first_text = _absorb(opened, chunk)
                return opened
        except BaseException:
            # Nothing reached the caller yet: release the connection; the route moves on.
            if stream is not None and hasattr(stream, "aclose"):
                with contextlib.suppress(*_ATTEMPT_ERRORS):
                    await stream.aclose()
            raise

    def _arguments(self, deployment: Deployment, request: CompletionRequest) -> dict[str, Any]:
        redact = self._redactor if deployment.redact_pii else None
        timeouts = deployment.timeouts
        return {
            **deployment.params,
            "model": deployment.litellm_model,
            "messages": [
                {"role": m.role, "content": redact(m.content) if redact else m.content}
                for m in request.messages
            ],
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
            **request.constraints(),
            "max_retries": 0,
            "timeout": httpx.Timeout(timeouts.total, connect=timeouts.connect),
            # Providers without a parameter (penalties on Anthropic, ...) lose it, not the call.
            "drop_params": True,
        }

    # --- results ---------------------------------------------------------------------------

    def _usage(
        self, deployment: Deployment, counts: tuple[int, int] | None, request: CompletionRequest
    ) -> Usage:
        prompt, completion = counts or (_estimate_prompt_tokens(request), 0)
        price_in, price_out = self._prices[deployment.id]
        return Usage(
            prompt_tokens=prompt,
            completion_tokens=completion,
            cost_usd=prompt * price_in + completion * price_out,
        )

    def _streamed(
        self,
        request: CompletionRequest,
        deployment: Deployment,
        opened: _OpenStream,
        parts: list[str],
        error: str,
    ) -> Completion:
        text = "".join(parts)
        # No usage chunk (provider without include_usage, or a broken stream): estimate.
        counts = opened.counts or (_estimate_prompt_tokens(request), _estimate_tokens(text))
        return Completion(
            text=text,
            model=request.model,
            deployment=deployment.id,
            usage=self._usage(deployment, counts, request),
            finish_reason="error" if error else opened.finish_reason,
            truncated=bool(error),
            error=error,
        )

    def _degraded(self, request: CompletionRequest, reasons: list[str]) -> Completion:
        why = f"every deployment of {request.model!r} failed: " + "; ".join(reasons)
        _log.warning("%s", why)
        if not request.allow_degraded:
            raise LlmUnavailableError(why, metadata={"model": request.model})
        return Completion(
            text=request.fallback_text or DEFAULT_FALLBACK_TEXT,
            model=request.model,
            deployment=DEGRADED_DEPLOYMENT,
            usage=Usage(),
            degraded=True,
            error=why,
        )

    async def _cached(self, request: CompletionRequest) -> Completion | None:
        if self._cache is None or not request.use_cache:
            return None
        hit = await self._cache.get(request)
        if hit is not None and self._ledger is not None:
            await self._ledger.record(request, hit)
        return hit

    async def _check_budget(self, request: CompletionRequest) -> None:
        if self._ledger is not None:
            estimate = _estimate_prompt_tokens(request) + request.max_tokens
            await self._ledger.check(request.context, request.model, estimate)

    async def _finish(self, request: CompletionRequest, completion: Completion) -> Completion:
        if self._ledger is not None:
            await self._ledger.record(request, completion)
        clean = not (completion.degraded or completion.truncated)
        if clean and self._cache is not None and request.use_cache:
            await self._cache.put(request, completion)
        return completion


def _absorb(opened: _OpenStream, chunk: Any) -> str:
    """Fold one litellm stream chunk into ``opened``; returns its text."""
    counts = _usage_counts(getattr(chunk, "usage", None))
    if counts is not None:
        opened.counts = counts
    choices = getattr(chunk, "choices", None) or ()
    if not choices:
        return ""
    choice = choices[0]
    if choice.finish_reason:
        opened.finish_reason = str(choice.finish_reason)
    delta = getattr(choice, "delta", None)
    return str(getattr(delta, "content", None) or "")


def _usage_counts(usage: Any) -> tuple[int, int] | None:
    if usage is None:
        return None
    prompt = getattr(usage, "prompt_tokens", None)
    completion = getattr(usage, "completion_tokens", None)
    if not isinstance(prompt, int) or not isinstance(completion, int):
        return None
    return prompt, completion


def _estimate_tokens(text: str) -> int:
    """About four characters per token (good enough for budgets and broken streams)."""
    return (len(text) + 3) // 4


def _estimate_prompt_tokens(request: CompletionRequest) -> int:
    # Each message costs a few tokens of framing on top of its text.
    return sum(_estimate_tokens(m.content) + 4 for m in request.messages)


def _unit_prices(deployment: Deployment) -> tuple[float, float]:
    """USD per prompt and completion token: configured, else litellm's price list, else 0."""
    if deployment.input_cost_per_token is not None or deployment.output_cost_per_token is not None:
        price_in = deployment.input_cost_per_token or 0.0
        price_out = deployment.output_cost_per_token or 0.0
        # Registered so litellm's own cost reporting agrees with ours for custom models.
        litellm.register_model(
            {
                deployment.litellm_model: {
                    "input_cost_per_token": price_in,
                    "output_cost_per_token": price_out,
                    "litellm_provider": deployment.provider,
                    "mode": "chat",
                }
            }
        )
        return price_in, price_out
    try:
        prices = litellm.cost_per_token(
            model=deployment.litellm_model, prompt_tokens=1, completion_tokens=1
        )
    except (litellm.exceptions.ModelNotMappedError, openai.OpenAIError, ValueError, KeyError):
        _log.warning("no price known for %s: its calls cost 0", deployment.id)
        return 0.0, 0.0
    return float(prices[0]), float(prices[1])


def _classify(exc: BaseException, deployment: Deployment) -> _AttemptFailure:
    status = getattr(exc, "status_code", None)
    if isinstance(exc, TimeoutError):
        return _AttemptFailure(
            f"timed out ({deployment.timeouts.total:g} s total, "
            f"{deployment.timeouts.first_token:g} s to first token)",
            retryable=True,
            counts_for_breaker=True,
            retry_after=None,
        )
    if isinstance(status, int) and status in _REQUEST_FAULTS:
        return _AttemptFailure(_describe(exc), False, False, None)
    if isinstance(status, int) and status in _PERMANENT:
        return _AttemptFailure(_describe(exc), False, True, None)
    return _AttemptFailure(_describe(exc), True, True, _retry_after(exc))


def _describe(exc: BaseException) -> str:
    status = getattr(exc, "status_code", None)
    suffix = f" (HTTP {status})" if isinstance(status, int) else ""
    return f"{type(exc).__name__}{suffix}"


def _retry_after(exc: BaseException) -> float | None:
    """Seconds the provider asked to wait, from ``retry-after-ms`` or ``retry-after``."""
    # litellm keeps the provider's headers here; exc.response is a rebuilt stand-in.
    headers: Any = getattr(exc, "litellm_response_headers", None)
    if headers is None:
        headers = getattr(getattr(exc, "response", None), "headers", None)
    if not isinstance(headers, Mapping | httpx.Headers):
        return None
    milliseconds = _seconds(headers.get("retry-after-ms"))
    if milliseconds is not None:
        return milliseconds / 1000
    value = headers.get("retry-after")
    seconds = _seconds(value)
    if seconds is not None or not isinstance(value, str):
        return seconds
    try:  # the HTTP-date form
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _seconds(value: object) -> float | None:
    """A non-negative number from a header value, or None."""
    if not isinstance(value, str | int | float):
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
