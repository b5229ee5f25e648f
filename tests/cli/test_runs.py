"""``runs list|get|tail|cancel|resume`` on real runs of the content workflow."""

from __future__ import annotations

import json
import re
import uuid

import grpc.aio
from crm.ai.v1 import workflow_pb2, workflow_pb2_grpc

from ai_orchestration.server import Server
from tests.api._leads import metadata
from tests.cli.conftest import Cli

State = workflow_pb2.Run.State


async def _waiting_run(server: Server, token: str) -> str:
    """A content run streamed until it waits for approval; its id."""
    request = workflow_pb2.StartRunRequest(
        request_id=str(uuid.uuid4()),
        content_generation=workflow_pb2.ContentGenerationInput(
            recipient=workflow_pb2.Recipient(name="Ada Lovelace", company="Analytical Engines"),
            purpose="invite to the product webinar",
            channel=workflow_pb2.CHANNEL_EMAIL,
            key_points=["live demo"],
            require_approval=True,
        ),
    )
    async with grpc.aio.insecure_channel(server.address) as channel:
        stub = workflow_pb2_grpc.WorkflowServiceStub(channel)
        events = [
            event
            async for event in stub.StreamRun(
                workflow_pb2.StreamRunRequest(run=request), metadata=metadata(token)
            )
        ]
    assert events[-1].state_changed.to == State.STATE_WAITING_FOR_INPUT
    return events[0].run_id


def _sequences(text: str) -> list[int]:
    return [int(m.group(1)) for m in re.finditer(r"^#(\d+) ", text, flags=re.MULTILINE)]


async def test_list_get_resume_and_tail_a_run(cli: Cli, cli_server: Server) -> None:
    run_id = await _waiting_run(cli_server, cli.token)

    listed = await cli("runs", "list", "--state", "waiting_for_input")
    assert listed.code == 0, listed.stderr
    row = next(line for line in listed.stdout.splitlines() if run_id in line)
    assert "content_generation" in row and "waiting_for_input" in row
    none = await cli("runs", "list", "--state", "succeeded", "--json")
    assert json.loads(none.stdout) == {"runs": [], "next_page_token": ""}

    got = await cli("runs", "get", run_id, "--json")
    assert got.code == 0, got.stderr
    run = json.loads(got.stdout)
    assert (run["run_id"], run["state"]) == (run_id, "STATE_WAITING_FOR_INPUT")
    interrupt_id = run["pending_interrupt"]["interrupt_id"]
    shown = await cli("runs", "get", run_id)
    assert f"{interrupt_id} (approval_requested)" in shown.stdout

    resumed = await cli("runs", "resume", run_id, "--approve", "--comment", "ship it", "--json")
    assert resumed.code == 0, resumed.stderr
    assert json.loads(resumed.stdout)["state"] == "STATE_QUEUED"

    tail = await cli("runs", "tail", run_id)
    assert tail.code == 0, tail.stderr  # exit 0: the run succeeded
    sequences = _sequences(tail.stdout)
    assert sequences == sorted(sequences) and sequences[0] == 1
    assert "waiting for a human: interrupt " in tail.stdout
    assert "state_changed: running -> succeeded" in tail.stdout
    assert "completed: " in tail.stdout

    # Resumed after any sequence: exactly the later events, in JSON lines.
    after = sequences[len(sequences) // 2]
    rest = await cli("runs", "tail", run_id, "--after-sequence", str(after), "--json")
    assert rest.code == 0, rest.stderr
    events = [json.loads(line) for line in rest.stdout.splitlines()]
    assert [int(e["sequence"]) for e in events] == [s for s in sequences if s > after]
    assert "completed" in events[-1] or "state_changed" in events[-1]

    # An ended run cannot be cancelled: the server's error, exit 1.
    late = await cli("runs", "cancel", run_id)
    assert late.code == 1
    assert late.stderr.startswith("error: FAILED_PRECONDITION: ")


async def test_cancel_and_reject(cli: Cli, cli_server: Server) -> None:
    cancelled_id = await _waiting_run(cli_server, cli.token)
    done = await cli("runs", "cancel", cancelled_id, "--reason", "duplicate lead", "--json")
    assert done.code == 0, done.stderr
    assert json.loads(done.stdout)["state"] == "STATE_CANCELLED"
    tail = await cli("runs", "tail", cancelled_id)
    assert tail.code == 1  # the run did not succeed
    assert "-> cancelled" in tail.stdout

    rejected_id = await _waiting_run(cli_server, cli.token)
    rejected = await cli("runs", "resume", rejected_id, "--reject", "--reason", "off brand")
    assert rejected.code == 0, rejected.stderr
    again = await cli("runs", "resume", rejected_id, "--approve")
    assert again.code == 1
    assert "not waiting for input" in again.stderr or "FAILED_PRECONDITION" in again.stderr

    every = await cli("runs", "list", "--page-size", "1", "--all", "--json")
    ids = [run["run_id"] for run in json.loads(every.stdout)["runs"]]
    assert sorted(ids) == sorted([cancelled_id, rejected_id])
    first = await cli("runs", "list", "--page-size", "1")
    assert "next page: --page-token " in first.stdout


async def test_an_edit_that_is_not_json_is_a_usage_error(cli: Cli, cli_server: Server) -> None:
    run_id = await _waiting_run(cli_server, cli.token)
    done = await cli("runs", "resume", run_id, "--edit", "{not json")
    assert done.code == 2
    assert "--edit is not a crm.ai.v1.Edit in JSON" in done.stderr
    short = await cli("runs", "resume", run_id, "--edit", '{"draft": {"body": "Hi."}}')
    assert short.code == 1  # the server checks an edited draft like a generated one
    assert short.stderr.startswith("error: INVALID_ARGUMENT: the edited draft fails checks")
    assert "\n  edit.draft.body: " in short.stderr
    body = "Hi Ada, join us live on Thursday for the product webinar and a demo."
    edit = json.dumps({"draft": {"subject": "Hi", "body": body}})
    edited = await cli("runs", "resume", run_id, "--edit", edit)
    assert edited.code == 0, edited.stderr
    tail = await cli("runs", "tail", run_id, "--json")
    completed = json.loads(tail.stdout.splitlines()[-2])  # then the final state change
    draft = completed["completed"]["content_generation"]["draft"]
    assert (draft["subject"], draft["body"]) == ("Hi", body)
