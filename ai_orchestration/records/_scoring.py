"""The records of lead scoring: model versions, the scores given to leads, their outcomes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final

from ai_orchestration._dataclasses import frozen_record
from ai_orchestration.records._json import JsonValue

__all__ = [
    "GLOBAL_OWNER",
    "MODEL_STATES",
    "NewScoringModel",
    "OutcomeRecord",
    "ScoreRecord",
    "ScoredOutcome",
    "StoredScoringModel",
]

GLOBAL_OWNER: Final[str] = "*"
"""Owner of the models shared by every tenant; no tenant id can be ``"*"``."""

MODEL_STATES: Final[tuple[str, ...]] = ("candidate", "published", "retired", "rejected")
"""The states a scoring model can be in."""


@dataclass(frozen=True, slots=True)
class NewScoringModel:
    """A trained model to store with :meth:`ScoringModelRepository.add`."""

    version: str
    """Version name, e.g. ``global-20261123-1a2b3c``; unique per owner."""
    state: str
    """One of :data:`MODEL_STATES`."""
    artifact: bytes
    """The serialised model (opaque bytes, can be around 1 MB)."""
    metrics: dict[str, JsonValue]
    """Evaluation metrics from training."""
    features: tuple[str, ...]
    """Names of the features the model reads, in its order."""
    trained_at: datetime
    """When training finished (aware)."""
    reason: str = ""
    """Why the model is in its state (e.g. why it was rejected)."""


@dataclass(frozen=True, slots=True)
class StoredScoringModel:
    """A stored scoring model version."""

    owner: str
    """The tenant that owns the model, or :data:`GLOBAL_OWNER`."""
    version: str
    """Version name; unique per owner."""
    state: str
    """One of :data:`MODEL_STATES`."""
    artifact: bytes
    """The serialised model."""
    metrics: dict[str, JsonValue]
    """Evaluation metrics from training."""
    features: tuple[str, ...]
    """Names of the features the model reads, in its order."""
    trained_at: datetime
    """When training finished (aware, UTC)."""
    reason: str
    """Why the model is in its state."""
    created_at: datetime
    """When the model was stored (aware, UTC)."""
    updated_at: datetime
    """When the model was stored or its state last set (aware, UTC)."""

    @property
    def is_global(self) -> bool:
        """Whether the model is shared by every tenant."""
        return self.owner == GLOBAL_OWNER


@frozen_record
class ScoreRecord:
    """One score given to one lead."""

    score_id: str
    """Unique id of this score within the tenant."""
    lead_id: str
    """The scored lead."""
    score: int
    """The score, 0 to 100."""
    grade: str
    """The grade, one letter (``"A"`` to ``"D"``)."""
    probability: float
    """Predicted conversion probability."""
    confidence: float
    """How much to trust the prediction, 0 to 1."""
    positive_factors: list[dict[str, JsonValue]]
    """Inputs that raised the score, most influential first."""
    negative_factors: list[dict[str, JsonValue]]
    """Inputs that lowered the score, most influential first."""
    model_version: str
    """Version of the model that produced the score."""
    experiment_arm: str
    """The experiment arm the lead was assigned to (may be empty)."""
    scored_at: datetime
    """When the score was computed (aware, UTC when read back)."""
    expires_at: datetime
    """When the score should be recomputed (aware, UTC when read back)."""
    input_digest: str
    """Digest of the inputs, to tell whether a lead changed since it was scored."""
    features: dict[str, JsonValue]
    """The lead's inputs as given (for audit, and later as training rows)."""


@dataclass(frozen=True, slots=True)
class ScoredOutcome:
    """A lead's latest score under one (model version, arm) next to whether it converted."""

    lead_id: str
    """The lead."""
    model_version: str
    """Model version that scored the lead."""
    experiment_arm: str
    """Experiment arm the lead was scored under."""
    probability: float
    """Probability of the lead's latest score under that version and arm."""
    converted: bool
    """Whether the lead converted."""


@dataclass(frozen=True, slots=True)
class OutcomeRecord:
    """Whether a lead converted, as last reported."""

    outcome_id: str
    """Id of the report (e.g. the CRM event that closed the lead)."""
    lead_id: str
    """The lead."""
    converted: bool
    """Whether the lead converted."""
    outcome_time: datetime
    """When the outcome happened (aware, UTC when read back)."""
    recorded_at: datetime
    """When the outcome was reported (aware, UTC when read back)."""
    features: dict[str, JsonValue] | None
    """Snapshot of the lead's inputs used for training, if one was taken."""
