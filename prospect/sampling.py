"""Training samples that fit prospectivity: cells near deposits against background cells.

    points = pp.sampling.sample_points(stack, deposits, positive_radius=1000, negative_ratio=5, seed=0)
    X = pp.sampling.pixel_values(stack, points)                  # (n, bands): for pixel classifiers
    stats = pp.sampling.fit_normalization(stack, allowed)        # training area only
    tiles = pp.sampling.windows(stack, points, size=17, normalization=stats)   # for networks

The label belongs to the **centre** cell: a cell is ore-related (1) when its centre lies within
``positive_radius`` of a deposit, background (0) when it lies farther than ``negative_distance``
from every deposit; cells in between are not used. Every positive cell is a sample, so a window
centred on it sees the deposit at a random offset (the shift augmentation comes for free), and
negatives are drawn at random from the background. A map made from such a model has the grid's
resolution, not the tile's (:func:`prospect.mapping.predict_centres`). No torch here.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from prospect.errors import InputError
from prospect.grid import Grid

if TYPE_CHECKING:
    import geopandas as gpd
    import xarray as xr

    from prospect.tiles import TileSet

__all__ = ["Points", "sample_points", "pixel_values", "fit_normalization", "padded", "windows", "one_hot"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Points:
    """Labelled cells of a grid: ``row``, ``col`` (int64) and ``y`` (1 near a deposit, 0 background)."""

    row: np.ndarray
    col: np.ndarray
    y: np.ndarray
    attrs: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.y)

    def counts(self) -> dict[str, int]:
        return {"positive": int((self.y == 1).sum()), "negative": int((self.y == 0).sum())}


def _valid(stack: xr.DataArray) -> np.ndarray:
    from prospect.compute import valid_cells

    return valid_cells(stack)


def sample_points(
    stack: xr.DataArray,
    deposits: gpd.GeoDataFrame,
    allowed: np.ndarray | None = None,
    positive_radius: float = 1000.0,
    negative_ratio: float = 5.0,
    negative_distance: float | None = None,
    max_positives: int | None = None,
    seed: int = 0,
) -> Points:
    """Cells near ``deposits`` (label 1) and random background cells (label 0).

    Parameters
    ----------
    stack : DataArray (band, y, x)
        Only cells valid (finite) in every band are used.
    deposits : GeoDataFrame
        The training deposits (never the held-out ones).
    allowed : ndarray (y, x) bool, optional
        Cells that may be used at all, e.g. :meth:`prospect.folds.SpatialFolds.training_mask`.
    positive_radius : float
        A cell is positive when its centre lies within this distance (CRS units) of a deposit.
        Default 1000 m: about the reach of a stream-sediment halo.
    negative_ratio : float
        Negatives drawn per positive (without replacement; fewer when the background is smaller).
    negative_distance : float, optional
        Negatives lie farther than this from every deposit. Default ``positive_radius``.
    max_positives : int, optional
        Keep at most this many positives, drawn at random (networks on a CPU).
    seed : int

    Raises
    ------
    InputError
        A radius or ratio out of range, or no positive cell (no deposit on an allowed valid cell).
    """
    from prospect.layers import near_deposits

    grid = Grid.from_dataarray(stack)
    if not (np.isfinite(positive_radius) and positive_radius >= 0):
        raise InputError(f"positive_radius={positive_radius!r} must be a distance ≥ 0 in CRS units")
    if not (np.isfinite(negative_ratio) and negative_ratio > 0):
        raise InputError(f"negative_ratio={negative_ratio!r} must be a positive number of negatives per positive")
    negative_distance = positive_radius if negative_distance is None else float(negative_distance)
    if not (np.isfinite(negative_distance) and negative_distance >= positive_radius):
        raise InputError(f"negative_distance={negative_distance!r} must be at least positive_radius="
                         f"{positive_radius!r}")
    if max_positives is not None and (int(max_positives) != max_positives or max_positives < 1):
        raise InputError(f"max_positives={max_positives!r} must be a positive whole number or None")
    usable = _valid(stack)
    if allowed is not None:
        allowed = np.asarray(allowed, bool)
        if allowed.shape != grid.shape:
            raise InputError(f"allowed has shape {allowed.shape}; the stack's grid is {grid.shape}")
        usable &= allowed
    near = near_deposits(deposits, grid, radius=positive_radius)     # masks of a byte a cell, worked in place
    background = ~(near_deposits(deposits, grid, radius=negative_distance) if negative_distance > positive_radius
                   else near)
    near &= usable
    positive = np.flatnonzero(near.ravel())
    del near
    background &= usable     # a mask, not its cells' indices: 8 bytes a cell on a large grid
    available = int(np.count_nonzero(background))
    if len(positive) == 0:
        raise InputError(f"no usable cell lies within positive_radius={positive_radius:g} of the {len(deposits)} "
                         "deposits; check their CRS, or use a larger positive_radius")
    if available == 0:
        raise InputError(f"no usable cell lies farther than negative_distance={negative_distance:g} from every "
                         "deposit; use a smaller negative_distance")
    rng = np.random.default_rng(seed)
    if max_positives is not None and len(positive) > max_positives:
        positive = np.sort(rng.choice(positive, int(max_positives), replace=False))
    wanted = int(round(negative_ratio * len(positive)))
    if wanted > available:
        log.info("negative_ratio=%g asks for %d negatives; the background holds %d, all used", negative_ratio,
                 wanted, available)
    # the draw of rng.choice(<the background's cell indices>, ...), made on their positions
    negative = np.sort(_nth_true(background, rng.choice(available, min(wanted, available), replace=False)))
    cells = np.concatenate([positive, negative])
    return Points(cells // grid.shape[1], cells % grid.shape[1],
                  np.r_[np.ones(len(positive), np.int64), np.zeros(len(negative), np.int64)],
                  attrs={"positive_radius": float(positive_radius), "negative_distance": negative_distance,
                         "negative_ratio": float(negative_ratio), "seed": int(seed)})


def _nth_true(mask: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """The flat index of the ``positions[i]``-th True cell of a 2-D ``mask`` (row-major order, from 0): what
    ``np.flatnonzero(mask)[positions]`` gives, without listing every True cell."""
    per_row = np.count_nonzero(mask, axis=1)
    ends = np.cumsum(per_row)
    rows = np.searchsorted(ends, positions, side="right")
    out = np.empty(len(positions), np.int64)
    for row in np.unique(rows):
        here = rows == row
        columns = np.flatnonzero(mask[row])
        out[here] = row * mask.shape[1] + columns[positions[here] - (ends[row] - per_row[row])]
    return out


def pixel_values(stack: xr.DataArray, points: Points) -> np.ndarray:
    """The stack's values at each point, ``(n, bands)`` float32 (a lazy stack reads the blocks holding one)."""
    from prospect.compute import values_at

    return values_at(stack, points.row, points.col)


