"""A prospectivity study from a run file: survey -> screening -> evidence layers -> tiles -> models -> map.

    config = load_config("workflows/qinhang.toml", mode="quick")
    inputs = check_inputs(config)          # reads and checks every input before any heavy work
    run(config, inputs, "out/qinhang")      # what ``prospect run`` does after checking the output folder

Outputs in the folder: ``screening.csv`` (Table 2), ``elements/*.tif`` and ``stack.tif``, ``tiles.csv`` and the
first seed's ``tiles_train.npz`` / ``tiles_test.npz``, ``runs/<model>/seed<N>/`` (history, metrics,
weights of the map model), ``experiments.csv`` (every model and seed) and ``tables.csv`` (mean and spread over
seeds beside the paper), ``prospectivity.tif`` (+ ``.qml``), ``uncertainty.tif``, ``targets.gpkg``,
``evaluation.csv``, figures, ``report.md`` and ``report.html``, ``project.qgs`` (every layer styled for QGIS) with
``inputs.gpkg`` and ``layers/`` (categorical bands as integer codes), ``config.json`` (the run as resolved) and
``run.log``.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd

from prospect import geochem, io, layers, screening
from prospect.baselines import BASELINES
from prospect.errors import ColumnError, ConfigError, InputError, OutputExistsError
from prospect.grid import Grid, require_projected
from prospect.io import atomic_output
from prospect.pipeline import experiments as exp
from prospect.pipeline import viewing
from prospect.pipeline.config import RunConfig, select_rows
from prospect.pipeline.heldout import chosen_rows, run_heldout
from prospect.pipeline.values import check_values

__all__ = ["Inputs", "check_inputs", "check_output", "run", "clear_run", "input_files", "RUN_OUTPUTS"]

log = logging.getLogger("prospect.workflow")


@dataclass
class Inputs:
    """Everything a run reads, read once and checked."""

    samples: gpd.GeoDataFrame
    deposits: gpd.GeoDataFrame
    undiscovered: gpd.GeoDataFrame | None
    categorical: list[tuple[gpd.GeoDataFrame, dict[str, Any]]] = field(default_factory=list)
    distance: list[tuple[gpd.GeoDataFrame, dict[str, Any]]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    grid: Grid | None = None
    rasters: list[Any] = field(default_factory=list)      # external rasters on the grid, with derived layers
    mask: Any = None                                      # the study area on the grid, or None


def _split_read(body: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Keys of a layer section that go to read_vector, and those that go to the layer function."""
    reading = {k: body[k] for k in ("path", "crs", "layer") if k in body}
    return reading, {k: v for k, v in body.items() if k not in reading}


