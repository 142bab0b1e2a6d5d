"""What a run reads, read once and checked before anything is written: the survey, vectors, rasters, the grid.

    config = load_config("workflows/qinhang.toml", mode="quick")
    inputs = check_inputs(config)      # every value and input file, every refusal a stage would make of them
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
from pyproj.transformer import Transformer

from prospect import geochem, io, layers
from prospect.errors import ColumnError, ConfigError, InputError
from prospect.grid import Grid, as_crs, require_projected
from prospect.pipeline.config import RunConfig, chosen_rows, ensemble_rows, heldout_folds, map_row, tile_rows
from prospect.pipeline.values import check_values

__all__ = ["Inputs", "check_inputs", "planned_grid", "external_layers", "user_notes", "point_names"]


@dataclass
class Inputs:
    """Everything a run reads, read once and checked."""

    samples: gpd.GeoDataFrame | None                    # None: a run on rasters and vector layers alone
    deposits: gpd.GeoDataFrame
    undiscovered: gpd.GeoDataFrame | None
    categorical: list[tuple[gpd.GeoDataFrame, dict[str, Any]]] = field(default_factory=list)
    distance: list[tuple[gpd.GeoDataFrame, dict[str, Any]]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    grid: Grid | None = None
    rasters: list[Any] = field(default_factory=list)      # external rasters on the grid, with derived layers
    mask: Any = None                                      # the study area on the grid, or None
    screening: Any = None                                 # the screening table (stage 1 reuses it)
    elements: list[str] = field(default_factory=list)     # the elements IDW will interpolate


def _split_read(body: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Keys of a layer section that go to read_vector, and those that go to the layer function."""
    reading = {k: body[k] for k in ("path", "crs", "layer") if k in body}
    return reading, {k: v for k, v in body.items() if k not in reading}


def check_inputs(config: RunConfig) -> Inputs:
    """Read the survey, every vector and raster file, and check what the run will ask of them.

    Raises a clear error (naming the config section and key) for a missing file, a column that is not
    there, a geographic CRS, coordinates that cannot be in the declared CRS, a layer that misses the grid
    (a wrong CRS), an element list naming unknown elements, a run with no evidence at all, or a map model
    that is not among the experiments — all before any file is written. Geochemical transforms
    ([transform]), external rasters ([[raster]], warped onto the grid here) and the study area ([mask])
    are prepared here too. Deposits off the grid are counted and named in the notes.
    """
    check_values(config)     # every value of every section, before a file is read
    _check_engine(config)
    for section in ("samples", "grid"):
        if config[section].get("crs") is not None:
            require_projected(config[section]["crs"], f"[{section}] crs", "IDW distances and grid cells")
    if not (config["samples"] or config["raster"] or config["categorical"] or config["distance"]):
        raise ConfigError("no evidence: give a survey ([samples]) or at least one [[raster]], [[categorical]] or "
                          "[[distance]] layer")
    samples, notes = _read_survey(config)
    grid = planned_grid(config, samples)
    require_projected(grid.crs, "[grid] crs", "fold blocks, distances and grid cells")
    inputs = Inputs(samples, _read_points(config, "deposits", grid, notes), None, notes=notes, grid=grid)
    if config["undiscovered"]:
        inputs.undiscovered = _read_points(config, "undiscovered", grid, notes)
    for section, target in (("categorical", inputs.categorical), ("distance", inputs.distance)):
        for number, body in enumerate(config[section], 1):
            read, options = _split_read(body)
            gdf = io.read_vector(**read)
            label = f"[[{section}]] #{number} {Path(read['path']).name}"
            if section == "categorical" and options.get("field") not in gdf.columns:
                columns = [c for c in gdf.columns if c != gdf.geometry.name]
                raise ColumnError(f"[[categorical]] #{number}: field={options.get('field')!r} is not a column of "
                                  f"{Path(read['path']).name}; valid: {columns}")
            extent = max(grid.bounds[2] - grid.bounds[0], grid.bounds[3] - grid.bounds[1])
            layers.check_overlap(gdf.to_crs(grid.crs), grid, label, reach=extent if section == "distance" else 0.0)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                layers.check_polygons(gdf.to_crs(grid.crs), grid, label, section, options.get("field"))
            inputs.notes += user_notes(caught)
            target.append((gdf, options))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for number, body in enumerate(config["raster"], 1):
            try:
                inputs.rasters += external_layers(body, grid, config["compute"].get("chunks"))
            except InputError as exc:    # name the table: the message names the file and the argument
                raise type(exc)(f"[[raster]] #{number}: {exc}") from exc
        if config["mask"]:
            read, options = _split_read(config["mask"])
            polygons = io.read_vector(**read)
            layers.check_overlap(polygons.to_crs(grid.crs), grid, f"[mask] {Path(read['path']).name}")
            inputs.mask = layers.study_area(polygons, grid, chunks=config["compute"].get("chunks"), **options)
    inputs.notes += user_notes(caught)
    _check_sizes(config, grid)
    if samples is not None:
        _check_survey(config, inputs, grid)
    _check_names(config, inputs)
    if chosen_rows(config):   # the held-out folds need only the grid and the deposits: refused here, not at stage 5
        split = heldout_folds(config, grid, inputs.deposits)
        inputs.notes.append(f"held-out folds: {split.k} of {split.block_size:.0f} m blocks ({split.block_why}), "
                            f"deposits per fold {split.counts()['deposits'].tolist()}; deposits within "
                            f"{split.link:.0f} m of one another dealt together ({split.why})")
    ensemble_rows(config)   # the [heldout] ensemble's rows: a network and a baseline among the held-out rows
    map_row(config)     # the map model: a row that one of the stages trains
    return inputs


