"""Reading surveys and vector layers; reading and writing GeoTIFFs.

Files enter and leave the package here and nowhere else. Writes go to a
temporary file beside the target and are renamed into place, so a failed write
never leaves half a file, and an existing file is only replaced when asked.
"""

from __future__ import annotations

import logging
import os
import re
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import numpy as np
import pandas as pd

from prospect._geotiff import (
    band_units,
    read_arrays,
    read_geotiff,
    write_arrays,
    write_bands,
    write_geotiff,
    write_tiles,
)
from prospect.errors import ColumnError, CRSError, InputError
from prospect.files import atomic_output, existing, parse_legend
from prospect.grid import as_crs, check_coordinates
from prospect.ranges import POSITIVE, UP_TO_ONE

if TYPE_CHECKING:
    import geopandas as gpd

__all__ = ["read_samples", "read_vector", "read_deposits", "element_columns", "write_geotiff", "read_geotiff",
           "atomic_output", "check_coordinates", "band_units", "parse_legend", "write_arrays", "read_arrays",
           "write_tiles", "write_bands"]

log = logging.getLogger(__name__)

_VECTOR_SUFFIXES = {".gpkg", ".shp", ".geojson", ".json", ".fgb"}
_TABLE_SUFFIXES = {".csv", ".txt", ".tsv"}
# "<0.5", "< 0.5", "<0,5" are below-detection values with their detection limit.
_BDL = re.compile(r"^\s*<\s*([0-9]*[.,]?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*$")
_MISSING = {"", "na", "nan", "n/a", "null", "none"}
# "1,640" and "12,500.5": a number with thousands separators (also a decimal comma's 1.640: see _decimal_mark)
_THOUSANDS = re.compile(r"^[-+]?[1-9][0-9]{0,2}(?:,[0-9]{3})+(?:\.[0-9]+)?$")
_POINT_DECIMAL = re.compile(r"^[-+<\s]*[0-9]*\.[0-9]+(?:[eE][-+]?[0-9]+)?$")
_COMMA_DECIMAL = re.compile(r"^[-+<\s]*[0-9]*,[0-9]+(?:[eE][-+]?[0-9]+)?$")
# Elements 1-92 (tested against pyrolite's list). A survey column is read as an element when its name is
# one of these or an oxide of one (SiO2, Fe2O3T), alone or followed by a separator and more (Cu_ppm_511,
# "Au (ppb)", CU_PPM); gases and elements no survey assays are left to an explicit ``elements=[...]``
# (H, N, O, noble gases, Tc, Pm and the short-lived Po-Pa), since their symbols are also common column names.
ELEMENT_SYMBOLS = (
    "H He Li Be B C N O F Ne Na Mg Al Si P S Cl Ar K Ca Sc Ti V Cr Mn Fe Co Ni Cu Zn Ga Ge As Se Br Kr Rb Sr Y Zr "
    "Nb Mo Tc Ru Rh Pd Ag Cd In Sn Sb Te I Xe Cs Ba La Ce Pr Nd Pm Sm Eu Gd Tb Dy Ho Er Tm Yb Lu Hf Ta W Re Os Ir "
    "Pt Au Hg Tl Pb Bi Po At Rn Fr Ra Ac Th Pa U").split()
_NOT_ASSAYED = frozenset("H He N O Ne Ar Kr Xe Rn Tc Pm Po At Fr Ra Ac Pa".split())
_SPECIES = r"(?:[A-Z][a-z]?)(?:\d*O\d*T?)?"    # an element or its oxide (SiO2, Fe2O3, Fe2O3T, FeOT)
_NAMED = re.compile(rf"(?P<el>{_SPECIES})(?P<rest>(?:[\s_.\-(\[].*)?)", re.DOTALL)
# words after the symbol that make a column an identifier, a coordinate or a date, not an assay (S_ID, B_No)
_NOT_ASSAY_WORDS = frozenset("id no nr num number code sample year date x y east north easting northing lat lon "
                             "latitude longitude sheet".split())