def check_inputs(config: RunConfig) -> Inputs:
    """Read the survey, every vector and raster file, and check what the run will ask of them.

    Raises a clear error (naming the config section and key) for a missing file, a column that is not
    there, a geographic CRS, coordinates that cannot be in the declared CRS, a layer that misses the grid
    (a wrong CRS), an element list naming unknown elements, or a map model that is not among the
    experiments — all before any file is written. Geochemical transforms ([transform]), external
    rasters ([[raster]], warped onto the grid here) and the study area ([mask]) are prepared here too.
    """
    check_values(config)     # every value of every section, before a file is read
    reading = dict(config["samples"])
    for section in ("samples", "grid"):
        if config[section].get("crs") is not None:
            require_projected(config[section]["crs"], f"[{section}] crs", "IDW distances and grid cells")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        samples = io.read_samples(reading.pop("path"), **reading)
        if samples.crs is None:
            raise ConfigError("[samples] has no crs and the file carries none; add crs = \"EPSG:...\" (a projected "
                              "CRS in metres, e.g. the UTM zone of the survey)")
        require_projected(samples.crs, "[samples] crs", "IDW distances and grid cells")
        if config["transform"]:
            if config["idw"].get("log"):
                raise ConfigError("[idw] log = true would take the log of [transform]ed values; drop one of them")
            samples = geochem.transform(samples, **config["transform"])
    notes = _notes(caught)
    known = list(samples.attrs["elements"])
    for section in ("screening", "idw"):
        wanted = config[section].get("elements")
        if isinstance(wanted, list):
            missing = [e for e in wanted if e not in known]
            if missing:
                raise ColumnError(f"[{section}] elements: {missing} are not element columns of "
                                  f"{Path(config['samples']['path']).name}"
                                  f"{' after the ' + config['transform']['method'] if config['transform'] else ''}"
                                  f"; valid: {known}")
    grid = planned_grid(config, samples)
    deposits = io.read_vector(**config["deposits"])
    undiscovered = io.read_vector(**config["undiscovered"]) if config["undiscovered"] else None
    for name, frame in (("[deposits]", deposits), ("[undiscovered]", undiscovered)):
        if frame is not None:
            layers.check_overlap(frame.to_crs(grid.crs), grid, f"{name} {Path(config[name[1:-1]]['path']).name}")
    inputs = Inputs(samples, deposits, undiscovered, notes=notes, grid=grid)
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
            target.append((gdf, options))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for body in config["raster"]:
            inputs.rasters += external_layers(body, grid)
        if config["mask"]:
            read, options = _split_read(config["mask"])
            polygons = io.read_vector(**read)
            layers.check_overlap(polygons.to_crs(grid.crs), grid, f"[mask] {Path(read['path']).name}")
            inputs.mask = layers.study_area(polygons, grid, **options)
    inputs.notes += _notes(caught)
    labels = [row["label"] for row in config.models]
    if not labels:
        raise ConfigError("[experiments] lists no models; add at least one [[experiments.models]] row")
    chosen = config["map"].get("model_label", labels[0])
    if chosen not in labels:
        raise ConfigError(f"[map] model_label={chosen!r} is not the label of an experiments row; valid: {labels}")
    evaluated = [row["label"] for row in chosen_rows(config)]
    tiled = [row["label"] for row in select_rows(config, "experiments") if row["name"] not in BASELINES]
    if chosen not in evaluated and chosen not in tiled:
        raise ConfigError(f"[map] model_label={chosen!r} maps with its fold models (held-out stage) or its tile model, "
                          f"but neither stage trains it; add it to [heldout] rows (now {evaluated}) or [experiments] "
                          "rows")
    return inputs


def _notes(caught: list[warnings.WarningMessage]) -> list[str]:
    """What the user should read among caught warnings (not libraries' deprecation notices)."""
    quiet = (DeprecationWarning, PendingDeprecationWarning, FutureWarning)
    return [str(w.message) for w in caught if not issubclass(w.category, quiet)]


def planned_grid(config: RunConfig, samples: gpd.GeoDataFrame) -> Grid:
    """The run's grid: ``[grid]`` with its bounds defaulting to the survey's extent and its CRS to the survey's."""
    options = dict(config["grid"])
    bounds = options.pop("bounds", None)
    if bounds is None:
        bounds = tuple(samples.total_bounds)
    options.setdefault("crs", samples.crs)
    try:
        return Grid.from_bounds(bounds, **options)
    except InputError as exc:
        raise type(exc)(f"[grid] {exc}") from None


def external_layers(body: dict[str, Any], grid: Grid) -> list[Any]:
    """One ``[[raster]]``: the raster warped onto ``grid``, then the layers its ``derive`` asks for."""
    options = {k: v for k, v in body.items() if k not in ("derive", "sigma")}
    raster = layers.from_raster(grid=grid, **options)
    made = [raster]
    for derived in body.get("derive", []):
        for name in raster["band"].values:
            band = raster.sel(band=[name])
            made.append(layers.slope(band) if derived == "slope" else
                        getattr(layers, derived)(band, sigma=body["sigma"]))
    return made


def _save_figure(figure: Any, path: Path) -> None:
    import matplotlib.pyplot as plt

    with atomic_output(path, overwrite=True) as tmp:
        figure.savefig(tmp, dpi=120, format="png")
    plt.close(figure)


