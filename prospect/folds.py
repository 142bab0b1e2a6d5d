"""Spatial k-fold over blocks of the map, for judging a map by deposits it never saw.

    folds = pp.folds.spatial_folds(stack, deposits, k=5, block_size=4000, buffer=500, seed=0)
    allowed = folds.training_mask(0, margin=8)      # where a 17 × 17 window may be centred in fold 0's training
    held = folds.held_out(0)                        # the deposits fold 0 is judged on

The map is cut into square blocks of ``block_size`` (CRS units) and the blocks are dealt into ``k``
folds so that every fold holds deposits: blocks with deposits first, each to the fold that has the
fewest so far, then the empty blocks to the fold with the fewest cells. Deposits cluster, so deposits
within ``link`` of one another (single linkage; default the deposits' median nearest-neighbour
distance) are dealt into one fold together with their blocks: no held-out deposit then has a training
deposit nearer than ``link``, and at least half the deposits share a fold with their nearest neighbour.
For fold ``f`` a model is trained only on pixels (or windows) that touch no cell within ``buffer`` of
fold ``f``'s blocks, and its map is judged on fold ``f``'s deposits. No torch here.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Annotated

import numpy as np
import pandas as pd

from prospect.blocks import block_ids, deal
from prospect.errors import InputError
from prospect.grid import Grid
from prospect.ranges import NOT_NEGATIVE, POSITIVE, whole

if TYPE_CHECKING:
    import geopandas as gpd
    import xarray as xr

__all__ = ["SpatialFolds", "spatial_folds"]


@dataclass(frozen=True)
class SpatialFolds:
    """Blocks of a grid dealt into folds, and the fold of every deposit.

    Attributes
    ----------
    fold : ndarray (y, x) int16
        Fold of each cell's block; -1 outside every fold (the outer fold's area in the folds of :meth:`inside`).
    deposit_row, deposit_col, deposit_fold : ndarray (n,) int64
        Cell and fold of each deposit that lies on the grid (in the order of the deposits given).
    deposit_index : ndarray (n,) int64
        Position of each of those deposits in the GeoDataFrame given.
    k : int
    block_size, buffer : float
        In CRS units.
    grid : Grid
    seed : int
    link : float
        Deposits within this distance of one another (CRS units, single linkage) share a fold; 0: none joined.
    why, block_why : str
        Where ``link`` and ``block_size`` came from, for the report.
    """

    fold: np.ndarray
    deposit_row: np.ndarray
    deposit_col: np.ndarray
    deposit_fold: np.ndarray
    deposit_index: np.ndarray
    k: int
    block_size: float
    buffer: float
    grid: Grid
    seed: int
    link: float = 0.0
    why: str = ""
    block_why: str = ""

    def held_out(self, fold: int) -> np.ndarray:
        """Boolean mask over the placed deposits: those in ``fold``."""
        self._check(fold)
        return self.deposit_fold == fold

    def training_mask(self, fold: int, margin: int = 0) -> np.ndarray:
        """Cells where a training sample of fold ``fold`` may be centred.

        A cell is allowed when the square of ``margin`` cells around it (a window of
        ``2 * margin + 1``; 0 for a single pixel) touches no cell within ``buffer`` of the
        held-out blocks. Pixel classifiers use ``margin=0``, networks half their window.
        """
        from scipy import ndimage

        self._check(fold)
        if int(margin) != margin or margin < 0:
            raise InputError(f"margin={margin!r} must be a whole number of cells ≥ 0")
        held = self.fold == fold
        if self.buffer > 0:
            # exact Euclidean distance in CRS units from every cell centre to the held-out blocks
            distance = ndimage.distance_transform_edt(~held, sampling=self.grid.resolution[::-1])
            held = distance <= self.buffer
        if margin:
            held = ndimage.maximum_filter(held, size=2 * int(margin) + 1, mode="constant", cval=False)
        return ~held

    def counts(self) -> pd.DataFrame:
        """Deposits and cells per fold."""
        return pd.DataFrame({"fold": np.arange(self.k),
                             "deposits": np.bincount(self.deposit_fold, minlength=self.k),
                             "cells": np.bincount(self.fold[self.fold >= 0], minlength=self.k)})

    def inside(self, fold: int) -> tuple[SpatialFolds, np.ndarray]:
        """The other ``k - 1`` folds as a cross-validation of their own, inside fold ``fold``'s training area.

        What chooses a model for fold ``fold`` without reading its deposits (nested cross-validation,
        :func:`prospect.validation.cross_validate`'s ``inner``). Returns the folds (fold ``fold``'s deposits
        left out, the later folds renumbered down by one, fold ``fold``'s cells -1; ``deposit_index`` still
        indexes the deposits given) and the area, :meth:`training_mask` of ``fold``: a model cross-validated
        on the stack masked to it sees no cell of fold ``fold`` nor any within ``buffer`` of its blocks.
        """
        self._check(fold)
        if self.k < 3:
            raise InputError(f"folds inside fold {fold} need k >= 3 (k - 1 >= 2 to cross-validate on); k={self.k}")
        kept = self.deposit_fold != fold
        cells = np.where(self.fold > fold, self.fold - 1, self.fold).astype(self.fold.dtype)
        cells[self.fold == fold] = -1
        deposit_fold = self.deposit_fold[kept]
        return replace(self, fold=cells, deposit_row=self.deposit_row[kept], deposit_col=self.deposit_col[kept],
                       deposit_fold=np.where(deposit_fold > fold, deposit_fold - 1, deposit_fold),
                       deposit_index=self.deposit_index[kept], k=self.k - 1), self.training_mask(fold)

    def _check(self, fold: int) -> None:
        if int(fold) != fold or not 0 <= fold < self.k:
            raise InputError(f"fold={fold!r} must be a whole number from 0 to k - 1 = {self.k - 1}")


class _Lattice:
    """The square blocks of ``size`` over a grid, kept per row and per column (a block's id is
    :func:`~prospect.blocks.block_ids`'s): ``row``/``col`` give each grid row's and column's block row and
    column, ``ids`` every block's id in row-major order and ``cells`` how many cells each holds."""

    def __init__(self, grid: Grid, size: float) -> None:
        self.row = (np.arange(grid.shape[0]) * grid.resolution[1] // size).astype(np.int64)
        self.col = (np.arange(grid.shape[1]) * grid.resolution[0] // size).astype(np.int64)
        self.shape = (int(self.row[-1]) + 1, int(self.col[-1]) + 1)
        self.ids = block_ids(*np.indices(self.shape).reshape(2, -1), 1, 1)
        self.cells = np.outer(np.bincount(self.row), np.bincount(self.col)).ravel().astype(float)

    def of(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """The block id of cells ``(rows[i], cols[i])``."""
        return self.row[rows] * self.shape[1] + self.col[cols]


def _groups(xy: np.ndarray, link: float) -> np.ndarray:
    """Single-linkage groups of points: the group of each point when points within ``link`` are joined (to a
    relative 1e-9, so that a pair at exactly ``link`` is joined whatever the rounding)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import cKDTree

    pairs = cKDTree(xy).query_pairs(link * (1 + 1e-9), output_type="ndarray") if link > 0 else np.empty((0, 2))
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(len(xy), len(xy)))
    return connected_components(graph, directed=False)[1]


def _joined(deposit_block: np.ndarray, group: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The blocks holding deposits, and the unit of each: blocks holding deposits of one group (or of groups
    that share a block) are one unit."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    blocks, block_of = np.unique(deposit_block, return_inverse=True)
    n_groups = int(group.max()) + 1   # a graph over deposit groups and blocks: a unit is one connected part
    graph = coo_matrix((np.ones(len(group)), (group, n_groups + block_of)), shape=(n_groups + len(blocks),) * 2)
    return blocks, connected_components(graph, directed=False)[1][n_groups:]


def _units(block: np.ndarray, deposit_block: np.ndarray, group: np.ndarray) -> np.ndarray:
    """Block ids with the blocks of each unit (:func:`_joined`) given one id."""
    blocks, unit = _joined(deposit_block, group)
    units = block.copy()
    holding = np.isin(block, blocks)
    units[holding] = int(block.max()) + 1 + unit[np.searchsorted(blocks, block[holding])]
    return units


def _default_link(xy: np.ndarray, deposit_block: np.ndarray, k: int) -> tuple[float, str]:
    """The deposits' median nearest-neighbour distance, or the largest shorter one that leaves ``k`` units."""
    from scipy.spatial import cKDTree

    if len(xy) < 2:
        return 0.0, "one deposit: none joined"
    nearest = cKDTree(xy).query(xy, k=2)[0][:, 1]
    median = float(np.sort(nearest)[(len(nearest) - 1) // 2])   # the lower median: one deposit's distance
    for link in sorted({median, *nearest[nearest < median]}, reverse=True):
        if len(np.unique(_joined(deposit_block, _groups(xy, link))[1])) >= k:
            reason = "the deposits' median nearest-neighbour distance" if link >= median else (
                f"the largest nearest-neighbour distance below their median ({median:.0f}) that leaves {k} folds "
                "a group each")
            return link, reason
    return 0.0, f"joining deposits at their nearest-neighbour distances leaves fewer than k={k} groups: none joined"


def spatial_folds(stack: xr.DataArray | Grid, deposits: gpd.GeoDataFrame, k: Annotated[int, whole(2)] = 5,
                  block_size: Annotated[float | None, POSITIVE] = None, buffer: Annotated[float, NOT_NEGATIVE] = 0.0,
                  seed: int = 0, link: Annotated[float | None, NOT_NEGATIVE] = None) -> SpatialFolds:
    """Deal square blocks of the map into ``k`` folds so that every fold holds deposits.

    Parameters
    ----------
    stack : DataArray (band, y, x) or Grid
        The evidence stack (or its grid) the models will map.
    deposits : GeoDataFrame
        Known deposits (points; others use a representative point), reprojected when needed.
    k : int
        Number of folds, ≥ 2. Each fold's deposits are judged on a map trained without them.
    block_size : float, optional
        Side of the square blocks in CRS units (metres). Default: a tenth of the grid's longer
        side (3.9 km on the 39 km case-study area), shrunk by steps of 0.8 while the deposits that must
        share a fold (those of one block, or of one ``link`` group with all its blocks) are more than
        twice a fold's share; ``SpatialFolds.block_why`` says which. Blocks far larger than the reach of the
        evidence (halo, fault influence) make folds independent; too large and few blocks hold deposits.
    buffer : float
        Training samples are kept this far (CRS units) from the held-out blocks, on top of
        keeping every training window off them. Default 0.
    seed : int
        Order in which blocks are dealt.
    link : float, optional
        Deposits within this distance of one another (CRS units; single linkage, so a chain of close
        deposits is one group) are dealt into the same fold, with every block they lie in: no held-out
        deposit has a training deposit nearer than ``link``. Default: the deposits' median
        nearest-neighbour distance (shortened, down to 0, while fewer than ``k`` groups would remain);
        0 joins none. ``SpatialFolds.why`` says which.

    Raises
    ------
    InputError
        ``k`` below 2, fewer deposits on the grid than folds, or fewer blocks holding deposits
        than folds (a fold would hold none): each names the argument and what would work.
    """
    from prospect.layers import deposit_pixels

    grid = stack if isinstance(stack, Grid) else Grid.from_dataarray(stack)
    if int(k) != k or k < 2:
        raise InputError(f"k={k!r} must be a whole number of folds ≥ 2")
    k = int(k)
    longer = max(grid.shape[0] * grid.resolution[1], grid.shape[1] * grid.resolution[0])
    if block_size is not None and not (np.isfinite(block_size) and block_size > 0):
        raise InputError(f"block_size={block_size!r} must be a positive distance in CRS units")
    if not (np.isfinite(buffer) and buffer >= 0):
        raise InputError(f"buffer={buffer!r} must be a distance ≥ 0 in CRS units")
    if link is not None and not (np.isfinite(link) and link >= 0):
        raise InputError(f"link={link!r} must be a distance ≥ 0 in CRS units (0 joins no deposits)")
    row, col, inside = deposit_pixels(deposits, grid)
    if inside.sum() < k:
        raise InputError(f"deposits: {int(inside.sum())} of {len(deposits)} lie on the grid, fewer than k={k} folds; "
                         "use fewer folds (one deposit each at least), or check the deposits' CRS")
    index = np.flatnonzero(inside)
    row, col = row[inside], col[inside]
    points = deposits.iloc[index]
    points = (points.to_crs(grid.crs) if points.crs != grid.crs else points).geometry.representative_point()
    xy = np.column_stack([points.x, points.y])

    # Default blocks: a tenth of the longer side, shrunk (x 0.8) while the deposits dealt together (a block's,
    # or a group's across blocks) would be more than twice a fold's share: one fold must not hold most deposits.
    share = 2 * len(xy) / k
    sizes = [float(block_size)] if block_size is not None else [longer / 10 * 0.8 ** i for i in range(12)]
    tried = []
    for size in sizes:
        deposit_block = _Lattice(grid, size).of(row, col)
        holding = len(np.unique(deposit_block))
        if holding < k:
            if block_size is not None:
                raise InputError(f"k={k}: the deposits fall in only {holding} blocks of block_size={size:g}, so a "
                                 f"fold would hold none; use a smaller block_size or k ≤ {holding}")
            continue
        joined, why = (_default_link(xy, deposit_block, k) if link is None else (float(link), "as given"))
        blocks, unit = _joined(deposit_block, _groups(xy, joined))
        largest = int(np.bincount(unit[np.searchsorted(blocks, deposit_block)]).max())
        tried.append((largest > share, size, joined, why, largest))
        if largest <= share:
            break
    if not tried:
        raise InputError(f"k={k}: the deposits fall in fewer than {k} blocks even of {sizes[-1]:.0f} (a tenth of the "
                         f"grid's longer side x 0.8^{len(sizes) - 1}), so a fold would hold none; use fewer folds")
    # the balanced size (the loop stops at the first); failing that, the one whose largest unit is smallest
    _, block_size, link, why, largest = min(tried, key=lambda t: (t[0], t[4], -t[1]))
    block_why = "as given" if len(sizes) == 1 else (
        "a tenth of the grid's longer side" if block_size == sizes[0] else
        f"a tenth of the grid's longer side ({sizes[0]:.0f}) shrunk until the deposits dealt together hold at most "
        f"twice a fold's share ({share:.1f})" if largest <= share else
        f"the largest size tried that spreads the deposits best; {largest} of them must still share a fold")
    # Dealt block by block (each block weighs its cells and deposits), never cell by cell: the same deal as
    # over every cell (deal() sums positions per block), in memory of the order of the blocks, not the cells.
    lattice = _Lattice(grid, block_size)
    deposit_block = lattice.of(row, col)
    block = _units(lattice.ids, deposit_block, _groups(xy, link))
    holding = len(np.unique(block[np.searchsorted(lattice.ids, deposit_block)]))
    if holding < k:
        raise InputError(f"k={k}: deposits within link={link:g} of one another share a fold, which leaves "
                         f"{holding} groups for {k} folds; use a smaller link (0 joins none) or k ≤ {holding}")
    deposits_in_block = np.bincount(np.searchsorted(lattice.ids, deposit_block), minlength=len(lattice.ids))
    # Blocks with deposits first (most first), each to the fold with the fewest deposits; ties at random.
    owner = deal(block, deposits_in_block, lattice.cells, np.full(k, 1 / k), seed, ties="random")
    fold_of_cell = owner.astype(np.int16).reshape(lattice.shape)[lattice.row[:, None], lattice.col[None, :]]
    return SpatialFolds(fold_of_cell, row.astype(np.int64), col.astype(np.int64),
                        fold_of_cell[row, col].astype(np.int64), index.astype(np.int64), k, block_size,
                        float(buffer), grid, int(seed), link, why, block_why)
