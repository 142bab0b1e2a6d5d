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

import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, Any

import numpy as np

from prospect import compute
from prospect._rasters import class_table, from_raster, high_pass, slope, smooth
from prospect.compute import by_strips
from prospect.errors import ColumnError, CRSError, GridMismatchError, InputError
from prospect.files import parse_legend
from prospect.grid import Grid
from prospect.io import band_units
from prospect.ranges import FINITE, whole

if TYPE_CHECKING:
    import geopandas as gpd
    import xarray as xr

__all__ = ["rasterize_categorical", "distance_to", "deposit_layer", "near_deposits", "deposit_pixels", "stack",
           "legend", "from_raster", "class_table", "slope", "smooth", "high_pass", "study_area", "apply_mask",
           "check_overlap", "check_polygons", "categorical_bands"]


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


def check_polygons(gdf: gpd.GeoDataFrame, grid: Grid, argument: str, use: str, field: str | None = None) -> None:
    """What polygons would do to a layer, said before it is made (``gdf`` in the grid's CRS).

    ``use="distance"``: polygons covering the whole grid are refused (the distance would be 0 in every cell).
    ``use="categorical"``: invalid polygons (self-intersecting, such as bow-ties) and polygons of different
    ``field`` values that overlap are named in a warning: the first are repaired (``make_valid``), and where
    the second overlap the polygon drawn last (later in the file) gives the cell its class.
    """
    import shapely

    polygonal = gdf.geom_type.isin(["Polygon", "MultiPolygon"]).to_numpy()
    if not polygonal.any():
        return
    polygons = gdf[polygonal]
    if use == "distance":
        cover = shapely.union_all(shapely.make_valid(polygons.geometry.to_numpy()))
        if cover.covers(shapely.box(*grid.bounds)):
            raise InputError(f"every cell of the grid lies inside a polygon of {argument}, so the distance to it is 0 "
                             "everywhere: a band with nothing to learn. Give lines (faults, contacts) or points, or "
                             "polygons that do not cover the area (their outlines as lines, for a distance to a "
                             "contact)")
        return
    invalid = ~polygons.geometry.is_valid.to_numpy()
    if invalid.any():
        reasons = sorted({shapely.is_valid_reason(g).split("[")[0] for g in polygons.geometry[invalid]})
        warnings.warn(f"{argument}: {int(invalid.sum())} of {len(polygons)} polygons are invalid ({', '.join(reasons)}"
                      "); they are repaired with make_valid before rasterising - check them in QGIS (Vector > "
                      "Geometry Tools > Check Validity)", stacklevel=3)
    if field is None or len(polygons) < 2:
        return
    import geopandas as gpd

    fixed = gpd.GeoDataFrame({"value": polygons[field].to_numpy()},
                             geometry=shapely.make_valid(polygons.geometry.to_numpy()), crs=polygons.crs)
    pairs = gpd.sjoin(fixed, fixed, predicate="intersects")
    pairs = pairs[(pairs.index < pairs["index_right"]) & (pairs["value_left"] != pairs["value_right"])]
    if len(pairs):
        area = shapely.area(shapely.intersection(fixed.geometry.to_numpy()[pairs.index.to_numpy()],
                                                 fixed.geometry.to_numpy()[pairs["index_right"].to_numpy()]))
        overlapping = area > 1e-6 * min(grid.resolution) ** 2
        if overlapping.any():
            overlap = float(area[overlapping].sum())
            share = 100 * overlap / shapely.box(*grid.bounds).area
            warnings.warn(f"{argument}: {int(overlapping.sum())} pair(s) of polygons of different {field} overlap "
                          f"({overlap / 1e6:.3g} km² in all, {share:.2g} % of the grid); where they do, the polygon "
                          "later in the file gives the cell its class", stacklevel=3)


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
    chunks: int | None = None,
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
    chunks : int, optional
        A lazy layer (:mod:`prospect.compute`): strips of ``chunks`` rows, each rasterised when it is computed
        (the same cells).
    """
    import rasterio.features

    gdf = _on_grid(gdf, grid, "gdf")
    if field not in gdf.columns:
        columns = [c for c in gdf.columns if c != gdf.geometry.name]
        raise ColumnError(f"field={field!r} is not a column; columns are {columns}")
    check_polygons(gdf, grid, "gdf", "categorical", field)
    gdf = gdf.set_geometry(gdf.geometry.make_valid())
    present = sorted(gdf[field].dropna().unique().tolist(), key=str)
    categories = present if categories is None else list(categories)
    unknown = [c for c in present if c not in categories]
    if unknown:
        raise InputError(f"categories {categories} do not include {unknown} found in {field!r}")
    code_of = {c: i + 1 for i, c in enumerate(categories)}
    shapes = [(geom, code_of[value]) for geom, value in zip(gdf.geometry, gdf[field], strict=True)
              if value in code_of]
    text = ";".join(f"{code}={name}" for name, code in code_of.items())

    def rows(r0: int, r1: int) -> np.ndarray:
        codes = rasterio.features.rasterize(shapes, out_shape=(r1 - r0, grid.shape[1]), fill=0, dtype="int32",
                                            transform=_strip_transform(grid, r0))
        if not one_hot:
            return np.where(codes > 0, codes, np.nan).astype(np.float32)[None]
        covered = codes > 0
        return np.stack([np.where(covered, (codes == code_of[c]).astype(np.float32), np.nan) for c in categories])

    names = [f"{field}={c}" for c in categories] if one_hot else [field]
    values = rows(0, grid.shape[0]) if chunks is None else by_strips(rows, len(names), grid.shape, chunks)
    return grid.wrap(values, bands=names, name=field,
                     attrs={"legend": text, "kind": "one-hot" if one_hot else "categorical"})


def _strip_transform(grid: Grid, r0: int) -> Any:
    """The transform of the grid's rows from ``r0`` on."""
    from rasterio.windows import Window, transform

    return transform(Window(0, r0, grid.shape[1], grid.shape[0] - r0), grid.transform)


