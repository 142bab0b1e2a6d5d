"""Geochemical transforms of a survey table, applied before screening and interpolation.

Concentrations are lognormal and, as parts of a whole, closed: ``log10`` makes them
near-normal, the centred and isometric log-ratios (``clr``, ``ilr``; Aitchison's
compositional data analysis, as in pyrolite) free them from closure. All three need
positive values, so zeros and the negative codes that survey databases use for
below-detection results are substituted first, by a stated rule, with counts:

    samples = pp.io.read_samples("survey.csv", crs="EPSG:32649")
    logged  = pp.geochem.transform(samples, "log10")    # then screening and IDW as usual
    logged.attrs["substituted"]                          # {'Au': {'negative': 12, 'zero': 3}, ...}
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, Literal

import numpy as np

from prospect.errors import ColumnError, InputError
from prospect.io import element_columns
from prospect.ranges import POSITIVE, UP_TO_ONE, or_word

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["substitute_below_detection", "transform", "clr", "ilr", "METHODS"]

METHODS = ("log10", "clr", "ilr")


def _elements(samples: pd.DataFrame, elements: Sequence[str] | str | None) -> list[str]:
    chosen = element_columns(samples) if elements is None else ([elements] if isinstance(elements, str)
                                                                 else [str(e) for e in elements])
    if not chosen:
        raise ColumnError("elements is empty: name the element columns to transform")
    unknown = [e for e in chosen if e not in samples.columns]
    if unknown:
        raise ColumnError(f"elements {unknown} are not columns of samples; available: {element_columns(samples)}")
    return chosen


def substitute_below_detection(
    samples: pd.DataFrame,
    elements: Sequence[str] | str | None = None,
    bdl_factor: Annotated[float, UP_TO_ONE] = 0.5,
    zero: Annotated[float | Literal["half_min"], or_word("half_min", POSITIVE)] = "half_min",
) -> pd.DataFrame:
    """Replace the values a logarithm cannot take: negative codes and zeros.

    Survey databases write a below-detection result as the negative of its
    detection limit (``-0.5`` for "< 0.5"): a negative value becomes
    ``bdl_factor × |value|``. A zero is a below-detection result with no stated
    limit: it becomes ``zero`` (a number), or by default ``bdl_factor`` times the
    element's smallest positive value. Returns a copy; ``attrs["substituted"]``
    holds the counts and the zero substitute per element, also given in a warning.

    Parameters
    ----------
    samples : DataFrame or GeoDataFrame
        The survey, as :func:`prospect.io.read_samples` returns it.
    elements : list of str, optional
        Columns to treat. Default: every element column.
    bdl_factor : float
        Fraction of the detection limit substituted, in (0, 1]. Default 0.5.
    zero : float or "half_min"
        The substitute for zeros; see above.
    """
    return _substitute(samples, elements, bdl_factor, zero, stacklevel=3)


def _substitute(samples: pd.DataFrame, elements: Sequence[str] | str | None, bdl_factor: float,
                zero: float | str, stacklevel: int) -> pd.DataFrame:
    """:func:`substitute_below_detection`, warning at the caller ``stacklevel`` frames up."""
    if isinstance(bdl_factor, bool) or not (isinstance(bdl_factor, (int, float)) and 0 < bdl_factor <= 1):
        raise InputError(f"bdl_factor={bdl_factor!r} must lie in (0, 1] (0.5 = half the detection limit)")
    if not (zero == "half_min" or (isinstance(zero, (int, float)) and not isinstance(zero, bool) and zero > 0)):
        raise InputError(f"zero={zero!r}; valid: a positive number, or 'half_min' (bdl_factor x the element's "
                         "smallest positive value)")
    chosen = _elements(samples, elements)
    out = samples.copy()
    counts: dict[str, dict[str, float]] = {}
    for column in chosen:
        values = np.asarray(out[column], dtype=np.float64).copy()
        negative, zeros = values < 0, values == 0
        if not (negative.any() or zeros.any()):
            continue
        values[negative] = bdl_factor * -values[negative]
        entry: dict[str, float] = {"negative": int(negative.sum()), "zero": int(zeros.sum())}
        if zeros.any():
            positive = values[values > 0]
            if zero == "half_min" and not positive.size:
                raise ColumnError(f"element {column!r} has no positive value to derive a substitute for its "
                                  f"{int(zeros.sum())} zeros from; pass zero=<a value>")
            substitute = bdl_factor * float(positive.min()) if zero == "half_min" else float(zero)
            values[zeros] = substitute
            entry["zero_substitute"] = substitute
        out[column] = values
        counts[column] = entry
    if counts:
        text = "; ".join(f"{c}: {e['negative']} negative -> {bdl_factor:g} x |value|"
                         + (f", {e['zero']} zero -> {e['zero_substitute']:.4g}" if e["zero"] else "")
                         for c, e in counts.items())
        warnings.warn(f"below-detection codes substituted before the log transform ({text})", stacklevel=stacklevel)
    out.attrs = {**samples.attrs, "substituted": counts}
    return out


def clr(values: np.ndarray) -> np.ndarray:
    """Centred log-ratio of compositions ``(n, D)``: ``ln x − mean(ln x)`` per row (rows sum to 0).

    Rows with a missing or non-positive part are NaN. Closure to a constant sum
    changes nothing (the ratios are scale-free).
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2 or values.shape[1] < 2:
        raise InputError(f"compositions must be (n, D) with D >= 2 parts, got shape {values.shape}")
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.where(values > 0, np.log(values), np.nan)
    return logs - logs.mean(axis=1, keepdims=True)