def _write_csv(frame: pd.DataFrame, path: Path, **kwargs: Any) -> None:
    with atomic_output(path, overwrite=True) as tmp:
        frame.to_csv(tmp, **{"float_format": "%.4f", **kwargs})


def run(config: RunConfig, inputs: Inputs, out: str | Path, *, overwrite: bool = False,
        resume: bool = False) -> dict[str, Any]:
    """Run every stage into ``out`` (which the caller has checked); returns the numbers of the report."""
    from prospect.pipeline import report

    out = Path(out)
    replace = overwrite or resume
    previous = out / "config.json"
    recorded = json.loads(previous.read_text()).get("bands") if resume and previous.exists() else None
    digests = checksums(config)
    with atomic_output(out / "config.json", overwrite=True) as tmp:
        tmp.write_text(_record(config, digests, **({"bands": recorded} if recorded else {})))
    results: dict[str, Any] = {"timings": {}, "changes": list(config.changes), "notes": list(inputs.notes),
                               "survey": {"samples": len(inputs.samples), "deposits": len(inputs.deposits),
                                          "undiscovered": 0 if inputs.undiscovered is None else
                                          len(inputs.undiscovered)}}
    title = config["report"].get("title", "prospectivity study")
    log.info("%s%s: %s mode, seeds %s", title, " on SYNTHETIC data" if config["report"].get("synthetic") else "",
             config.mode, config.seeds)
    for change in config.changes:
        log.info("  %s", change)
    for note in inputs.notes:
        log.info("note: %s", note)

    # 1 screening ----------------------------------------------------------------------------------------
    started = time.perf_counter()
    table = screening.screen_elements(inputs.samples, inputs.deposits, seed=config.seeds[0], **config["screening"])
    _write_csv(table.drop(columns="note"), out / "screening.csv")
    _save_figure(screening.plot_z(table), out / "screening_z.png")
    _save_figure(screening.plot_roc(table), out / "screening_roc.png")
    wanted = config["idw"].get("elements", "screen")
    elements = table.index[table["selected"]].tolist() if wanted == "screen" else list(wanted)
    if not elements:
        raise ConfigError(f"no element passed the screening (Z_AUC above {table.attrs['critical']:.2f}); name the "
                          "elements in [idw] elements = [...] or relax [screening] alpha")
    results.update(screening=table, elements=elements)
    results["timings"]["1 screening"] = time.perf_counter() - started
    log.info("1 screening: %d ore-related and %d background samples, radius %.0f m; elements %s (%.1f s)",
             table.attrs["n_pos"], table.attrs["n_neg"], table.attrs["radius"], ", ".join(elements),
             results["timings"]["1 screening"])

    # 2 evidence layers ----------------------------------------------------------------------------------
    started = time.perf_counter()
    from prospect import interpolate

    grid = inputs.grid if inputs.grid is not None else planned_grid(config, inputs.samples)
    idw_options = {k: v for k, v in config["idw"].items() if k != "elements"}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rasters = [interpolate.idw(inputs.samples, elements, grid, **idw_options)]
    for note in _notes(caught):
        log.warning("IDW: %s", note)
        results["notes"].append(note)
    interpolate.to_geotiffs(rasters[0], out / "elements", overwrite=replace)
    for gdf, options in inputs.categorical:
        rasters.append(layers.rasterize_categorical(gdf, grid=grid, **options))
    for gdf, options in inputs.distance:
        rasters.append(layers.distance_to(gdf, grid, **options))
    stack = layers.stack(*rasters, *inputs.rasters)
    if inputs.mask is not None:
        stack = layers.apply_mask(stack, inputs.mask)
    bands = [str(b) for b in stack["band"].values]
    if recorded is not None and recorded != bands:
        raise InputError(f"--resume: the stack's bands are now {bands}, the run in {out} was made with {recorded}; "
                         "its models belong to the old stack. Start afresh with --overwrite")
    with atomic_output(out / "config.json", overwrite=True) as tmp:
        tmp.write_text(_record(config, digests, bands=bands))
    valid = float(np.isfinite(stack.values).all(axis=0).mean())
    area = "" if inputs.mask is None else f"; study area {100 * inputs.mask.attrs['area_fraction']:.1f} % of the grid"
    io.write_geotiff(stack, out / "stack.tif", overwrite=replace)
    viewing.write_categorical(stack, out, overwrite=replace)
    results.update(grid=grid, bands=bands, valid_fraction=valid)
    results["timings"]["2 evidence layers"] = time.perf_counter() - started
    log.info("2 evidence layers: %d bands (%s) on a %d x %d grid of %g m -> stack.tif; %.1f %% of the cells hold "
             "every band (IDW up to %s m from a sample%s) (%.1f s)", stack.sizes["band"], ", ".join(results["bands"]),
             *grid.shape, grid.resolution[0], 100 * valid, rasters[0].attrs["max_distance"],
             area, results["timings"]["2 evidence layers"])

    # 3 tiles ---------------------------------------------------------------------------------------------
    started = time.perf_counter()
    from prospect import tiles as tiling

    tiles = tiling.make_tiles(stack, inputs.deposits, **config["tiles"])
    first = exp.prepare_tiles(tiles, config, config.seeds[0])
    first.train.save(out / "tiles_train.npz", overwrite=replace)
    first.test.save(out / "tiles_test.npz", overwrite=replace)
    _write_csv(first.counts, out / "tiles.csv", index=False)
    results.update(tiles=first.counts, tile_size=tiles.size)
    results["timings"]["3 tiles"] = time.perf_counter() - started
    counts = first.counts.set_index(["stage", "side"])
    log.info("3 tiles: %d of %d x %d px (%d ore); seed %d split: train %d (%d ore; %d straddling the test blocks "
             "dropped), test %d (%d ore); after SMOTE + noise the training side holds %d (%d ore); the test side is "
             "untouched (%.1f s)", len(tiles), tiles.size, tiles.size, tiles.counts()["ore"], first.seed,
             *_pair(counts, "split", "train"), first.counts.attrs["dropped_overlap"], *_pair(counts, "split", "test"),
             *_pair(counts, "SMOTE + noise", "train"), results["timings"]["3 tiles"])

    # 4 experiments ---------------------------------------------------------------------------------------
    started = time.perf_counter()
    rows = select_rows(config, "experiments")
    map_label = config["map"].get("model_label", config.models[0]["label"])
    map_row = next(row for row in config.models if row["label"] == map_label)
    fold_mapped = {exp.run_key(row) for row in chosen_rows(config)}   # these map with their fold models
    specs: dict[str, dict[str, Any]] = {}   # rows with the same model train once per seed
    for row in rows:
        if row["name"] not in BASELINES:    # pixel baselines are judged in the held-out stage only
            specs.setdefault(exp.run_key(row), row)
    unique = list(specs)
    keep_all = bool(config["experiments"].get("keep_weights", False))
    records = []
    for seed in config.seeds:
        data = first if seed == first.seed else exp.prepare_tiles(tiles, config, seed)
        for number, key in enumerate(unique, 1):
            keep = keep_all or (key == exp.run_key(map_row) and seed == first.seed and key not in fold_mapped)
            record = exp.train_row(specs[key], data, config, out / "runs" / key / f"seed{seed}", resume=resume,
                                   overwrite=overwrite, keep_weights=keep)
            records.append(record)
            left = len(unique) * len(config.seeds) - len(records)
            trained = sum(not r["read_back"] for r in records)
            pace = (time.perf_counter() - started) / max(trained, 1)
            log.info("4 experiments: seed %d, %d/%d %s: accuracy %.3f, AUC %.3f, recall %.3f, F1 %.3f (%d epochs, "
                     "%.1f s)%s", seed, number, len(unique), key, record["accuracy"], record["auc"], record["recall"],
                     record["f1"], record["epochs"], record["seconds"],
                     f"; {left} runs left, about {_duration(pace * left)} at this pace" if left else "")
    frame = pd.DataFrame(records).drop(columns=["test_labels", "test_scores"], errors="ignore")
    results["resumed"] = int(frame.pop("read_back").sum())
    _write_csv(frame, out / "experiments.csv", index=False, float_format=None)  # as scored: no rounding
    summary = exp.summarise([row for row in rows if row["name"] not in BASELINES], records, seed=config.seeds[0])
    _write_csv(summary, out / "tables.csv", index=False)
    results.update(experiments=frame, tables=summary)
    results["timings"]["4 experiments"] = time.perf_counter() - started
    log.info("4 experiments: %d models x %d seeds trained and scored on the test tiles (%.1f s)", len(unique),
             len(config.seeds), results["timings"]["4 experiments"])

    # 5 held-out deposits ----------------------------------------------------------------------------------
    results["heldout_maps"] = {}
    if fold_mapped:
        started = time.perf_counter()
        results.update(run_heldout(config, inputs, stack, out))
        results["timings"]["5 held-out deposits"] = time.perf_counter() - started
        best = results["heldout"].iloc[0]
        log.info("5 held-out deposits: %s ranks the held-out deposits best, AUC %.3f (95 %% CI %.3f-%.3f) (%.1f s)",
                 best["label"], best["auc"], best["auc_low"], best["auc_high"],
                 results["timings"]["5 held-out deposits"])

    # 6 map -----------------------------------------------------------------------------------------------
    started = time.perf_counter()
    results.update(_map_stage(config, inputs, stack, first, map_row, out, replace, results["heldout_maps"]))
    results["timings"]["6 map"] = time.perf_counter() - started
    evaluation = results["evaluation"]
    log.info("6 map with %s (%s): map AUC %.3f, success-rate AUC %.3f (known deposits: a fit); top %.0f %% of the area "
             "holds %.0f %% of the known deposits%s; %d target areas (%.1f s)", map_label, results["map_source"],
             evaluation["map_auc"], evaluation["success_rate_auc"],
             100 * evaluation["coverage_area_fraction"], 100 * evaluation["coverage"],
             "" if inputs.undiscovered is None else
             f" and {100 * evaluation['undiscovered_coverage']:.0f} % of the undiscovered ones",
             evaluation["targets"], results["timings"]["6 map"])

    # 7 report and QGIS project ----------------------------------------------------------------------------
    viewing.write_inputs(config, inputs, grid, out, results.get("folds"))
    report.write(config, results, out)
    viewing.write_project(config, inputs, out, title)
    log.info("7 report: %s and %s; QGIS project: %s", out / "report.md", out / "report.html", out / "project.qgs")
    return results


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


