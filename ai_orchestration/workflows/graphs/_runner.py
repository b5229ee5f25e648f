"""The LangGraph side of the engine: :class:`LangGraphRunner` implements ``WorkflowRunner``.

Each run is a LangGraph thread (``thread_id = run_id``) on the runner's checkpointer, executed
with ``durability="sync"``: the checkpoint of a step is committed before the next step starts,
so an execution that dies (cancelled, crashed, its replica SIGKILLed) resumes on the next
``execute`` at the step that was running, and finished steps are never run again.

Which execution it is follows from the thread's last checkpoint, not from the run record:

- no checkpoint: a first execution, starting from ``run.input``;
- an interrupt pending: answered with ``Command(resume=run.resume)`` when ``run.resume`` is set,
  else the pending interrupt is returned again;
- steps left: continue from the last checkpoint (``input=None``);
- nothing left: the run had finished (a crash after the last checkpoint): its output again.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.types import Command

from ai_orchestration import errors
from ai_orchestration.workflows._types import (
    Completed,
    EventSink,
    Interrupted,
    JsonDoc,
    Outcome,
    RunRecord,
    WorkflowDefinition,
)
from ai_orchestration.workflows.graphs._context import RunContext, WorkflowDeps
from ai_orchestration.workflows.graphs._graphs import Graph, build_graphs, output_of, served
from ai_orchestration.workflows.graphs._review import accept_answer, check_answer

__all__ = ["LangGraphRunner"]


def _input_of(run: RunRecord) -> JsonDoc:
    # The engine stores the workflow's input message; accept the StartRunRequest oneof form
    # (``{"lead_qualification": {...}}``) too.
    document = run.input
    inner = document.get(run.workflow)
    return dict(inner) if len(document) == 1 and isinstance(inner, dict) else dict(document)


class LangGraphRunner:
    """Runs the workflows of :data:`~._graphs.DEFINITIONS` its deps can serve as LangGraph graphs
    on ``checkpointer``.

    One runner serves many concurrent runs: the graphs are compiled once, and each
    :meth:`execute` passes its run, event sink and the deps as LangGraph's run context.
    """

    def __init__(self, *, deps: WorkflowDeps, checkpointer: BaseCheckpointSaver[str]) -> None:
        self._deps = deps
        self._checkpointer = checkpointer
        self._definitions = served(deps)
        self._graphs: dict[str, Graph] = {
            name: graph
            for name, graph in build_graphs(checkpointer).items()
            if name in self._definitions
        }

    @property
    def definitions(self) -> Mapping[str, WorkflowDefinition]:
        """Workflow name -> definition (of the workflows served)."""
        return self._definitions

    def graph(self, workflow: str) -> Graph:
        """The compiled graph of ``workflow`` (for inspection and benchmarks).

        Raises:
            errors.NotFoundError: no such workflow.
        """
        graph = self._graphs.get(workflow)
        if graph is None:
            raise errors.NotFoundError(
                f"unknown workflow {workflow!r}", metadata={"workflow": workflow}
            )
        return graph

    async def pending_interrupt(self, run_id: str, workflow: str) -> JsonDoc | None:
        """The ``Interrupt`` document run ``run_id`` waits on, if any."""
        snapshot = await self.graph(workflow).aget_state(_config(run_id))
        return _interrupt_of(snapshot.interrupts)

    async def forget(self, run_ids: Collection[str]) -> None:
        """Delete every checkpoint of the runs ``run_ids`` (their LangGraph threads)."""
        for run_id in run_ids:
            await self._checkpointer.adelete_thread(run_id)

    async def accept_answer(self, run: RunRecord, answer: JsonDoc) -> JsonDoc:
        """Check a human's answer against the run's pending interrupt and draft (see
        :func:`~._review.accept_answer`); returns the answer to store."""
        snapshot = await self.graph(run.workflow).aget_state(_config(run.run_id))
        pending = _interrupt_of(snapshot.interrupts) or run.pending_interrupt or {}
        return accept_answer(
            snapshot.values,
            pending,
            answer,
            policy=self._deps.content,
            tenant_id=run.tenant_id,
            now=self._deps.clock(),
        )

    async def execute(self, run: RunRecord, events: EventSink) -> Outcome:
        """Run ``run`` from its last checkpoint to its end or its next interrupt.

        Raises:
            errors.NotFoundError: the run's workflow is not defined here.
            errors.FailedPreconditionError: ``run.resume`` answers another interrupt.
            errors.InvalidArgumentError: ``run.resume`` is not a valid answer.
        """
        graph = self.graph(run.workflow)
        config = _config(run.run_id)
        command = await self._command(graph, run, config)
        if isinstance(command, Completed | Interrupted):
            return command
        context = RunContext(
            run=run,
            events=events,
            deps=self._deps,
            interruptible=self.definitions[run.workflow].interruptible,
        )
        values: dict[str, Any] = {}
        # "values" streams the whole state after each step; the last one is the outcome (with
        # the pending interrupts under "__interrupt__"), so no state read is needed after.
        async for state in graph.astream(
            command, config, context=context, durability="sync", stream_mode="values"
        ):
            values = state
        pending = _interrupt_of(tuple(values.get("__interrupt__", ())))
        if pending is not None:
            return Interrupted(pending)
        return Completed(output_of(run.workflow, values))

    async def _command(self, graph: Graph, run: RunRecord, config: RunnableConfig) -> Any:
        """What to stream for this execution, or the outcome when there is nothing to run."""
        snapshot = await graph.aget_state(config)
        pending = _interrupt_of(snapshot.interrupts)
        if not snapshot.values and not snapshot.next:
            return {"input": _input_of(run), "degraded_steps": []}
        if pending is not None:
            if run.resume is None:
                return Interrupted(pending)
            check_answer(pending, run.resume)
            return Command(resume=dict(run.resume))
        if not snapshot.next:
            return Completed(output_of(run.workflow, snapshot.values))
        return None


def _config(run_id: str) -> RunnableConfig:
    return {"configurable": {"thread_id": run_id}}


def _interrupt_of(interrupts: tuple[Any, ...]) -> JsonDoc | None:
    for pending in interrupts:
        if isinstance(pending.value, dict):
            return dict(pending.value)
    return None
