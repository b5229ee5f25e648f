"""Exact TreeSHAP contributions from per-tree tables, an order of magnitude cheaper than
LightGBM's own.

``Booster.predict(pred_contrib=True)`` walks TreeSHAP for every row and tree: 39 us a lead for
the bootstrap model (73 depth-3 trees) on one core, more than everything else a score costs.
But a tree's contributions for a row depend only on the side of each of the tree's splits the
row falls on (the splits off its path too), so rows in the same *cell* of a tree get identical
contributions: the same interval between the tree's thresholds on each numeric feature it
splits, the same category among those its categorical splits name (any other category being
one more), missing being a value of its own. Each tree keeps a table from cell to
contributions, filled by asking LightGBM for that tree alone (``start_iteration``,
``num_iteration=1``) on one row of each cell not seen before: the values are LightGBM's own.

A row's cells are found with one ``searchsorted`` per feature against every threshold of the
model, then one small lookup per tree and feature; SHAP being additive over trees, the sum of
the rows' table entries is the model's contributions (up to the order of float additions).

A model this does not cover (several trees per iteration, zero-as-missing splits, too many
cells) and rows it cannot number (categorical values that are not small non-negative integers)
are explained by LightGBM as before (:class:`UnsupportedError`).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Final

import lightgbm as lgb
import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

MAX_CELLS: Final[int] = 1 << 20
"""Most cells a tree may have (its index is a dense array of this many entries at most)."""
MAX_CATEGORY: Final[int] = 1 << 20
"""Categorical values must be integers in ``[0, MAX_CATEGORY)``."""


class UnsupportedError(ValueError):
    """The model or the rows need LightGBM's own TreeSHAP."""


@dataclass(frozen=True, slots=True)
class _Feature:
    """How one feature's values are numbered for the whole model (its *global codes*)."""

    index: int
    thresholds: FloatArray
    """Numeric: every threshold of the model on the feature, sorted. Categorical: every
    category its splits name, sorted."""
    categorical: bool

    @property
    def codes_count(self) -> int:
        return len(self.thresholds) + 2

    def codes(self, column: FloatArray) -> IntArray:
        """Numeric: the interval (number of thresholds below the value), missing last.
        Categorical: missing 0, a named category 1.., any other category last."""
        missing = np.isnan(column)
        filled = np.where(missing, 0.0, column)
        if not self.categorical:
            inside = np.searchsorted(self.thresholds, filled, side="left")
            return np.where(missing, len(self.thresholds) + 1, inside).astype(np.int64)
        if np.any((filled < 0) | (filled >= MAX_CATEGORY) | (filled != np.floor(filled))):
            raise UnsupportedError("categorical values must be small non-negative integers")
        position = np.searchsorted(self.thresholds, filled, side="left")
        named = position < len(self.thresholds)
        named[named] = self.thresholds[position[named]] == filled[named]
        other = len(self.thresholds) + 1
        return np.where(missing, 0, np.where(named, position + 1, other)).astype(np.int64)

    def local(self, own: FloatArray) -> IntArray:
        """Global code -> the code of the same values among one tree's thresholds ``own``."""
        if not self.categorical:
            # Global interval g holds values in (t[g-1], t[g]]: below it, ``own``'s
            # thresholds up to t[g-1].
            below = np.searchsorted(own, self.thresholds, side="right")
            return np.concatenate([[0], below, [len(own) + 1]]).astype(np.int64)
        position = np.searchsorted(own, self.thresholds, side="left")
        named = position < len(own)
        named[named] = own[position[named]] == self.thresholds[named]
        inner = np.where(named, position + 1, len(own) + 1)
        return np.concatenate([[0], inner, [len(own) + 1]]).astype(np.int64)


class _Tree:
    """One tree's cells: how to number them, and the contributions of those seen so far."""

    def __init__(self, iteration: int, weights: list[tuple[int, IntArray]], cells: int) -> None:
        self.iteration = iteration
        self.weights = weights
        """(feature, global code -> the feature's share of the cell number)"""
        self.index = np.full(cells, -1, dtype=np.int64)
        """Cell -> row of ``table``, -1 until seen."""
        self.table: FloatArray = np.empty((0, 0), dtype=np.float64)

    def cells(self, codes: dict[int, IntArray], rows: int) -> IntArray:
        number = np.zeros(rows, dtype=np.int64)
        for feature, weight in self.weights:
            number += weight[codes[feature]]
        return number


