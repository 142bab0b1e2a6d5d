"""Inverse distance weighting of survey elements onto a grid.

``Z(x0) = Σ Z_i / D_i^p / Σ 1 / D_i^p`` (the MFAF paper's eqs. 10–11, p = 2),
evaluated at pixel centres, over all samples, the ``k`` nearest, or those within
a radius. Every element shares one neighbour search and one set of weights.

On the CPU the all-points form runs a Numba kernel vectorised over pixels on all
cores; the k-nearest form searches a bucket grid of the samples ring by ring
(exact, like a KD-tree) and weights in place, so memory beyond the output stays
bounded by the samples. ``device="cuda"`` runs the same sums in torch
(float64) on a GPU. :func:`idw_lazy` builds the same raster as a dask array,
block by block, for outputs larger than memory.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

import numpy as np
import pandas as pd

from prospect.errors import ColumnError, CRSError, InputError
from prospect.grid import Grid, require_projected
from prospect.io import element_columns
from prospect.ranges import POSITIVE, or_word, whole

if TYPE_CHECKING:
    import geopandas as gpd
    import xarray as xr

__all__ = ["idw", "idw_lazy"]

logger = logging.getLogger(__name__)


@dataclass
class _Problem:
    """Samples ready for interpolation: unique coordinates, values, and the grid."""

    grid: Grid
    elements: list[str]
    xy: np.ndarray           # (n, 2) float64, unique
    values: np.ndarray       # (n, E) float64, NaN where missing
    power: float
    k: int | None
    radius: float | None
    min_points: int
    log10: bool
    device: str
    chunk: int
    max_distance: float | None = None
    spacing: float = float("nan")   # median distance from a sample to its nearest neighbour
    units: str = ""                 # "Cu=ppm;Au=ng/g", from the survey's attrs["units"], for the band metadata

    def groups(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """(element columns, sample rows) sharing one pattern of missing values."""
        finite = np.isfinite(self.values)
        patterns: dict[bytes, list[int]] = {}
        for column in range(finite.shape[1]):
            patterns.setdefault(finite[:, column].tobytes(), []).append(column)
        return [(np.array(columns), finite[:, columns[0]]) for columns in patterns.values()]


def _element_list(samples: pd.DataFrame, elements: Any) -> list[str]:
    if isinstance(elements, str):
        elements = [elements]
    elif isinstance(elements, pd.Series) and pd.api.types.is_bool_dtype(elements):
        elements = elements.index[elements.to_numpy()].tolist()  # e.g. a screening table's `selected`
    elif elements is None:
        elements = element_columns(samples)
    elements = [str(e) for e in elements]
    if not elements:
        raise ColumnError("elements is empty: name at least one element column to interpolate")
    unknown = [e for e in elements if e not in samples.columns]
    if unknown:
        raise ColumnError(f"elements {unknown} are not columns of samples; available: {element_columns(samples)}")
    if len(set(elements)) != len(elements):
        raise InputError(f"elements {elements} names a column twice")
    return elements


AUTO_SPACINGS = 3.0   # max_distance="auto": this many median sample spacings


def _max_distance(max_distance: Any, xy: np.ndarray) -> tuple[float | None, float]:
    """The distance beyond which pixels are NaN, and the median nearest-neighbour spacing of the samples."""
    from scipy.spatial import cKDTree

    spacing = float("nan")
    if len(xy) > 1:
        distance, _ = cKDTree(xy).query(xy, k=2)
        spacing = float(np.median(distance[:, 1]))
    if max_distance is None:
        return None, spacing
    if isinstance(max_distance, str):
        if max_distance != "auto":
            raise InputError(f"max_distance={max_distance!r}; valid: 'auto' ({AUTO_SPACINGS:g} x the median "
                             "distance between neighbouring samples), a distance in CRS units, or None (no limit)")
        if not np.isfinite(spacing) or spacing <= 0:
            return None, spacing
        return AUTO_SPACINGS * spacing, spacing
    if isinstance(max_distance, bool) or not isinstance(max_distance, (int, float, np.number)) or \
            not (np.isfinite(max_distance) and max_distance > 0):
        raise InputError(f"max_distance={max_distance!r} must be a positive distance in CRS units, 'auto' or None")
    return float(max_distance), spacing


def _prepare(samples: gpd.GeoDataFrame, elements: Any, grid: Grid, power: float, k: int | None,
             radius: float | None, min_points: int, log: bool, device: str, chunk: int,
             max_distance: Any = "auto") -> _Problem:
    if not isinstance(grid, Grid):
        raise InputError(f"grid must be a prospect.Grid, got {type(grid).__name__}")
    require_projected(grid.crs, "grid.crs", "interpolation distances")
    if getattr(samples, "crs", None) is None:
        raise CRSError("samples have no CRS; read them with pp.io.read_samples(..., crs=...) or set one with "
                       "samples.set_crs(...)")
    if samples.crs != grid.crs:
        samples = samples.to_crs(grid.crs)
    elements = _element_list(samples, elements)
    if not (np.isfinite(power) and power > 0):
        raise InputError(f"power={power!r} must be a positive number (2 in the MFAF paper)")
    if radius is not None and not (np.isfinite(radius) and radius > 0):
        raise InputError(f"radius={radius!r} must be a positive distance in CRS units, or None for no limit")
    if int(min_points) != min_points or min_points < 1:
        raise InputError(f"min_points={min_points!r} must be a whole number of at least 1")
    if int(chunk) != chunk or chunk < 1:
        raise InputError(f"chunk={chunk!r} must be a positive number of pixels")

    xy = np.column_stack([samples.geometry.x.to_numpy(), samples.geometry.y.to_numpy()])
    values = np.column_stack([pd.to_numeric(samples[e], errors="coerce").to_numpy(dtype=float)
                              for e in elements])
    keep = np.all(np.isfinite(xy), axis=1)
    xy, values = xy[keep], values[keep]
    dropped = {e: int(n) for e, n in zip(elements, (~np.isfinite(values)).sum(axis=0), strict=True) if n}
    if dropped:
        logger.info("NaN values dropped per element: %s", dropped)
    if log:
        bad = {e: int(n) for e, n in zip(elements, (values <= 0).sum(axis=0), strict=True) if n}
        if bad:
            raise InputError(f"log=True needs positive values, but these elements have zeros or negatives: {bad}; "
                             "prospect.geochem.transform(samples, 'log10') substitutes them by a stated rule")
        values = np.log10(values)

    unique, inverse, counts = np.unique(xy, axis=0, return_inverse=True, return_counts=True)
    if len(unique) < len(xy):
        inverse = inverse.ravel()
        sums = np.zeros((len(unique), values.shape[1]))
        n_finite = np.zeros_like(sums)
        np.add.at(sums, inverse, np.nan_to_num(values))
        np.add.at(n_finite, inverse, np.isfinite(values))
        with np.errstate(invalid="ignore", divide="ignore"):
            merged = np.where(n_finite > 0, sums / n_finite, np.nan)
        differing = int(np.sum(np.any(np.abs(values - merged[inverse]) > 0, axis=1)))
        warnings.warn(f"{len(xy) - len(unique)} samples share coordinates with another ({int((counts > 1).sum())} "
                      f"places, {differing} samples with different values); their values were averaged",
                      stacklevel=3)
        xy, values = unique, merged

    xmin, ymin, xmax, ymax = grid.bounds
    inside = (xy[:, 0] >= xmin) & (xy[:, 0] <= xmax) & (xy[:, 1] >= ymin) & (xy[:, 1] <= ymax)
    if not inside.any():
        span = tuple(round(float(v), 3) for v in (*xy.min(axis=0), *xy.max(axis=0)))
        raise InputError(f"all {len(xy)} samples lie outside the grid bounds {grid.bounds} (samples span "
                         f"{span}): check the CRSs and the grid")
    fewest = int(np.isfinite(values).sum(axis=0).min())
    if fewest == 0:
        empty = [e for e, n in zip(elements, np.isfinite(values).sum(axis=0), strict=True) if n == 0]
        raise ColumnError(f"elements {empty} have no values to interpolate")
    if k is not None:
        if int(k) != k or k < 1:
            raise InputError(f"k={k!r} must be a whole number of neighbours ≥ 1, or None for all samples")
        if k > fewest:
            raise InputError(f"k={k} is larger than the number of samples with values ({fewest}); "
                             f"use k ≤ {fewest} or k=None for all")
        k = int(k)
    if min_points > (k or fewest):
        raise InputError(f"min_points={min_points} exceeds the neighbours available ({k or fewest})")
    limit, spacing = _max_distance(max_distance, xy)
    known = samples.attrs.get("units") or {}
    units = ";".join(f"{e}={f'log10({known[e]})' if log else known[e]}" for e in elements if known.get(e))
    return _Problem(grid, elements, xy, values, float(power), k, None if radius is None else float(radius),
                    int(min_points), bool(log), device, int(chunk), limit, spacing, units)


def _rows_cpu(problem: _Problem, columns: np.ndarray, rows_mask: np.ndarray, r0: int, r1: int,
              out: np.ndarray) -> None:
    """Fill ``out`` (len(columns), r1 - r0, cols) for grid rows r0..r1 on the CPU."""
    from prospect import _kernels as kernels

    grid = problem.grid
    xy = problem.xy[rows_mask]
    z = problem.values[rows_mask][:, columns]
    centre = np.array([0.5 * (grid.bounds[0] + grid.bounds[2]), 0.5 * (grid.bounds[1] + grid.bounds[3])])
    px, py = grid.x - centre[0], grid.y[r0:r1] - centre[1]
    local = xy - centre
    if problem.k is None:
        use_radius = problem.radius is not None
        kernels.idw_all(px, py, local[:, 0].copy(), local[:, 1].copy(), np.ascontiguousarray(z, np.float32),
                        problem.power, use_radius, problem.radius**2 if use_radius else 0.0, problem.min_points, out)
        _set_exact_hits(grid, xy, z, r0, r1, out)
        return
    buckets = _Buckets.build(local, px, py)
    kernels.idw_nearest(px, py, buckets.x0, buckets.y0, buckets.cell, buckets.nx, buckets.ny, buckets.start,
                        buckets.order, local[:, 0].copy(), local[:, 1].copy(), np.ascontiguousarray(z, np.float64),
                        problem.k, problem.radius is not None,
                        0.0 if problem.radius is None else problem.radius**2, problem.power, problem.min_points, out)


@dataclass
class _Buckets:
    """Samples sorted into square buckets covering the samples and the pixels (CSR layout)."""

    x0: float
    y0: float
    cell: float
    nx: int
    ny: int
    start: np.ndarray
    order: np.ndarray

    @classmethod
    def build(cls, xy: np.ndarray, px: np.ndarray, py: np.ndarray) -> _Buckets:
        x0, x1 = min(xy[:, 0].min(), px.min()), max(xy[:, 0].max(), px.max())
        y0, y1 = min(xy[:, 1].min(), py.min()), max(xy[:, 1].max(), py.max())
        sample_area = max(np.ptp(xy[:, 0]) * np.ptp(xy[:, 1]), 1e-12)
        # About 2 samples a bucket (fastest measured for k = 12, 2 M samples); at most 2048 buckets a side.
        cell = max(np.sqrt(sample_area * 2 / len(xy)), max(x1 - x0, y1 - y0) / 2048, 1e-9)
        nx, ny = int((x1 - x0) // cell) + 1, int((y1 - y0) // cell) + 1
        ids = np.minimum(((xy[:, 1] - y0) // cell).astype(np.int64), ny - 1) * nx + \
            np.minimum(((xy[:, 0] - x0) // cell).astype(np.int64), nx - 1)
        order = np.argsort(ids, kind="stable").astype(np.int64)
        start = np.zeros(nx * ny + 1, np.int64)
        np.cumsum(np.bincount(ids, minlength=nx * ny), out=start[1:])
        return cls(float(x0), float(y0), float(cell), nx, ny, start, order)


def _set_exact_hits(grid: Grid, xy: np.ndarray, z: np.ndarray, r0: int, r1: int, out: np.ndarray) -> None:
    """A sample at a pixel centre gives that pixel its own value (eq. 11 is 0/0 there)."""
    row, col = grid.rowcol(xy[:, 0], xy[:, 1])
    ok = (row >= r0) & (row < r1) & (col >= 0) & (col < grid.shape[1])
    row, col, xy, z = row[ok], col[ok], xy[ok], z[ok]
    tolerance = 1e-9 * max(grid.resolution)
    hit = (np.abs(grid.x[col] - xy[:, 0]) <= tolerance) & (np.abs(grid.y[row] - xy[:, 1]) <= tolerance)
    out[:, row[hit] - r0, col[hit]] = z[hit].T


def _rows_torch(problem: _Problem, columns: np.ndarray, rows_mask: np.ndarray, r0: int, r1: int,
                out: np.ndarray) -> None:
    """The same sums in torch, float64, on ``problem.device`` (a GPU)."""
    import torch

    device = torch.device(problem.device)
    grid = problem.grid
    centre = np.array([0.5 * (grid.bounds[0] + grid.bounds[2]), 0.5 * (grid.bounds[1] + grid.bounds[3])])
    xy = torch.as_tensor(problem.xy[rows_mask] - centre, dtype=torch.float64, device=device)
    z = torch.as_tensor(problem.values[rows_mask][:, columns], dtype=torch.float64, device=device)
    px = torch.as_tensor(grid.x - centre[0], dtype=torch.float64, device=device)
    cols, n = grid.shape[1], len(xy)
    step = max(1, min(problem.chunk, 2**27 // max(n, 1)) // cols)  # (pixels × samples) ≤ 2^27 doubles
    for start in range(r0, r1, step):
        stop = min(r1, start + step)
        py = torch.as_tensor(grid.y[start:stop] - centre[1], dtype=torch.float64, device=device)
        gy, gx = torch.meshgrid(py, px, indexing="ij")
        d2 = (gx.reshape(-1, 1) - xy[:, 0]) ** 2 + (gy.reshape(-1, 1) - xy[:, 1]) ** 2
        if problem.k is not None:
            d2, index = torch.topk(d2, problem.k, dim=1, largest=False)
            values = z[index]                                    # (P, k, E)
        else:
            values = z.unsqueeze(0)                               # (1, n, E)
        inside = torch.ones_like(d2, dtype=torch.bool) if problem.radius is None else d2 <= problem.radius**2
        weight = torch.where(inside, d2.clamp_min(1e-300) ** (-problem.power / 2), torch.zeros_like(d2))
        result = (weight.unsqueeze(-1) * values).sum(1) / weight.sum(1, keepdim=True)
        exact = (d2 == 0) & inside
        if exact.any():
            hit_pixel, hit_sample = torch.nonzero(exact, as_tuple=True)
            picked = values[hit_pixel, hit_sample] if problem.k is not None else z[hit_sample]
            result[hit_pixel] = picked
        result[inside.sum(1) < problem.min_points] = float("nan")
        out[:, start - r0:stop - r0, :] = result.T.reshape(len(columns), stop - start, cols).float().cpu().numpy()


def _compute(problem: _Problem, r0: int, r1: int) -> np.ndarray:
    out = np.empty((len(problem.elements), r1 - r0, problem.grid.shape[1]), np.float32)
    worker = _rows_cpu if problem.device == "cpu" else _rows_torch
    for columns, rows_mask in problem.groups():
        part = np.empty((len(columns), r1 - r0, problem.grid.shape[1]), np.float32)
        worker(problem, columns, rows_mask, r0, r1, part)
        if problem.max_distance is not None:
            part[:, _beyond(problem, rows_mask, r0, r1)] = np.nan
        out[columns] = part
    return out


def _beyond(problem: _Problem, rows_mask: np.ndarray, r0: int, r1: int) -> np.ndarray:
    """Pixels of rows r0..r1 farther than ``max_distance`` from every sample with values (y, x) bool."""
    from scipy.spatial import cKDTree

    grid = problem.grid
    gx, gy = np.meshgrid(grid.x, grid.y[r0:r1])
    tree = cKDTree(problem.xy[rows_mask])
    distance, _ = tree.query(np.column_stack([gx.ravel(), gy.ravel()]), k=1,
                             distance_upper_bound=problem.max_distance * (1 + 1e-12), workers=-1)
    return ~np.isfinite(distance).reshape(r1 - r0, grid.shape[1])


def _check_device(device: str) -> str:
    if device == "cpu":
        return device
    if not str(device).startswith("cuda"):
        raise InputError(f"device={device!r}; valid: 'cpu' (Numba, all cores) or 'cuda' / 'cuda:N' (torch)")
    import torch

    if not torch.cuda.is_available():
        raise InputError(f"device={device!r} but torch sees no CUDA device; use device='cpu'")
    return device


def _attrs(problem: _Problem) -> dict:
    return {"method": "IDW", "power": problem.power, "k": "all" if problem.k is None else problem.k,
            "radius": "none" if problem.radius is None else problem.radius, "min_points": problem.min_points,
            "max_distance": "none" if problem.max_distance is None else round(problem.max_distance, 3),
            "sample_spacing": round(problem.spacing, 3),
            "log10": problem.log10,
            "values": "log10 of the concentrations" if problem.log10 else "concentrations as in the survey",
            **({"units": problem.units} if problem.units else {})}


def idw(
    samples: gpd.GeoDataFrame,
    elements: Sequence[str] | pd.Series | str | None,
    grid: Grid,
    power: Annotated[float, POSITIVE] = 2.0,
    k: Annotated[int | None, whole(1)] = None,
    radius: Annotated[float | None, POSITIVE] = None,
    min_points: Annotated[int, whole(1)] = 1,
    log: bool = False,
    chunk: Annotated[int, whole(1)] = 2**20,
    device: str = "cpu",
    max_distance: Annotated[float | str | None, or_word("auto", POSITIVE)] = "auto",
) -> xr.DataArray:
    """Interpolate survey elements onto ``grid`` by inverse distance weighting.

    Parameters
    ----------
    samples : GeoDataFrame
        Point samples with a CRS; reprojected to the grid's CRS when they differ.
    elements : list of str, str, boolean Series or None
        Element columns. A boolean Series indexed by element (a screening
        table's ``selected`` column) picks the True ones; None takes every
        element column (:func:`prospect.io.element_columns`).
    grid : prospect.Grid
        Target grid, in a projected CRS (distances are in its units). Values are
        computed at pixel centres.
    power : float
        Exponent ``p`` of the distance. Default 2, as in the paper.
    k : int, optional
        Use the ``k`` nearest samples of each pixel. Default None: all samples
        (eq. 11 as written).
    radius : float, optional
        Use only samples within this distance (CRS units). Pixels with fewer than
        ``min_points`` samples inside it become NaN.
    min_points : int
        See ``radius`` and ``k``. Default 1.
    log : bool
        Interpolate log10 of the values (geochemistry is lognormal); the result is
        then in log10 units, as its ``attrs["values"]`` says.
    chunk : int
        Pixels handled at once on a GPU (bounds its memory). The CPU kernels need
        no chunking: they hold only the output and the samples.
    device : {"cpu", "cuda", "cuda:N"}
        ``"cpu"``: Numba kernels on all cores. ``"cuda"``: torch on a GPU, float64.
    max_distance : float, "auto" or None
        Pixels farther than this (CRS units) from the nearest sample with a value
        are NaN (nodata): IDW does not extrapolate into unsampled corners of the
        grid. Default ``"auto"``: 3 times the median distance between neighbouring
        samples (``attrs["sample_spacing"]``; 853 m on the sample survey, which masks
        none of its grid). None: no limit, every pixel gets a value.

    Returns
    -------
    xarray.DataArray
        ``(band, y, x)`` float32 with one band per element, CRS and transform set.
        A sample at a pixel centre gives that pixel its own value. NaN values are
        dropped per element (the neighbour search is shared by the elements that
        have values at the same samples); duplicate coordinates are averaged
        with a warning.

    Examples
    --------
    >>> stack = idw(samples, ["Ag", "Au"], grid, power=2)              # doctest: +SKIP
    >>> stack = idw(samples, table["selected"], grid, k=12, log=True)   # doctest: +SKIP
    """
    problem = _prepare(samples, elements, grid, power, k, radius, min_points, log, _check_device(device), chunk,
                       max_distance)
    values = _compute(problem, 0, grid.shape[0])
    _warn_empty(values, problem)
    return grid.wrap(values, bands=problem.elements, name="idw", attrs=_attrs(problem))


def _warn_empty(values: np.ndarray, problem: _Problem) -> None:
    """Say so when an element's raster is (almost) all nodata: a radius or max_distance in the wrong units."""
    empty = np.isnan(values).reshape(len(values), -1).mean(axis=1)
    worst = {e: f"{100 * f:.1f} %" for e, f in zip(problem.elements, empty, strict=True) if f >= 0.99}
    if worst:
        warnings.warn(f"IDW left these elements' rasters almost all nodata: {worst} of the grid is NaN (radius="
                      f"{problem.radius}, min_points={problem.min_points}, max_distance={problem.max_distance}, "
                      f"median sample spacing {problem.spacing:.4g} CRS units); check that distances are in the "
                      "grid CRS's units (metres, not km)", stacklevel=3)


def idw_lazy(
    samples: gpd.GeoDataFrame,
    elements: Sequence[str] | pd.Series | str | None,
    grid: Grid,
    power: float = 2.0,
    k: int | None = None,
    radius: float | None = None,
    min_points: int = 1,
    log: bool = False,
    rows_per_block: int = 1024,
    chunk: int = 2**20,
    device: str = "cpu",
    max_distance: float | str | None = "auto",
) -> xr.DataArray:
    """:func:`idw` as a dask-backed DataArray, computed block by block on demand.

    Nothing is computed until the array is used; each block of
    ``rows_per_block`` rows is interpolated when dask asks for it, so a grid
    larger than memory can be written with :func:`prospect.io.write_geotiff`
    (which writes dask-backed arrays block by block) or reduced. Needs dask
    (``pip install dask``). Arguments as for :func:`idw`.
    """
    try:
        import dask.array as dask_array
    except ImportError as exc:
        raise ImportError("idw_lazy needs dask: pip install dask") from exc
    import xarray as xr

    if int(rows_per_block) != rows_per_block or rows_per_block < 1:
        raise InputError(f"rows_per_block={rows_per_block!r} must be a positive whole number")
    problem = _prepare(samples, elements, grid, power, k, radius, min_points, log, _check_device(device), chunk,
                       max_distance)
    rows, cols = grid.shape
    row_chunks = tuple(min(rows_per_block, rows - r) for r in range(0, rows, rows_per_block))

    def block(block_info=None):
        r0, r1 = block_info[None]["array-location"][1]
        return _compute(problem, r0, r1)

    lazy = dask_array.map_blocks(block, dtype=np.float32,
                                 chunks=((len(problem.elements),), row_chunks, (cols,)), meta=np.empty((0, 0, 0),
                                                                                                       np.float32))
    template = grid.wrap(np.broadcast_to(np.float32(0), (len(problem.elements), rows, cols)),
                         bands=problem.elements, name="idw", attrs=_attrs(problem))
    return xr.DataArray(lazy, dims=template.dims, coords=template.coords, name="idw", attrs=template.attrs)
