"""Why this cell scores as it does: every band's share of a fitted pixel model's score, cell by cell.

    shares = pp.explain.contributions(model, X)          # (n, bands)
    raster = pp.explain.contribution_stack(model, stack)  # (band, y, x): the layer group beside the map

Each model kind is split the way that is exact for it, and the shares add up (``expected + shares.sum(1)``
equals the model's own score; :func:`explainer` says which score, in ``unit``):

=====================  ===============  ============================================================================
model                  unit             a band's share
=====================  ===============  ============================================================================
logistic regression    log-odds         coefficient × (the cell's standardised value − the reference cells' mean);
                                        one-hot classes of a categorical band summed into it
weights of evidence    log-odds         the weight of the band's pattern at the cell (W+ inside, W− outside)
random forest          probability      the change of the trees' class-1 fraction along the cell's path, credited to
                                        the band each node splits on, averaged over trees (Saabas 2014's path
                                        decomposition; sums to the forest's probability less the trees' root mean)
gradient boosting      log-odds         the same path decomposition over the boosted trees (sums to the raw score
                                        less the baseline and the roots' values)
fuzzy overlay          membership       the band's membership, the overlay's input (an overlay is not a sum)
PU bagging             as its members   the mean of the bags' shares (bags of forests add up exactly)
=====================  ===============  ============================================================================

The networks' shares (integrated gradients over the window) are :func:`prospect.mapping.integrated_gradients`:
they need torch, which this room never imports. The path decomposition of a tree is the one that every
TreeSHAP variant refines; it is exact in the sense that counts here (the shares add up to the score), and it
costs one leaf lookup per tree and cell, so it maps millions of cells.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from prospect.errors import InputError
from prospect.grid import Grid

if TYPE_CHECKING:
    import xarray as xr

__all__ = ["Explainer", "explainer", "contributions", "contribution_stack"]


@dataclass
class Explainer:
    """How a fitted model's score splits into bands.

    Attributes
    ----------
    shares : callable
        ``(n, bands)`` values -> ``(n, bands)`` shares.
    expected : float
        What the shares are measured from: ``expected + shares.sum(axis=1)`` is the model's score in ``unit``
        (for weights of evidence the prior log-odds; NaN for a fuzzy overlay, whose memberships do not add).
    unit : {"log-odds", "probability", "membership"}
    definition : str
        One line for the raster's metadata and the report.
    """

    shares: Callable[[np.ndarray], np.ndarray]
    expected: float
    unit: str
    definition: str


def explainer(model: Any, reference: np.ndarray | str | None = None) -> Explainer:
    """The :class:`Explainer` of a fitted pixel model (see the module's table).

    ``reference`` (logistic regression only): the cells whose mean transformed values the shares are measured
    from (default: the cells given each time), so that a positive share says the band lifts the cell above the
    reference cells' average; or ``"intercept"``: coefficient × transformed value, so that the shares add up to
    the log-odds less the intercept (the standardised training mean's log-odds where no band is categorical).
    """
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    from prospect.fuzzy import FuzzyOverlay
    from prospect.wofe import WeightsOfEvidence

    if isinstance(model, WeightsOfEvidence):
        return Explainer(model.weights, model.prior_, "log-odds",
                         "the weight of each band's pattern at the cell (W+ inside, W- outside); with the prior "
                         "they add up to the posterior log-odds")
    if isinstance(model, FuzzyOverlay):
        return Explainer(model.memberships_of, float("nan"), "membership",
                         f"each band's membership, the inputs of the {model.how} overlay (0 for a band not used)")
    if isinstance(model, Pipeline) and isinstance(model[-1], LogisticRegression):
        return _linear(model, reference)
    if isinstance(model, RandomForestClassifier):
        return _forest(model)
    if isinstance(model, HistGradientBoostingClassifier):
        return _boosting(model)
    if hasattr(model, "estimators_features_") and hasattr(model, "estimators_"):    # PU bagging (imbalanced-learn)
        return _bagging(model, reference)
    raise InputError(f"contributions: no split into bands for {type(model).__name__}; valid: the pixel models of "
                     "prospect.baselines (logistic regression, weights of evidence, random forest, gradient "
                     "boosting, fuzzy overlay, their PU bagging); networks: prospect.mapping.integrated_gradients")


def contributions(model: Any, x: np.ndarray, reference: np.ndarray | str | None = None) -> np.ndarray:
    """Every band's share of each cell's score, ``(n, bands)`` (:func:`explainer`)."""
    x = np.asarray(x, float)
    return explainer(model, reference).shares(x)


def contribution_stack(model: Any, stack: xr.DataArray, chunk: int = 2**17) -> xr.DataArray:
    """The shares at every cell of ``stack`` as a ``(band, y, x)`` float32 raster, NaN where any band is NaN.

    Logistic regression's shares are measured from the mean of the stack's valid cells. ``attrs`` carry the
    ``unit``, ``expected`` and ``definition`` of the :class:`Explainer`.
    """
    grid = Grid.from_dataarray(stack)
    values = stack.to_numpy().reshape(stack.sizes["band"], -1)
    cells = np.flatnonzero(np.isfinite(values).all(axis=0))
    how = explainer(model, reference=values[:, cells].T)
    out = np.full(values.shape, np.nan, np.float32)
    for start in range(0, len(cells), int(chunk)):
        part = cells[start:start + int(chunk)]
        out[:, part] = how.shares(np.ascontiguousarray(values[:, part].T, dtype=float)).T
    bands = [str(b) for b in stack["band"].to_numpy()]
    return grid.wrap(out.reshape(len(bands), *grid.shape), bands=bands, name="contributions",
                     attrs={"kind": "contributions", "model": type(model).__name__, "unit": how.unit,
                            "expected": how.expected, "definition": how.definition})


def _linear(model: Any, reference: np.ndarray | str | None) -> Explainer:
    transform, linear = model[:-1], model[-1]
    owner = _feature_bands(transform[-1], int(model.n_features_in_))

    def dense(x: np.ndarray) -> np.ndarray:
        z = transform.transform(x)
        return np.asarray(z.toarray() if hasattr(z, "toarray") else z, float)

    if isinstance(reference, str) and reference != "intercept":
        raise InputError(f"reference={reference!r}; valid: cells (n, bands), 'intercept' or None")
    centre = None if reference is None else np.zeros(len(owner)) if isinstance(reference, str) else \
        _mean_transformed(dense, np.asarray(reference))

    def shares(x: np.ndarray) -> np.ndarray:
        z = dense(x)
        return _to_bands((z - (z.mean(axis=0) if centre is None else centre)) * linear.coef_[0], owner, x.shape[1])

    expected = float("nan") if centre is None else float(linear.intercept_[0] + centre @ linear.coef_[0])
    if isinstance(reference, str):
        return Explainer(shares, expected, "log-odds", "coefficient x the cell's standardised value (one-hot for "
                         "a class); they add up to the cell's log-odds less the intercept")
    return Explainer(shares, expected, "log-odds",
                     "coefficient x (the cell's standardised value - the mean of the "
                     + ("cells given" if centre is None else "map's cells") + "); they add up to the cell's "
                     "log-odds less that mean cell's")


def _mean_transformed(dense: Callable[[np.ndarray], np.ndarray], x: np.ndarray, chunk: int = 2**17) -> np.ndarray:
    total = sum(dense(np.asarray(x[start:start + chunk], float)).sum(axis=0) for start in range(0, len(x), chunk))
    return np.asarray(total, float) / max(len(x), 1)


def _to_bands(shares: np.ndarray, owner: list[int], bands: int) -> np.ndarray:
    out = np.zeros((len(shares), bands))
    for feature, band in enumerate(owner):
        out[:, band] += shares[:, feature]
    return out


def _feature_bands(step: Any, bands: int) -> list[int]:
    """The band each transformed feature comes from: one per band after a scaler, one per class of a one-hot band."""
    from sklearn.compose import ColumnTransformer

    if not isinstance(step, ColumnTransformer):
        return list(range(bands))
    owner = [0] * sum(s.stop - s.start for s in step.output_indices_.values())
    for name, transformer, columns in step.transformers_:
        where = step.output_indices_[name]
        if where.stop == where.start:
            continue
        if hasattr(transformer, "categories_"):      # one-hot: the classes of each band in turn
            widths = [len(c) for c in transformer.categories_]
            owner[where] = [band for band, width in zip(columns, widths, strict=True) for _ in range(width)]
        else:
            owner[where] = list(columns)
    return owner


def _path_table(left: np.ndarray, right: np.ndarray, leaf: np.ndarray, feature: np.ndarray, value: np.ndarray,
                bands: int) -> tuple[np.ndarray, np.ndarray]:
    """What a cell in each leaf gets: ``(leaves, bands)``, the change of ``value`` from the root to the leaf, each
    step credited to the band its parent splits on; and each node's row in it (-1 for an inner node)."""
    table = np.zeros((len(left), bands))
    frontier = np.array([0])
    while frontier.size:
        inner = frontier[~leaf[frontier]]
        for child in (left[inner], right[inner]):
            table[child] = table[inner]
            table[child, feature[inner]] += value[child] - value[inner]
        frontier = np.concatenate([left[inner], right[inner]])
    row = np.full(len(left), -1)
    row[leaf] = np.arange(int(leaf.sum()))
    return table[leaf], row


def _forest(model: Any) -> Explainer:
    bands = int(model.n_features_in_)
    tables, roots = [], []
    for tree in model.estimators_:
        t = tree.tree_
        counts = t.value[:, 0, :]
        p1 = counts[:, 1] / counts.sum(axis=1)      # the class-1 fraction each node predicts (weighted)
        tables.append(_path_table(t.children_left, t.children_right, t.children_left < 0, t.feature, p1, bands))
        roots.append(p1[0])

    def shares(x: np.ndarray) -> np.ndarray:
        leaves = model.apply(x.astype(np.float32))
        out = np.zeros((len(x), bands))
        for number, (table, row) in enumerate(tables):
            out += table[row[leaves[:, number]]]
        return out / len(tables)

    return Explainer(shares, float(np.mean(roots)), "probability",
                     "the change of the trees' class-1 fraction along the cell's path, credited to the band each "
                     "node splits on, averaged over the trees; they add up to the forest's probability less the "
                     "trees' mean at the root")


def _boosting(model: Any) -> Explainer:
    """The path decomposition of scikit-learn's histogram gradient boosting.

    It reads the fitted trees (scikit-learn's ``_predictors``; internal nodes hold their unshrunk value, leaves
    the shrunk one) and finds each cell's leaf with scikit-learn's own predictor, on a copy of each tree whose
    leaves hold their rows in its table; the tests hold the shares to ``decision_function``.
    """
    from sklearn.ensemble._hist_gradient_boosting.predictor import TreePredictor

    if not all(hasattr(model, name) for name in ("_predictors", "_preprocess_X", "_bin_mapper", "_preprocessor")):
        raise InputError("contributions: this scikit-learn keeps its boosted trees where prospect does not read them; "
                         "the path decomposition is tested with scikit-learn 1.9 (pip install -U scikit-learn)")
    if model.n_trees_per_iteration_ != 1:
        raise InputError("contributions: gradient boosting of two classes only (ore / no ore)")
    bands = int(model.n_features_in_)
    if model._preprocessor is None:
        owner = np.arange(bands)
    else:   # scikit-learn puts the categorical columns first
        categorical = np.asarray(model.is_categorical_, bool)
        owner = np.concatenate([np.flatnonzero(categorical), np.flatnonzero(~categorical)])
    known, index_map = model._bin_mapper.make_known_categories_bitsets()
    trees, expected = [], float(model._baseline_prediction.ravel()[0])
    for (predictor,) in model._predictors:
        nodes = predictor.nodes
        leaf = nodes["is_leaf"].astype(bool)
        value = np.where(leaf, nodes["value"], nodes["value"] * model.learning_rate)
        table = _path_table(nodes["left"].astype(np.intp), nodes["right"].astype(np.intp), leaf,
                            owner[nodes["feature_idx"]], value, bands)
        numbered = nodes.copy()
        numbered["value"] = table[1]         # a leaf's row in the table, found by scikit-learn's own predictor
        trees.append((TreePredictor(numbered, predictor.binned_left_cat_bitsets, predictor.raw_left_cat_bitsets),
                      table[0]))
        expected += float(value[0])

    def shares(x: np.ndarray) -> np.ndarray:
        prepared = model._preprocess_X(x, reset=False)
        out = np.zeros((len(x), bands))
        for tree, table in trees:
            out += table[tree.predict(prepared, known, index_map, n_threads=1).astype(np.intp)]
        return out

    return Explainer(shares, expected, "log-odds",
                     "the change of the boosted trees' raw score along the cell's path, credited to the band each "
                     "node splits on; they add up to the cell's log-odds less the baseline and the roots' values")


def _bagging(model: Any, reference: np.ndarray | str | None) -> Explainer:
    members = [(explainer(estimator[-1] if hasattr(estimator, "steps") else estimator,
                          reference if reference is None or isinstance(reference, str)
                          else np.asarray(reference, float)[:, features]), np.asarray(features))
               for estimator, features in zip(model.estimators_, model.estimators_features_, strict=True)]
    bands = int(model.n_features_in_)

    def shares(x: np.ndarray) -> np.ndarray:
        out = np.zeros((len(x), bands))
        for member, features in members:
            out[:, features] += member.shares(x[:, features])
        return out / len(members)

    first = members[0][0]
    return Explainer(shares, float(np.mean([m.expected for m, _ in members])), first.unit,
                     f"the mean over {len(members)} bags of: {first.definition}")
