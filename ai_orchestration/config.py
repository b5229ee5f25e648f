"""Service configuration, read from ``AIO_*`` environment variables (and an optional ``.env``).

Every field is documented in the README's configuration table; keep the two in step.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings", "is_loopback"]


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and any 127.0.0.0/8 or ::1 address."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _default_batch_workers() -> int:
    return min(4, os.cpu_count() or 1)


class Settings(BaseSettings):
    """Typed, frozen settings; construct with keyword overrides in tests."""

    model_config = SettingsConfigDict(
        env_prefix="AIO_", env_file=".env", extra="ignore", frozen=True
    )

    host: str = "127.0.0.1"
    """Address to bind. Anything but loopback requires authentication to be configured."""
    port: int = Field(default=50051, ge=0, le=65535)
    """Port to bind; 0 picks a free one (printed at start-up)."""
    data_dir: Path = Path("data")
    """Directory for the embedded SQLite database and other local state."""
    database_url: str = ""
    """SQLAlchemy URL; empty means ``sqlite+aiosqlite:///<data_dir>/ai-orchestration.db``.
    ``DATABASE_URL`` (no prefix) is read too, for platform conventions."""

    auth_hs256_secret: str = ""
    """Shared secret for HS256 tokens."""
    auth_public_key_file: Path | None = None
    """PEM public key for RS256 tokens."""
    auth_jwks_file: Path | None = None
    """JWKS file (RS256 keys selected by ``kid``)."""
    auth_issuer: str = ""
    """Required ``iss`` claim, if set."""
    auth_audience: str = ""
    """Required ``aud`` claim, if set."""
    auth_leeway_seconds: int = Field(default=30, ge=0, le=600)
    """Clock skew tolerated on ``exp``/``nbf``."""

    shutdown_grace_seconds: float = Field(default=15.0, ge=0, le=600)
    """On SIGTERM, how long in-flight RPCs may finish before they are cancelled."""
    max_message_bytes: int = Field(default=16 * 1024 * 1024, ge=1024, le=256 * 1024 * 1024)
    """Largest request or response message."""
    max_concurrent_streams: int = Field(default=1000, ge=1)
    """HTTP/2 streams per connection."""
    keepalive_time_seconds: int = Field(default=60, ge=10)
    """Server keepalive ping interval on idle connections."""
    keepalive_timeout_seconds: int = Field(default=20, ge=1)
    """Time to wait for a keepalive ack before closing the connection."""
    max_connection_age_seconds: int = Field(default=1800, ge=0)
    """Connections are closed gracefully after this age so load balancers rebalance; 0 = never."""

    scoring_bootstrap_rows: int = Field(default=50_000, ge=5_000, le=1_000_000)
    """Synthetic leads the global scoring model is trained on at first start (a few seconds for
    50k); also the global data mixed into a small tenant's training."""
    scoring_batch_workers: int = Field(default_factory=_default_batch_workers, ge=0, le=64)
    """Worker processes that score BatchScoreLeads chunks (about 160 MB each), launched at
    start; until one is up, and with 0, chunks are scored in a thread of the server process,
    where the GIL caps a batch at about a half of what two workers reach on two cores. Default:
    the CPU count, at most 4."""

    redis_url: str = ""
    """Redis shared by the replicas (``redis://host:port/db``): LLM circuit breakers, response
    caches, budget counters and rate-limit windows. Empty keeps them in this process."""
    llm_config_file: str = ""
    """Routing file in litellm's proxy format (``model_list``, ``router_settings``). Empty:
    deployments from the provider keys in the environment, then the bundled local model."""
    mcp_servers_file: str = ""
    """YAML file of the external MCP servers whose tools agents may call (transport, command
    or URL, headers with ``os.environ/`` references, allowed tools, timeouts, breaker; see
    ``ai_orchestration.tools``). Empty: no external tools."""
    llm_cache_ttl_seconds: float = Field(default=3600.0, ge=0, le=30 * 86400)
    """Lifetime of exact and semantic LLM cache entries; 0 turns the caches off."""
    llm_semantic_cache: bool = True
    """Answer single-turn prompts from the cache by embedding similarity too."""
    llm_semantic_threshold: float = Field(default=0.95, ge=0.5, le=1.0)
    """Cosine similarity a cached prompt needs to answer a new one."""
    llm_injection_policy: Literal["flag", "block"] = "flag"
    """What happens to caller text that looks like a prompt injection: flagged (a workflow
    hands the decision to a human), or refused with INVALID_ARGUMENT."""
    llm_injection_policies: dict[str, Literal["flag", "block"]] = Field(default_factory=dict)
    """Per-tenant overrides of ``llm_injection_policy``, as JSON: ``{"acme": "block"}``."""

    workflow_concurrency: int = Field(default=8, ge=1, le=1000)
    """Workflow runs this replica executes at once (the rest wait in the queue)."""
    workflow_lease_seconds: float = Field(default=10.0, ge=1.0, le=600.0)
    """How long a replica owns a run past its last heartbeat; a dead replica's runs are taken
    over by another after this long."""
    workflow_max_attempts: int = Field(default=3, ge=1, le=20)
    """Executions a run gets (replica crashes, internal errors) before it is dead-lettered."""
    workflow_default_timeout_seconds: float = Field(default=900.0, gt=0, le=86400.0)
    """Run timeout when StartRun sets none."""
    workflow_queue: Literal["auto", "database", "redis"] = "auto"
    """Where queued runs wait for a replica: ``database`` (the run table, claimed with
    ``SKIP LOCKED``), or ``redis`` (Redis Streams with a consumer group: pushed to idle
    replicas, no claim polling of the run table; needs ``redis_url``). ``auto``: ``redis`` when
    ``redis_url`` is set."""

    alert_watch_poll_seconds: float = Field(default=0.0, ge=0.0, le=3600.0)
    """How often a WatchAlerts stream reads the alert log when no wake-up came (the safety net
    under the bus's wake-ups); 0: 5 s when Redis carries the wake-ups between replicas, else
    1 s."""

    metrics_port: int = Field(default=0, ge=0, le=65535)
    """Port for the Prometheus ``/metrics`` endpoint on ``host``; 0 disables it."""
    mcp_port: int = Field(default=-1, ge=-1, le=65535)
    """Port of the MCP endpoint (Streamable HTTP at ``/mcp``: the service's tools for MCP
    clients, with the same tokens and roles as the gRPC API); -1 (the default) turns it off,
    0 picks a free one (logged at start-up)."""
    mcp_host: str = ""
    """Address the MCP endpoint binds; empty: the same as ``host``. Anything but loopback
    requires authentication to be configured, as for ``host``."""
    log_level: str = "INFO"
    """Root log level."""
    log_format: Literal["text", "json"] = "text"
    """``text``: one readable line per record. ``json``: one JSON object per line with time,
    level, logger, message, trace and span ids, correlation id, tenant and RPC."""
    log_library_level: str = "WARNING"
    """Level of the libraries' own loggers (litellm, httpx, httpcore, LiteLLM Router, ...):
    quiet by default, ``INFO`` or ``DEBUG`` to see every call they make."""
    access_log_sample_rate: float = Field(default=1.0, ge=0.0, le=1.0)
    """Share of successful RPCs that get an access line (method, code, duration, peer) on the
    ``ai_orchestration.access`` logger; failed RPCs always get one. 0 logs failures only."""

    @model_validator(mode="after")
    def _queue_has_its_redis(self) -> Settings:
        if self.workflow_queue == "redis" and not self.redis_url:
            raise ValueError("workflow_queue=redis needs redis_url (AIO_REDIS_URL)")
        return self

    @property
    def alert_poll_seconds(self) -> float:
        """The alert watchers' poll interval (``alert_watch_poll_seconds``, resolved)."""
        if self.alert_watch_poll_seconds:
            return self.alert_watch_poll_seconds
        return 5.0 if self.redis_url else 1.0

    @property
    def uses_stream_queue(self) -> bool:
        """Whether runs are queued on Redis Streams (see ``workflow_queue``)."""
        return self.workflow_queue == "redis" or (
            self.workflow_queue == "auto" and bool(self.redis_url)
        )

    @property
    def auth_configured(self) -> bool:
        """Whether any token verification key is configured."""
        return bool(self.auth_hs256_secret or self.auth_public_key_file or self.auth_jwks_file)

    def resolved_database_url(self, environ_database_url: str = "") -> str:
        """The database URL to use: explicit, then ``DATABASE_URL``, then embedded SQLite."""
        if self.database_url:
            return self.database_url
        if environ_database_url:
            return environ_database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'ai-orchestration.db').resolve()}"