def _pair(counts: pd.DataFrame, stage: str, side: str) -> tuple[int, int]:
    line = counts.loc[(stage, side)]
    return int(line["ore"] + line["no_ore"]), int(line["ore"])


def _map_stage(config: RunConfig, inputs: Inputs, stack: Any, data: exp.SeedTiles, row: dict[str, Any],
               out: Path, replace: bool, heldout: dict[str, Any]) -> dict[str, Any]:
    """The map: the mean of the map model's fold models when the held-out stage ran it, else its tile model."""
    from prospect import evaluation

    if exp.run_key(row) in heldout:
        result = heldout[exp.run_key(row)]
        prob, spread = result.mean, result.std
        source = f"mean of its {len(result.folds)} fold models"
    else:
        prob, spread = _tile_map(config, stack, data, row, out)
        source = f"its tile model, seed {data.seed}, {prob.attrs.get('windows', 0)} windows"
    io.write_geotiff(prob, out / "prospectivity.tif", overwrite=replace)
    if spread is not None:
        io.write_geotiff(spread, out / "uncertainty.tif", overwrite=replace)
    target_options = {"area_fraction": 0.1, **config["targets"]} if "threshold" not in config["targets"] \
        else dict(config["targets"])
    areas = evaluation.targets(prob, deposits=inputs.deposits, uncertainty=spread, **target_options)
    with atomic_output(out / "targets.gpkg", overwrite=True) as tmp:
        areas.to_file(tmp, driver="GPKG", layer="targets")
    summary = evaluation.evaluate_map(prob, inputs.deposits, **config["evaluation"])
    success = evaluation.success_rate_curve(prob, inputs.deposits)
    prediction = None
    if inputs.undiscovered is not None:
        prediction = evaluation.prediction_rate_curve(prob, inputs.undiscovered)
        hidden = evaluation.deposit_coverage(prob, inputs.undiscovered,
                                             area_fraction=summary["coverage_area_fraction"])
        summary.update(undiscovered_prediction_rate_auc=prediction.attrs["auc"],
                       undiscovered_coverage=hidden["coverage"], undiscovered=hidden["deposits"])
    summary["targets"] = len(areas)
    _write_csv(pd.DataFrame([summary]), out / "evaluation.csv", index=False)
    geology = inputs.categorical[0][0] if inputs.categorical else None
    faults = pd.concat([gdf.to_crs(prob.rio.crs) for gdf, _ in inputs.distance]) if inputs.distance else None
    title = config["report"].get("title", "Prospectivity")
    _save_figure(evaluation.plot_map(prob, inputs.deposits, areas, geology, title=f"{row['label']}: {title}",
                                     faults=faults, undiscovered=inputs.undiscovered), out / "map.png")
    _save_figure(evaluation.plot_rate_curve(*[c for c in (success, prediction) if c is not None]),
                 out / "rate_curves.png")
    _save_figure(evaluation.plot_prediction_area(evaluation.prediction_area(prob, inputs.deposits)),
                 out / "prediction_area.png")
    return {"evaluation": summary, "map_model": row["label"], "map_source": source, "targets": areas,
            "uncertainty": spread.attrs.get("definition", "") if spread is not None else ""}


