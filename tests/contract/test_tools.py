"""What other teams and operators use against a running server: reflection tools and clients."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import textwrap
import venv
from pathlib import Path

import pytest
from crm.ai.v1 import insight_pb2, scoring_pb2, usage_pb2, workflow_pb2

from ai_orchestration.security import REQUIRED_ROLE
from ai_orchestration.server import Server
from ai_orchestration.server._reflection import commented_files
from tests.conftest import TokenFactory

ROOT = Path(__file__).resolve().parents[2]
CONTRACT = {
    "crm.ai.v1.ScoringService",
    "crm.ai.v1.WorkflowService",
    "crm.ai.v1.InsightService",
    "crm.ai.v1.UsageService",
}


async def _run(args: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    # In a thread: the server under test shares this event loop and must keep answering.
    return await asyncio.to_thread(
        subprocess.run,  # type: ignore[arg-type]
        args,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        **kwargs,
    )


def test_every_contract_rpc_has_a_role() -> None:
    methods = {
        f"/{service.full_name}/{method.name}"
        for module in (scoring_pb2, workflow_pb2, insight_pb2, usage_pb2)
        for service in module.DESCRIPTOR.services_by_name.values()
        for method in service.methods
    }
    assert methods == set(REQUIRED_ROLE)


async def test_grpcurl_lists_services_through_reflection(server: Server) -> None:
    grpcurl = Path(sys.executable).parent / "grpcurl"
    result = await _run([str(grpcurl), "-plaintext", server.address, "list"])
    assert result.returncode == 0, result.stderr
    assert set(result.stdout.split()) >= CONTRACT
    described = await _run(
        [str(grpcurl), "-plaintext", server.address, "describe", "crm.ai.v1.ScoringService"]
    )
    assert "rpc BatchScoreLeads" in described.stdout, described.stderr


@pytest.mark.parametrize(
    ("symbol", "comment"),
    [
        # A service: the service's and its RPCs' comments.
        ("crm.ai.v1.ScoringService", "Scores one lead. Missing feature fields are allowed"),
        # A message: its fields' comments.
        ("crm.ai.v1.ScoreLeadRequest", "The lead to score."),
    ],
)
async def test_grpcurl_describe_shows_the_proto_comments(
    server: Server, symbol: str, comment: str
) -> None:
    grpcurl = Path(sys.executable).parent / "grpcurl"
    described = await _run([str(grpcurl), "-plaintext", server.address, "describe", symbol])
    assert described.returncode == 0, described.stderr
    assert comment in described.stdout, described.stdout


def test_the_descriptor_set_matches_the_generated_code() -> None:
    # A stale set would be served without comments: make proto writes both.
    data = (ROOT / "ai_orchestration" / "server" / "descriptor_set.binpb").read_bytes()
    served = commented_files(data)
    assert set(served) == {
        f"crm/ai/v1/{name}.proto" for name in ("common", "insight", "scoring", "usage", "workflow")
    }


async def test_grpcurl_calls_with_token(server: Server, token: TokenFactory) -> None:
    grpcurl = Path(sys.executable).parent / "grpcurl"
    result = await _run(
        [
            str(grpcurl),
            "-plaintext",
            "-H",
            f"authorization: Bearer {token()}",
            "-d",
            '{"lead": {"lead_id": ""}}',
            server.address,
            "crm.ai.v1.ScoringService/ScoreLead",
        ]
    )
    assert "InvalidArgument" in result.stderr
    assert "lead.lead_id" in result.stderr


async def test_buf_curl_lists_services_through_reflection(server: Server) -> None:
    buf = ROOT / "node_modules" / ".bin" / "buf"
    result = await _run(
        [
            str(buf),
            "curl",
            "--protocol",
            "grpc",
            "--http2-prior-knowledge",
            "--list-services",
            f"http://{server.address}",
        ]
    )
    assert result.returncode == 0, result.stderr
    assert set(result.stdout.split()) >= CONTRACT


async def test_typescript_client_against_server(server: Server, token: TokenFactory) -> None:
    npm = shutil.which("npm")
    assert npm, "npm is required for the TypeScript client test"
    env = {**os.environ, "AIO_TEST_ADDRESS": server.address, "AIO_TEST_TOKEN": token()}
    result = await _run([npm, "test", "--silent"], cwd=ROOT / "clients" / "typescript", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "# pass 3" in result.stdout


@pytest.mark.timeout(600)
async def test_python_client_installs_into_clean_venv(
    server: Server, token: TokenFactory, tmp_path: Path
) -> None:
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    installed = await _run(
        [str(python), "-m", "pip", "install", "-q", str(ROOT / "clients" / "python")]
    )
    assert installed.returncode == 0, installed.stderr
    script = textwrap.dedent(
        f"""
        import asyncio, grpc
        from crm.ai.v1 import scoring_pb2, scoring_pb2_grpc
        from crm_ai_client import ServiceError, aio_channel

        async def main():
            async with aio_channel("{server.address}", token="{token()}") as channel:
                stub = scoring_pb2_grpc.ScoringServiceStub(channel)
                try:
                    await stub.ScoreLead(scoring_pb2.ScoreLeadRequest(
                        lead=scoring_pb2.Lead(lead_id="bad id")))
                except grpc.RpcError as exc:
                    err = ServiceError.from_rpc_error(exc)
                    print(err.code.name, [v.field for v in err.field_violations])

        asyncio.run(main())
        """
    )
    called = await _run([str(python), "-c", script], cwd=tmp_path)
    assert called.returncode == 0, called.stderr
    assert called.stdout.strip() == "INVALID_ARGUMENT ['lead.lead_id']"
