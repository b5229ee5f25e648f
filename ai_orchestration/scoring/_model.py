"""Training, calibration, explanation and serialisation of the lead-scoring model.

The model is a LightGBM binary classifier on :data:`FEATURES`. Its raw output (log-odds) is
explained exactly by LightGBM's per-feature contributions (TreeSHAP) and turned into a
probability by an isotonic calibrator fitted on data the trees did not see.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Final

import lightgbm as lgb
import numpy as np
import numpy.typing as npt
from sklearn.isotonic import IsotonicRegression
from sklearn.metrics import brier_score_loss, roc_auc_score

from ai_orchestration.scoring._features import CATEGORICAL_FEATURES, FEATURES

FloatArray = npt.NDArray[np.float64]

TEST_FRACTION: Final[float] = 0.2
"""The most recent share of rows held out for the reported metrics."""
CALIBRATION_FRACTION: Final[float] = 0.15
"""The most recent share of the remaining rows used for early stopping and calibration."""
_FORMAT: Final[int] = 1
_MAX_ROUNDS: Final[int] = 2000
_EARLY_STOPPING_ROUNDS: Final[int] = 50


class ModelFormatError(ValueError):
    """Serialised model bytes are not a model this code can read."""


@dataclass(frozen=True, slots=True)
class ModelMetrics:
    """How a model did on the most recent, held-out rows of its training data."""

    auc: float
    """ROC AUC of the raw output on the test rows."""
    brier: float
    """Brier score of the calibrated probabilities on the test rows (lower is better)."""
    baseline_brier: float
    """Brier score of always predicting the training base rate, for comparison."""
    conversion_rate: float
    """Share of converted leads among all rows."""
    training_rows: int
    """Rows the trees were fitted on."""
    calibration_rows: int
    """Rows used for early stopping and calibration."""
    test_rows: int
    """Held-out rows behind the metrics."""
    best_iteration: int
    """Number of boosting rounds kept after early stopping."""
    features: tuple[str, ...]
    """Feature names in column order."""
    trained_at: datetime
    """When training finished."""


@dataclass(frozen=True, slots=True, eq=False)
class _Calibrator:
    """Isotonic map from raw output to probability, stored as its breakpoints.

    Prediction interpolates the breakpoints directly (as scikit-learn does with clipping) so a
    deserialised model gives bit-identical probabilities without pickling scikit-learn.
    """

    thresholds: FloatArray
    probabilities: FloatArray

    def __call__(self, raw: FloatArray) -> FloatArray:
        return np.interp(raw, self.thresholds, self.probabilities)


@dataclass(frozen=True, slots=True, eq=False)
class TrainedModel:
    """A trained, calibrated model; build with :func:`train_model` or :meth:`from_bytes`."""

    booster: lgb.Booster
    """The trees, truncated to the best iteration."""
    calibrator: _Calibrator
    """Maps raw output to calibrated probability."""
    metrics: ModelMetrics
    """Held-out metrics from training."""

    def predict(self, x: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
        """Scores the rows of ``x`` (columns as :data:`FEATURES`).

        Returns ``(probability, raw, contributions)``: calibrated probabilities, raw log-odds,
        and per-feature contributions of shape ``(rows, len(FEATURES) + 1)`` whose last column
        is the base value, so each row sums to ``raw``.
        """
        raw = np.asarray(self.booster.predict(x, raw_score=True), dtype=np.float64)
        contributions = np.asarray(self.booster.predict(x, pred_contrib=True), dtype=np.float64)
        return self.calibrator(raw), raw, contributions

    def to_bytes(self) -> bytes:
        """Serialises the model as UTF-8 JSON (no pickle: safe to load from storage)."""
        metrics = asdict(self.metrics)
        metrics["features"] = list(self.metrics.features)
        metrics["trained_at"] = self.metrics.trained_at.isoformat()
        document = {
            "format": _FORMAT,
            "booster": self.booster.model_to_string(),
            "calibrator": {
                "thresholds": self.calibrator.thresholds.tolist(),
                "probabilities": self.calibrator.probabilities.tolist(),
            },
            "metrics": metrics,
        }
        return json.dumps(document).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> TrainedModel:
        """Reads a model written by :meth:`to_bytes`; raises :class:`ModelFormatError`."""
        try:
            document: dict[str, Any] = json.loads(data)
            if document.get("format") != _FORMAT:
                raise ModelFormatError(f"unsupported model format {document.get('format')!r}")
            metrics = dict(document["metrics"])
            metrics["features"] = tuple(metrics["features"])
            metrics["trained_at"] = datetime.fromisoformat(metrics["trained_at"])
            calibrator = _Calibrator(
                thresholds=np.asarray(document["calibrator"]["thresholds"], dtype=np.float64),
                probabilities=np.asarray(document["calibrator"]["probabilities"], dtype=np.float64),
            )
            booster = lgb.Booster(model_str=document["booster"])
            return cls(booster=booster, calibrator=calibrator, metrics=ModelMetrics(**metrics))
        except (ValueError, KeyError, TypeError) as err:
            if isinstance(err, ModelFormatError):
                raise
            raise ModelFormatError("malformed model bytes") from err


def _params(seed: int) -> dict[str, Any]:
    # Deterministic and few threads: the same data and seed must give the same model on any
    # machine, and training shares the host with the gRPC server.
    return {
        "objective": "binary",
        "learning_rate": 0.05,
        "num_leaves": 15,
        "min_data_in_leaf": 100,
        "feature_fraction": 0.9,
        "lambda_l2": 1.0,
        "cat_smooth": 10.0,
        "seed": seed,
        "deterministic": True,
        "force_row_wise": True,
        "num_threads": 2,
        "verbosity": -1,
    }


def train_model(
    x: FloatArray,
    y: npt.NDArray[np.bool_],
    created_days: FloatArray,
    *,
    seed: int,
    trained_at: datetime | None = None,
) -> TrainedModel:
    """Trains, early-stops and calibrates a model, splitting rows by creation time.

    The most recent :data:`TEST_FRACTION` of rows is the test set; of the rest, the most recent
    :data:`CALIBRATION_FRACTION` early-stops the trees and fits the calibrator. Splitting by time
    rather than at random measures what matters: how well the model scores tomorrow's leads.
    """
    rows = x.shape[0]
    if x.shape != (rows, len(FEATURES)) or y.shape != (rows,) or created_days.shape != (rows,):
        raise ValueError("x, y and created_days must have matching shapes")
    order = np.argsort(created_days, kind="stable")
    test_start = round(rows * (1.0 - TEST_FRACTION))
    calibration_start = round(test_start * (1.0 - CALIBRATION_FRACTION))
    fit_rows, calibration_rows, test_rows = np.split(order, [calibration_start, test_start])
    labels = y.astype(np.float64)
    if len(np.unique(labels[fit_rows])) < 2 or len(np.unique(labels[test_rows])) < 2:
        raise ValueError("training and test rows must contain both outcomes")

    categorical = list(CATEGORICAL_FEATURES)
    train_set = lgb.Dataset(
        x[fit_rows], labels[fit_rows], feature_name=list(FEATURES), categorical_feature=categorical
    )
    valid_set = lgb.Dataset(x[calibration_rows], labels[calibration_rows], reference=train_set)
    trained = lgb.train(
        _params(seed),
        train_set,
        num_boost_round=_MAX_ROUNDS,
        valid_sets=[valid_set],
        callbacks=[lgb.early_stopping(_EARLY_STOPPING_ROUNDS, verbose=False)],
    )
    best_iteration = int(trained.best_iteration) or trained.current_iteration()
    # Rebuild from the truncated model string: what we serve is exactly what we store.
    booster = lgb.Booster(model_str=trained.model_to_string(num_iteration=best_iteration))

    def raw_of(selection: npt.NDArray[np.intp]) -> FloatArray:
        return np.asarray(booster.predict(x[selection], raw_score=True), dtype=np.float64)

    isotonic = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
    isotonic.fit(raw_of(calibration_rows), labels[calibration_rows])
    calibrator = _Calibrator(
        thresholds=np.asarray(isotonic.X_thresholds_, dtype=np.float64),
        probabilities=np.asarray(isotonic.y_thresholds_, dtype=np.float64),
    )

    test_raw = raw_of(test_rows)
    test_labels = labels[test_rows]
    base_rate = float(labels[fit_rows].mean())
    metrics = ModelMetrics(
        auc=float(roc_auc_score(test_labels, test_raw)),
        brier=float(brier_score_loss(test_labels, calibrator(test_raw))),
        baseline_brier=float(np.mean((test_labels - base_rate) ** 2)),
        conversion_rate=float(labels.mean()),
        training_rows=len(fit_rows),
        calibration_rows=len(calibration_rows),
        test_rows=len(test_rows),
        best_iteration=best_iteration,
        features=FEATURES,
        trained_at=trained_at or datetime.now(UTC),
    )
    return TrainedModel(booster=booster, calibrator=calibrator, metrics=metrics)
