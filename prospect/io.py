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
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from prospect.errors import ColumnError, CRSError, InputError, MissingFileError, OutputExistsError
from prospect.grid import Grid, as_crs, check_coordinates

if TYPE_CHECKING:
    import geopandas as gpd
    import xarray as xr

__all__ = ["read_samples", "read_vector", "element_columns", "write_geotiff", "read_geotiff", "atomic_output",
           "check_coordinates", "band_units", "parse_legend"]

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
    units: str | Mapping[str, str] | None = None,
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
    units : str or mapping, optional
        The elements' units, kept in ``attrs["units"]`` and carried to the band
        metadata of every raster made from them: one for all (``"ppm"``) or per
        element (``{"Au": "ng/g", "Ag": "ng/g", "*": "µg/g"}``, ``"*"`` for the rest).

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
                       text_columns=sorted(texts), units=_units(units, chosen))
    log.info("read %d samples with %d elements from %s", len(frame), len(chosen), path)
    return frame


def _units(units: str | Mapping[str, str] | None, elements: list[str]) -> dict[str, str]:
    if units is None or isinstance(units, str):
        return dict.fromkeys(elements, units) if units else {}
    if not isinstance(units, Mapping):
        raise InputError(f"units={units!r}; valid: a unit for every element ('ppm') or {{element: unit}}")
    unknown = sorted(set(units) - set(elements) - {"*"})
    if unknown:
        raise ColumnError(f"units names {unknown}, which are not element columns; valid: {elements} and '*'")
    return {e: str(units.get(e, units.get("*", ""))) for e in elements if units.get(e, units.get("*"))}


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


def _overview_factors(shape: tuple[int, int], block: int = 256) -> list[int]:
    """Halvings until the smallest overview fits one block (gdaladdo's own rule): 390 px -> [2], 1560 -> [2, 4, 8]."""
    factors, factor = [], 2
    while max(shape) / (factor // 2) > block:
        factors.append(factor)
        factor *= 2
    return factors


def parse_legend(text: str) -> dict[int, str]:
    """``"1=Carboniferous;2=Devonian"`` (a categorical layer's ``legend``) as ``{1: "Carboniferous", ...}``."""
    return {int(code): name for code, name in (item.split("=", 1) for item in str(text).split(";") if "=" in item)}


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
        when it opens it (:func:`prospect.qgis.raster_renderer`: a probability ramp
        fitted to the data, an uncertainty ramp, a legend of categories, a stretch of
        the first band of a stack). Default True.
    """
    import rasterio
    from rasterio.enums import Resampling
    from rasterio.windows import Window

    grid = Grid.from_dataarray(da)
    da = _as_bands(da)
    categorical = da.sizes["band"] == 1 and da.attrs.get("kind") == "categorical" and "legend" in da.attrs
    targets = [Path(path), *([Path(path).with_suffix(".qml")] if style else []),
               *([Path(f"{path}.aux.xml")] if categorical else [])]
    for target in targets:   # every path, before writing
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
                if np.any(block == np.float32(nodata)):
                    raise InputError(f"nodata={nodata!r} occurs among the raster's real values; "
                                     "choose another nodata value")
                for b in range(bands):
                    valid = block[b][finite[b]].astype(np.float64)
                    if valid.size:
                        count[b] += valid.size
                        total[b] += valid.sum()
                        squares[b] += (valid**2).sum()
                        low[b], high[b] = min(low[b], valid.min()), max(high[b], valid.max())
                dst.write(np.where(finite, block, fill).astype(dtype), window=Window(0, r0, cols, r1 - r0))
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
                from prospect.qgis import category_colours

                dst.write_colormap(1, category_colours(codes))
            factors = _overview_factors(grid.shape) if overviews else []
            if factors:
                dst.build_overviews(factors, Resampling.nearest if categorical else Resampling.average)
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
        from prospect.qgis import write_style

        write_style(path, overwrite=overwrite)
    log.info("wrote %s (%d bands, %dx%d)", path, bands, rows, cols)
    return Path(path)


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
        if any(src.units):
            tags.setdefault("units", ";".join(f"{n}={u}" for n, u in zip(names, src.units, strict=True) if u))
    rows, cols = values.shape[1:]
    if transform.b != 0 or transform.d != 0 or transform.e >= 0:
        raise InputError(f"{path.name} is not north-up (transform {tuple(transform)[:6]}); warp it first")
    grid = Grid((transform.c, transform.f + rows * transform.e, transform.c + cols * transform.a, transform.f),
                (rows, cols), as_crs(crs))
    tags.pop("AREA_OR_POINT", None)
    return grid.wrap(values, bands=names, name=path.stem, attrs=tags)
