"""Square blocks of the map dealt into parts: the one mechanism behind every spatial split and fold.

    ids = block_ids(rows, cols, cell=100.0, block_size=3900.0)      # the block of each position
    part = deal(ids, primary=deposits_per_position, secondary=np.ones(len(ids)), shares=[0.2] * 5, seed=0)

Whole blocks go to one part, so nothing near a held-out position trains the model that judges it.
:func:`prospect.folds.spatial_folds` deals the cells of the map (deposits first) into folds;
:func:`prospect.tiles.spatial_split` and :func:`prospect.tiles.spatial_kfold` deal tiles (ore tiles first).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

__all__ = ["block_ids", "deal"]


def block_ids(rows: np.ndarray, cols: np.ndarray, cell: float | tuple[float, float], block_size: float) -> np.ndarray:
    """The block of each position ``(rows[i], cols[i])``: ``floor(row * cell / block_size)`` and the same for
    columns, as one id that sorts in row-major order of the blocks.

    ``cell`` is the size of one row/column step (CRS units; ``1`` for pixel positions and a block in pixels);
    a pair gives ``(row step, column step)``.
    """
    cell_y, cell_x = (cell, cell) if np.isscalar(cell) else cell
    block_rows = (np.asarray(rows) * cell_y // block_size).astype(np.int64)
    block_cols = (np.asarray(cols) * cell_x // block_size).astype(np.int64)
    width = int(block_cols.max()) + 1 if block_cols.size else 1
    return block_rows * width + block_cols


def deal(ids: np.ndarray, primary: np.ndarray, secondary: np.ndarray, shares: Sequence[float], seed: int = 0,
         ties: Literal["random", "first"] = "random") -> np.ndarray:
    """Give every block a part so that the parts' totals follow ``shares``; returns the part of each position.

    Blocks holding any ``primary`` (deposits, ore tiles) are dealt first, the largest first, each to the part
    furthest below its share of the ``primary`` total; the other blocks then go to the part furthest below
    its share of the ``secondary`` total (cells, tiles).

    Parameters
    ----------
    ids : (n,) int array
        The block of each position (:func:`block_ids`).
    primary, secondary : (n,) arrays
        What each position counts for (e.g. deposits and 1 per cell).
    shares : sequence of float
        The fraction each part should get (e.g. ``[0.8, 0.2]``, or ``k`` times ``1 / k``).
    seed : int
        Order of blocks that hold as much, and (``ties="random"``) the choice between parts equally far
        below their share.
    ties : {"random", "first"}
        How blocks of equal weight are ordered and equally deserving parts chosen: ``"random"`` (blocks in a
        seeded random order, a part drawn at random; the folds of held-out deposits) or ``"first"`` (blocks
        ordered by a seeded random key, the first such part; the tile splits). Both are kept so that a seed
        gives the same split as in earlier versions.
    """
    shares = np.asarray(shares, float)
    rng = np.random.default_rng(seed)
    unique, inverse = np.unique(ids, return_inverse=True)
    per_primary = np.bincount(inverse, weights=primary, minlength=len(unique))
    per_secondary = np.bincount(inverse, weights=secondary, minlength=len(unique))
    targets = {True: shares * per_primary.sum(), False: shares * per_secondary.sum()}
    have = {True: np.zeros(len(shares)), False: np.zeros(len(shares))}
    if ties == "random":
        order = sorted(rng.permutation(len(unique)), key=lambda i: -per_primary[i])
    else:
        shuffled = rng.permutation(len(unique))
        order = [shuffled[j] for j in sorted(range(len(unique)), key=lambda j: (-per_primary[shuffled[j]],
                                                                                 rng.random()))]
    owner = np.empty(len(unique), np.int64)
    for i in order:
        holds = bool(per_primary[i])
        score = (targets[holds] - have[holds]) / np.maximum(shares, 1e-12)
        best = np.flatnonzero(score == score.max())
        part = int(rng.choice(best)) if ties == "random" else int(best[0])
        owner[i] = part
        have[True][part] += per_primary[i]
        have[False][part] += per_secondary[i]
    return owner[inverse]
