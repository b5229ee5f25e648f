"""Contributions from per-tree tables are LightGBM's own TreeSHAP values, on every kind of row."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import lightgbm as lgb
import numpy as np
import numpy.typing as npt
import pytest

from ai_orchestration.scoring import TrainedModel
from ai_orchestration.scoring._contributions import TreeTables, UnsupportedError, _Feature

from .conftest import Trained

FloatArray = npt.NDArray[np.float64]
_EXACT = 1e-12
"""Only the order of float additions differs from LightGBM's sums."""


def _lightgbm(model: TrainedModel, x: FloatArray) -> FloatArray:
    return np.asarray(model.booster.predict(x, pred_contrib=True), dtype=np.float64)


def _on_the_edges(model: TrainedModel) -> FloatArray:
    """Rows whose values sit on, just below and just above every threshold of the model, and
    missing, infinite and unnamed categorical values: where a cell boundary could be off by one."""
    rng = np.random.default_rng(3)
    dump = model.booster.dump_model()
    values: dict[int, set[float]] = {}

    def walk(node: dict[str, object]) -> None:
        if "split_feature" not in node:
            return
        feature = int(str(node["split_feature"]))
        if node["decision_type"] == "==":
            values.setdefault(feature, set()).update(
                float(c) for c in str(node["threshold"]).split("||")
            )
        else:
            t = float(str(node["threshold"]))
            values.setdefault(feature, set()).update(
                {t, np.nextafter(t, -np.inf), np.nextafter(t, np.inf), -np.inf, np.inf}
            )
        walk(node["left_child"])  # type: ignore[arg-type]
        walk(node["right_child"])  # type: ignore[arg-type]

    for info in dump["tree_info"]:
        walk(info["tree_structure"])
    width = model.booster.num_feature()
    rows = np.full((3_000, width), np.nan)
    for feature, seen in values.items():
        pool = np.array(sorted(seen) + [np.nan, 0.0] + ([37.0] if 3 <= feature <= 4 else []))
        if 3 <= feature <= 4:  # categorical: industry, source; no infinities there
            pool = pool[np.isfinite(pool) | np.isnan(pool)]
        rows[:, feature] = rng.choice(pool, size=len(rows))
    return rows


def test_tables_give_lightgbms_values(trained: Trained) -> None:
    model = trained.model
    assert model.tables is not None
    x = np.vstack([trained.x[:3_000], _on_the_edges(model), np.full((1, 9), np.nan)])
    expected = _lightgbm(model, x)
    cold = model.tables.contributions(x)  # learns the cells as it meets them
    warm = model.tables.contributions(x[::-1])[::-1]  # every cell known, rows in another order
    assert np.abs(cold - expected).max() < _EXACT
    assert np.abs(warm - expected).max() < _EXACT
    _, raw, contributions = model.predict(x)
    assert np.abs(contributions - expected).max() < _EXACT
    assert np.allclose(raw, model.booster.predict(x, raw_score=True), rtol=0, atol=1e-9)


def test_a_reloaded_model_has_tables_too(trained: Trained) -> None:
    reloaded = TrainedModel.from_bytes(trained.model.to_bytes())
    assert reloaded.tables is not None
    x = trained.x[5_000:6_000]
    assert np.abs(reloaded.contributions(x) - _lightgbm(reloaded, x)).max() < _EXACT


def test_rows_the_tables_cannot_number_go_to_lightgbm(trained: Trained) -> None:
    model = trained.model
    assert model.tables is not None
    x = trained.x[:50].copy()
    x[0, 3] = 2.5  # a categorical value that is not a category code
    with pytest.raises(UnsupportedError):
        model.tables.contributions(x)
    assert np.abs(model.contributions(x) - _lightgbm(model, x)).max() < _EXACT


def test_threads_share_the_tables(trained: Trained) -> None:
    model = TrainedModel.from_bytes(trained.model.to_bytes())  # cold tables
    assert model.tables is not None
    chunks = [trained.x[i : i + 500] for i in range(10_000, 14_000, 500)]
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(model.contributions, chunks))
    for chunk, result in zip(chunks, results, strict=True):
        assert np.abs(result - _lightgbm(model, chunk)).max() < _EXACT


def test_a_model_with_several_trees_per_iteration_is_not_tabled() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 3))
    booster = lgb.train(
        {"objective": "multiclass", "num_class": 3, "verbose": -1},
        lgb.Dataset(x, label=rng.integers(0, 3, size=300)),
        num_boost_round=3,
    )
    with pytest.raises(UnsupportedError):
        TreeTables(booster)


def test_categories_no_split_names_share_one_code() -> None:
    feature = _Feature(0, np.array([1.0, 4.0]), categorical=True)
    codes = feature.codes(np.array([0.0, 1.0, 2.0, 4.0, 5.0, np.nan]))
    assert codes.tolist() == [3, 1, 3, 2, 3, 0]
    # A tree naming only category 4: 1 becomes one of the others there.
    assert feature.local(np.array([4.0]))[codes].tolist() == [2, 2, 2, 1, 2, 0]
