"""What the geologist opens from a run: the vector inputs beside the rasters, the categorical layers as integer
codes with their legend, and ``project.qgs`` holding everything styled.

The folder stands alone: ``inputs.gpkg`` holds the run's deposits (with the fold that held each out), the
undiscovered deposits, and every vector layer, in the grid's CRS; the project refers to files by relative
paths, so the folder can be moved or sent whole.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from prospect import io, qgis

__all__ = ["write_inputs", "write_categorical", "write_project"]

log = logging.getLogger("prospect.workflow")

# How each kind of layer is drawn (colours as the map figure).
DEPOSITS = {"color": "#39ff14", "outline": "black", "marker": "circle"}
UNDISCOVERED = {"color": "white", "outline": "black", "marker": "star", "size": 3.4}
TARGETS = {"outline": "#00e5ff", "size": 0.7}
LINES = {"color": "#c8c8c8", "size": 0.5}


def _layer_names(config: Any) -> dict[tuple[str, int], str]:
    """A GeoPackage layer name per vector input: its file's stem, numbered where two share one."""
    names: dict[tuple[str, int], str] = {}
    for section in ("categorical", "distance"):
        for number, body in enumerate(config[section]):
            stem = Path(body["path"]).stem
            name, count = stem, 2
            while name in names.values() or name in ("deposits", "undiscovered"):
                name, count = f"{stem}_{count}", count + 1
            names[(section, number)] = name
    return names


def write_inputs(config: Any, inputs: Any, grid: Any, out: Path, folds: Any = None) -> Path:
    """``inputs.gpkg``: deposits (``fold``: the spatial fold that held it out, -1 off the grid), undiscovered
    deposits, and every categorical and distance layer, each reprojected to the grid's CRS."""
    deposits = inputs.deposits.to_crs(grid.crs)
    if folds is not None:
        fold = np.full(len(deposits), -1)
        fold[folds.deposit_index] = folds.deposit_fold
        deposits = deposits.assign(fold=fold)
    frames = {"deposits": deposits}
    if inputs.undiscovered is not None:
        frames["undiscovered"] = inputs.undiscovered.to_crs(grid.crs)
    names = _layer_names(config)
    for section, items in (("categorical", inputs.categorical), ("distance", inputs.distance)):
        for number, (gdf, _) in enumerate(items):
            frames[names[(section, number)]] = gdf.to_crs(grid.crs)
    path = out / "inputs.gpkg"
    with io.atomic_output(path, overwrite=True) as tmp:
        for name, frame in frames.items():
            frame.to_file(tmp, driver="GPKG", layer=name)
    return path


def write_categorical(stack: Any, out: Path, overwrite: bool) -> list[Path]:
    """Each categorical band of the stack as ``layers/<band>.tif``: integer codes, colour table, category names."""
    paths = []
    for band in [str(b) for b in stack["band"].to_numpy()]:
        legend = stack.attrs.get(f"{band}_legend")
        if legend is None:
            continue
        folder = out / "layers"
        folder.mkdir(exist_ok=True)
        layer = stack.sel(band=[band])
        layer.attrs = {"kind": "categorical", "legend": legend}
        paths.append(io.write_geotiff(layer, folder / f"{band}.tif", overwrite=overwrite))
    return paths


def write_project(config: Any, inputs: Any, out: Path, title: str) -> Path:
    """``project.qgs``: targets, deposits, faults, geology, the map, its uncertainty, each band's share of the
    map's score (a group) and the evidence stack (a group)."""
    vectors = out / "inputs.gpkg"
    layers = []
    if (out / "targets.gpkg").exists():
        layers.append(qgis.vector_layer(out / "targets.gpkg", "targets", "target areas (rank)", label="rank",
                                        **TARGETS))
    layers.append(qgis.vector_layer(vectors, "deposits", "known deposits", **DEPOSITS))
    if inputs.undiscovered is not None:
        layers.append(qgis.vector_layer(vectors, "undiscovered", "undiscovered deposits (kept out of every step)",
                                        **UNDISCOVERED))
    names = _layer_names(config)
    for number, _ in enumerate(inputs.distance):
        layers.append(qgis.vector_layer(vectors, names[("distance", number)], **LINES))
    for number, (_, options) in enumerate(inputs.categorical):
        layers.append(qgis.vector_layer(vectors, names[("categorical", number)], categories=options["field"],
                                        outline="#404040", visible=False))
    layers.append(qgis.raster_layer(out / "prospectivity.tif", name="prospectivity (ore probability)"))
    if (out / "uncertainty.tif").exists():
        layers.append(qgis.raster_layer(out / "uncertainty.tif", name="uncertainty", visible=False))
    if (out / "consensus.tif").exists():
        layers.append(qgis.raster_layer(out / "consensus.tif", name="models agreeing (top models' top areas)",
                                        visible=False))
    for name, title in (("wofe_posterior", "weights of evidence: posterior (all deposits)"),
                        ("wofe_posterior_std", "weights of evidence: its standard deviation")):
        if (out / f"{name}.tif").exists():
            layers.append(qgis.raster_layer(out / f"{name}.tif", name=title, group="weights of evidence",
                                            visible=False))
    if (out / "contributions.tif").exists():
        layers += qgis.band_layers(out / "contributions.tif", group="why each cell scores (contributions.tif)",
                                   visible=False)
    layers += qgis.band_layers(out / "stack.tif", group="evidence layers (stack.tif)", visible=False)
    path = qgis.write_project(out / "project.qgs", layers, title=title, overwrite=True)
    log.info("QGIS project: %s (%d layers, paths relative to the folder)", path, len(layers))
    return path
