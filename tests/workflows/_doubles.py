"""Test doubles shared by the engine tests."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
from collections.abc import AsyncIterator, Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ai_orchestration.llm import InProcessBreakerStore, LlmGateway, parse_config
from ai_orchestration.storage import Claimed, Database, RunRepository
from ai_orchestration.workflows import (
    EventKind,
    JsonDoc,
    RunEvent,
    RunRecord,
    RunState,
    WorkflowDefinition,
)
from tests.fixtures.llm_server import LlmTestServer


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

    async def claim_many(self, *args: Any, **kwargs: Any) -> Claimed:
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

    async def forget(self, run_ids: Collection[str]) -> None:
        self.forgotten.update(run_ids)

    @functools.cached_property
    def forgotten(self) -> set[str]:
        """Runs whose state the engine asked this runner to delete."""
        return set()


@dataclass
class Recorder:
    """An EventSink keeping every event in order, with an optional hook per event."""

    events: list[tuple[EventKind, JsonDoc]] = field(default_factory=list)
    hook: Callable[[EventKind, JsonDoc], None] | None = None

    async def emit(self, kind: EventKind, payload: JsonDoc) -> int:
        json.dumps(payload)  # every payload is JSON
        self.events.append((kind, payload))
        if self.hook is not None:
            self.hook(kind, payload)
        # Yield like a sink that writes to a database does: a cancellation requested by the
        # hook lands here, inside the step that emitted the event.
        await asyncio.sleep(0)
        return len(self.events)

    def of(self, kind: EventKind) -> list[JsonDoc]:
        return [payload for k, payload in self.events if k == kind]

    def steps(self) -> list[str]:
        return [p["step"] for p in self.of(EventKind.STEP_STARTED)]


def gateway_for(server: LlmTestServer) -> LlmGateway:
    """The real gateway with one deployment, ``fast``, on the test LLM server (one retry)."""
    document = {
        "model_list": [
            {
                "model_name": "fast",
                "litellm_params": {
                    "model": "openai/test-model",
                    "api_base": f"{server.base_url}/v1",
                    "api_key": "sk-test",
                },
                "model_info": {
                    "id": "primary",
                    "retries": 1,
                    "retry_base_delay": 0.01,
                    "retry_max_delay": 0.02,
                    "input_cost_per_token": 1e-6,
                    "output_cost_per_token": 2e-6,
                },
            }
        ],
        "router_settings": {"allowed_fails": 100},
    }
    config = parse_config(yaml.safe_dump(document), environ={}, source="test.yaml")
    return LlmGateway(config=config, breaker_store=InProcessBreakerStore())
