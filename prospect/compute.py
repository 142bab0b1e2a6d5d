"""Stacks larger than memory: dask-backed rasters worked block by block, on this machine or a cluster.

    stack = pp.layers.stack(*(pp.layers.from_raster(p, grid, chunks=2048) for p in paths))   # nothing read yet
    pp.compute.is_lazy(stack)                      # True
    valid = pp.compute.valid_cells(stack)          # (y, x) bool, computed block by block
    x = pp.compute.values_at(stack, rows, cols)    # (n, bands): only the blocks holding a point are read
    prob = pp.baselines.predict_stack(rf, stack)   # lazy: each block scored when it is computed or written
    pp.io.write_geotiff(prob, "prospectivity.tif", cog=True)   # computed and written a strip of blocks at a time

A *lazy* stack is an :class:`xarray.DataArray` ``(band, y, x)`` whose data is a :mod:`dask.array` chunked in
``(y, x)`` blocks that each hold every band (:func:`chunked`). Every function of the package that reads a stack
accepts one and never materialises it: the 2-D masks the folds and samples need (one byte per cell) are the
largest arrays held whole. dask's own schedulers run the blocks: threads by default, or a
``dask.distributed`` cluster once a :class:`distributed.Client` is made (:func:`client`) - the same code either
way (xarray's own engine, no scheduler of ours). A block is read where it is computed: on a cluster of several
machines the rasters (and :func:`prospect.validation.cross_validate`'s ``workdir``) must lie on storage every
worker reads.

Small stacks stay numpy: every function here returns the same values for both, and the tests check it.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Annotated, Any

import numpy as np

from prospect.errors import InputError
from prospect.ranges import whole

if TYPE_CHECKING:
    import xarray as xr

__all__ = ["is_lazy", "check_chunks", "chunked", "valid_cells", "values_at", "band_has_values", "map_cells",
           "rank_counts", "next_above", "kth_largest", "turning_points", "deposit_ranks", "block_means", "value_range",
           "by_strips", "with_halo", "strips", "at_cells",
           "client", "engine", "Engine"]

log = logging.getLogger(__name__)


def is_lazy(da: xr.DataArray) -> bool:
    """Whether ``da`` is dask-backed (computed block by block) rather than a numpy array in memory."""
    return getattr(da, "chunks", None) is not None


def _dask() -> Any:
    try:
        import dask.array
    except ImportError as exc:    # pragma: no cover - dask is an optional dependency
        raise ImportError("stacks larger than memory need dask: pip install 'prospect[dask]'") from exc
    return dask.array


def check_chunks(chunks: Any) -> int:
    """``chunks`` as a block side in cells, or a clear error."""
    if isinstance(chunks, bool) or not isinstance(chunks, (int, np.integer)) or chunks < 16:
        raise InputError(f"chunks={chunks!r} must be a whole number of cells per block side, at least 16 "
                         "(e.g. 1024)")
    _dask()
    return int(chunks)


def chunked(da: xr.DataArray, chunks: int) -> xr.DataArray:
    """``da`` as a lazy array in blocks of ``chunks`` × ``chunks`` cells, each holding every band."""
    chunks = check_chunks(chunks)
    sizes = {"y": chunks, "x": chunks}
    if "band" in da.dims:
        sizes["band"] = -1
    return da.chunk(sizes)


def _cells(stack: xr.DataArray) -> Any:
    """The stack's data with every band in one chunk (so a block holds whole cells)."""
    data = stack.data
    if is_lazy(stack) and stack.ndim == 3 and len(data.chunks[0]) > 1:
        data = data.rechunk({0: -1})
    return data


_LAST_VALID: dict[str, np.ndarray] = {}    # the last lazy stack's mask, by its dask name (a hash of its graph)


