"""Training, calibration, explanation and serialisation of the lead-scoring model.

The model is a LightGBM binary classifier on :data:`FEATURES`. Its raw output (log-odds) is
explained exactly by LightGBM's per-feature contributions (TreeSHAP) and turned into a
probability by an isotonic calibrator fitted on data the trees did not see.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, TypeAlias

import lightgbm as lgb
import numpy as np
import numpy.typing as npt
from sklearn.isotonic import IsotonicRegression
from sklearn.metrics import brier_score_loss, roc_auc_score

from ai_orchestration.scoring._contributions import TreeTables, UnsupportedError
from ai_orchestration.scoring._features import CATEGORICAL_FEATURES, FEATURES

FloatArray = npt.NDArray[np.float64]

TEST_FRACTION: Final[float] = 0.2
"""The most recent share of rows held out for the reported metrics."""
CALIBRATION_FRACTION: Final[float] = 0.15
"""The most recent share of the remaining rows used for early stopping and calibration."""
PROBABILITY_FLOOR: Final[float] = 0.005
"""Calibrated probabilities stay within [PROBABILITY_FLOOR, 1 - PROBABILITY_FLOOR]."""
TABLE_MIN_ROWS: Final[int] = 48
"""Fewer rows are explained by LightGBM directly: the tables cost about 0.7 ms a call whatever
the rows (a few numpy operations per tree), LightGBM about 20 us a row on two cores; they break
even near 40 rows."""
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
    cv_auc: float | None = None
    """Mean AUC over the rolling-origin cross-validation folds, if any ran."""


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
    feature_ranges: FloatArray
    """``(len(FEATURES), 2)``: 1st and 99th percentile of each feature in the training rows,
    used to tell how far a lead is from what the model learnt on."""
    tables: TreeTables | None = field(init=False, repr=False, compare=False, default=None)
    """The booster's contributions by cell (``None``: LightGBM's TreeSHAP for every row)."""

    def __post_init__(self) -> None:
        with contextlib.suppress(UnsupportedError):
            object.__setattr__(self, "tables", TreeTables(self.booster))

    def contributions(self, x: FloatArray) -> FloatArray:
        """``Booster.predict(x, pred_contrib=True)``, from the tables when they cover ``x`` and
        it has :data:`TABLE_MIN_ROWS` rows or more."""
        if self.tables is not None and len(x) >= TABLE_MIN_ROWS:
            with contextlib.suppress(UnsupportedError):
                return self.tables.contributions(x)
        return np.asarray(self.booster.predict(x, pred_contrib=True), dtype=np.float64)

    def predict(self, x: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
        """Scores the rows of ``x`` (columns as :data:`FEATURES`).

        Returns ``(probability, raw, contributions)``: calibrated probabilities, raw log-odds,
        and per-feature contributions of shape ``(rows, len(FEATURES) + 1)`` whose last column
        is the base value, so each row sums to ``raw``.
        """
        contributions = self.contributions(x)
        # TreeSHAP contributions (base value included) add up to the raw output exactly (up to
        # float rounding; tested against the booster), so one pass through the trees is enough.
        raw: FloatArray = contributions.sum(axis=1)
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
            "feature_ranges": self.feature_ranges.tolist(),
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
            ranges = np.asarray(document["feature_ranges"], dtype=np.float64)
            if ranges.shape != (len(metrics["features"]), 2):
                raise ModelFormatError("feature_ranges do not match the features")
            return cls(
                booster=booster,
                calibrator=calibrator,
                metrics=ModelMetrics(**metrics),
                feature_ranges=ranges,
            )
        except (ValueError, KeyError, TypeError) as err:
            if isinstance(err, ModelFormatError):
                raise
            raise ModelFormatError("malformed model bytes") from err


def _params(seed: int) -> dict[str, Any]:
    # Shallow trees: the drivers act mostly additively, so depth 3 loses no AUC against deeper
    # trees, and TreeSHAP costs grow with leaves x depth^2, so explaining is several times faster
    # than with 15-leaf trees (bench/bench_scoring_training.py). Deterministic and few threads: the
    # same data and seed must give the same model on any machine, and training shares the host
    # with the gRPC server.
    return {
        "objective": "binary",
        "learning_rate": 0.15,
        "num_leaves": 8,
        "max_depth": 3,
        "min_data_in_leaf": 50,
        "feature_fraction": 0.9,
        "lambda_l2": 1.0,
        "cat_smooth": 10.0,
        "seed": seed,
        "deterministic": True,
        "force_row_wise": True,
        "num_threads": 2,
        "verbosity": -1,
    }


@dataclass(frozen=True, slots=True)
class TrainingStep:
    """A progress report from :func:`train_model`."""

    stage: str
    """``"fitting"`` (a cross-validation fold or the final fit), ``"calibrating"`` or
    ``"evaluating"``."""
    fold: int
    """1-based cross-validation fold; 0 for the final model."""
    folds: int
    """Number of cross-validation folds."""
    auc: float | None
    """AUC of the step's validation rows, when the step has them."""
    message: str
    """What happened, for a person."""


