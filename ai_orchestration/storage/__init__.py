"""Storage: SQLAlchemy models, repositories and Alembic migrations on SQLite or PostgreSQL.

Every repository method takes the tenant as its first argument and filters on it; there is no
way to read another tenant's rows through this package. Repositories hand out the domain's
records (:mod:`ai_orchestration.records`, :mod:`ai_orchestration.insights`), never a row. The
hot write paths are stated once against one write interface with a backend per database
(``_writes``): a SQLite file's dedicated connection, or SQLAlchemy's engine.
"""

from __future__ import annotations

from ai_orchestration.records import JsonValue
from ai_orchestration.storage._alerts import AlertRepository
from ai_orchestration.storage._common import Clock, utc_now
from ai_orchestration.storage._customer_insights import CustomerInsightRepository, customer_digest
from ai_orchestration.storage._deliveries import DeliveryLedger, StoredDelivery
from ai_orchestration.storage._engine import Backend, Database
from ai_orchestration.storage._idempotency import (
    IdempotencyRecord,
    IdempotencyRepository,
    compute_request_digest,
)
from ai_orchestration.storage._interactions import InteractionRepository, RetrievalHit
from ai_orchestration.storage._models import Base
from ai_orchestration.storage._pages import InvalidPageTokenError
from ai_orchestration.storage._runs import (
    CREATED_FROM,
    MAX_PRIORITY,
    Claimant,
    Claimed,
    Created,
    NamedClaim,
    RunChange,
    RunRepository,
)
from ai_orchestration.storage._scoring import (
    EncodedScoreRows,
    LeadOutcomeRepository,
    LeadScoreRepository,
    ScoringModelRepository,
    encode_score_rows,
)
from ai_orchestration.storage._settings import TenantSettingsRepository
from ai_orchestration.storage._sqlite_inline import connect_inline
from ai_orchestration.storage._templates import (
    PromptTemplateRepository,
    StoredPromptExperiment,
    StoredPromptTemplate,
)
from ai_orchestration.storage._types import UTCDateTime
from ai_orchestration.storage._urls import normalize_database_url, sqlite_file_path
from ai_orchestration.storage._usage import (
    DEFAULT_SOFT_THRESHOLD,
    USAGE_DIMENSIONS,
    BudgetAlertRecord,
    BudgetLimits,
    NewLlmCall,
    StoredBudget,
    UsageDimension,
    UsageGroup,
    UsagePage,
    UsageRepository,
    UsageTotals,
)
from ai_orchestration.storage._vector_cache import CustomerVectors

__all__ = [
    "CREATED_FROM",
    "DEFAULT_SOFT_THRESHOLD",
    "MAX_PRIORITY",
    "USAGE_DIMENSIONS",
    "AlertRepository",
    "Backend",
    "Base",
    "BudgetAlertRecord",
    "BudgetLimits",
    "Claimant",
    "Claimed",
    "Clock",
    "Created",
    "CustomerInsightRepository",
    "CustomerVectors",
    "Database",
    "DeliveryLedger",
    "EncodedScoreRows",
    "IdempotencyRecord",
    "IdempotencyRepository",
    "InteractionRepository",
    "InvalidPageTokenError",
    "JsonValue",
    "LeadOutcomeRepository",
    "LeadScoreRepository",
    "NamedClaim",
    "NewLlmCall",
    "PromptTemplateRepository",
    "RetrievalHit",
    "RunChange",
    "RunRepository",
    "ScoringModelRepository",
    "StoredBudget",
    "StoredDelivery",
    "StoredPromptExperiment",
    "StoredPromptTemplate",
    "TenantSettingsRepository",
    "UTCDateTime",
    "UsageDimension",
    "UsageGroup",
    "UsagePage",
    "UsageRepository",
    "UsageTotals",
    "compute_request_digest",
    "connect_inline",
    "customer_digest",
    "encode_score_rows",
    "normalize_database_url",
    "sqlite_file_path",
    "utc_now",
]
