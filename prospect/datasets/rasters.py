"""The Qin-hang-like area as a survey office hands it over without the survey: class-coded GIS grids and a CSV.

Most prospectivity data reaches a geologist as rasters: a geological map exported as a class-coded grid
with an ArcGIS raster attribute table, layers reclassified into ordered classes, deposits as a table of
coordinates. This generator makes them over the area of :func:`prospect.datasets.make_qinhang`, from the
same geology, faults and deposits (recreated from the same seed), so a run on rasters alone can be shown
and tested on the embedded data:

- ``geology_classes.tif``: the units as codes 1-5 (uint8, nodata 0) on 100 m cells, EPSG:32649, with
  ``geology_classes.tif.vat.dbf`` (``Value``, ``Count``, ``UNIT``): named classes, read as categorical.
- ``fault_distance_classes.tif``: the distance to the nearest fault in ten ordered classes of 400 m
  (1: < 400 m ... 10: >= 3.6 km; uint8, nodata 0) with a ``.vat.dbf`` of codes alone (``Value``,
  ``Count``): the reclassified kind of layer, read as ordered classes.
- ``deposits.csv``: the known deposits and ore spots (``name``, ``kind``, ``commodity``, ``x``, ``y`` in
  EPSG:32649), as in ``deposits.gpkg``.

It imitates; it measures nothing. The other sample files are not touched.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from prospect.datasets.qinhang import (
    _CELL,
    _SIZE,
    QINHANG_BOUNDS,
    QINHANG_CRS,
    QINHANG_SEED,
    UNITS,
    _distance_to_segments,
    _fault_lines,
    _recreate,
)

__all__ = ["make_qinhang_rasters", "DISTANCE_CLASS"]

DISTANCE_CLASS = 400.0      # metres per class of fault_distance_classes.tif


def _table(path: Path, columns: dict[str, list]) -> None:
    """An attribute-only dBASE table (an ArcGIS ``.vat.dbf``), through GDAL's shapefile driver (in a folder of its
    own, since the driver adds a ``.cpg`` beside it)."""
    import shutil
    import tempfile

    import pandas as pd
    import pyogrio

    with tempfile.TemporaryDirectory() as folder:
        written = Path(folder) / "table.dbf"
        pyogrio.write_dataframe(pd.DataFrame(columns), written, driver="ESRI Shapefile")
        shutil.copyfile(written, path)


def make_qinhang_rasters(out_dir: str | os.PathLike, seed: int = QINHANG_SEED, overwrite: bool = False) -> Path:
    """Write ``geology_classes.tif``, ``fault_distance_classes.tif`` (with their ``.vat.dbf``) and
    ``deposits.csv`` into ``out_dir``; returns ``out_dir``.

    Parameters
    ----------
    out_dir : path
        Folder to write to (created if missing).
    seed : int
        Seed of the geology and deposits (as for make_qinhang).
    overwrite : bool
        Replace files that already exist. Default False.
    """
    import pandas as pd
    import rasterio
    from rasterio.transform import from_origin

    from prospect.files import atomic_output

    out_dir = Path(out_dir)
    rasters = [out_dir / "geology_classes.tif", out_dir / "fault_distance_classes.tif"]
    targets = [*rasters, *(Path(f"{p}.vat.dbf") for p in rasters), out_dir / "deposits.csv"]
    _, codes, deposits = _recreate(out_dir, targets, seed, overwrite)
    n = codes.shape[0]
    centres = (np.arange(n) + 0.5) * _CELL
    u, v = np.meshgrid(centres, centres[::-1])
    lines = _fault_lines()
    distance = _distance_to_segments(np.column_stack([u.ravel(), v.ravel()]),
                                     [segment for family in lines.values() for segment in family]).reshape(n, n)
    classes = np.minimum(distance // DISTANCE_CLASS + 1, 10).astype(np.uint8)
    x0, y0 = QINHANG_BOUNDS[:2]
    profile = dict(driver="GTiff", width=n, height=n, count=1, dtype="uint8", crs=QINHANG_CRS, nodata=0,
                   transform=from_origin(x0, y0 + _SIZE, _CELL, _CELL), compress="deflate", tiled=True,
                   blockxsize=256, blockysize=256)
    layers = [(rasters[0], (codes + 1).astype(np.uint8), "geology (unit codes)", {"UNIT": list(UNITS)}),
              (rasters[1], classes, f"distance to the nearest fault, classes of {DISTANCE_CLASS:g} m", {})]
    for path, values, field, names in layers:
        with atomic_output(path, overwrite) as tmp:
            with rasterio.open(tmp, "w", **profile) as dst:
                dst.write(values, 1)
                dst.update_tags(SYNTHETIC="yes: made by prospect.datasets.make_qinhang_rasters", FIELD=field)
        values_present, counts = np.unique(values, return_counts=True)
        table = {"Value": values_present.astype(int).tolist(), "Count": counts.astype(float).tolist()}
        table.update({key: [column[int(code) - 1] for code in values_present] for key, column in names.items()})
        with atomic_output(Path(f"{path}.vat.dbf"), overwrite) as tmp:
            _table(tmp, table)
    known = deposits[deposits["kind"] != "undiscovered"].reset_index(drop=True)
    frame = pd.DataFrame({"name": [f"D{i + 1:02d}" for i in range(len(known))], "kind": known["kind"],
                          "commodity": known["commodity"], "x": np.round(x0 + known["u"], 1),
                          "y": np.round(y0 + known["v"], 1)})
    with atomic_output(out_dir / "deposits.csv", overwrite) as tmp:
        frame.to_csv(tmp, index=False, lineterminator="\n")
    return out_dir
