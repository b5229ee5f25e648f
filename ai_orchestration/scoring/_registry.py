"""Which model scores a tenant's leads: the global bootstrap model, versions and A/B routing.

Model artifacts live in the database (``scoring_models``); each process keeps the few it serves
loaded. A tenant's *deployment* (champion, optional challenger, settings) is cached briefly, so a
change made through another replica is picked up within :attr:`ModelRegistry.refresh_seconds`;
changes made through this process apply at once.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

import numpy as np

from ai_orchestration import errors
from ai_orchestration.records import GLOBAL_OWNER, NewScoringModel, StoredScoringModel
from ai_orchestration.scoring._explain import CHALLENGER_ARM, CONTROL_ARM, experiment_arm
from ai_orchestration.scoring._features import FEATURES, to_matrix
from ai_orchestration.scoring._model import TrainedModel, train_model
from ai_orchestration.scoring._settings import ScoringSettings, ScoringSettingsStore
from ai_orchestration.scoring._synthetic import generate_leads
from ai_orchestration.storage import ScoringModelRepository

_log = logging.getLogger(__name__)

BOOTSTRAP_SEED: Final[int] = 20_261_123
"""Seed of the synthetic leads the global model is trained on (fixed: same model everywhere)."""
_LOADED_MODELS: Final[int] = 32


@dataclass(frozen=True, slots=True, eq=False)
class ServingModel:
    """A loaded model version, ready to score."""

    owner: str
    version: str
    model: TrainedModel
    base_value: float
    """TreeSHAP base value: the raw output for a lead the model knows nothing about."""
    base_probability: float
    """Calibrated probability at the base value."""
    artifact: bytes
    """The model as stored (:meth:`TrainedModel.to_bytes`): what a scoring worker loads."""

    @classmethod
    def load(cls, owner: str, version: str, model: TrainedModel, artifact: bytes) -> ServingModel:
        """Wraps a model, computing its base value once; ``artifact`` is the stored form it
        was read from (:meth:`TrainedModel.to_bytes`)."""
        _, _, contributions = model.predict(np.full((1, len(FEATURES)), np.nan))
        base = float(contributions[0, -1])
        probability = float(model.calibrator(np.array([base]))[0])
        return cls(owner, version, model, base, probability, artifact)


@dataclass(frozen=True, slots=True, eq=False)
class Deployment:
    """How one tenant's leads are scored right now."""

    settings: ScoringSettings
    champion: ServingModel
    challenger: ServingModel | None

    def route(self, lead_id: str) -> tuple[ServingModel, str]:
        """The model and experiment arm of a lead (deterministic in ``lead_id``)."""
        if self.challenger is None:
            return self.champion, CONTROL_ARM
        arm = experiment_arm(lead_id, self.settings.challenger_share)
        return (self.challenger if arm == CHALLENGER_ARM else self.champion), arm


@functools.lru_cache(maxsize=2)
def _bootstrap_artifact(rows: int, seed: int) -> bytes:
    # Deterministic in (rows, seed): cached so that servers started in one process (tests,
    # benchmarks) train it once.
    data = generate_leads(rows, seed=seed)
    model = train_model(to_matrix(data.leads), data.converted, data.created_days, seed=seed)
    return model.to_bytes()


def bootstrap_version(rows: int, seed: int) -> str:
    """Version name of the global model trained on ``rows`` synthetic leads."""
    return f"global-bootstrap-{rows}-{seed}"


def stored_metrics(model: TrainedModel) -> dict[str, float | int | None]:
    """The metrics kept with a stored version."""
    m = model.metrics
    return {
        "auc": m.auc,
        "brier": m.brier,
        "baseline_brier": m.baseline_brier,
        "conversion_rate": m.conversion_rate,
        "training_rows": m.training_rows,
        "calibration_rows": m.calibration_rows,
        "test_rows": m.test_rows,
        "best_iteration": m.best_iteration,
        "cv_auc": m.cv_auc,
    }


