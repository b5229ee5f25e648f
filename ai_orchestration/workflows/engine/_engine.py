"""The run engine: start, watch, cancel and resume runs; workers that claim and execute them.

Every replica runs the same engine on the same database. Runs wait in a queue: the run table
itself (:class:`~._queue.DatabaseQueue`, the embedded default), or Redis Streams shared by the
replicas (:class:`~._streams.StreamQueue`). Either way a replica's workers claim each run in the
database with a lease they renew while executing. A replica that dies stops renewing, its
lease expires and another replica claims the run and resumes it from its last LangGraph
checkpoint. The event log is written before anything is published, so watchers read it from
the database and are only woken by the bus (:mod:`._notify`).

Cancellation: a QUEUED or WAITING_FOR_INPUT run is cancelled in the database at once; a
RUNNING one gets a cancel flag and a bus message, and the replica executing it cancels its task
(at the latest at its next heartbeat, a fraction of a second later).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from opentelemetry.trace import Span, Tracer

from ai_orchestration import errors
from ai_orchestration.observability import (
    NO_TRACER,
    LogContext,
    bind_log_context,
    context_of,
    current_traceparent,
    link_current_span,
)
from ai_orchestration.storage import Claimant, Claimed, RunChange, RunRepository, utc_now
from ai_orchestration.workflows._types import (
    TERMINAL_STATES,
    Completed,
    EventKind,
    JsonDoc,
    RunError,
    RunEvent,
    RunRecord,
    RunState,
    WorkflowRunner,
)
from ai_orchestration.workflows.engine._notify import LocalBus, wait_for
from ai_orchestration.workflows.engine._queue import DatabaseQueue, RunQueue
from ai_orchestration.workflows.engine._watcher import RunWatcher

__all__ = ["EngineSettings", "RunEngine"]

_log = logging.getLogger(__name__)

_CLAIM_BATCH: Final[int] = 8
"""Most runs claimed in one transaction (it holds the write lock, and on SQLite the loop)."""
_KEEP_ENDED_SECONDS: Final[float] = 1.0
"""How long the events of a run whose execution here ended stay in memory: the watchers woken
by its last announcement get to them an iteration or two after the execution's task ended."""


@dataclass(frozen=True, slots=True)
class EngineSettings:
    """Limits and timings of one replica's engine."""

    concurrency: int = 8
    """Runs this replica executes at once."""
    lease_seconds: float = 10.0
    """A claimed run belongs to this replica for this long past its last heartbeat."""
    heartbeat_seconds: float = 0.5
    """How often the lease is renewed and the cancel flag checked."""
    poll_seconds: float = 1.0
    """Idle workers look for work at least this often."""
    watch_poll_seconds: float = 1.0
    """Watchers re-read the log at least this often even when the bus brought no news (the
    bus only wakes them early)."""
    max_attempts: int = 3
    """Executions a run gets (crashes and retryable failures) before it is dead-lettered."""
    default_timeout_seconds: float = 900.0
    """Run timeout when the request sets none."""


class _EventLog:
    """The :class:`EventSink` of one run: persist, then announce."""

    def __init__(
        self,
        runs: RunRepository,
        announce: Callable[[RunEvent], Awaitable[None]],
        run_id: str,
    ) -> None:
        self._runs = runs
        self._announce = announce
        self._run_id = run_id

    async def emit(self, kind: EventKind, payload: JsonDoc) -> int:
        # A usage event adds to the run's totals in the same statement.
        event = await self._runs.append_event(self._run_id, kind, payload)
        await self._announce(event)
        return event.sequence


