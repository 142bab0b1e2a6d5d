"""Reading surveys and vector layers; reading and writing GeoTIFFs.

Files enter and leave the package here and nowhere else. Writes go to a
temporary file beside the target and are renamed into place, so a failed write
never leaves half a file, and an existing file is only replaced when asked.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from prospect.errors import ColumnError, CRSError, InputError, MissingFileError, OutputExistsError
from prospect.grid import Grid, as_crs

if TYPE_CHECKING:
    import geopandas as gpd
    import xarray as xr

__all__ = ["read_samples", "read_vector", "element_columns", "write_geotiff", "read_geotiff", "write_qml",
           "atomic_output", "check_coordinates"]

log = logging.getLogger(__name__)

_VECTOR_SUFFIXES = {".gpkg", ".shp", ".geojson", ".json", ".fgb"}
_TABLE_SUFFIXES = {".csv", ".txt", ".tsv"}
# "<0.5", "< 0.5", "<0,5" are below-detection values with their detection limit.
_BDL = re.compile(r"^\s*<\s*([0-9]*[.,]?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*$")
_MISSING = {"", "na", "nan", "n/a", "null", "none"}


def _existing(path: str | os.PathLike, argument: str = "path") -> Path:
    path = Path(path)
    if not path.exists():
        raise MissingFileError(f"{argument}={str(path)!r} does not exist")
    return path


_UMASK = os.umask(0o022)   # read once (setting it back at once): a new file's mode is 0o666 less the umask
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it onto ``path``.

    Refuses an existing ``path`` unless ``overwrite=True``. If the body raises,
    the temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise OutputExistsError(f"{str(path)!r} exists; pass overwrite=True to replace it")
    if not path.parent.exists():
        raise MissingFileError(f"the folder {str(path.parent)!r} for {path.name!r} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".part{path.suffix}", dir=path.parent)
    os.close(fd)
    os.unlink(tmp)  # writers such as GDAL want to create the file themselves
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if tmp_path.is_file():   # some writers (safetensors) create 0600 files: every output gets the same mode
            os.chmod(tmp_path, 0o666 & ~_UMASK)
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def _parse_element(values: pd.Series, bdl_factor: float, decimal: str | None = None,
                   missing: frozenset[str] = frozenset()) -> tuple[np.ndarray, int, list]:
    """Parse one element column: numbers, below-detection text and blanks.

    Returns the float values, the number of below-detection values and the
    (index, value) pairs that could not be read. ``decimal`` is the decimal mark
    ("." or ","; None accepts either); ``missing`` holds extra texts that mean blank.
    """
    if pd.api.types.is_numeric_dtype(values):
        return values.to_numpy(dtype=float), 0, []
    text = values.astype("string").str.strip()
    lowered = text.str.lower()
    missing_mask = (text.isna() | lowered.isin(_MISSING | missing)).to_numpy(dtype=bool)
    number_text = text if decimal == "." else text.str.replace(",", ".", regex=False)
    numbers = pd.to_numeric(number_text, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    limit_text = text.str.extract(_BDL, expand=False)
    if decimal != ".":
        limit_text = limit_text.str.replace(",", ".", regex=False)
    limits = pd.to_numeric(limit_text, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    if decimal == ".":
        limits[text.str.contains(",", regex=False).fillna(False).to_numpy(dtype=bool)] = np.nan
    is_bdl = np.isfinite(limits) & np.isnan(numbers)
    numbers = np.where(is_bdl, limits * bdl_factor, numbers)
    numbers[missing_mask] = np.nan
    bad = np.isnan(numbers) & ~missing_mask
    return numbers, int(is_bdl.sum()), list(values[bad].items())


def _read_table(path: Path, sep: str | None, encoding: str) -> pd.DataFrame:
    """A delimited text file as a table of strings, with errors that say which option to change."""
    separator = sep if sep is not None else {".csv": ",", ".tsv": "\t"}.get(path.suffix.lower())
    try:
        # Everything is read as text first so that "<0.5" and ids like "007" survive untouched.
        table = pd.read_csv(path, sep=separator, engine="c" if separator and len(separator) == 1 else "python",
                            dtype=str, keep_default_na=False, encoding=encoding)
    except UnicodeDecodeError as exc:
        raise InputError(f"{path.name} is not {encoding!r} text (byte {exc.object[exc.start:exc.start + 1]!r} at "
                         f"position {exc.start}); a Windows or older lab export is often encoding='cp1252' or "
                         "'latin-1' (run-file key [samples] encoding)") from exc
    except pd.errors.EmptyDataError as exc:
        raise InputError(f"{path.name} is empty: no header, no rows") from exc
    except pd.errors.ParserError as exc:
        raise InputError(f"{path.name} could not be split into columns with sep={separator!r} ({exc}); pass "
                         "sep=';' or sep='\\t' to name the separator") from exc
    if table.shape[1] == 1:
        header = str(table.columns[0])
        found = [s for s in (";", "\t", "|", ",") if s in header and s != separator]
        hint = f"; its header contains {found[0]!r}: pass sep={found[0]!r}" if found else "; pass sep=... to name it"
        raise InputError(f"{path.name} parsed to a single column {header[:60]!r} with sep={separator!r}{hint} "
                         "(and decimal=',' for decimal commas)")
    if len(table) == 0:
        raise InputError(f"{path.name} has a header but no rows")
    return table


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


def read_samples(
    path: str | os.PathLike,
    x: str = "X",
    y: str = "Y",
    crs: Any = None,
    coord_scale: float = 1.0,
    elements: Sequence[str] | None = None,
    bdl_factor: float = 0.5,
    sep: str | None = None,
    decimal: str | None = None,
    encoding: str = "utf-8-sig",
    na_values: Sequence[str] | None = None,
) -> gpd.GeoDataFrame:
    """Read a geochemical survey (CSV, GeoPackage or shapefile) as points.

    Parameters
    ----------
    path : path
        A CSV (with coordinate columns ``x`` and ``y``) or a point layer readable
        by GeoPandas (``.gpkg``, ``.shp``, ...), whose geometry gives the coordinates.
    x, y : str
        Coordinate column names of a CSV. Default ``"X"`` and ``"Y"``.
    crs : CRS-like, optional
        The CRS of the coordinates. A CSV has none of its own, so pass it; a
        vector layer's own CRS is used when this is None, otherwise the layer is
        reprojected to it. Coordinates that cannot be in it (km or degrees declared
        as metres, a survey outside the CRS's area of use) are refused
        (:func:`check_coordinates`).
    coord_scale : float
        Factor applied to CSV coordinates before use, e.g. ``1000`` for
        coordinates in kilometres such as the MFAF paper's Table 1
        (X = 421.63, Y = 2416.85). Default 1.
    elements : sequence of str, optional
        Element columns to read. Default: every column (other than coordinates
        and geometry) whose non-blank values are mostly numbers or
        below-detection text; other columns (sample ids, notes) are kept as they
        are, and one that holds some numbers is named in a warning. A named
        element with no values is an error.
    bdl_factor : float
        Below-detection values written as text, like ``"<0.5"``, become
        ``bdl_factor`` times the detection limit. Default 0.5 (half the limit,
        the usual substitution); their count is given in a warning and in
        ``samples.attrs["below_detection"]``. (Negative codes and zeros are left
        as they are: :func:`prospect.geochem.transform` substitutes them.)
    sep : str, optional
        Column separator of a text file: ``","``, ``";"`` (lab exports in much of
        Europe and China), ``"\t"``. Default: ``","`` for ``.csv``, tab for ``.tsv``,
        sniffed for ``.txt``.
    decimal : {".", ","}, optional
        Decimal mark. Default None accepts either (``"0,5"`` and ``"0.5"`` are both
        0.5); ``"."`` refuses commas, so ``"1,234"`` is an error, not 1.234.
    encoding : str
        Text encoding. Default ``"utf-8-sig"`` (UTF-8, with or without a byte-order
        mark); older Windows exports are ``"cp1252"`` or ``"latin-1"``.
    na_values : sequence of str, optional
        Extra texts that mean "no value" (e.g. ``["n.d.", "-", "IS"]``), besides
        blanks, ``NA``, ``NaN``, ``N/A``, ``null`` and ``none``.

    Returns
    -------
    geopandas.GeoDataFrame
        One point per sample with float64 element columns (NaN where blank).
        ``attrs["elements"]`` lists the element columns in file order.
    """
    import geopandas as gpd

    path = _existing(path)
    if not (np.isfinite(coord_scale) and coord_scale > 0):
        raise InputError(f"coord_scale={coord_scale!r} must be a positive number (1000 turns km into m)")
    if not (0 <= bdl_factor <= 1):
        raise InputError(f"bdl_factor={bdl_factor!r} must lie in [0, 1] (0.5 = half the detection limit)")
    if decimal not in (None, ".", ","):
        raise InputError(f"decimal={decimal!r}; valid: '.', ',' or None (either)")
    if sep is not None and (not isinstance(sep, str) or not sep or sep == decimal):
        raise InputError(f"sep={sep!r}; valid: a separator such as ',', ';' or '\\t', other than the decimal mark")
    try:
        "".encode(encoding)
    except (LookupError, TypeError) as exc:
        raise InputError(f"encoding={encoding!r} is not a text encoding Python knows (e.g. 'utf-8', 'cp1252', "
                         "'latin-1')") from exc
    if na_values is not None and (isinstance(na_values, str) or not all(isinstance(v, str) for v in na_values)):
        raise InputError(f"na_values={na_values!r}; valid: a list of texts, e.g. ['n.d.', '-']")
    missing = frozenset(v.strip().lower() for v in (na_values or ()))
    target_crs = None if crs is None else as_crs(crs)
    suffix = path.suffix.lower()
    if suffix in _TABLE_SUFFIXES:
        table = _read_table(path, sep, encoding)
        for name, argument in ((x, "x"), (y, "y")):
            if name not in table.columns:
                raise ColumnError(f"{argument}={name!r} is not a column of {path.name}; "
                                  f"columns are {list(table.columns)}")
        coords = {}
        for name in (x, y):
            values, _, bad = _parse_element(table[name], bdl_factor, decimal, missing)
            if bad or np.isnan(values).any():
                rows = [i for i, _ in bad] or list(np.flatnonzero(np.isnan(values))[:5])
                raise ColumnError(f"coordinate column {name!r} has missing or non-numeric values at rows {rows[:5]}")
            coords[name] = values * coord_scale
        if target_crs is not None and target_crs.is_geographic and coord_scale != 1.0:
            raise CRSError(f"coord_scale={coord_scale!r} rescales coordinates, which only makes sense in a "
                           f"projected CRS, but crs={target_crs.to_string()!r} is geographic")
        if target_crs is not None:
            check_coordinates(coords[x], coords[y], target_crs, f"the survey {path.name}")
        attributes = table.drop(columns=[x, y])
        geometry = gpd.points_from_xy(coords[x], coords[y])
        frame = gpd.GeoDataFrame(attributes, geometry=geometry, crs=target_crs)
        frame[x], frame[y] = coords[x], coords[y]
    elif suffix in _VECTOR_SUFFIXES:
        frame = read_vector(path, crs=crs)
        kinds = set(frame.geom_type.dropna().unique())
        if not kinds <= {"Point"}:
            raise InputError(f"{path.name} holds {sorted(kinds)} geometries; samples must be points")
        if len(frame) == 0:
            raise InputError(f"{path.name} holds no samples")
        check_coordinates(frame.geometry.x.to_numpy(), frame.geometry.y.to_numpy(), frame.crs,
                          f"the survey {path.name}")
    else:
        raise InputError(f"path={str(path)!r} has suffix {suffix!r}; readable surveys are "
                         f"{sorted(_TABLE_SUFFIXES | _VECTOR_SUFFIXES)}")

    reserved = {x, y, frame.geometry.name}
    if elements is None:
        candidates, strict = [c for c in frame.columns if c not in reserved], False
    else:
        elements = [elements] if isinstance(elements, str) else list(elements)
        missing_columns = [e for e in elements if e not in frame.columns]
        if missing_columns:
            available = [c for c in frame.columns if c not in reserved]
            raise ColumnError(f"elements {missing_columns} are not columns of {path.name}; available: {available}")
        candidates, strict = elements, True

    chosen, bdl_counts, texts = [], {}, {}
    for column in candidates:
        values, n_bdl, bad = _parse_element(frame[column], bdl_factor, decimal, missing)
        n_numbers = int(np.isfinite(values).sum())
        n_values = n_numbers + len(bad)
        if bad and (strict or len(bad) < 0.5 * n_values):
            shown = ", ".join(f"row {i}: {v!r}" for i, v in bad[:5])
            raise ColumnError(f"element column {column!r} has {len(bad)} values that are neither numbers nor "
                              f"below-detection text like '<0.5' ({shown}); fix them, leave them blank or name "
                              "them in na_values=[...]")
        if strict and n_numbers == 0:
            raise ColumnError(f"element column {column!r} of {path.name} has no values (every cell is blank)")
        if bad or n_values == 0:
            if n_numbers:  # partly numbers: perhaps an element whose "n.d." or "-" codes we do not know
                texts[column] = (n_numbers, len(bad), sorted({str(v) for _, v in bad})[:3])
            continue  # mostly text: an id or a note, not an element
        frame[column] = values
        chosen.append(column)
        if n_bdl:
            bdl_counts[column] = n_bdl
    if texts:
        described = "; ".join(f"{c!r}: {t} text values such as {examples} beside {n} numbers"
                              for c, (n, t, examples) in texts.items())
        warnings.warn(f"columns read as text, not as elements, because most of their values are not numbers: "
                      f"{described}. If one is an element, name its codes in na_values=[...] (read as blank) or "
                      "fix the file", stacklevel=2)
    if bdl_counts:
        total = sum(bdl_counts.values())
        warnings.warn(f"{total} below-detection values replaced by {bdl_factor:g} x their detection limit: "
                      f"{bdl_counts}", stacklevel=2)
    frame.attrs.update(elements=chosen, below_detection=bdl_counts, bdl_factor=bdl_factor, source=str(path),
                       text_columns=sorted(texts))
    log.info("read %d samples with %d elements from %s", len(frame), len(chosen), path)
    return frame


def element_columns(samples: pd.DataFrame) -> list[str]:
    """The element columns of a survey table.

    ``samples.attrs["elements"]`` when :func:`read_samples` set it, otherwise every
    numeric, non-boolean column that is neither the geometry nor a copy of the
    point coordinates.
    """
    if samples.attrs.get("elements"):
        return [e for e in samples.attrs["elements"] if e in samples.columns]
    geometry_name = getattr(samples, "geometry", None)
    geometry_name = geometry_name.name if geometry_name is not None else None
    coordinates = set()
    if geometry_name is not None and (samples.geometry.geom_type == "Point").all():
        gx, gy = samples.geometry.x.to_numpy(), samples.geometry.y.to_numpy()
        for column in samples.columns:
            if column != geometry_name and pd.api.types.is_numeric_dtype(samples[column]):
                values = samples[column].to_numpy(dtype=float)
                if np.allclose(values, gx, equal_nan=True) or np.allclose(values, gy, equal_nan=True):
                    coordinates.add(column)
    return [c for c in samples.columns
            if c != geometry_name and c not in coordinates and pd.api.types.is_numeric_dtype(samples[c])
            and not pd.api.types.is_bool_dtype(samples[c])]


def read_vector(path: str | os.PathLike, crs: Any = None, layer: str | None = None) -> gpd.GeoDataFrame:
    """Read a vector layer (GeoPackage, shapefile, GeoJSON, ...) as a GeoDataFrame.

    Parameters
    ----------
    path : path
        Any file GeoPandas reads.
    crs : CRS-like, optional
        Reproject to this CRS. A layer that has no CRS of its own is refused
        unless ``crs`` is given, which is then taken as its CRS.
    layer : str, optional
        Layer name inside a multi-layer file.
    """
    import geopandas as gpd

    path = _existing(path)
    frame = gpd.read_file(path, layer=layer)
    if frame.crs is None:
        if crs is None:
            raise CRSError(f"{path.name} has no CRS; pass crs=... (e.g. crs='EPSG:32649') to say what it is")
        return frame.set_crs(as_crs(crs))
    if crs is not None:
        target = as_crs(crs)
        if frame.crs != target:
            frame = frame.to_crs(target)
    return frame


def _as_bands(da: xr.DataArray) -> xr.DataArray:
    if da.ndim == 2:
        da = da.expand_dims(band=[da.name or "band_1"])
    if da.ndim != 3 or set(da.dims) != {"band", "y", "x"}:
        raise InputError(f"expected a DataArray with dims (band, y, x) or (y, x), got {da.dims}")
    return da.transpose("band", "y", "x")


def _overview_factors(shape: tuple[int, int], smallest: int = 256) -> list[int]:
    factors, factor = [], 2
    while max(shape) / factor >= smallest:
        factors.append(factor)
        factor *= 2
    return factors


def write_geotiff(
    da: xr.DataArray,
    path: str | os.PathLike,
    nodata: float = -9999.0,
    overwrite: bool = False,
    overviews: bool = True,
    style: bool | None = None,
) -> Path:
    """Write a raster to a QGIS-ready GeoTIFF.

    Float32, tiled 256×256, deflate with the floating-point predictor, band
    interleaved, NaN written as ``nodata``, band descriptions from the ``band``
    coordinate, per-band statistics tags (so QGIS stretches without scanning),
    scalar ``attrs`` as dataset tags and, for rasters larger than 256 pixels,
    internal overviews for fast panning. Written to a temporary file and renamed,
    in blocks of rows: a dask-backed array is computed one block at a time.

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
        Build internal overviews (averaged) for rasters larger than 256 pixels.
    style : bool, optional
        Also write a QGIS style ``<name>.qml`` beside the file (a 0–1 colour
        ramp, see :func:`write_qml`). Default: for single-band rasters whose
        ``attrs["kind"]`` is ``"probability"``, as :func:`prospect.mapping.predict_map` makes.
    """
    import rasterio
    from rasterio.enums import Resampling
    from rasterio.windows import Window

    grid = Grid.from_dataarray(da)
    da = _as_bands(da)
    style = da.sizes["band"] == 1 and da.attrs.get("kind") == "probability" if style is None else style
    for target in (Path(path), *([Path(path).with_suffix(".qml")] if style else [])):   # every path, before writing
        if target.exists() and not overwrite:
            raise OutputExistsError(f"{str(target)!r} exists; pass overwrite=True to replace it")
    if not np.isfinite(nodata):
        raise InputError(f"nodata={nodata!r} must be a finite number (NaN is what it stands for)")
    nodata32 = np.float32(nodata)
    rows, cols = grid.shape
    bands = da.sizes["band"]
    tiled = rows >= 256 and cols >= 256
    profile = dict(driver="GTiff", width=cols, height=rows, count=bands, dtype="float32",
                   crs=grid.crs.to_wkt(), transform=grid.transform, nodata=float(nodata32),
                   compress="deflate", predictor=3, interleave="band", BIGTIFF="IF_SAFER")
    if tiled:
        profile.update(tiled=True, blockxsize=256, blockysize=256)
    tags = {str(k): str(v) for k, v in da.attrs.items()
            if isinstance(v, (str, int, float, bool, np.number)) and not str(k).startswith("_")}
    # Rows are written in blocks, so a dask-backed array (prospect.interpolate.idw_lazy) is computed and
    # written a block at a time and never held whole; statistics are accumulated on the way.
    step = max(256, (2**24 // max(1, cols * bands)) // 256 * 256)
    count = np.zeros(bands)
    total = np.zeros(bands)
    squares = np.zeros(bands)
    low = np.full(bands, np.inf)
    high = np.full(bands, -np.inf)
    with atomic_output(path, overwrite) as tmp:
        with rasterio.open(tmp, "w", **profile) as dst:
            for r0 in range(0, rows, step):
                r1 = min(rows, r0 + step)
                block = np.asarray(da.isel(y=slice(r0, r1)).values, dtype=np.float32)
                finite = np.isfinite(block)
                if np.any(block == nodata32):
                    raise InputError(f"nodata={nodata!r} occurs among the raster's real values; "
                                     "choose another nodata value")
                for b in range(bands):
                    valid = block[b][finite[b]].astype(np.float64)
                    if valid.size:
                        count[b] += valid.size
                        total[b] += valid.sum()
                        squares[b] += (valid**2).sum()
                        low[b], high[b] = min(low[b], valid.min()), max(high[b], valid.max())
                dst.write(np.where(finite, block, nodata32), window=Window(0, r0, cols, r1 - r0))
            for index, name in enumerate(da["band"].to_numpy(), start=1):
                dst.set_band_description(index, str(name))
                b = index - 1
                if count[b]:
                    mean = total[b] / count[b]
                    std = np.sqrt(max(squares[b] / count[b] - mean**2, 0.0))
                    dst.update_tags(index, STATISTICS_MINIMUM=f"{low[b]:.8g}", STATISTICS_MAXIMUM=f"{high[b]:.8g}",
                                    STATISTICS_MEAN=f"{mean:.8g}", STATISTICS_STDDEV=f"{std:.8g}",
                                    STATISTICS_VALID_PERCENT=f"{100.0 * count[b] / (rows * cols):.4g}")
            if tags:
                dst.update_tags(**tags)
            factors = _overview_factors(grid.shape) if overviews else []
            if factors:
                dst.build_overviews(factors, Resampling.average)
    if style:
        write_qml(path, overwrite=overwrite)
    log.info("wrote %s (%d bands, %dx%d)", path, bands, rows, cols)
    return Path(path)


def write_qml(raster_path: str | os.PathLike, minimum: float = 0.0, maximum: float = 1.0, cmap: str = "magma",
              stops: int = 11, overwrite: bool = False) -> Path:
    """Write a QGIS style beside ``raster_path`` (same name, ``.qml``): band 1 as a pseudocolour ramp.

    QGIS applies a ``.qml`` with the raster's base name when it opens the raster;
    nodata is transparent (the GeoTIFF declares it). The ramp spans
    ``minimum``–``maximum`` with ``stops`` colours of the matplotlib colormap ``cmap``.
    """
    from xml.sax.saxutils import quoteattr

    import matplotlib

    if not maximum > minimum:
        raise InputError(f"maximum={maximum!r} must exceed minimum={minimum!r}")
    colormap = matplotlib.colormaps[cmap]
    items = []
    for i in range(stops):
        value = minimum + (maximum - minimum) * i / (stops - 1)
        r, g, b, _ = (int(round(255 * c)) for c in colormap(i / (stops - 1)))
        items.append(f'          <item alpha="255" value="{value:.6g}" label={quoteattr(f"{value:.2f}")} '
                     f'color="#{r:02x}{g:02x}{b:02x}"/>')
    text = "\n".join([
        "<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>",
        '<qgis version="3.28" styleCategories="AllStyleCategories">',
        "  <pipe>",
        f'    <rasterrenderer type="singlebandpseudocolor" band="1" opacity="1" alphaBand="-1" '
        f'classificationMin="{minimum:.6g}" classificationMax="{maximum:.6g}" nodataColor="">',
        "      <rasterTransparency/>",
        "      <minMaxOrigin><limits>None</limits><extent>WholeRaster</extent>"
        "<statAccuracy>Estimated</statAccuracy></minMaxOrigin>",
        "      <rastershader>",
        f'        <colorrampshader colorRampType="INTERPOLATED" classificationMode="1" clip="0" '
        f'minimumValue="{minimum:.6g}" maximumValue="{maximum:.6g}">',
        *items,
        "        </colorrampshader>",
        "      </rastershader>",
        "    </rasterrenderer>",
        '    <brightnesscontrast brightness="0" contrast="0" gamma="1"/>',
        "  </pipe>",
        "  <blendMode>0</blendMode>",
        "</qgis>",
        ""])
    path = Path(raster_path).with_suffix(".qml")
    with atomic_output(path, overwrite) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path


def read_geotiff(path: str | os.PathLike) -> xr.DataArray:
    """Read a GeoTIFF as a float32 DataArray ``(band, y, x)`` with NaN for nodata.

    Band names come from the band descriptions (``band_1``, ... where there are
    none) and the dataset tags become ``attrs``.
    """
    import rasterio

    path = _existing(path)
    with rasterio.open(path) as src:
        if src.crs is None:
            raise CRSError(f"{path.name} has no CRS; assign one (e.g. gdal_edit.py -a_srs EPSG:32649) first")
        values = src.read(out_dtype="float32")
        if src.nodata is not None and not np.isnan(src.nodata):
            values[values == np.float32(src.nodata)] = np.nan
        names = [d or f"band_{i + 1}" for i, d in enumerate(src.descriptions)]
        transform, crs, tags = src.transform, src.crs, src.tags()
    rows, cols = values.shape[1:]
    if transform.b != 0 or transform.d != 0 or transform.e >= 0:
        raise InputError(f"{path.name} is not north-up (transform {tuple(transform)[:6]}); warp it first")
    grid = Grid((transform.c, transform.f + rows * transform.e, transform.c + cols * transform.a, transform.f),
                (rows, cols), as_crs(crs))
    tags.pop("AREA_OR_POINT", None)
    return grid.wrap(values, bands=names, name=path.stem, attrs=tags)