def _check_engine(config: RunConfig) -> None:
    """``[compute]``: its values together, and no tile-table row with a lazy stack (the paper's tiles are cut from
    a stack in memory; held-out rows, networks included, work block by block)."""
    from prospect import compute

    try:
        engine = compute.engine(**config["compute"])
    except InputError as exc:
        raise ConfigError(f"[compute] {exc}") from None
    if not engine.lazy:
        return
    engine.bound_gdal_cache()     # before the first raster is read
    tiled = sorted({row["label"] for row in tile_rows(config)})
    if tiled:
        raise ConfigError(f"[compute] chunks={engine.chunks}: the rows {tiled} train on the paper's tiles "
                          "([experiments] rows), cut from a stack held in memory; judge them held out instead "
                          "([heldout] rows, block by block), or drop chunks to hold the stack in memory")


def _check_sizes(config: RunConfig, grid: Grid) -> None:
    """Tiles and held-out windows that fit the grid (stages 3 and 5 need them)."""
    import inspect

    from prospect import registry, validation

    rows, cols = grid.shape
    size = int(config["tiles"].get("size", 128))
    if tile_rows(config) and size > min(rows, cols):
        raise ConfigError(f"[tiles] size={size} is larger than the grid ({rows} x {cols} cells); valid: at most "
                          f"{min(rows, cols)}, or a finer [grid] resolution")
    networks = [row for row in chosen_rows(config) if registry.get(row["name"]).kind == "network"]
    if networks:
        defaults = inspect.signature(validation.cross_validate).parameters
        window = config["heldout"].get("window")
        if window is None:    # cross_validate's own rule
            radius = config["heldout"].get("positive_radius", defaults["positive_radius"].default)
            window = max(validation.default_window(radius, grid, registry.get(row["name"]).window) for row in networks)
            key = f"the window made from [heldout] positive_radius={radius:g}"
        else:
            key = f"[heldout] window={window}"
        if window > min(rows, cols):
            raise ConfigError(f"{key} is larger than the grid ({rows} x {cols} cells), so no network row "
                              f"({', '.join(r['label'] for r in networks)}) could cut one; valid: at most "
                              f"{min(rows, cols)} cells")