def _tile_map(config: RunConfig, stack: Any, data: exp.SeedTiles, row: dict[str, Any], out: Path) -> tuple[Any, Any]:
    """Map with the first seed's tile model of ``row`` (and, for MFAF, its branch disagreement)."""
    from safetensors.torch import load_file

    from prospect import mapping

    model = exp.build_model(row, stack.sizes["band"], data.seed)
    model.load_state_dict(load_file(out / "runs" / exp.run_key(row) / f"seed{data.seed}" / "model.safetensors"))
    options = {"size": data.train.size, **{k: v for k, v in config["map"].items() if k != "model_label"}}
    options.setdefault("device", config["trainer"].get("device", "auto"))
    mfaf = row["name"] == "mfaf"
    predicted = mapping.predict_map(model, stack, normalization=data.test.normalization, uncertainty=mfaf, **options)
    return predicted if mfaf else (predicted, None)


# Everything a run writes into its folder (glob patterns); --overwrite clears these and leaves anything else.
RUN_OUTPUTS = ("config.json", "run.log", "report.md", "screening.csv", "screening_*.png", "elements", "stack.tif",
               "tiles.csv", "tiles_train.npz", "tiles_test.npz", "runs", "experiments.csv", "tables.csv",
               "experiments.png", "folds.csv", "heldout.csv", "heldout_deposits.csv", "heldout_rate.png",
               "importance.csv", "prospectivity.tif", "prospectivity.qml", "uncertainty.tif", "uncertainty.qml",
               "targets.gpkg", "evaluation.csv", "map.png", "rate_curves.png", "prediction_area.png", "stack.qml",
               "layers", "inputs.gpkg", "project.qgs", "report.html", "*.tif.aux.xml", ".*.part*")
