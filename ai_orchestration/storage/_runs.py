"""Workflow runs: the run table (which is also the queue) and each run's event log.

Every change of a run happens in one transaction with the event that reports it, and the
transaction commits before the caller gets the result: an event a caller has seen is durable,
and a run's ``last_sequence`` always equals the sequence of its last stored event.

Concurrency. PostgreSQL: a run's row is locked (``FOR UPDATE``) while it changes, so concurrent
appenders and transitions of one run queue up behind each other; claimers skip rows another
claimer holds (``FOR UPDATE SKIP LOCKED``). SQLite: every writing transaction starts with
``BEGIN IMMEDIATE``, taking the database's single writer lock before its first read, so a
read-check-write sequence cannot be overtaken (and never fails on a lock upgrade).

Writes. The writes a run makes on its way (create, claim, event appends, transitions) are
stated once, as functions of :class:`~._writes.Rows` (``_run_changes``), and run by the
database's write backend (``_writes``): on a SQLite file its dedicated ``sqlite3`` connection,
elsewhere SQLAlchemy's engine. Reads, and the colder paths, go through the engine.
"""

from __future__ import annotations

import builtins
import functools
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final, TypeVar

from sqlalchemy import (
    and_,
    func,
    or_,
    select,
    update,
)

from ai_orchestration.errors import ConflictError, FailedPreconditionError
from ai_orchestration.records import (
    TERMINAL_STATES,
    EventKind,
    JsonDoc,
    JsonValue,
    RunEvent,
    RunRecord,
    RunState,
)
from ai_orchestration.storage import _run_rows as _rows
from ai_orchestration.storage._common import (
    Clock,
    require_aware,
    require_tenant,
    require_text,
    utc_now,
)
from ai_orchestration.storage._engine import Database
from ai_orchestration.storage._models import WorkflowRunEventModel, WorkflowRunModel
from ai_orchestration.storage._pages import (
    decode_page_token,
    encode_page_token,
    require_page_size,
)
from ai_orchestration.storage._run_changes import (
    CREATED_FROM,
    EVENTS_AFTER,
    OWNED,
    REQUEST_KEY,
    Claim,
    Claimant,
    ClaimOutcome,
    Transition,
    append_in,
    candidate_statements,
    change_state,
    create_in,
    locked_run,
    transition_in,
    usage_amounts,
)
from ai_orchestration.storage._run_rows import MAX_PRIORITY

__all__ = [
    "CREATED_FROM",
    "MAX_PRIORITY",
    "Claimant",
    "Claimed",
    "Created",
    "NamedClaim",
    "RunChange",
    "RunRepository",
]


_Run = WorkflowRunModel
T = TypeVar("T")
_Event = WorkflowRunEventModel
_IN_CHUNK: Final[int] = 1000
"""Run ids per ``IN`` list of :meth:`RunRepository.last_sequences` (well under SQLite's
bound on a statement's parameters)."""


@dataclass(frozen=True, slots=True)
class RunChange:
    """What a write did to one run: the run after it, and the events it appended (committed,
    for the caller to announce)."""

    run: RunRecord
    events: builtins.list[RunEvent] = field(default_factory=builtins.list)


@dataclass(frozen=True, slots=True)
class Claimed:
    """What a claim did: the runs it moved to RUNNING for the claimant, and every event it
    appended (those of runs it ended instead, too)."""

    runs: builtins.list[RunRecord] = field(default_factory=builtins.list)
    events: builtins.list[RunEvent] = field(default_factory=builtins.list)


@dataclass(frozen=True, slots=True)
class Created:
    """What :meth:`RunRepository.create` did."""

    run: RunRecord
    created: bool
    """Whether this call created the run (else ``request_id`` found an earlier one)."""
    events: builtins.list[RunEvent]
    """The new run's first event (none when it existed)."""
    claimed: Claimed
    """What the claim in the same transaction took (nothing without ``claim_for``)."""


@dataclass(frozen=True, slots=True)
class NamedClaim:
    """What :meth:`RunRepository.claim_named` did."""

    outcome: ClaimOutcome
    run: RunRecord | None
    events: builtins.list[RunEvent]