def legend(layer: xr.DataArray) -> dict[int, str]:
    """The code → category mapping of a layer made by :func:`rasterize_categorical`."""
    text = layer.attrs.get("legend")
    if not text:
        raise InputError("the layer has no 'legend' attribute; it was not made by rasterize_categorical")
    return parse_legend(text)


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


def distance_to(gdf: gpd.GeoDataFrame, grid: Grid, name: str = "distance",
                chunk: Annotated[int, whole(1)] = 2**19, chunks: int | None = None) -> xr.DataArray:
    """Exact Euclidean distance from each pixel centre to the nearest geometry, in CRS units.

    Lines (faults), points and polygons (0 inside, distance to the boundary
    outside) are measured exactly, not as a count of pixels. Segments are cut
    into pieces of at most 8 pixels; a KD-tree over their midpoints proposes the
    16 nearest pieces of each pixel, whose exact point-to-segment distances are
    taken, and a pixel for which those 16 cannot prove the minimum is checked
    against every piece. Returns ``(band, y, x)`` float32
    with one band ``name``; with ``chunks``, a lazy one (:mod:`prospect.compute`) whose strips of ``chunks`` rows
    are measured when they are computed (the same values).
    """
    import rasterio.features
    from scipy.spatial import cKDTree

    from prospect._kernels import nearest_segment
    from prospect.grid import require_projected

    require_projected(grid.crs, "grid.crs", "distances")
    xmin, ymin, xmax, ymax = grid.bounds
    gdf = _on_grid(gdf, grid, "gdf", reach=max(xmax - xmin, ymax - ymin))
    check_polygons(gdf, grid, "gdf", "distance")
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
    polygons = gdf[gdf.geom_type.isin(["Polygon", "MultiPolygon"])]
    step = max(1, chunk // cols)

    def measured(first: int, end: int) -> np.ndarray:
        result = np.empty((end - first, cols), np.float64)
        for r0 in range(first, end, step):
            r1 = min(end, r0 + step)
            gx, gy = np.meshgrid(grid.x - centre[0], grid.y[r0:r1] - centre[1])
            query = np.column_stack([gx.ravel(), gy.ravel()])
            best = point_tree.query(query, k=1, workers=-1)[0] if len(points) else np.full(len(query), np.inf)
            if len(segments):
                mid_distance, index = tree.query(query, k=k, workers=-1)
                mid_distance, index = mid_distance.reshape(len(query), k), index.reshape(len(query), k)
                kth = mid_distance[:, -1] if k < len(pieces) else np.full(len(query), np.inf)
                best = np.ascontiguousarray(best, dtype=np.float64)
                nearest_segment(query, start, direction, length2, index.astype(np.int64), kth, reach, best)
            result[r0 - first:r1 - first] = best.reshape(r1 - r0, cols)
        if len(polygons):
            inside = rasterio.features.rasterize(((g, 1) for g in polygons.geometry), out_shape=(end - first, cols),
                                                 transform=_strip_transform(grid, first), fill=0, dtype="uint8")
            result[inside == 1] = 0.0
        return result.astype(np.float32)[None]

    values = measured(0, rows) if chunks is None else by_strips(measured, 1, grid.shape, chunks)
    return grid.wrap(values, bands=[name], name=name,
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
    mask = near_deposits(deposits, grid, radius).astype(np.float32)
    return grid.wrap(mask[None], bands=[name], name=name, attrs={"kind": "mask", "radius": float(radius)})


def near_deposits(deposits: gpd.GeoDataFrame, grid: Grid, radius: float = 0.0) -> np.ndarray:
    """:func:`deposit_layer`'s cells as a ``(y, x)`` bool mask (a byte a cell)."""
    deposits = _on_grid(deposits, grid, "deposits")
    if not (np.isfinite(radius) and radius >= 0):
        raise InputError(f"radius={radius!r} must be a distance ≥ 0 in CRS units")
    mask = np.zeros(grid.shape, bool)
    if radius == 0:
        row, col, inside = deposit_pixels(deposits, grid)
        mask[row[inside], col[inside]] = True
        return mask
    # each deposit marks the cells of its own window (memory of the grid's mask, not of its coordinates)
    geometry = deposits.geometry if (deposits.geom_type == "Point").all() else deposits.geometry.representative_point()
    x, north = grid.x, -grid.y          # both ascending (a grid runs north to south)
    for px, py in zip(geometry.x.to_numpy(), geometry.y.to_numpy(), strict=True):
        c0, c1 = np.searchsorted(x, px - radius, side="left"), np.searchsorted(x, px + radius, side="right")
        r0 = np.searchsorted(north, -py - radius, side="left")
        r1 = np.searchsorted(north, radius - py, side="right")
        if r0 >= r1 or c0 >= c1:
            continue
        dx, dy = x[c0:c1][None, :] - px, grid.y[r0:r1][:, None] - py
        mask[r0:r1, c0:c1] |= np.sqrt(dx * dx + dy * dy) <= radius
    return mask


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
    from prospect.compute import is_lazy

    if any(is_lazy(b) for b in bands):   # a lazy layer keeps the stack lazy: blocks of every band together
        import dask.array

        # the smallest blocks among the lazy layers (an IDW strip of whole rows is cut to square blocks)
        chunks = min((b.data.chunks for b in bands if is_lazy(b)), key=lambda c: c[1][0] * c[2][0])
        values = dask.array.concatenate([dask.array.asarray(b.data).rechunk({1: chunks[1], 2: chunks[2]})
                                         for b in bands]).rechunk({0: -1})
    else:
        values = np.concatenate([b.to_numpy() for b in bands])
    attrs = {"bands": ", ".join(names)}
    units = []
    for array in bands:  # keep each categorical layer's legend, e.g. attrs["unit_legend"], and the band units
        if "legend" in array.attrs:
            attrs[f"{array['band'].values[0]}_legend"] = array.attrs["legend"]
            if array.attrs.get("kind") == "ordinal":    # ordered classes: one number per cell for the models
                attrs[f"{array['band'].values[0]}_ordinal"] = "true"
        units += [f"{b}={u}" for b, u in zip(array["band"].to_numpy(), band_units(array), strict=True) if u]
    if units:
        attrs["units"] = ";".join(units)
    return reference.wrap(values, bands=names, name="stack", attrs=attrs)


def study_area(polygons: gpd.GeoDataFrame, grid: Grid, buffer: Annotated[float, FINITE] = 0.0,
               name: str = "study_area", chunks: int | None = None) -> xr.DataArray:
    """The study area as a 0/1 band: 1 where a pixel centre lies inside a polygon (GDAL's rule).

    ``buffer`` (CRS units) grows (or, negative, shrinks) the polygons first. Use it
    with :func:`apply_mask`; cells outside are nodata in every later stage. With ``chunks``, a lazy band
    (:mod:`prospect.compute`) in strips of ``chunks`` rows, rasterised when computed (counted once here).
    """
    import rasterio.features

    polygons = _on_grid(polygons, grid, "polygons")
    kinds = set(polygons.geom_type)
    if not kinds <= {"Polygon", "MultiPolygon"}:
        raise InputError(f"polygons holds {sorted(kinds)} geometries; a study area must be polygons")
    if not np.isfinite(buffer):
        raise InputError(f"buffer={buffer!r} must be a finite distance in CRS units")
    geometry = polygons.geometry.buffer(buffer) if buffer else polygons.geometry
    shapes = [(g, 1) for g in geometry if not g.is_empty]

    def rows(r0: int, r1: int) -> np.ndarray:
        return rasterio.features.rasterize(shapes, out_shape=(r1 - r0, grid.shape[1]), fill=0, dtype="uint8",
                                           transform=_strip_transform(grid, r0)).astype(np.float32)[None]

    inside = rows(0, grid.shape[0]) if chunks is None else by_strips(rows, 1, grid.shape, chunks)
    fraction = float(inside.mean())
    if fraction == 0:
        raise InputError("the study area covers no pixel centre of the grid: check its CRS, buffer and the grid")
    return grid.wrap(inside, bands=[name], name=name, attrs={"kind": "mask", "area_fraction": fraction})


def apply_mask(layer: xr.DataArray, mask: xr.DataArray) -> xr.DataArray:
    """``layer`` with every band NaN (nodata) where ``mask`` is 0 or NaN; both on one grid."""
    grid, mask_grid = Grid.from_dataarray(layer), Grid.from_dataarray(mask)
    if grid != mask_grid:
        raise GridMismatchError(f"the mask is on {mask_grid} but the layer on {grid}")
    keep = mask.data      # a lazy mask stays lazy (numpy's functions dispatch to dask's)
    keep = keep[0] if keep.ndim == 3 else keep
    if keep.ndim != 2:
        raise InputError("mask must be one band, (y, x) or (1, y, x)")
    inside = np.isfinite(keep) & (keep != 0)
    if compute.is_lazy(layer) and compute.is_lazy(mask):
        inside = inside.rechunk(layer.data.chunks[-2:])
    out = layer.where(inside if layer.ndim == 2 else inside[None])   # lazy stays lazy
    out.attrs = dict(layer.attrs)
    out.attrs["masked_fraction"] = float(1 - inside.mean())
    return out.astype(np.float32)


def categorical_bands(stack: xr.DataArray) -> list[int]:
    """Positions of the stack's categorical bands (those with a legend, from :func:`prospect.layers.stack`).

    Ordered classes (``<band>_ordinal``: reclassified bins of a continuous quantity) are not among them: the
    models keep their order as numbers.
    """
    bands = [str(b) for b in stack["band"].to_numpy()]
    return [i for i, band in enumerate(bands) if f"{band}_legend" in stack.attrs and f"{band}_ordinal" not in
            stack.attrs]
