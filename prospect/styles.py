"""QGIS styles (``.qml``) for the rasters the package writes, so they open styled: the ground floor of styling.

    pp.styles.write_style("out/prospectivity.tif")      # out/prospectivity.qml, applied when QGIS opens the file

A raster's style follows what :func:`prospect.io.write_geotiff` recorded in it: ``kind`` (a probability ramp
fitted to the data, an uncertainty ramp, a paletted legend for categorical codes), the band's statistics and unit.
Plain XML written here: QGIS need not be installed. :mod:`prospect.io` (the ``.qml`` beside every GeoTIFF) and
:mod:`prospect.qgis` (the renderers of a project's layers) both use it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

from prospect.errors import InputError
from prospect.files import parse_legend, write_text

__all__ = ["write_style", "write_qml", "raster_renderer", "ramp_renderer", "palette_renderer", "category_colours",
           "band_info", "qml_colour", "RAMPS", "PALETTE"]

# The colour ramp of each kind of raster: probability as the map figure; uncertainty and evidence distinct from it.
RAMPS = {"probability": "magma", "uncertainty": "viridis", "evidence": "cividis", "contributions": "RdBu_r"}
PALETTE = "tab20"


def qml_colour(value: Any, alpha: float | None = None) -> str:
    """QGIS's 'r,g,b,a' from any matplotlib colour."""
    from matplotlib.colors import to_rgba

    rgba = to_rgba(value, alpha)
    return ",".join(str(int(round(255 * c))) for c in rgba)


def _hex(rgba: Sequence[float]) -> str:
    return "#" + "".join(f"{int(round(255 * c)):02x}" for c in rgba[:3])


def ramp_renderer(band: int, minimum: float, maximum: float, cmap: str = "magma", stops: int = 11,
                  digits: int | None = None) -> str:
    """A ``singlebandpseudocolor`` renderer: ``band`` on ``stops`` colours of ``cmap`` from minimum to maximum."""
    import matplotlib
    import numpy as np

    if not (np.isfinite(minimum) and np.isfinite(maximum) and maximum > minimum):
        raise InputError(f"maximum={maximum!r} must exceed minimum={minimum!r} (both finite)")
    if cmap not in matplotlib.colormaps:
        raise InputError(f"cmap={cmap!r} is not a matplotlib colormap (e.g. 'magma', 'viridis')")
    if stops < 2:
        raise InputError(f"stops={stops!r} must be at least 2")
    if digits is None:   # enough decimals that neighbouring labels differ
        digits = max(0, int(np.ceil(-np.log10((maximum - minimum) / (stops - 1)))) + 1)
    colormap = matplotlib.colormaps[cmap]
    items = []
    for i in range(stops):
        value = minimum + (maximum - minimum) * i / (stops - 1)
        items.append(f'<item alpha="255" value="{value:.8g}" label={quoteattr(f"{value:.{digits}f}")} '
                     f'color="{_hex(colormap(i / (stops - 1)))}"/>')
    return (f'<rasterrenderer type="singlebandpseudocolor" band="{band}" opacity="1" alphaBand="-1" '
            f'classificationMin="{minimum:.8g}" classificationMax="{maximum:.8g}" nodataColor="">'
            "<rasterTransparency/><minMaxOrigin><limits>None</limits><extent>WholeRaster</extent>"
            "<statAccuracy>Estimated</statAccuracy></minMaxOrigin><rastershader>"
            f'<colorrampshader colorRampType="INTERPOLATED" classificationMode="1" clip="0" '
            f'minimumValue="{minimum:.8g}" maximumValue="{maximum:.8g}">{"".join(items)}</colorrampshader>'
            "</rastershader></rasterrenderer>")


def category_colours(classes: Mapping[int, str], cmap: str = PALETTE) -> dict[int, tuple[int, int, int, int]]:
    """One RGBA colour per code, in code order: the GeoTIFF colour table and the ``.qml`` palette agree."""
    import matplotlib

    colormap = matplotlib.colormaps[cmap]
    return {int(code): tuple(int(round(255 * c)) for c in colormap(i % colormap.N))
            for i, code in enumerate(sorted(classes))}


