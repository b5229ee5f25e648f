"""Storage: SQLAlchemy models, repositories and Alembic migrations on SQLite or PostgreSQL.

Every repository method takes the tenant as its first argument and filters on it; there is no
way to read another tenant's rows through this package.
"""

from __future__ import annotations

from ai_orchestration.storage._common import Clock, JsonValue, utc_now
from ai_orchestration.storage._engine import Backend, Database
from ai_orchestration.storage._idempotency import (
    IdempotencyRecord,
    IdempotencyRepository,
    compute_request_digest,
)
from ai_orchestration.storage._models import Base
from ai_orchestration.storage._scoring import (
    GLOBAL_OWNER,
    MODEL_STATES,
    InvalidPageTokenError,
    LeadOutcomeRepository,
    LeadScoreRepository,
    NewScoringModel,
    OutcomeRecord,
    ScoredOutcome,
    ScoreRecord,
    ScoringModelRepository,
    StoredScoringModel,
)
from ai_orchestration.storage._settings import TenantSettingsRepository
from ai_orchestration.storage._types import UTCDateTime
from ai_orchestration.storage._urls import normalize_database_url

__all__ = [
    "GLOBAL_OWNER",
    "MODEL_STATES",
    "Backend",
    "Base",
    "Clock",
    "Database",
    "IdempotencyRecord",
    "IdempotencyRepository",
    "InvalidPageTokenError",
    "JsonValue",
    "LeadOutcomeRepository",
    "LeadScoreRepository",
    "NewScoringModel",
    "OutcomeRecord",
    "ScoreRecord",
    "ScoredOutcome",
    "ScoringModelRepository",
    "StoredScoringModel",
    "TenantSettingsRepository",
    "UTCDateTime",
    "compute_request_digest",
    "normalize_database_url",
    "utc_now",
]