def fit_normalization(stack: xr.DataArray, allowed: np.ndarray | None = None) -> dict:
    """Per-band mean and standard deviation over the valid (and ``allowed``) cells of ``stack``.

    The same format as :func:`prospect.tiles.fit_normalization`; fit it on the training area only. A lazy stack's
    are summed block by block (equal to float64 rounding).

    A 0/1 indicator band (a class of :func:`one_hot`, a binary raster) is not scaled by its own spread but mapped
    to -1 and +1 (mean 0.5, standard deviation 0.5): standardised, a class on 0.3 % of the area would give its
    cells a value of 18, and a network's weight for a class that few training windows hold would be multiplied by
    it at every such cell. (Kolari, the window network: a held-out deposit on such a class ranked at 0.007.)
    """
    from prospect import normalization
    from prospect.compute import is_lazy, valid_cells

    if is_lazy(stack):   # per band over the used cells, block by block (dask's moments: to float64 rounding)
        import dask
        import dask.array

        use = valid_cells(stack) if allowed is None else valid_cells(stack) & np.asarray(allowed, bool)
        if not use.any():
            raise InputError("no valid cell to fit the normalisation on")
        kept = dask.array.where(dask.array.from_array(use, chunks=stack.data.chunks[1:])[None],
                                stack.data.astype(np.float64), np.nan)
        binary = (kept == 0) | (kept == 1) | dask.array.isnan(kept)
        mean, std, indicator = dask.compute(dask.array.nanmean(kept, axis=(1, 2)), dask.array.nanstd(kept, axis=(1, 2)),
                                            binary.all(axis=(1, 2)))
        return normalization.signed_indicators(normalization.from_moments(stack["band"].to_numpy(), mean, std),
                                               indicator)
    values = stack.to_numpy().astype(np.float64)
    use = np.isfinite(values).all(axis=0)
    if allowed is not None:
        use &= np.asarray(allowed, bool)
    if not use.any():
        raise InputError("no valid cell to fit the normalisation on")
    used = values[:, use]
    indicator = ((used == 0) | (used == 1)).all(axis=1)
    return normalization.signed_indicators(normalization.fit(used, stack["band"].to_numpy(), axis=1), indicator)