def screened(config: RunConfig, inputs: Inputs) -> tuple[Any, list[str]]:
    """The screening table (the one ``check`` made, when it did) and the elements IDW gets from it or
    ``[idw] elements``; none at all is refused."""
    from prospect import screening

    table = inputs.screening if inputs.screening is not None else \
        screening.screen_elements(inputs.samples, inputs.deposits, seed=config.seeds[0], **config["screening"])
    wanted = config["idw"].get("elements", "screen")
    elements = table.index[table["selected"]].tolist() if wanted == "screen" else list(wanted)
    if not elements:
        raise ConfigError(f"no element passed the screening (Z_AUC above {table.attrs['critical']:.2f}); name the "
                          "elements in [idw] elements = [...] or relax [screening] alpha")
    return table, elements


def _check_survey(config: RunConfig, inputs: Inputs, grid: Grid) -> None:
    """Screening (reused by stage 1), then what IDW will refuse or make useless, for the elements it will get."""
    from scipy.spatial import cKDTree

    from prospect import interpolate

    table, elements = screened(config, inputs)
    wanted = config["idw"].get("elements", "screen")
    values = inputs.samples[elements]
    constant = [e for e in elements if values[e].nunique(dropna=True) < 2]
    if constant:
        raise ConfigError(f"[idw] elements: {constant} hold one value in every sample (all below detection?), a band "
                          f"with nothing to learn; leave them out of [idw] elements"
                          + (" (screening selected them)" if wanted == "screen" else ""))
    options = {k: v for k, v in config["idw"].items() if k in ("power", "k", "radius", "min_points", "log",
                                                                  "max_distance")}
    try:
        problem = interpolate._prepare(inputs.samples, elements, grid, options.get("power", 2), options.get("k"),
                                       options.get("radius"), options.get("min_points", 1), options.get("log", False),
                                       "cpu", 2**19, options.get("max_distance", "auto"))
    except InputError as exc:
        raise type(exc)(f"[idw]: {exc}") from exc
    reach = min(r for r in (problem.radius, problem.max_distance) if r is not None and np.isfinite(r)) \
        if any(r is not None and np.isfinite(r) for r in (problem.radius, problem.max_distance)) else None
    if reach is not None:   # the cells IDW will fill: min_points samples within reach of the cell centre
        gx, gy = np.meshgrid(grid.x, grid.y)
        step = max(1, int(np.ceil(np.sqrt(gx.size / 250_000))))    # a lattice of at most ~250,000 centres
        centres = np.column_stack([gx[::step, ::step].ravel(), gy[::step, ::step].ravel()])
        kth = cKDTree(problem.xy).query(centres, k=[int(options.get("min_points", 1))], distance_upper_bound=reach)[0]
        filled = float(np.isfinite(kth).mean())
        if filled < 0.01:
            raise ConfigError(f"[idw] radius={problem.radius}, max_distance={problem.max_distance}: only "
                              f"{100 * filled:.2f} % of the grid lies within that of {options.get('min_points', 1)} "
                              f"sample(s), so the element rasters would be almost all nodata; valid: a distance "
                              f"near the sample spacing ({problem.spacing:.4g} CRS units, the median), or none")
    inputs.screening, inputs.elements = table, elements


def _check_names(config: RunConfig, inputs: Inputs) -> None:
    """Band names the stack would hold twice (stage 2 refuses them)."""
    names: dict[str, list[str]] = {}
    for element in inputs.elements:
        names.setdefault(element, []).append("[samples]/[idw] element")
    for number, (gdf, options) in enumerate(inputs.categorical, 1):
        if options.get("one_hot"):
            bands = [f"{options['field']}={v}" for v in sorted(gdf[options["field"]].dropna().unique(), key=str)]
        else:
            bands = [options["field"]]
        for band in bands:
            names.setdefault(str(band), []).append(f"[[categorical]] #{number}")
    for number, (_, options) in enumerate(inputs.distance, 1):
        names.setdefault(str(options.get("name", "distance")), []).append(f"[[distance]] #{number}")
    for layer in inputs.rasters:
        for band in layer["band"].values:
            names.setdefault(str(band), []).append(f"[[raster]] {layer.attrs.get('source', '')}".strip())
    twice = {name: where for name, where in names.items() if len(where) > 1}
    if twice:
        shown = "; ".join(f"{name!r} from {' and '.join(where)}" for name, where in twice.items())
        raise ConfigError(f"band names the stack would hold twice: {shown}; give one of each a name = \"...\" "
                          "(or rename the element)")
    _check_fuzzy(config, list(names))


