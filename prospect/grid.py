"""The raster grid every layer of a study shares.

A :class:`Grid` is a north-up raster geometry: bounds, shape, resolution, CRS
and the affine transform, with pixel-centre coordinates. Arrays on a grid are
``(band, y, x)`` with ``y`` running north to south, as in a GeoTIFF.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

import numpy as np
from affine import Affine
from pyproj import CRS

from prospect.errors import CRSError, InputError
from prospect.ranges import PAIR_OF_WHOLE, POSITIVE

if TYPE_CHECKING:
    import xarray as xr

__all__ = ["Grid", "as_bands", "as_crs", "crs_label", "require_projected", "check_coordinates"]


def as_crs(crs: Any, argument: str = "crs") -> CRS:
    """Return ``crs`` as a :class:`pyproj.CRS`, with a clear error when it is not one.

    Accepts anything pyproj does: ``"EPSG:32649"``, an EPSG integer, WKT, a
    ``pyproj.CRS`` or a rasterio CRS.
    """
    if crs is None:
        raise CRSError(f"{argument} is None: a coordinate reference system is needed, e.g. 'EPSG:32649'")
    try:
        crs = CRS.from_user_input(crs)
    except Exception as exc:  # pyproj raises its own CRSError; ours names the argument
        raise CRSError(f"{argument}={crs!r} is not a coordinate reference system pyproj understands "
                       "(use e.g. 'EPSG:32649' or a WKT string)") from exc
    return _with_code(crs)


def _with_code(crs: CRS) -> CRS:
    """The EPSG definition of ``crs`` when one is equivalent to it (an ESRI ``.prj``'s WKT for EPSG:3067 becomes
    EPSG:3067, so files written on it carry the code and reports can name it); ``crs`` itself otherwise."""
    if crs.srs.upper().startswith("EPSG:"):
        return crs
    code = crs.to_epsg()
    if code is not None:
        official = CRS.from_epsg(code)
        if official.equals(crs, ignore_axis_order=True):
            return official
    return crs


def crs_label(crs: Any) -> str:
    """``"EPSG:3067 (ETRS89 / TM35FIN(E,N))"`` where an EPSG code identifies ``crs``; its name otherwise."""
    crs = as_crs(crs)
    code = crs.to_epsg()
    return f"EPSG:{code} ({crs.name})" if code is not None else crs.name


def require_projected(crs: Any, argument: str = "crs", purpose: str = "distances in metres") -> CRS:
    """Return ``crs`` as a pyproj CRS, refusing geographic (degree) systems.

    Interpolation distances, search radii and resolutions are in CRS units, which
    only mean metres in a projected CRS.
    """
    crs = as_crs(crs, argument)
    if not crs.is_projected:
        raise CRSError(
            f"{argument}={crs.to_string()!r} is geographic (degrees), but {purpose} need a projected CRS: "
            "reproject first, e.g. to the UTM zone of the area (for southern China EPSG:32649, "
            "WGS 84 / UTM zone 49N); GeoDataFrame.to_crs(...) does it"
        )
    return crs


def _pair(value: Any, argument: str, kind: type) -> tuple:
    if np.ndim(value) == 0:
        value = (value, value)
    value = tuple(value)
    if len(value) != 2:
        raise InputError(f"{argument}={value!r} must be one number or a pair")
    return tuple(kind(v) for v in value)


@dataclass(frozen=True)
class Grid:
    """A north-up raster grid: bounds, shape and CRS.

    Build one with :meth:`Grid.from_bounds` or :meth:`Grid.from_dataarray`.

    Attributes
    ----------
    bounds : tuple of float
        ``(xmin, ymin, xmax, ymax)`` of the outer pixel edges, in CRS units.
    shape : tuple of int
        ``(rows, cols)``.
    crs : pyproj.CRS
        The coordinate reference system.
    """

    bounds: tuple[float, float, float, float]
    shape: tuple[int, int]
    crs: CRS

    @classmethod
    def from_bounds(
        cls,
        bounds: Sequence[float],
        shape: Annotated[tuple[int, int] | None, PAIR_OF_WHOLE] = None,
        resolution: Annotated[float | tuple[float, float] | None, POSITIVE] = None,
        crs: Any = None,
    ) -> Grid:
        """Make a grid covering ``bounds`` with either ``shape`` or ``resolution``.

        Parameters
        ----------
        bounds : sequence of 4 floats
            ``(xmin, ymin, xmax, ymax)`` in CRS units, e.g. ``samples.total_bounds``.
        shape : (rows, cols), optional
            Number of pixels; the resolution follows from the bounds.
        resolution : float or (xres, yres), optional
            Pixel size in CRS units. When it does not divide the extent, the grid
            grows to the east and south by less than one pixel so that it covers
            ``bounds`` (the north-west corner stays where it is).
        crs : CRS-like
            Anything :class:`pyproj.CRS` accepts. Required.

        Exactly one of ``shape`` and ``resolution`` must be given.

        Examples
        --------
        >>> grid = Grid.from_bounds((400000, 2400000, 439000, 2439000), shape=(1560, 1560), crs="EPSG:32649")
        >>> grid.resolution, float(grid.x[0]), float(grid.y[0])
        ((25.0, 25.0), 400012.5, 2438987.5)
        """
        crs = as_crs(crs)
        try:
            xmin, ymin, xmax, ymax = (float(b) for b in bounds)
        except (TypeError, ValueError) as exc:
            raise InputError(f"bounds={bounds!r} must be four numbers (xmin, ymin, xmax, ymax)") from exc
        if not all(math.isfinite(b) for b in (xmin, ymin, xmax, ymax)):
            raise InputError(f"bounds={bounds!r} must be finite numbers")
        if xmin >= xmax or ymin >= ymax:
            raise InputError(f"bounds={(xmin, ymin, xmax, ymax)!r} need xmin < xmax and ymin < ymax "
                             "(order: xmin, ymin, xmax, ymax)")
        if (shape is None) == (resolution is None):
            raise InputError("give exactly one of shape=(rows, cols) and resolution=size, "
                             f"got shape={shape!r}, resolution={resolution!r}")
        if shape is not None:
            rows, cols = _pair(shape, "shape", float)
            if rows != int(rows) or cols != int(cols) or rows < 1 or cols < 1:
                raise InputError(f"shape={shape!r} must be two positive whole numbers (rows, cols)")
            return cls((xmin, ymin, xmax, ymax), (int(rows), int(cols)), crs)
        xres, yres = _pair(resolution, "resolution", float)
        if not (xres > 0 and yres > 0 and math.isfinite(xres) and math.isfinite(yres)):
            raise InputError(f"resolution={resolution!r} must be positive pixel size(s) in CRS units")
        # A tolerance keeps 39000 / 25 from becoming 1561 pixels through rounding noise.
        cols = max(1, math.ceil((xmax - xmin) / xres - 1e-9))
        rows = max(1, math.ceil((ymax - ymin) / yres - 1e-9))
        return cls((xmin, ymax - rows * yres, xmin + cols * xres, ymax), (rows, cols), crs)

    @classmethod
    def from_dataarray(cls, da: xr.DataArray) -> Grid:
        """The grid of a DataArray carrying CRS and transform through rioxarray."""
        import rioxarray  # noqa: F401  (registers the .rio accessor)

        crs = da.rio.crs
        if crs is None:
            raise CRSError("the array has no CRS: write one with da.rio.write_crs(...) "
                           "or build it with Grid.empty / Grid.full")
        transform = da.rio.transform(recalc=False)
        if transform.b != 0 or transform.d != 0 or transform.e >= 0:
            raise InputError(f"the array's transform {tuple(transform)[:6]} is not north-up; "
                             "warp it to a north-up grid first")
        rows, cols = da.sizes["y"], da.sizes["x"]
        xmin, ymax = transform.c, transform.f
        return cls((xmin, ymax + rows * transform.e, xmin + cols * transform.a, ymax), (rows, cols),
                   as_crs(crs))

    @classmethod
    def like(cls, raster: str | os.PathLike | xr.DataArray) -> Grid:
        """The grid of a raster file (or DataArray): its CRS, transform and shape, exactly.

        A run file's ``[grid] like = "magnetics.tif"``: every other layer is warped onto this raster's cells.
        """
        if not isinstance(raster, (str, os.PathLike)):
            return cls.from_dataarray(raster)
        import rasterio

        from prospect.files import existing

        path = existing(raster, "like")
        try:
            with rasterio.open(path) as src:
                crs, transform, rows, cols = src.crs, src.transform, src.height, src.width
        except rasterio.errors.RasterioIOError as exc:
            raise InputError(f"like={str(path)!r} is not a raster GDAL can read ({exc})") from None
        if crs is None:
            raise CRSError(f"like={str(path)!r} has no CRS; assign one first (gdal_edit.py -a_srs EPSG:...)")
        if transform.b != 0 or transform.d != 0 or transform.e >= 0:
            raise InputError(f"like={str(path)!r} is not north-up (transform {tuple(transform)[:6]}); warp it first")
        xmin, ymax = transform.c, transform.f
        return cls((xmin, ymax + rows * transform.e, xmin + cols * transform.a, ymax), (rows, cols),
                   as_crs(crs.to_wkt()))

    def __post_init__(self) -> None:
        object.__setattr__(self, "bounds", tuple(float(b) for b in self.bounds))
        object.__setattr__(self, "shape", tuple(int(s) for s in self.shape))

    @property
    def resolution(self) -> tuple[float, float]:
        """Pixel size ``(xres, yres)`` in CRS units, both positive."""
        xmin, ymin, xmax, ymax = self.bounds
        return ((xmax - xmin) / self.shape[1], (ymax - ymin) / self.shape[0])

    @property
    def transform(self) -> Affine:
        """The north-up affine transform from (col, row) to (x, y) of the pixel's upper-left corner."""
        xres, yres = self.resolution
        return Affine(xres, 0.0, self.bounds[0], 0.0, -yres, self.bounds[3])

    @property
    def x(self) -> np.ndarray:
        """Pixel-centre x coordinates, west to east, shape ``(cols,)``."""
        return self.bounds[0] + (np.arange(self.shape[1]) + 0.5) * self.resolution[0]

    @property
    def y(self) -> np.ndarray:
        """Pixel-centre y coordinates, north to south (descending), shape ``(rows,)``."""
        return self.bounds[3] - (np.arange(self.shape[0]) + 0.5) * self.resolution[1]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Grid):
            return NotImplemented
        return (self.shape == other.shape and self.crs == other.crs
                and np.allclose(self.bounds, other.bounds, rtol=0, atol=1e-6 * max(self.resolution)))

    def __hash__(self) -> int:
        return hash((self.shape, self.crs.to_wkt(), tuple(round(b, 6) for b in self.bounds)))

    def __repr__(self) -> str:
        xres, yres = self.resolution
        return (f"Grid(shape={self.shape}, resolution=({xres:g}, {yres:g}), "
                f"bounds={tuple(round(b, 3) for b in self.bounds)}, crs={self.crs.to_string()!r})")

    def rowcol(self, x: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
        """Row and column indices of the pixels holding points ``(x, y)`` (may be outside the grid)."""
        xres, yres = self.resolution
        col = np.floor((np.asarray(x, dtype=float) - self.bounds[0]) / xres).astype(np.int64)
        row = np.floor((self.bounds[3] - np.asarray(y, dtype=float)) / yres).astype(np.int64)
        return row, col

    def full(self, fill_value: float = np.nan, bands: Sequence[str] | None = None,
             dtype: Any = np.float32, name: str | None = None) -> xr.DataArray:
        """A DataArray on this grid filled with ``fill_value``.

        With ``bands`` the array is ``(band, y, x)`` with those band names, without
        it ``(y, x)``. CRS and transform are written through rioxarray.
        """
        shape = self.shape if bands is None else (len(bands), *self.shape)
        return self.wrap(np.full(shape, fill_value, dtype=dtype), bands=bands, name=name)

    def empty(self, bands: Sequence[str] | None = None, name: str | None = None) -> xr.DataArray:
        """A float32 DataArray on this grid filled with NaN (nodata)."""
        return self.full(np.nan, bands=bands, name=name)

    def wrap(self, values: np.ndarray, bands: Sequence[str] | None = None, name: str | None = None,
             attrs: dict | None = None) -> xr.DataArray:
        """Put an array of shape ``(rows, cols)`` or ``(bands, rows, cols)`` on this grid (a dask array stays lazy)."""
        import rioxarray  # noqa: F401
        import xarray as xr

        if getattr(values, "dask", None) is None:
            values = np.asarray(values)
        if values.shape[-2:] != self.shape or values.ndim not in (2, 3):
            raise GridShapeError(values.shape, self.shape)
        coords: dict[str, Any] = {"y": self.y, "x": self.x}
        dims: tuple[str, ...] = ("y", "x")
        if values.ndim == 3:
            if bands is None:
                bands = [f"band_{i + 1}" for i in range(values.shape[0])]
            bands = [str(b) for b in bands]
            if len(bands) != values.shape[0]:
                raise InputError(f"bands has {len(bands)} names for an array of {values.shape[0]} bands")
            coords["band"] = bands
            dims = ("band", "y", "x")
        da = xr.DataArray(values, dims=dims, coords=coords, name=name, attrs=dict(attrs or {}))
        da = da.rio.write_crs(self.crs)
        return da.rio.write_transform(self.transform)


class GridShapeError(InputError):
    """An array's shape does not fit the grid it is put on."""

    def __init__(self, got: tuple, expected: tuple) -> None:
        super().__init__(f"array of shape {got} does not fit a grid of shape {expected}: "
                         "expected (rows, cols) or (bands, rows, cols)")


def _coordinate_hint(x: np.ndarray, y: np.ndarray) -> str:
    if np.all(np.abs(x) <= 180) and np.all(np.abs(y) <= 90):
        return ("they look like degrees: pass crs='EPSG:4326' (or the geographic CRS they are in) and reproject, "
                "or give the projected coordinates")
    return "they look like kilometres: pass coord_scale=1000"


def check_coordinates(x: np.ndarray, y: np.ndarray, crs: Any, what: str) -> None:
    """Refuse coordinates that cannot be in ``crs``: degrees or kilometres declared as metres, a wrong zone.

    Checks that a geographic CRS holds degrees, that a survey in a projected CRS
    spans at least 100 units (100 m: a "39 m × 39 m survey" is a km or degree
    survey read as metres), and that the survey's centre lies within (or within
    5° of) the CRS's area of use.
    """
    from pyproj import Transformer

    crs = as_crs(crs)
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    finite = np.isfinite(x) & np.isfinite(y)
    x, y = x[finite], y[finite]
    if not len(x):
        return
    span = (float(np.ptp(x)), float(np.ptp(y)))
    extent = f"x {x.min():.6g} to {x.max():.6g}, y {y.min():.6g} to {y.max():.6g}"
    if crs.is_geographic:
        if np.any(np.abs(x) > 360) or np.any(np.abs(y) > 90):
            raise CRSError(f"{what} coordinates ({extent}) are not degrees, but crs={crs.to_string()!r} is "
                           "geographic: pass the projected CRS they are in (e.g. 'EPSG:32649')")
        return
    unit = crs.axis_info[0].unit_name if crs.axis_info else "unit"
    if len(np.unique(np.column_stack([x, y]), axis=0)) >= 3 and max(span) < 100:
        raise CRSError(f"{what} spans only {span[0]:.3g} x {span[1]:.3g} {unit} ({extent}) in "
                       f"{crs.to_string()}, too small for a survey: {_coordinate_hint(x, y)}")
    area = crs.area_of_use
    if area is None:
        return
    to_degrees = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    with np.errstate(all="ignore"):
        lon, lat = to_degrees.transform(float(np.median(x)), float(np.median(y)))
    margin = 5.0
    inside = (np.isfinite(lon) and np.isfinite(lat) and area.south - margin <= lat <= area.north + margin
              and (area.west - margin <= lon <= area.east + margin
                   or area.west > area.east))   # an area crossing the antimeridian: lon is not checked
    if not inside:
        where = f"lon {lon:.2f}, lat {lat:.2f}" if np.isfinite(lon) and np.isfinite(lat) else "nowhere on Earth"
        raise CRSError(f"{what} ({extent}) falls at {where}, outside the area where crs={crs.to_string()!r} "
                       f"({crs.name}) is used (lon {area.west:g} to {area.east:g}, lat {area.south:g} to "
                       f"{area.north:g}): check the CRS, or whether the coordinates carry a zone prefix or other units")


def as_bands(da: xr.DataArray) -> xr.DataArray:
    """``da`` as ``(band, y, x)``: a single ``(y, x)`` raster becomes one band named after it."""
    if da.ndim == 2:
        da = da.expand_dims(band=[da.name or "band_1"])
    if da.ndim != 3 or set(da.dims) != {"band", "y", "x"}:
        raise InputError(f"expected a DataArray with dims (band, y, x) or (y, x), got {da.dims}")
    return da.transpose("band", "y", "x")