def standardise(values: np.ndarray, stats: dict, bands: list[str], in_place: bool = False) -> np.ndarray:
    """(band, y, x) values standardised by :func:`prospect.normalization.apply`."""
    from prospect import normalization

    return normalization.apply(values, stats, bands, band_axis=0, in_place=in_place)


def one_hot(stack: xr.DataArray) -> xr.DataArray:
    """The stack with every categorical band (a class-coded layer with a legend, not ordinal) as one 0/1 band
    per class, named ``<band>=<code>``; NaN stays NaN. Networks read these: a lithology code is a name, and
    its number would otherwise be standardised and convolved as if class 7 were more than class 6 (the
    logistic regression one-hot encodes the same bands, :func:`prospect.baselines.build_baseline`).
    """
    from prospect.files import parse_legend
    from prospect.layers import categorical_bands

    coded = set(categorical_bands(stack))
    if not coded:
        return stack
    from prospect.compute import is_lazy

    grid = Grid.from_dataarray(stack)
    lazy = is_lazy(stack)      # a lazy stack's bands stay lazy (numpy's functions dispatch to dask's)
    values, names, parts = stack.data if lazy else stack.to_numpy(), [], []
    for i, band in enumerate(str(b) for b in stack["band"].to_numpy()):
        if i not in coded:
            names.append(band)
            parts.append(values[i])
            continue
        finite = np.isfinite(values[i])
        found = np.unique(values[i][finite])
        found = found.compute() if lazy else found
        codes = sorted(set(parse_legend(stack.attrs[f"{band}_legend"])) | set(found.astype(int)))
        for code in codes:
            names.append(f"{band}={code}")
            parts.append(np.where(finite, (values[i] == code).astype(np.float32), np.nan))
    joined = np.stack(parts).astype(np.float32)
    out = grid.wrap(joined.rechunk({0: -1}) if lazy else joined, bands=names)
    return out.assign_attrs({k: v for k, v in stack.attrs.items() if not k.endswith("_legend")})


def filled(values: np.ndarray, bands: list[str], normalization: dict | None = None,
           means: np.ndarray | None = None) -> np.ndarray:
    """``(band, y, x)`` values as float32 (a copy), standardised by ``normalization``, NaN set to 0 once
    standardised (the band mean; for a 0/1 band read as -1/+1, :func:`fit_normalization`, halfway: neither
    value), else to ``means`` (default: the mean of the band's values given)."""
    values = values.astype(np.float32, copy=True)
    if normalization is not None:
        standardise(values, normalization, bands, in_place=True)
    for b, band in enumerate(values):
        holes = ~np.isfinite(band)
        if holes.any():
            band[holes] = 0.0 if normalization is not None else means[b] if means is not None else \
                (np.nanmean(band) if (~holes).any() else 0.0)
    return values


