"""Screening of geochemical elements by how well each one separates ore from background.

The MFAF paper (§4.1 step 1, eqs. 7–9, Table 2) scores every element by the
area under the ROC curve of ore-related against background samples, turns the
AUC into a z statistic with the Hanley & McNeil (1982) standard error, and keeps
the elements whose Z_AUC exceeds the normal critical value (2.58 at α = 0.01).

The labelling of samples (which count as ore-related, which as background)
changes Z a lot, so it is explicit here and reported with every table.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, Any, Literal

import numpy as np
import pandas as pd
from scipy import stats

from prospect.errors import ColumnError, CRSError, InputError
from prospect.io import element_columns
from prospect.ranges import FRACTION_OPEN, NOT_NEGATIVE, POSITIVE, whole

if TYPE_CHECKING:
    import geopandas as gpd
    from matplotlib.figure import Figure

__all__ = ["auc_z", "label_samples", "screen_elements", "sample_spacing", "plot_z", "plot_roc"]

log = logging.getLogger(__name__)


def auc_z(auc: Any, n_pos: Any, n_neg: Any) -> tuple[np.ndarray, np.ndarray]:
    """Hanley–McNeil standard error of an AUC and its z statistic against 0.5.

    ``Q1 = AUC / (2 − AUC)``, ``Q2 = 2 AUC² / (1 + AUC)``,
    ``S² = [AUC(1 − AUC) + (n_pos − 1)(Q1 − AUC²) + (n_neg − 1)(Q2 − AUC²)] / (n_pos n_neg)``
    and ``Z = (AUC − 0.5) / S`` (the MFAF paper's eqs. 7–9, with ``C_p = n_pos``,
    ``C_n = n_neg``). Vectorised over arrays; an AUC below 0.5 gives a negative Z.

    A perfect (or perfectly inverted) separation, AUC = 1 (or 0), has S = 0 by
    this formula. Rather than returning an infinite Z, S is then evaluated at
    the AUC that half of one discordant pair would give, ``1 − 1 / (2 n_pos n_neg)``
    (or its mirror), so Z stays finite, very large and ordered by sample size.

    Parameters
    ----------
    auc : float or array
        Areas under the ROC curve, in [0, 1].
    n_pos, n_neg : int or array
        Numbers of positive (ore-related) and negative (background) samples, ≥ 1.

    Returns
    -------
    s_auc, z_auc : numpy arrays (0-d for scalar input)

    Examples
    --------
    >>> s, z = auc_z(0.6762, 120, 125)   # Ag in the paper's Table 2: Z = 5.1563
    >>> round(float(z), 2)
    5.15
    """
    auc = np.asarray(auc, dtype=float)
    n_pos = np.asarray(n_pos, dtype=float)
    n_neg = np.asarray(n_neg, dtype=float)
    if np.any((auc < 0) | (auc > 1)):
        raise InputError(f"auc={auc!r} must lie in [0, 1]")
    if np.any(n_pos < 1) or np.any(n_neg < 1):
        raise InputError(f"n_pos={n_pos!r} and n_neg={n_neg!r} must be at least 1")
    half_pair = 0.5 / (n_pos * n_neg)
    a = np.clip(auc, half_pair, 1 - half_pair)
    q1 = a / (2 - a)
    q2 = 2 * a**2 / (1 + a)
    variance = (a * (1 - a) + (n_pos - 1) * (q1 - a**2) + (n_neg - 1) * (q2 - a**2)) / (n_pos * n_neg)
    s_auc = np.sqrt(variance)
    return s_auc, (auc - 0.5) / s_auc


def _xy(frame: gpd.GeoDataFrame) -> np.ndarray:
    geometry = frame.geometry
    if not (geometry.geom_type == "Point").all():
        geometry = geometry.representative_point()
    return np.column_stack([geometry.x.to_numpy(), geometry.y.to_numpy()])


def sample_spacing(samples: gpd.GeoDataFrame) -> float:
    """Median distance from each sample to its nearest neighbour, in CRS units."""
    from scipy.spatial import cKDTree

    xy = _xy(samples)
    if len(xy) < 2:
        raise InputError(f"samples has {len(xy)} rows; at least 2 are needed to measure the spacing")
    distance, _ = cKDTree(xy).query(xy, k=2)
    spacing = float(np.median(distance[:, 1]))
    if spacing <= 0:
        raise InputError("more than half of the samples share coordinates with another sample; "
                         "remove duplicates or pass radius= explicitly")
    return spacing


def _deposits_like(samples: gpd.GeoDataFrame, deposits: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    if samples.crs is None:
        raise CRSError("samples have no CRS; read them with pp.io.read_samples(..., crs=...)")
    if deposits.crs is None:
        raise CRSError("deposits have no CRS; read them with pp.io.read_vector(..., crs=...)")
    if not samples.crs.is_projected:
        raise CRSError(f"samples are in {samples.crs.to_string()!r}, a geographic CRS, but a radius in metres "
                       "needs a projected CRS: reproject, e.g. samples.to_crs('EPSG:32649') (UTM 49N)")
    if deposits.crs != samples.crs:
        deposits = deposits.to_crs(samples.crs)
    return deposits


def label_samples(
    samples: gpd.GeoDataFrame,
    deposits: gpd.GeoDataFrame,
    radius: float | None = None,
    background: Literal["balanced", "all"] = "balanced",
    buffer: float | None = None,
    seed: int = 0,
) -> pd.Series:
    """Label samples as ore-related (1), background (0) or unused (−1).

    Parameters
    ----------
    samples : GeoDataFrame
        Survey points in a projected CRS.
    deposits : GeoDataFrame
        Known deposits (points; other geometries use a representative point),
        reprojected to the samples' CRS when needed.
    radius : float, optional
        Samples within ``radius`` (CRS units) of a deposit are positive. Default:
        twice the median nearest-neighbour spacing of the samples
        (:func:`sample_spacing`), i.e. the first ring of samples around a deposit.
    background : {"balanced", "all"}
        ``"balanced"`` (default, as the MFAF paper's roughly equal class counts
        suggest): a random subset of the eligible background samples as large as
        the positive set, drawn with ``seed``. ``"all"``: every eligible sample.
    buffer : float, optional
        Background samples lie farther than ``buffer`` from every deposit, so that
        the halo just outside ``radius`` is not counted as background. Default
        ``2 * radius``; pass ``buffer=radius`` to use every other sample.
    seed : int
        Seed of the balanced draw.

    Returns
    -------
    pandas.Series of int8 aligned with ``samples``; ``attrs`` holds the radius,
    buffer, background rule, seed, class counts, the number of deposits that have
    at least one positive sample and the number that lie outside the survey.
    """
    deposits = _deposits_like(samples, deposits)
    if len(deposits) == 0:
        raise InputError("deposits is empty: at least one known deposit is needed to label samples")
    if background not in ("balanced", "all"):
        raise InputError(f"background={background!r}; valid: 'balanced', 'all'")
    spacing = sample_spacing(samples)
    if radius is None:
        radius = 2.0 * spacing
    if not (np.isfinite(radius) and radius > 0):
        raise InputError(f"radius={radius!r} must be a positive distance in CRS units")
    buffer = 2.0 * radius if buffer is None else float(buffer)
    if buffer < radius:
        raise InputError(f"buffer={buffer!r} must be at least radius={radius!r}")

    from scipy.spatial import cKDTree

    xy, dep_xy = _xy(samples), _xy(deposits)
    distance, _ = cKDTree(dep_xy).query(xy, k=1)
    nearest_sample, _ = cKDTree(xy).query(dep_xy, k=1)
    with_positive = int((nearest_sample <= radius).sum())
    xmin, ymin = xy.min(axis=0) - radius
    xmax, ymax = xy.max(axis=0) + radius
    outside = int(((dep_xy[:, 0] < xmin) | (dep_xy[:, 0] > xmax) | (dep_xy[:, 1] < ymin)
                   | (dep_xy[:, 1] > ymax)).sum())
    if with_positive == 0:
        raise InputError(f"no sample lies within radius={radius:g} of any of the {len(deposits)} deposits "
                         f"({outside} of them lie outside the survey area): check the CRSs or pass a larger radius")

    labels = np.full(len(samples), -1, dtype=np.int8)
    positive = distance <= radius
    labels[positive] = 1
    eligible = np.flatnonzero(distance > buffer)
    n_pos = int(positive.sum())
    if background == "balanced":
        if len(eligible) < n_pos:
            warnings.warn(f"only {len(eligible)} background samples lie beyond buffer={buffer:g} for {n_pos} "
                          "positives; using all of them", stacklevel=2)
            chosen = eligible
        else:
            chosen = np.sort(np.random.default_rng(seed).choice(eligible, size=n_pos, replace=False))
    else:
        chosen = eligible
    labels[chosen] = 0
    result = pd.Series(labels, index=samples.index, name="label")
    result.attrs.update(radius=float(radius), buffer=float(buffer), background=background, seed=int(seed),
                        n_pos=n_pos, n_neg=int(len(chosen)), spacing=spacing, n_deposits=len(deposits),
                        deposits_with_samples=with_positive, deposits_outside=outside)
    if outside:
        log.warning("%d of %d deposits lie outside the survey area", outside, len(deposits))
    return result


def _svm_scores(values: np.ndarray, y: np.ndarray, seed: int, folds: int, logged: bool = False) -> np.ndarray:
    """Out-of-fold decision scores of an RBF support-vector classifier on one element.

    ``logged``: the values are already log10 or a log-ratio (prospect.geochem), so no further log.
    """
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    feature = np.log10(values) if not logged and np.all(values > 0) else values  # concentrations are lognormal
    folds = int(min(folds, np.bincount(y).min()))
    model = make_pipeline(StandardScaler(), SVC(kernel="rbf", C=1.0, gamma="scale", class_weight="balanced"))
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    return cross_val_predict(model, feature[:, None], y, cv=splitter, method="decision_function")


def screen_elements(
    samples: gpd.GeoDataFrame | pd.DataFrame,
    deposits: gpd.GeoDataFrame | None = None,
    labels: Sequence[int] | pd.Series | None = None,
    elements: Sequence[str] | None = None,
    radius: Annotated[float | None, POSITIVE] = None,
    method: Literal["svm", "value"] = "svm",
    alpha: Annotated[float, FRACTION_OPEN] = 0.01,
    seed: int = 0,
    background: Literal["balanced", "all"] = "balanced",
    buffer: Annotated[float | None, NOT_NEGATIVE] = None,
    folds: Annotated[int, whole(2)] = 5,
) -> pd.DataFrame:
    """Score every element by AUC and Z_AUC and select the significant ones.

    Parameters
    ----------
    samples : GeoDataFrame or DataFrame
        The survey. A plain DataFrame needs ``labels``.
    deposits : GeoDataFrame, optional
        Known deposits; samples are labelled with :func:`label_samples`
        (``radius``, ``background``, ``buffer``, ``seed``).
    labels : sequence of int, optional
        Instead of ``deposits``: 1 ore-related, 0 background, −1 (or NaN) unused,
        aligned with ``samples``.
    elements : sequence of str, optional
        Columns to screen. Default: ``samples.attrs["elements"]`` as set by
        :func:`prospect.io.read_samples`, else every numeric column that is not a
        coordinate.
    radius : float, optional
        See :func:`label_samples`; default twice the median sample spacing.
    method : {"svm", "value"}
        ``"svm"`` (the paper's): the AUC of the out-of-fold decision scores of an
        RBF support-vector classifier fitted on the element's log10 values (its
        values as they are when :mod:`prospect.geochem` already transformed it)
        (stratified ``folds``-fold cross-validation seeded by ``seed``), so the
        AUC is never measured on the samples the model was fitted on; the model
        learns the direction, so depletion also scores above 0.5. An AUC *below*
        0.5 is therefore not depletion but no learnable signal: out-of-fold scores
        of a signal-free element scatter around 0.5, slightly more often below it
        (on the Kolari till, 40 label shuffles gave Mn 0.42-0.56, 5-95 %, mean 0.48;
        its real 0.389 sits in that tail, while its ``"value"`` AUC is 0.485).
        ``"value"``: the concentration itself is the score; an element depleted
        near ore gets AUC < 0.5 and a negative Z, reported as such.
    alpha : float
        Two-sided significance level; the critical value is the normal quantile
        ``1 − alpha / 2`` (2.576 at 0.01, the paper's 2.58).
    seed : int
        Seeds the balanced background draw and the cross-validation folds.
    background, buffer : see :func:`label_samples`.
    folds : int
        Cross-validation folds of the SVM method. Default 5.

    Returns
    -------
    pandas.DataFrame
        Indexed by element, sorted by ``z_auc`` (highest first, unusable
        elements last), with columns ``auc``, ``s_auc``, ``z_auc``, ``p_value``
        (two-sided), ``selected`` (``z_auc`` above the critical value),
        ``direction`` (``"enriched"`` or ``"depleted"`` near ore, from the raw
        values), ``n_pos``, ``n_neg``, ``n_dropped`` (NaN values dropped) and
        ``note`` (why an element could not be scored). ``attrs`` holds
        ``n_pos``, ``n_neg``, ``critical``, ``alpha``, ``method``, the labelling
        rule (``radius``, ``buffer``, ``background``, ``seed``) and the ROC
        curves (``attrs["roc"][element] = {"fpr": [...], "tpr": [...]}``).

    Examples
    --------
    >>> table = screen_elements(samples, deposits)              # doctest: +SKIP
    >>> table.index[table.selected].tolist()                      # doctest: +SKIP
    ['Ag', 'Hg', 'Cu', ...]
    """
    from sklearn.metrics import roc_auc_score, roc_curve

    if method not in ("svm", "value"):
        raise InputError(f"method={method!r}; valid: 'svm' (the paper's support-vector score), 'value'")
    if not (0 < alpha < 1):
        raise InputError(f"alpha={alpha!r} must lie in (0, 1), e.g. 0.01")
    if (deposits is None) == (labels is None):
        raise InputError("give exactly one of deposits= (samples are labelled by distance) and labels=")
    if deposits is not None:
        label_series = label_samples(samples, deposits, radius=radius, background=background, buffer=buffer,
                                     seed=seed)
        labelling = dict(label_series.attrs)
        y_all = label_series.to_numpy()
    else:
        y_all = pd.to_numeric(pd.Series(np.asarray(labels, dtype=object)), errors="coerce").to_numpy()
        if len(y_all) != len(samples):
            raise InputError(f"labels has {len(y_all)} values for {len(samples)} samples")
        if not np.all(np.isin(y_all[np.isfinite(y_all)], (-1, 0, 1))):
            raise InputError("labels must be 1 (ore-related), 0 (background) or -1/NaN (unused)")
        y_all = np.where(np.isfinite(y_all), y_all, -1).astype(np.int8)
        labelling = dict(radius=None, buffer=None, background="given", seed=int(seed))
    n_pos_all, n_neg_all = int((y_all == 1).sum()), int((y_all == 0).sum())
    if n_pos_all < 2 or n_neg_all < 2:
        raise InputError(f"{n_pos_all} ore-related and {n_neg_all} background samples; at least 2 of each are "
                         "needed (try a larger radius, or background='all')")

    available = element_columns(samples)
    if elements is None:
        elements = available
    else:
        elements = [elements] if isinstance(elements, str) else list(elements)
        unknown = [e for e in elements if e not in samples.columns]
        if unknown:
            raise ColumnError(f"elements {unknown} are not columns of samples; available: {available}")
    if not elements:
        raise ColumnError("samples has no numeric element columns to screen; pass elements=[...]")

    critical = float(stats.norm.ppf(1 - alpha / 2))
    used = y_all >= 0
    rows, roc = [], {}
    transformed = set(samples.attrs.get("transformed", ()))
    for element in elements:
        values = pd.to_numeric(samples[element], errors="coerce").to_numpy(dtype=float)[used]
        y = y_all[used].astype(int)
        finite = np.isfinite(values)
        row: dict[str, Any] = dict(element=element, n_dropped=int((~finite).sum()), note="")
        values, y = values[finite], y[finite]
        n_pos, n_neg = int((y == 1).sum()), int((y == 0).sum())
        row.update(n_pos=n_pos, n_neg=n_neg)
        if not finite.any():
            row["note"] = "all values missing"
        elif n_pos < 2 or n_neg < 2:
            row["note"] = f"too few values after dropping NaN ({n_pos} ore-related, {n_neg} background)"
        elif np.ptp(values) == 0:
            row["note"] = "constant"
        if row["note"]:
            rows.append(row)
            continue
        value_auc = roc_auc_score(y, values)
        scores = values if method == "value" else _svm_scores(values, y, seed, folds, element in transformed)
        auc = float(roc_auc_score(y, scores))
        s_auc, z_auc = auc_z(auc, n_pos, n_neg)
        fpr, tpr, _ = roc_curve(y, scores)
        roc[element] = {"fpr": fpr.tolist(), "tpr": tpr.tolist()}
        row.update(auc=auc, s_auc=float(s_auc), z_auc=float(z_auc),
                   p_value=float(2 * stats.norm.sf(abs(float(z_auc)))),
                   direction="enriched" if value_auc >= 0.5 else "depleted")
        rows.append(row)

    table = pd.DataFrame(rows).set_index("element")
    for column in ("auc", "s_auc", "z_auc", "p_value", "direction"):
        if column not in table:
            table[column] = np.nan
    table["selected"] = (table["z_auc"] > critical).fillna(False).astype(bool)
    table = table[["auc", "s_auc", "z_auc", "p_value", "selected", "direction", "n_pos", "n_neg", "n_dropped",
                   "note"]]
    table = table.sort_values("z_auc", ascending=False, na_position="last", kind="stable")
    table.attrs.update(labelling)
    table.attrs.update(n_pos=n_pos_all, n_neg=n_neg_all, critical=critical, alpha=float(alpha), method=method,
                       roc=roc)
    skipped = table.index[table["note"] != ""].tolist()
    if skipped:
        log.warning("elements not scored: %s", {e: table.at[e, "note"] for e in skipped})
    return table


def plot_z(table: pd.DataFrame, ax: Any = None) -> Figure:
    """Bar chart of Z_AUC per element with the critical value as a line; selected bars highlighted."""
    from prospect._plot import figure_and_axes

    fig, ax = figure_and_axes(ax, (7, 3.5))
    scored = table[table["z_auc"].notna()]
    colours = ["tab:red" if s else "tab:grey" for s in scored["selected"]]
    ax.bar(scored.index, scored["z_auc"], color=colours)
    critical = table.attrs.get("critical", stats.norm.ppf(1 - 0.01 / 2))
    ax.axhline(critical, color="k", linestyle="--", linewidth=1,
               label=f"critical {critical:.2f} (α = {table.attrs.get('alpha', 0.01):g})")
    ax.set_ylabel("Z_AUC")
    ax.set_title(f"Element screening ({table.attrs.get('method', '?')}, n_pos = {table.attrs.get('n_pos')}, "
                 f"n_neg = {table.attrs.get('n_neg')})")
    ax.legend(loc="upper right")
    return fig


def plot_roc(table: pd.DataFrame, elements: Sequence[str] | None = None, ax: Any = None) -> Figure:
    """ROC curves of the selected elements (or of ``elements``) from a screening table."""
    from prospect._plot import figure_and_axes

    fig, ax = figure_and_axes(ax, (4.5, 4.5))
    roc = table.attrs.get("roc", {})
    chosen = list(table.index[table["selected"]]) if elements is None else list(elements)
    missing = [e for e in chosen if e not in roc]
    if missing:
        raise InputError(f"no ROC curve for {missing}; curves exist for {sorted(roc)}")
    for element in chosen:
        ax.plot(roc[element]["fpr"], roc[element]["tpr"], label=f"{element} (AUC {table.at[element, 'auc']:.3f})")
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
    ax.set(xlabel="false positive rate", ylabel="true positive rate", xlim=(0, 1), ylim=(0, 1), aspect="equal")
    ax.legend(loc="lower right", fontsize="small")
    return fig