ProgressCallback: TypeAlias = Callable[[TrainingStep], None]


@dataclass(frozen=True, slots=True)
class TimeSplit:
    """Row indices of a split by creation time: oldest rows fit, newest test."""

    fit: npt.NDArray[np.intp]
    calibration: npt.NDArray[np.intp]
    test: npt.NDArray[np.intp]


def time_split(created_days: FloatArray) -> TimeSplit:
    """The most recent :data:`TEST_FRACTION` of rows is the test set; of the rest, the most recent
    :data:`CALIBRATION_FRACTION` early-stops the trees and fits the calibrator."""
    rows = created_days.shape[0]
    order = np.argsort(created_days, kind="stable")
    test_start = round(rows * (1.0 - TEST_FRACTION))
    calibration_start = round(test_start * (1.0 - CALIBRATION_FRACTION))
    fit, calibration, test = np.split(order, [calibration_start, test_start])
    return TimeSplit(fit=fit, calibration=calibration, test=test)


def auc_of(model: TrainedModel, x: FloatArray, y: npt.NDArray[np.bool_]) -> float:
    """ROC AUC of ``model``'s raw output on rows ``x`` with outcomes ``y`` (0.5 if one class)."""
    if len(np.unique(y)) < 2:
        return 0.5
    raw = np.asarray(model.booster.predict(x, raw_score=True), dtype=np.float64)
    return float(roc_auc_score(y.astype(np.float64), raw))


def _fit(
    x: FloatArray,
    labels: FloatArray,
    fit_rows: npt.NDArray[np.intp],
    valid_rows: npt.NDArray[np.intp],
    seed: int,
) -> tuple[lgb.Booster, int]:
    train_set = lgb.Dataset(
        x[fit_rows],
        labels[fit_rows],
        feature_name=list(FEATURES),
        categorical_feature=list(CATEGORICAL_FEATURES),
    )
    valid_set = lgb.Dataset(x[valid_rows], labels[valid_rows], reference=train_set)
    trained = lgb.train(
        _params(seed),
        train_set,
        num_boost_round=_MAX_ROUNDS,
        valid_sets=[valid_set],
        callbacks=[lgb.early_stopping(_EARLY_STOPPING_ROUNDS, verbose=False)],
    )
    best_iteration = int(trained.best_iteration) or trained.current_iteration()
    # Rebuild from the truncated model string: what we serve is exactly what we store.
    return lgb.Booster(model_str=trained.model_to_string(num_iteration=best_iteration)), (
        best_iteration
    )


def _raw(booster: lgb.Booster, x: FloatArray) -> FloatArray:
    return np.asarray(booster.predict(x, raw_score=True), dtype=np.float64)


def _both_outcomes(labels: FloatArray) -> bool:
    return len(np.unique(labels)) == 2


def _cross_validate(  # noqa: PLR0917 - private helper of train_model
    x: FloatArray,
    labels: FloatArray,
    history: npt.NDArray[np.intp],
    folds: int,
    seed: int,
    progress: ProgressCallback,
) -> list[float]:
    """Rolling-origin cross-validation on the rows before the test set: fold k fits on the
    oldest k blocks and is scored on the next one, as the model will be used."""
    blocks = np.array_split(history, folds + 1)
    aucs: list[float] = []
    for fold in range(1, folds + 1):
        fit_rows = np.concatenate(blocks[:fold])
        valid_rows = blocks[fold]
        if not (_both_outcomes(labels[fit_rows]) and _both_outcomes(labels[valid_rows])):
            progress(TrainingStep("fitting", fold, folds, None, "fold skipped: one outcome only"))
            continue
        booster, _ = _fit(x, labels, fit_rows, valid_rows, seed)
        auc = float(roc_auc_score(labels[valid_rows], _raw(booster, x[valid_rows])))
        aucs.append(auc)
        progress(
            TrainingStep(
                "fitting", fold, folds, auc, f"fold {fold}/{folds}: {len(fit_rows)} rows fitted"
            )
        )
    return aucs


