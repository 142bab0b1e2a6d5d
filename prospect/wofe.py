"""Weights of evidence (Bonham-Carter 1994; Agterberg & Cheng 2002): the method most published maps are made with.

    model = pp.wofe.WeightsOfEvidence(categorical=[3]).fit(X, y)     # scikit-learn contract: cross_validate
    model.table_                                                        # every candidate pattern, chosen flagged
    result = pp.wofe.weights_of_evidence(stack, deposits, unit_area=1e6)   # on the whole area, in unit cells
    result.posterior, result.std, result.table, result.ci_ratio, result.ac_p

Each band is generalised to one binary pattern: for an ordered (continuous or class-coded) band the
cumulative class above (descending) or below (ascending) a break, the breaks being its quantiles; for a
categorical band the union of its classes ranked by their own weight. The pattern chosen is the one of
maximum studentized contrast C / s(C). Per pattern, with ``d`` deposits of ``D`` inside, and ``a`` of the
``A`` unit cells without a deposit inside::

    W+ = ln[(d / D) / (a / A)]                 s²(W+) = 1 / d + 1 / a
    W- = ln[((D - d) / D) / ((A - a) / A)]     s²(W-) = 1 / (D - d) + 1 / (A - a)
    C = W+ - W-                                s(C) = sqrt(s²(W+) + s²(W-))

The posterior log-odds of a cell are the prior's, ln(D / A), plus W+ or W- of every band (0 where the band has
no value), and the variance of the posterior probability from the weights' variances is
P² (1 / D + Σ s²(W)) (Bonham-Carter 1994, eq. 9-15). Conditional independence is tested on the whole area:
the expected number of deposits T = Σ P (over unit cells) against the D observed (the ratio D / T, Bonham-Carter's
rule of thumb: below 0.85 is a problem), and Agterberg & Cheng's one-sided z = (T - D) / s(T).
No torch here.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Literal

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin

from prospect.errors import InputError
from prospect.ranges import NOT_NEGATIVE, POSITIVE, whole

if TYPE_CHECKING:
    import geopandas as gpd
    import xarray as xr

__all__ = ["WeightsOfEvidence", "WofEResult", "weights_of_evidence", "pattern_weights"]

COLUMNS = ["band", "kind", "pattern", "deposits", "area", "w_plus", "s_w_plus", "w_minus", "s_w_minus", "contrast",
           "s_contrast", "studentized", "chosen"]


def pattern_weights(inside: np.ndarray, y: np.ndarray, unit: np.ndarray | float = 1.0) -> dict[str, float]:
    """W+, W-, their standard deviations and the contrast of one binary pattern.

    ``inside`` marks the samples in the pattern, ``y`` the deposits (1) and the rest (0); each sample without
    a deposit stands for ``unit`` unit cells of area. Where a count is 0 (a pattern holding every deposit, or
    none) its logarithm has no value: 0.5 is added to each of the four counts (Haldane's correction), so a
    perfect pattern gets large weights with large variances. NaN for a pattern holding every sample or none.
    """
    inside, y = np.asarray(inside, bool), np.asarray(y, float)
    unit = np.broadcast_to(np.asarray(unit, float), y.shape)
    d, total_d = float(y[inside].sum()), float(y.sum())
    a, total_a = float(((1 - y) * unit)[inside].sum()), float(((1 - y) * unit).sum())
    line = {"deposits": d, "area": a + d}
    if inside.all() or not inside.any() or total_d == 0 or total_a == 0:
        return {**line, **dict.fromkeys(["w_plus", "s_w_plus", "w_minus", "s_w_minus", "contrast", "s_contrast",
                                         "studentized"], np.nan)}
    if min(d, total_d - d, a, total_a - a) == 0:
        d, a, total_d, total_a = d + 0.5, a + 0.5, total_d + 1, total_a + 1
    w_plus = np.log((d / total_d) / (a / total_a))
    w_minus = np.log(((total_d - d) / total_d) / ((total_a - a) / total_a))
    s_plus, s_minus = np.sqrt(1 / d + 1 / a), np.sqrt(1 / (total_d - d) + 1 / (total_a - a))
    s_contrast = np.sqrt(s_plus**2 + s_minus**2)
    return {**line, "w_plus": w_plus, "s_w_plus": s_plus, "w_minus": w_minus, "s_w_minus": s_minus,
            "contrast": w_plus - w_minus, "s_contrast": s_contrast, "studentized": (w_plus - w_minus) / s_contrast}


class WeightsOfEvidence(ClassifierMixin, BaseEstimator):
    """Weights of evidence as a scikit-learn classifier of pixel values ``(n, bands)``.

    Parameters
    ----------
    classes : int
        Quantile breaks tried for an ordered band (10: its deciles), in both directions.
    categorical : sequence of int
        Positions of categorical bands (codes with no order, such as lithology).
    min_studentized : float
        A band whose best pattern has a studentized contrast below this adds nothing (weights 0): 1.96
        (two-sided 5 %) by default, 0 keeps every band.
    unit : float
        Unit cells of area each non-deposit sample stands for (1: the samples are the unit cells).
    breaks : mapping, optional
        Class breaks given for an ordered band instead of its quantiles: ``{position or band name: [b1, b2, ...]}``
        (names with ``bands``); the cumulative patterns above and below each are tried as for quantiles.
    bands : sequence of str, optional
        The names of the columns, for ``breaks`` given by band name.
    """

    def __init__(self, classes: Annotated[int, whole(2)] = 10, categorical: Sequence[int] = (),
                 min_studentized: Annotated[float, NOT_NEGATIVE] = 1.96,
                 unit: Annotated[float, POSITIVE] = 1.0, breaks: Mapping[Any, Sequence[float]] | None = None,
                 bands: Sequence[str] | None = None) -> None:
        self.classes = classes
        self.categorical = categorical
        self.min_studentized = min_studentized
        self.unit = unit
        self.breaks = breaks
        self.bands = bands

    def _given_breaks(self, columns: int) -> dict[int, np.ndarray]:
        """``breaks`` by column position, checked."""
        names = [str(b) for b in self.bands] if self.bands is not None else []
        given = {}
        for key, values in (self.breaks or {}).items():
            if isinstance(key, str) and not key.isdigit():
                if key not in names:
                    valid = names or f"positions 0..{columns - 1}"
                    raise InputError(f"breaks: {key!r} names no band; valid: {valid}")
                position = names.index(key)
            else:
                position = int(key)
                if not 0 <= position < columns:
                    raise InputError(f"breaks: position {key!r}; valid: 0..{columns - 1}")
            cuts = np.asarray(values, float)
            if cuts.ndim != 1 or not len(cuts) or not np.isfinite(cuts).all():
                raise InputError(f"breaks[{key!r}]={values!r}; valid: a list of finite numbers")
            given[position] = np.unique(cuts)
        return given

    def fit(self, X: Any, y: Any) -> WeightsOfEvidence:
        X, y = np.asarray(X, float), np.asarray(y)
        if X.ndim != 2 or len(X) != len(y):
            raise InputError(f"X has shape {X.shape} and y {y.shape}; expected (n, bands) and (n,)")
        if set(np.unique(y)) - {0, 1} or len(np.unique(y)) < 2:
            raise InputError(f"y holds {sorted(np.unique(y).tolist())}; weights of evidence needs deposits (1) and "
                             "the rest (0)")
        if int(self.classes) != self.classes or self.classes < 2:
            raise InputError(f"classes={self.classes!r} must be a whole number of quantile breaks ≥ 2")
        y = y.astype(float)
        categorical = {int(i) for i in self.categorical}
        given = self._given_breaks(X.shape[1])
        rows, self.patterns_ = [], []
        for band in range(X.shape[1]):
            values, known = X[:, band], np.isfinite(X[:, band])
            candidates = self._candidates(values[known], y[known], band in categorical, given.get(band))
            lines = [{"band": band, "kind": kind, "pattern": label,
                      **pattern_weights(rule(values[known]), y[known], self.unit)} for kind, label, rule in candidates]
            scores = [line["studentized"] for line in lines]
            best = int(np.nanargmax(scores)) if lines and np.isfinite(scores).any() else None
            keep = best is not None and scores[best] >= self.min_studentized
            for number, line in enumerate(lines):
                rows.append({**line, "chosen": keep and number == best})
            self.patterns_.append((candidates[best][2], lines[best]) if keep else None)
        self.table_ = pd.DataFrame(rows, columns=COLUMNS)
        self.prior_ = float(np.log(y.sum() / ((1 - y) * self.unit).sum()))
        self.deposits_ = float(y.sum())
        self.classes_ = np.array([0, 1])
        self.n_features_in_ = X.shape[1]
        return self

    def _candidates(self, values: np.ndarray, y: np.ndarray, categorical: bool,
                    given: np.ndarray | None = None) -> list[tuple[str, str, Any]]:
        if not len(values):
            return []
        if categorical:    # classes ranked by their own W+, then the unions of the first 1, 2, ... of them
            codes = np.unique(values)
            own = [pattern_weights(values == c, y, self.unit)["w_plus"] for c in codes]
            order = [codes[i] for i in np.argsort(-np.nan_to_num(np.asarray(own), nan=-np.inf), kind="stable")]
            return [("categorical", "in {" + ", ".join(f"{c:g}" for c in order[:m]) + "}",
                     lambda v, chosen=tuple(order[:m]): np.isin(v, chosen)) for m in range(1, len(order))]
        breaks = given if given is not None else \
            np.unique(np.quantile(values, np.linspace(0, 1, int(self.classes) + 1)[1:-1]))
        return ([("descending", f">= {t:.6g}", lambda v, t=t: v >= t) for t in breaks]
                + [("ascending", f"<= {t:.6g}", lambda v, t=t: v <= t) for t in breaks])

    def _placed(self, X: np.ndarray) -> Iterator[tuple[int, dict[str, float], np.ndarray, np.ndarray]]:
        """For every band with a pattern: its weights, which samples lie inside it, which have a value."""
        for band, chosen in enumerate(self.patterns_):
            if chosen is None:
                continue
            rule, line = chosen
            known = np.isfinite(X[:, band])
            inside = np.zeros(len(X), bool)
            inside[known] = rule(X[known, band])
            yield band, line, inside, known

    def weights(self, X: Any) -> np.ndarray:
        """The weight every band gives every sample: W+ inside its pattern, W- outside, 0 without a value."""
        X = np.asarray(X, float)
        out = np.zeros(X.shape)
        for band, line, inside, known in self._placed(X):
            out[:, band] = np.where(inside, line["w_plus"], line["w_minus"]) * known
        return out

    def decision_function(self, X: Any) -> np.ndarray:
        """Posterior log-odds: the prior's plus every band's weight."""
        return self.prior_ + self.weights(X).sum(axis=1)

    def predict_proba(self, X: Any) -> np.ndarray:
        p = 1 / (1 + np.exp(-self.decision_function(X)))
        return np.column_stack([1 - p, p])

    def predict(self, X: Any) -> np.ndarray:
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(int)

    def log_odds_variance(self, X: Any) -> np.ndarray:
        """Variance of the posterior log-odds from the weights' variances and the prior's (1 / D)."""
        X = np.asarray(X, float)
        variance = np.full(len(X), 1 / self.deposits_)
        for _, line, inside, known in self._placed(X):
            variance += np.where(inside, line["s_w_plus"] ** 2, line["s_w_minus"] ** 2) * known
        return variance

    def predict_std(self, X: Any) -> np.ndarray:
        """Standard deviation of the posterior probability: P × sqrt(:meth:`log_odds_variance`)."""
        return self.predict_proba(X)[:, 1] * np.sqrt(self.log_odds_variance(X))


@dataclass(frozen=True)
class WofEResult:
    """Weights of evidence on a whole area: the fitted model, its table, the posterior and its spread, and the
    conditional-independence test."""

    model: WeightsOfEvidence
    table: pd.DataFrame          # every candidate pattern of every band (band names), the chosen flagged
    posterior: xr.DataArray      # posterior probability of a deposit per unit cell
    std: xr.DataArray            # its standard deviation from the weights' variances
    deposits: int                # D, deposits on valid cells
    expected: float              # T = Σ P over unit cells
    ci_ratio: float              # D / T
    ac_z: float                  # (T - D) / s(T)
    ac_p: float                  # one-sided p of Agterberg & Cheng's test


def weights_of_evidence(stack: xr.DataArray, deposits: gpd.GeoDataFrame, unit_area: float = 1e6,
                        classes: int = 10, categorical: Sequence[str] | Literal["auto"] = "auto",
                        min_studentized: float = 1.96,
                        breaks: Mapping[str, Sequence[float]] | None = None) -> WofEResult:
    """Weights of evidence of every band of ``stack`` against ``deposits``, on every valid cell of the area.

    Parameters
    ----------
    stack : DataArray (band, y, x)
    deposits : GeoDataFrame
        Known deposits; each marks the cell holding it (several in one cell count once).
    unit_area : float
        The unit cell, in CRS units² (1e6 m² = 1 km², the usual choice): areas, the prior and the posterior are
        per unit cell.
    classes, min_studentized : see :class:`WeightsOfEvidence`.
    breaks : mapping of band name to class breaks, optional
        Breaks given for those ordered bands instead of their quantiles (:class:`WeightsOfEvidence`).
    categorical : list of band names, or "auto"
        The categorical bands; "auto" takes those the stack marks categorical (:func:`prospect.layers.
        categorical_bands`).

    A warning says when the conditional-independence ratio D / T is below 0.85 or Agterberg & Cheng's test
    rejects independence at 5 %.
    """
    from scipy.stats import norm

    from prospect.grid import Grid
    from prospect.layers import categorical_bands, deposit_pixels

    grid = Grid.from_dataarray(stack)
    if not (np.isfinite(unit_area) and unit_area > 0):
        raise InputError(f"unit_area={unit_area!r} must be a positive area in CRS units² (1e6 = 1 km² in metres)")
    bands = [str(b) for b in stack["band"].to_numpy()]
    if categorical == "auto":
        positions = list(categorical_bands(stack))
    else:
        unknown = [b for b in categorical if b not in bands]
        if unknown:
            raise InputError(f"categorical={list(categorical)}: {unknown} are not bands; valid: {bands}")
        positions = [bands.index(b) for b in categorical]
    values = stack.to_numpy().reshape(len(bands), -1).T.astype(float)
    valid = np.isfinite(values).any(axis=1)
    row, col, inside = deposit_pixels(deposits, grid)
    labels = np.zeros(values.shape[0])
    cells = np.ravel_multi_index((row[inside], col[inside]), grid.shape)
    labels[cells[valid[cells]]] = 1
    count = int(labels.sum())
    if count < 2:
        raise InputError(f"deposits: {count} lie on valid cells of the stack; weights of evidence needs at least 2")
    unit = abs(grid.resolution[0] * grid.resolution[1]) / unit_area
    model = WeightsOfEvidence(classes=classes, categorical=positions, min_studentized=min_studentized,
                              unit=unit, breaks=breaks, bands=bands).fit(values[valid], labels[valid])
    table = model.table_.assign(band=lambda t: [bands[i] for i in t["band"]])
    probability = np.full(values.shape[0], np.nan)
    spread = np.full(values.shape[0], np.nan)
    probability[valid] = model.predict_proba(values[valid])[:, 1]
    spread[valid] = probability[valid] * np.sqrt(model.log_odds_variance(values[valid]))   # predict_std, scored once
    expected = float(np.nansum(probability) * unit)
    # s(T) sums over the unique conditions (the cells that share every band's weight share one posterior and one
    # error: its area times its deviation), not over cells as if each cell's error were its own (Agterberg &
    # Cheng 2002, eq. 9); per cell it would shrink by the square root of each condition's cell count
    _, condition, cells_in = np.unique(model.weights(values[valid]), axis=0, return_inverse=True, return_counts=True)
    first = np.zeros(len(cells_in), int)
    first[condition.ravel()] = np.arange(valid.sum())
    s_expected = float(np.sqrt(np.sum((cells_in * unit * spread[valid][first]) ** 2)))
    z = (expected - count) / s_expected if s_expected > 0 else np.nan
    p = float(norm.sf(z)) if np.isfinite(z) else np.nan
    ratio = count / expected
    if ratio < 0.85 or p < 0.05:
        warnings.warn(f"weights of evidence: the bands are not conditionally independent given the deposits: the "
                      f"model expects {expected:.1f} deposits where {count} are known (ratio {ratio:.2f}; below 0.85 "
                      f"is a problem), Agterberg-Cheng z = {z:.2f}, p = {p:.3g}; the posterior overstates "
                      "itself - drop or merge correlated bands", stacklevel=2)
    wrap = {"bands": ["posterior"], "attrs": {"unit_area": unit_area}}
    return WofEResult(model, table, grid.wrap(probability.reshape(1, *grid.shape), **wrap),
                      grid.wrap(spread.reshape(1, *grid.shape), bands=["posterior_std"]), count, expected, ratio,
                      float(z), p)
