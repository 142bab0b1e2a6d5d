"""A synthetic stream-sediment survey shaped like the MFAF paper's Jinshan (Qin-hang) data.

The real data is available only on request, so this generator imitates its
shape: a 39 × 39 km area in WGS 84 / UTM 49N containing the paper's Table 1
coordinates, five strata in NE-trending folded belts, NE, NW and near N–S
faults, deposits hosted in the Triassic near mineralised faults, and 7,512
samples with the 16 elements of the paper, in its units and magnitudes, whose
ore halos make Ag, Au, Sn, Cu, Ba, Sb, Hg and Mo the significant elements.
It imitates; it does not reproduce.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["make_qinhang", "QINHANG_SEED", "QINHANG_BOUNDS", "QINHANG_CRS", "ELEMENTS", "UNITS"]

QINHANG_SEED = 2023
QINHANG_CRS = "EPSG:32649"
QINHANG_BOUNDS = (400000.0, 2400000.0, 439000.0, 2439000.0)
# Oldest to youngest below the Quaternary cover; counts of samples per formation as in the paper (§2).
UNITS = ("Triassic", "Permian", "Carboniferous", "Devonian", "Quaternary")
UNIT_COUNTS = {"Triassic": 3568, "Permian": 1559, "Carboniferous": 1942, "Devonian": 342, "Quaternary": 101}
ELEMENTS = ("Ag", "Au", "B", "Sn", "Cu", "Ba", "Mn", "Pb", "Zn", "As", "Sb", "Hg", "Mo", "W", "Bi", "F")

# Per element: median (Table 1 magnitudes; Au and Ag in ng/g as the paper labels them, the rest µg/g),
# log10 spread, decimals as reported, detection limit, and the ore-halo amplitude in log10 units.
# The amplitudes are what make the first eight significant and the rest not, in roughly Table 2's order.
_CHEMISTRY = {
    #       median  sigma  dec   DL     halo
    "Ag": (0.065, 0.22, 3, 0.02, 0.227),
    "Hg": (0.05, 0.24, 2, 0.01, 0.203),
    "Cu": (6.0, 0.20, 0, 1.0, 0.152),
    "Ba": (700.0, 0.20, 0, 20.0, 0.142),
    "Sn": (2.2, 0.22, 2, 0.5, 0.172),
    "Au": (0.8, 0.26, 2, 0.3, 0.182),
    "Mo": (0.75, 0.22, 2, 0.2, 0.202),
    "Sb": (0.32, 0.20, 2, 0.05, 0.143),
    "B": (3.5, 0.18, 0, 1.0, 0.03),
    "Bi": (0.50, 0.24, 2, 0.05, 0.03),
    "Pb": (35.0, 0.20, 0, 2.0, 0.0),
    "W": (0.80, 0.24, 2, 0.1, 0.02),
    "F": (215.0, 0.10, 0, 50.0, 0.015),
    "As": (0.70, 0.24, 2, 0.1, 0.02),
    "Mn": (330.0, 0.20, 0, 10.0, 0.0),
    "Zn": (25.0, 0.20, 0, 2.0, 0.0),
}
# Lithology factors on the median (shales richer in B and Ba, limestones in Mn; alluvium mixed).
_LITHOLOGY = {
    "Triassic": {"B": 1.04, "Ba": 1.03, "Mn": 0.95},
    "Permian": {"Mn": 1.1, "Ba": 0.95, "B": 0.97},
    "Carboniferous": {"Mn": 1.08, "B": 0.96},
    "Devonian": {"Mn": 1.15, "Zn": 1.05, "B": 0.95},
    "Quaternary": {},
}

_SIZE = 39000.0       # metres, square area
_CELL = 100.0         # geology raster cell used to draw the polygons
_SPACING = 340.0      # candidate sample spacing of the jittered grid


def _fault_lines() -> dict[str, list[tuple[tuple[float, float], tuple[float, float]]]]:
    """Fault traces in local metres (0..39000), by family: NE regional, NW, near N–S."""
    return {
        "NE": [((3000, 1500), (31500, 37500)), ((9500, -500), (39500, 28500)), ((-500, 13000), (21000, 39500))],
        "NW": [((6000, 30000), (20000, 14500)), ((18000, 33000), (33500, 17500)), ((24000, 12000), (37000, 1000))],
        "N-S": [((14200, -500), (15800, 39500)), ((29000, 8000), (30300, 39500))],
    }


def _mineralised() -> list[tuple[tuple[float, float], tuple[float, float]]]:
    return list(_fault_lines()["NE"])


def _unit_raster(rng: np.random.Generator) -> np.ndarray:
    """Unit codes (index into UNITS) on a 100 m raster, row 0 in the north."""
    n = int(_SIZE / _CELL)
    centres = (np.arange(n) + 0.5) * _CELL
    u, v = np.meshgrid(centres, centres[::-1])
    across = (-(u - _SIZE / 2) + (v - _SIZE / 2)) / np.sqrt(2)   # NW–SE, across the NE strike
    along = ((u - _SIZE / 2) + (v - _SIZE / 2)) / np.sqrt(2)
    # Folded stratigraphy: a level that rises and falls across strike, with plunging fold axes.
    phase = rng.uniform(0, 2 * np.pi)
    level = (np.cos(2 * np.pi * across / 15000 + phase + 0.5 * np.sin(2 * np.pi * along / 30000))
             + 0.25 * np.sin(2 * np.pi * along / 21000) + 0.0000105 * across)
    # Thresholds at area quantiles, so each stratum's outcrop matches its share of the paper's samples
    # and the sampling density is even across formations.
    shares = np.array([UNIT_COUNTS[u] for u in UNITS[:4]], float)
    cuts = np.quantile(level, 1 - np.cumsum(shares / shares.sum())[:3])
    codes = np.select([level > cuts[0], level > cuts[1], level > cuts[2]], [0, 1, 2], default=3)
    # A Quaternary valley fill meandering along a NE-trending river.
    river = across - 6000 - 1500 * np.sin(2 * np.pi * along / 9000)
    codes[np.abs(river) < 300] = 4
    return codes.astype(np.uint8)


def _polygons(codes: np.ndarray):
    import geopandas as gpd
    import rasterio.features
    from affine import Affine
    from shapely.geometry import shape
    from shapely.ops import unary_union

    x0, y0 = QINHANG_BOUNDS[0], QINHANG_BOUNDS[3]
    transform = Affine(_CELL, 0, x0, 0, -_CELL, y0)
    pieces: dict[int, list] = {}
    for geometry, value in rasterio.features.shapes(codes, transform=transform):
        pieces.setdefault(int(value), []).append(shape(geometry))
    records = [(UNITS[code], unary_union(parts)) for code, parts in sorted(pieces.items())]
    return gpd.GeoDataFrame({"unit": [r[0] for r in records]}, geometry=[r[1] for r in records], crs=QINHANG_CRS)


def _distance_to_segments(points: np.ndarray, segments) -> np.ndarray:
    best = np.full(len(points), np.inf)
    for (ax, ay), (bx, by) in segments:
        a = np.array([ax, ay], float)
        d = np.array([bx - ax, by - ay], float)
        t = np.clip(((points - a) @ d) / (d @ d), 0, 1)
        best = np.minimum(best, np.hypot(*(points - (a + t[:, None] * d)).T))
    return best


def _unit_at(codes: np.ndarray, local: np.ndarray) -> np.ndarray:
    n = codes.shape[0]
    col = np.clip((local[:, 0] / _CELL).astype(int), 0, n - 1)
    row = np.clip(((_SIZE - local[:, 1]) / _CELL).astype(int), 0, n - 1)
    return codes[row, col]


def _deposits(rng: np.random.Generator, codes: np.ndarray) -> pd.DataFrame:
    """Deposits and ore spots on mineralised faults inside the Triassic, plus undiscovered ones.

    Candidates are laid along the mineralised (NE) faults every 50 m with a small
    offset, kept where they fall in the Triassic, and weighted towards the cross
    faults (ore clusters where faults meet); sites are then drawn at least 800 m apart.
    """
    lines = _fault_lines()
    candidates = []
    for (ax, ay), (bx, by) in _mineralised():
        length = np.hypot(bx - ax, by - ay)
        t = np.arange(0, length, 50.0) / length
        normal = np.array([-(by - ay), bx - ax]) / length
        offset = rng.normal(0, 150, len(t))[:, None] * normal
        candidates.append(np.column_stack([ax + t * (bx - ax), ay + t * (by - ay)]) + offset)
    candidates = np.concatenate(candidates)
    inside = np.all((candidates > 1500) & (candidates < _SIZE - 1500), axis=1)
    candidates = candidates[inside & (_unit_at(codes, candidates) == 0)]
    weight = np.exp(-_distance_to_segments(candidates, lines["NW"] + lines["N-S"]) / 4000)
    plan = [("deposit", 12, 1.0)] * 12 + [("ore spot", 20, 0.55)] * 20 + [("undiscovered", 8, 0.9)] * 8
    chosen: list[np.ndarray] = []
    while len(chosen) < len(plan):
        if weight.sum() == 0:
            raise RuntimeError(f"only {len(chosen)} deposit sites fit this geology; try another seed")
        pick = rng.choice(len(candidates), p=weight / weight.sum())
        point = candidates[pick]
        weight[np.hypot(*(candidates - point).T) < 800] = 0
        chosen.append(point)
    kinds = rng.permutation(len(plan))
    commodities = ["Au-Ag", "Sn-Cu", "Sb-Hg", "Mo-Cu", "Ag-Pb"]
    records = [(plan[k][0], *chosen[i], plan[k][2], commodities[rng.integers(len(commodities))])
               for i, k in enumerate(kinds)]
    return pd.DataFrame(records, columns=["kind", "u", "v", "strength", "commodity"])


def _smooth_field(rng: np.random.Generator, cells: int, sigma_cells: float) -> np.ndarray:
    from scipy.ndimage import gaussian_filter

    field = gaussian_filter(rng.standard_normal((cells, cells)), sigma_cells, mode="wrap")
    return field / field.std()


def _at(field: np.ndarray, local: np.ndarray, cell: float) -> np.ndarray:
    from scipy.ndimage import map_coordinates

    rows = (_SIZE - local[:, 1]) / cell - 0.5
    cols = local[:, 0] / cell - 0.5
    return map_coordinates(field, [rows, cols], order=1, mode="nearest")


def _format(values: np.ndarray, decimals: int, limit: float) -> list[str]:
    out = []
    for value in values:
        if value < limit:
            out.append(f"<{limit:g}")
        elif decimals == 0:
            out.append(str(int(round(value))))
        else:
            out.append(f"{value:.{decimals}f}")
    return out


def make_qinhang(out_dir: str | os.PathLike, seed: int = QINHANG_SEED, overwrite: bool = False) -> Path:
    """Generate the synthetic Qin-hang-like survey into ``out_dir``.

    Writes ``stream_sediments.csv`` (7,512 samples; ``X``, ``Y`` in km as in the
    paper's Table 1, a ``formation`` column, and the 16 elements), ``geology.gpkg``
    (field ``unit``), ``faults.gpkg`` (field ``family``), ``deposits.gpkg`` (known
    deposits and ore spots) and ``undiscovered.gpkg`` (deposits planted in the
    data but not in the known set: the truth a real survey never has, kept for
    judging predictions only). With the default seed the files equal those in
    ``data_samples/qinhang``.

    Parameters
    ----------
    out_dir : path
        Folder to write to (created if missing).
    seed : int
        Seed of every random choice. Default :data:`QINHANG_SEED`.
    overwrite : bool
        Replace files that already exist. Default False.

    Returns
    -------
    pathlib.Path of ``out_dir``.
    """
    import geopandas as gpd
    from shapely.geometry import LineString

    from prospect.files import atomic_output

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    x0, y0 = QINHANG_BOUNDS[:2]

    codes = _unit_raster(rng)
    geology = _polygons(codes)
    deposits = _deposits(rng, codes)

    # Candidate sites on a jittered grid, thinned per formation to the paper's counts.
    steps = np.arange(_SPACING / 2, _SIZE, _SPACING)
    gu, gv = np.meshgrid(steps, steps)
    local = np.column_stack([gu.ravel(), gv.ravel()]) + rng.uniform(-0.35, 0.35, (gu.size, 2)) * _SPACING
    local = np.clip(local, 1.0, _SIZE - 1.0)
    unit = _unit_at(codes, local)
    keep = []
    for code, name in enumerate(UNITS):
        sites = np.flatnonzero(unit == code)
        if len(sites) < UNIT_COUNTS[name]:
            raise RuntimeError(f"seed {seed} leaves {len(sites)} sites in the {name}, fewer than "
                               f"{UNIT_COUNTS[name]}; try another seed")
        keep.append(rng.choice(sites, UNIT_COUNTS[name], replace=False))
    keep = np.sort(np.concatenate(keep))
    local, unit = local[keep], unit[keep]
    order = np.lexsort((local[:, 0], -local[:, 1]))  # north to south, then west to east, like a field sheet
    local, unit = local[order], unit[order]

    # Ore halos: Gaussian around every deposit (undiscovered ones too) and a narrow one along mineralised faults.
    dep_xy = deposits[["u", "v"]].to_numpy()
    d2 = ((local[:, None, :] - dep_xy[None, :, :]) ** 2).sum(axis=2)
    halo = (deposits["strength"].to_numpy()[None, :] * np.exp(-d2 / (2 * 650.0**2))).sum(axis=1)
    halo += 0.25 * np.exp(-_distance_to_segments(local, _mineralised()) ** 2 / (2 * 250.0**2))
    halo = np.minimum(halo, 1.5)

    cells = int(_SIZE / 200.0)
    regional = _at(_smooth_field(rng, cells, 4.0), local, 200.0)
    table = {"X": [f"{v:.2f}" for v in (x0 + local[:, 0]) / 1000], "Y": [f"{v:.2f}" for v in (y0 + local[:, 1]) / 1000],
             "formation": [UNITS[c] for c in unit]}
    for element in ELEMENTS:
        median, sigma, decimals, limit, amplitude = _CHEMISTRY[element]
        factor = np.array([_LITHOLOGY[UNITS[c]].get(element, 1.0) for c in unit])
        own = _at(_smooth_field(rng, cells, 3.0), local, 200.0)
        # Mostly sample-scale variation; a smaller spatially correlated part gives the maps texture without
        # letting chance highs near the clustered deposits pass for ore signals.
        noise = 0.3 * own + 0.2 * regional + 0.93 * rng.standard_normal(len(unit))
        log_value = np.log10(median * factor) + sigma * noise + amplitude * halo * rng.uniform(0.6, 1.4, len(unit))
        values = 10.0**log_value
        spikes = rng.choice(len(values), 3, replace=False)    # a handful of outliers (contamination, nuggets)
        values[spikes] *= rng.uniform(15, 40, 3)
        table[element] = _format(values, decimals, limit)
    survey = pd.DataFrame(table)

    to_world = lambda xy: (x0 + np.asarray(xy)[:, 0], y0 + np.asarray(xy)[:, 1])  # noqa: E731
    lines = _fault_lines()
    faults = gpd.GeoDataFrame(
        {"name": [f"F{i + 1}" for i in range(sum(len(v) for v in lines.values()))],
         "family": [family for family, segs in lines.items() for _ in segs],
         "mineralised": [seg in _mineralised() for segs in lines.values() for seg in segs]},
        geometry=[LineString(np.column_stack(to_world(seg))) for segs in lines.values() for seg in segs],
        crs=QINHANG_CRS)
    known = deposits[deposits["kind"] != "undiscovered"].reset_index(drop=True)
    hidden = deposits[deposits["kind"] == "undiscovered"].reset_index(drop=True)

    def points(frame: pd.DataFrame, prefix: str) -> gpd.GeoDataFrame:
        x, y = to_world(frame[["u", "v"]].to_numpy())
        return gpd.GeoDataFrame({"name": [f"{prefix}{i + 1:02d}" for i in range(len(frame))],
                                 "kind": frame["kind"].tolist(), "commodity": frame["commodity"].tolist()},
                                geometry=gpd.points_from_xy(np.round(x, 1), np.round(y, 1)), crs=QINHANG_CRS)

    with atomic_output(out_dir / "stream_sediments.csv", overwrite) as tmp:
        survey.to_csv(tmp, index=False, lineterminator="\n")
    for name, frame in (("geology", geology), ("faults", faults), ("deposits", points(known, "D")),
                        ("undiscovered", points(hidden, "U"))):
        with atomic_output(out_dir / f"{name}.gpkg", overwrite) as tmp:
            frame.to_file(tmp, driver="GPKG", layer=name)
    return out_dir


def _recreate(out_dir: Path, targets: list[Path], seed: int, overwrite: bool) -> tuple[np.random.Generator, np.ndarray,
                                                                                      pd.DataFrame]:
    """For the generators that add files to the area: refuse existing ``targets`` unless ``overwrite``, create
    ``out_dir``, and recreate the geology codes and deposits of ``seed`` (the same draws, in the same order, as
    :func:`make_qinhang`); returns the generator after those draws, the codes and the deposits."""
    existing = [str(p) for p in targets if p.exists()]
    if existing and not overwrite:
        raise FileExistsError(f"{existing} exist; pass overwrite=True to replace them")
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    codes = _unit_raster(rng)
    return rng, codes, _deposits(rng, codes)
