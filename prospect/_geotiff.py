"""GeoTIFFs, tile sets and band folders written and read for :mod:`prospect.io` (which re-exports them).

Float32 GeoTIFFs that QGIS opens styled (band names, units, statistics, overviews, a ``.qml`` beside
them), categorical layers as integer codes with their colour table and category names, and plain
``.npz`` arrays with JSON metadata (tile sets). Every write is atomic (:func:`prospect.files.atomic_output`).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from prospect.errors import CRSError, InputError, OutputExistsError
from prospect.files import atomic_output, existing, parse_legend
from prospect.grid import Grid, as_bands, as_crs

if TYPE_CHECKING:
    import xarray as xr

log = logging.getLogger("prospect.io")     # the room users know these by

__all__ = ["write_geotiff", "read_geotiff", "band_units", "write_arrays", "read_arrays", "write_tiles", "write_bands"]


def _overview_factors(shape: tuple[int, int], block: int = 256) -> list[int]:
    """Halvings until the smallest overview fits one block (gdaladdo's own rule): 390 px -> [2], 1560 -> [2, 4, 8]."""
    factors, factor = [], 2
    while max(shape) / (factor // 2) > block:
        factors.append(factor)
        factor *= 2
    return factors


def band_units(da: xr.DataArray) -> list[str]:
    """Each band's unit from ``attrs["units"]``: one unit for every band (``"ppm"``) or ``"Cu=ppm;Au=ppb"``."""
    text = str(da.attrs.get("units", ""))
    names = [str(b) for b in da["band"].to_numpy()] if "band" in da.dims else [str(da.name)]
    if "=" not in text:
        return [text] * len(names)
    units = dict(item.split("=", 1) for item in text.split(";") if "=" in item)
    return [units.get(name, "") for name in names]


def write_geotiff(
    da: xr.DataArray,
    path: str | os.PathLike,
    nodata: float = -9999.0,
    overwrite: bool = False,
    overviews: bool = True,
    style: bool = True,
    cog: bool = False,
) -> Path:
    """Write a raster to a QGIS-ready GeoTIFF, with its QGIS style beside it.

    Float32, tiled 256×256, deflate with the floating-point predictor, band
    interleaved, NaN written as ``nodata``, band descriptions from the ``band``
    coordinate, band units from ``attrs["units"]`` (see :func:`band_units`),
    per-band statistics tags (so QGIS stretches without scanning), scalar
    ``attrs`` as dataset tags, and internal overviews down to one 256-px block
    (a 390-px map gets one level, 1560 px three). A single categorical band
    (``attrs["kind"] == "categorical"`` with a ``legend``, as
    :func:`prospect.layers.rasterize_categorical` makes) is stored as integer codes
    (nodata 0) with a colour table, and its category names in ``<name>.tif.aux.xml``,
    where GDAL and QGIS read them. Written to a temporary file and renamed, in
    blocks of rows: a dask-backed array is computed one block at a time.

    Parameters
    ----------
    da : xarray.DataArray
        ``(band, y, x)`` or ``(y, x)`` carrying CRS and transform through rioxarray
        (as made by :class:`prospect.Grid` and every function of the package).
    path : path
        Output file; its folder must exist.
    nodata : float
        The value NaN is written as. Must not occur among the real values.
    overwrite : bool
        Replace an existing file. Default False: an existing file is an error.
    overviews : bool
        Build internal overviews (averaged; nearest for categorical codes).
    style : bool
        Also write the QGIS style ``<name>.qml`` beside the file, which QGIS applies
        when it opens it (:func:`prospect.styles.raster_renderer`: a probability ramp
        fitted to the data, an uncertainty ramp, a legend of categories, a stretch of
        the first band of a stack). Default True.
    cog : bool
        Write a Cloud Optimized GeoTIFF (GDAL's COG driver: tiles, then overviews, in the order a reader
        streams them), copied block by block from the tiled file written first. Default False.

    A lazy array (:mod:`prospect.compute`) is computed one row of its blocks at a time, each block once.
    """
    import rasterio
    from rasterio.enums import Resampling
    from rasterio.windows import Window

    grid = Grid.from_dataarray(da)
    da = as_bands(da)
    categorical = da.sizes["band"] == 1 and da.attrs.get("kind") == "categorical" and "legend" in da.attrs
    targets = [Path(path), *([Path(path).with_suffix(".qml")] if style else []),
               *([Path(f"{path}.aux.xml")] if categorical else [])]
    for target in targets:   # every path, before writing
        if target.is_dir():
            raise OutputExistsError(f"{str(target)!r} is a folder, not a file; give a file name inside it (e.g. "
                                    f"{str(target / 'prospectivity.tif')!r}), overwrite or not")
        if target.exists() and not overwrite:
            raise OutputExistsError(f"{str(target)!r} exists; pass overwrite=True to replace it")
    if not np.isfinite(nodata):
        raise InputError(f"nodata={nodata!r} must be a finite number (NaN is what it stands for)")
    if categorical:
        codes = parse_legend(da.attrs["legend"])
        dtype, nodata = ("uint8" if max(codes) < 256 else "uint16"), 0
    else:
        dtype = "float32"
    fill = np.dtype(dtype).type(nodata)
    rows, cols = grid.shape
    bands = da.sizes["band"]
    tiled = rows >= 256 and cols >= 256
    profile = dict(driver="GTiff", width=cols, height=rows, count=bands, dtype=dtype,
                   crs=grid.crs.to_wkt(), transform=grid.transform, nodata=float(fill),
                   compress="deflate", predictor=2 if categorical else 3, interleave="band", BIGTIFF="IF_SAFER")
    if tiled:
        profile.update(tiled=True, blockxsize=256, blockysize=256)
    tags = {str(k): str(v) for k, v in da.attrs.items()
            if isinstance(v, (str, int, float, bool, np.number)) and not str(k).startswith("_")}
    # Rows are written in strips, so a dask-backed array (prospect.interpolate.idw_lazy, a lazy stack's map) is
    # computed and written a strip at a time and never held whole; statistics are accumulated on the way. A
    # lazy array's strips are its rows of blocks, computed together (so no block is computed twice) and written
    # block by block (never joined into one strip).
    lazy = getattr(da.data, "dask", None) is not None
    step = max(256, (2**24 // max(1, cols * bands)) // 256 * 256)
    starts = np.cumsum((0,) + da.data.chunks[-2])[:-1].tolist() if lazy else list(range(0, rows, step))
    ends = starts[1:] + [rows]
    count = np.zeros(bands)
    total = np.zeros(bands)
    squares = np.zeros(bands)
    low = np.full(bands, np.inf)
    high = np.full(bands, -np.inf)

    def pieces(i: int, r0: int, r1: int) -> list[tuple[int, np.ndarray]]:
        """Strip ``i`` (rows ``r0:r1``) as ``(first column, (band, rows, cols) float32)`` pieces."""
        if not lazy:
            return [(0, np.asarray(da.isel(y=slice(r0, r1)).values, dtype=np.float32))]
        import dask

        data = da.data.rechunk({0: -1})
        computed = dask.compute(*[data.blocks[:, i, j] for j in range(len(data.chunks[2]))])
        firsts = np.cumsum((0,) + data.chunks[2])[:-1].tolist()
        return [(c0, np.asarray(piece, dtype=np.float32)) for c0, piece in zip(firsts, computed, strict=True)]

    with atomic_output(path, overwrite) as final:
        tmp = final.with_name(final.name + ".tiled.tif") if cog else final
        try:
            with rasterio.open(tmp, "w", **profile) as dst:
                strips = enumerate(zip(starts, ends, strict=True))
                if lazy:    # computing a strip is the long part: a bar on a terminal (a log file gets none)
                    from tqdm.auto import tqdm

                    strips = tqdm(strips, total=len(starts), desc=f"{Path(path).name} (rows of blocks)", leave=False,
                                  unit="row", disable=not sys.stderr.isatty())
                for i, (r0, r1) in strips:
                    for c0, block in pieces(i, r0, r1):
                        for b in range(bands):    # band by band: a piece's copies are one band's
                            finite = np.isfinite(block[b])
                            if np.any(block[b] == np.float32(nodata)):
                                raise InputError(f"nodata={nodata!r} occurs among the raster's real values; "
                                                 "choose another nodata value")
                            valid = block[b][finite].astype(np.float64)
                            if valid.size:
                                count[b] += valid.size
                                total[b] += valid.sum()
                                squares[b] += (valid**2).sum()
                                low[b], high[b] = min(low[b], valid.min()), max(high[b], valid.max())
                            dst.write(np.where(finite, block[b], fill).astype(dtype), b + 1,
                                      window=Window(c0, r0, block.shape[2], r1 - r0))
                for index, (name, unit) in enumerate(zip(da["band"].to_numpy(), band_units(da), strict=True), start=1):
                    dst.set_band_description(index, str(name))
                    if unit:
                        dst.set_band_unit(index, unit)
                    b = index - 1
                    if count[b]:
                        mean = total[b] / count[b]
                        std = np.sqrt(max(squares[b] / count[b] - mean**2, 0.0))
                        dst.update_tags(index, STATISTICS_MINIMUM=f"{low[b]:.8g}", STATISTICS_MAXIMUM=f"{high[b]:.8g}",
                                        STATISTICS_MEAN=f"{mean:.8g}", STATISTICS_STDDEV=f"{std:.8g}",
                                        STATISTICS_VALID_PERCENT=f"{100.0 * count[b] / (rows * cols):.4g}")
                if tags:
                    dst.update_tags(**tags)
                if categorical:
                    from prospect.styles import category_colours

                    dst.write_colormap(1, category_colours(codes))
                factors = _overview_factors(grid.shape) if overviews and not cog else []
                if factors:
                    dst.build_overviews(factors, Resampling.nearest if categorical else Resampling.average)
            if cog:   # GDAL's COG driver copies block by block; it makes the overviews itself
                from rasterio.shutil import copy

                copy(tmp, final, driver="COG", COMPRESS="DEFLATE", PREDICTOR="YES", BIGTIFF="IF_SAFER",
                     OVERVIEWS="AUTO" if overviews else "NONE", RESAMPLING="NEAREST" if categorical else "AVERAGE")
        finally:    # the tiled draft of a COG never stays behind
            if cog:
                tmp.unlink(missing_ok=True)
    if categorical:   # GDAL reads category names from its side file (a GeoTIFF has no place for them)
        names = [""] * (max(codes) + 1)
        for code, label in codes.items():
            names[code] = label
        from xml.sax.saxutils import escape

        with atomic_output(Path(f"{path}.aux.xml"), overwrite) as tmp:
            tmp.write_text('<PAMDataset>\n  <PAMRasterBand band="1">\n    <CategoryNames>\n'
                           + "".join(f"      <Category>{escape(n)}</Category>\n" for n in names)
                           + "    </CategoryNames>\n  </PAMRasterBand>\n</PAMDataset>\n", encoding="utf-8")
    if style:
        from prospect.styles import write_style

        write_style(path, overwrite=overwrite)
    log.info("wrote %s (%d bands, %dx%d)", path, bands, rows, cols)
    return Path(path)


def read_geotiff(path: str | os.PathLike, chunks: int | None = None) -> xr.DataArray:
    """Read a GeoTIFF as a float32 DataArray ``(band, y, x)`` with NaN for nodata.

    Band names come from the band descriptions (``band_1``, ... where there are
    none) and the dataset tags become ``attrs``. With ``chunks``, nothing is read
    yet: a lazy array (:mod:`prospect.compute`) of ``chunks`` × ``chunks`` blocks,
    each read when it is computed.
    """
    import rasterio

    path = existing(path)
    with rasterio.open(path) as src:
        if src.crs is None:
            raise CRSError(f"{path.name} has no CRS; assign one (e.g. gdal_edit.py -a_srs EPSG:32649) first")
        rows, cols, nodata = src.height, src.width, src.nodata
        transform, crs, tags = src.transform, src.crs, src.tags()
        if transform.b != 0 or transform.d != 0 or transform.e >= 0:
            raise InputError(f"{path.name} is not north-up (transform {tuple(transform)[:6]}); warp it first")
        values = src.read(out_dtype="float32") if chunks is None else None
        names = [d or f"band_{i + 1}" for i, d in enumerate(src.descriptions)]
        if any(src.units):
            tags.setdefault("units", ";".join(f"{n}={u}" for n, u in zip(names, src.units, strict=True) if u))
    grid = Grid((transform.c, transform.f + rows * transform.e, transform.c + cols * transform.a, transform.f),
                (rows, cols), as_crs(crs))
    if values is None:
        from prospect._rasters import _lazy_warp

        values = _lazy_warp(path, list(range(1, len(names) + 1)), grid, chunks, nodata, "nearest")
    elif nodata is not None and not np.isnan(nodata):
        values[values == np.float32(nodata)] = np.nan
    tags.pop("AREA_OR_POINT", None)
    return grid.wrap(values, bands=names, name=path.stem, attrs=tags)


def write_arrays(path: str | os.PathLike, meta: Mapping[str, Any], arrays: Mapping[str, np.ndarray],
                 overwrite: bool = False) -> Path:
    """Write named arrays and a JSON-ready ``meta`` to a compressed ``.npz`` (read back by :func:`read_arrays`)."""
    import json

    path = Path(path)
    if path.suffix != ".npz":
        raise InputError(f"path={str(path)!r} must end in .npz")
    with atomic_output(path, overwrite) as tmp:
        with open(tmp, "wb") as handle:
            np.savez_compressed(handle, meta=np.array(json.dumps(dict(meta))), **arrays)
    return path


def read_arrays(path: str | os.PathLike) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """``(meta, arrays)`` of a file :func:`write_arrays` wrote (no pickles are read)."""
    import json

    with np.load(existing(path), allow_pickle=False) as data:
        if "meta" not in data.files:
            raise InputError(f"path={str(path)!r} holds no 'meta' entry; it was not written by prospect")
        return json.loads(str(data["meta"])), {name: data[name] for name in data.files if name != "meta"}


def write_tiles(tiles: Any, path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Save a :class:`~prospect.tiles.TileSet` to ``.npz`` (arrays and georeference; ``TileSet.load`` reads it)."""
    return write_arrays(path, *tiles.to_arrays(), overwrite=overwrite)


def write_bands(stack: xr.DataArray, folder: str | os.PathLike, overwrite: bool = False, prefix: str = "",
                nodata: float = -9999.0) -> list[Path]:
    """Write each band of ``stack`` to ``folder/<prefix><band>.tif`` (one QGIS-ready file per element).

    The folder is created if missing; existing files are refused unless
    ``overwrite=True`` — and checked before anything is written.
    """
    folder = Path(folder)
    names = [str(b) for b in stack["band"].to_numpy()] if "band" in stack.dims else [str(stack.name or "band_1")]
    paths = [folder / f"{prefix}{name}.tif" for name in names]
    taken = [str(p) for p in paths if p.exists()]
    if taken and not overwrite:
        raise OutputExistsError(f"{taken} exist; pass overwrite=True to replace them")
    folder.mkdir(parents=True, exist_ok=True)
    for name, path in zip(names, paths, strict=True):
        band = stack.sel(band=name) if "band" in stack.dims else stack
        write_geotiff(band.rename(name), path, nodata=nodata, overwrite=overwrite)
    return paths