def element_name(column: str, assayed: bool = True) -> str | None:
    """The element (or oxide) a survey column is named for, or None.

    ``Cu``, ``Cu_ppm_511``, ``Au (ppb)``, ``SiO2``, ``Fe2O3T``, and a lab export's capitals or small letters
    followed by more (``CU_PPM``, ``au_ppb``) name an element; ``OBJECTID``, ``Year``, ``Northing``,
    ``Map_sheet``, ``S_ID`` do not.
    ``assayed=True`` leaves out gases and elements no survey assays (their symbols are common column names).
    """
    column = str(column).strip()
    match = None
    if (column.isupper() or column.islower()) and len(column) > 1:   # one case throughout: CU_PPM, au_ppb, FE2O3
        match = _NAMED.fullmatch(column[0].upper() + column[1].lower() + column[2:])
        if match is not None and not match["rest"] and len(match["el"]) == 2:
            return None    # a bare pair of capitals (SN, NO, CO, CU) is as often a code as an element
    match = match or _NAMED.fullmatch(column)
    if match is None:
        return None
    species, rest = match["el"], match["rest"]
    symbol = re.match(r"[A-Z][a-z]?", species)[0]
    if symbol not in ELEMENT_SYMBOLS or (assayed and symbol in _NOT_ASSAYED):
        return None
    if _NOT_ASSAY_WORDS & set(re.split(r"[\s_.\-()\[\]/]+", rest.lower())):
        return None
    return species


def _pattern(pattern: str) -> re.Pattern:
    """``element_pattern`` as a regular expression: ``{el}`` the element, ``{unit}`` its unit, ``*`` any text."""
    parts = re.split(r"(\{el\}|\{unit\}|\*)", pattern) if isinstance(pattern, str) else []
    if parts.count("{el}") != 1 or parts.count("{unit}") > 1 or any("{" in p or "}" in p for p in parts[::2]):
        raise InputError(f"element_pattern={pattern!r}; valid: a column-name pattern with {{el}} once (the element), "
                         "{unit} at most once (its unit) and * for any text, e.g. '{el}_{unit}_*' for Cu_ppm_511")
    regex = {"{el}": rf"(?P<el>{_SPECIES})", "{unit}": r"(?P<unit>[A-Za-zµ%‰]+)", "*": ".*"}
    return re.compile("".join(regex.get(p, re.escape(p)) if i % 2 else re.escape(p) for i, p in enumerate(parts)),
                      re.DOTALL)


def _by_pattern(frame: pd.DataFrame, pattern: str, reserved: set[str], path: Path) -> tuple[dict[str, str], dict]:
    """The columns ``element_pattern`` names: {column: element} and the units its ``{unit}`` read."""
    regex, named, units = _pattern(pattern), {}, {}
    for column in frame.columns:
        match = None if column in reserved else regex.fullmatch(str(column))
        if match is None or re.match(r"[A-Z][a-z]?", match["el"])[0] not in ELEMENT_SYMBOLS:
            continue
        named[column] = match["el"]
        if "unit" in regex.groupindex:
            units[match["el"]] = match["unit"]
    if not named:
        raise ColumnError(f"element_pattern={pattern!r} matches no column of {path.name}; columns are "
                          f"{[c for c in frame.columns if c not in reserved]}")
    clash = {e: [c for c, n in named.items() if n == e] for e in dict.fromkeys(named.values())}   # in file order
    clash = {e: c for e, c in clash.items() if len(c) > 1 or (e in frame.columns and e not in named)}
    if clash:
        raise ColumnError(f"element_pattern={pattern!r} gives one name to several columns of {path.name}: "
                          f"{clash}; name the ones to read in elements=[...] or make the pattern narrower")
    return named, units


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
    if decimal == ".":   # a comma can only group thousands: 1,640 is 1640
        number_text = text.where(~text.str.match(_THOUSANDS).fillna(False), text.str.replace(",", "", regex=False))
    else:
        number_text = text.str.replace(",", ".", regex=False)
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