class RunEngine:
    """Starts, watches, cancels and resumes runs; executes them on this replica's workers.

    ``async with engine:`` starts the workers; leaving stops claiming and hands the runs this
    replica was executing back to the queue (their checkpoints stay), so another replica, or
    this one after a restart, finishes them.
    """

    def __init__(
        self,
        *,
        runs: RunRepository,
        runner: WorkflowRunner,
        bus: LocalBus,
        settings: EngineSettings | None = None,
        worker_id: str = "",
        queue: RunQueue | None = None,
        tracer: Tracer | None = None,
    ) -> None:
        """``queue``: where the workers get runs; the run table (:class:`DatabaseQueue`) when
        none is given. ``tracer``: a span per execution of a run (``workflow.run NAME``), the
        child of the call that started the run; none by default."""
        self.runs = runs
        self.tracer = tracer or NO_TRACER
        self.runner = runner
        self.bus = bus
        self.queue: RunQueue = queue or DatabaseQueue(runs)
        self.settings = settings or EngineSettings()
        # Host and pid in the id: operators (and tests) can tell which process holds a lease.
        self.worker_id = worker_id or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._executing: dict[str, asyncio.Task[None]] = {}
        self._reserved = 0  # slots held by claims in progress
        self._full = False  # the claim loop found no free slot at its last pass
        self.watcher = RunWatcher(
            runs=runs,
            bus=bus,
            poll_seconds=lambda: self.settings.watch_poll_seconds,
            sole_writer=self._sole_writer,
        )
        self._cancelled: set[str] = set()
        self._lost: set[str] = set()  # runs another replica took over from this one
        self._loop_task: asyncio.Task[None] | None = None
        self._heartbeat_task: asyncio.Task[None] | None = None
        self._stopping = False
        bus.listen(self._on_message)

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Start claiming work."""
        if self._loop_task is None:
            self._loop_task = asyncio.create_task(self._claim_loop(), name="workflow-claims")
            self._heartbeat_task = asyncio.create_task(self._heartbeats(), name="workflow-leases")

    async def stop(self) -> None:
        """Stop claiming; hand executing runs back to the queue. Safe to call twice."""
        self._stopping = True
        for loop in (self._loop_task, self._heartbeat_task):
            if loop is not None:
                loop.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await loop
        self._loop_task = self._heartbeat_task = None
        tasks = list(self._executing.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.watcher.aclose()

    @property
    def executing(self) -> int:
        """Runs executing on this replica now."""
        return len(self._executing)

    async def __aenter__(self) -> RunEngine:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.stop()

    # -- the API's operations ----------------------------------------------------------------

    async def start_run(
        self,
        tenant_id: str,
        *,
        workflow: str,
        input_document: JsonDoc,
        request_id: str,
        request_digest: str,
        priority: int = 0,
        labels: Mapping[str, str] | None = None,
        timeout_seconds: float = 0.0,
    ) -> RunChange:
        """Queue a run (or return the run ``request_id`` created before); with the events
        written for it (a new run's first, and its move to RUNNING when it was claimed here at
        once): a caller that streams the run then needs no read."""
        definition = self.runner.definitions.get(workflow)
        if definition is None:
            raise errors.NotImplementedYetError(
                f"workflow {workflow!r} is not available on this server; available: "
                f"{', '.join(sorted(self.runner.definitions))}",
                reason="WORKFLOW_UNAVAILABLE",
            )
        # A free slot here claims in the same transaction (the new run, unless another comes
        # first in the queue): no second transaction, no wake-up of the claim loop.
        slot = self.queue.claims_at_create and self._reserve_slot()
        try:
            created = await self.runs.create(
                tenant_id,
                workflow=workflow,
                workflow_version=definition.version,
                priority=priority,
                request_id=request_id,
                request_digest=request_digest,
                labels=dict(labels or {}),
                input=input_document,
                timeout_seconds=timeout_seconds or self.settings.default_timeout_seconds,
                claim_for=self._claimant if slot else None,
                trace_parent=current_traceparent(),
            )
        finally:
            self._reserved -= slot
        run, claimed = created.run, created.claimed
        written = [*created.events, *claimed.events]
        if created.created:
            await self._launch(claimed.runs, written)
            if not any(claim.run_id == run.run_id for claim in claimed.runs):
                await self._offer(run)
                await self.bus.publish("queued")
            run = next((claim for claim in claimed.runs if claim.run_id == run.run_id), run)
        return RunChange(run, [event for event in written if event.run_id == run.run_id])

    async def get(self, tenant_id: str, run_id: str) -> RunRecord:
        """The run (NOT_FOUND for another tenant's)."""
        return await self.runs.get(tenant_id, run_id)

    def watch(
        self,
        tenant_id: str,
        run_id: str,
        *,
        after_sequence: int = 0,
        until_waiting: bool = False,
        run: RunRecord | None = None,
        known: Sequence[RunEvent] = (),
    ) -> AsyncIterator[RunEvent]:
        """The run's events after ``after_sequence`` until it ends (see :meth:`RunWatcher.watch
        <._watcher.RunWatcher.watch>`)."""
        return self.watcher.watch(
            tenant_id,
            run_id,
            after_sequence=after_sequence,
            until_waiting=until_waiting,
            run=run,
            known=known,
        )

    def _sole_writer(self, run_id: str) -> bool:
        """Whether every event of ``run_id`` is written here now: it executes here, under this
        replica's lease. (Should the lease be lost unnoticed, another replica's events show as
        a gap in :class:`RecentEvents`, or reach the watchers on the bus, or at the latest at
        the next heartbeat, which sees the loss and ends the execution here.)"""
        return run_id in self._executing and run_id not in self._lost

    async def cancel(self, tenant_id: str, run_id: str, reason: str) -> RunRecord:
        """Cancel the run: at once unless it is executing somewhere, else within a second."""
        run = await self.runs.get(tenant_id, run_id)
        link_current_span(run.trace_parent, **{"crm.link": "cancelled run"})
        why = reason or "cancelled by caller"
        if run.state in TERMINAL_STATES:
            raise errors.FailedPreconditionError(
                f"run {run_id} already ended ({run.state.value}); only a queued, running or "
                "waiting run can be cancelled",
                reason="RUN_ENDED",
            )
        if run.state in (RunState.QUEUED, RunState.WAITING_FOR_INPUT):
            with contextlib.suppress(errors.FailedPreconditionError):  # a worker won the race
                return await self._end(
                    run_id, RunState.CANCELLED, (run.state,), why, cancel_reason=why
                )
        run = await self.runs.request_cancel(tenant_id, run_id, reason=why)
        await self.bus.publish("cancel", run_id)
        return run

    async def retire(self, tenant_id: str, run_ids: Sequence[str], reason: str) -> None:
        """End the tenant's runs ``run_ids`` and delete their checkpoints: what is left of them
        is their rows (the caller deletes those in its own transaction).

        Those that have not ended are cancelled, and this waits until every one has: a run
        executing on a live replica stops at its worker's next heartbeat, one whose replica
        died once its lease expires and a claimer settles it. A run id the tenant does not have
        is left alone.

        Raises:
            errors.UnavailableError: a run had not ended after a lease and two polls (reason
                ``RUNS_STILL_STOPPING``); nothing was deleted, and calling again waits again.
        """
        for run_id in run_ids:
            # Ended meanwhile, or not the tenant's: nothing to cancel.
            with contextlib.suppress(errors.FailedPreconditionError, errors.NotFoundError):
                await self.cancel(tenant_id, run_id, reason)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.lease_seconds + 2 * self.settings.poll_seconds
        owned: list[str] = []
        pending = list(run_ids)
        while True:
            running: list[str] = []
            for run_id in pending:
                try:
                    run = await self.runs.get(tenant_id, run_id)
                except errors.NotFoundError:
                    continue
                (owned if run.state in TERMINAL_STATES else running).append(run_id)
            pending = running
            if not pending:
                break
            if loop.time() >= deadline:
                raise errors.UnavailableError(
                    f"{len(pending)} cancelled run(s) still executing (first: {pending[0]}); "
                    "their workers stop them within a lease: call again",
                    reason="RUNS_STILL_STOPPING",
                    metadata={"run_id": pending[0]},
                )
            await asyncio.sleep(self.settings.heartbeat_seconds / 2)
        await self.runner.forget(owned)

    async def resume(
        self, tenant_id: str, run_id: str, interrupt_id: str, answer: JsonDoc
    ) -> RunRecord:
        """Answer the pending interrupt and queue the run again."""
        run = await self.runs.get(tenant_id, run_id)
        # The resumed execution continues the run's own trace; the ResumeRun call links to it.
        link_current_span(run.trace_parent, **{"crm.link": "resumed run"})
        pending = run.pending_interrupt or {}
        if run.state is not RunState.WAITING_FOR_INPUT:
            raise errors.FailedPreconditionError(
                f"run {run_id} is {run.state.value}, not waiting for input",
                reason="RUN_NOT_WAITING",
            )
        if pending.get("interrupt_id") != interrupt_id:
            raise errors.InvalidArgumentError(
                "unknown interrupt",
                [
                    errors.FieldViolation(
                        "interrupt_id",
                        f"the run waits on interrupt {pending.get('interrupt_id')!r}; pass "
                        "Run.pending_interrupt.interrupt_id",
                        "interrupt_pending",
                    )
                ],
            )
        accepted = await self.runner.accept_answer(run, {**answer, "interrupt_id": interrupt_id})
        reason = f"resumed: {accepted.get('decision', '')}"
        if override := accepted.get("override"):
            reason += " with an override of failed checks: " + ", ".join(override["checks"])
        change = await self.runs.transition(
            run_id,
            to=RunState.QUEUED,
            expected_from=(RunState.WAITING_FOR_INPUT,),
            reason=reason,
            resume=accepted,
        )
        await self.watcher.announce(*change.events)
        await self._offer(change.run)
        await self.bus.publish("queued")
        return change.run

    # -- workers -----------------------------------------------------------------------------

    def _on_message(self, topic: str, run_id: str) -> None:
        if topic == "cancel" and (task := self._executing.get(run_id)) is not None:
            self._cancelled.add(run_id)
            task.cancel()

    @property
    def _claimant(self) -> Claimant:
        return Claimant(self.worker_id, self.settings.lease_seconds, self.settings.max_attempts)

    def _free_slots(self) -> int:
        return self.settings.concurrency - len(self._executing) - self._reserved

    def _reserve_slot(self) -> bool:
        """Takes a slot for a claim in progress (given back by the caller), if one is free."""
        if self._loop_task is None or self._stopping or self._free_slots() <= 0:
            return False  # not executing runs here (not started, or stopping), or full
        self._reserved += 1
        return True

    async def _launch(self, runs: Sequence[RunRecord], written: Sequence[RunEvent]) -> None:
        """Executes claimed ``runs`` here; announces ``written``, their claim's events."""
        for run in runs:
            self.watcher.open(run.run_id)
        await self.watcher.announce(*written)  # the moves to RUNNING (and a new run's first)
        for run in runs:
            task = asyncio.create_task(self._execute(run), name=f"run-{run.run_id}")
            self._executing[run.run_id] = task
            task.add_done_callback(functools.partial(self._forget, run.run_id))

    async def _claim_loop(self) -> None:
        with self.bus.waiter("queued") as woken:
            while not self._stopping:
                free = min(self._free_slots(), _CLAIM_BATCH)
                self._full = free <= 0  # queued work waits for a slot: _forget wakes the loop
                claimed = Claimed()
                if free > 0:
                    self._reserved += free
                    try:
                        claimed = await self.queue.claim(self._claimant, free)
                    except Exception:
                        _log.exception("claiming runs failed; retrying")
                    finally:
                        self._reserved -= free
                    await self._launch(claimed.runs, claimed.events)
                if free <= 0 or len(claimed.runs) < free:  # no room, or the queue is drained
                    await wait_for(woken, self.settings.poll_seconds)

    def _forget(self, run_id: str, _: object = None) -> None:
        self._executing.pop(run_id, None)
        self._cancelled.discard(run_id)
        self._lost.discard(run_id)
        if self._full:  # a slot opened for work that waits: claim now, not at the next poll
            self._full = False
            self.bus.deliver("queued", "")
        asyncio.get_running_loop().call_later(_KEEP_ENDED_SECONDS, self._close_recent, run_id)

    def _close_recent(self, run_id: str) -> None:
        if run_id not in self._executing:  # not claimed here again meanwhile
            self.watcher.close(run_id)

    async def _execute(self, run: RunRecord) -> None:
        # This task's log records name the run (its own context: no other run sees it).
        bind_log_context(LogContext(tenant=run.tenant_id, run_id=run.run_id))
        try:
            with self._span(run):
                await self._run_to_outcome(run)
        except asyncio.CancelledError:
            if run.run_id in self._cancelled:
                await self._end(
                    run.run_id,
                    RunState.CANCELLED,
                    (RunState.RUNNING,),
                    "cancelled",
                    worker_id=self.worker_id,
                )
            elif self._stopping:
                await self._release(run.run_id, "replica shutting down")
            else:
                raise
        finally:
            await self._finished(run.run_id)

    def _span(self, run: RunRecord) -> contextlib.AbstractContextManager[Span]:
        """The span of this execution: a child of the call that started the run, so a run
        keeps its trace across the queue, replicas, takeovers and resumptions."""
        attributes: dict[str, str | int | bool] = {
            "crm.workflow": run.workflow,
            "crm.run_id": run.run_id,
            "crm.tenant_id": run.tenant_id,
            "crm.run.attempt": run.attempts,
            "crm.run.resumed": run.resume is not None,
            "crm.worker_id": self.worker_id,
        }
        return self.tracer.start_as_current_span(
            f"workflow.run {run.workflow}",
            context=context_of(run.trace_parent),
            attributes=attributes,
        )

    async def _offer(self, run: RunRecord) -> None:
        """Put a run that became QUEUED in the queue. The run is committed already: when the
        queue cannot take it now, the queue's reconciliation with the database adds it later."""
        try:
            await self.queue.queued(run)
        except Exception:
            _log.exception("queueing run %s failed; the queue's reconciliation adds it", run.run_id)

    async def _finished(self, run_id: str) -> None:
        """Tell the queue the run no longer executes here (it needs no worker, or another)."""
        try:
            await self.queue.finished(run_id, lost=run_id in self._lost)
        except Exception:  # the queue reconciles with the database: a late entry is harmless
            _log.exception("telling the queue that run %s left this replica failed", run_id)

    async def _run_to_outcome(self, run: RunRecord) -> None:
        events = _EventLog(self.runs, self.watcher.announce, run.run_id)
        remaining = run.timeout_seconds - _elapsed(run.started_at)
        try:
            async with asyncio.timeout(max(0.0, remaining)):
                outcome = await self.runner.execute(run, events)
        except TimeoutError:
            error = RunError("DEADLINE_EXCEEDED", "the run exceeded its timeout", "RUN_TIMEOUT")
            await self._fail(run.run_id, error, RunState.CANCELLED)
            return
        except errors.OrchestrationError as failure:
            error = RunError(failure.status_name, failure.message, failure.reason)
            await self._fail(run.run_id, error)
            return
        except Exception:
            correlation = uuid.uuid4().hex
            _log.exception("run %s failed (correlation id %s)", run.run_id, correlation)
            await self._retry_or_dead_letter(run, correlation)
            return
        # The outcome's event and the state change it causes are one transaction.
        if isinstance(outcome, Completed):
            await self._end(
                run.run_id,
                RunState.SUCCEEDED,
                (RunState.RUNNING,),
                "",
                event=(EventKind.COMPLETED, outcome.output),
                output=outcome.output,
                worker_id=self.worker_id,
            )
        else:
            await self._end(
                run.run_id,
                RunState.WAITING_FOR_INPUT,
                (RunState.RUNNING,),
                "waiting for a human",
                event=(EventKind.INTERRUPT_RAISED, outcome.interrupt),
                pending_interrupt=outcome.interrupt,
                resume=None,
                worker_id=self.worker_id,
            )

    async def _heartbeats(self) -> None:
        """Renew the leases of every run executing here in one statement per beat; stop the
        runs whose cancel was requested, and the ones another replica took over."""
        while True:
            await asyncio.sleep(self.settings.heartbeat_seconds)
            executing = dict(self._executing)
            if not executing:
                continue
            try:
                held = await self.runs.heartbeat_many(
                    executing, self.worker_id, lease_seconds=self.settings.lease_seconds
                )
            except Exception:
                _log.exception("renewing the leases of %d runs failed", len(executing))
                continue
            try:
                await self.queue.renew(held)
            except Exception:
                _log.exception("renewing the queue entries of %d runs failed", len(held))
            for run_id, task in executing.items():
                if task.done() or self._executing.get(run_id) is not task:
                    continue
                cancel_requested = held.get(run_id)
                if cancel_requested:
                    self._cancelled.add(run_id)
                    task.cancel()
                elif cancel_requested is None and await self._taken_over(run_id):
                    _log.warning("lost the lease of run %s; another replica took it", run_id)
                    self._lost.add(run_id)
                    task.cancel()

    async def _taken_over(self, run_id: str) -> bool:
        """Whether a run whose lease was not renewed runs elsewhere now (rather than having
        just been ended or handed back by its own task here, which is finishing)."""
        try:
            run = await self.runs.get_any(run_id)
        except errors.NotFoundError:
            return True
        return run.state is RunState.RUNNING and run.lease_owner != self.worker_id

    async def _end(
        self,
        run_id: str,
        state: RunState,
        expected_from: tuple[RunState, ...],
        reason: str,
        event: tuple[EventKind, JsonDoc] | None = None,
        **fields: object,
    ) -> RunRecord:
        change = await self.runs.transition(
            run_id,
            to=state,
            expected_from=expected_from,
            reason=reason,
            event=event,
            **fields,
        )
        await self.watcher.announce(*change.events)
        return change.run

    async def _fail(self, run_id: str, error: RunError, state: RunState = RunState.FAILED) -> None:
        failed = {"code": error.code, "message": error.message, "reason": error.reason}
        await self._end(
            run_id,
            state,
            (RunState.RUNNING,),
            error.message,
            event=(EventKind.FAILED, failed),
            error=error,
            worker_id=self.worker_id,
        )

    async def _retry_or_dead_letter(self, run: RunRecord, correlation: str) -> None:
        message = f"internal error (correlation id {correlation})"
        if run.attempts >= self.settings.max_attempts:
            error = RunError("INTERNAL", message, "RUN_DEAD_LETTERED")
            await self._fail(run.run_id, error, RunState.DEAD_LETTERED)
            return
        await self._release(run.run_id, f"{message}; retrying")

    async def _release(self, run_id: str, reason: str) -> None:
        try:
            change = await self.runs.transition(
                run_id,
                to=RunState.QUEUED,
                expected_from=(RunState.RUNNING,),
                reason=reason,
                worker_id=self.worker_id,
            )
        except errors.FailedPreconditionError:
            return  # no longer ours: nothing was written
        await self.watcher.announce(*change.events)
        await self._finished(run_id)  # its queue entry goes before a new one is added
        await self._offer(change.run)
        await self.bus.publish("queued")


def _elapsed(since: datetime | None) -> float:
    return 0.0 if since is None else (utc_now() - since).total_seconds()