def _check_fuzzy(config: RunConfig, bands: list[str]) -> None:
    """A fuzzy overlay's memberships name bands of the stack and are valid functions of them, and weights of
    evidence's breaks name bands (stage 5 scores both)."""
    from prospect.fuzzy import FuzzyOverlay
    from prospect.wofe import WeightsOfEvidence

    for row in chosen_rows(config):
        if row["name"] == "weights_of_evidence" and "breaks" in row:
            try:
                WeightsOfEvidence(breaks=row["breaks"], bands=bands)._given_breaks(len(bands))
            except (InputError, TypeError, ValueError, AttributeError) as error:
                raise ConfigError(f"[[experiments.models]] {row['label']!r} (weights_of_evidence): {error}") from None
        if row["name"] != "fuzzy_overlay":
            continue
        options = {k: v for k, v in row.items() if k in ("memberships", "how", "gamma")}
        try:
            probe = np.ones((1, len(bands)))
            FuzzyOverlay(**options, bands=bands).fit(probe).predict_proba(probe)
        except (InputError, TypeError, ValueError) as error:
            raise ConfigError(f"[[experiments.models]] {row['label']!r} (fuzzy_overlay): {error}") from None


def _read_survey(config: RunConfig) -> tuple[gpd.GeoDataFrame | None, list[str]]:
    """The survey of ``[samples]`` (transformed as ``[transform]`` asks) and what reading it noted; None without one."""
    if not config["samples"]:
        return None, []
    reading = dict(config["samples"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            samples = io.read_samples(reading.pop("path"), **reading)
        except InputError as exc:    # name the section: the message names the file and the key
            raise type(exc)(f"[samples] {exc}") from exc
        if samples.crs is None:
            raise ConfigError("[samples] has no crs and the file carries none; add crs = \"EPSG:...\" (a projected "
                              "CRS in metres, e.g. the UTM zone of the survey)")
        require_projected(samples.crs, "[samples] crs", "IDW distances and grid cells")
        if config["transform"]:
            if config["idw"].get("log"):
                raise ConfigError("[idw] log = true would take the log of [transform]ed values; drop one of them")
            samples = geochem.transform(samples, **config["transform"])
    known = list(samples.attrs["elements"])
    for section in ("screening", "idw"):
        wanted = config[section].get("elements")
        if isinstance(wanted, list):
            missing = [e for e in wanted if e not in known]
            blank = [e for e in missing if e in samples.attrs.get("blank_columns", [])]
            if blank:
                raise ColumnError(f"[{section}] elements: {blank} are columns of "
                                  f"{Path(config['samples']['path']).name} but every cell of them is blank: no value "
                                  "to screen or interpolate; leave them out")
            if missing:
                raise ColumnError(f"[{section}] elements: {missing} are not element columns of "
                                  f"{Path(config['samples']['path']).name}"
                                  f"{' after the ' + config['transform']['method'] if config['transform'] else ''}"
                                  f"; valid: {known}")
    return samples, user_notes(caught)


def _read_points(config: RunConfig, section: str, grid: Grid, notes: list[str]) -> gpd.GeoDataFrame:
    """``[deposits]`` or ``[undiscovered]`` in any form (:func:`prospect.io.read_deposits`); those off the grid
    are counted and named in ``notes`` (none on the grid is an error: almost always a wrong CRS)."""
    body = config[section]
    frame = io.read_deposits(**body)
    label = f"[{section}] {Path(body['path']).name}"
    layers.check_overlap(frame.to_crs(grid.crs), grid, label)
    _, _, inside = layers.deposit_pixels(frame, grid)
    if not inside.all():
        notes.append(f"{label}: {int((~inside).sum())} of {len(frame)} lie off the grid and are not used: "
                     f"{point_names(frame, np.flatnonzero(~inside))}")
    return frame


def point_names(frame: gpd.GeoDataFrame, positions: np.ndarray, shown: int = 12) -> str:
    """The points at ``positions`` by their name column (the first whose name holds "name"), else ``#index``."""
    columns = [c for c in frame.columns if "name" in str(c).lower() and c != frame.geometry.name]
    names = frame.iloc[positions][columns[0]].astype(str).tolist() if columns else \
        [f"#{i}" for i in frame.index[positions]]
    return ", ".join(names[:shown]) + (" ..." if len(names) > shown else "")


def user_notes(caught: list[warnings.WarningMessage]) -> list[str]:
    """What the user should read among caught warnings (not libraries' deprecation notices)."""
    quiet = (DeprecationWarning, PendingDeprecationWarning, FutureWarning)
    return [str(w.message) for w in caught if not issubclass(w.category, quiet)]


def planned_grid(config: RunConfig, samples: gpd.GeoDataFrame | None) -> Grid:
    """The run's grid from ``[grid]``.

    ``like`` takes a raster's cells exactly. Otherwise ``bounds`` default to the survey's extent (without a
    survey: the first ``[[raster]]``'s, in the grid's CRS), ``crs`` to the survey's (else that raster's),
    and without a survey a grid given neither ``shape`` nor ``resolution`` takes that raster's cell size.
    """
    options = dict(config["grid"])
    like = options.pop("like", None)
    try:
        if like is not None:
            others = sorted(set(options) - {"crs"} | ({"crs"} if options.get("crs") is not None else set()))
            if others:
                raise ConfigError(f"like={like!r} gives the whole grid; drop {others} (or drop like)")
            return Grid.like(like)
        bounds = options.pop("bounds", None)
        if samples is not None:
            options.setdefault("crs", samples.crs)
            return Grid.from_bounds(tuple(samples.total_bounds) if bounds is None else bounds, **options)
        if not config["raster"]:
            if bounds is None or options.get("crs") is None:
                raise ConfigError("without [samples] or [[raster]], [grid] needs bounds, crs and shape or resolution "
                                  "(or like = a raster)")
            return Grid.from_bounds(bounds, **options)
        reference = Grid.like(config["raster"][0]["source"])
        crs = as_crs(options.setdefault("crs", reference.crs))
        if bounds is None:
            bounds = reference.bounds if crs == reference.crs else Transformer.from_crs(
                reference.crs, crs, always_xy=True).transform_bounds(*reference.bounds, densify_pts=21)
        if "shape" not in options and "resolution" not in options:
            if crs != reference.crs:
                raise ConfigError("[grid] needs shape or resolution: the first [[raster]] is in another CRS")
            options["resolution"] = reference.resolution
        return Grid.from_bounds(bounds, **options)
    except InputError as exc:
        if str(exc).startswith("[grid]"):
            raise
        raise type(exc)(f"[grid] {exc}") from None


def external_layers(body: dict[str, Any], grid: Grid, chunks: int | None = None) -> list[Any]:
    """One ``[[raster]]``: the raster warped onto ``grid`` (lazily, in blocks of ``chunks``), then the layers its
    ``derive`` asks for."""
    options = {k: v for k, v in body.items() if k not in ("derive", "sigma")}
    raster = layers.from_raster(grid=grid, chunks=chunks, **options)
    made = [raster]
    for derived in body.get("derive", []):
        for name in raster["band"].values:
            band = raster.sel(band=[name])
            made.append(layers.slope(band) if derived == "slope" else
                        getattr(layers, derived)(band, sigma=body["sigma"]))
    return made