def padded(stack: xr.DataArray, size: int, normalization: dict | None = None) -> np.ndarray:
    """The stack standardised, NaN set to 0 (:func:`filled`), padded by ``size // 2``.

    A window of ``size`` cells centred on cell ``(r, c)`` is ``padded[:, r:r + size, c:c + size]``;
    near the edges the padding repeats the edge cells.
    """
    values = filled(stack.to_numpy(), [str(b) for b in stack["band"].to_numpy()], normalization)
    half = int(size) // 2
    return np.pad(values, ((0, 0), (half, int(size) - 1 - half), (half, int(size) - 1 - half)), mode="edge")


def _lazy_windows(stack: xr.DataArray, points: Points, size: int, normalization: dict | None) -> np.ndarray:
    """:func:`windows`' arrays from a lazy stack: each window's cells gathered from the blocks they lie in (across
    block borders), the edge repeated beyond the grid, standardised and filled as :func:`padded` does."""
    bands = [str(b) for b in stack["band"].to_numpy()]
    if len(points) == 0:
        return np.zeros((0, len(bands), size, size), np.float32)
    offsets = np.arange(size) - size // 2
    rows = np.clip(points.row[:, None] + offsets, 0, stack.sizes["y"] - 1)      # edge mode: the nearest edge cell
    cols = np.clip(points.col[:, None] + offsets, 0, stack.sizes["x"] - 1)
    picked = stack.data.vindex[:, rows[:, :, None], cols[:, None, :]].compute()  # (n, size, size, bands)
    x = np.ascontiguousarray(np.moveaxis(picked, -1, 1), dtype=np.float32)
    if normalization is not None:
        from prospect import normalization as norm

        x = norm.apply(x, normalization, bands, band_axis=1, in_place=True)
        x[~np.isfinite(x)] = 0.0
        return x
    for b in range(len(bands)):
        holes = ~np.isfinite(x[:, b])
        if holes.any():     # the band's mean, as padded() takes it (the band read whole, once)
            band = stack.isel(band=b).to_numpy().astype(np.float32)
            x[:, b][holes] = np.nanmean(band) if np.isfinite(band).any() else 0.0
    return x


def windows(stack: xr.DataArray, points: Points, size: int, normalization: dict | None = None) -> TileSet:
    """Windows of ``size`` × ``size`` cells centred on each point, labelled by the point, as a TileSet.

    ``row``/``col`` of the TileSet are each window's upper-left cell (negative near the upper and
    left edges, where the window reaches into the edge padding of :func:`padded`). A lazy stack
    (:mod:`prospect.compute`) is never padded whole: each window is gathered from the blocks it lies in, the same
    values.
    """
    from prospect.tiles import TileSet

    grid = Grid.from_dataarray(stack)
    if int(size) != size or size < 1:
        raise InputError(f"size={size!r} must be a positive whole number of cells")
    size = int(size)
    from prospect.compute import is_lazy

    if is_lazy(stack):
        x = _lazy_windows(stack, points, size, normalization)
    else:
        source = padded(stack, size, normalization)
        x = np.stack([source[:, r:r + size, c:c + size] for r, c in zip(points.row, points.col, strict=True)]) \
            if len(points) else np.zeros((0, source.shape[0], size, size), np.float32)
    half = size // 2
    top, left = points.row - half, points.col - half
    transform = grid.transform
    xmin = transform.c + left * transform.a
    ymax = transform.f + top * transform.e
    bounds = np.column_stack([xmin, ymax + size * transform.e, xmin + size * transform.a, ymax])
    return TileSet(x, points.y.astype(np.int64), top.astype(np.int64), left.astype(np.int64), bounds,
                   np.zeros(len(points), bool), np.zeros(len(points), np.int64),
                   [str(b) for b in stack["band"].to_numpy()], grid.crs.to_wkt(), tuple(transform)[:6], size, 1,
                   normalization=None if normalization is None else dict(normalization),
                   attrs={"label": "center cell", **points.attrs})