def _decimal_mark(frame: pd.DataFrame, columns: Sequence[str], path: Path) -> str | None:
    """With ``decimal=None``: the file's decimal mark where a value like ``1,640`` needs one, read off the
    other values ("." where some have decimal points and none a decimal comma, and the other way round)."""
    grouped, points, commas = {}, False, False
    for column in columns:
        if pd.api.types.is_numeric_dtype(frame[column]):
            continue
        text = frame[column].astype("string").str.strip().dropna()
        is_grouped = text.str.match(_THOUSANDS)
        if is_grouped.any():
            grouped[column] = text[is_grouped].head(3).tolist()
        points = points or bool(text.str.match(_POINT_DECIMAL).any())
        commas = commas or bool((text.str.match(_COMMA_DECIMAL) & ~is_grouped).any())
    if not grouped:
        return None
    if points != commas:
        return "." if points else ","
    shown = "; ".join(f"{c!r}: {v}" for c, v in list(grouped.items())[:3])
    raise ColumnError(f"{path.name} has values such as {shown} that read as thousands (1,640 = 1640) or with a "
                      f"decimal comma (1,640 = 1.64), and its other values do not tell which; pass decimal='.' "
                      "(commas group thousands) or decimal=',' (commas are decimal marks)")


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
    except UnicodeError as exc:   # e.g. utf-16 asked of a file without its byte-order mark
        raise InputError(f"{path.name} cannot be read as encoding={encoding!r} ({exc}); most surveys are 'utf-8' "
                         "(the default), older Windows exports 'cp1252' or 'latin-1' (run-file key [samples] "
                         "encoding)") from exc
    except pd.errors.EmptyDataError as exc:
        raise InputError(f"{path.name} is empty: no header, no rows") from exc
    except pd.errors.ParserError as exc:
        raise InputError(f"{path.name} could not be split into columns with sep={separator!r} ({exc}); pass "
                         "sep=';' or sep='\\t' to name the separator") from exc
    names = pd.read_csv(path, sep=separator, engine="c" if separator and len(separator) == 1 else "python",
                        header=None, nrows=1, dtype=str, keep_default_na=False, encoding=encoding).iloc[0]
    twice = sorted({str(n).strip() for n in names if (names.str.strip() == str(n).strip()).sum() > 1})
    if twice:
        raise ColumnError(f"{path.name} names the column(s) {twice} more than once; which is meant is not ours to "
                          "guess - rename or drop the copies in the file")
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
    coord_scale: Annotated[float, POSITIVE] = 1.0,
    elements: Sequence[str] | None = None,
    bdl_factor: Annotated[float, UP_TO_ONE] = 0.5,
    sep: str | None = None,
    decimal: str | None = None,
    encoding: str = "utf-8-sig",
    na_values: Sequence[str] | None = None,
    units: str | Mapping[str, str] | None = None,
    element_pattern: str | None = None,
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
        Element columns to read (their names after ``element_pattern``). Default:
        every column named for an element or oxide (:func:`element_name`: ``Cu``,
        ``Cu_ppm_511``, ``AU_PPB``, ``SiO2``) whose non-blank values are mostly
        numbers or below-detection text. Identifiers, coordinates, years, map sheets
        and notes are never elements however numeric they look (``OBJECTID``,
        ``Year``, ``Northing``, ``Map_sheet``); numeric columns left out are named
        in a warning, and one named for an element that holds some text too. A named
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
        Default: the units ``element_pattern`` reads, if any.
    element_pattern : str, optional
        How element columns are named, for clean element names: ``{el}`` is the element
        (or oxide), ``{unit}`` its unit (letters, ``%``, ``µ``), ``*`` any text. With
        ``"{el}_{unit}_*"`` the column ``Cu_ppm_511`` is read as the element ``Cu`` in
        ``ppm``, so bands, screening and the report say ``Cu``; columns the pattern does
        not match are not elements. Two columns giving one name are an error.

    Returns
    -------
    geopandas.GeoDataFrame
        One point per sample with float64 element columns (NaN where blank).
        ``attrs["elements"]`` lists the element columns in file order.
    """
    import geopandas as gpd

    path = existing(path)
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

    # a CSV's coordinate columns; a vector layer's coordinates are its geometry (x and y name no column)
    reserved = {x, y, frame.geometry.name} if suffix in _TABLE_SUFFIXES else {frame.geometry.name}
    read_units = {}
    if element_pattern is not None:
        named, pattern_units = _by_pattern(frame, element_pattern, reserved, path)
        frame = frame.rename(columns=named)
        frame.attrs["renamed"] = named
        read_units = pattern_units if units is None else {}
        reserved |= {c for c in frame.columns if c not in named.values()}   # what the pattern does not name
    points = (frame.geometry.x.to_numpy(), frame.geometry.y.to_numpy())
    if elements is None:
        candidates, strict = [c for c in frame.columns if c not in reserved and
                              (element_pattern is not None or element_name(c)) and
                              not _copies_a_coordinate(frame[c], points)], False
        _warn_left_out(frame, [c for c in frame.columns if c not in reserved and c not in candidates], bdl_factor,
                       decimal, missing)
    else:
        elements = [elements] if isinstance(elements, str) else list(elements)
        missing_columns = [e for e in elements if e not in frame.columns]
        if missing_columns:
            available = [c for c in frame.columns if c not in reserved]
            raise ColumnError(f"elements {missing_columns} are not columns of {path.name}; available: {available}")
        candidates, strict = elements, True

    if decimal is None:
        decimal = _decimal_mark(frame, candidates, path)
    chosen, bdl_counts, texts, blank = [], {}, {}, []
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
        if n_values == 0:
            blank.append(column)
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
                       text_columns=sorted(texts), blank_columns=blank,
                       units=_units(units, chosen) if not read_units else
                       {e: u for e, u in read_units.items() if e in chosen})
    log.info("read %d samples with %d elements from %s", len(frame), len(chosen), path)
    return frame


def _copies_a_coordinate(column: pd.Series, points: tuple[np.ndarray, np.ndarray]) -> bool:
    """Whether a column repeats the points' x or y (a coordinate column named like an element, such as Y)."""
    values = pd.to_numeric(column, errors="coerce").to_numpy(dtype=float)
    return bool(np.isfinite(values).any()) and any(np.allclose(values, p, equal_nan=True) for p in points)