def ilr(values: np.ndarray) -> np.ndarray:
    """Isometric log-ratio ``(n, D − 1)``: the clr in the orthonormal Helmert basis (``scipy.linalg.helmert``).

    The basis is pyrolite's default, so the coordinates equal ``pyrolite.comp.codata.ILR``.
    """
    from scipy.linalg import helmert

    centred = clr(values)
    return centred @ helmert(centred.shape[1]).T


def transform(
    samples: pd.DataFrame,
    method: Literal["log10", "clr", "ilr"],
    elements: Sequence[str] | str | None = None,
    bdl_factor: Annotated[float, UP_TO_ONE] = 0.5,
    zero: Annotated[float | Literal["half_min"], or_word("half_min", POSITIVE)] = "half_min",
) -> pd.DataFrame:
    """Transform a survey's element columns before screening and interpolation.

    Parameters
    ----------
    samples : DataFrame or GeoDataFrame
        The survey (concentrations, as read).
    method : {"log10", "clr", "ilr"}
        ``"log10"``: each element's base-10 logarithm (columns keep their names).
        ``"clr"``: centred log-ratio over ``elements`` (natural logs; columns keep their
        names). ``"ilr"``: isometric log-ratio, ``D − 1`` columns ``ilr1`` ... replacing the
        ``D`` elements (Helmert basis, as pyrolite). A log-ratio over a subcomposition
        (trace elements only) is the usual practice for stream sediments; mixed units
        (ng/g and µg/g) shift a clr column by a constant and leave every ranking and
        AUC unchanged.
    elements : list of str, optional
        The elements to transform (the parts of the composition). Default: every
        element column.
    bdl_factor, zero
        How negative codes and zeros are substituted first (see
        :func:`substitute_below_detection`).

    Returns
    -------
    A copy of ``samples`` whose ``attrs["elements"]`` lists the transformed columns,
    with ``attrs["transform"]`` describing what was done and
    ``attrs["substituted"]`` the substitutions. Samples missing any part get NaN in
    every clr/ilr column (a warning gives the count); log10 leaves other elements'
    values alone.
    """
    if method not in METHODS:
        raise InputError(f"method={method!r}; valid: {list(METHODS)}")
    chosen = _elements(samples, elements)
    if method != "log10" and len(chosen) < 2:
        raise InputError(f"method={method!r} needs at least two elements (the parts of a composition), "
                         f"got {chosen}")
    out = _substitute(samples, chosen, bdl_factor, zero, stacklevel=3)
    values = out[chosen].to_numpy(dtype=np.float64)
    others = [e for e in (samples.attrs.get("elements") or element_columns(samples)) if e not in chosen]
    if method == "log10":
        out[chosen] = np.log10(values)
        columns, note = chosen, f"log10 of {', '.join(chosen)}"
    else:
        incomplete = int((~np.isfinite(values)).any(axis=1).sum())
        if incomplete:
            warnings.warn(f"{incomplete} of {len(values)} samples miss one of {chosen}; their {method} values are "
                          "NaN (a log-ratio needs every part)", stacklevel=2)
        result = clr(values) if method == "clr" else ilr(values)
        if method == "clr":
            out[chosen] = result
            columns = chosen
        else:
            columns = [f"ilr{i + 1}" for i in range(result.shape[1])]
            clash = [c for c in columns if c in out.columns and c not in chosen]
            if clash:
                raise ColumnError(f"samples already has columns {clash}; rename them before an ilr transform")
            out = out.drop(columns=chosen)
            for i, column in enumerate(columns):
                out[column] = result[:, i]
        note = f"{method} over {', '.join(chosen)}" + (" (Helmert basis, as pyrolite)" if method == "ilr" else "")
    units = {e: u for e, u in (samples.attrs.get("units") or {}).items() if e in others}
    if method == "log10":    # clr and ilr values are log-ratios: no unit
        units.update({e: f"log10({u})" for e, u in (samples.attrs.get("units") or {}).items() if e in columns})
    out.attrs = {**out.attrs, "elements": [*columns, *others], "transform": note, "transformed": list(columns),
                 "units": units}
    return out
