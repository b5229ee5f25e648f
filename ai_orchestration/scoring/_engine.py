"""The scoring capability as one object: what the gRPC servicer calls.

Ties the model registry, the scorer, the trainer and the stores together, and holds the few
operations that are not scoring or training: outcomes, model listings with live performance per
experiment arm, and settings changes.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass, replace
from datetime import datetime

import numpy as np
from sklearn.metrics import roc_auc_score

from ai_orchestration import errors
from ai_orchestration.records import OutcomeRecord, ScoredOutcome, StoredScoringModel
from ai_orchestration.scoring._explain import CHALLENGER_ARM, CONTROL_ARM
from ai_orchestration.scoring._features import LeadFeatures, features_to_json
from ai_orchestration.scoring._registry import ModelRegistry
from ai_orchestration.scoring._scorer import LeadScorer
from ai_orchestration.scoring._settings import ScoringSettings, ScoringSettingsStore
from ai_orchestration.scoring._training import ModelTrainer
from ai_orchestration.storage import (
    Clock,
    Database,
    LeadOutcomeRepository,
    LeadScoreRepository,
    ScoringModelRepository,
    TenantSettingsRepository,
    utc_now,
)


@dataclass(frozen=True, slots=True)
class ArmStats:
    """Live performance of one model version in one experiment arm, from recorded outcomes."""

    arm: str
    scored_leads: int
    outcomes: int
    conversion_rate: float
    auc: float
    """AUC of the scores against the outcomes; 0 until both outcomes have been seen."""


@dataclass(frozen=True, slots=True)
class ModelView:
    """A model version as one tenant sees it."""

    stored: StoredScoringModel
    state: str
    """The stored state for the tenant's own versions; for a global one, ``published`` while it
    serves the tenant and ``retired`` once a tenant version replaced it."""
    traffic_share: float
    arms: tuple[ArmStats, ...]


def _arm_stats(arm: str, scored: int, outcomes: list[ScoredOutcome]) -> ArmStats:
    labels = np.array([o.converted for o in outcomes], dtype=bool)
    conversion = float(labels.mean()) if len(labels) else 0.0
    auc = 0.0
    if len(np.unique(labels)) == 2:
        auc = float(roc_auc_score(labels, [o.probability for o in outcomes]))
    return ArmStats(arm, scored, len(outcomes), conversion, auc)


class ScoringEngine:
    """Everything ScoringService does, without gRPC."""

    def __init__(
        self,
        *,
        database: Database,
        bootstrap_rows: int,
        clock: Clock = utc_now,
        refresh_seconds: float = 5.0,
    ) -> None:
        self.models = ScoringModelRepository(database=database, clock=clock)
        self.scores = LeadScoreRepository(database=database)
        self.outcomes = LeadOutcomeRepository(database=database)
        self.settings = ScoringSettingsStore(
            TenantSettingsRepository(database=database, clock=clock)
        )
        self.registry = ModelRegistry(
            models=self.models, settings=self.settings, refresh_seconds=refresh_seconds
        )
        self.scorer = LeadScorer(registry=self.registry, scores=self.scores, clock=clock)
        self.trainer = ModelTrainer(
            registry=self.registry, outcomes=self.outcomes, global_rows=bootstrap_rows, clock=clock
        )
        self.bootstrap_rows = bootstrap_rows
        self.clock = clock

    async def start(self) -> None:
        """Loads (training on first start) the global model."""
        await self.registry.bootstrap(rows=self.bootstrap_rows)

    async def record_outcome(
        self,
        tenant_id: str,
        lead_id: str,
        *,
        converted: bool,
        outcome_time: datetime | None,
        lead: LeadFeatures | None,
    ) -> OutcomeRecord:
        """Stores what became of a lead, with its inputs for training: the ``lead`` given, else
        the inputs of its latest score (an outcome without either is kept but not trained on)."""
        features = (
            features_to_json(lead)
            if lead is not None
            else await self.scores.latest_features(tenant_id, lead_id)
        )
        now = self.clock()
        record = OutcomeRecord(
            outcome_id=uuid.uuid4().hex,
            lead_id=lead_id,
            converted=converted,
            outcome_time=outcome_time or now,
            recorded_at=now,
            features=features,  # type: ignore[arg-type]
        )
        return await self.outcomes.record(tenant_id, record)

    async def list_models(
        self, tenant_id: str, *, page_size: int, page_token: str
    ) -> tuple[list[ModelView], str]:
        """Versions visible to the tenant, newest first, with live performance per arm."""
        page, next_token = await self.models.list_visible(
            tenant_id, page_size=page_size, page_token=page_token
        )
        return await self.views(tenant_id, page), next_token

    async def views(self, tenant_id: str, models: list[StoredScoringModel]) -> list[ModelView]:
        """How the tenant sees ``models``: state, traffic share, live performance per arm."""
        settings = await self.settings.get(tenant_id)
        counts = await self.scores.arm_counts(tenant_id)
        by_key: dict[tuple[str, str], list[ScoredOutcome]] = defaultdict(list)
        for outcome in await self.scores.scored_outcomes(tenant_id):
            by_key[outcome.model_version, outcome.experiment_arm].append(outcome)
        views = []
        for stored in models:
            arms = tuple(
                _arm_stats(arm, counts.get((stored.version, arm), 0), by_key[stored.version, arm])
                for arm in (CONTROL_ARM, CHALLENGER_ARM)
                if (stored.version, arm) in counts
            )
            state, share = self._state_for(stored, settings)
            views.append(ModelView(stored, state, share, arms))
        return views

    def _state_for(
        self, stored: StoredScoringModel, settings: ScoringSettings
    ) -> tuple[str, float]:
        champion = settings.champion_version or self.registry.global_model.version
        challenger_share = settings.challenger_share if settings.challenger_version else 0.0
        if stored.version == settings.challenger_version:
            return "published", challenger_share
        if stored.version == champion:
            return "published", 1.0 - challenger_share
        if stored.is_global:
            return "retired", 0.0
        return stored.state, 0.0

    async def update_settings(self, tenant_id: str, new: ScoringSettings) -> ScoringSettings:
        """Replaces the tenant's settings after checking the challenger; the champion is not
        changed here (training publishes it)."""
        current = await self.settings.get(tenant_id)
        new = replace(new, champion_version=current.champion_version)
        if new.challenger_version and new.challenger_version != current.challenger_version:
            stored = await self.models.get(tenant_id, new.challenger_version)
            if stored is None or stored.state == "rejected":
                why = "does not exist" if stored is None else "was rejected by the training gate"
                raise errors.InvalidArgumentError(
                    "invalid scoring settings",
                    [
                        errors.FieldViolation(
                            "settings.challenger_version",
                            f"model version {new.challenger_version!r} {why}; pick one from "
                            "ListScoringModels",
                            "challenger_exists",
                        )
                    ],
                )
        if new.challenger_version and new.challenger_version == (
            current.champion_version or self.registry.global_model.version
        ):
            raise errors.InvalidArgumentError(
                "invalid scoring settings",
                [
                    errors.FieldViolation(
                        "settings.challenger_version",
                        f"{new.challenger_version} is already the champion",
                        "challenger_not_champion",
                    )
                ],
            )
        if current.challenger_version and current.challenger_version != new.challenger_version:
            await self.models.set_state(
                tenant_id, current.challenger_version, "retired", reason="experiment ended"
            )
        if new.challenger_version:
            await self.models.set_state(tenant_id, new.challenger_version, "published")
        await self.settings.put(tenant_id, new)
        self.registry.invalidate(tenant_id)
        return new