def palette_renderer(band: int, classes: Mapping[int, str], cmap: str = PALETTE) -> str:
    """A ``paletted`` renderer: one colour and legend label per integer code (e.g. ``{1: "Triassic"}``)."""
    if not classes:
        raise InputError("classes is empty; give at least one {code: label}")
    colours = category_colours(classes, cmap)
    entries = "".join(f'<paletteEntry value="{code}" label={quoteattr(str(classes[code]))} alpha="255" '
                      f'color="#{r:02x}{g:02x}{b:02x}"/>' for code, (r, g, b, _) in colours.items())
    return (f'<rasterrenderer type="paletted" band="{band}" opacity="1" alphaBand="-1" nodataColor="">'
            f"<rasterTransparency/><colorPalette>{entries}</colorPalette></rasterrenderer>")


def band_info(path: Path, band: int) -> dict[str, Any]:
    """What a written GeoTIFF says of one band: name, unit, statistics, kind and legend."""
    import rasterio

    with rasterio.open(path) as src:
        if not 1 <= band <= src.count:
            raise InputError(f"band={band!r}; {path.name} has bands 1..{src.count}")
        tags, band_tags = src.tags(), src.tags(band)
        name = src.descriptions[band - 1] or f"band_{band}"
        info = {"name": name, "unit": src.units[band - 1] or "", "count": src.count, "crs": src.crs.to_wkt(),
                "bounds": tuple(src.bounds)}
    stats = {k: float(band_tags[f"STATISTICS_{k.upper()}"]) for k in ("minimum", "maximum", "mean", "stddev")
             if f"STATISTICS_{k.upper()}" in band_tags}
    legend = tags.get(f"{name}_legend") or (tags.get("legend") if info["count"] == 1 else None)
    every = tags.get("kind") == "contributions"     # a kind that holds for every band of a multi-band file
    kind = "categorical" if legend else (tags.get("kind", "evidence") if info["count"] == 1 or every else "evidence")
    return {**info, **stats, "kind": kind, "legend": parse_legend(legend) if legend else None}


def raster_renderer(path: str | os.PathLike, band: int = 1) -> str:
    """The renderer a written GeoTIFF's band gets, from what :func:`prospect.io.write_geotiff` recorded.

    Probability: ``magma`` fitted to the data's range; uncertainty: ``viridis`` from 0 to its maximum;
    categorical codes (a ``legend`` tag, as :func:`prospect.layers.rasterize_categorical` makes): one colour
    and label per code; contributions (a band's share of the score): ``RdBu_r`` symmetric about 0 over the
    larger side of mean ± 2 standard deviations, so red lifts the score and blue lowers it; anything else:
    ``cividis`` over mean ± 2 standard deviations within the data's range (QGIS's own default stretch).
    """
    info = band_info(Path(path), band)
    if info["legend"]:
        return palette_renderer(band, info["legend"])
    low, high = info.get("minimum", 0.0), info.get("maximum", 1.0)
    if info["kind"] == "probability":
        pass
    elif info["kind"] == "uncertainty":
        low = 0.0
    elif "mean" in info:
        low = max(low, info["mean"] - 2 * info["stddev"])
        high = min(high, info["mean"] + 2 * info["stddev"])
    if info["kind"] == "contributions":
        high = max(abs(low), abs(high))
        low = -high
    if not high > low:    # a constant band: any ramp around its value
        low, high = low - 0.5, low + 0.5
    return ramp_renderer(band, low, high, RAMPS.get(info["kind"], RAMPS["evidence"]))


def _qml(renderer: str) -> str:
    return ("<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n"
            '<qgis version="3.22" styleCategories="AllStyleCategories">\n'
            f"  <pipe>\n    {renderer}\n"
            '    <brightnesscontrast brightness="0" contrast="0" gamma="1"/>\n  </pipe>\n'
            "  <blendMode>0</blendMode>\n</qgis>\n")


def write_style(raster_path: str | os.PathLike, band: int = 1, overwrite: bool = False) -> Path:
    """Write ``<name>.qml`` beside a GeoTIFF: QGIS applies it when it opens the file (see :func:`raster_renderer`).

    A multi-band file is shown by ``band`` (the first by default) instead of QGIS's RGB of the first three.
    """
    path = Path(raster_path)
    return write_text(path.with_suffix(".qml"), _qml(raster_renderer(path, band)), overwrite)


def write_qml(raster_path: str | os.PathLike, minimum: float = 0.0, maximum: float = 1.0, cmap: str = "magma",
              stops: int = 11, overwrite: bool = False) -> Path:
    """Write a QGIS style beside ``raster_path`` (same name, ``.qml``): band 1 on a fixed ramp of ``cmap``."""
    return write_text(Path(raster_path).with_suffix(".qml"), _qml(ramp_renderer(1, minimum, maximum, cmap, stops)),
                       overwrite)
