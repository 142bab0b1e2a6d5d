"""Where a lazy cross-validation (:func:`prospect.validation.cross_validate` on a dask-backed stack) keeps its
fold maps: one GeoTIFF per fold, read back lazily, so that no map is held whole."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from prospect.errors import InputError
from prospect.grid import Grid

if TYPE_CHECKING:
    import xarray as xr


class FoldStore:
    """``fold<f>.tif`` in a new folder inside ``workdir`` (kept; nothing there is overwritten), or in a temporary
    folder that goes with the store (removed when the last reference to it is dropped)."""

    def __init__(self, grid: Grid, chunks: int, workdir: str | os.PathLike | None, label: str) -> None:
        import re
        import tempfile

        self.grid, self.chunks = grid, int(chunks)
        if workdir is not None and not Path(workdir).is_dir():
            raise InputError(f"workdir={str(workdir)!r} is not a folder; give an existing folder for the fold maps")
        self._temporary = tempfile.TemporaryDirectory(prefix="prospect-folds-") if workdir is None else None
        self.folder = Path(self._temporary.name) if workdir is None else \
            Path(tempfile.mkdtemp(prefix=f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', label)}-folds-", dir=workdir))

    def keep(self, prob: xr.DataArray, fold: int) -> xr.DataArray:
        """Write fold ``fold``'s map and return it read back lazily (in the stack's chunks)."""
        from prospect.io import read_geotiff, write_geotiff

        path = self.folder / f"fold{fold}.tif"
        write_geotiff(prob, path, overviews=False, style=False)
        stored = read_geotiff(path, chunks=self.chunks).isel(band=0, drop=True)
        return stored.rename("probability").assign_attrs(prob.attrs)
