"""How good is a prospectivity map: AUC, success- and prediction-rate curves, P-A plot, coverage, targets.

Every area is counted over valid (non-NaN) cells only — nodata is never area
(EIS Toolkit counts it, which flatters every curve). Deposits outside the map
or on nodata cells are counted and reported with a warning, never silently
dropped from the denominator.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, Any, NamedTuple

import numpy as np
import pandas as pd

from prospect._plot import plot_prediction_area, plot_rate_curve  # the figures of these tables
from prospect._stats import binary_auc, bootstrap_mean, paired_difference
from prospect.compute import kth_largest
from prospect.errors import GridMismatchError, InputError
from prospect.grid import Grid, crs_label
from prospect.layers import deposit_pixels
from prospect.ranges import FRACTION_OPEN, NOT_NEGATIVE, UP_TO_ONE, whole

if TYPE_CHECKING:
    import geopandas as gpd
    import xarray as xr
    from matplotlib.figure import Figure

__all__ = ["deposit_cells", "map_auc", "deposit_ranks", "heldout_summary", "paired_difference", "heldout_rate_curve",
           "success_rate_curve", "consensus", "prediction_rate_curve", "prediction_area", "deposit_coverage", "targets",
           "evaluate_map", "plot_map", "plot_rate_curve", "plot_prediction_area"]

HELDOUT_AREAS = (0.05, 0.10, 0.20)   # the shares of the area whose deposit capture the held-out table reports


# Maps of more cells than this (or lazy ones, prospect.compute) are evaluated in memory of the order of one float32
# copy: rate curves keep their turning points only (the same AUC and P-A intersection), counts come block by block.
LARGE_MAP = 2**22


def _large(prob: xr.DataArray) -> bool:
    from prospect.compute import is_lazy

    return is_lazy(prob) or int(np.prod(prob.shape[-2:])) > LARGE_MAP


def _surface(prob: xr.DataArray, dtype: Any = np.float64) -> tuple[np.ndarray, Grid]:
    grid = Grid.from_dataarray(prob)
    values = prob.to_numpy()
    if values.ndim == 3 and values.shape[0] == 1:
        values = values[0]
    if values.ndim != 2:
        raise InputError(f"expected one probability band (y, x), got dims {prob.dims}")
    if not np.isfinite(values).any():
        raise InputError("the map holds no valid (non-NaN) cell")
    return values.astype(dtype, copy=dtype is np.float64), grid    # float32 (large maps): no copy of a float32 map


def _blocks(prob: xr.DataArray) -> xr.DataArray:
    """A (y, x) map as a lazy array: itself, or a view in blocks of an in-memory one."""
    from prospect.compute import chunked, is_lazy

    prob = prob.isel(band=0, drop=True) if prob.ndim == 3 and prob.sizes.get("band") == 1 else prob
    if prob.ndim != 2:
        raise InputError(f"expected one probability band (y, x), got dims {prob.dims}")
    return prob if is_lazy(prob) else chunked(prob, 2048)


class _OnMap(NamedTuple):
    values: np.ndarray | None   # the map (float64), NaN = nodata; None: read by block
    grid: Grid
    row: np.ndarray      # pixel of each deposit
    col: np.ndarray
    inside: np.ndarray   # deposit inside the grid
    at: np.ndarray       # map value at each deposit on a valid cell
    used: np.ndarray     # position in the deposits given of each of those
    info: dict[str, int]


def _on_map(prob: xr.DataArray, deposits: gpd.GeoDataFrame, blockwise: bool = False) -> _OnMap:
    """Read the map and place the deposits on it once; warn about the deposits that cannot be used.

    With ``blockwise``, a lazy map (:mod:`prospect.compute`) is not read whole: only the blocks under the
    deposits (``values`` is None); otherwise it is computed whole (one band)."""
    from prospect.compute import is_lazy, values_at

    if is_lazy(prob) and blockwise:
        values, grid = None, Grid.from_dataarray(prob)
        if prob.ndim != 2:
            raise InputError(f"expected one probability band (y, x), got dims {prob.dims}")
    else:
        values, grid = _surface(prob)
    row, col, inside = deposit_pixels(deposits, grid)
    at = np.full(len(row), np.nan)
    if values is None:
        at[inside] = values_at(prob, row[inside], col[inside])[:, 0]
    else:
        at[inside] = values[row[inside], col[inside]]
    used = np.isfinite(at)
    info = {"deposits": int(len(row)), "used": int(used.sum()), "outside": int((~inside).sum()),
            "nodata": int((inside & ~used).sum())}
    if info["used"] < info["deposits"]:
        warnings.warn(f"{info['outside']} deposits lie outside the map and {info['nodata']} on nodata cells; "
                      f"{info['used']} of {info['deposits']} are evaluated", stacklevel=3)
    if info["used"] == 0:
        raise InputError(f"none of the {info['deposits']} deposits lies on a valid cell of the map")
    return _OnMap(values, grid, row, col, inside, at[used], np.flatnonzero(used), info)


def deposit_cells(prob: xr.DataArray, deposits: gpd.GeoDataFrame) -> tuple[np.ndarray, dict[str, int]]:
    """Map values at each deposit that lies on a valid cell, and what happened to the others.

    Returns the values (one per deposit; two deposits in one cell count twice) and
    ``{"deposits", "used", "outside", "nodata"}``. Warns when any deposit is not used.
    """
    placed = _on_map(prob, deposits)
    return placed.at, placed.info


def map_auc(prob: xr.DataArray, deposits: gpd.GeoDataFrame) -> float:
    """AUC of the map as a classifier of deposit cells against every other valid cell."""
    if _large(prob):   # the mean over deposit cells of their share of negatives below (ties half): Mann-Whitney
        from prospect.compute import deposit_ranks as counted
        from prospect.compute import values_at

        lazy = _blocks(prob)
        placed = _on_map(lazy, deposits, blockwise=True)
        width = placed.grid.shape[1]
        cells = np.unique(placed.row[placed.used] * width + placed.col[placed.used])
        row, col = cells // width, cells % width
        return float(counted(lazy, row, col, values_at(lazy, row, col)[:, 0].astype(np.float64))[0].mean())
    placed = _on_map(prob, deposits)
    positive = np.zeros(placed.grid.shape, bool)
    positive[placed.row[placed.inside], placed.col[placed.inside]] = True
    valid = np.isfinite(placed.values)
    return binary_auc(positive[valid], placed.values[valid])


def deposit_ranks(prob: xr.DataArray, deposits: gpd.GeoDataFrame) -> pd.DataFrame:
    """How each deposit ranks on the map: one row per deposit on a valid cell.

    Columns: ``deposit`` (position in ``deposits``), ``value`` (map value at it), ``auc`` (share of the
    valid cells holding no deposit that score below it, ties counted half: the map's AUC for that
    deposit alone) and ``area_above`` (share of the valid area scoring at least as high: the area a
    geologist must search before reaching it). The mean of ``auc`` is :func:`map_auc` when no two
    deposits share a cell, so a mean over the deposits of several folds is the deposit-weighted mean
    of their AUCs.
    """
    placed = _on_map(prob, deposits, blockwise=True)
    if placed.values is None:
        return _lazy_ranks(prob, placed)
    valid = np.isfinite(placed.values)
    holds = np.zeros(placed.grid.shape, bool)
    holds[placed.row[placed.inside], placed.col[placed.inside]] = True
    negatives = np.sort(placed.values[valid & ~holds])
    cells = np.sort(placed.values[valid])
    below = np.searchsorted(negatives, placed.at, side="left")
    ties = np.searchsorted(negatives, placed.at, side="right") - below
    return pd.DataFrame({"deposit": placed.used, "value": placed.at,
                         "auc": (below + 0.5 * ties) / max(len(negatives), 1),
                         "area_above": (len(cells) - np.searchsorted(cells, placed.at, side="left")) / len(cells)})


def _lazy_ranks(prob: xr.DataArray, placed: _OnMap) -> pd.DataFrame:
    """:func:`deposit_ranks` of a lazy map, counted block by block (:func:`prospect.compute.deposit_ranks`)."""
    from prospect.compute import deposit_ranks as counted

    auc, area_above = counted(prob, placed.row[placed.inside], placed.col[placed.inside], placed.at)
    return pd.DataFrame({"deposit": placed.used, "value": placed.at, "auc": auc, "area_above": area_above})


def heldout_summary(ranks: pd.DataFrame, level: float = 0.95, resamples: int = 2000, seed: int = 0,
                    areas: tuple[float, ...] = HELDOUT_AREAS) -> dict[str, float]:
    """The held-out-deposit scores of a map (or of the fold maps of a cross-validation).

    Parameters
    ----------
    ranks : DataFrame
        :func:`deposit_ranks` of each held-out deposit on the map that did not see it (the rows of
        every fold together).
    level, resamples, seed
        Percentile bootstrap over deposits: the interval of the mean AUC that the choice of
        deposits alone allows.
    areas : tuple of float
        Shares of the area for ``top_<p>``: the fraction of held-out deposits in the top ``p`` of it.

    Returns
    -------
    dict with ``auc`` (deposit-weighted mean), ``auc_low``, ``auc_high``, ``top_5`` ... and ``deposits``.
    """
    if len(ranks) == 0:
        raise InputError("no held-out deposit to score")
    auc = ranks["auc"].to_numpy(float)
    low, high = bootstrap_mean(auc, level, resamples, seed)
    above = ranks["area_above"].to_numpy(float)
    return {"auc": float(auc.mean()), "auc_low": float(low), "auc_high": float(high),
            **{f"top_{round(100 * a)}": float((above <= a + 1e-12).mean()) for a in areas}, "deposits": len(auc)}


def heldout_rate_curve(ranks: pd.DataFrame, kind: str = "held-out prediction rate") -> pd.DataFrame:
    """The out-of-fold prediction-rate curve: share of held-out deposits against the share of area searched.

    Each deposit is found once its fold's map has been searched down to it (``area_above``), so the
    curve is their empirical distribution; ``attrs["auc"]`` is the area under it.
    """
    above = np.sort(ranks["area_above"].to_numpy(float))
    area = np.r_[0.0, above, 1.0]
    found = np.r_[0.0, np.arange(1, len(above) + 1) / max(len(above), 1), 1.0]
    curve = pd.DataFrame({"area_fraction": area, "deposit_fraction": found})
    # a step curve: deposits are found at their area, so integrate the steps, not the chords
    curve.attrs.update(kind=kind, deposits=len(above), auc=float(1 - above.mean()) if len(above) else np.nan)
    return curve


def _turning_points(prob: xr.DataArray, deposits: gpd.GeoDataFrame, kind: str) -> pd.DataFrame:
    """The rate curve of a large map by its turning points: for each deposit value ``t``, the row of the next
    higher value on the map (the area above ``t``) and the row of ``t``, the row where the P-A curves cross, and
    the last row. Between them the full curve is flat, so these rows are a subset of its rows with the same
    area under them and the same crossing; every count comes block by block."""
    from prospect.compute import turning_points

    lazy = _blocks(prob)
    placed = _on_map(lazy, deposits, blockwise=True)
    curve = turning_points(lazy, placed.at).reset_index(drop=True)
    curve.attrs.update(placed.info, kind=kind, rows="turning points",
                       auc=float(np.trapezoid(curve["deposit_fraction"], curve["area_fraction"])))
    return curve


def _rate_curve(prob: xr.DataArray, deposits: gpd.GeoDataFrame, kind: str) -> pd.DataFrame:
    if _large(prob):
        return _turning_points(prob, deposits, kind)
    placed = _on_map(prob, deposits)
    cells = np.sort(placed.values[np.isfinite(placed.values)])[::-1]
    thresholds = np.unique(cells)[::-1]
    # area above each threshold (ties included), over valid cells only
    area = np.searchsorted(-cells, -thresholds, side="right") / len(cells)
    captured = np.searchsorted(np.sort(-placed.at), -thresholds, side="right") / len(placed.at)
    curve = pd.DataFrame({"threshold": np.r_[np.inf, thresholds], "area_fraction": np.r_[0.0, area],
                          "deposit_fraction": np.r_[0.0, captured]})
    curve.attrs.update(placed.info, kind=kind,
                       auc=float(np.trapezoid(curve["deposit_fraction"], curve["area_fraction"])))
    return curve


def success_rate_curve(prob: xr.DataArray, deposits: gpd.GeoDataFrame) -> pd.DataFrame:
    """Cumulative fraction of (training) deposits against the fraction of area, cells ranked by probability.

    Returns a DataFrame (``threshold``, ``area_fraction``, ``deposit_fraction``)
    from (0, 0) to (1, 1), non-decreasing in both; ``attrs["auc"]`` is the area
    under it (0.5 for a random map, 1 for a perfect one), plus the deposit counts.
    """
    return _rate_curve(prob, deposits, "success rate")


def prediction_rate_curve(prob: xr.DataArray, held_out: gpd.GeoDataFrame) -> pd.DataFrame:
    """The same curve for deposits not used in training (held out, or found later)."""
    return _rate_curve(prob, held_out, "prediction rate")


def prediction_area(prob: xr.DataArray, deposits: gpd.GeoDataFrame) -> pd.DataFrame:
    """The prediction–area (P-A) plot of Yousefi & Carranza (2015).

    For each threshold: ``prediction_rate`` (fraction of deposits on cells at or
    above it) and ``occupied_area`` (fraction of the valid area at or above it).
    ``attrs`` holds the intersection of the prediction-rate curve with the
    remaining-area curve ``1 − occupied_area``: ``intersection_threshold``,
    ``intersection_rate`` (= 1 − its area) and the normalised density
    ``intersection_rate / (1 − intersection_rate)`` (how many times better than random).
    """
    return _prediction_area(_rate_curve(prob, deposits, "P-A"))


def _prediction_area(curve: pd.DataFrame) -> pd.DataFrame:
    """The P-A table of a rate curve (see :func:`prediction_area`)."""
    table = pd.DataFrame({"threshold": curve["threshold"].iloc[1:].to_numpy(),
                          "prediction_rate": curve["deposit_fraction"].iloc[1:].to_numpy(),
                          "occupied_area": curve["area_fraction"].iloc[1:].to_numpy()})
    gap = table["prediction_rate"] - (1 - table["occupied_area"])
    crossing = int(np.argmax(gap.to_numpy() >= 0))
    # The prediction rate jumps at each deposit's cell while the area curve moves a cell at a time, so the curves
    # meet on the area curve: its value there is the crossing, not the top of the jump that overshoots it.
    rate = float(1 - table["occupied_area"].iloc[crossing])
    table.attrs.update({k: v for k, v in curve.attrs.items() if k != "auc"},
                       intersection_threshold=float(table["threshold"].iloc[crossing]), intersection_rate=rate,
                       normalized_density=float(rate / max(1 - rate, 1e-12)))
    return table


def _threshold_for(values: np.ndarray, threshold: float | None, area_fraction: float | None) -> float:
    if (threshold is None) == (area_fraction is None):
        raise InputError("give exactly one of threshold= and area_fraction=")
    if threshold is not None:
        return float(threshold)
    if not (0 < area_fraction <= 1):
        raise InputError(f"area_fraction={area_fraction!r} must lie in (0, 1]")
    count = int(np.isfinite(values).sum())
    return kth_largest(values, max(1, int(np.ceil(area_fraction * count))))


def deposit_coverage(prob: xr.DataArray, deposits: gpd.GeoDataFrame, area_fraction: float | None = None,
                     threshold: float | None = None) -> dict[str, Any]:
    """Fraction of deposits on cells in the top ``area_fraction`` of the valid area (or ≥ ``threshold``)."""
    if area_fraction is None and threshold is None:
        area_fraction = 0.1
    if _large(prob):      # counted block by block: the threshold, and the cells at or above it
        from prospect.compute import rank_counts

        lazy = _blocks(prob)
        placed = _on_map(lazy, deposits, blockwise=True)
        cut = _threshold_for(lazy, threshold, area_fraction)
        below, _, total = rank_counts(lazy, np.array([cut]))
        return {"threshold": cut, "area_fraction": float((total[0] - below[0]) / total[0]),
                "coverage": float((placed.at >= cut).mean()), **placed.info}
    placed = _on_map(prob, deposits)
    cut = _threshold_for(placed.values, threshold, area_fraction)
    finite = np.isfinite(placed.values)
    return {"threshold": cut, "area_fraction": float(np.count_nonzero(finite & (placed.values >= cut)) / finite.sum()),
            "coverage": float((placed.at >= cut).mean()), **placed.info}


def consensus(maps: Sequence[xr.DataArray], area_fraction: Annotated[float, UP_TO_ONE] = 0.1,
              labels: Sequence[str] | None = None) -> xr.DataArray:
    """Where several models agree: the number of ``maps`` whose top ``area_fraction`` of the area holds each cell.

    Each map's top is cut as :func:`targets` cuts it (its own threshold over its own valid cells). Cells
    invalid on any map are NaN. ``labels`` name the models in ``attrs["models"]``.
    """
    if len(maps) < 1:
        raise InputError("maps: give at least one map")
    if not (0 < area_fraction <= 1):
        raise InputError(f"area_fraction={area_fraction!r} must lie in (0, 1]")
    grid = Grid.from_dataarray(maps[0])
    for number, other in enumerate((Grid.from_dataarray(m) for m in maps[1:]), 2):
        if other != grid:
            raise GridMismatchError(f"map {number} is on {other}, map 1 on {grid}; give every map on one grid")
    large = any(_large(m) for m in maps)     # then a lazy count, each map's threshold counted block by block
    count, valid = np.float32(0), True
    for values in (_blocks(m).data if large else _surface(m)[0] for m in maps):
        valid = valid & np.isfinite(values)
        count = count + (np.isfinite(values) & (values >= _threshold_for(values, None, area_fraction)))
    count = np.where(valid, count, np.nan).astype(np.float32)
    out = grid.wrap(count[None], bands=["models_agreeing"]).squeeze("band", drop=True)
    out.attrs.update(models=list(labels) if labels is not None else [], area_fraction=float(area_fraction),
                     long_name="models agreeing", definition=f"the number of the {len(maps)} models whose top "
                     f"{100 * area_fraction:g} % of the area holds the cell")
    return out


def _drivers(contributions: xr.DataArray, grid: Any, labels: np.ndarray, index: np.ndarray,
             top: int) -> tuple[list[str], list[str]]:
    """Per labelled target: its ``top`` bands by mean share (largest first) as text, and the first band."""
    from scipy import ndimage

    if contributions.dims != ("band", "y", "x") or Grid.from_dataarray(contributions) != grid:
        raise GridMismatchError(f"contributions must be (band, y, x) on the map's grid {grid}; got "
                                f"{contributions.dims} on {Grid.from_dataarray(contributions)}")
    bands = [str(b) for b in contributions["band"].to_numpy()]
    means = np.array([ndimage.mean(np.nan_to_num(layer), labels, index) for layer in contributions.to_numpy()])
    text, first = [], []
    for column in means.T:
        order = np.argsort(-column, kind="stable")[:top]
        text.append("; ".join(f"{bands[b]} {column[b]:+.2g}" for b in order))
        first.append(bands[order[0]])
    return text, first


def targets(prob: xr.DataArray, threshold: Annotated[float | None, FRACTION_OPEN] = None,
            area_fraction: Annotated[float | None, UP_TO_ONE] = None, min_area: Annotated[float, NOT_NEGATIVE] = 0.0,
            deposits: gpd.GeoDataFrame | None = None,
            uncertainty: xr.DataArray | None = None, agreement: xr.DataArray | None = None,
            contributions: xr.DataArray | None = None, drivers: Annotated[int, whole(1)] = 3) -> gpd.GeoDataFrame:
    """Target areas: connected cells at or above a threshold, as ranked polygons.

    Parameters
    ----------
    prob : DataArray (y, x)
    threshold, area_fraction : float
        Exactly one: a probability, or the fraction of the valid area to keep.
    min_area : float
        Drop targets smaller than this (CRS units², e.g. m²).
    deposits : GeoDataFrame, optional
        Known deposits, counted per target (``n_deposits``).
    uncertainty : DataArray (y, x), optional
        A raster on the same grid (e.g. the spread of fold models' maps), averaged per
        target (``mean_uncertainty``).
    agreement : DataArray (y, x), optional
        How many models place each cell in their top (:func:`consensus`): its lower median over a target's
        cells (at least half the target is in that many models' tops) is ``models_agreeing``, and targets rank
        by it first, so that targets several models share rank above those one model alone proposes.
    contributions : DataArray (band, y, x), optional
        Every band's share of each cell's score (:mod:`prospect.explain`,
        :meth:`prospect.validation.CrossValidation.contributions`): averaged over each target, the ``drivers``
        bands with the largest mean share name why it is a target (``drivers``, e.g. ``"Cu +0.84; fault_distance
        +0.51; unit +0.20"``, in the shares' ``unit``) and ``top_band`` the first.
    drivers : int
        How many bands ``drivers`` names.

    Returns
    -------
    GeoDataFrame with ``rank`` (1 = highest maximum probability; with ``agreement``, most models
    agreeing first), ``area`` (CRS
    units²), ``area_km2`` (for a CRS in metres), ``centroid_x``, ``centroid_y``,
    ``max_probability``, ``mean_probability`` (and ``n_deposits``,
    ``mean_uncertainty``), in the map's CRS. Cells touching at corners belong to one
    target. Write it with ``gdf.to_file("targets.gpkg")``.
    """
    import geopandas as gpd
    import rasterio.features
    from scipy import ndimage
    from shapely.geometry import shape

    from prospect.compute import at_cells, strips, value_range

    large = _large(prob)     # read a row of blocks at a time: what is held whole is the target cells' mask and labels
    values, grid = (_blocks(prob), Grid.from_dataarray(prob)) if large else _surface(prob)
    if large and np.isnan(value_range(values)[0]):
        raise InputError("the map holds no valid (non-NaN) cell")
    for layer, name in ((uncertainty, "uncertainty"), (agreement, "agreement")):
        if layer is not None and Grid.from_dataarray(layer) != grid:
            raise GridMismatchError(f"{name} is on {Grid.from_dataarray(layer)}, the map on {grid}; give both on "
                                    "one grid")
    cut = _threshold_for(values, threshold, area_fraction)
    mask = np.zeros(grid.shape, bool)
    for r0, r1, part in strips(values):
        mask[r0:r1] = np.isfinite(part) & (part >= cut)

    def at_targets(layer: xr.DataArray) -> np.ndarray:
        """``layer``'s values on the target cells (the mask's, in the grid's order), float64."""
        return at_cells(_blocks(layer) if large else _surface(layer)[0], mask).astype(np.float64)

    labels, count = ndimage.label(mask, structure=np.ones((3, 3)))
    columns = ["rank", "area", "area_km2", "centroid_x", "centroid_y", "max_probability", "mean_probability"]
    cell_area = grid.resolution[0] * grid.resolution[1]
    if count and min_area > 0:   # targets too small are dropped before they are outlined (a noisy map has many)
        cells = np.bincount(labels.ravel(), minlength=count + 1)
        keep = cells * cell_area >= min_area
        keep[0] = False
        if keep.any():           # (none left: the table below comes out empty, with its columns)
            renumber = np.where(keep, np.cumsum(keep), 0).astype(labels.dtype)
            for r0 in range(0, grid.shape[0], 1024):      # in place, a strip at a time (no second label array)
                labels[r0:r0 + 1024] = renumber[labels[r0:r0 + 1024]]
            mask = labels > 0
            count = int(keep.sum())
    if count == 0:
        return gpd.GeoDataFrame({c: [] for c in columns}, geometry=[], crs=grid.crs)
    index = np.arange(1, count + 1)
    # per target, over its cells only (the cells of the mask, in the grid's order: ndimage's sums, less memory)
    inside = labels[mask]
    cells = np.bincount(inside, minlength=count + 1)[1:]
    areas = cells * cell_area
    inside_values = at_targets(prob)
    means = np.bincount(inside, weights=inside_values, minlength=count + 1)[1:] / cells
    order = np.argsort(inside, kind="stable")
    maxima = np.maximum.reduceat(inside_values[order], np.r_[0, np.cumsum(cells)[:-1]])
    geometries: dict[int, list] = {}
    for geometry, value in rasterio.features.shapes(labels.astype(np.int32, copy=False), mask=mask, connectivity=8,
                                                    transform=grid.transform):
        geometries.setdefault(int(value), []).append(shape(geometry))
    from shapely.ops import unary_union

    frame = gpd.GeoDataFrame({"area": areas, "max_probability": maxima, "mean_probability": means},
                             geometry=[unary_union(geometries[i]) for i in index], crs=grid.crs)
    if uncertainty is not None:
        frame["mean_uncertainty"] = np.bincount(inside, weights=np.nan_to_num(at_targets(uncertainty)),
                                                minlength=count + 1)[1:] / cells
    if contributions is not None:
        frame["drivers"], frame["top_band"] = _drivers(contributions, grid, labels, index, int(drivers))
    order = ["max_probability", "area"]
    if agreement is not None:
        # the lower median over the target: at least half its cells are in that many models' tops (a mean would
        # put one-cell targets, trivially agreed on, above a large target most models share)
        frame["models_agreeing"] = ndimage.labeled_comprehension(
            np.nan_to_num(at_targets(agreement)), inside, index, lambda v: np.sort(v)[(len(v) - 1) // 2],
            np.float64, 0).astype(int)
        order.insert(0, "models_agreeing")
    frame = frame[frame["area"] >= min_area].sort_values(order, ascending=False)
    frame.insert(0, "rank", np.arange(1, len(frame) + 1))
    if grid.crs.axis_info and grid.crs.axis_info[0].unit_name in ("metre", "meter"):
        frame.insert(2, "area_km2", frame["area"] / 1e6)
    centres = frame.geometry.centroid
    frame.insert(3, "centroid_x", centres.x)
    frame.insert(4, "centroid_y", centres.y)
    if deposits is not None:
        points = deposits.to_crs(grid.crs) if deposits.crs != grid.crs else deposits
        joined = gpd.sjoin(points[[points.geometry.name]], frame[["rank", "geometry"]], predicate="within")
        frame["n_deposits"] = frame["rank"].map(joined["rank"].value_counts()).fillna(0).astype(int)
    return frame.reset_index(drop=True)


def evaluate_map(prob: xr.DataArray, deposits: gpd.GeoDataFrame,
                 area_fraction: Annotated[float, UP_TO_ONE] = 0.1) -> dict[str, Any]:
    """The usual summary: map AUC, success-rate AUC, coverage at ``area_fraction`` and the P-A intersection."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # counts are reported once, below
        curve = success_rate_curve(prob, deposits)
        pa = _prediction_area(curve)
        coverage = deposit_coverage(prob, deposits, area_fraction=area_fraction)
        auc = map_auc(prob, deposits)
    if coverage["used"] < coverage["deposits"]:
        warnings.warn(f"{coverage['outside']} deposits outside the map, {coverage['nodata']} on nodata",
                      stacklevel=2)
    return {"map_auc": auc, "success_rate_auc": curve.attrs["auc"], "coverage": coverage["coverage"],
            "coverage_area_fraction": coverage["area_fraction"], "pa_threshold": pa.attrs["intersection_threshold"],
            "pa_rate": pa.attrs["intersection_rate"], "deposits": coverage["deposits"], "used": coverage["used"],
            "outside": coverage["outside"], "nodata": coverage["nodata"]}


def plot_map(prob: xr.DataArray, deposits: gpd.GeoDataFrame | None = None, target_areas: Any = None,
             geology: gpd.GeoDataFrame | None = None, title: str = "Prospectivity", ax: Any = None,
             faults: gpd.GeoDataFrame | None = None, undiscovered: gpd.GeoDataFrame | None = None,
             fractions: Sequence[float] = (0.05, 0.1, 0.2), outlines: Annotated[int, whole(1)] = 300,
             numbers: Annotated[int, whole(0)] = 50, pixels: Annotated[int, whole(256)] = 2000) -> Figure:
    """The probability map with target outlines (numbered by rank), deposits, faults and geology on top.

    The colours span the map's own range, and the colour bar marks the probabilities above which lie the top
    ``fractions`` of the valid area ("top 5 %", ...). Every layer drawn has a legend entry; the axes carry plain
    coordinates with the CRS named. The first ``outlines`` targets are outlined and the first ``numbers`` numbered
    (a figure cannot show thousands; ``targets.gpkg`` holds them all). A map of more than ``pixels`` cells a side is
    shown as the mean of square blocks of cells (the title says so); the colour-bar marks stay those of every cell.
    """
    from matplotlib.lines import Line2D
    from matplotlib.patheffects import withStroke
    from matplotlib.ticker import ScalarFormatter

    from prospect._plot import figure_and_axes
    from prospect.compute import block_means, value_range

    large = _large(prob)    # then read a strip at a time: its range, thresholds and block means counted by block
    values, grid = (_blocks(prob).data, Grid.from_dataarray(prob)) if large else _surface(prob)
    fig, ax = figure_and_axes(ax, (8.2, 7))
    xmin, ymin, xmax, ymax = grid.bounds
    finite = values if large else values[np.isfinite(values)]
    low, high = value_range(finite)
    valued = not np.isnan(low)
    low, high = (low, high if high > low else low + 1e-6) if valued else (0.0, 1.0)
    factor = int(np.ceil(max(grid.shape) / int(pixels)))
    shown_values = values
    if factor > 1:     # block means (NaN-aware) of factor x factor cells, the last blocks cut to the grid
        shown_values = block_means(values, factor)
        rows, cols = shown_values.shape[0] * factor, shown_values.shape[1] * factor
        xmax_shown, ymin_shown = xmin + cols * grid.resolution[0], ymax - rows * grid.resolution[1]
        title = f"{title} (shown as means of {factor} x {factor} cells)"
    else:
        xmax_shown, ymin_shown = xmax, ymin
    image = ax.imshow(shown_values, extent=(xmin, xmax_shown, ymin_shown, ymax), cmap="magma", vmin=low, vmax=high,
                      origin="upper", interpolation="nearest")
    bar = fig.colorbar(image, ax=ax, label="ore probability (colours span the map's range)", shrink=0.8)
    bar.ax.yaxis.set_major_formatter(ScalarFormatter(useOffset=False))
    if valued:    # the share of the area above: read off the left of the colour bar
        cuts = [_threshold_for(finite, None, fraction) for fraction in fractions]
        for cut in cuts:
            bar.ax.axhline(cut, color="cyan", linewidth=1)
        area = bar.ax.secondary_yaxis("left")
        area.set_yticks(cuts, [f"top {100 * fraction:g} %" for fraction in fractions], fontsize=7)
    handles = []
    crs = grid.crs
    if geology is not None:
        geology.to_crs(crs).boundary.plot(ax=ax, color="white", linewidth=0.4, alpha=0.6)
        handles.append(Line2D([], [], color="#999999", linewidth=0.8, label="geological boundaries"))
    if faults is not None:
        faults.to_crs(crs).plot(ax=ax, color="#bbbbbb", linewidth=0.9, linestyle="--")
        handles.append(Line2D([], [], color="#bbbbbb", linewidth=0.9, linestyle="--", label="faults"))
    if target_areas is not None and len(target_areas):
        ordered = target_areas.sort_values("rank") if "rank" in target_areas else target_areas
        shown = ordered.iloc[:int(outlines)].to_crs(crs)
        shown.boundary.plot(ax=ax, color="cyan", linewidth=0.9)
        if "rank" in shown:
            numbered = shown.iloc[:int(numbers)]
            for rank, point in zip(numbered["rank"], numbered.geometry.representative_point(), strict=True):
                ax.annotate(str(rank), (point.x, point.y), color="cyan", fontsize=7, fontweight="bold",
                            ha="center", va="center", path_effects=[withStroke(linewidth=2, foreground="black")])
        some = "" if len(shown) == len(target_areas) else f"; the first {len(shown)} of {len(target_areas)}"
        handles.append(Line2D([], [], color="cyan", linewidth=1.2, label=f"target areas (rank{some})"))
    if deposits is not None:
        deposits.to_crs(crs).plot(ax=ax, color="lime", edgecolor="black", markersize=18)
        handles.append(Line2D([], [], marker="o", linestyle="", markerfacecolor="lime", markeredgecolor="black",
                              label="known deposits"))
    if undiscovered is not None:
        undiscovered.to_crs(crs).plot(ax=ax, color="white", edgecolor="black", marker="*", markersize=70)
        handles.append(Line2D([], [], marker="*", markersize=10, linestyle="", markerfacecolor="white",
                              markeredgecolor="black", label="undiscovered deposits (held out)"))
    if handles:
        ax.legend(handles=handles, loc="lower right", fontsize=7, framealpha=0.85)
    for axis in (ax.xaxis, ax.yaxis):
        formatter = ScalarFormatter(useOffset=False)
        formatter.set_scientific(False)
        axis.set_major_formatter(formatter)
    unit = crs.axis_info[0].unit_name if crs.axis_info else "units"
    ax.tick_params(labelsize=7)
    ax.set(title=title, xlim=(xmin, xmax), ylim=(ymin, ymax), xlabel=f"easting ({unit}), {crs_label(crs)}",
           ylabel=f"northing ({unit})")
    return fig
