"""QGIS styles (``.qml``) and projects (``.qgs``) for what a study writes, so the results open styled.

    layers = [pp.qgis.vector_layer("out/targets.gpkg", outline="#00e5ff", label="rank", name="target areas"),
              pp.qgis.raster_layer("out/prospectivity.tif"),
              *pp.qgis.band_layers("out/stack.tif", group="evidence", visible=False)]
    pp.qgis.write_project("out/project.qgs", layers, title="Qin-hang")

Both are plain XML written here: QGIS need not be installed to write them. A raster's style follows what
:func:`prospect.io.write_geotiff` recorded in it: ``kind`` (a probability ramp fitted to the data, an
uncertainty ramp, a paletted legend for categorical codes), the band's statistics and unit. Paths in a
project are relative to the project file, so the folder can be moved or e-mailed whole.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from xml.sax.saxutils import escape, quoteattr

from prospect.errors import InputError, OutputExistsError
from prospect.files import existing, write_text
from prospect.styles import (
    PALETTE,
    RAMPS,
    band_info,
    category_colours,
    palette_renderer,
    qml_colour,
    ramp_renderer,
    raster_renderer,
    write_qml,
    write_style,
)

__all__ = ["Layer", "raster_layer", "band_layers", "vector_layer", "write_project", "write_style", "write_qml",
           "raster_renderer", "ramp_renderer", "palette_renderer", "category_colours", "RAMPS"]

# -- projects ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Layer:
    """One layer of a QGIS project (made by :func:`raster_layer`, :func:`band_layers` or :func:`vector_layer`)."""

    path: Path
    name: str
    provider: Literal["gdal", "ogr"]
    crs: str                       # WKT
    bounds: tuple[float, float, float, float]
    style: str                     # the layer's renderer (and labelling) XML
    geometry: str | None = None    # Point, Line or Polygon for vectors
    layer: str | None = None       # the layer inside a GeoPackage
    labels: bool = False
    group: str | None = None
    visible: bool = True


def raster_layer(path: str | os.PathLike, band: int = 1, name: str | None = None, group: str | None = None,
                 visible: bool = True) -> Layer:
    """A GeoTIFF as a project layer, styled by :func:`raster_renderer`; named after the band and its unit."""
    path = existing(path)
    info = band_info(path, band)
    if name is None:
        name = (path.stem if info["count"] == 1 else info["name"]) + (f" ({info['unit']})" if info["unit"] else "")
    return Layer(path, name, "gdal", info["crs"], info["bounds"], f"<pipe>{raster_renderer(path, band)}</pipe>",
                 group=group, visible=visible)


def band_layers(path: str | os.PathLike, group: str | None = None, visible: bool = False) -> list[Layer]:
    """Every band of a multi-band GeoTIFF (the evidence stack) as its own single-band layer."""
    import rasterio

    with rasterio.open(existing(path)) as src:
        count = src.count
    return [raster_layer(path, band, group=group, visible=visible) for band in range(1, count + 1)]


_GEOMETRIES = {"Point": "Point", "MultiPoint": "Point", "LineString": "Line", "MultiLineString": "Line",
               "Polygon": "Polygon", "MultiPolygon": "Polygon"}


def _props(**values: Any) -> str:
    return "".join(f'<prop k="{k}" v={quoteattr(str(v))}/>' for k, v in values.items())


def _symbol(geometry: str, name: str, color: Any, outline: Any, size: float, marker: str) -> str:
    if geometry == "Point":
        kind, layer = "marker", "SimpleMarker"
        props = _props(name=marker, color=qml_colour(color), outline_color=qml_colour(outline), outline_width="0.3",
                       size=size, size_unit="MM", outline_width_unit="MM")
    elif geometry == "Line":
        kind, layer = "line", "SimpleLine"
        props = _props(line_color=qml_colour(color), line_width=size, line_width_unit="MM", line_style="solid",
                       capstyle="round", joinstyle="round")
    else:
        kind, layer = "fill", "SimpleFill"
        props = _props(color=qml_colour("white", 0) if color is None else qml_colour(color),
                       style="no" if color is None else "solid", outline_color=qml_colour(outline),
                       outline_width=size, outline_width_unit="MM", outline_style="solid")
    return (f'<symbol type="{kind}" name="{name}" alpha="1" clip_to_extent="1" force_rhr="0">'
            f'<layer class="{layer}" enabled="1" pass="0" locked="0">{props}</layer></symbol>')


def _labeling(field: str, color: Any) -> str:
    return ('<labeling type="simple"><settings calloutType="simple">'
            f'<text-style fieldName={quoteattr(field)} isExpression="0" fontSize="10" fontSizeUnit="Point" '
            f'fontWeight="75" textColor="{qml_colour(color)}" textOpacity="1" fontFamily="Sans Serif">'
            f'<text-buffer bufferDraw="1" bufferSize="1" bufferSizeUnits="MM" bufferColor="255,255,255,255" '
            'bufferOpacity="0.8" bufferNoFill="1"/></text-style>'
            '<placement placement="1" dist="1" distUnits="MM" centroidInside="1" priority="8"/>'
            '<rendering obstacle="1" scaleVisibility="0" upsidedownLabels="0" drawLabels="1"/>'
            "</settings></labeling>")


def vector_layer(path: str | os.PathLike, layer: str | None = None, name: str | None = None, *,
                 color: Any = None, outline: Any = "black", size: float | None = None, marker: str = "circle",
                 label: str | None = None, categories: str | None = None, group: str | None = None,
                 visible: bool = True) -> Layer:
    """A vector layer (GeoPackage, shapefile, ...) as a project layer with a simple style.

    Parameters
    ----------
    path, layer : the file and, for a GeoPackage of several, the layer in it.
    color : matplotlib colour, optional
        Marker, line or fill colour. A polygon layer without one is drawn as outlines only.
    outline : matplotlib colour
        Marker and polygon outline colour.
    size : float, optional
        Marker size or line and outline width, in millimetres (2.4 / 0.5 / 0.6 by default).
    marker : str
        QGIS's marker name: ``circle``, ``star``, ``triangle``, ``square``, ``diamond``, ...
    label : str, optional
        A field whose values label the features (e.g. ``"rank"`` of target areas).
    categories : str, optional
        A field to categorise by: one filled colour per value, each a legend entry (e.g. geological units).
    """
    import geopandas as gpd

    path = existing(path)
    frame = gpd.read_file(path, layer=layer)
    kinds = {_GEOMETRIES.get(t) for t in frame.geom_type.dropna().unique()}
    if len(kinds) != 1 or None in kinds:
        raise InputError(f"{path.name}{f' layer {layer!r}' if layer else ''} holds {sorted(frame.geom_type.unique())} "
                         "geometries; a project layer needs one kind: points, lines or polygons")
    geometry = kinds.pop()
    for field, argument in ((label, "label"), (categories, "categories")):
        if field is not None and field not in frame.columns:
            raise InputError(f"{argument}={field!r} is not a field of {path.name}; fields are "
                             f"{[c for c in frame.columns if c != frame.geometry.name]}")
    size = {"Point": 2.4, "Line": 0.5, "Polygon": 0.6}[geometry] if size is None else size
    if categories is not None:
        import matplotlib

        values = sorted(frame[categories].dropna().unique().tolist(), key=str)
        colormap = matplotlib.colormaps[PALETTE]
        symbols = [_symbol(geometry, str(i), colormap(i % colormap.N) if geometry != "Polygon"
                           else (*colormap(i % colormap.N)[:3], 0.55), outline, size if geometry != "Polygon" else 0.2,
                           marker) for i in range(len(values))]
        style = (f'<renderer-v2 type="categorizedSymbol" attr={quoteattr(categories)} symbollevels="0" '
                 'enableorderby="0" forceraster="0"><categories>'
                 + "".join(f'<category render="true" value={quoteattr(str(v))} symbol="{i}" label={quoteattr(str(v))}/>'
                           for i, v in enumerate(values))
                 + f"</categories><symbols>{''.join(symbols)}</symbols></renderer-v2>")
    else:
        style = ('<renderer-v2 type="singleSymbol" symbollevels="0" enableorderby="0" forceraster="0"><symbols>'
                 f"{_symbol(geometry, '0', color, outline, size, marker)}</symbols></renderer-v2>")
    if label is not None:
        style += _labeling(label, outline if geometry == "Polygon" and color is None else "black")
    bounds = tuple(float(v) for v in frame.total_bounds)
    crs = frame.crs.to_wkt() if frame.crs is not None else ""
    return Layer(path, name or layer or path.stem, "ogr", crs, bounds, style, geometry, layer, label is not None,
                 group, visible)


def _srs(wkt: str) -> str:
    from pyproj import CRS

    if not wkt:
        return "<spatialrefsys><wkt></wkt></spatialrefsys>"
    crs = CRS.from_wkt(wkt)
    authority = crs.to_authority()
    authid = ":".join(authority) if authority else ""
    return (f"<spatialrefsys><wkt>{escape(crs.to_wkt())}</wkt>"
            f"<authid>{authid}</authid><description>{escape(crs.name)}</description>"
            f"<geographicflag>{str(crs.is_geographic).lower()}</geographicflag></spatialrefsys>")


def _source(layer: Layer, folder: Path) -> str:
    try:
        relative = os.path.relpath(layer.path.resolve(), folder.resolve())
        source = "./" + Path(relative).as_posix() if not relative.startswith("..") else Path(relative).as_posix()
    except ValueError:     # another drive (Windows): keep it absolute
        source = layer.path.resolve().as_posix()
    return source + (f"|layername={layer.layer}" if layer.layer else "")


def write_project(path: str | os.PathLike, layers: Sequence[Layer], title: str = "", overwrite: bool = False) -> Path:
    """Write a QGIS project (``.qgs``) holding ``layers``, the first drawn on top.

    Layers with a ``group`` go into a collapsed group of that name in the layer panel, in the order the groups
    first appear. File paths are stored relative to the project (QGIS's "relative paths" setting), so the
    folder holding both can be moved. The project's CRS and extent are the first layer's.
    """
    path = Path(path)
    if path.suffix.lower() != ".qgs":
        raise InputError(f"path={str(path)!r}; valid: a file name ending in .qgs")
    if not layers:
        raise InputError("layers is empty; give at least one layer")
    if path.exists() and not overwrite:
        raise OutputExistsError(f"{str(path)!r} exists; pass overwrite=True to replace it")
    folder = path.parent
    # QGIS's own id form (name and a UUID), which it keeps on reading; deterministic, so a rerun gives the same file
    ids = [re.sub(r"[^A-Za-z0-9_]", "_", f"{layer.name}_{uuid.uuid5(uuid.NAMESPACE_URL, f'{title}/{i}/{layer.name}')}")
           for i, layer in enumerate(layers)]
    entries: list[str | list[str]] = []        # a node, or a group's list of nodes (placed at its first layer)
    groups: dict[str, list[str]] = {}
    for layer, layer_id in zip(layers, ids, strict=True):
        node = (f'<layer-tree-layer id="{layer_id}" name={quoteattr(layer.name)} '
                f'source={quoteattr(_source(layer, folder))} providerKey="{layer.provider}" '
                f'checked="Qt::{"Checked" if layer.visible else "Unchecked"}" expanded="1">'
                "<customproperties/></layer-tree-layer>")
        if layer.group is None:
            entries.append(node)
            continue
        if layer.group not in groups:
            groups[layer.group] = []
            entries.append(groups[layer.group])
        groups[layer.group].append(node)
    names = {id(nodes): name for name, nodes in groups.items()}
    tree = [entry if isinstance(entry, str) else
            f'<layer-tree-group name={quoteattr(names[id(entry)])} checked="Qt::Checked" expanded="0">'
            f'<customproperties/>{"".join(entry)}</layer-tree-group>' for entry in entries]
    maplayers = []
    for layer, layer_id in zip(layers, ids, strict=True):
        xmin, ymin, xmax, ymax = layer.bounds
        vector = layer.provider == "ogr"
        encoding = ' encoding="UTF-8"' if vector else ""
        attributes = (f'type="vector" geometry="{layer.geometry}" labelsEnabled="{int(layer.labels)}"' if vector
                      else 'type="raster"')
        maplayers.append(
            f"<maplayer {attributes} hasScaleBasedVisibilityFlag=\"0\" styleCategories=\"AllStyleCategories\">"
            f"<extent><xmin>{xmin}</xmin><ymin>{ymin}</ymin><xmax>{xmax}</xmax><ymax>{ymax}</ymax></extent>"
            f"<id>{layer_id}</id><datasource>{escape(_source(layer, folder))}</datasource>"
            f"<layername>{escape(layer.name)}</layername><srs>{_srs(layer.crs)}</srs>"
            f"<provider{encoding}>{layer.provider}</provider>"
            f"{layer.style}<blendMode>0</blendMode></maplayer>")
    xmin, ymin, xmax, ymax = layers[0].bounds
    crs = _srs(layers[0].crs)
    text = "\n".join([
        "<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>",
        f'<qgis projectname={quoteattr(title)} version="3.22.0">',
        '  <homePath path=""/>', f"  <title>{escape(title)}</title>",
        f"  <projectCrs>{crs}</projectCrs>",
        f'  <layer-tree-group><customproperties/>{"".join(tree)}</layer-tree-group>',
        f'  <mapcanvas name="theMapCanvas" annotationsVisible="1"><units>meters</units><extent><xmin>{xmin}</xmin>'
        f"<ymin>{ymin}</ymin><xmax>{xmax}</xmax><ymax>{ymax}</ymax></extent><rotation>0</rotation>"
        f"<destinationsrs>{crs}</destinationsrs><rendermaptile>0</rendermaptile></mapcanvas>",
        f"  <projectlayers>{''.join(maplayers)}</projectlayers>",
        f"  <layerorder>{''.join(f'<layer id={quoteattr(i)}/>' for i in ids)}</layerorder>",
        '  <properties><Paths><Absolute type="bool">false</Absolute></Paths>'
        '<SpatialRefSys><ProjectionsEnabled type="int">1</ProjectionsEnabled></SpatialRefSys></properties>',
        "</qgis>", ""])
    return write_text(path, text, overwrite)
