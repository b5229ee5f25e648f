"""Training on synthetic leads: held-out quality, explanations, calibration, serialisation."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from ai_orchestration.scoring import FEATURES, ModelFormatError, TrainedModel

from .conftest import Trained


def test_held_out_auc(trained: Trained) -> None:
    metrics = trained.model.metrics
    assert 0.75 <= metrics.auc <= 0.85
    assert metrics.test_rows == 10_000
    assert metrics.training_rows + metrics.calibration_rows + metrics.test_rows == 50_000
    assert metrics.features == FEATURES
    assert metrics.trained_at == datetime(2026, 1, 1, tzinfo=UTC)
    assert metrics.conversion_rate == pytest.approx(trained.data.converted.mean())


def test_top_contributions_are_the_true_drivers(trained: Trained) -> None:
    # 5k rows rank the features just as well as 50k.
    _, _, contributions = trained.model.predict(trained.x[:5_000])
    strength = np.abs(contributions[:, :-1]).mean(axis=0)
    top = {FEATURES[i] for i in np.argsort(-strength)[:3]}
    assert top == set(trained.data.top_drivers)


def test_contributions_add_up_to_raw(trained: Trained) -> None:
    _, raw, contributions = trained.model.predict(trained.x[:2_000])
    assert contributions.shape == (2_000, len(FEATURES) + 1)
    # The booster's own raw output, computed independently of the contributions.
    booster_raw = trained.model.booster.predict(trained.x[:2_000], raw_score=True)
    assert np.allclose(contributions.sum(axis=1), booster_raw, rtol=0, atol=1e-9)
    assert np.allclose(raw, booster_raw, rtol=0, atol=1e-9)
    # The base value is the same for every row.
    assert np.ptp(contributions[:, -1]) == 0


def test_calibrated_probabilities(trained: Trained) -> None:
    probability, raw, _ = trained.model.predict(trained.x[-5_000:])
    assert ((probability >= 0) & (probability <= 1)).all()
    assert trained.model.metrics.brier < trained.model.metrics.baseline_brier
    # Calibration keeps the order of the raw output.
    order = np.argsort(raw)
    assert (np.diff(probability[order]) >= 0).all()


def test_round_trip_is_exact(trained: Trained) -> None:
    restored = TrainedModel.from_bytes(trained.model.to_bytes())
    x = trained.x[::25]
    for before, after in zip(trained.model.predict(x), restored.predict(x), strict=True):
        assert np.array_equal(before, after)
    assert restored.metrics == trained.model.metrics


@pytest.mark.parametrize("data", [b"not json", b"{}", b'{"format": 99}', b'{"format": 1}'])
def test_malformed_bytes(data: bytes) -> None:
    with pytest.raises(ModelFormatError):
        TrainedModel.from_bytes(data)


def test_rejects_mismatched_shapes(trained: Trained) -> None:
    from ai_orchestration.scoring import train_model  # noqa: PLC0415

    with pytest.raises(ValueError, match="shapes"):
        train_model(trained.x[:, :3], trained.data.converted, trained.data.created_days, seed=0)
