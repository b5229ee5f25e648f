"""Plumbing shared by the graph nodes: step events, tool calls and LLM calls with fallbacks.

Every node is wrapped by :func:`step`: it emits ``step_started``, runs the body in a span
(``workflow.step NAME``), emits ``step_finished`` with its duration and whether it used its
deterministic fallback, and adds the step to ``degraded_steps`` when it did. Tool calls have a
span each (``execute_tool NAME``, GenAI conventions) beside their events. A node that pauses
for a human (LangGraph's ``interrupt()`` raises ``GraphInterrupt``) finishes its step when it
pauses and starts it again when it is resumed: LangGraph re-runs an interrupted node from its
beginning.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Protocol, TypeVar

from langgraph.errors import GraphInterrupt
from langgraph.runtime import Runtime
from opentelemetry.trace import Status, StatusCode
from sqlalchemy.exc import SQLAlchemyError

from ai_orchestration import errors
from ai_orchestration.llm import (
    CallContext,
    ChatMessage,
    Completion,
    CompletionRequest,
    PromptInjectionError,
    TokenDelta,
)
from ai_orchestration.workflows._types import EventKind, JsonDoc
from ai_orchestration.workflows.graphs._context import RunContext
from ai_orchestration.workflows.graphs._json_text import JsonTextStream

__all__ = [
    "TOOL_ERRORS",
    "Body",
    "Generation",
    "Node",
    "ask",
    "call_tool",
    "flagged",
    "json_doc",
    "step",
]

_log = logging.getLogger(__name__)
_T = TypeVar("_T")

Body = Callable[[dict[str, Any], RunContext, str], Awaitable[tuple[dict[str, Any], bool]]]
"""A node's work: (state, context, step name) -> (state update, degraded)."""


class Node(Protocol):
    """A LangGraph node taking the run context through ``Runtime`` (LangGraph passes it by
    keyword)."""

    def __call__(
        self, state: Any, *, runtime: Runtime[RunContext]
    ) -> Awaitable[dict[str, Any]]: ...


TOOL_ERRORS: tuple[type[Exception], ...] = (
    SQLAlchemyError,
    errors.OrchestrationError,
    ValueError,
    OSError,
)
"""What a failing tool over our own store raises; anything else is a bug and fails the run."""


