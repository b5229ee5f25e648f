"""ORM models: the schema as the code sees it.

Migrations in ``migrations/versions`` are the source of truth for the database; a test compares
this metadata with a migrated database so the two cannot drift. Every table leads with
``tenant_id`` so that every index a query uses starts with the tenant.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from ai_orchestration.records import JsonValue
from ai_orchestration.storage._types import PortableJSON, UTCDateTime

__all__ = [
    "Base",
    "IdempotencyRecordModel",
    "LeadOutcomeModel",
    "LeadScoreModel",
    "LlmBudgetAlertModel",
    "LlmBudgetModel",
    "LlmCallModel",
    "ScoringModelModel",
    "TenantSettingModel",
]

# Deterministic constraint names let later migrations drop or alter constraints by name on both
# backends (SQLite otherwise leaves them unnamed).
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base of every storage model; its metadata is what migrations must match."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class IdempotencyRecordModel(Base):
    """The stored outcome of one request sent with a ``request_id``."""

    __tablename__ = "idempotency_records"
    __table_args__ = (
        PrimaryKeyConstraint("tenant_id", "method", "request_id"),
        Index("ix_idempotency_records_expires_at", "expires_at"),
    )

    tenant_id: Mapped[str] = mapped_column(String())
    method: Mapped[str] = mapped_column(String())
    request_id: Mapped[str] = mapped_column(String())
    request_digest: Mapped[str] = mapped_column(String(64))
    response: Mapped[bytes] = mapped_column(LargeBinary())
    resource_name: Mapped[str | None] = mapped_column(String(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())


class TenantSettingModel(Base):
    """One JSON setting of one tenant."""

    __tablename__ = "tenant_settings"
    __table_args__ = (PrimaryKeyConstraint("tenant_id", "key"),)

    tenant_id: Mapped[str] = mapped_column(String())
    key: Mapped[str] = mapped_column(String())
    # JSON null is refused by the repository (delete the key instead), so the column is NOT NULL.
    value: Mapped[JsonValue] = mapped_column(PortableJSON, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ScoringModelModel(Base):
    """One version of a trained lead-scoring model, owned by a tenant or shared by all.

    ``owner`` plays the part of ``tenant_id``: a tenant id, or ``"*"`` for a global model.
    """

    __tablename__ = "scoring_models"
    __table_args__ = (
        PrimaryKeyConstraint("owner", "version"),
        Index("ix_scoring_models_owner_trained_at", "owner", "trained_at"),
    )

    owner: Mapped[str] = mapped_column(String())
    version: Mapped[str] = mapped_column(String())
    state: Mapped[str] = mapped_column(String())
    artifact: Mapped[bytes] = mapped_column(LargeBinary())
    metrics: Mapped[dict[str, JsonValue]] = mapped_column(PortableJSON, nullable=False)
    features: Mapped[list[str]] = mapped_column(PortableJSON, nullable=False)
    trained_at: Mapped[datetime] = mapped_column(UTCDateTime())
    reason: Mapped[str] = mapped_column(String())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class LeadScoreModel(Base):
    """One score given to one lead: the result, the model that produced it and its inputs."""

    __tablename__ = "lead_scores"
    __table_args__ = (
        PrimaryKeyConstraint("tenant_id", "score_id"),
        Index(
            "ix_lead_scores_tenant_id_lead_id_scored_at_score_id",
            "tenant_id",
            "lead_id",
            "scored_at",
            "score_id",
        ),
    )

    tenant_id: Mapped[str] = mapped_column(String())
    score_id: Mapped[str] = mapped_column(String())
    lead_id: Mapped[str] = mapped_column(String())
    score: Mapped[int] = mapped_column(Integer())
    grade: Mapped[str] = mapped_column(String(1))
    probability: Mapped[float] = mapped_column(Float())
    confidence: Mapped[float] = mapped_column(Float())
    positive_factors: Mapped[list[dict[str, JsonValue]]] = mapped_column(
        PortableJSON, nullable=False
    )
    negative_factors: Mapped[list[dict[str, JsonValue]]] = mapped_column(
        PortableJSON, nullable=False
    )
    model_version: Mapped[str] = mapped_column(String())
    experiment_arm: Mapped[str] = mapped_column(String())
    scored_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    input_digest: Mapped[str] = mapped_column(String())
    features: Mapped[dict[str, JsonValue]] = mapped_column(PortableJSON, nullable=False)


class LeadOutcomeModel(Base):
    """Whether a lead converted: one row per lead, a later report replacing the earlier one."""

    __tablename__ = "lead_outcomes"
    __table_args__ = (PrimaryKeyConstraint("tenant_id", "lead_id"),)

    tenant_id: Mapped[str] = mapped_column(String())
    lead_id: Mapped[str] = mapped_column(String())
    outcome_id: Mapped[str] = mapped_column(String())
    converted: Mapped[bool] = mapped_column(Boolean())
    outcome_time: Mapped[datetime] = mapped_column(UTCDateTime())
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # SQL NULL when no snapshot was taken (the repository never stores a JSON null here).
    features: Mapped[dict[str, JsonValue] | None] = mapped_column(PortableJSON, nullable=True)


class LlmCallModel(Base):
    """One LLM call made for a tenant: who it was for, which model answered, tokens and cost."""

    __tablename__ = "llm_calls"
    __table_args__ = (
        PrimaryKeyConstraint("tenant_id", "call_id"),
        Index("ix_llm_calls_tenant_id_called_at", "tenant_id", "called_at"),
    )

    tenant_id: Mapped[str] = mapped_column(String())
    call_id: Mapped[str] = mapped_column(String())
    called_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # The UTC day as YYYY-MM-DD, stored so grouping by day is the same SQL on both backends.
    day: Mapped[str] = mapped_column(String(10))
    model: Mapped[str] = mapped_column(String())
    deployment: Mapped[str] = mapped_column(String())
    run_id: Mapped[str] = mapped_column(String())
    step: Mapped[str] = mapped_column(String())
    template: Mapped[str] = mapped_column(String())
    template_version: Mapped[int] = mapped_column(Integer())
    prompt_tokens: Mapped[int] = mapped_column(Integer())
    completion_tokens: Mapped[int] = mapped_column(Integer())
    cost_usd: Mapped[float] = mapped_column(Float())
    cached: Mapped[bool] = mapped_column(Boolean())
    degraded: Mapped[bool] = mapped_column(Boolean())
    truncated: Mapped[bool] = mapped_column(Boolean())


class LlmBudgetModel(Base):
    """A tenant's monthly LLM budget and per-minute limits (0 = no limit)."""

    __tablename__ = "llm_budgets"
    __table_args__ = (PrimaryKeyConstraint("tenant_id"),)

    tenant_id: Mapped[str] = mapped_column(String())
    monthly_limit_usd: Mapped[float] = mapped_column(Float())
    monthly_token_limit: Mapped[int] = mapped_column(BigInteger())
    soft_threshold: Mapped[float] = mapped_column(Float())
    requests_per_minute: Mapped[int] = mapped_column(Integer())
    tokens_per_minute: Mapped[int] = mapped_column(BigInteger())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class LlmBudgetAlertModel(Base):
    """The soft-threshold alert of one tenant-month; the key makes it happen once a month."""

    __tablename__ = "llm_budget_alerts"
    __table_args__ = (PrimaryKeyConstraint("tenant_id", "month"),)

    tenant_id: Mapped[str] = mapped_column(String())
    # YYYY-MM of the UTC month.
    month: Mapped[str] = mapped_column(String(7))
    cost_usd: Mapped[float] = mapped_column(Float())
    tokens: Mapped[int] = mapped_column(BigInteger())
    monthly_limit_usd: Mapped[float] = mapped_column(Float())
    monthly_token_limit: Mapped[int] = mapped_column(BigInteger())
    raised_at: Mapped[datetime] = mapped_column(UTCDateTime())