def _warn_left_out(frame: pd.DataFrame, columns: list[str], bdl_factor: float, decimal: str | None,
                   missing: frozenset[str]) -> None:
    """Warn of the numeric columns not read as elements: their names name no element (ids, coordinates, years)."""
    numeric = []
    for column in columns:
        values, _, bad = _parse_element(frame[column], bdl_factor, decimal, missing)
        if np.isfinite(values).sum() > len(bad):
            numeric.append(str(column))
    if numeric:
        warnings.warn(f"numeric columns not read as elements, since their names name no element or oxide (ids, "
                      f"coordinates, years, codes): {numeric}; name one in elements=[...] to read it as an element",
                      stacklevel=3)


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

    path = existing(path)
    try:
        frame = gpd.read_file(path, layer=layer)
    except (ValueError, OSError, RuntimeError) as exc:   # pyogrio's DataSourceError is a RuntimeError
        raise InputError(f"{path.name} is not a vector layer GDAL can read"
                         f"{'' if layer is None else f' (layer={layer!r})'}: {exc}") from exc
    if len(frame) == 0:
        raise InputError(f"{path.name} holds no features{'' if layer is None else f' in layer {layer!r}'}: "
                         "an empty file (or layer) adds nothing; give the file with the features, or leave it out")
    if frame.crs is None:
        if crs is None:
            raise CRSError(f"{path.name} has no CRS; pass crs=... (e.g. crs='EPSG:32649') to say what it is")
        return frame.set_crs(as_crs(crs))
    if crs is not None:
        target = as_crs(crs)
        if frame.crs != target:
            frame = frame.to_crs(target)
    return frame