class ModelRegistry:
    """Loads, caches and routes model versions."""

    def __init__(
        self,
        *,
        models: ScoringModelRepository,
        settings: ScoringSettingsStore,
        refresh_seconds: float = 5.0,
    ) -> None:
        self.models = models
        self.settings = settings
        self.refresh_seconds = refresh_seconds
        self._loaded: OrderedDict[tuple[str, str], ServingModel] = OrderedDict()
        self._deployments: dict[str, tuple[float, Deployment]] = {}
        self._global: ServingModel | None = None

    async def bootstrap(self, *, rows: int, seed: int = BOOTSTRAP_SEED) -> ServingModel:
        """Makes sure a published global model exists, training it from the synthetic
        generator on first start; returns it loaded."""
        stored = await self.models.latest_global()
        if stored is None:
            started = time.perf_counter()
            artifact = await asyncio.to_thread(_bootstrap_artifact, rows, seed)
            model = TrainedModel.from_bytes(artifact)
            new = NewScoringModel(
                version=bootstrap_version(rows, seed),
                state="published",
                artifact=artifact,
                metrics=dict(stored_metrics(model)),
                features=model.metrics.features,
                trained_at=datetime.now(UTC),
            )
            try:
                stored = await self.models.add(GLOBAL_OWNER, new)
            except errors.ConflictError:  # another replica stored the same model first
                stored = await self.models.latest_global()
                assert stored is not None
            _log.info(
                "trained global model %s on %d synthetic leads in %.1f s (AUC %.3f)",
                stored.version,
                rows,
                time.perf_counter() - started,
                model.metrics.auc,
            )
        self._global = await self._load(stored)
        return self._global

    @property
    def global_model(self) -> ServingModel:
        """The published global model (after :meth:`bootstrap`)."""
        if self._global is None:
            raise errors.UnavailableError(
                "the scoring model is not loaded yet", reason="WARMING_UP"
            )
        return self._global

    async def _load(self, stored: StoredScoringModel) -> ServingModel:
        key = (stored.owner, stored.version)
        if (cached := self._loaded.get(key)) is not None:
            self._loaded.move_to_end(key)
            return cached
        model = await asyncio.to_thread(TrainedModel.from_bytes, stored.artifact)
        serving = await asyncio.to_thread(
            ServingModel.load, stored.owner, stored.version, model, stored.artifact
        )
        self._loaded[key] = serving
        while len(self._loaded) > _LOADED_MODELS:
            self._loaded.popitem(last=False)
        return serving

    async def load(self, tenant_id: str, version: str) -> ServingModel:
        """Loads a version visible to the tenant; NOT_FOUND otherwise."""
        stored = await self.models.get(tenant_id, version)
        if stored is None:
            raise errors.NotFoundError(
                f"no scoring model version {version!r}", reason="MODEL_NOT_FOUND"
            )
        return await self._load(stored)

    async def champion_of(self, tenant_id: str, settings: ScoringSettings) -> ServingModel:
        """The tenant's champion: its own published version, else the global model."""
        if settings.champion_version:
            return await self.load(tenant_id, settings.champion_version)
        return self.global_model

    async def deployment(self, tenant_id: str) -> Deployment:
        """The tenant's current deployment (briefly cached)."""
        now = time.monotonic()
        cached = self._deployments.get(tenant_id)
        if cached is not None and now - cached[0] < self.refresh_seconds:
            return cached[1]
        settings = await self.settings.get(tenant_id)
        champion = await self.champion_of(tenant_id, settings)
        challenger = None
        if settings.challenger_version and settings.challenger_share > 0.0:
            challenger = await self.load(tenant_id, settings.challenger_version)
        deployment = Deployment(settings=settings, champion=champion, challenger=challenger)
        self._deployments[tenant_id] = (now, deployment)
        return deployment

    def invalidate(self, tenant_id: str) -> None:
        """Forget the cached deployment of a tenant after changing it."""
        self._deployments.pop(tenant_id, None)
