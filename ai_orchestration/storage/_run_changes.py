"""How workflow runs change: the statements and the row logic of :class:`RunRepository
<ai_orchestration.storage.RunRepository>`, written once against :class:`~._writes.Rows`.
The row logic reads and sets a run row's attributes and adds event rows; the database's write
backend (see ``_writes``) runs the statements and writes the rows its own way."""

from __future__ import annotations

import builtins
import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, Literal, Protocol, cast

from sqlalchemy import (
    CursorResult,
    Float,
    Integer,
    Select,
    bindparam,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased
from sqlalchemy.sql import ClauseElement

from ai_orchestration.errors import FailedPreconditionError
from ai_orchestration.records import (
    TERMINAL_STATES,
    EventKind,
    JsonDoc,
    JsonValue,
    RunError,
    RunEvent,
    RunRecord,
    RunState,
)
from ai_orchestration.storage import _run_rows as _rows
from ai_orchestration.storage._common import require_text
from ai_orchestration.storage._models import WorkflowRunEventModel, WorkflowRunModel
from ai_orchestration.storage._writes import Rows, Statements

__all__ = [
    "BUMP_SEQUENCE",
    "CLAIM_ROUNDS",
    "CREATED_FROM",
    "EVENTS_AFTER",
    "INSERT_EVENT",
    "OWNED",
    "REQUEST_KEY",
    "RUN_BY_ID",
    "RUN_BY_REQUEST",
    "Adds",
    "Claim",
    "ClaimOutcome",
    "Claimant",
    "Transition",
    "add_event",
    "append_in",
    "candidate_statements",
    "change_state",
    "check_state",
    "create_in",
    "locked_run",
    "queued_event",
    "rowcount",
    "settle",
    "transition_in",
    "usage_amounts",
]

CREATED_FROM: Final[str] = "UNSPECIFIED"
"""``from`` of a run's first ``state_changed`` event (``Run.State.STATE_UNSPECIFIED``)."""

# Each claim round ends at most one run (dead-lettered or cancelled) before it takes one, so a
# backlog of those is worked off over several calls instead of holding one caller for long.
CLAIM_ROUNDS = 50

_Run = WorkflowRunModel
_Event = WorkflowRunEventModel


BUMP_SEQUENCE = (
    update(_Run)
    .where(_Run.run_id == bindparam("target_run"))
    .values(
        last_sequence=_Run.last_sequence + 1,
        prompt_tokens=_Run.prompt_tokens + bindparam("tokens_in", type_=Integer),
        completion_tokens=_Run.completion_tokens + bindparam("tokens_out", type_=Integer),
        cost_usd=_Run.cost_usd + bindparam("cost", type_=Float),
    )
    .returning(_Run.last_sequence)
)
"""An event append's row update, built once: the next sequence, and a usage event's amounts
(zero for the other kinds)."""
INSERT_EVENT = insert(_Event)
RUN_BY_ID = select(_Run).where(_Run.run_id == bindparam("target_run")).with_for_update()
"""A run's row, locked until the transaction ends (``FOR UPDATE`` is not rendered on SQLite,
whose ``BEGIN IMMEDIATE`` already holds the writer lock)."""
REQUEST_KEY = [_Run.tenant_id, _Run.request_id]
RUN_BY_REQUEST = select(_Run).where(
    _Run.tenant_id == bindparam("tenant"), _Run.request_id == bindparam("request")
)
OWNED = select(_Run.run_id).where(
    _Run.tenant_id == bindparam("tenant"), _Run.run_id == bindparam("target_run")
)
EVENTS_AFTER = (
    select(*_Event.__table__.columns)
    .where(
        _Event.run_id == bindparam("target_run"),
        _Event.sequence > bindparam("after"),
        OWNED.exists(),  # the tenant check rides along; only an empty page needs it alone
    )
    .order_by(_Event.sequence)
    .limit(bindparam("page"))
)
"""A page of a run's events (Core rows: a watcher reads one after another's append)."""


@functools.lru_cache(maxsize=64)
def candidate_statements(
    limit_per_tenant: int | None, *, skip_locked: bool
) -> tuple[Select[WorkflowRunModel], ...]:
    """The claim's two queries (an expired lease, then the fairest queued run), built once:
    building them (an alias, a correlated subquery) cost more than running them. ``now`` is
    a bound parameter."""
    expired = (
        select(_Run)
        .where(
            _Run.state == RunState.RUNNING.value,
            _Run.lease_expires_at <= bindparam("now", type_=_Run.lease_expires_at.type),
        )
        .order_by(_Run.priority.desc(), _Run.lease_expires_at, _Run.run_id)
    )
    statements = []
    for candidate in (expired, _queued_candidates(limit_per_tenant)):
        statement = candidate.limit(1)
        if skip_locked:
            statement = statement.with_for_update(skip_locked=True, of=_Run)
        statements.append(statement)
    return tuple(statements)


def _queued_candidates(limit_per_tenant: int | None) -> Select[WorkflowRunModel]:
    other = aliased(_Run)
    running = (
        select(func.count())
        .select_from(other)
        .where(other.tenant_id == _Run.tenant_id, other.state == RunState.RUNNING.value)
        .correlate(_Run)
        .scalar_subquery()
    )
    statement = select(_Run).where(_Run.state == RunState.QUEUED.value)
    if limit_per_tenant is not None:
        if limit_per_tenant < 1:
            raise ValueError(f"limit_per_tenant must be at least 1, got {limit_per_tenant}")
        statement = statement.where(running < limit_per_tenant)
    return statement.order_by(running, _Run.priority.desc(), _Run.created_at, _Run.run_id)


def settle(session: Adds, row: WorkflowRunModel, now: datetime, max_attempts: int) -> bool:
    """End a candidate that must not run again; True when it was ended."""
    if row.cancel_requested:
        change_state(session, row, RunState.CANCELLED, "cancelled by caller", now)
        return True
    if row.state == RunState.RUNNING.value and row.attempts >= max_attempts:
        error = RunError(
            code="ABORTED",
            message=(
                f"the run was attempted {row.attempts} times and its worker stopped each time "
                f"without finishing (last worker {row.lease_owner!r}); it is kept for inspection"
            ),
            reason="MAX_ATTEMPTS_EXCEEDED",
        )
        row.error = _rows.error_document(error)
        add_event(session, row, EventKind.FAILED, row.error, now)
        change_state(session, row, RunState.DEAD_LETTERED, error.message, now)
        return True
    return False


def change_state(
    session: Adds, row: WorkflowRunModel, target: RunState, reason: str, now: datetime
) -> RunEvent:
    """Set the state and what goes with it, and append the ``state_changed`` event (returned).

    A run cancelled on a caller's request says the caller's reason, whoever ends it."""
    if target is RunState.CANCELLED and row.cancel_requested and row.cancel_reason:
        reason = row.cancel_reason
    previous = row.state
    row.state = target.value
    if target is RunState.RUNNING:
        row.started_at = row.started_at or now
    else:
        row.lease_owner = ""
        row.lease_expires_at = None
    if target is RunState.QUEUED or target in TERMINAL_STATES:
        row.pending_interrupt = None
    if target in TERMINAL_STATES:
        row.ended_at = now
    payload: dict[str, JsonValue] = {"from": previous, "to": target.value, "reason": reason}
    return add_event(session, row, EventKind.STATE_CHANGED, payload, now)


def add_event(
    session: Adds,
    row: WorkflowRunModel,
    kind: EventKind,
    payload: JsonDoc,
    now: datetime,
) -> RunEvent:
    """Append an event to the run's log at its next sequence, in the session's transaction."""
    row.last_sequence += 1
    session.add(_rows.event_row(row.run_id, row.last_sequence, kind, payload, now))
    return RunEvent(row.run_id, row.last_sequence, kind, payload, now)


@dataclass(frozen=True, slots=True)
class Claimant:
    """A worker claiming runs, and its terms (see :meth:`RunRepository.claim`)."""

    worker_id: str
    lease_seconds: float
    max_attempts: int = 3
    limit_per_tenant: int | None = None

    def __post_init__(self) -> None:
        require_text("worker_id", self.worker_id)
        if not (isinstance(self.lease_seconds, int | float) and self.lease_seconds > 0):
            raise ValueError(f"lease_seconds must be positive, got {self.lease_seconds!r}")
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {self.max_attempts}")


class Adds(Protocol):
    """Where new rows go: an ORM session, or a :class:`WriterSession`."""

    def add(self, instance: object) -> None: ...


@dataclass(frozen=True, slots=True)
class Transition:
    """What :meth:`RunRepository.transition` does to a locked run row, on either path."""

    target: RunState
    allowed: frozenset[RunState]
    owner: str | None
    changes: Mapping[str, object]
    event: tuple[EventKind, JsonDoc] | None
    reason: str
    now: datetime

    def apply(self, session: Adds, row: WorkflowRunModel) -> builtins.list[RunEvent]:
        """Checks the state and the lease, changes the row; returns the events added."""
        check_state(row, self.allowed, self.owner)
        for name, value in self.changes.items():
            setattr(row, name, value)
        written = []
        if self.event is not None:
            written.append(add_event(session, row, *self.event, self.now))
        written.append(change_state(session, row, self.target, self.reason, self.now))
        return written


@dataclass(frozen=True, slots=True)
class Claim:
    """What :meth:`RunRepository.claim_many` does in its transaction, on either path."""

    worker_id: str
    count: int
    lease_seconds: float
    max_attempts: int
    statements: tuple[Select[WorkflowRunModel], ...]
    now: datetime

    def run(self, rows: Rows) -> tuple[builtins.list[RunRecord], builtins.list[RunEvent]]:
        """The claimed runs and the events written for them."""
        claimed: builtins.list[RunRecord] = []
        written: builtins.list[RunEvent] = []
        settled = 0
        while len(claimed) < self.count and settled < CLAIM_ROUNDS:
            row = self._candidate(rows)
            if row is None:
                break
            if settle(rows, row, self.now, self.max_attempts):
                settled += 1
            else:
                written.append(self._take(rows, row))
                claimed.append(_rows.to_record(row))
            rows.flush()  # the next candidate query sees this one's new state
        return claimed, written

    def run_named(
        self, rows: Rows, run_id: str
    ) -> tuple[ClaimOutcome, RunRecord | None, builtins.list[RunEvent]]:
        """Claims the run ``run_id`` if it waits for a worker: QUEUED, or RUNNING with an
        expired lease. A cancel flag or exhausted attempts end it instead (as :meth:`run`
        does); a RUNNING run whose lease is live is left alone."""
        row = rows.load(_Run, RUN_BY_ID, {"target_run": run_id})
        if row is None:
            return "ended", None, []
        state = RunState(row.state)
        expires = row.lease_expires_at
        if state is RunState.RUNNING and expires is not None and expires > self.now:
            return "busy", _rows.to_record(row), []
        if state not in (RunState.QUEUED, RunState.RUNNING):
            return "ended", _rows.to_record(row), []
        written: builtins.list[RunEvent] = []
        if settle(_Recording(rows, written), row, self.now, self.max_attempts):
            rows.flush()
            return "ended", _rows.to_record(row), written
        written.append(self._take(rows, row))
        rows.flush()
        return "claimed", _rows.to_record(row), written

    def _candidate(self, rows: Rows) -> WorkflowRunModel | None:
        for statement in self.statements:
            row = rows.load(_Run, statement, {"now": self.now})
            if row is not None:
                return row
        return None

    def _take(self, rows: Rows, row: WorkflowRunModel) -> RunEvent:
        previous = RunState(row.state)
        row.attempts += 1
        row.lease_owner = self.worker_id
        row.lease_expires_at = self.now + timedelta(seconds=self.lease_seconds)
        why = "claimed" if previous is RunState.QUEUED else "lease expired; re-claimed"
        reason = f"{why} by {self.worker_id}"
        return change_state(rows, row, RunState.RUNNING, reason, self.now)


ClaimOutcome = Literal["claimed", "busy", "ended"]
"""What :meth:`Claim.run_named` found: it claimed the run; another worker's lease on it is
live; or the run needs no worker (ended, waiting for a human, gone, or just ended by the
claim because it was flagged cancelled or out of attempts)."""


class _Recording:
    """:class:`Adds` that also keeps the events :func:`settle` adds, as :class:`RunEvent`."""

    def __init__(self, rows: Adds, written: builtins.list[RunEvent]) -> None:
        self._rows = rows
        self._written = written

    def add(self, instance: object) -> None:
        self._rows.add(instance)
        if isinstance(instance, _Event):
            self._written.append(_rows.to_event(instance))


def queued_event(session: Adds, row: WorkflowRunModel) -> RunEvent:
    """Adds a new run's first event, ``state_changed`` to QUEUED."""
    payload: JsonDoc = {"from": CREATED_FROM, "to": RunState.QUEUED.value, "reason": ""}
    kind = EventKind.STATE_CHANGED
    session.add(_rows.event_row(row.run_id, 1, kind, payload, row.created_at))
    return RunEvent(row.run_id, 1, kind, payload, row.created_at)


def create_in(
    rows: Rows,
    *,
    insert: ClauseElement,
    insert_values: Mapping[str, object],
    key: Mapping[str, str],
    claim: Claim | None,
) -> tuple[
    RunRecord, str, RunEvent | None, tuple[builtins.list[RunRecord], builtins.list[RunEvent]]
]:
    """:meth:`RunRepository.create` in its transaction: the run, its request digest, its first
    event when this call created it, and what ``claim`` took then."""
    created = rows.execute(insert, insert_values) > 0
    row = rows.load(_Run, RUN_BY_REQUEST, key)
    if row is None:  # inserted or already there, in this transaction
        raise RuntimeError(f"run with request_id {key['request']!r} vanished while created")
    first = queued_event(rows, row) if created else None
    rows.flush()
    record = _rows.to_record(row)
    taken = claim.run(rows) if first is not None and claim is not None else ([], [])
    return record, row.request_digest, first, taken


def transition_in(
    rows: Rows, *, run_id: str, move: Transition
) -> tuple[RunRecord, builtins.list[RunEvent]]:
    """:meth:`RunRepository.transition` in its transaction: the run after, the events added."""
    row = rows.load(_Run, RUN_BY_ID, {"target_run": run_id})
    if row is None:
        raise _rows.not_found(run_id)
    written = move.apply(rows, row)
    rows.flush()
    return _rows.to_record(row), written


def append_in(
    statements: Statements, *, amounts: Mapping[str, object], event: Mapping[str, object]
) -> int:
    """:meth:`RunRepository.append_event` in its transaction: bump the run's sequence (and
    totals), insert the event; returns the event's sequence."""
    bumped = statements.first(BUMP_SEQUENCE, amounts)
    if bumped is None:
        raise _rows.not_found(str(event["run_id"]))
    sequence = int(bumped[0])
    statements.execute(INSERT_EVENT, {**event, "sequence": sequence})
    return sequence


def usage_amounts(
    prompt_tokens: object, completion_tokens: object, cost_usd: object
) -> tuple[int, int, float]:
    """A ``usage`` event's amounts, checked: whole token counts and a cost, none negative."""
    return _token_count(prompt_tokens), _token_count(completion_tokens), _cost(cost_usd)


def _token_count(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"token counts must be whole numbers >= 0, got {value!r}")
    return value


def _cost(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"cost_usd must be a number, got {value!r}")
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"cost_usd must be finite and at least 0, got {value}")
    return float(value)