class PromptTemplateModel(Base):
    """One immutable version of a prompt template, global (owner ``"*"``) or a tenant's own.

    ``owner`` plays the part of ``tenant_id``, as in ``scoring_models``.
    """

    __tablename__ = "prompt_templates"
    __table_args__ = (PrimaryKeyConstraint("owner", "name", "version"),)

    owner: Mapped[str] = mapped_column(String())
    name: Mapped[str] = mapped_column(String())
    version: Mapped[int] = mapped_column(Integer())
    system_text: Mapped[str] = mapped_column(String())
    user_text: Mapped[str] = mapped_column(String())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class PromptExperimentModel(Base):
    """The A/B split of one template name between its versions, for a tenant or globally."""

    __tablename__ = "prompt_template_experiments"
    __table_args__ = (PrimaryKeyConstraint("owner", "name"),)

    owner: Mapped[str] = mapped_column(String())
    name: Mapped[str] = mapped_column(String())
    # [{"version": int, "share": float}, ...] in ascending version order.
    arms: Mapped[list[dict[str, JsonValue]]] = mapped_column(PortableJSON, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class WorkflowRunModel(Base):
    """One workflow run: its request, where it is in its lifecycle, its lease and its results.

    Keyed by ``run_id`` alone because workers address runs by id; every tenant-facing query
    still filters on ``tenant_id``. ``(tenant_id, request_id)`` is unique so StartRun is
    idempotent.
    """

    __tablename__ = "workflow_runs"
    __table_args__ = (
        PrimaryKeyConstraint("run_id"),
        UniqueConstraint("tenant_id", "request_id"),
        Index("ix_workflow_runs_tenant_id_created_at_run_id", "tenant_id", "created_at", "run_id"),
        Index(
            "ix_workflow_runs_tenant_id_workflow_created_at_run_id",
            "tenant_id",
            "workflow",
            "created_at",
            "run_id",
        ),
        Index("ix_workflow_runs_state_priority_created_at", "state", "priority", "created_at"),
        Index("ix_workflow_runs_state_lease_expires_at", "state", "lease_expires_at"),
        Index("ix_workflow_runs_state_tenant_id", "state", "tenant_id"),
    )

    run_id: Mapped[str] = mapped_column(String())
    tenant_id: Mapped[str] = mapped_column(String())
    workflow: Mapped[str] = mapped_column(String())
    workflow_version: Mapped[str] = mapped_column(String())
    # A RunState value.
    state: Mapped[str] = mapped_column(String())
    priority: Mapped[int] = mapped_column(Integer())
    request_id: Mapped[str] = mapped_column(String())
    request_digest: Mapped[str] = mapped_column(String(64))
    labels: Mapped[dict[str, JsonValue]] = mapped_column(PortableJSON, nullable=False)
    input: Mapped[dict[str, JsonValue]] = mapped_column(PortableJSON, nullable=False)
    timeout_seconds: Mapped[float] = mapped_column(Float())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_sequence: Mapped[int] = mapped_column(BigInteger())
    attempts: Mapped[int] = mapped_column(Integer())
    # The JSON documents below are SQL NULL when absent (never a JSON null).
    output: Mapped[dict[str, JsonValue] | None] = mapped_column(PortableJSON, nullable=True)
    error: Mapped[dict[str, JsonValue] | None] = mapped_column(PortableJSON, nullable=True)
    pending_interrupt: Mapped[dict[str, JsonValue] | None] = mapped_column(
        PortableJSON, nullable=True
    )
    resume: Mapped[dict[str, JsonValue] | None] = mapped_column(PortableJSON, nullable=True)
    prompt_tokens: Mapped[int] = mapped_column(BigInteger())
    completion_tokens: Mapped[int] = mapped_column(BigInteger())
    cost_usd: Mapped[float] = mapped_column(Float())
    cancel_requested: Mapped[bool] = mapped_column(Boolean())
    # CancelRun's reason, set when CancelRun flags or cancels the run; "" otherwise.
    cancel_reason: Mapped[str] = mapped_column(String(), server_default="")
    # The W3C traceparent of the call that started the run ("" when it was not traced).
    trace_parent: Mapped[str] = mapped_column(String(), server_default="")
    # "" when no worker holds the run.
    lease_owner: Mapped[str] = mapped_column(String())
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class WorkflowRunEventModel(Base):
    """One entry of a run's event log; ``sequence`` runs 1, 2, ... per run without gaps."""

    __tablename__ = "workflow_run_events"
    __table_args__ = (PrimaryKeyConstraint("run_id", "sequence"),)

    run_id: Mapped[str] = mapped_column(String())
    sequence: Mapped[int] = mapped_column(BigInteger())
    # An EventKind value.
    kind: Mapped[str] = mapped_column(String())
    payload: Mapped[dict[str, JsonValue]] = mapped_column(PortableJSON, nullable=False)
    event_time: Mapped[datetime] = mapped_column(UTCDateTime())


class WorkflowDeliveryModel(Base):
    """The side-effect ledger: one row per message handed to the CRM's sending side.

    The primary key makes a delivery happen once per tenant and idempotency key.
    """

    __tablename__ = "workflow_deliveries"
    __table_args__ = (
        PrimaryKeyConstraint("tenant_id", "idempotency_key"),
        Index("ix_workflow_deliveries_tenant_id_run_id", "tenant_id", "run_id"),
    )

    tenant_id: Mapped[str] = mapped_column(String())
    idempotency_key: Mapped[str] = mapped_column(String())
    run_id: Mapped[str] = mapped_column(String())
    channel: Mapped[str] = mapped_column(String())
    recipient: Mapped[dict[str, JsonValue]] = mapped_column(PortableJSON, nullable=False)
    draft: Mapped[dict[str, JsonValue]] = mapped_column(PortableJSON, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