_RASTER_SUFFIXES = {".tif", ".tiff", ".img", ".asc", ".vrt", ".nc"}


def read_deposits(path: str | os.PathLike, crs: Any = None, layer: str | None = None, x: str = "x", y: str = "y",
                  value: float = 1, sep: str | None = None, encoding: str = "utf-8-sig") -> gpd.GeoDataFrame:
    """Deposits (or any points) as a GeoDataFrame, from the form they come in.

    Parameters
    ----------
    path : path
        A vector file (GeoPackage, shapefile, GeoJSON, ...: read by :func:`read_vector`), a delimited text
        file (``.csv``, ``.txt``, ``.tsv``) with coordinate columns, or a raster (``.tif``, ...) whose cells
        equal ``value`` are deposits: one point per such cell, at its centre.
    crs : CRS-like, optional
        The CRS of a text file's coordinates (required for text files); for a vector file or a raster
        without a CRS of its own, what it is; otherwise the points are reprojected to it.
    layer : str, optional
        Layer name inside a multi-layer vector file.
    x, y : str
        The coordinate columns of a text file (matched without regard to case: ``X``, ``Easting``... must
        be named).
    value : number
        The cell value that marks a deposit in a raster (default 1).
    sep, encoding : str
        How a text file is split and decoded (as :func:`read_samples`).

    Every other column of a text file (names, commodities) is kept as text.
    """
    import geopandas as gpd

    path = existing(path)
    suffix = path.suffix.lower()
    if suffix in _TABLE_SUFFIXES:
        if crs is None:
            raise CRSError(f"{path.name}: crs=None; a text file's coordinates need their CRS, e.g. crs='EPSG:32649'")
        table = _read_table(path, sep, encoding)
        columns = {str(c).strip().lower(): c for c in table.columns}
        found = [columns.get(name.lower()) for name in (x, y)]
        if None in found:
            missing = [name for name, column in zip((x, y), found, strict=True) if column is None]
            raise ColumnError(f"{path.name}: no coordinate column {missing} (x={x!r}, y={y!r}); columns: "
                              f"{list(table.columns)}")
        coordinates = [pd.to_numeric(table[c].str.strip(), errors="coerce") for c in found]
        bad = ~(coordinates[0].notna() & coordinates[1].notna())
        if bad.any():
            raise InputError(f"{path.name}: rows {(np.flatnonzero(bad) + 2).tolist()[:10]} hold no numeric "
                             f"{x}/{y} (line numbers, header = 1)")
        check_coordinates(coordinates[0].to_numpy(), coordinates[1].to_numpy(), crs, f"{path.name} ({x}, {y})")
        return gpd.GeoDataFrame(table.drop(columns=found), geometry=gpd.points_from_xy(*coordinates),
                                crs=as_crs(crs))
    if suffix in _RASTER_SUFFIXES:
        return _raster_points(path, crs, value)
    return read_vector(path, crs=crs, layer=layer)


def _raster_points(path: Path, crs: Any, value: float) -> gpd.GeoDataFrame:
    """The centres of the cells of a raster's first band that equal ``value``."""
    import geopandas as gpd
    import rasterio

    with rasterio.open(path) as src:
        cells = src.read(1)
        transform, own = src.transform, src.crs
    if own is None and crs is None:
        raise CRSError(f"{path.name} has no CRS; pass crs=... to say what it is")
    rows, cols = np.nonzero(cells == value)
    if len(rows) == 0:
        raise InputError(f"{path.name}: no cell equals value={value!r} (the deposit code); its values run from "
                         f"{np.nanmin(cells)!r} to {np.nanmax(cells)!r}")
    xs, ys = rasterio.transform.xy(transform, rows, cols, offset="center")
    points = gpd.GeoDataFrame({"row": rows, "col": cols}, geometry=gpd.points_from_xy(xs, ys),
                              crs=own if own is not None else as_crs(crs))
    return points.to_crs(as_crs(crs)) if crs is not None and own is not None else points