RESUMABLE = (("trainer", "epochs"),)   # settings a resumed run may change (it trains on, or afresh)


def input_files(config: RunConfig) -> list[Path]:
    """Every file the run reads: the survey, vector layers (a shapefile with its side files) and rasters."""
    files: list[Path] = []
    for name in ("samples", "deposits", "undiscovered", "categorical", "distance", "raster", "mask"):
        for body in config[name] if isinstance(config[name], list) else [config[name]]:
            path = body.get("path", body.get("source"))
            if not isinstance(path, str):
                continue
            path = Path(path)
            sides = sorted(path.parent.glob(f"{path.stem}.*")) if path.suffix.lower() == ".shp" else [path]
            files += [side for side in sides if side.is_file() and side not in files]
    return files


def checksums(config: RunConfig) -> dict[str, str]:
    """SHA-256 of every input file, by path (recorded in ``config.json`` so ``--resume`` can tell an edit)."""
    import hashlib

    digests = {}
    for path in input_files(config):
        digest = hashlib.sha256()
        with path.open("rb") as handle:     # in 1 MiB blocks (hashlib.file_digest needs Python 3.11)
            for block in iter(lambda: handle.read(2**20), b""):   # noqa: B023 (used at once, in this loop)
                digest.update(block)
        digests[str(path)] = digest.hexdigest()
    return digests