def _splits(
    node: dict[str, Any], numeric: dict[int, set[float]], named: dict[int, set[int]]
) -> None:
    if "split_feature" not in node:
        return
    if node.get("missing_type") == "Zero":
        raise UnsupportedError("zero-as-missing splits")
    feature = int(node["split_feature"])
    if node["decision_type"] == "==":
        named.setdefault(feature, set()).update(int(c) for c in str(node["threshold"]).split("||"))
    else:
        numeric.setdefault(feature, set()).add(float(node["threshold"]))
    _splits(node["left_child"], numeric, named)
    _splits(node["right_child"], numeric, named)


class TreeTables:
    """Per-tree contribution tables of one booster; see the module docstring."""

    def __init__(self, booster: lgb.Booster) -> None:
        if booster.num_model_per_iteration() != 1:
            raise UnsupportedError("one tree per iteration (binary or regression) only")
        self._booster = booster
        self._width = booster.num_feature() + 1
        used = booster.best_iteration if booster.best_iteration > 0 else None
        structures = [info["tree_structure"] for info in booster.dump_model()["tree_info"][:used]]
        per_tree: list[tuple[dict[int, set[float]], dict[int, set[int]]]] = []
        for structure in structures:
            numeric: dict[int, set[float]] = {}
            named: dict[int, set[int]] = {}
            _splits(structure, numeric, named)
            per_tree.append((numeric, named))
        self._features = self._global(per_tree)
        self._trees = [self._tree(i, *splits) for i, splits in enumerate(per_tree)]
        self._lock = threading.Lock()  # tables grow while predictions run in worker threads

    @staticmethod
    def _global(
        per_tree: list[tuple[dict[int, set[float]], dict[int, set[int]]]],
    ) -> dict[int, _Feature]:
        numeric: dict[int, set[float]] = {}
        named: dict[int, set[int]] = {}
        for tree_numeric, tree_named in per_tree:
            for feature, values in tree_numeric.items():
                numeric.setdefault(feature, set()).update(values)
            for feature, categories in tree_named.items():
                named.setdefault(feature, set()).update(categories)
        if numeric.keys() & named.keys():
            raise UnsupportedError("a feature split both as numeric and as categorical")
        features = {
            f: _Feature(f, np.array(sorted(v), dtype=np.float64), False) for f, v in numeric.items()
        }
        features |= {
            f: _Feature(f, np.array(sorted(v), dtype=np.float64), True) for f, v in named.items()
        }
        return features

    def _tree(
        self, iteration: int, numeric: dict[int, set[float]], named: dict[int, set[int]]
    ) -> _Tree:
        weights: list[tuple[int, IntArray]] = []
        cells = 1
        for feature in sorted(numeric.keys() | named.keys()):
            own = sorted(numeric.get(feature) or named[feature])
            local = self._features[feature].local(np.array(own, dtype=np.float64))
            weights.append((feature, local * cells))
            cells *= len(own) + 2
            if cells > MAX_CELLS:
                raise UnsupportedError(f"tree {iteration} has more than {MAX_CELLS} cells")
        return _Tree(iteration, weights, cells)

    def contributions(self, x: FloatArray) -> FloatArray:
        """``Booster.predict(x, pred_contrib=True)``: one column per feature, then the base
        value.

        Raises:
            UnsupportedError: a row with a categorical value this cannot number.
        """
        codes = {f: feature.codes(x[:, f]) for f, feature in self._features.items()}
        total = np.zeros((len(x), self._width), dtype=np.float64)
        with self._lock:
            for tree in self._trees:
                cells = tree.cells(codes, len(x))
                rows = tree.index[cells]
                if (rows < 0).any():
                    rows = self._learn(tree, cells, rows, x)
                total += tree.table[rows]
        return total

    def _learn(self, tree: _Tree, cells: IntArray, rows: IntArray, x: FloatArray) -> IntArray:
        unseen, first = np.unique(cells[rows < 0], return_index=True)
        examples = x[np.flatnonzero(rows < 0)[first]]
        values = np.asarray(
            self._booster.predict(
                examples, pred_contrib=True, start_iteration=tree.iteration, num_iteration=1
            ),
            dtype=np.float64,
        ).reshape(len(unseen), self._width)
        start = len(tree.table)
        tree.table = values if start == 0 else np.vstack([tree.table, values])
        tree.index[unseen] = np.arange(start, start + len(unseen))
        return tree.index[cells]
