"""Retraining a tenant's model on its recorded outcomes, and the publication gate.

Training data is the tenant's outcomes with the lead inputs captured when they were recorded
(or at the lead's last score). While the tenant has fewer than :data:`MIN_TENANT_LEADS` leads
with outcomes or fewer than :data:`MIN_TENANT_CONVERSIONS` conversions (the thresholds
Salesforce Einstein uses), its rows are combined with the global model's synthetic data; the
tenant's rows are the newest, so they dominate the held-out test set.

The gate: the new model and the tenant's current model are both scored on the same held-out
rows (the newest 20%); the new one is published only if its AUC is at least the current one's.
Otherwise it is stored as REJECTED with the reason, and the current one keeps serving.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Final

import numpy as np
import numpy.typing as npt

from ai_orchestration import errors
from ai_orchestration.records import NewScoringModel, OutcomeRecord, StoredScoringModel
from ai_orchestration.scoring._features import features_from_json, to_matrix
from ai_orchestration.scoring._model import (
    TrainedModel,
    TrainingStep,
    auc_of,
    time_split,
    train_model,
)
from ai_orchestration.scoring._registry import BOOTSTRAP_SEED, ModelRegistry, stored_metrics
from ai_orchestration.scoring._settings import ScoringSettings
from ai_orchestration.scoring._synthetic import START, generate_leads
from ai_orchestration.storage import Clock, LeadOutcomeRepository, utc_now

MIN_TENANT_LEADS: Final[int] = 1000
"""Below this many leads with outcomes, the tenant's rows are combined with the global data."""
MIN_TENANT_CONVERSIONS: Final[int] = 120
"""Below this many conversions, the tenant's rows are combined with the global data."""
MIN_OUTCOMES: Final[int] = 50
"""Fewest outcomes (with lead inputs, both kinds present) a training run accepts."""
CV_FOLDS: Final[int] = 3
"""Rolling-origin cross-validation folds reported while training."""


@dataclass(frozen=True, slots=True)
class Loading:
    """Progress: the training rows are loaded."""

    tenant_rows: int
    conversions: int
    global_rows: int
    message: str


@dataclass(frozen=True, slots=True)
class TrainingResult:
    """The end of a training run."""

    model: StoredScoringModel
    published: bool
    challenger: bool
    reason: str
    previous_version: str
    previous_auc: float


TrainingEvent = Loading | TrainingStep | TrainingResult


@dataclass(frozen=True, slots=True)
class _Data:
    x: npt.NDArray[np.float64]
    y: npt.NDArray[np.bool_]
    days: npt.NDArray[np.float64]


def _days_since_start(record: OutcomeRecord) -> float:
    features = features_from_json(record.features or {})
    when = features.create_time or record.outcome_time
    return (when.astimezone(UTC) - START).total_seconds() / 86_400.0


def _tenant_data(outcomes: list[OutcomeRecord]) -> _Data:
    usable = [o for o in outcomes if o.features is not None]
    leads = [features_from_json(o.features or {}) for o in usable]
    return _Data(
        x=to_matrix(leads),
        y=np.array([o.converted for o in usable], dtype=bool),
        days=np.array([_days_since_start(o) for o in usable], dtype=np.float64),
    )


def _global_data(rows: int) -> _Data:
    data = generate_leads(rows, seed=BOOTSTRAP_SEED)
    return _Data(x=to_matrix(data.leads), y=data.converted, days=data.created_days)


def _version(now: datetime) -> str:
    return f"v{now:%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"


