"""Sliding-window tiles of the evidence stack, a leakage-safe spatial split, SMOTE and noise.

The MFAF paper cuts its 10-band 1560 × 1560 stack into 128 × 128 windows
(stride 128), labels each ore / no ore by the known deposits, splits train and
test, and balances with SMOTE and Gaussian noise. Oversampling before the split,
or windows that overlap across it, leak the test set into training; here the
split comes first, whole spatial blocks go to one side, training tiles that
overlap a test tile are dropped, and SMOTE and noise refuse a test set.

No torch at module level: :meth:`TileSet.as_torch` imports it when asked.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Annotated, Any, Literal

import numpy as np

from prospect.blocks import block_ids, deal
from prospect.errors import InputError
from prospect.grid import Grid
from prospect.ranges import FRACTION_CLOSED, FRACTION_OPEN, POSITIVE, whole

if TYPE_CHECKING:
    import geopandas as gpd
    import xarray as xr

__all__ = ["TileSet", "make_tiles", "spatial_split", "spatial_kfold", "smote", "add_noise", "fit_normalization",
           "normalize"]

log = logging.getLogger(__name__)

_PER_TILE = ("x", "y", "row", "col", "bounds", "synthetic", "filled")
FORMAT = "prospect.TileSet/1"


@dataclass(frozen=True)
class TileSet:
    """Tiles with labels and where each came from.

    Attributes
    ----------
    x : ndarray (n, bands, size, size) float32
    y : ndarray (n,) int64, 1 ore, 0 no ore
    row, col : ndarray (n,) int64
        Pixel offset of each tile's upper-left corner in the stack (−1 for synthetic tiles).
    bounds : ndarray (n, 4) float64
        ``(xmin, ymin, xmax, ymax)`` of each tile in CRS units (NaN for synthetic tiles).
    synthetic : ndarray (n,) bool
        True for tiles made by :func:`smote` or :func:`add_noise`.
    filled : ndarray (n,) int64
        NaN values filled in each tile (see :func:`make_tiles`).
    band : list of str
    crs : str (WKT) and transform : 6 floats (of the stack)
    size, stride : int
    normalization : dict or None
        ``{"band": [...], "mean": [...], "std": [...]}`` once standardised (:func:`fit_normalization`).
    attrs : dict
        How the set was made (label rule, role "train"/"test", dropped tiles, ...).
    """

    x: np.ndarray
    y: np.ndarray
    row: np.ndarray
    col: np.ndarray
    bounds: np.ndarray
    synthetic: np.ndarray
    filled: np.ndarray
    band: list[str]
    crs: str
    transform: tuple[float, ...]
    size: int
    stride: int
    normalization: dict | None = None
    attrs: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, index: Any) -> TileSet:
        index = np.asarray(index) if not isinstance(index, slice) else index
        if isinstance(index, np.ndarray) and index.dtype == bool and index.shape != (len(self),):
            raise InputError(f"a boolean index needs {len(self)} values, got {index.shape}")
        if isinstance(index, np.ndarray) and index.ndim == 0:
            index = index[None]
        return replace(self, **{name: getattr(self, name)[index] for name in _PER_TILE}, attrs=dict(self.attrs))

    def __repr__(self) -> str:
        return (f"TileSet({len(self)} tiles of {len(self.band)}×{self.size}×{self.size}: {self.counts()}, "
                f"role={self.attrs.get('role', 'all')!r})")

    def counts(self) -> dict[str, int]:
        """Numbers of ore, no-ore and synthetic tiles."""
        return {"ore": int((self.y == 1).sum()), "no_ore": int((self.y == 0).sum()),
                "synthetic": int(self.synthetic.sum())}

    @classmethod
    def concat(cls, *sets: TileSet) -> TileSet:
        """Join tile sets cut from the same stack (same bands, size, CRS and normalisation)."""
        if not sets:
            raise InputError("concat() needs at least one TileSet")
        first = sets[0]
        for other in sets[1:]:
            if (other.band != first.band or other.size != first.size or other.crs != first.crs
                    or other.normalization != first.normalization):
                raise InputError("tile sets differ in bands, size, CRS or normalisation and cannot be joined")
        joined = {name: np.concatenate([getattr(s, name) for s in sets]) for name in _PER_TILE}
        return replace(first, **joined, attrs=dict(first.attrs))

    def to_arrays(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """The set as plain data: its georeference and settings (JSON-ready) and its per-tile arrays.

        :func:`prospect.io.write_tiles` writes them to ``.npz``; :meth:`from_arrays` makes the set again.
        """
        meta = {"band": self.band, "crs": self.crs, "transform": list(self.transform), "size": self.size,
                "stride": self.stride, "normalization": self.normalization, "attrs": self.attrs, "format": FORMAT}
        return meta, {name: getattr(self, name) for name in _PER_TILE}

    @classmethod
    def from_arrays(cls, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> TileSet:
        """The set :meth:`to_arrays` described."""
        if meta.get("format") != FORMAT:
            raise InputError(f"format={meta.get('format')!r}: not a prospect TileSet ({FORMAT!r})")
        return cls(**{name: arrays[name] for name in _PER_TILE}, band=meta["band"], crs=meta["crs"],
                   transform=tuple(meta["transform"]), size=meta["size"], stride=meta["stride"],
                   normalization=meta["normalization"], attrs=meta["attrs"])

    @classmethod
    def load(cls, path: str | os.PathLike) -> TileSet:
        """Load a set written by :func:`prospect.io.write_tiles` (no pickles are read)."""
        from prospect.io import read_arrays

        try:
            return cls.from_arrays(*read_arrays(path))
        except InputError as exc:
            raise InputError(f"{path} is not a prospect TileSet file ({exc})") from None

    def as_torch(self) -> Any:
        """A ``torch.utils.data.Dataset`` yielding ``(float32 tensor (bands, size, size), int label)``."""
        import torch

        x, y = self.x, self.y

        class TileDataset(torch.utils.data.Dataset):
            def __len__(self) -> int:
                return len(y)

            def __getitem__(self, i: int):
                return torch.from_numpy(np.ascontiguousarray(x[i])), int(y[i])

        return TileDataset()


def _positions(extent: int, size: int, stride: int, edge: str) -> list[int]:
    positions = list(range(0, extent - size + 1, stride))
    if edge == "shift" and positions[-1] + size < extent:
        positions.append(extent - size)
    return positions


def make_tiles(
    stack: xr.DataArray,
    deposits: gpd.GeoDataFrame,
    size: Annotated[int, whole(1)] = 128,
    stride: Annotated[int, whole(1)] = 128,
    label: Literal["any", "center"] = "any",
    min_valid: Annotated[float, FRACTION_CLOSED] = 0.5,
    edge: Literal["drop", "shift"] = "drop",
    center: Annotated[int | None, whole(1)] = None,
) -> TileSet:
    """Cut ``stack`` into ``size`` × ``size`` windows every ``stride`` pixels and label them.

    Parameters
    ----------
    stack : DataArray (band, y, x)
        The evidence stack with CRS and transform (e.g. from :func:`prospect.layers.stack`).
    deposits : GeoDataFrame
        Known deposits (points; others use a representative point), reprojected when needed.
    size, stride : int
        Window size and step in pixels. The paper: 128 and 128.
    label : {"any", "center"}
        ``"any"``: a tile is ore when a deposit falls anywhere inside it.
        ``"center"``: only when it falls in the central ``center`` × ``center``
        pixels (default ``size // 2``), so a deposit at a tile's edge does not
        label it ore.
    min_valid : float
        Tiles whose fraction of valid pixels (finite in every band) is below this are dropped.
    edge : {"drop", "shift"}
        What to do when the windows do not fit exactly: ``"drop"`` the partial
        last window (1560 / 128 gives 12 × 12 = 144 tiles), or ``"shift"`` it
        inward so the last tile ends at the edge (13 × 13).
    center : int, optional
        See ``label="center"``.

    NaN left inside a kept tile is filled with the mean of that band's valid
    pixels in the tile (the stack's band mean when the tile has none); the
    number filled per tile is kept in ``TileSet.filled``.
    """
    from prospect.grid import as_bands
    from prospect.layers import deposit_pixels

    grid = Grid.from_dataarray(stack)
    stack = as_bands(stack)
    rows, cols = grid.shape
    if int(size) != size or size < 1 or size > min(rows, cols):
        raise InputError(f"size={size!r} must be a whole number of pixels from 1 to the raster's smaller side "
                         f"({min(rows, cols)}); the stack is {rows} × {cols}")
    if int(stride) != stride or stride <= 0:
        raise InputError(f"stride={stride!r} must be a positive whole number of pixels")
    if label not in ("any", "center"):
        raise InputError(f"label={label!r}; valid: 'any' (a deposit anywhere in the tile), 'center'")
    if edge not in ("drop", "shift"):
        raise InputError(f"edge={edge!r}; valid: 'drop' (partial windows dropped), 'shift' (moved inward)")
    if not (0 <= min_valid <= 1):
        raise InputError(f"min_valid={min_valid!r} must be a fraction in [0, 1]")
    center = size // 2 if center is None else int(center)
    if not (1 <= center <= size):
        raise InputError(f"center={center!r} must lie in [1, size={size}]")
    dep_row, dep_col, inside = deposit_pixels(deposits, grid)
    if not inside.any():
        raise InputError(f"none of the {len(deposits)} deposits lies inside the stack {grid}: check their CRS")
    if not inside.all():
        warnings.warn(f"{int((~inside).sum())} of {len(deposits)} deposits lie outside the stack and label no tile",
                      stacklevel=2)
    dep_row, dep_col = dep_row[inside], dep_col[inside]

    values = stack.to_numpy().astype(np.float32, copy=False)
    finite = np.isfinite(values)
    names = [str(b) for b in stack["band"].to_numpy()]
    share = finite.mean(axis=(1, 2))
    if not share.all():   # a band with no value anywhere would be filled with a constant: refuse, never fill it
        empty = [name for name, fraction in zip(names, share, strict=True) if fraction == 0]
        raise InputError(f"band(s) {empty} of the stack hold no value anywhere (all NaN): tiles would carry a "
                         "made-up constant there. Fix the layer that made them (for IDW: radius / max_distance in "
                         "CRS units, e.g. metres, not km) or leave them out of the stack")
    valid = finite.all(axis=0)
    band_mean = np.array([np.nanmean(b) for b in values], np.float32)
    margin = (size - center) // 2
    tiles, labels, offsets, filled = [], [], [], []
    for r in _positions(rows, size, stride, edge):
        for c in _positions(cols, size, stride, edge):
            if valid[r:r + size, c:c + size].mean() < min_valid:
                continue
            tile = values[:, r:r + size, c:c + size].copy()
            holes = ~np.isfinite(tile)
            if holes.any():
                for b in np.flatnonzero(holes.any(axis=(1, 2))):
                    good = tile[b][~holes[b]]
                    tile[b][holes[b]] = good.mean() if good.size else band_mean[b]
            lo_r, lo_c, span = (r, c, size) if label == "any" else (r + margin, c + margin, center)
            ore = np.any((dep_row >= lo_r) & (dep_row < lo_r + span) & (dep_col >= lo_c) & (dep_col < lo_c + span))
            tiles.append(tile)
            labels.append(int(ore))
            offsets.append((r, c))
            filled.append(int(holes.sum()))
    if not tiles:
        sparse = ", ".join(f"{name} {100 * fraction:.1f} %" for name, fraction in zip(names, share, strict=True)
                           if fraction < 0.5)
        raise InputError(f"no tile has at least min_valid={min_valid} of its pixels valid in every band "
                         f"({100 * valid.mean():.1f} % of the stack's cells are)"
                         + (f"; the sparsest bands, valid share: {sparse} - fix those layers first" if sparse
                            else "; lower min_valid or use smaller tiles"))
    offsets = np.array(offsets, np.int64)
    transform = grid.transform
    xmin = transform.c + offsets[:, 1] * transform.a
    ymax = transform.f + offsets[:, 0] * transform.e
    bounds = np.column_stack([xmin, ymax + size * transform.e, xmin + size * transform.a, ymax])
    result = TileSet(np.stack(tiles), np.array(labels, np.int64), offsets[:, 0].copy(), offsets[:, 1].copy(),
                     bounds, np.zeros(len(tiles), bool), np.array(filled, np.int64),
                     names, grid.crs.to_wkt(), tuple(transform)[:6],
                     int(size), int(stride),
                     attrs={"label": label, "center": center, "edge": edge, "min_valid": float(min_valid),
                            "fill": "tile band mean", "deposits_outside": int((~inside).sum())})
    if result.y.sum() == 0:
        raise InputError("no tile holds a deposit: nothing to learn. Use label='any', a larger size, or check "
                         "that the deposits fall on valid parts of the stack")
    return result


def _blocks(tiles: TileSet, block_size: int | None) -> np.ndarray:
    """Block id of each tile: the block of ``block_size`` pixels holding its centre."""
    if tiles.synthetic.any():
        raise InputError("split before smote/add_noise: the set holds synthetic tiles, which have no place on the map")
    block_size = 2 * max(tiles.size, tiles.stride) if block_size is None else int(block_size)
    if block_size < 1:
        raise InputError(f"block_size={block_size!r} must be a positive number of pixels")
    return block_ids(tiles.row + tiles.size // 2, tiles.col + tiles.size // 2, 1, block_size)


def _drop_overlaps(train_index: np.ndarray, test_index: np.ndarray, tiles: TileSet, buffer: int) -> np.ndarray:
    """Training tiles whose footprint, grown by ``buffer`` pixels, shares no pixel with a test tile."""
    if len(test_index) == 0 or len(train_index) == 0:
        return train_index
    r, c = tiles.row[train_index][:, None], tiles.col[train_index][:, None]
    tr, tc = tiles.row[test_index][None, :], tiles.col[test_index][None, :]
    reach = tiles.size + buffer
    overlap = (np.abs(r - tr) < reach) & (np.abs(c - tc) < reach)
    return train_index[~overlap.any(axis=1)]


def spatial_split(
    tiles: TileSet,
    test_size: Annotated[float, FRACTION_OPEN] = 0.2,
    method: Literal["blocks", "random"] = "blocks",
    block_size: Annotated[int | None, whole(1)] = None,
    buffer: Annotated[int, whole(0)] = 0,
    seed: int = 0,
) -> tuple[TileSet, TileSet]:
    """Split tiles into training and test sets with no test tile overlapping a training tile.

    Parameters
    ----------
    tiles : TileSet
        Tiles from :func:`make_tiles` (before any SMOTE or noise).
    test_size : float
        Fraction of tiles (and, as far as whole blocks allow, of ore tiles) in the test set.
    method : {"blocks", "random"}
        ``"blocks"`` (default): square blocks of ``block_size`` pixels (default
        twice the tile size) go whole to one side, ore tiles stratified across
        sides; ``"random"``: tiles are assigned one by one (stratified), for
        comparison — still with overlaps removed.
    buffer : int
        Training tiles within ``buffer`` pixels of a test tile are dropped too
        (spatial autocorrelation reaches past a tile's edge). Default 0: only
        overlapping ones.
    seed : int

    Returns
    -------
    (train, test) TileSets; ``attrs["dropped_overlap"]`` on train counts the
    training tiles dropped because they overlapped (or came within ``buffer`` of)
    a test tile.
    """
    if not (0 < test_size < 1):
        raise InputError(f"test_size={test_size!r} must be a fraction in (0, 1)")
    if method not in ("blocks", "random"):
        raise InputError(f"method={method!r}; valid: 'blocks', 'random'")
    if int(buffer) != buffer or buffer < 0:
        raise InputError(f"buffer={buffer!r} must be a whole number of pixels ≥ 0")
    blocks = _blocks(tiles, block_size) if method == "blocks" else np.arange(len(tiles))
    part = deal(blocks, tiles.y, np.ones(len(tiles)), [1 - test_size, test_size], seed, ties="first")
    return _sides(tiles, np.flatnonzero(part == 0), np.flatnonzero(part == 1), buffer,
                  {"method": method, "block_size": block_size, "seed": seed, "test_size": test_size})


def _sides(tiles: TileSet, train_index, test_index, buffer, info) -> tuple[TileSet, TileSet]:
    kept = _drop_overlaps(train_index, test_index, tiles, buffer)
    train, test = tiles[kept], tiles[test_index]
    dropped = len(train_index) - len(kept)
    train.attrs.update(info, role="train", dropped_overlap=dropped, buffer=buffer)
    test.attrs.update(info, role="test", buffer=buffer)
    if dropped:
        log.info("dropped %d training tiles overlapping the test set", dropped)
    for name, side in (("training", train), ("test", test)):
        if len(side) == 0 or side.y.sum() == 0:
            warnings.warn(f"the {name} set has {len(side)} tiles and {int(side.y.sum())} ore tiles; "
                          "try another seed, a smaller block_size or fewer folds", stacklevel=3)
    return train, test


def spatial_kfold(tiles: TileSet, k: int = 5, block_size: int | None = None, buffer: int = 0,
                  seed: int = 0) -> Iterator[tuple[TileSet, TileSet]]:
    """Yield ``k`` (train, test) pairs: blocks dealt into folds, same guarantees as :func:`spatial_split`."""
    if int(k) != k or k < 2:
        raise InputError(f"k={k!r} must be a whole number ≥ 2")
    blocks = _blocks(tiles, block_size)
    if len(np.unique(blocks)) < k:
        raise InputError(f"only {len(np.unique(blocks))} blocks for k={k} folds; use a smaller block_size or k")
    part = deal(blocks, tiles.y, np.ones(len(tiles)), np.full(k, 1 / k), seed, ties="first")
    for fold in range(k):
        yield _sides(tiles, np.flatnonzero(part != fold), np.flatnonzero(part == fold), buffer,
                     {"method": "blocks", "block_size": block_size, "seed": seed, "fold": fold, "folds": k})


def _training_only(tiles: TileSet, what: str) -> None:
    if tiles.attrs.get("role") == "test":
        raise InputError(f"{what} was given the test set; augment the training side only, or the test set "
                         "leaks into training")


def smote(tiles: TileSet, k_neighbors: Annotated[int, whole(1)] = 5, sampling_strategy: Any = "auto",
          seed: int = 0) -> TileSet:
    """Balance classes with SMOTE (imbalanced-learn) on flattened tiles; returns a new set.

    New tiles are appended with ``synthetic=True``, no position (``row = col = −1``)
    and NaN bounds. The input is not modified. Refuses a test set.
    """
    from imblearn.over_sampling import SMOTE

    _training_only(tiles, "smote")
    minority = int(np.bincount(tiles.y, minlength=2).min())
    if minority < 2:
        raise InputError(f"SMOTE interpolates between tiles of a class, but the smaller class has {minority}; "
                         "it needs at least 2 (use add_noise, or a split that leaves more ore tiles in training)")
    if minority < k_neighbors + 1:
        raise InputError(f"SMOTE needs at least k_neighbors + 1 = {k_neighbors + 1} tiles of each class, but the "
                         f"smaller class has {minority}; pass k_neighbors={max(1, minority - 1)}")
    flat = tiles.x.reshape(len(tiles), -1)
    sampler = SMOTE(k_neighbors=k_neighbors, sampling_strategy=sampling_strategy, random_state=seed)
    x_new, y_new = sampler.fit_resample(flat, tiles.y)
    extra = len(y_new) - len(tiles)
    made = _synthetic(tiles, x_new[len(tiles):].reshape(extra, *tiles.x.shape[1:]), y_new[len(tiles):])
    result = TileSet.concat(tiles, made)
    result.attrs.update(smote={"k_neighbors": k_neighbors, "added": extra, "seed": seed})
    return result


def _synthetic(tiles: TileSet, x: np.ndarray, y: np.ndarray) -> TileSet:
    n = len(y)
    return replace(tiles, x=x.astype(np.float32), y=y.astype(np.int64), row=np.full(n, -1, np.int64),
                   col=np.full(n, -1, np.int64), bounds=np.full((n, 4), np.nan), synthetic=np.ones(n, bool),
                   filled=np.zeros(n, np.int64), attrs=dict(tiles.attrs))


def add_noise(tiles: TileSet, variance: Annotated[float, POSITIVE] = 0.01, copies: Annotated[int, whole(1)] = 1,
              only_class: Annotated[int | None, whole(0)] = None, seed: int = 0) -> TileSet:
    """Append ``copies`` noisy copies of each (non-synthetic) tile: Gaussian, mean 0, ``variance``.

    The paper's augmentation (variance 0.01), meant for standardised tiles
    (:func:`fit_normalization`), where it is 10 % of a band's spread.
    ``only_class`` copies only tiles of that label (e.g. 1 for ore). Refuses a test set.
    """
    _training_only(tiles, "add_noise")
    if not (np.isfinite(variance) and variance > 0):
        raise InputError(f"variance={variance!r} must be a positive number")
    if int(copies) != copies or copies < 1:
        raise InputError(f"copies={copies!r} must be a whole number ≥ 1")
    source = ~tiles.synthetic if only_class is None else (~tiles.synthetic & (tiles.y == only_class))
    base = tiles.x[source]
    rng = np.random.default_rng(seed)
    x = np.concatenate([base + rng.normal(0.0, np.sqrt(variance), base.shape).astype(np.float32)
                        for _ in range(copies)])
    result = TileSet.concat(tiles, _synthetic(tiles, x, np.tile(tiles.y[source], copies)))
    result.attrs.update(noise={"variance": variance, "copies": copies, "only_class": only_class, "seed": seed})
    return result


def fit_normalization(tiles: TileSet) -> dict:
    """Per-band mean and standard deviation of the real (non-synthetic) tiles of a training set.

    Apply them to both sides with :func:`normalize`; never fit them on the test set.
    (:func:`prospect.normalization.fit` over tiles, pixels and bands.)
    """
    from prospect import normalization

    _training_only(tiles, "fit_normalization")
    real = tiles.x[~tiles.synthetic]
    if len(real) == 0:
        raise InputError("no real tiles to fit the normalisation on")
    return normalization.fit(real, tiles.band, axis=(0, 2, 3))


def normalize(tiles: TileSet, stats: dict) -> TileSet:
    """Standardise tiles with statistics from :func:`fit_normalization`; returns a new set."""
    from prospect import normalization

    if tiles.normalization is not None:
        raise InputError("these tiles are already standardised")
    x = normalization.apply(tiles.x, stats, tiles.band, band_axis=1, what="the tiles")
    return replace(tiles, x=x, normalization=dict(stats), attrs=dict(tiles.attrs))
