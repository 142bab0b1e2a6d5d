"""Evidence layers, the study-area mask and the multi-band stack.

Geology polygons become a categorical band (or one band per unit), faults a
band of exact Euclidean distance from each pixel centre, deposits a mask,
external rasters (magnetics, gravity, a DEM, in any CRS and resolution) are
warped onto the grid, with slope and Gaussian low- and high-pass versions
derived from them; a polygon layer gives the study area. All on one
:class:`prospect.Grid`, stacked with the interpolated elements into the
``(band, y, x)`` raster the tiles are cut from.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from prospect.errors import ColumnError, CRSError, GridMismatchError, InputError
from prospect.grid import Grid

if TYPE_CHECKING:
    import geopandas as gpd
    import xarray as xr

__all__ = ["rasterize_categorical", "distance_to", "deposit_layer", "deposit_pixels", "stack", "legend",
           "from_raster", "slope", "smooth", "high_pass", "study_area", "apply_mask", "check_overlap"]


def check_overlap(gdf: gpd.GeoDataFrame, grid: Grid, argument: str, reach: float = 0.0) -> None:
    """Refuse a layer none of whose geometries reaches the grid: almost always a wrong CRS.

    ``gdf`` must already be in the grid's CRS. ``reach`` (CRS units) lets geometries lie that far
    outside the grid (a fault just beyond the edge still gives distances).
    """
    import shapely

    box = shapely.box(*grid.bounds)
    if reach > 0:
        box = box.buffer(reach)
    if not shapely.intersects(gdf.geometry.to_numpy(), box).any():
        kinds = "/".join(sorted(set(gdf.geom_type.dropna())))
        span = tuple(round(float(v), 3) for v in gdf.total_bounds)
        raise CRSError(f"no {kinds or 'geometry'} of {argument} overlaps the grid {grid.bounds} (the layer spans "
                       f"{span} in {grid.crs.to_string()}): check the CRS the layer was read with (crs=...) or "
                       "the grid's bounds")


def _on_grid(gdf: gpd.GeoDataFrame, grid: Grid, argument: str, reach: float = 0.0) -> gpd.GeoDataFrame:
    if not isinstance(grid, Grid):
        raise InputError(f"grid must be a prospect.Grid, got {type(grid).__name__}")
    if getattr(gdf, "crs", None) is None:
        raise CRSError(f"{argument} has no CRS; read it with pp.io.read_vector(..., crs=...)")
    gdf = gdf[gdf.geometry.notna() & ~gdf.geometry.is_empty]
    if len(gdf) == 0:
        raise InputError(f"{argument} has no geometries")
    gdf = gdf.to_crs(grid.crs) if gdf.crs != grid.crs else gdf
    check_overlap(gdf, grid, argument, reach)
    return gdf


def rasterize_categorical(
    gdf: gpd.GeoDataFrame,
    field: str,
    grid: Grid,
    one_hot: bool = False,
    categories: Sequence[Any] | None = None,
) -> xr.DataArray:
    """Rasterise a categorical field of polygons (e.g. geological units).

    A pixel takes the polygon that contains its centre (GDAL's rule, as QGIS).

    Parameters
    ----------
    gdf : GeoDataFrame
        Polygons, reprojected to the grid's CRS when needed.
    field : str
        The categorical column, e.g. ``"unit"``.
    grid : prospect.Grid
    one_hot : bool
        False (default): one band named ``field`` holding codes 1..K (float32,
        NaN outside every polygon) with the legend in ``attrs["legend"]``
        (``"1=Carboniferous;2=Devonian;..."``; :func:`legend` reads it back).
        True: one 0/1 band per category, named ``"<field>=<category>"``.
    categories : sequence, optional
        The categories and their order (codes follow it). Default: the field's
        values, sorted. Values not listed are an error.
    """
    import rasterio.features

    gdf = _on_grid(gdf, grid, "gdf")
    if field not in gdf.columns:
        columns = [c for c in gdf.columns if c != gdf.geometry.name]
        raise ColumnError(f"field={field!r} is not a column; columns are {columns}")
    present = sorted(gdf[field].dropna().unique().tolist(), key=str)
    categories = present if categories is None else list(categories)
    unknown = [c for c in present if c not in categories]
    if unknown:
        raise InputError(f"categories {categories} do not include {unknown} found in {field!r}")
    code_of = {c: i + 1 for i, c in enumerate(categories)}
    shapes = [(geom, code_of[value]) for geom, value in zip(gdf.geometry, gdf[field], strict=True)
              if value in code_of]
    codes = rasterio.features.rasterize(shapes, out_shape=grid.shape, transform=grid.transform, fill=0,
                                        dtype="int32")
    text = ";".join(f"{code}={name}" for name, code in code_of.items())
    if not one_hot:
        values = np.where(codes > 0, codes, np.nan).astype(np.float32)[None]
        return grid.wrap(values, bands=[field], name=field, attrs={"legend": text, "kind": "categorical"})
    covered = codes > 0
    bands = np.stack([np.where(covered, (codes == code_of[c]).astype(np.float32), np.nan) for c in categories])
    return grid.wrap(bands.astype(np.float32), bands=[f"{field}={c}" for c in categories], name=field,
                     attrs={"legend": text, "kind": "one-hot"})


def legend(layer: xr.DataArray) -> dict[int, str]:
    """The code → category mapping of a layer made by :func:`rasterize_categorical`."""
    text = layer.attrs.get("legend")
    if not text:
        raise InputError("the layer has no 'legend' attribute; it was not made by rasterize_categorical")
    return {int(code): name for code, name in (item.split("=", 1) for item in text.split(";"))}


def _segments(gdf: gpd.GeoDataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Line segments (S, 2, 2) of every line and polygon boundary, and the points (Q, 2)."""
    import shapely

    parts = shapely.get_parts(gdf.geometry.to_numpy())
    kind = shapely.get_type_id(parts)
    is_point, is_polygon = kind == 0, kind == 3
    lines = np.concatenate([parts[~is_point & ~is_polygon], shapely.get_parts(shapely.boundary(parts[is_polygon]))])
    points = shapely.get_coordinates(parts[is_point])
    segments = []
    for line in lines:
        coords = shapely.get_coordinates(line)
        if len(coords) >= 2:
            segments.append(np.stack([coords[:-1], coords[1:]], axis=1))
    segments = np.concatenate(segments) if segments else np.empty((0, 2, 2))
    return segments, points


def _split(segments: np.ndarray, longest: float) -> np.ndarray:
    """Cut segments into pieces no longer than ``longest`` (the same lines, finer)."""
    lengths = np.hypot(*(segments[:, 1] - segments[:, 0]).T)
    pieces = np.maximum(1, np.ceil(lengths / longest)).astype(int)
    owner = np.repeat(np.arange(len(segments)), pieces)
    step = np.concatenate([np.arange(n) for n in pieces])
    fraction = np.stack([step / pieces[owner], (step + 1) / pieces[owner]], axis=1)
    a, b = segments[owner, 0], segments[owner, 1]
    return a[:, None, :] + fraction[:, :, None] * (b - a)[:, None, :]


def distance_to(gdf: gpd.GeoDataFrame, grid: Grid, name: str = "distance", chunk: int = 2**19) -> xr.DataArray:
    """Exact Euclidean distance from each pixel centre to the nearest geometry, in CRS units.

    Lines (faults), points and polygons (0 inside, distance to the boundary
    outside) are measured exactly, not as a count of pixels. Segments are cut
    into pieces of at most 8 pixels; a KD-tree over their midpoints proposes the
    16 nearest pieces of each pixel, whose exact point-to-segment distances are
    taken, and a pixel for which those 16 cannot prove the minimum is checked
    against every piece. Returns ``(band, y, x)`` float32
    with one band ``name``.
    """
    import rasterio.features
    from scipy.spatial import cKDTree

    from prospect._kernels import nearest_segment
    from prospect.grid import require_projected

    require_projected(grid.crs, "grid.crs", "distances")
    xmin, ymin, xmax, ymax = grid.bounds
    gdf = _on_grid(gdf, grid, "gdf", reach=max(xmax - xmin, ymax - ymin))
    segments, points = _segments(gdf)
    rows, cols = grid.shape
    centre = np.array([grid.x.mean(), grid.y.mean()])
    if len(segments):
        pieces = _split(segments - centre, 8 * max(grid.resolution))
        start, direction = pieces[:, 0], pieces[:, 1] - pieces[:, 0]
        length2 = np.maximum((direction**2).sum(axis=1), 1e-300)
        reach = 0.5 * float(np.sqrt(length2.max()))
        tree = cKDTree(0.5 * (pieces[:, 0] + pieces[:, 1]))
        k = min(16, len(pieces))
    if len(points):
        point_tree = cKDTree(points - centre)
    result = np.empty(grid.shape, np.float64)
    step = max(1, chunk // cols)
    for r0 in range(0, rows, step):
        r1 = min(rows, r0 + step)
        gx, gy = np.meshgrid(grid.x - centre[0], grid.y[r0:r1] - centre[1])
        query = np.column_stack([gx.ravel(), gy.ravel()])
        best = point_tree.query(query, k=1, workers=-1)[0] if len(points) else np.full(len(query), np.inf)
        if len(segments):
            mid_distance, index = tree.query(query, k=k, workers=-1)
            mid_distance, index = mid_distance.reshape(len(query), k), index.reshape(len(query), k)
            kth = mid_distance[:, -1] if k < len(pieces) else np.full(len(query), np.inf)
            best = np.ascontiguousarray(best, dtype=np.float64)
            nearest_segment(query, start, direction, length2, index.astype(np.int64), kth, reach, best)
        result[r0:r1] = best.reshape(r1 - r0, cols)
    polygons = gdf[gdf.geom_type.isin(["Polygon", "MultiPolygon"])]
    if len(polygons):
        inside = rasterio.features.rasterize(((g, 1) for g in polygons.geometry), out_shape=grid.shape,
                                             transform=grid.transform, fill=0, dtype="uint8")
        result[inside == 1] = 0.0
    return grid.wrap(result.astype(np.float32)[None], bands=[name], name=name,
                     attrs={"kind": "distance", "units": grid.crs.axis_info[0].unit_name})


def deposit_pixels(deposits: gpd.GeoDataFrame, grid: Grid) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row and column of the pixel holding each deposit, and whether it lies inside the grid.

    Deposits are reprojected to the grid's CRS (refused without a CRS); other
    geometries than points use a representative point.
    """
    if getattr(deposits, "crs", None) is None:
        raise CRSError("deposits have no CRS; read them with pp.io.read_vector(..., crs=...)")
    if deposits.crs != grid.crs:
        deposits = deposits.to_crs(grid.crs)
    points = deposits.geometry if (deposits.geom_type == "Point").all() else deposits.geometry.representative_point()
    row, col = grid.rowcol(points.x.to_numpy(), points.y.to_numpy())
    inside = (row >= 0) & (row < grid.shape[0]) & (col >= 0) & (col < grid.shape[1])
    return row, col, inside


def deposit_layer(deposits: gpd.GeoDataFrame, grid: Grid, radius: float = 0.0, name: str = "deposits") -> xr.DataArray:
    """A 0/1 band marking deposits: the pixel holding each one, or every pixel centre within ``radius``.

    Deposits outside the grid mark nothing (:mod:`prospect.evaluation` counts and reports them).
    """
    deposits = _on_grid(deposits, grid, "deposits")
    if not (np.isfinite(radius) and radius >= 0):
        raise InputError(f"radius={radius!r} must be a distance ≥ 0 in CRS units")
    mask = np.zeros(grid.shape, np.float32)
    if radius == 0:
        row, col, inside = deposit_pixels(deposits, grid)
        mask[row[inside], col[inside]] = 1.0
    else:
        from scipy.spatial import cKDTree

        geometry = deposits.geometry if (deposits.geom_type == "Point").all() else \
            deposits.geometry.representative_point()
        gx, gy = np.meshgrid(grid.x, grid.y)
        distance, _ = cKDTree(np.column_stack([geometry.x, geometry.y])).query(
            np.column_stack([gx.ravel(), gy.ravel()]), k=1, distance_upper_bound=radius * (1 + 1e-12), workers=-1)
        mask = (distance <= radius).reshape(grid.shape).astype(np.float32)
    return grid.wrap(mask[None], bands=[name], name=name, attrs={"kind": "mask", "radius": float(radius)})


def stack(*arrays: xr.DataArray) -> xr.DataArray:
    """Concatenate rasters on one grid into a ``(band, y, x)`` float32 stack.

    ``(y, x)`` arrays become one band named after the array. Every array must
    share the first one's grid (shape, transform and CRS), and band names must
    be unique across the stack.
    """

    if not arrays:
        raise InputError("stack() needs at least one array")
    reference = Grid.from_dataarray(arrays[0])
    bands = []
    for position, array in enumerate(arrays):
        grid = Grid.from_dataarray(array)
        if grid != reference:
            raise GridMismatchError(f"array {position} ({array.name!r}) is on {grid}, but array 0 is on {reference}; "
                                    "interpolate or rasterise every layer on the same Grid")
        if array.ndim == 2:
            array = array.expand_dims(band=[str(array.name or f"layer_{position}")])
        bands.append(array.transpose("band", "y", "x").astype(np.float32))
    names = [str(b) for array in bands for b in array["band"].to_numpy()]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise InputError(f"band names {duplicates} occur more than once; rename with "
                         "da.assign_coords(band=[...]) before stacking")
    values = np.concatenate([b.to_numpy() for b in bands])
    attrs = {"bands": ", ".join(names)}
    for array in bands:  # keep each categorical layer's legend, e.g. attrs["unit_legend"]
        if "legend" in array.attrs:
            attrs[f"{array['band'].values[0]}_legend"] = array.attrs["legend"]
    return reference.wrap(values, bands=names, name="stack", attrs=attrs)


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


def from_raster(
    source: str | os.PathLike | xr.DataArray,
    grid: Grid,
    band: int | Sequence[int] | None = None,
    name: str | Sequence[str] | None = None,
    resampling: str | None = None,
    categorical: bool = False,
    nodata: float | None = None,
    legend: dict[int, str] | None = None,
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
    categorical : bool
        The values are class codes (a geological map, land cover): nearest is the
        default resampling and a continuous one is refused. Default False.
    nodata : float, optional
        The source value that means "no data". Default: the one the file or array
        declares. NaN is always no data.
    legend : dict, optional
        Code → class name of a categorical raster, kept in ``attrs["legend"]`` like
        :func:`rasterize_categorical`'s.

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
    from rasterio.warp import reproject, transform_bounds
    from rasterio.windows import Window, from_bounds

    if not isinstance(grid, Grid):
        raise InputError(f"grid must be a prospect.Grid, got {type(grid).__name__}")
    if resampling is not None and resampling not in _RESAMPLING:
        raise InputError(f"resampling={resampling!r}; valid: {list(_RESAMPLING)}")
    if categorical and resampling not in (None, "nearest", "mode"):
        raise InputError(f"resampling={resampling!r} would blend class codes of a categorical raster; "
                         "use 'nearest' or 'mode'")
    if nodata is not None and not isinstance(nodata, (int, float, np.number)):
        raise InputError(f"nodata={nodata!r} must be a number")
    dst_crs = _rasterio_crs(grid.crs)

    if isinstance(source, (str, os.PathLike)):
        from prospect.io import _existing

        path = _existing(source, "source")
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
            # Read only the window that covers the grid (plus a margin for the resampling kernel).
            left, bottom, right, top = transform_bounds(dst_crs, src_crs, *grid.bounds, densify_pts=21)
            window = from_bounds(left, bottom, right, top, dataset.transform)
            col0, row0 = int(np.floor(window.col_off)) - 4, int(np.floor(window.row_off)) - 4
            col1 = int(np.ceil(window.col_off + window.width)) + 4
            row1 = int(np.ceil(window.row_off + window.height)) + 4
            window = Window(col0, row0, col1 - col0, row1 - row0)
            try:
                window = window.intersection(Window(0, 0, dataset.width, dataset.height))
            except rasterio.errors.WindowError:
                window = None
            if window is None or window.width < 1 or window.height < 1:
                raise CRSError(_no_overlap(label, src_crs, dataset.bounds, grid))
            values = dataset.read(bands, window=window, out_dtype="float32")
            src_transform = dataset.window_transform(window)
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
    out = np.full((len(bands), *grid.shape), np.nan, np.float32)
    reproject(values, out, src_transform=src_transform, src_crs=src_crs, src_nodata=np.nan,
              dst_transform=grid.transform, dst_crs=dst_crs, dst_nodata=np.nan,
              resampling=Resampling[resampling])
    if not np.isfinite(out).any():
        raise CRSError(_no_overlap(label, src_crs, None, grid))
    covered = float(np.isfinite(out).all(axis=0).mean())
    if covered < 0.999:
        warnings.warn(f"{label} covers {100 * covered:.1f} % of the grid with data; the rest is nodata, "
                      "left out of every later stage", stacklevel=2)
    names = _band_names(name, descriptions, stem, len(bands))
    attrs = {"kind": "categorical" if categorical else "continuous", "source": label,
             "source_crs": src_crs.to_string(), "resampling": resampling, "coverage": round(covered, 4)}
    if units and any(units):
        attrs["units"] = ";".join(u or "" for u in units)
    if legend:
        attrs["legend"] = ";".join(f"{int(code)}={text}" for code, text in legend.items())
    return grid.wrap(out, bands=names, name=names[0] if len(names) == 1 else stem, attrs=attrs)


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


def _single_band(layer: xr.DataArray, argument: str = "layer") -> tuple[np.ndarray, str, Grid]:
    grid = Grid.from_dataarray(layer)
    if layer.ndim == 3:
        if layer.sizes["band"] != 1:
            raise InputError(f"{argument} has {layer.sizes['band']} bands; pick one with "
                             f"{argument}.sel(band=[...]) (bands: {[str(b) for b in layer['band'].values]})")
        return layer.values[0].astype(np.float64), str(layer["band"].values[0]), grid
    return layer.values.astype(np.float64), str(layer.name or "layer"), grid


def slope(layer: xr.DataArray, name: str | None = None) -> xr.DataArray:
    """Slope in degrees of a single-band layer (a DEM), by Horn's method (``xrspatial.slope``).

    Cell sizes come from the grid, so a layer in metres on a projected grid gives
    true slopes. Edge cells are computed from the layer extended linearly past the
    edge (odd reflection: exact for a plane) rather than left as NaN; NaN cells
    make their neighbours NaN.
    """
    import xarray as xr
    import xrspatial

    values, band, grid = _single_band(layer)
    _require_projected_grid(grid, "slope")
    padded = np.pad(values, 1, mode="reflect", reflect_type="odd")
    xres, yres = grid.resolution
    x = np.concatenate([[grid.x[0] - xres], grid.x, [grid.x[-1] + xres]])
    y = np.concatenate([[grid.y[0] + yres], grid.y, [grid.y[-1] - yres]])
    result = xrspatial.slope(xr.DataArray(padded, dims=("y", "x"), coords={"y": y, "x": x}))
    out = np.asarray(result.values[1:-1, 1:-1], np.float32)
    name = name or f"{band}_slope"
    return grid.wrap(out[None], bands=[name], name=name, attrs={"kind": "continuous", "units": "degree",
                                                                "derived": f"slope of {band}"})


def _require_projected_grid(grid: Grid, purpose: str) -> None:
    from prospect.grid import require_projected

    require_projected(grid.crs, "the layer's CRS", purpose)


def _gaussian(values: np.ndarray, sigma_cells: tuple[float, float]) -> np.ndarray:
    """A Gaussian low-pass that ignores NaN (normalised convolution) and keeps NaN cells NaN.

    The layer is extended past its edges by odd reflection (linearly), so a regional
    gradient is not bent towards the edge values near the border.
    """
    from scipy.ndimage import gaussian_filter

    pad = tuple((int(4 * s) + 1,) * 2 for s in sigma_cells)
    extended = np.pad(values, pad, mode="reflect", reflect_type="odd")
    valid = np.isfinite(extended)
    weight = gaussian_filter(valid.astype(np.float64), sigma_cells, mode="constant", truncate=4.0)
    total = gaussian_filter(np.where(valid, extended, 0.0), sigma_cells, mode="constant", truncate=4.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        low = np.where(valid & (weight > 1e-9), total / weight, np.nan)
    return low[pad[0][0]:pad[0][0] + values.shape[0], pad[1][0]:pad[1][0] + values.shape[1]]


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


def study_area(polygons: gpd.GeoDataFrame, grid: Grid, buffer: float = 0.0, name: str = "study_area") -> xr.DataArray:
    """The study area as a 0/1 band: 1 where a pixel centre lies inside a polygon (GDAL's rule).

    ``buffer`` (CRS units) grows (or, negative, shrinks) the polygons first. Use it
    with :func:`apply_mask`; cells outside are nodata in every later stage.
    """
    import rasterio.features

    polygons = _on_grid(polygons, grid, "polygons")
    kinds = set(polygons.geom_type)
    if not kinds <= {"Polygon", "MultiPolygon"}:
        raise InputError(f"polygons holds {sorted(kinds)} geometries; a study area must be polygons")
    if not np.isfinite(buffer):
        raise InputError(f"buffer={buffer!r} must be a finite distance in CRS units")
    geometry = polygons.geometry.buffer(buffer) if buffer else polygons.geometry
    inside = rasterio.features.rasterize(((g, 1) for g in geometry if not g.is_empty), out_shape=grid.shape,
                                         transform=grid.transform, fill=0, dtype="uint8")
    if not inside.any():
        raise InputError("the study area covers no pixel centre of the grid: check its CRS, buffer and the grid")
    return grid.wrap(inside.astype(np.float32)[None], bands=[name], name=name,
                     attrs={"kind": "mask", "area_fraction": float(inside.mean())})


def apply_mask(layer: xr.DataArray, mask: xr.DataArray) -> xr.DataArray:
    """``layer`` with every band NaN (nodata) where ``mask`` is 0 or NaN; both on one grid."""
    grid, mask_grid = Grid.from_dataarray(layer), Grid.from_dataarray(mask)
    if grid != mask_grid:
        raise GridMismatchError(f"the mask is on {mask_grid} but the layer on {grid}")
    keep = np.asarray(mask.values, dtype=np.float64)
    keep = keep[0] if keep.ndim == 3 else keep
    if keep.ndim != 2:
        raise InputError("mask must be one band, (y, x) or (1, y, x)")
    inside = np.isfinite(keep) & (keep != 0)
    out = layer.where(inside if layer.ndim == 2 else inside[None])
    out.attrs = dict(layer.attrs)
    out.attrs["masked_fraction"] = float(1 - inside.mean())
    return out.astype(np.float32)
