"""A synthetic aeromagnetic grid and licence outline for the Qin-hang-like survey, in other CRSs.

Real evidence rarely shares the geochemistry's grid: an aeromagnetic survey comes as
a grid in geographic coordinates at its own cell size, with gaps where it was not
flown, and the licence outline in the national geographic CRS. This generator makes
both over the area of :func:`prospect.datasets.make_qinhang`, from the same geology,
faults and deposits (recreated from the same seed), so ``[[raster]]`` and ``[mask]``
can be shown and tested on the embedded data:

- ``magnetics.tif``: total magnetic intensity reduced to the pole (nT), EPSG:4326,
  0.001° cells (about 103 × 111 m), nodata −99999 where the survey was not flown.
  The field is that of the units' susceptibilities (upward-continued by a Gaussian
  of 300 m), three buried granites (2.5 km), a regional gradient and 0.5 nT of
  noise. Magnetite is destroyed (susceptibility × 0.3) within 200 m of every fault
  and (× 0.2) within 400 m of every deposit, undiscovered ones included: the
  magnetic lows of hydrothermal alteration, a real but weak and ambiguous guide.
- ``study_area.gpkg``: the licence outline, EPSG:4490 (CGCS2000 geographic), which
  leaves out two corners of the geochemical survey.

It imitates; it measures nothing. The geochemical files are not touched.
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

__all__ = ["make_qinhang_geophysics", "MAGNETICS_CRS", "STUDY_AREA_CRS", "MAGNETICS_NODATA"]

MAGNETICS_CRS = "EPSG:4326"
STUDY_AREA_CRS = "EPSG:4490"
MAGNETICS_NODATA = -99999.0
_DEGREE_CELL = 0.001
# Magnetic susceptibility (10^-3 SI) per unit: clastics and alluvium with detrital magnetite above limestones.
_SUSCEPTIBILITY = {"Triassic": 0.35, "Permian": 0.15, "Carboniferous": 0.08, "Devonian": 0.45, "Quaternary": 0.6}
# The licence outline in local metres (0..39000): the survey's square less its NW and SE corners.
_LICENCE = [(500, 500), (30000, 500), (38500, 9000), (38500, 38500), (9000, 38500), (500, 30000)]
# Not flown: a restricted zone in the north-east (local metres, x0, y0, x1, y1).
_GAP = (29000, 31500, 35500, 39500)


def _local_grid_field(rng: np.random.Generator, codes: np.ndarray, deposits_xy: np.ndarray) -> np.ndarray:
    """RTP anomaly (nT) on the 100 m local raster, row 0 in the north."""
    from scipy.ndimage import gaussian_filter

    n = codes.shape[0]
    centres = (np.arange(n) + 0.5) * _CELL
    u, v = np.meshgrid(centres, centres[::-1])
    points = np.column_stack([u.ravel(), v.ravel()])
    susceptibility = np.array([_SUSCEPTIBILITY[unit] for unit in UNITS])[codes]
    faults = [segment for family in _fault_lines().values() for segment in family]
    near_fault = _distance_to_segments(points, faults).reshape(n, n) < 200
    near_deposit = np.zeros(n * n, bool)
    for x, y in deposits_xy:
        near_deposit |= np.hypot(points[:, 0] - x, points[:, 1] - y) < 400
    susceptibility = np.where(near_fault, 0.3 * susceptibility, susceptibility)
    susceptibility = np.where(near_deposit.reshape(n, n), 0.2 * susceptibility, susceptibility)
    shallow = 120.0 * gaussian_filter(susceptibility, 3.0, mode="nearest")
    granites = np.zeros((n, n))
    for _ in range(3):
        cx, cy = rng.uniform(4000, _SIZE - 4000, 2)
        a, b = rng.uniform(2500, 5000, 2)
        angle = rng.uniform(0, np.pi)
        du, dv = u - cx, v - cy
        along = du * np.cos(angle) + dv * np.sin(angle)
        across = -du * np.sin(angle) + dv * np.cos(angle)
        granites += (along / a) ** 2 + (across / b) ** 2 < 1
    deep = 60.0 * gaussian_filter(granites, 25.0, mode="nearest")
    regional = 0.8e-3 * (0.7 * (u - _SIZE / 2) + 0.3 * (v - _SIZE / 2))
    return shallow + deep + regional


def make_qinhang_geophysics(out_dir: str | os.PathLike, seed: int = QINHANG_SEED, overwrite: bool = False) -> Path:
    """Write ``magnetics.tif`` and ``study_area.gpkg`` for the synthetic Qin-hang area into ``out_dir``.

    The geology, faults and deposits are those :func:`prospect.datasets.make_qinhang` makes with
    the same ``seed``; with the default seed the files equal those in ``data_samples/qinhang``.

    Parameters
    ----------
    out_dir : path
        Folder to write to (created if missing).
    seed : int
        Seed of the geology and deposits (as for make_qinhang) and of the granites and noise.
    overwrite : bool
        Replace files that already exist. Default False.
    """
    import geopandas as gpd
    import rasterio
    import shapely
    from pyproj import Transformer
    from rasterio.transform import from_origin
    from scipy.ndimage import map_coordinates

    from prospect.files import atomic_output

    out_dir = Path(out_dir)
    targets = [out_dir / "magnetics.tif", out_dir / "study_area.gpkg"]
    _, codes, deposits = _recreate(out_dir, targets, seed, overwrite)
    field = _local_grid_field(np.random.default_rng([seed, 2]), codes, deposits[["u", "v"]].to_numpy())
    noise = np.random.default_rng([seed, 3])

    x0, y0 = QINHANG_BOUNDS[:2]
    to_degrees = Transformer.from_crs(QINHANG_CRS, MAGNETICS_CRS, always_xy=True)
    to_utm = Transformer.from_crs(MAGNETICS_CRS, QINHANG_CRS, always_xy=True)
    # The flown block: the survey's square and 1.5 km around it, on a 0.001° grid.
    corners = np.array([(x0 - 1500, y0 - 1500), (x0 + _SIZE + 1500, y0 - 1500), (x0 + _SIZE + 1500, y0 + _SIZE + 1500),
                        (x0 - 1500, y0 + _SIZE + 1500)])
    lon, lat = to_degrees.transform(corners[:, 0], corners[:, 1])
    west = np.floor(min(lon) / _DEGREE_CELL) * _DEGREE_CELL
    north = np.ceil(max(lat) / _DEGREE_CELL) * _DEGREE_CELL
    width = int(np.ceil((max(lon) - west) / _DEGREE_CELL))
    height = int(np.ceil((north - min(lat)) / _DEGREE_CELL))
    glon, glat = np.meshgrid(west + (np.arange(width) + 0.5) * _DEGREE_CELL,
                             north - (np.arange(height) + 0.5) * _DEGREE_CELL)
    ex, ny = to_utm.transform(glon, glat)
    local_x, local_y = ex - x0, ny - y0
    rows = (_SIZE - local_y) / _CELL - 0.5
    cols = local_x / _CELL - 0.5
    values = map_coordinates(field, [rows, cols], order=1, mode="nearest")
    values = values + 0.5 * noise.standard_normal(values.shape)
    values = np.round(values, 1).astype(np.float32)
    gap = (local_x >= _GAP[0]) & (local_x <= _GAP[2]) & (local_y >= _GAP[1]) & (local_y <= _GAP[3])
    values[gap] = MAGNETICS_NODATA

    profile = dict(driver="GTiff", width=width, height=height, count=1, dtype="float32", crs=MAGNETICS_CRS,
                   transform=from_origin(west, north, _DEGREE_CELL, _DEGREE_CELL), nodata=MAGNETICS_NODATA,
                   compress="deflate", predictor=3, tiled=True, blockxsize=256, blockysize=256)
    with atomic_output(targets[0], overwrite) as tmp:
        with rasterio.open(tmp, "w", **profile) as dst:
            dst.write(values, 1)
            dst.set_band_description(1, "mag_rtp")
            dst.update_tags(1, units="nT")
            dst.update_tags(SYNTHETIC="yes: made by prospect.datasets.make_qinhang_geophysics",
                            FIELD="total magnetic intensity reduced to the pole, nT")
    licence = shapely.segmentize(shapely.Polygon([(x0 + x, y0 + y) for x, y in _LICENCE]), 500.0)
    outline = gpd.GeoDataFrame({"name": ["Jinshan exploration licence (synthetic)"]}, geometry=[licence],
                               crs=QINHANG_CRS).to_crs(STUDY_AREA_CRS)
    with atomic_output(targets[1], overwrite) as tmp:
        outline.to_file(tmp, driver="GPKG", layer="study_area")
    return out_dir