def step(name: str, agent: str, body: Body) -> Node:
    """The LangGraph node running ``body`` as step ``name`` of ``agent``."""

    async def node(state: Any, *, runtime: Runtime[RunContext]) -> dict[str, Any]:
        context = runtime.context
        await context.events.emit(EventKind.STEP_STARTED, {"step": name, "agent": agent})
        started = time.perf_counter()

        async def finished(degraded: bool) -> None:
            duration = round((time.perf_counter() - started) * 1000, 3)
            payload = {"step": name, "agent": agent, "degraded": degraded, "duration_ms": duration}
            await context.events.emit(EventKind.STEP_FINISHED, payload)

        attributes = {
            "crm.workflow": context.run.workflow,
            "crm.run_id": context.run.run_id,
            "crm.tenant_id": context.run.tenant_id,
            "crm.step": name,
            "crm.agent": agent,
        }
        with context.deps.tracer.start_as_current_span(
            f"workflow.step {name}",
            attributes=attributes,
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            try:
                update, degraded = await body(state, context, name)
            except GraphInterrupt:
                # A pause for a human, not a failure: the step starts again when resumed.
                span.set_attribute("crm.step.interrupted", True)
                await finished(False)
                raise
            except BaseException as error:
                span.record_exception(error)
                span.set_status(Status(StatusCode.ERROR, type(error).__name__))
                raise
            span.set_attribute("crm.step.degraded", degraded)
        await finished(degraded)
        if degraded:
            update = {**update, "degraded_steps": [name]}
        return update

    node.__name__ = name
    return node


def _dumps(value: object) -> str:
    return json.dumps(value, sort_keys=True, default=str)


async def call_tool(
    context: RunContext,
    step_name: str,
    number: int,
    tool: str,
    *,
    arguments: Mapping[str, object],
    run: Callable[[], Awaitable[_T]],
    shown: Callable[[_T], object] = lambda value: value,
) -> tuple[_T | None, bool]:
    """Run one tool with ``tool_call`` / ``tool_result`` events (the result with the call's
    duration) and an ``execute_tool`` span; (result, ok).

    ``shown`` turns the result into the JSON of its ``tool_result`` event. A failing tool is
    reported (``error: true``) and gives ``(None, False)``: the agent goes on without it.
    """
    call_id = f"{step_name}.{number}"
    await context.events.emit(
        EventKind.TOOL_CALL,
        {"step": step_name, "call_id": call_id, "tool": tool, "arguments_json": _dumps(arguments)},
    )
    attributes = {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": tool,
        "gen_ai.tool.call.id": call_id,
        "crm.run_id": context.run.run_id,
    }
    started = time.perf_counter()

    def finished(shown_json: str, error: bool) -> JsonDoc:
        duration = round((time.perf_counter() - started) * 1000, 3)
        return {
            "step": step_name,
            "call_id": call_id,
            "result_json": shown_json,
            "error": error,
            "duration_ms": duration,
        }

    try:
        with context.deps.tracer.start_as_current_span(
            f"execute_tool {tool}", attributes=attributes, set_status_on_exception=False
        ) as span:
            try:
                result = await run()
            except TOOL_ERRORS as err:
                span.set_attribute("error.type", type(err).__name__)
                span.set_status(Status(StatusCode.ERROR, str(err)[:500]))
                raise
    except TOOL_ERRORS as err:
        _log.warning("tool %s of run %s failed: %s", tool, context.run.run_id, err)
        failure = {"error": type(err).__name__, "message": str(err)[:500]}
        await context.events.emit(EventKind.TOOL_RESULT, finished(_dumps(failure), True))
        return None, False
    await context.events.emit(EventKind.TOOL_RESULT, finished(_dumps(shown(result)), False))
    return result, True


async def flagged(context: RunContext, text: str, field: str) -> bool:
    """Whether the injection guard flags ``text`` (untrusted text from ``field``: a customer's
    passage, a tool's answer), so that it is withheld from the model; refused under the BLOCK
    policy counts as flagged."""
    try:
        verdict = await context.deps.guard.check(context.run.tenant_id, text, field=field)
    except PromptInjectionError:
        return True
    return verdict.flagged


async def _usage(context: RunContext, completion: Completion) -> None:
    usage = completion.usage
    await context.events.emit(
        EventKind.USAGE,
        {
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "total_tokens": usage.total_tokens,
            "cost_usd": usage.cost_usd,
            "model": f"{completion.model}/{completion.deployment}",
            "degraded": completion.degraded,
        },
    )


@dataclass(frozen=True, slots=True)
class Generation:
    """How a step asks the model: which model, how much, how freely, in which shape."""

    model: str
    """Logical model name."""
    max_tokens: int
    """Most tokens of the answer."""
    temperature: float = 0.0
    """Sampling temperature (0: the most likely text, repeatable)."""
    frequency_penalty: float = 0.0
    """Penalty on tokens the answer already used (OpenAI semantics), against loops."""
    schema: Mapping[str, Any] | None = None
    """JSON schema the answer must follow (constrained generation), or None for free text."""
    stop: tuple[str, ...] = ()
    """Stop sequences: the answer ends before the first one."""
    stream: bool = False
    """Whether the answer is streamed as ``token_delta`` events (the values of a structured
    answer, see :class:`~._json_text.JsonTextStream`)."""
    attempt: int = 0
    """Which of the step's calls this is (0 first, 1.. revisions), sent with the deltas."""
    examples: tuple[tuple[Mapping[str, str], str], ...] = ()
    """Worked examples shown before the question as earlier turns of the chat: the template's
    user text rendered with each example's variables, then the answer. A small model follows
    an example far better than a description of the answer."""
    use_cache: bool = True
    """Whether the gateway may answer from its caches and store the answer there; off for a
    prompt holding a customer's own words, so that erasing the customer leaves no cache entry
    built from them."""


async def ask(
    context: RunContext,
    step_name: str,
    template: str,
    variables: Mapping[str, str],
    generation: Generation,
    *,
    subject_key: str,
    fallback: str,
) -> tuple[str, bool]:
    """Render ``template`` and ask the gateway; (text, degraded).

    Streamed calls emit ``token_delta`` events (pieces coalesced, see :data:`DELTA_MIN_CHARS`);
    every answered call emits ``usage``. The degraded answer (every deployment failed), a stream
    cut after its first token, an answer cut by the token limit, and a call the gateway refused
    (budget, rate limit, template error) all give ``(fallback, True)``.
    """
    run = context.run
    try:
        rendered = await context.deps.templates.render(
            run.tenant_id, template, variables, subject_key
        )
        shown: list[ChatMessage] = []
        for example, answer in generation.examples:
            asked = await context.deps.templates.render(
                run.tenant_id, template, example, subject_key
            )
            shown += [asked.messages[-1], ChatMessage(role="assistant", content=answer)]
        request = CompletionRequest(
            model=generation.model,
            messages=(*rendered.messages[:-1], *shown, rendered.messages[-1]),
            context=rendered.context_for(
                CallContext(tenant_id=run.tenant_id, run_id=run.run_id, step=step_name)
            ),
            max_tokens=generation.max_tokens,
            temperature=generation.temperature,
            frequency_penalty=generation.frequency_penalty,
            stop=generation.stop,
            response_schema=generation.schema,
            response_schema_name=template,
            fallback_text=fallback,
            metadata={"workflow": run.workflow},
            use_cache=generation.use_cache,
        )
        completion = await _call(context, step_name, request, generation)
    except errors.OrchestrationError as err:
        _log.warning("LLM call of step %s of run %s refused: %s", step_name, run.run_id, err)
        return fallback, True
    await _usage(context, completion)
    if completion.degraded or completion.truncated or completion.finish_reason == "length":
        return fallback, True
    return completion.text, False


DELTA_MIN_CHARS: Final[int] = 32
"""Streamed pieces are coalesced into ``token_delta`` events of at least this many characters
(the last one of a call excepted): every event is a committed write of the event log, and a
model streams a few characters at a time."""
DELTA_MAX_SECONDS: Final[float] = 0.05
"""A piece arriving this long or longer after the first one held back sends what is held, so a
slow model's text is not held back for many pieces."""


async def _call(
    context: RunContext, step_name: str, request: CompletionRequest, generation: Generation
) -> Completion:
    gateway = context.deps.gateway
    if not generation.stream:
        return await gateway.complete(request)
    readable = JsonTextStream() if generation.schema is not None else None
    final: Completion | None = None
    held, since = "", 0.0

    async def send(text: str) -> None:
        payload = {"step": step_name, "text": text, "attempt": generation.attempt}
        await context.events.emit(EventKind.TOKEN_DELTA, payload)

    async for item in gateway.stream(request):
        if not isinstance(item, TokenDelta):
            final = item
            continue
        text = readable.feed(item.text) if readable is not None else item.text
        if text:
            since = since if held else time.monotonic()
            held += text
            if len(held) >= DELTA_MIN_CHARS or time.monotonic() - since >= DELTA_MAX_SECONDS:
                await send(held)
                held = ""
    if held:
        await send(held)
    if final is None:  # the gateway always ends a stream with its Completion
        raise errors.UnavailableError("the LLM stream ended without a completion")
    return final


def json_doc(value: object) -> JsonDoc:
    """``value`` when it is a JSON object, else an empty one (state read defensively)."""
    return dict(value) if isinstance(value, dict) else {}