def valid_cells(stack: xr.DataArray) -> np.ndarray:
    """``(y, x)`` bool: cells finite in every band (a ``(y, x)`` array: finite cells). A lazy stack's mask is
    kept for the next call on the same stack (each fold samples from it), so its blocks are read once."""
    data = stack.data
    key = getattr(data, "name", None) if is_lazy(stack) else None
    if key is not None and key in _LAST_VALID:
        return _LAST_VALID[key].copy()
    finite = np.isfinite(data)
    if stack.ndim == 3:
        finite = finite.all(axis=0)
    mask = np.asarray(finite.compute() if is_lazy(stack) else finite, bool)
    if key is not None:
        _LAST_VALID.clear()
        _LAST_VALID[key] = mask.copy()
    return mask


def band_has_values(stack: xr.DataArray) -> np.ndarray:
    """Per band: whether it holds at least one finite value."""
    finite = np.isfinite(stack.data).any(axis=(1, 2))
    return np.asarray(finite.compute() if is_lazy(stack) else finite, bool)


def values_at(stack: xr.DataArray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """The stack's values at cells ``(rows[i], cols[i])``, ``(n, bands)`` float32; a lazy stack reads only
    the blocks that hold a cell."""
    rows, cols = np.asarray(rows, np.int64), np.asarray(cols, np.int64)
    if is_lazy(stack):
        if len(rows) == 0:
            return np.zeros((0, stack.sizes.get("band", 1)), np.float32)
        picked = stack.data.vindex[:, rows, cols] if stack.ndim == 3 else stack.data.vindex[rows, cols][:, None]
        return np.ascontiguousarray(picked.compute(), dtype=np.float32)
    values = stack.to_numpy()
    picked = values[:, rows, cols].T if values.ndim == 3 else values[rows, cols][:, None]
    return np.ascontiguousarray(picked, dtype=np.float32)


def map_cells(function: Any, stack: xr.DataArray, chunk: int = 2**18) -> Any:
    """``function((n, bands) float32 values) -> (n,)`` applied to every valid cell of ``stack``, ``chunk`` cells
    at a time; NaN where a band has no value. Returns a ``(y, x)`` float32 array: numpy for a numpy stack, a
    lazy dask array (one block per block of the stack) for a lazy one."""

    def block(values: np.ndarray) -> np.ndarray:
        bands = values.shape[0]
        cells = values.reshape(bands, -1).T
        out = np.full(len(cells), np.nan, np.float32)
        index = np.flatnonzero(np.isfinite(cells).all(axis=1))
        for start in range(0, len(index), int(chunk)):
            part = index[start:start + int(chunk)]
            out[part] = function(np.ascontiguousarray(cells[part], dtype=np.float32))
        return out.reshape(values.shape[1:])

    if not is_lazy(stack):
        return block(stack.to_numpy())
    data = _cells(stack)
    return data.map_blocks(block, drop_axis=0, dtype=np.float32, meta=np.empty((0, 0), np.float32))


def rank_counts(prob: Any, values: np.ndarray) -> np.ndarray:
    """For each of ``values``: how many finite cells of ``prob`` lie below it, how many equal it, and how many
    are finite at all - ``(3, n)`` int64, counted block by block for a lazy ``prob`` (exact, as on a sorted
    copy of the whole map)."""
    values = np.asarray(values, np.float64)

    def count(block: np.ndarray) -> np.ndarray:
        cells = np.sort(block[np.isfinite(block)].astype(np.float64))
        below = np.searchsorted(cells, values, side="left")
        equal = np.searchsorted(cells, values, side="right") - below
        return np.stack([below, equal, np.full(len(values), len(cells))]).astype(np.int64)

    data = prob.data if hasattr(prob, "dims") else prob
    if getattr(data, "dask", None) is None:
        return count(np.asarray(data))
    import dask

    parts = [dask.delayed(count)(piece) for piece in data.to_delayed().ravel()]
    return np.sum(dask.compute(*parts), axis=0)


def kth_largest(values: Any, m: int, bins: int = 2**16) -> float:
    """The ``m``-th largest finite value (1 = the largest), as a sorted copy would give it. A lazy array is
    counted block by block: the finite values in ``bins`` equal bins of their range, then the values of the one
    bin that holds the ``m``-th gathered and sorted (exact)."""
    data = values.data if hasattr(values, "dims") else values
    if getattr(data, "dask", None) is None:
        data = np.asarray(data)
        finite = data[np.isfinite(data)]
        return float(np.partition(finite, len(finite) - m)[len(finite) - m])
    import dask

    low, high = value_range(data)
    if not low < high:
        return low

    def bucket(block: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        cells = block[np.isfinite(block)]
        where = np.clip(((cells.astype(np.float64) - low) / (high - low) * bins).astype(np.int64), 0, bins - 1)
        return cells, where

    pieces = data.to_delayed().ravel()
    counts = np.sum(dask.compute(*[dask.delayed(lambda b: np.bincount(bucket(b)[1], minlength=bins))(piece)
                                   for piece in pieces]), axis=0)
    from_top = np.cumsum(counts[::-1])
    if m < 1 or m > from_top[-1]:
        raise InputError(f"m={m!r}: the array holds {int(from_top[-1])} finite values")
    step = int(np.searchsorted(from_top, m))        # the m-th largest lies in bin bins - 1 - step
    holding = bins - 1 - step
    above = int(from_top[step - 1]) if step else 0

    def inside(block: np.ndarray) -> np.ndarray:
        cells, where = bucket(block)
        return cells[where == holding]

    gathered = np.concatenate(dask.compute(*[dask.delayed(inside)(piece) for piece in pieces]))
    return float(np.sort(gathered)[::-1][m - above - 1])


def next_above(prob: Any, levels: np.ndarray) -> np.ndarray:
    """For each level, the smallest finite value of ``prob`` above it (inf where none), block by block."""
    import dask

    def smallest_above(block: np.ndarray) -> np.ndarray:
        cells = np.sort(block[np.isfinite(block)].astype(np.float64))
        where = np.searchsorted(cells, levels, side="right")
        return np.where(where < len(cells), cells[np.minimum(where, len(cells) - 1)] if len(cells) else np.inf,
                        np.inf)

    parts = [dask.delayed(smallest_above)(piece) for piece in prob.data.to_delayed().ravel()]
    return np.min(dask.compute(*parts), axis=0)


def turning_points(prob: Any, at: np.ndarray) -> Any:
    """The rows of a rate curve (``threshold``, ``area_fraction``, ``deposit_fraction``) where it turns, for
    deposits on cells of values ``at``: for each deposit value the row of the next higher value on the map and its
    own row, the row where the prediction rate meets 1 - area (P-A), and the last row - a subset of the rows of
    the curve over every value, with the same area under it; counted block by block
    (:func:`prospect.evaluation.success_rate_curve` of a large map)."""
    import pandas as pd

    levels = np.unique(at)[::-1]
    below, equal, total = rank_counts(prob, levels)
    n = int(total[0])
    higher = next_above(prob, levels)
    order = np.sort(-at)
    at_or_above = np.searchsorted(order, -levels, side="right") / len(at)
    strictly_above = np.searchsorted(order, -levels, side="left") / len(at)
    rows = [(np.inf, 0.0, 0.0)]
    for k, level in enumerate(levels):
        if np.isfinite(higher[k]):
            rows.append((float(higher[k]), (n - below[k] - equal[k]) / n, strictly_above[k]))
        rows.append((float(level), (n - below[k]) / n, at_or_above[k]))
    if rows[-1][1] < 1:
        rows.append((value_range(prob)[0], 1.0, 1.0))
    curve = pd.DataFrame(rows, columns=["threshold", "area_fraction", "deposit_fraction"]).drop_duplicates()
    # where the prediction rate meets 1 - area on a flat stretch: the m-th largest value, m the first count of
    # cells whose area fraction reaches 1 - rate (the same float test _prediction_area makes)
    gap = curve["deposit_fraction"] - (1 - curve["area_fraction"])
    first = int(np.argmax(gap.to_numpy() >= 0))
    if first > 0 and curve["threshold"].iloc[first] != curve["threshold"].iloc[first - 1]:
        rate = float(curve["deposit_fraction"].iloc[first - 1])
        low = int(round(curve["area_fraction"].iloc[first - 1] * n))
        high = int(round(curve["area_fraction"].iloc[first] * n))
        start = max(low, int(np.floor((1 - rate) * n)) - 1)
        m = next((m for m in range(start, high + 1) if rate - (1 - m / n) >= 0), None)
        value = kth_largest(prob, m) if m is not None and low < m < high else None
        if value is not None and value > curve["threshold"].iloc[first]:     # a row of its own on the flat stretch
            below_value, _, _ = rank_counts(prob, np.array([value]))
            crossing = (value, (n - int(below_value[0])) / n, rate)
            curve = pd.concat([curve.iloc[:first], pd.DataFrame([crossing], columns=curve.columns),
                               curve.iloc[first:]], ignore_index=True).drop_duplicates()
    return curve


def deposit_ranks(prob: Any, rows: np.ndarray, cols: np.ndarray, at: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For deposits at values ``at`` (deposit cells ``rows``, ``cols``, not negatives): each one's share of the
    negative cells below it (ties half) and the share of the finite area at or above it, counted block by block -
    the numbers of a sorted copy of the whole map (:func:`prospect.evaluation.deposit_ranks`)."""
    width = prob.shape[-1]
    cells = np.unique(np.asarray(rows) * width + np.asarray(cols))
    own = values_at(prob, cells // width, cells % width)[:, 0].astype(np.float64)
    own = np.sort(own[np.isfinite(own)])      # the deposit cells' values: not negatives
    below, equal, total = rank_counts(prob, at)
    if total[0] == 0:
        raise InputError("the map holds no valid (non-NaN) cell")
    own_below = np.searchsorted(own, at, side="left")
    own_equal = np.searchsorted(own, at, side="right") - own_below
    negatives = total[0] - len(own)
    return ((below - own_below) + 0.5 * (equal - own_equal)) / max(negatives, 1), (total - below) / total


def block_means(values: Any, factor: int) -> np.ndarray:
    """Means (NaN-aware; all-NaN blocks stay NaN) of ``factor`` × ``factor`` blocks of a 2-D array, the last
    blocks cut to it; a strip of blocks at a time, so no padded copy of the array is made (a lazy array: a strip
    of about a row of its chunks computed at a time)."""
    import warnings

    data = values.data if hasattr(values, "dims") else values
    if getattr(data, "dask", None) is not None:
        step = factor * max(1, data.chunks[0][0] // factor)      # whole blocks of cells in every strip
        return np.concatenate([block_means(np.asarray(data[r:r + step].compute()), factor)
                               for r in range(0, data.shape[0], step)])
    rows, cols = -(-values.shape[0] // factor) * factor, -(-values.shape[1] // factor) * factor
    out = np.empty((rows // factor, cols // factor))
    for i in range(rows // factor):
        strip = np.full((factor, cols), np.nan)
        part = values[i * factor:(i + 1) * factor]
        strip[:len(part), :values.shape[1]] = part
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            out[i] = np.nanmean(strip.reshape(factor, cols // factor, factor), axis=(0, 2))
    return out


def by_strips(function: Any, bands: int, shape: tuple[int, int], rows: int) -> Any:
    """A lazy ``(bands, y, x)`` float32 array of ``shape`` whose strips of ``rows`` rows are ``function(r0, r1)``
    (``(bands, r1 - r0, x)`` float32), each computed when dask asks for it (a rasterised or distance layer)."""
    check_chunks(rows)
    height, width = shape
    heights = tuple(min(rows, height - r) for r in range(0, height, rows))

    def strip(block_info: dict | None = None) -> np.ndarray:
        r0, r1 = block_info[None]["array-location"][1]
        return np.asarray(function(r0, r1), np.float32)

    return _dask().map_blocks(strip, dtype=np.float32, chunks=((bands,), heights, (width,)),
                              meta=np.empty((0, 0, 0), np.float32))


def with_halo(data: Any, halo: int, function: Any, dtype: Any = np.float32) -> Any:
    """A lazy ``(y, x)`` array (``dtype``) in ``data``'s blocks, each ``function(values, core, origin)`` of the block
    read with ``halo`` cells around it (fewer at the grid's edges): ``values`` the cells from ``origin`` (row,
    column), ``core`` the block's ``((r0, r1), (c0, c1))``; it returns the core's values. ``data`` is ``(y, x)`` or
    ``(band, y, x)`` with the bands in one chunk. For what needs its neighbours: a network's windows, a filter."""
    import dask

    dask_array = _dask()
    rows, cols = data.shape[-2:]
    edges = [np.r_[0, np.cumsum(c)].tolist() for c in data.chunks[-2:]]
    lines = []
    for r0, r1 in zip(edges[0][:-1], edges[0][1:], strict=True):
        line = []
        for c0, c1 in zip(edges[1][:-1], edges[1][1:], strict=True):
            (e0, e1), (f0, f1) = (max(r0 - halo, 0), min(r1 + halo, rows)), (max(c0 - halo, 0), min(c1 + halo, cols))
            task = dask.delayed(function, pure=False)(data[..., e0:e1, f0:f1], ((r0, r1), (c0, c1)), (e0, f0))
            line.append(dask_array.from_delayed(task, (r1 - r0, c1 - c0), dtype=dtype, meta=np.empty((0, 0), dtype)))
        lines.append(line)
    return dask_array.block(lines)


def strips(prob: Any) -> Any:
    """A ``(y, x)`` array a row of its blocks at a time: ``(first row, end row, values)``, numpy (an in-memory
    array: one strip)."""
    data = prob.data if hasattr(prob, "dims") else prob
    if getattr(data, "dask", None) is None:
        yield 0, data.shape[0], np.asarray(data)
        return
    edges = np.r_[0, np.cumsum(data.chunks[0])]
    for r0, r1 in zip(edges[:-1].tolist(), edges[1:].tolist(), strict=True):
        yield r0, r1, np.asarray(data[r0:r1].compute())


def at_cells(prob: Any, mask: np.ndarray) -> np.ndarray:
    """``prob[mask]`` - the values at the True cells of a ``(y, x)`` mask in row-major order - a row of blocks at a
    time for a lazy ``prob``."""
    return np.concatenate([values[mask[r0:r1]] for r0, r1, values in strips(prob)])


def value_range(prob: Any) -> tuple[float, float]:
    """Smallest and largest finite value (NaN, NaN where there is none), block by block for a lazy array."""
    data = prob.data if hasattr(prob, "dims") else prob
    if getattr(data, "dask", None) is None:
        finite = np.asarray(data)[np.isfinite(data)]
        return (float(finite.min()), float(finite.max())) if finite.size else (np.nan, np.nan)
    import dask

    low, high = dask.compute(_dask().nanmin(data), _dask().nanmax(data))
    return float(low), float(high)


def _checked_address(address: Any) -> str:
    if not isinstance(address, str) or "://" not in address:
        raise InputError(f"address={address!r} must be a scheduler address such as 'tcp://10.0.0.5:8786'")
    return address


def client(address: str | None = None, workers: int | None = None, memory_limit: str | None = None) -> Any:
    """A :class:`distributed.Client`: to the scheduler at ``address`` (a cluster made by dask-jobqueue, Kubernetes
    or ``dask scheduler``), else a :class:`~distributed.LocalCluster` of ``workers`` processes with
    ``memory_limit`` each (``"4GB"``). While it lives, every block-wise stage runs on it."""
    try:
        from distributed import Client, LocalCluster
    except ImportError as exc:
        raise ImportError("a cluster needs dask.distributed: pip install distributed") from exc
    if address is not None:
        return Client(_checked_address(address))
    if workers is not None and (isinstance(workers, bool) or int(workers) != workers or workers < 1):
        raise InputError(f"workers={workers!r} must be a whole number of processes ≥ 1")
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, memory_limit=memory_limit or "auto",
                           dashboard_address=None)
    return Client(cluster)


class Engine:
    """Where and how a run's block-wise stages run: made by :func:`engine` (the run file's ``[compute]``); as a
    context manager it starts the cluster client it names and closes it at the end."""

    def __init__(self, chunks: int | None, address: str | None, workers: int | None, memory_limit: str | None):
        self.chunks, self.address, self.workers, self.memory_limit = chunks, address, workers, memory_limit
        self.client: Any = None

    def bound_gdal_cache(self, megabytes: int = 256) -> None:
        """With ``chunks``: cap GDAL's block cache (by default 5 % of the machine's memory, filled by every block
        read and written) at ``megabytes``, unless ``GDAL_CACHEMAX`` is set already. Call it before the first
        raster is read: GDAL sizes its cache then."""
        import os

        if self.lazy:
            os.environ.setdefault("GDAL_CACHEMAX", str(int(megabytes)))

    @property
    def lazy(self) -> bool:
        """Whether rasters are read and worked block by block (``chunks`` given)."""
        return self.chunks is not None

    def describe(self) -> str:
        if not self.lazy:
            return "in memory"
        where = f"the dask scheduler at {self.address}" if self.address else \
            f"a LocalCluster of {self.workers} workers" if self.workers else "dask's threads"
        return f"block by block ({self.chunks} x {self.chunks} cells) on {where}"

    def __enter__(self) -> Engine:
        if self.address is not None or self.workers is not None:
            self.client = client(self.address, self.workers, self.memory_limit)
            log.info("compute: %s (dashboard %s)", self.describe(), self.client.dashboard_link)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.client is not None:
            cluster = getattr(self.client, "cluster", None)
            self.client.close()
            if cluster is not None and self.address is None:
                cluster.close()
            self.client = None


def engine(chunks: Annotated[int | None, whole(16)] = None, address: str | None = None,
           workers: Annotated[int | None, whole(1)] = None, memory_limit: str | None = None) -> Engine:
    """How a run works its rasters (the run file's ``[compute]`` section); checked here, started on ``with``.

    Parameters
    ----------
    chunks : int, optional
        Read, warp, interpolate, sample, predict and write block by block, in blocks of ``chunks`` × ``chunks``
        cells (every band of a block together): the stack is never held whole. Default: in memory. About 1024
        for 16 bands (64 MB a block).
    address : str, optional
        A running dask scheduler (``"tcp://10.0.0.5:8786"``: a cluster from dask-jobqueue, dask-kubernetes or
        ``dask scheduler``): the blocks are computed on its workers. Needs ``chunks``.
    workers : int, optional
        A :class:`distributed.LocalCluster` of this many worker processes on this machine. Needs ``chunks``.
    memory_limit : str, optional
        Each LocalCluster worker's memory target (``"4GB"``); dask spills and pauses a worker above it.
    """
    if address is not None:
        _checked_address(address)
    if address is not None and workers is not None:
        raise InputError(f"address={address!r} and workers={workers!r}: give one - a running scheduler, or the "
                         "workers of a LocalCluster on this machine")
    if chunks is None and (address is not None or workers is not None):
        raise InputError("address or workers need chunks (the block side in cells, e.g. 1024): without it the "
                         "stack is held in memory and no block goes to a worker")
    if memory_limit is not None and workers is None:
        raise InputError(f"memory_limit={memory_limit!r} is each LocalCluster worker's; give workers too (a "
                         "scheduler at an address sets its workers' own)")
    if chunks is not None:
        chunks = check_chunks(chunks)
    return Engine(chunks, address, workers, memory_limit)
