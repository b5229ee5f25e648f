"""Authentication and authorization against a real server."""

from __future__ import annotations

import json
from pathlib import Path

import grpc
import grpc.aio
import jwt
import pytest
from crm.ai.v1 import (
    scoring_pb2,
    scoring_pb2_grpc,
    workflow_pb2,
    workflow_pb2_grpc,
)
from crm_ai_client import ServiceError
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from grpc_health.v1 import health_pb2, health_pb2_grpc

from ai_orchestration.config import Settings
from tests.conftest import SECRET, TokenFactory, running_server

VALID = scoring_pb2.ScoreLeadRequest(lead=scoring_pb2.Lead(lead_id="L-1"))


async def _score(channel: grpc.aio.Channel, token: str | None) -> ServiceError:
    stub = scoring_pb2_grpc.ScoringServiceStub(channel)
    metadata = (("authorization", f"Bearer {token}"),) if token is not None else None
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.ScoreLead(VALID, metadata=metadata)
    return ServiceError.from_rpc_error(caught.value)


async def test_missing_token_is_unauthenticated(channel: grpc.aio.Channel) -> None:
    err = await _score(channel, None)
    assert err.code is grpc.StatusCode.UNAUTHENTICATED
    assert err.reason == "CREDENTIALS_MISSING"
    assert "Bearer" in err.message


async def test_malformed_header_is_unauthenticated(channel: grpc.aio.Channel) -> None:
    stub = scoring_pb2_grpc.ScoringServiceStub(channel)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.ScoreLead(VALID, metadata=(("authorization", "Basic dXNlcjpwdw=="),))
    err = ServiceError.from_rpc_error(caught.value)
    assert (err.code, err.reason) == (grpc.StatusCode.UNAUTHENTICATED, "CREDENTIALS_MALFORMED")


