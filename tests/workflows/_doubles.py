"""Test doubles shared by the engine tests."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from ai_orchestration.storage import Database, RunRepository
from ai_orchestration.workflows import RunEvent, RunRecord, RunState, WorkflowDefinition


class CountingRuns(RunRepository):
    """The real repository, counting reads of the event log, probes of the newest sequences
    and claim queries."""

    reads = 0
    claims = 0

    async def events_after(self, *args: Any, **kwargs: Any) -> list[RunEvent]:
        self.reads += 1
        return await super().events_after(*args, **kwargs)

    probes = 0

    async def last_sequences(self, *args: Any, **kwargs: Any) -> dict[str, int]:
        self.probes += 1
        return await super().last_sequences(*args, **kwargs)

    async def claim_many(self, *args: Any, **kwargs: Any) -> list[RunRecord]:
        self.claims += 1
        return await super().claim_many(*args, **kwargs)


@contextlib.asynccontextmanager
async def migrated_sqlite(directory: Path) -> AsyncIterator[Database]:
    """A migrated SQLite database in ``directory``, closed afterwards."""
    async with Database.from_url(f"sqlite:///{directory}/service.db") as database:
        await database.migrate()
        yield database


def workflow_definition(name: str, description: str) -> WorkflowDefinition:
    """A one-version, non-interruptible workflow with the content workflow's message types."""
    return WorkflowDefinition(
        name=name,
        description=description,
        version="1",
        input_type="crm.ai.v1.ContentGenerationInput",
        output_type="crm.ai.v1.ContentGenerationOutput",
        interruptible=False,
    )


async def wait_for_state(
    runs: RunRepository, tenant_id: str, run_id: str, want: RunState
) -> RunRecord:
    """The run once it is in state ``want`` (polled for up to 8 s)."""
    for _ in range(400):
        run = await runs.get(tenant_id, run_id)
        if run.state is want:
            return run
        await asyncio.sleep(0.02)
    raise AssertionError(f"run {run_id} is {run.state.value}, not {want.value}")


class AnswersAsGiven:
    """The ``accept_answer`` of a test runner: every answer is stored as it is."""

    async def accept_answer(self, run: RunRecord, answer: dict[str, Any]) -> dict[str, Any]:
        return answer
