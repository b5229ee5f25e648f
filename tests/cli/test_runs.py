"""``runs list|get|tail|cancel|resume`` on real runs of the content workflow."""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
import uuid
from pathlib import Path
from typing import NamedTuple

import grpc
import grpc.aio
from crm.ai.v1 import workflow_pb2, workflow_pb2_grpc

from ai_orchestration.cli._tail import _connection_lost
from ai_orchestration.server import Server
from tests.api._leads import metadata
from tests.api.conftest import write_llm_config
from tests.cli.conftest import Cli
from tests.conftest import make_token, running_server, server_settings
from tests.fixtures.llm_server import LlmTestServer

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
    assert "-> cancelled (duplicate lead)" in tail.stdout
    shown = await cli("runs", "get", cancelled_id)
    assert re.search(r"cancel reason\s+duplicate lead", shown.stdout), shown.stdout

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


async def test_tail_survives_a_server_restart_without_gap_or_duplicate(
    tmp_path: Path, llm_server: LlmTestServer
) -> None:
    """The server tail follows goes away mid-stream; another on the same address and database
    takes over, and tail resumes after the last sequence it printed."""
    token = make_token()
    llm = str(write_llm_config(tmp_path / "llm.yaml", llm_server))
    settings = server_settings(tmp_path, llm_config_file=llm, llm_cache_ttl_seconds=0)
    async with running_server(settings) as first:
        run_id = await _waiting_run(first, token)
        port = first.port
        env = {**os.environ, "AIO_ADDRESS": first.address, "AIO_TOKEN": token}
        tail = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "ai_orchestration.cli", "runs", "tail", run_id),
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        assert tail.stdout is not None and tail.stderr is not None
        seen: list[str] = []
        while not seen or "waiting for a human" not in seen[-1]:
            line = (await tail.stdout.readline()).decode()
            assert line, "tail ended before the run waited"
            seen.append(line)
    try:
        again = server_settings(tmp_path, llm_config_file=llm, llm_cache_ttl_seconds=0, port=port)
        async with running_server(again) as second:
            async with grpc.aio.insecure_channel(second.address) as channel:
                stub = workflow_pb2_grpc.WorkflowServiceStub(channel)
                run = await stub.GetRun(
                    workflow_pb2.GetRunRequest(run_id=run_id), metadata=metadata(token)
                )
                await stub.ResumeRun(
                    workflow_pb2.ResumeRunRequest(
                        run_id=run_id,
                        interrupt_id=run.pending_interrupt.interrupt_id,
                        approve=workflow_pb2.Approval(),
                    ),
                    metadata=metadata(token),
                )
            rest, err = await tail.communicate()
    finally:
        if tail.returncode is None:
            tail.kill()
            await tail.wait()
    assert tail.returncode == 0, err.decode()
    assert "reconnecting after sequence " in err.decode()
    output = "".join(seen) + rest.decode()
    sequences = _sequences(output)
    assert sequences == list(range(1, len(sequences) + 1))  # no gap, no duplicate
    assert "-> succeeded" in output


class _Metadatum(NamedTuple):
    """One trailer, as grpc's sync API gives it (``key``, ``value``)."""

    key: str
    value: str


class _Ended(grpc.RpcError):
    """What a finished call raises: a code and trailers (the shape of grpc's own errors)."""

    def __init__(self, code: grpc.StatusCode, trailers: tuple[tuple[str, str], ...]) -> None:
        super().__init__()
        self._code, self._trailers = code, trailers

    def code(self) -> grpc.StatusCode:
        return self._code

    def trailing_metadata(self) -> tuple[_Metadatum, ...]:  # type: ignore[override]
        return tuple(_Metadatum(key, value) for key, value in self._trailers)


def test_tail_reconnects_after_a_lost_connection_but_not_after_an_answer() -> None:
    # Behind Envoy a dying replica resets the stream: INTERNAL with no status of ours.
    assert _connection_lost(_Ended(grpc.StatusCode.UNAVAILABLE, ()))
    assert _connection_lost(_Ended(grpc.StatusCode.INTERNAL, ()))
    answered = (("x-correlation-id", "abc123"),)
    assert not _connection_lost(_Ended(grpc.StatusCode.INTERNAL, answered))
    assert not _connection_lost(_Ended(grpc.StatusCode.NOT_FOUND, ()))
    assert not _connection_lost(_Ended(grpc.StatusCode.PERMISSION_DENIED, ()))