async def test_expired_token_is_unauthenticated(
    channel: grpc.aio.Channel, token: TokenFactory
) -> None:
    err = await _score(channel, token(expires_in=-3600))
    assert (err.code, err.reason) == (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_EXPIRED")


async def test_wrong_signature_is_unauthenticated(
    channel: grpc.aio.Channel, token: TokenFactory
) -> None:
    err = await _score(channel, token(secret="another-secret-that-is-also-32-bytes-long"))
    assert (err.code, err.reason) == (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_INVALID")


async def test_garbage_token_is_unauthenticated(channel: grpc.aio.Channel) -> None:
    err = await _score(channel, "not-a-jwt")
    assert err.code is grpc.StatusCode.UNAUTHENTICATED


async def test_token_without_tenant_is_unauthenticated(channel: grpc.aio.Channel) -> None:
    bad = jwt.encode({"roles": ["admin"], "exp": 4102444800}, SECRET, algorithm="HS256")
    err = await _score(channel, bad)
    assert (err.code, err.reason) == (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_TENANT_INVALID")


async def test_unsigned_token_is_rejected(channel: grpc.aio.Channel) -> None:
    unsigned = jwt.encode(
        {"tenant_id": "acme", "roles": ["admin"], "exp": 4102444800}, "", algorithm="none"
    )
    err = await _score(channel, unsigned)
    assert (err.code, err.reason) == (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_ALGORITHM_REJECTED")


async def test_wrong_role_is_permission_denied(
    channel: grpc.aio.Channel, token: TokenFactory
) -> None:
    err = await _score(channel, token(roles=["workflow.reader"]))
    assert err.code is grpc.StatusCode.PERMISSION_DENIED
    assert err.metadata["requiredRole"] == "scoring.reader"


async def test_reader_may_not_train(channel: grpc.aio.Channel, token: TokenFactory) -> None:
    stub = scoring_pb2_grpc.ScoringServiceStub(channel)
    request = scoring_pb2.TrainScoringModelRequest(
        request_id="0b6f0a3e-7f0e-4e43-9a43-2b3f0f1d5c11"
    )
    call = stub.TrainScoringModel(
        request, metadata=(("authorization", f"Bearer {token(roles=['scoring.writer'])}"),)
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        async for _ in call:
            pass
    assert caught.value.code() is grpc.StatusCode.PERMISSION_DENIED


async def test_implied_role_passes_auth(channel: grpc.aio.Channel, token: TokenFactory) -> None:
    # scoring.admin implies scoring.reader, so the call gets past auth and is served.
    stub = scoring_pb2_grpc.ScoringServiceStub(channel)
    md = (("authorization", f"Bearer {token(roles=['scoring.admin'])}"),)
    reply = await stub.ScoreLead(VALID, metadata=md)
    assert reply.lead_id == "L-1"


async def test_unknown_method_is_unimplemented(
    channel: grpc.aio.Channel, token: TokenFactory
) -> None:
    # Every RPC of the contract is served now; a method the contract does not have is not.
    call = channel.unary_unary(
        "/crm.ai.v1.InsightService/NoSuchMethod",
        request_serializer=lambda raw: raw,
        response_deserializer=lambda raw: raw,
    )
    md = (("authorization", f"Bearer {token(roles=['insight.reader'])}"),)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call(b"", metadata=md)
    assert caught.value.code() is grpc.StatusCode.UNIMPLEMENTED


async def test_health_and_reflection_need_no_token(channel: grpc.aio.Channel) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    reply = await health.Check(health_pb2.HealthCheckRequest(service="crm.ai.v1.ScoringService"))
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


async def test_workflow_operator_role(channel: grpc.aio.Channel, token: TokenFactory) -> None:
    stub = workflow_pb2_grpc.WorkflowServiceStub(channel)
    md = (("authorization", f"Bearer {token(roles=['workflow.reader'])}"),)
    with pytest.raises(grpc.aio.AioRpcError) as denied:
        await stub.CancelRun(
            workflow_pb2.CancelRunRequest(run_id="0b6f0a3e-7f0e-4e43-9a43-2b3f0f1d5c11"),
            metadata=md,
        )
    assert denied.value.code() is grpc.StatusCode.PERMISSION_DENIED
    allowed = await stub.ListWorkflows(workflow_pb2.ListWorkflowsRequest(), metadata=md)
    assert "lead_qualification" in {w.name for w in allowed.workflows}


def _rsa_pair() -> tuple[rsa.RSAPrivateKey, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return key, public_pem.decode()


async def _rs256_server_call(tmp_path: Path, settings: Settings, token: str) -> grpc.StatusCode:
    async with (
        running_server(settings) as server,
        grpc.aio.insecure_channel(server.address) as channel,
    ):
        stub = scoring_pb2_grpc.ScoringServiceStub(channel)
        try:
            await stub.ScoreLead(VALID, metadata=(("authorization", f"Bearer {token}"),))
        except grpc.aio.AioRpcError as error:
            return error.code()
        return grpc.StatusCode.OK


async def test_rs256_public_key_file(tmp_path: Path) -> None:
    key, public_pem = _rsa_pair()
    pem_file = tmp_path / "public.pem"
    pem_file.write_text(public_pem)
    settings = Settings(
        host="127.0.0.1",
        port=0,
        data_dir=tmp_path,
        auth_public_key_file=pem_file,
        auth_issuer="https://idp.example",
        shutdown_grace_seconds=0,
    )
    claims = {"tenant_id": "acme", "roles": ["scoring.reader"], "exp": 4102444800}
    good = jwt.encode({**claims, "iss": "https://idp.example"}, key, algorithm="RS256")
    wrong_issuer = jwt.encode({**claims, "iss": "https://evil.example"}, key, algorithm="RS256")
    assert await _rs256_server_call(tmp_path, settings, good) is grpc.StatusCode.OK
    assert (
        await _rs256_server_call(tmp_path, settings, wrong_issuer)
        is grpc.StatusCode.UNAUTHENTICATED
    )


async def test_rs256_jwks_file_selects_key_by_kid(tmp_path: Path) -> None:
    key_a, _ = _rsa_pair()
    key_b, _ = _rsa_pair()
    jwks = {
        "keys": [
            {
                **json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(k.public_key())),
                "kid": kid,
                "alg": "RS256",
                "use": "sig",
            }
            for kid, k in (("a", key_a), ("b", key_b))
        ]
    }
    jwks_file = tmp_path / "jwks.json"
    jwks_file.write_text(json.dumps(jwks))
    settings = Settings(
        host="127.0.0.1",
        port=0,
        data_dir=tmp_path,
        auth_jwks_file=jwks_file,
        shutdown_grace_seconds=0,
    )
    claims = {"tenant_id": "acme", "roles": ["scoring.reader"], "exp": 4102444800}
    signed_b = jwt.encode(claims, key_b, algorithm="RS256", headers={"kid": "b"})
    mislabelled = jwt.encode(claims, key_b, algorithm="RS256", headers={"kid": "a"})
    assert await _rs256_server_call(tmp_path, settings, signed_b) is grpc.StatusCode.OK
    assert (
        await _rs256_server_call(tmp_path, settings, mislabelled) is grpc.StatusCode.UNAUTHENTICATED
    )
