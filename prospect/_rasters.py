"""External rasters warped onto a grid, and layers derived from one (slope, Gaussian low- and high-pass).

Public through :mod:`prospect.layers` (``pp.layers.from_raster`` and the rest); kept apart so each module
holds one concept.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from prospect.errors import CRSError, InputError
from prospect.grid import Grid, require_projected

if TYPE_CHECKING:
    import xarray as xr

__all__ = ["from_raster", "class_table", "slope", "smooth", "high_pass"]


_RESAMPLING = ("nearest", "bilinear", "cubic", "cubic_spline", "lanczos", "average", "mode", "min", "max", "med",
               "q1", "q3", "sum", "rms")


def _source_cell(transform: Any, crs: Any, width: int, height: int, grid: Grid) -> float:
    """The source raster's cell size measured in the grid's CRS units (near the source's centre)."""
    from rasterio.warp import calculate_default_transform

    left, top = transform @ (0, 0)
    right, bottom = transform @ (width, height)
    dst, _, _ = calculate_default_transform(crs, _rasterio_crs(grid.crs), width, height,
                                            left=min(left, right), bottom=min(top, bottom),
                                            right=max(left, right), top=max(top, bottom))
    return float(np.sqrt(abs(dst.a * dst.e)))


def _rasterio_crs(crs: Any) -> Any:
    from rasterio.crs import CRS as RasterioCRS

    return RasterioCRS.from_wkt(crs.to_wkt()) if hasattr(crs, "to_wkt") else RasterioCRS.from_user_input(crs)


def class_table(path: str | os.PathLike) -> tuple[dict[int, str], bool] | None:
    """The class table of a class-coded raster file: ``(code -> name, named)``, or None when it has none.

    Read from an ArcGIS raster attribute table (``<file>.vat.dbf``: the ``Value`` column and its first text
    column) or from GDAL's category names or attribute table in ``<file>.aux.xml``. ``named`` says whether
    the classes have names (a geological map, tectonic settings: nominal classes); a table of codes alone
    (``Value``, ``Count``: a reclassified continuous layer) has ordered classes, named by their codes.
    """
    from pathlib import Path

    path = Path(path)
    vat = Path(f"{path}.vat.dbf")
    if vat.is_file():
        import geopandas as gpd

        table = gpd.read_file(vat)
        columns = {str(c).lower(): c for c in table.columns}
        if "value" not in columns:
            return None
        texts = [c for c in table.columns if str(c).lower() != "value"
                 and (table[c].dtype.kind in "OSU" or str(table[c].dtype) in ("string", "str"))]
        codes = table[columns["value"]].astype(int).tolist()
        names = table[texts[0]].astype(str).tolist() if texts else [str(c) for c in codes]
        return dict(zip(codes, names, strict=True)), bool(texts)
    aux = Path(f"{path}.aux.xml")
    if aux.is_file():
        import xml.etree.ElementTree as ElementTree

        band = next((b for b in ElementTree.parse(aux).getroot().iter("PAMRasterBand") if b.get("band") == "1"), None)
        categories = band.find("CategoryNames") if band is not None else None
        if categories is not None:
            names = {code: (item.text or "").strip() for code, item in enumerate(categories.iter("Category"))}
            named = {code: name for code, name in names.items() if name}
            return (named, True) if named else None
    return None


def from_raster(
    source: str | os.PathLike | xr.DataArray,
    grid: Grid,
    band: int | Sequence[int] | None = None,
    name: str | Sequence[str] | None = None,
    resampling: str | None = None,
    categorical: bool | None = None,
    nodata: float | None = None,
    legend: dict[int, str] | None = None,
    ordered: bool | None = None,
    chunks: int | None = None,
) -> xr.DataArray:
    """Warp an external raster (magnetics, gravity, radiometrics, a DEM, ...) onto ``grid``.

    The raster is reprojected from its own CRS and resolution by GDAL's warper
    (``rasterio.warp.reproject``); only the part of a file that covers the grid is
    read. Its nodata and NaN become NaN, cells of the grid it does not cover are
    NaN (a warning gives the share covered), and a raster that covers none of the
    grid is refused (almost always a wrong CRS).

    Parameters
    ----------
    source : path or xarray.DataArray
        A raster file GDAL reads (GeoTIFF, ERDAS, ASCII grid, ...) with a CRS, or a
        ``(band, y, x)`` / ``(y, x)`` DataArray carrying CRS and transform through
        rioxarray.
    grid : prospect.Grid
        The target grid.
    band : int or list of int, optional
        Band number(s), counted from 1 as in GDAL. Default: every band.
    name : str or list of str, optional
        Band names in the stack. Default: the band descriptions, else the file name
        (``magnetics``, or ``magnetics_1``, ``magnetics_2``, ... for several bands).
    resampling : str, optional
        A GDAL resampling method: ``"nearest"``, ``"bilinear"``, ``"cubic"``,
        ``"average"``, ``"mode"``, ... Default: ``"nearest"`` for a categorical raster;
        for a continuous one ``"average"`` when the source cells are smaller than the
        grid's (every source cell counts) and ``"bilinear"`` otherwise.
    categorical : bool, optional
        The values are class codes (a geological map, land cover): nearest is the
        default resampling and a continuous one is refused. Default: True for an
        integer raster file with a class table (:func:`class_table`: a ``.vat.dbf``
        or GDAL category names), whose classes become the ``legend``; False otherwise.
    nodata : float, optional
        The source value that means "no data". Default: the one the file or array
        declares. NaN is always no data.
    legend : dict, optional
        Code → class name of a categorical raster, kept in ``attrs["legend"]`` like
        :func:`rasterize_categorical`'s. Default: the file's class table.
    ordered : bool, optional
        The classes are ordered (reclassified bins of a continuous quantity): the
        band stays one number per cell for the models (``attrs["kind"] = "ordinal"``)
        instead of one-hot classes. Default: True when ``categorical`` was detected
        from a class table of codes alone; False for named classes or ``categorical=True``.
    chunks : int, optional
        Read lazily, in blocks of ``chunks`` × ``chunks`` grid cells (:mod:`prospect.compute`): nothing but a
        coarse preview (for the checks below) is read until a block is computed, and each block reads and warps
        only the part of the file under it. For rasters larger than memory. Default: read the whole at once.
        On the file's own cells a block is read as it is (the same values); warped within one CRS, the values
        agree with the whole-grid warp to float32 rounding; across CRSs, to GDAL's approximation of the
        transformation (an eighth of a source cell), which it makes per block.

    Returns
    -------
    xarray.DataArray
        ``(band, y, x)`` float32 on ``grid``; ``attrs`` record the source, its CRS,
        the resampling, ``kind`` (``"continuous"`` or ``"categorical"``) and ``units``
        where the file gives them.

    Examples
    --------
    >>> mag = from_raster("magnetics.tif", grid, name="mag_rtp")       # doctest: +SKIP
    >>> stack = stack(elements, mag, high_pass(mag, sigma=2000))        # doctest: +SKIP
    """
    import rasterio
    from rasterio.enums import Resampling
    from rasterio.warp import reproject

    if not isinstance(grid, Grid):
        raise InputError(f"grid must be a prospect.Grid, got {type(grid).__name__}")
    if resampling is not None and resampling not in _RESAMPLING:
        raise InputError(f"resampling={resampling!r}; valid: {list(_RESAMPLING)}")
    if chunks is not None:
        from prospect.compute import check_chunks

        check_chunks(chunks)
    table = class_table(source) if isinstance(source, (str, os.PathLike)) and categorical is not False else None
    detected = categorical is None
    if detected:
        categorical = table is not None and _integer_raster(source)
    if categorical and table is not None:
        legend = legend if legend is not None else table[0]
        # a table of codes alone marks reclassified bins (ordered) - unless the caller said the codes are classes
        ordered = (detected and not table[1]) if ordered is None else ordered
    if categorical and resampling not in (None, "nearest", "mode"):
        raise InputError(f"resampling={resampling!r} would blend class codes of a categorical raster; "
                         "use 'nearest' or 'mode'")
    if nodata is not None and not isinstance(nodata, (int, float, np.number)):
        raise InputError(f"nodata={nodata!r} must be a number")
    dst_crs = _rasterio_crs(grid.crs)

    if isinstance(source, (str, os.PathLike)):
        from prospect.files import existing

        path = existing(source, "source")
        label = path.name
        try:
            dataset = rasterio.open(path)
        except rasterio.errors.RasterioIOError as exc:
            raise InputError(f"source={str(path)!r} is not a raster GDAL can read ({exc})") from exc
        with dataset:
            if dataset.crs is None:
                raise CRSError(f"source={str(path)!r} has no CRS; assign one first "
                               "(gdal_edit.py -a_srs EPSG:...)")
            bands = _bands(band, dataset.count, label)
            descriptions = [dataset.descriptions[b - 1] for b in bands]
            units = [dataset.units[b - 1] for b in bands] if dataset.units else []
            src_crs, declared = dataset.crs, dataset.nodata
            cell = _source_cell(dataset.transform, src_crs, dataset.width, dataset.height, grid)
            window = _covering_window(dataset, grid, dst_crs)
            if window is None:
                raise CRSError(_no_overlap(label, src_crs, dataset.bounds, grid))
            preview = None
            if chunks is not None:   # a coarse read of the covering window: the checks below, not the values
                scale = max(1.0, max(window.width, window.height) / 512)
                preview = (max(1, int(window.height / scale)), max(1, int(window.width / scale)))
            try:
                values = dataset.read(bands, window=window, out_dtype="float32",
                                      out_shape=None if preview is None else (len(bands), *preview))
            except rasterio.errors.RasterioIOError as exc:
                raise InputError(f"source={str(path)!r}: GDAL opens it but cannot read its cells ({exc}); the file "
                                 "is truncated or damaged - copy or export it again") from exc
            src_transform = dataset.window_transform(window)
            if preview is not None:
                src_transform = src_transform * src_transform.scale(window.width / preview[1],
                                                                    window.height / preview[0])
            stem = path.stem
    else:
        import rioxarray  # noqa: F401
        import xarray as xr

        if not isinstance(source, xr.DataArray):
            raise InputError(f"source must be a path or an xarray.DataArray, got {type(source).__name__}")
        array = source if source.ndim == 3 else source.expand_dims(band=[source.name or "band_1"])
        if array.ndim != 3 or set(array.dims) != {"band", "y", "x"}:
            raise InputError(f"source has dims {source.dims}; expected (band, y, x) or (y, x)")
        array = array.transpose("band", "y", "x")
        if array.rio.crs is None:
            raise CRSError("source has no CRS: write one with source.rio.write_crs(...)")
        label = str(source.name or "the array")
        bands = _bands(band, array.sizes["band"], label)
        values = np.asarray(array.isel(band=[b - 1 for b in bands]).values, dtype=np.float32)
        descriptions = [str(array["band"].values[b - 1]) if "band" in array.coords else None for b in bands]
        units = []
        src_crs, src_transform = array.rio.crs, array.rio.transform(recalc=False)
        declared = array.rio.nodata if array.rio.nodata is not None else array.rio.encoded_nodata
        cell = _source_cell(src_transform, src_crs, array.sizes["x"], array.sizes["y"], grid)
        stem = str(source.name or "raster")

    missing = declared if nodata is None else nodata
    if missing is not None and not np.isnan(missing):
        values[values == np.float32(missing)] = np.nan
    if resampling is None:
        resampling = "nearest" if categorical else ("average" if cell < min(grid.resolution) else "bilinear")
    target = grid if chunks is None or not isinstance(source, (str, os.PathLike)) else _coarse(grid, 512)
    out = np.full((len(bands), *target.shape), np.nan, np.float32)
    reproject(values, out, src_transform=src_transform, src_crs=src_crs, src_nodata=np.nan,
              dst_transform=target.transform, dst_crs=dst_crs, dst_nodata=np.nan,
              resampling=Resampling[resampling])
    if not np.isfinite(values).any():
        raise InputError(f"{label} holds no data where it covers the grid: every cell read is nodata"
                         f"{'' if missing is None else f' ({missing:g})'} or NaN; check the file (gdalinfo -stats) or "
                         "its nodata value")
    if not np.isfinite(out).any():
        raise CRSError(_no_overlap(label, src_crs, None, grid))
    covered = float(np.isfinite(out).all(axis=0).mean())
    lazy = target is not grid
    if covered < 0.999:
        warnings.warn(f"{label} covers {'about ' if lazy else ''}{100 * covered:.1f} % of the grid with data; the "
                      "rest is nodata, left out of every later stage", stacklevel=2)
    names = _band_names(name, descriptions, stem, len(bands))
    kind = ("ordinal" if ordered else "categorical") if categorical else "continuous"
    attrs = {"kind": kind, "source": label,
             "source_crs": src_crs.to_string(), "resampling": resampling, "coverage": round(covered, 4)}
    if units and any(units):
        attrs["units"] = ";".join(u or "" for u in units)
    if legend:
        attrs["legend"] = ";".join(f"{int(code)}={text}" for code, text in legend.items())
    name = names[0] if len(names) == 1 else stem
    if lazy:
        attrs["coverage_estimated_from"] = f"a {target.shape[0]} x {target.shape[1]} preview"
        blocks = _lazy_warp(path, bands, grid, chunks, missing, resampling)
        return grid.wrap(blocks, bands=names, name=name, attrs=attrs)
    layer = grid.wrap(out, bands=names, name=name, attrs=attrs)
    if chunks is not None:
        from prospect.compute import chunked

        layer = chunked(layer, chunks)
    return layer


def _covering_window(dataset: Any, grid: Grid, dst_crs: Any) -> Any:
    """The window of ``dataset`` that covers ``grid`` (plus 4 cells for the resampling kernel), None if none."""
    import rasterio
    from rasterio.warp import transform_bounds
    from rasterio.windows import Window, from_bounds

    left, bottom, right, top = transform_bounds(dst_crs, dataset.crs, *grid.bounds, densify_pts=21)
    window = from_bounds(left, bottom, right, top, dataset.transform)
    col0, row0 = int(np.floor(window.col_off)) - 4, int(np.floor(window.row_off)) - 4
    col1 = int(np.ceil(window.col_off + window.width)) + 4
    row1 = int(np.ceil(window.row_off + window.height)) + 4
    try:
        window = Window(col0, row0, col1 - col0, row1 - row0).intersection(
            Window(0, 0, dataset.width, dataset.height))
    except rasterio.errors.WindowError:
        return None
    return window if window.width >= 1 and window.height >= 1 else None


def _coarse(grid: Grid, most: int) -> Grid:
    """``grid``'s extent in at most ``most`` cells a side (the preview the lazy checks use)."""
    factor = max(1.0, max(grid.shape) / most)
    return Grid(grid.bounds, (max(1, round(grid.shape[0] / factor)), max(1, round(grid.shape[1] / factor))),
                grid.crs)


def _aligned(transform: Any, grid: Grid) -> tuple[int, int] | None:
    """The (row, col) of the grid's corner among the source's cells when the source's cells are the grid's
    (same size, whole-cell offset), else None: then a block is read, not warped."""
    target = grid.transform
    if not (np.isclose(transform.a, target.a, rtol=1e-9) and np.isclose(transform.e, target.e, rtol=1e-9)
            and transform.b == 0 and transform.d == 0):
        return None
    col, row = (target.c - transform.c) / transform.a, (target.f - transform.f) / transform.e
    if abs(col - round(col)) > 1e-6 or abs(row - round(row)) > 1e-6:
        return None
    return round(row), round(col)


def _lazy_warp(path: Any, bands: list[int], grid: Grid, chunks: int, missing: float | None,
               resampling: str) -> Any:
    """``(bands, y, x)`` dask array of ``path`` on ``grid``: each block reads (and warps) only what lies under it."""
    import dask.array

    from prospect.compute import check_chunks

    chunks = check_chunks(chunks)
    rows, cols = grid.shape
    row_chunks = tuple(min(chunks, rows - r) for r in range(0, rows, chunks))
    col_chunks = tuple(min(chunks, cols - c) for c in range(0, cols, chunks))

    def block(block_info: dict | None = None) -> np.ndarray:
        (_, _), (r0, r1), (c0, c1) = block_info[None]["array-location"]
        return _warp_block(path, bands, grid, (r0, r1, c0, c1), missing, resampling)

    return dask.array.map_blocks(block, dtype=np.float32, chunks=((len(bands),), row_chunks, col_chunks),
                                 meta=np.empty((0, 0, 0), np.float32))


def _warp_block(path: Any, bands: list[int], grid: Grid, where: tuple[int, int, int, int], missing: float | None,
                resampling: str) -> np.ndarray:
    import rasterio
    from rasterio.enums import Resampling
    from rasterio.vrt import WarpedVRT
    from rasterio.windows import Window

    r0, r1, c0, c1 = where
    t = grid.transform
    part = Grid((t.c + c0 * t.a, t.f + r1 * t.e, t.c + c1 * t.a, t.f + r0 * t.e), (r1 - r0, c1 - c0), grid.crs)
    out = np.full((len(bands), r1 - r0, c1 - c0), np.nan, np.float32)
    with rasterio.open(path) as dataset:
        corner = _aligned(dataset.transform, grid) if dataset.crs == _rasterio_crs(grid.crs) else None
        if corner is not None:     # the file's cells are the grid's: read the block, no resampling
            row, col = corner[0] + r0, corner[1] + c0
            window = Window(col, row, c1 - c0, r1 - r0)
            values = dataset.read(bands, window=window, out_dtype="float32", boundless=True, fill_value=np.nan)
            if missing is not None and not np.isnan(missing):
                values[values == np.float32(missing)] = np.nan
            return values
        if _covering_window(dataset, part, _rasterio_crs(grid.crs)) is None:
            return out
        # GDAL's warper reading the file itself (a numpy-to-numpy reproject in dask's threads warns spuriously
        # that a dataset has no geotransform: opendatacube/odc-geo#131)
        with WarpedVRT(dataset, crs=_rasterio_crs(grid.crs), transform=part.transform, width=c1 - c0,
                       height=r1 - r0, resampling=Resampling[resampling], src_nodata=missing,
                       nodata=np.nan, dtype="float32") as warped:
            out = warped.read(bands, out_dtype="float32")
    return out


def _no_overlap(label: str, crs: Any, bounds: Any, grid: Grid) -> str:
    where = "" if bounds is None else f" (it spans {tuple(round(float(b), 4) for b in bounds)} in {crs.to_string()})"
    return (f"the raster {label} does not overlap the grid {grid.bounds} in {grid.crs.to_string()}{where}: check "
            "the raster's CRS (gdalinfo shows it) and the grid's bounds")


def _bands(band: Any, count: int, label: str) -> list[int]:
    if band is None:
        return list(range(1, count + 1))
    chosen = [band] if np.ndim(band) == 0 else list(band)
    if not chosen or not all(isinstance(b, (int, np.integer)) and not isinstance(b, bool) and 1 <= b <= count
                             for b in chosen):
        raise InputError(f"band={band!r}; {label} has bands 1 to {count} (counted from 1, as in GDAL)")
    return [int(b) for b in chosen]


def _band_names(name: Any, descriptions: list, stem: str, count: int) -> list[str]:
    if name is not None:
        names = [name] if isinstance(name, str) else [str(n) for n in name]
        if len(names) != count:
            raise InputError(f"name={name!r} gives {len(names)} name(s) for {count} band(s)")
        return names
    if all(descriptions) and len(set(descriptions)) == count:
        return [str(d) for d in descriptions]
    return [stem] if count == 1 else [f"{stem}_{i + 1}" for i in range(count)]


def _single_band(layer: xr.DataArray, argument: str = "layer") -> tuple[Any, str, Grid]:
    """The layer's one band as float64 (a lazy layer's: a lazy ``(y, x)`` array), its name and grid."""
    grid = Grid.from_dataarray(layer)
    if layer.ndim == 3:
        if layer.sizes["band"] != 1:
            raise InputError(f"{argument} has {layer.sizes['band']} bands; pick one with "
                             f"{argument}.sel(band=[...]) (bands: {[str(b) for b in layer['band'].values]})")
        return _float64(layer.data[0]), str(layer["band"].values[0]), grid
    return _float64(layer.data), str(layer.name or "layer"), grid


def _float64(data: Any) -> Any:
    return data.astype(np.float64) if getattr(data, "dask", None) is not None else np.asarray(data, np.float64)


def _filtered(values: Any, pad: tuple[int, int], function: Any) -> Any:
    """``function`` of the layer extended past the grid's edges by ``pad`` (rows, columns) cells of odd
    reflection (linearly: exact for a plane), cut back to the grid (float64). A lazy layer is worked block by
    block (:func:`prospect.compute.with_halo`), each block extended by its neighbours' cells and, at the grid's
    edges, by the same reflection: the same values as the whole layer's."""
    if getattr(values, "dask", None) is None:
        extended = np.pad(values, ((pad[0],) * 2, (pad[1],) * 2), mode="reflect", reflect_type="odd")
        return function(extended)[pad[0]:pad[0] + values.shape[0], pad[1]:pad[1] + values.shape[1]]
    from prospect.compute import with_halo

    halo = max(pad)

    def block(piece: np.ndarray, core: tuple[tuple[int, int], tuple[int, int]], origin: tuple[int, int]) -> np.ndarray:
        (r0, r1), (c0, c1) = core
        before = (halo - (r0 - origin[0]), halo - (c0 - origin[1]))      # > 0 only at the grid's edges
        after = (halo - (origin[0] + piece.shape[0] - r1), halo - (origin[1] + piece.shape[1] - c1))
        extended = np.pad(piece, ((before[0], after[0]), (before[1], after[1])), mode="reflect", reflect_type="odd")
        return function(extended)[halo:halo + r1 - r0, halo:halo + c1 - c0]

    return with_halo(values, halo, block, np.float64)


def _integer_raster(path: str | os.PathLike) -> bool:
    import rasterio

    try:
        with rasterio.open(path) as src:
            return np.issubdtype(np.dtype(src.dtypes[0]), np.integer)
    except rasterio.errors.RasterioIOError:
        return False     # from_raster says what is wrong with the file


def slope(layer: xr.DataArray, name: str | None = None) -> xr.DataArray:
    """Slope in degrees of a single-band layer (a DEM), by Horn's method (``xrspatial.slope``).

    Cell sizes come from the grid, so a layer in metres on a projected grid gives
    true slopes. Edge cells are computed from the layer extended linearly past the
    edge (odd reflection: exact for a plane) rather than left as NaN; NaN cells
    make their neighbours NaN.
    """
    import xarray as xr
    import xrspatial
    from xrspatial.utils import calc_res

    values, band, grid = _single_band(layer)
    require_projected(grid.crs, "the layer's CRS", "slope")
    xres, yres = grid.resolution
    x = np.concatenate([[grid.x[0] - xres], grid.x, [grid.x[-1] + xres]])
    y = np.concatenate([[grid.y[0] + yres], grid.y, [grid.y[-1] - yres]])
    # the cell size xrspatial takes from the grid extended by a cell (given to every block, so each uses the same)
    res = calc_res(xr.DataArray(np.broadcast_to(np.float64(0), (len(y), len(x))), dims=("y", "x"),
                                coords={"y": y, "x": x}))

    def horn(extended: np.ndarray) -> np.ndarray:
        return xrspatial.slope(xr.DataArray(extended, dims=("y", "x"), attrs={"res": tuple(map(float, res))})).values

    out = _filtered(values, (1, 1), horn).astype(np.float32)
    name = name or f"{band}_slope"
    return grid.wrap(out[None], bands=[name], name=name, attrs={"kind": "continuous", "units": "degree",
                                                                "derived": f"slope of {band}"})


def _gaussian(values: Any, sigma_cells: tuple[float, float]) -> Any:
    """A Gaussian low-pass that ignores NaN (normalised convolution) and keeps NaN cells NaN.

    The layer is extended past its edges by odd reflection (linearly), so a regional
    gradient is not bent towards the edge values near the border.
    """
    from scipy.ndimage import gaussian_filter

    def low_pass(extended: np.ndarray) -> np.ndarray:
        valid = np.isfinite(extended)
        weight = gaussian_filter(valid.astype(np.float64), sigma_cells, mode="constant", truncate=4.0)
        total = gaussian_filter(np.where(valid, extended, 0.0), sigma_cells, mode="constant", truncate=4.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(valid & (weight > 1e-9), total / weight, np.nan)

    return _filtered(values, tuple(int(4 * s) + 1 for s in sigma_cells), low_pass)


def _sigma_cells(sigma: float, grid: Grid) -> tuple[float, float]:
    if isinstance(sigma, bool) or not isinstance(sigma, (int, float, np.number)) or not (np.isfinite(sigma)
                                                                                          and sigma > 0):
        raise InputError(f"sigma={sigma!r} must be a positive distance in CRS units (e.g. 2000 for 2 km)")
    xres, yres = grid.resolution
    if sigma < 0.5 * min(xres, yres):
        raise InputError(f"sigma={sigma!r} is under half a cell ({min(xres, yres):g}); it would change nothing")
    return sigma / yres, sigma / xres


def smooth(layer: xr.DataArray, sigma: float, name: str | None = None) -> xr.DataArray:
    """A Gaussian low-pass of a single-band layer: the regional trend (``scipy.ndimage.gaussian_filter``).

    ``sigma`` is the standard deviation of the Gaussian in CRS units. NaN cells
    are left out of every average and stay NaN.
    """
    values, band, grid = _single_band(layer)
    out = _gaussian(values, _sigma_cells(sigma, grid)).astype(np.float32)
    name = name or f"{band}_smooth{sigma:g}"
    return grid.wrap(out[None], bands=[name], name=name,
                     attrs={"kind": "continuous", "derived": f"Gaussian low-pass of {band}, sigma {sigma:g}"})


def high_pass(layer: xr.DataArray, sigma: float, name: str | None = None) -> xr.DataArray:
    """The layer minus its Gaussian low-pass: local anomalies without the regional trend.

    For a potential field this is the residual anomaly (wavelengths shorter than
    about ``2π·sigma``). ``sigma`` in CRS units, as for :func:`smooth`.
    """
    values, band, grid = _single_band(layer)
    out = (values - _gaussian(values, _sigma_cells(sigma, grid))).astype(np.float32)
    name = name or f"{band}_highpass{sigma:g}"
    return grid.wrap(out[None], bands=[name], name=name,
                     attrs={"kind": "continuous", "derived": f"{band} minus its Gaussian low-pass, sigma {sigma:g}"})