class RunRepository:
    """Stores workflow runs and their event logs, and hands queued runs to workers.

    Tenant-facing methods (:meth:`create`, :meth:`get`, :meth:`list`, :meth:`events_after`,
    :meth:`request_cancel`) take the tenant first and never show another tenant's run. Worker
    methods address a run by its id alone: a worker got the run from :meth:`claim`.
    """

    def __init__(self, *, database: Database, clock: Clock = utc_now) -> None:
        """``clock`` supplies every stored time: creation, events, leases and their expiry."""
        self._database = database
        self._clock = clock

    # -- tenant-facing ---------------------------------------------------------------------

    async def create(
        self,
        tenant_id: str,
        *,
        workflow: str,
        workflow_version: str,
        priority: int,
        request_id: str,
        request_digest: str,
        labels: Mapping[str, str],
        input: JsonDoc,  # the contract's name for the workflow's input
        timeout_seconds: float,
        claim_for: Claimant | None = None,
        trace_parent: str = "",
    ) -> Created:
        """Queue a run, or return the run the tenant created with ``request_id`` before.

        A new run is QUEUED with event 1 (``state_changed`` to QUEUED) in the same transaction
        (returned: a caller about to stream the run needs no read). Concurrent calls with one
        ``request_id`` all get the single run that won.

        ``claim_for``, a worker with a free slot: when this call creates the run, the same
        transaction then claims one run for it exactly as :meth:`claim` would (the new run,
        unless another comes first in the queue order), which saves the worker a transaction
        and a wake-up. ``trace_parent``: the W3C ``traceparent`` of the starting call, kept
        with the run (:attr:`RunRecord.trace_parent`).

        Raises:
            ConflictError: ``request_id`` was used for a request with another digest (reason
                ``REQUEST_ID_REUSED``).
            ValueError: an empty name, a malformed digest, a priority outside 0..9, a timeout
                that is not positive, or labels that are not strings.
        """
        values = _rows.new_run_values(
            require_tenant(tenant_id),
            workflow=workflow,
            workflow_version=workflow_version,
            priority=priority,
            request_id=request_id,
            request_digest=request_digest,
            labels=labels,
            input_document=input,
            timeout_seconds=timeout_seconds,
            now=self._now(),
            trace_parent=trace_parent,
        )
        key = {"tenant": tenant_id, "request": request_id}
        claim = None if claim_for is None else self._claim(claim_for, 1, values["created_at"])
        writes = self._database.writes
        insert, insert_values = writes.insert_or_skip(_Run, REQUEST_KEY, values)
        record, digest, first, taken = await writes.rows(
            functools.partial(
                create_in, insert=insert, insert_values=insert_values, key=key, claim=claim
            )
        )
        if digest != request_digest:
            raise ConflictError(
                f"request_id {request_id!r} was already used to start a different run; use a "
                "new request_id for a different request, or resend the original request "
                "unchanged to get its run",
                reason="REQUEST_ID_REUSED",
                metadata={"request_id": request_id, "run_id": record.run_id},
            )
        return Created(
            run=record,
            created=first is not None,
            events=[] if first is None else [first],
            claimed=Claimed(taken[0], taken[1]),
        )

    async def get(self, tenant_id: str, run_id: str) -> RunRecord:
        """The tenant's run ``run_id``.

        Raises:
            NotFoundError: no such run for this tenant (another tenant's run is not found).
        """
        statement = select(_Run).where(
            _Run.tenant_id == require_tenant(tenant_id), _Run.run_id == run_id
        )
        async with self._database.sessionmaker() as session:
            row = (await session.execute(statement)).scalar_one_or_none()
        if row is None:
            raise _rows.not_found(run_id)
        return _rows.to_record(row)

    async def list(
        self,
        tenant_id: str,
        *,
        workflow: str = "",
        states: Collection[RunState] = (),
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        page_size: int = 50,
        page_token: str = "",
    ) -> tuple[builtins.list[RunRecord], str]:
        """One page of the tenant's runs, newest first (ties: ``run_id`` descending).

        ``workflow`` ``""`` and empty ``states`` mean all; ``created_after`` is inclusive,
        ``created_before`` exclusive. The token returned is ``""`` after the last page and is
        valid only for the same tenant and filters.

        Raises:
            InvalidPageTokenError: ``page_token`` was not issued for this tenant and query.
            ValueError: an empty tenant, a ``page_size`` below 1, or a naive time.
        """
        require_page_size(page_size)
        state_values = sorted({RunState(state).value for state in states})
        after = None if created_after is None else require_aware("created_after", created_after)
        before = None if created_before is None else require_aware("created_before", created_before)
        scope = (
            "workflow_runs.list",
            require_tenant(tenant_id),
            workflow,
            ",".join(state_values),
            "" if after is None else after.isoformat(),
            "" if before is None else before.isoformat(),
        )
        statement = select(_Run).where(_Run.tenant_id == tenant_id)
        if workflow:
            statement = statement.where(_Run.workflow == workflow)
        if state_values:
            statement = statement.where(_Run.state.in_(state_values))
        if after is not None:
            statement = statement.where(_Run.created_at >= after)
        if before is not None:
            statement = statement.where(_Run.created_at < before)
        if page_token:
            created_at, run_id = decode_page_token(page_token, scope, _rows.run_cursor)
            statement = statement.where(
                or_(
                    _Run.created_at < created_at,
                    and_(_Run.created_at == created_at, _Run.run_id < run_id),
                )
            )
        statement = statement.order_by(_Run.created_at.desc(), _Run.run_id.desc())
        async with self._database.sessionmaker() as session:
            rows = (await session.execute(statement.limit(page_size + 1))).scalars().all()
        page = [_rows.to_record(row) for row in rows[:page_size]]
        if len(rows) <= page_size:
            return page, ""
        cursor: builtins.list[JsonValue] = [page[-1].created_at.isoformat(), page[-1].run_id]
        return page, encode_page_token(scope, cursor)

    async def about_customer(
        self, tenant_id: str, workflow: str, customer_id: str
    ) -> builtins.list[RunRecord]:
        """The tenant's runs of ``workflow`` whose input names ``customer_id`` (its
        ``customer_id`` field), oldest first: what erasing the customer must take with it."""
        statement = (
            select(_Run)
            .where(
                _Run.tenant_id == require_tenant(tenant_id),
                _Run.workflow == require_text("workflow", workflow),
                _Run.input["customer_id"].as_string() == require_text("customer_id", customer_id),
            )
            .order_by(_Run.created_at, _Run.run_id)
        )
        async with self._database.sessionmaker() as session:
            rows = (await session.execute(statement)).scalars().all()
        return [_rows.to_record(row) for row in rows]

    async def events_after(
        self, tenant_id: str, run_id: str, after_sequence: int, limit: int
    ) -> builtins.list[RunEvent]:
        """Up to ``limit`` of the run's events with a sequence above ``after_sequence``, in order.

        Raises:
            NotFoundError: no such run for this tenant.
            ValueError: a negative ``after_sequence`` or a ``limit`` below 1.
        """
        if after_sequence < 0:
            raise ValueError(f"after_sequence must be at least 0, got {after_sequence}")
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        wanted = {
            "tenant": require_tenant(tenant_id),
            "target_run": run_id,
            "after": after_sequence,
            "page": limit,
        }
        async with self._database.engine.connect() as connection:
            rows = (await connection.execute(EVENTS_AFTER, wanted)).all()
            if not rows and (await connection.execute(OWNED, wanted)).first() is None:
                raise _rows.not_found(run_id)
        return [_rows.to_event(row) for row in rows]

    async def last_sequences(self, run_ids: Collection[str]) -> dict[str, int]:
        """The sequence of the newest event of each run in ``run_ids`` that exists, whatever
        its tenant (the watchers' safety polls, many runs in one query per
        :data:`_IN_CHUNK` runs)."""
        found: dict[str, int] = {}
        wanted = builtins.list(dict.fromkeys(run_ids))
        async with self._database.engine.connect() as connection:
            for start in range(0, len(wanted), _IN_CHUNK):
                chunk = wanted[start : start + _IN_CHUNK]
                statement = select(_Run.run_id, _Run.last_sequence).where(_Run.run_id.in_(chunk))
                found.update(
                    (row.run_id, row.last_sequence) for row in await connection.execute(statement)
                )
        return found

    async def request_cancel(
        self, tenant_id: str, run_id: str, *, reason: str = "cancelled by caller"
    ) -> RunRecord:
        """Cancel the tenant's run: at once when no worker holds it, else by flagging it.

        A QUEUED or WAITING_FOR_INPUT run becomes CANCELLED here (with its ``state_changed``
        event). ``reason`` is kept on the run (``cancel_reason``) and is the reason of the
        ``state_changed`` event to CANCELLED, whoever ends the run. A RUNNING run gets
        ``cancel_requested``: its worker sees the flag (at its next :meth:`heartbeat` at the
        latest) and ends the run CANCELLED itself; :meth:`claim` also cancels a flagged run
        instead of executing it again.

        Raises:
            NotFoundError: no such run for this tenant.
            FailedPreconditionError: the run already ended (reason ``RUN_ENDED``).
        """
        require_tenant(tenant_id)
        now = self._now()
        async with self._database.transaction(immediate=True) as session:
            row = await locked_run(session, run_id, tenant_id=tenant_id)
            state = RunState(row.state)
            if state in TERMINAL_STATES:
                raise FailedPreconditionError(
                    f"run {run_id} already ended ({state.value}); only a queued, running or "
                    "waiting run can be cancelled",
                    reason="RUN_ENDED",
                    metadata={"run_id": run_id, "state": state.value},
                )
            row.cancel_requested = True
            row.cancel_reason = reason
            if state is not RunState.RUNNING:
                change_state(session, row, RunState.CANCELLED, reason, now)
            return _rows.to_record(row)

    # -- workers ---------------------------------------------------------------------------

    async def get_any(self, run_id: str) -> RunRecord:
        """The run ``run_id`` whatever its tenant: for the worker that holds it.

        Raises:
            NotFoundError: no such run.
        """
        async with self._database.sessionmaker() as session:
            row = await session.get(_Run, run_id)
        if row is None:
            raise _rows.not_found(run_id)
        return _rows.to_record(row)

    async def append_event(self, run_id: str, kind: EventKind, payload: JsonDoc) -> RunEvent:
        """Append an event to the run's log with the next sequence; durable when it returns.

        The run's ``last_sequence`` is incremented and the event inserted in one transaction
        (``UPDATE ... RETURNING`` locks the run's row until commit), so concurrent appenders
        get consecutive sequences with no gap and no duplicate. A ``usage`` event also adds its
        ``prompt_tokens``, ``completion_tokens`` and ``cost_usd`` to the run's totals, in the
        same statement: the totals always match the log.

        Raises:
            NotFoundError: no such run.
            ValueError: an unknown kind, a payload that is not a JSON object, or a ``usage``
                payload with negative or non-finite amounts.
        """
        kind = EventKind(kind)
        if not isinstance(payload, dict):
            raise ValueError("payload must be a JSON object (a dict)")
        tokens_in, tokens_out, cost = 0, 0, 0.0
        if kind is EventKind.USAGE:
            tokens_in, tokens_out, cost = usage_amounts(
                payload.get("prompt_tokens", 0),
                payload.get("completion_tokens", 0),
                payload.get("cost_usd", 0.0),
            )
        now = self._now()
        amounts: dict[str, object] = {
            "target_run": run_id,
            "tokens_in": tokens_in,
            "tokens_out": tokens_out,
            "cost": cost,
        }
        event = {"run_id": run_id, "kind": kind.value, "payload": payload, "event_time": now}
        sequence = await self._database.writes.statements(
            functools.partial(append_in, amounts=amounts, event=event)
        )
        return RunEvent(run_id, sequence, kind, payload, now)

    async def transition(
        self,
        run_id: str,
        *,
        to: RunState,
        expected_from: Collection[RunState],
        reason: str = "",
        event: tuple[EventKind, JsonDoc] | None = None,
        **fields: object,
    ) -> RunChange:
        """Move the run to ``to`` if it is in one of ``expected_from``; append ``state_changed``.

        ``event`` (kind, payload) is appended just before ``state_changed`` in the same
        transaction: the outcome that causes the move (``completed``, ``failed``,
        ``interrupt_raised``) is stored if and only if the move happens. Returns the run after
        the move and the events written.

        Fields set on the way: ``started_at`` (first move to RUNNING), ``ended_at`` (a terminal
        state), the lease is dropped (any state but RUNNING), ``pending_interrupt`` is cleared
        (QUEUED and terminal states). Optional ``fields`` set more: ``output`` (a RunOutput
        document), ``error`` (:class:`RunError`), ``pending_interrupt`` and ``resume`` (JSON
        documents, or ``None`` to clear), ``cancel_reason`` (a string), and ``worker_id``,
        which is not stored but required to be the run's lease owner (a worker that lost its
        lease cannot end the run).

        Raises:
            NotFoundError: no such run.
            FailedPreconditionError: the run is in another state (reason
                ``RUN_STATE_MISMATCH``, the metadata and message name the current state), or
                ``worker_id`` does not hold the lease (reason ``LEASE_LOST``).
            ValueError: an unknown field or a field of the wrong type.
        """
        owner, changes = _rows.transition_changes(fields)
        if event is not None:
            event = EventKind(event[0]), event[1]
            if not isinstance(event[1], dict):
                raise ValueError("the event's payload must be a JSON object (a dict)")
        move = Transition(
            target=RunState(to),
            allowed=frozenset(RunState(state) for state in expected_from),
            owner=owner,
            changes=changes,
            event=event,
            reason=reason,
            now=self._now(),
        )
        record, written = await self._database.writes.rows(
            functools.partial(transition_in, run_id=run_id, move=move)
        )
        return RunChange(record, written)

    async def claim(
        self,
        worker_id: str,
        *,
        lease_seconds: float,
        max_attempts: int = 3,
        limit_per_tenant: int | None = None,
    ) -> RunRecord | None:
        """Take the next run to execute, leased to ``worker_id`` for ``lease_seconds``.

        First a RUNNING run whose lease expired (its worker died), highest priority first;
        then the QUEUED run whose tenant has the fewest RUNNING runs (tenants are served
        fairly), highest priority, then oldest. ``limit_per_tenant`` skips tenants with that
        many RUNNING runs. The run becomes RUNNING with ``attempts + 1``; a re-claim that
        would exceed ``max_attempts`` dead-letters the run instead (with a ``failed`` and a
        ``state_changed`` event), and a run flagged by :meth:`request_cancel` is cancelled;
        either way the next candidate is tried. Concurrent claimers never get the same run.

        Returns:
            The claimed run, or ``None`` when there is nothing to run.
        """
        claimed = await self.claim_many(
            worker_id,
            1,
            lease_seconds=lease_seconds,
            max_attempts=max_attempts,
            limit_per_tenant=limit_per_tenant,
        )
        return claimed.runs[0] if claimed.runs else None

    async def claim_many(
        self,
        worker_id: str,
        count: int,
        *,
        lease_seconds: float,
        max_attempts: int = 3,
        limit_per_tenant: int | None = None,
    ) -> Claimed:
        """Up to ``count`` runs, taken in one transaction in the order :meth:`claim` would take
        them one after another (the fairness order is recomputed after each), with the events
        written on the way. Fewer than ``count`` runs means there is nothing more to run now.
        """
        claimant = Claimant(worker_id, lease_seconds, max_attempts, limit_per_tenant)
        if count < 1:
            raise ValueError(f"count must be at least 1, got {count}")
        claim = self._claim(claimant, count, self._now())
        claimed, written = await self._database.writes.rows(claim.run)
        return Claimed(claimed, written)

    async def claim_named(self, run_id: str, claimant: Claimant) -> NamedClaim:
        """Claim the run ``run_id`` (a queue outside the database named it) as :meth:`claim`
        would claim it: if it is QUEUED, or RUNNING with an expired lease. A flagged cancel or
        exhausted attempts end the run instead.

        Returns:
            ``"claimed"`` with the run; ``"busy"`` with the run when another worker's lease on
            it is live; ``"ended"`` (with the run, or none) when it needs no worker (ended,
            waiting for input, just ended by this call, or unknown). With the events written.
        """
        claim = self._claim(claimant, 1, self._now())
        outcome, record, written = await self._database.writes.rows(
            functools.partial(claim.run_named, run_id=run_id)
        )
        return NamedClaim(outcome, record, written)

    async def waiting_for_worker(self, limit: int) -> builtins.list[RunRecord]:
        """Up to ``limit`` runs a worker should take: QUEUED, or RUNNING with an expired lease
        (its worker died); highest priority, then oldest, first. For a queue outside the
        database to find runs it does not hold (written before it ran, or lost by it)."""
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        statement = (
            select(_Run)
            .where(
                or_(
                    _Run.state == RunState.QUEUED.value,
                    and_(
                        _Run.state == RunState.RUNNING.value,
                        _Run.lease_expires_at <= self._now(),
                    ),
                )
            )
            .order_by(_Run.priority.desc(), _Run.created_at, _Run.run_id)
            .limit(limit)
        )
        async with self._database.sessionmaker() as session:
            rows = (await session.execute(statement)).scalars().all()
        return [_rows.to_record(row) for row in rows]

    async def count_queued(self) -> int:
        """How many runs are QUEUED, all tenants together (the queue's depth)."""
        statement = (
            select(func.count()).select_from(_Run).where(_Run.state == RunState.QUEUED.value)
        )
        async with self._database.engine.connect() as connection:
            return int((await connection.execute(statement)).scalar_one())

    async def heartbeat(self, run_id: str, worker_id: str, *, lease_seconds: float) -> bool:
        """Extend ``worker_id``'s lease of the run to ``lease_seconds`` from now.

        Returns:
            False when the worker no longer holds the run (another worker re-claimed it, or it
            left RUNNING): the worker must stop executing it.
        """
        held = await self.heartbeat_many([run_id], worker_id, lease_seconds=lease_seconds)
        return run_id in held

    async def heartbeat_many(
        self, run_ids: Collection[str], worker_id: str, *, lease_seconds: float
    ) -> dict[str, bool]:
        """Extend ``worker_id``'s leases of ``run_ids`` to ``lease_seconds`` from now, in one
        statement (a replica renews all its runs at once, whatever their number).

        Returns:
            The runs the worker still holds, each with its ``cancel_requested`` flag; a run
            missing from it was lost (re-claimed elsewhere, or no longer RUNNING) and the
            worker must stop executing it.
        """
        if not lease_seconds > 0:
            raise ValueError(f"lease_seconds must be positive, got {lease_seconds!r}")
        owner = require_text("worker_id", worker_id)
        wanted = sorted(set(run_ids))  # one lock order across replicas
        if not wanted:
            return {}
        now = self._now()
        statement = (
            update(_Run)
            .where(
                _Run.run_id.in_(wanted),
                _Run.state == RunState.RUNNING.value,
                _Run.lease_owner == owner,
            )
            .values(lease_expires_at=now + timedelta(seconds=lease_seconds))
            .returning(_Run.run_id, _Run.cancel_requested)
        )
        async with self._database.core_transaction(immediate=True) as connection:
            rows = (await connection.execute(statement)).all()
        return {str(run_id): bool(cancel) for run_id, cancel in rows}

    # -- internals -------------------------------------------------------------------------

    def _now(self) -> datetime:
        return require_aware("clock()", self._clock())

    def _claim(self, claimant: Claimant, count: int, now: datetime) -> Claim:
        return Claim(
            worker_id=claimant.worker_id,
            count=count,
            lease_seconds=claimant.lease_seconds,
            max_attempts=claimant.max_attempts,
            statements=candidate_statements(
                claimant.limit_per_tenant, skip_locked=self._database.backend == "postgresql"
            ),
            now=now,
        )