def check_state(row: WorkflowRunModel, allowed: frozenset[RunState], owner: str | None) -> None:
    state = RunState(row.state)
    if state not in allowed:
        expected = " or ".join(sorted(s.value for s in allowed)) or "(none)"
        raise FailedPreconditionError(
            f"run {row.run_id} is {state.value}, not {expected}",
            reason="RUN_STATE_MISMATCH",
            metadata={"run_id": row.run_id, "state": state.value},
        )
    if owner is not None and row.lease_owner != owner:
        raise FailedPreconditionError(
            f"worker {owner!r} no longer holds run {row.run_id}",
            reason="LEASE_LOST",
            metadata={"run_id": row.run_id, "lease_owner": row.lease_owner},
        )


async def locked_run(
    session: AsyncSession, run_id: str, *, tenant_id: str | None = None
) -> WorkflowRunModel:
    """The run's row, locked until the transaction ends (``FOR UPDATE`` is a no-op on SQLite,
    whose ``BEGIN IMMEDIATE`` already holds the writer lock)."""
    statement = select(_Run).where(_Run.run_id == run_id).with_for_update()
    if tenant_id is not None:
        statement = statement.where(_Run.tenant_id == tenant_id)
    row = (await session.execute(statement)).scalar_one_or_none()
    if row is None:
        raise _rows.not_found(run_id)
    return row


def rowcount(result: object) -> int:
    return cast(CursorResult[Any], result).rowcount