class ModelTrainer:
    """Runs training for tenants, one run per tenant at a time."""

    def __init__(
        self,
        *,
        registry: ModelRegistry,
        outcomes: LeadOutcomeRepository,
        global_rows: int,
        clock: Clock = utc_now,
    ) -> None:
        self.registry = registry
        self.outcomes = outcomes
        self.global_rows = global_rows
        self.clock = clock
        self._running: set[str] = set()

    async def train(
        self, tenant_id: str, *, challenger_share: float = 0.0, seed: int = 1
    ) -> AsyncIterator[TrainingEvent]:
        """Trains, gates and (maybe) publishes a new version, yielding progress then the result.

        Raises FAILED_PRECONDITION with too few outcomes and ABORTED while another run of the
        same tenant is in progress.
        """
        if tenant_id in self._running:
            raise errors.ConflictError(
                "a training run is already in progress for this tenant; wait for it to finish",
                reason="TRAINING_IN_PROGRESS",
            )
        self._running.add(tenant_id)
        try:
            async for event in self._train(tenant_id, challenger_share, seed):
                yield event
        finally:
            self._running.discard(tenant_id)

    async def _load(self, tenant_id: str) -> tuple[_Data, Loading]:
        tenant = _tenant_data(await self.outcomes.list_all(tenant_id))
        rows, conversions = len(tenant.y), int(tenant.y.sum())
        if rows < MIN_OUTCOMES or conversions in {0, rows}:
            raise errors.FailedPreconditionError(
                f"training needs at least {MIN_OUTCOMES} recorded outcomes with lead data, both "
                f"converted and disqualified; the tenant has {rows} ({conversions} converted). "
                "Record outcomes with RecordLeadOutcome (score the lead first or pass `lead`).",
                reason="NOT_ENOUGH_OUTCOMES",
            )
        if rows >= MIN_TENANT_LEADS and conversions >= MIN_TENANT_CONVERSIONS:
            message = f"training on the tenant's {rows} outcomes ({conversions} converted)"
            return tenant, Loading(rows, conversions, 0, message)
        extra = await asyncio.to_thread(_global_data, self.global_rows)
        combined = _Data(
            x=np.vstack([extra.x, tenant.x]),
            y=np.concatenate([extra.y, tenant.y]),
            days=np.concatenate([extra.days, tenant.days]),
        )
        message = (
            f"the tenant's {rows} outcomes ({conversions} converted) are below the minimum of "
            f"{MIN_TENANT_LEADS} leads and {MIN_TENANT_CONVERSIONS} conversions: combined with "
            f"{len(extra.y)} rows of the global model's data"
        )
        return combined, Loading(rows, conversions, len(extra.y), message)

    async def _fit(self, data: _Data, seed: int) -> AsyncIterator[TrainingStep | TrainedModel]:
        loop = asyncio.get_running_loop()
        steps: asyncio.Queue[TrainingStep] = asyncio.Queue()

        def report(step: TrainingStep) -> None:
            loop.call_soon_threadsafe(steps.put_nowait, step)

        fitting = asyncio.ensure_future(
            asyncio.to_thread(
                train_model,
                data.x,
                data.y,
                data.days,
                seed=seed,
                trained_at=self.clock(),
                folds=CV_FOLDS,
                progress=report,
            )
        )
        try:
            while not fitting.done() or not steps.empty():
                getter = asyncio.ensure_future(steps.get())
                await asyncio.wait({getter, fitting}, return_when=asyncio.FIRST_COMPLETED)
                if getter.done():
                    yield getter.result()
                else:
                    getter.cancel()
            yield fitting.result()
        finally:
            fitting.cancel()

    async def _train(
        self, tenant_id: str, challenger_share: float, seed: int
    ) -> AsyncIterator[TrainingEvent]:
        data, loading = await self._load(tenant_id)
        yield loading
        model: TrainedModel | None = None
        try:
            async for item in self._fit(data, seed):
                if isinstance(item, TrainedModel):
                    model = item
                else:
                    yield item
        except ValueError as error:
            raise errors.FailedPreconditionError(
                f"cannot train on these outcomes: {error}", reason="UNTRAINABLE_OUTCOMES"
            ) from error
        assert model is not None
        yield await self._publish(tenant_id, data, model, challenger_share)

    async def _publish(
        self, tenant_id: str, data: _Data, model: TrainedModel, challenger_share: float
    ) -> TrainingResult:
        registry = self.registry
        settings = await registry.settings.get(tenant_id)
        current = await registry.champion_of(tenant_id, settings)
        test = time_split(data.days).test
        current_auc = await asyncio.to_thread(auc_of, current.model, data.x[test], data.y[test])
        new_auc = model.metrics.auc
        published = new_auc >= current_auc
        compared = f"on the same {len(test)} most recent leads"
        if published:
            reason = (
                f"held-out AUC {new_auc:.4f} >= {current_auc:.4f} of {current.version} {compared}"
            )
        else:
            reason = (
                f"not published: held-out AUC {new_auc:.4f} < {current_auc:.4f} of the current "
                f"version {current.version} {compared}; {current.version} keeps serving"
            )
        stored = await registry.models.add(
            tenant_id,
            NewScoringModel(
                version=_version(model.metrics.trained_at),
                state="published" if published else "rejected",
                artifact=model.to_bytes(),
                metrics=dict(stored_metrics(model)),
                features=model.metrics.features,
                trained_at=model.metrics.trained_at,
                reason=reason,
            ),
        )
        challenger = published and challenger_share > 0.0
        if published:
            await self._route(tenant_id, settings, stored.version, challenger_share)
        return TrainingResult(stored, published, challenger, reason, current.version, current_auc)

    async def _route(
        self, tenant_id: str, settings: ScoringSettings, version: str, challenger_share: float
    ) -> None:
        registry = self.registry
        replaced = [settings.challenger_version]
        if challenger_share > 0.0:
            settings = replace(
                settings, challenger_version=version, challenger_share=challenger_share
            )
        else:
            replaced.append(settings.champion_version)
            settings = replace(
                settings, champion_version=version, challenger_version="", challenger_share=0.0
            )
        for old in filter(None, replaced):
            await registry.models.set_state(
                tenant_id, old, "retired", reason=f"replaced by {version}"
            )
        await registry.settings.put(tenant_id, settings)
        registry.invalidate(tenant_id)
