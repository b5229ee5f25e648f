"""deploy/envoy/envoy.yaml: valid for the real Envoy, and routing every RPC the way its README
says (retries only where a second run is harmless, no timeout on streams)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from crm.ai.v1 import insight_pb2, scoring_pb2, usage_pb2, workflow_pb2
from google.protobuf.descriptor import MethodDescriptor
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2

from tests.deploy._envoy import CONFIG, load, render, validate

IDEMPOTENT = {
    # Reads.
    "/crm.ai.v1.ScoringService/ListLeadScores",
    "/crm.ai.v1.ScoringService/ListScoringModels",
    "/crm.ai.v1.ScoringService/GetScoringSettings",
    "/crm.ai.v1.WorkflowService/ListWorkflows",
    "/crm.ai.v1.WorkflowService/GetRun",
    "/crm.ai.v1.WorkflowService/ListRuns",
    "/crm.ai.v1.WorkflowService/GetWorkflowSettings",
    "/crm.ai.v1.InsightService/ListInsights",
    "/crm.ai.v1.InsightService/GetInsightSettings",
    "/crm.ai.v1.UsageService/GetUsage",
    "/crm.ai.v1.UsageService/GetBudget",
    "/grpc.health.v1.Health/Check",
    "/grpc.health.v1.Health/List",
    # A deterministic score of the same lead (a retry may add the same score to its history).
    "/crm.ai.v1.ScoringService/ScoreLead",
    # Deduplicated by request_id on the server.
    "/crm.ai.v1.WorkflowService/StartRun",
    "/crm.ai.v1.ScoringService/RecordLeadOutcome",
    # Set the given values: twice is the same as once.
    "/crm.ai.v1.ScoringService/UpdateScoringSettings",
    "/crm.ai.v1.WorkflowService/UpdateWorkflowSettings",
    "/crm.ai.v1.InsightService/UpdateInsightSettings",
    "/crm.ai.v1.UsageService/SetBudget",
    # Documented idempotent: erasing again erases nothing and succeeds.
    "/crm.ai.v1.InsightService/EraseCustomer",
}
"""Unary RPCs a second run of which changes nothing: the only ones Envoy may replay."""

REPLAYS = {"unavailable", "cancelled", "reset"}
"""Retry conditions under which the request may already have run on a replica (a replica
that starts shutting down answers CANCELLED to calls it has just received)."""
UNREACHED = {"connect-failure", "refused-stream"}
"""Retry conditions under which no replica saw the request: safe for every RPC."""


def _methods() -> dict[str, MethodDescriptor]:
    """Every RPC the server serves, by its HTTP/2 path."""
    services = [
        service
        for module in (insight_pb2, scoring_pb2, usage_pb2, workflow_pb2, health_pb2)
        for service in module.DESCRIPTOR.services_by_name.values()
    ]
    services.append(reflection_pb2.DESCRIPTOR.services_by_name["ServerReflection"])
    return {f"/{s.full_name}/{m.name}": m for s in services for m in s.methods}


def _routes(config: dict[str, Any]) -> list[dict[str, Any]]:
    (listener,) = config["static_resources"]["listeners"]
    (manager,) = listener["filter_chains"][0]["filters"]
    (virtual_host,) = manager["typed_config"]["route_config"]["virtual_hosts"]
    routes: list[dict[str, Any]] = virtual_host["routes"]
    return routes


def _retry_on(route: dict[str, Any]) -> set[str]:
    return set(route["route"].get("retry_policy", {}).get("retry_on", "").split(","))


def test_envoy_accepts_the_committed_config_without_deprecated_fields() -> None:
    result = validate(CONFIG)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK" in result.stdout
    assert "eprecated" not in result.stdout + result.stderr


def test_envoy_accepts_the_variant_the_failover_test_runs(tmp_path: Path) -> None:
    path = tmp_path / "envoy.json"
    path.write_text(json.dumps(render(["127.0.0.1:50051", "127.0.0.1:50052"])))
    result = validate(path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_rpc_has_its_own_route_and_only_idempotent_unary_rpcs_are_replayed() -> None:
    methods = _methods()
    routes = _routes(load())
    exact = {route["match"]["path"]: route for route in routes if "path" in route["match"]}
    assert set(methods) <= set(exact), "RPCs without a route in envoy.yaml"
    # Reflection v1 is what `buf curl` asks first (it falls back to v1alpha).
    assert set(exact) - set(methods) == {
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"
    }
    assert set(methods) >= IDEMPOTENT
    for path, route in exact.items():
        method = methods.get(path)
        streaming = method is None or method.client_streaming or method.server_streaming
        action, retry_on = route["route"], _retry_on(route)
        if streaming:
            assert action["timeout"] == "0s" and action["idle_timeout"] == "0s", path
            assert retry_on <= UNREACHED, path
        else:
            assert action["timeout"] not in ("0s", None), path
            if path in IDEMPOTENT:
                assert retry_on == REPLAYS | UNREACHED, path
            else:
                assert retry_on <= UNREACHED, path
    # What the protos gain before envoy.yaml does is unary, not replayed.
    (fallback,) = [route for route in routes if "path" not in route["match"]]
    assert fallback is routes[-1] and fallback["match"] == {"prefix": "/"}
    assert _retry_on(fallback) <= UNREACHED and fallback["route"]["timeout"] != "0s"


def test_the_replicas_are_reached_over_h2c_checked_by_grpc_health_and_ejected_on_errors() -> None:
    config = load()
    (cluster,) = config["static_resources"]["clusters"]
    options = cluster["typed_extension_protocol_options"][
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
    ]
    assert "http2_protocol_options" in options["explicit_http_config"]
    assert "transport_socket" not in cluster  # plaintext h2c inside the cluster network
    assert options["common_http_protocol_options"]["max_connection_duration"]
    (check,) = cluster["health_checks"]
    assert check["grpc_health_check"] == {"service_name": ""}
    outlier = cluster["outlier_detection"]
    assert outlier["consecutive_5xx"] and outlier["consecutive_gateway_failure"]
    assert outlier["split_external_local_origin_errors"]
    assert outlier["consecutive_local_origin_failure"]
    (listener,) = config["static_resources"]["listeners"]
    (manager,) = listener["filter_chains"][0]["filters"]
    assert manager["typed_config"]["common_http_protocol_options"]["max_connection_duration"]


def test_the_admin_api_listens_on_loopback_only_and_requests_are_logged_as_json() -> None:
    config = load()
    assert config["admin"]["address"]["socket_address"]["address"] == "127.0.0.1"
    (listener,) = config["static_resources"]["listeners"]
    (manager,) = listener["filter_chains"][0]["filters"]
    (access_log,) = manager["typed_config"]["access_log"]
    assert access_log["name"] == "envoy.access_loggers.stdout"
    assert access_log["typed_config"]["log_format"]["json_format"]