def _feature_ranges(x: FloatArray) -> FloatArray:
    """1st and 99th percentile of each column, ignoring missing values (NaN if all missing)."""
    ranges = np.full((x.shape[1], 2), np.nan)
    for column in range(x.shape[1]):
        present = x[:, column][~np.isnan(x[:, column])]
        if present.size:
            ranges[column] = np.percentile(present, [1.0, 99.0])
    return ranges


def _ignore(_: TrainingStep) -> None:
    return None


def train_model(
    x: FloatArray,
    y: npt.NDArray[np.bool_],
    created_days: FloatArray,
    *,
    seed: int,
    trained_at: datetime | None = None,
    folds: int = 0,
    progress: ProgressCallback = _ignore,
) -> TrainedModel:
    """Trains, early-stops and calibrates a model, splitting rows by creation time.

    See :func:`time_split`. Splitting by time rather than at random measures what matters: how
    well the model scores tomorrow's leads. With ``folds`` > 0, rolling-origin cross-validation
    on the older rows runs first and its mean AUC is reported in the metrics.
    """
    rows = x.shape[0]
    if x.shape != (rows, len(FEATURES)) or y.shape != (rows,) or created_days.shape != (rows,):
        raise ValueError("x, y and created_days must have matching shapes")
    split = time_split(created_days)
    labels = y.astype(np.float64)
    if not (_both_outcomes(labels[split.fit]) and _both_outcomes(labels[split.test])):
        raise ValueError("training and test rows must contain both outcomes")

    history = np.concatenate([split.fit, split.calibration])
    cv_aucs = _cross_validate(x, labels, history, folds, seed, progress) if folds else []
    booster, best_iteration = _fit(x, labels, split.fit, split.calibration, seed)
    progress(
        TrainingStep("fitting", 0, folds, None, f"{best_iteration} trees on {len(split.fit)} rows")
    )

    # Bounded away from 0 and 1: the extreme bins of the calibration rows are often pure, and a
    # lead is never certain to convert or not.
    isotonic = IsotonicRegression(
        y_min=PROBABILITY_FLOOR, y_max=1.0 - PROBABILITY_FLOOR, out_of_bounds="clip"
    )
    isotonic.fit(_raw(booster, x[split.calibration]), labels[split.calibration])
    calibrator = _Calibrator(
        thresholds=np.asarray(isotonic.X_thresholds_, dtype=np.float64),
        probabilities=np.asarray(isotonic.y_thresholds_, dtype=np.float64),
    )
    progress(
        TrainingStep("calibrating", 0, folds, None, f"calibrated on {len(split.calibration)} rows")
    )

    test_raw = _raw(booster, x[split.test])
    test_labels = labels[split.test]
    base_rate = float(labels[split.fit].mean())
    metrics = ModelMetrics(
        auc=float(roc_auc_score(test_labels, test_raw)),
        brier=float(brier_score_loss(test_labels, calibrator(test_raw))),
        baseline_brier=float(np.mean((test_labels - base_rate) ** 2)),
        conversion_rate=float(labels.mean()),
        training_rows=len(split.fit),
        calibration_rows=len(split.calibration),
        test_rows=len(split.test),
        best_iteration=best_iteration,
        features=FEATURES,
        trained_at=trained_at or datetime.now(UTC),
        cv_auc=float(np.mean(cv_aucs)) if cv_aucs else None,
    )
    progress(
        TrainingStep(
            "evaluating", 0, folds, metrics.auc, f"held-out AUC on {len(split.test)} newest rows"
        )
    )
    return TrainedModel(
        booster=booster,
        calibrator=calibrator,
        metrics=metrics,
        feature_ranges=_feature_ranges(x[split.fit]),
    )