def _record(config: RunConfig, digests: dict[str, str], **extra: Any) -> str:
    """``config.json``: the run as resolved (mode, sections), its inputs' checksums and what ``extra`` adds."""
    return json.dumps({**json.loads(config.as_json()), "inputs": digests, **extra}, indent=2, sort_keys=True,
                      default=str)


def writable_folder(out: Path) -> str | None:
    """Why ``out`` cannot be (made into) a folder this process writes to, or None."""
    probe = out
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        return f"--out {out}: {probe} is a file, not a folder; choose a folder"
    try:
        with tempfile.TemporaryFile(dir=probe):
            pass
    except OSError as exc:
        return f"--out {out}: cannot write in {probe} ({exc.strerror or exc}); choose a folder you can write to"
    return None


def check_output(config: RunConfig, out: str | Path, *, overwrite: bool = False, resume: bool = False) -> None:
    """Refuse an ``out`` that cannot take this run; with ``resume``, require the run in it to be this one.

    ``out`` must be a folder this process can write to (or be creatable); a non-empty one needs
    ``overwrite``. A run records itself in ``out/config.json``: the file after the mode's and the
    command line's changes, and the SHA-256 of every input file. ``resume`` refuses other settings
    (except ``[trainer] epochs``: a resumed run may train longer or shorter) and an input file that
    changed since, naming it. Nothing is read but ``config.json`` and the input files' bytes.
    """
    from prospect._workflow import output_problem

    out = Path(out)
    problem = writable_folder(out)
    if problem:
        raise InputError(problem)
    if not resume:
        problem = output_problem(out, overwrite)
        if problem:
            raise OutputExistsError(f"{problem}, or pass --resume to continue the run in it")
        return
    previous = out / "config.json"
    if not previous.exists():
        raise InputError(f"--resume: {out} holds no run to resume (no config.json); start it without --resume")
    before, now = json.loads(previous.read_text()), json.loads(config.as_json())
    for section, key in RESUMABLE:
        for record in (before, now):
            record["sections"].get(section, {}).pop(key, None)
    changed = (["mode"] if before["mode"] != now["mode"] else []) + sorted(
        name for name in set(before["sections"]) | set(now["sections"])
        if before["sections"].get(name) != now["sections"].get(name))
    if changed:
        raise InputError(f"--resume: the run in {out} was made with other settings ({', '.join(changed)} differ); "
                         "resume with the same config, mode and options (only --epochs may change), or start afresh")
    recorded, current = before.get("inputs", {}), checksums(config)
    edited = sorted(Path(p).name for p in set(recorded) | set(current) if recorded.get(p) != current.get(p))
    if edited:
        raise InputError(f"--resume: input file(s) {edited} changed since the run in {out} started (their SHA-256 "
                         "differs from config.json): its models and tables belong to the old inputs. Start afresh "
                         "with --overwrite")


def clear_run(out: Path) -> list[str]:
    """Remove what a previous run wrote in ``out`` (:data:`RUN_OUTPUTS`), so the folder holds one run.

    Only a folder holding a run (its ``config.json``) is cleared; anything else in it is left and
    returned (by name), for the log.
    """
    import shutil

    if not (out / "config.json").is_file():
        return []
    kept = []
    for entry in sorted(out.iterdir()):
        if not any(entry.match(pattern) for pattern in RUN_OUTPUTS):
            kept.append(entry.name)
        elif entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    return kept
