"""The stages of a prospectivity run, each a function of one shape: ``stage(study) -> (results, summary)``.

A :class:`Study` carries what every stage may read: the checked config and inputs, the run folder (which
writes and records every file), the stack and tiles once made, and the results so far. A stage returns the
results it adds and its one-line summary, which follows the stage's name in the log (None when the stage had
nothing to do); :func:`prospect.pipeline.run`
times and logs each stage, so no stage keeps its own clock.

    1 screening -> 2 evidence layers -> 3 tiles -> 4 experiments -> 5 held-out deposits -> 6 map -> 7 report
"""

from __future__ import annotations

import logging
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from prospect import compute, io, layers, registry, screening
from prospect.errors import InputError
from prospect.pipeline import experiments as exp
from prospect.pipeline import viewing
from prospect.pipeline.config import (
    RunConfig,
    best_heldout_row,
    chosen_rows,
    map_row,
    run_key,
    tile_rows,
    top_heldout_rows,
)
from prospect.pipeline.inputs import Inputs, planned_grid, point_names, screened, user_notes
from prospect.pipeline.runfolder import RunFolder

__all__ = ["Study", "screen", "evidence", "tiles", "experiments", "map_", "report"]

log = logging.getLogger("prospect.workflow")
Results = tuple[dict[str, Any], "str | None"]


@dataclass
class Study:
    """One run: its config and inputs, its folder, what the stages made so far and the results of each."""

    config: RunConfig
    inputs: Inputs
    folder: RunFolder
    results: dict[str, Any] = field(default_factory=dict)
    stack: Any = None                    # the evidence stack (band, y, x), from stage 2
    tiles: Any = None                    # every tile, from stage 3
    first: exp.SeedTiles | None = None   # the first seed's split, balanced and standardised tiles

    @property
    def map_row(self) -> dict[str, Any] | None:
        """The experiment row whose model maps (:func:`~prospect.pipeline.config.map_row`); when ``[map]`` names
        none, the held-out stage's best row once it has run (None before)."""
        named = map_row(self.config)
        if named is None and "heldout" in self.results:
            return best_heldout_row(self.config, self.results["heldout"])[0]
        return named


def screen(study: Study) -> Results:
    """Stage 1: AUC, S_AUC and Z_AUC of every element (the paper's Table 2) and the elements to interpolate."""
    config, inputs, folder = study.config, study.inputs, study.folder
    if inputs.samples is None:
        return {"elements": [], "skipped": ["screening and IDW: no survey ([samples])"]}, \
            ": skipped - no survey ([samples]), so no element to screen or interpolate"
    table, elements = screened(config, inputs)     # check_inputs screened already: the same table
    folder.csv(table.drop(columns="note"), "screening.csv")
    folder.figure(screening.plot_z(table), "screening_z.png")
    folder.figure(screening.plot_roc(table), "screening_roc.png")
    return {"screening": table, "elements": elements}, (
        f": {table.attrs['n_pos']} ore-related and {table.attrs['n_neg']} background samples, radius "
        f"{table.attrs['radius']:.0f} m; elements {', '.join(elements)}")


def evidence(study: Study) -> Results:
    """Stage 2: IDW of the elements, the categorical, distance and raster layers, the mask -> ``stack.tif``."""
    from prospect import interpolate

    config, inputs, folder = study.config, study.inputs, study.folder
    grid = inputs.grid if inputs.grid is not None else planned_grid(config, inputs.samples)
    idw_options = {k: v for k, v in config["idw"].items() if k != "elements"}
    notes, rasters, reach = [], [], ""
    chunks = config["compute"].get("chunks")
    if study.results["elements"]:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            rasters = [interpolate.idw(inputs.samples, study.results["elements"], grid, **idw_options)
                       if chunks is None else       # strips of rows, computed as each block is written or read
                       interpolate.idw_lazy(inputs.samples, study.results["elements"], grid, rows_per_block=chunks,
                                            **idw_options)]
        for note in user_notes(caught):
            log.warning("IDW: %s", note)
            notes.append(note)
        io.write_bands(rasters[0], folder / "elements", overwrite=folder.replace)
        reach = f"IDW up to {rasters[0].attrs['max_distance']} m from a sample"
    for gdf, options in inputs.categorical:     # with chunks: strips rasterised and measured as they are needed
        rasters.append(layers.rasterize_categorical(gdf, grid=grid, chunks=chunks, **options))
    for gdf, options in inputs.distance:
        rasters.append(layers.distance_to(gdf, grid, chunks=chunks, **options))
    stack = layers.stack(*rasters, *inputs.rasters)
    if inputs.mask is not None:
        stack = layers.apply_mask(stack, inputs.mask)
    bands = [str(b) for b in stack["band"].values]
    recorded = folder.previous.get("bands") if folder.resume else None
    if recorded and recorded != bands:
        raise InputError(f"--resume: the stack's bands are now {bands}, the run in {folder.root} was made with "
                         f"{recorded}; its models belong to the old stack. Start afresh with --overwrite")
    folder.note(bands=bands)
    every = compute.valid_cells(stack)
    valid = float(every.mean())
    used = 0     # the deposits that label, fold and judge the models
    for section, frame in (("deposits", inputs.deposits), ("undiscovered", inputs.undiscovered)):
        if frame is None:
            continue
        row, col, inside = layers.deposit_pixels(frame, grid)
        lost = np.flatnonzero(inside)[~every[row[inside], col[inside]]]
        used = int(inside.sum() - len(lost)) if section == "deposits" else used
        if len(lost):
            note = (f"[{section}]: {len(lost)} of {len(frame)} lie on cells where a band has no value (nodata), so no "
                    f"model sees them there: {point_names(frame, lost)}")
            log.warning("%s", note)
            notes.append(note)
    area = "" if inputs.mask is None else f"study area {100 * inputs.mask.attrs['area_fraction']:.1f} % of the grid"
    folder.geotiff(stack, "stack.tif")
    viewing.write_categorical(stack, folder, overwrite=folder.replace)
    study.stack = stack
    return {"grid": grid, "bands": bands, "valid_fraction": valid, "notes": study.results["notes"] + notes,
            "survey": {**study.results["survey"], "deposits_used": used}}, (
        f": {stack.sizes['band']} bands ({', '.join(bands)}) on a {grid.shape[0]} x {grid.shape[1]} grid of "
        f"{grid.resolution[0]:g} m -> stack.tif; {100 * valid:.1f} % of the cells hold every band"
        + (f" ({'; '.join(part for part in (reach, area) if part)})" if reach or area else ""))


def tiles(study: Study) -> Results:
    """Stage 3: sliding-window tiles; the first seed's split, standardisation, SMOTE and noise (training side)."""
    from prospect import tiles as tiling

    config, folder = study.config, study.folder
    if not tile_rows(config):
        return {"skipped": study.results.get("skipped", []) + ["the paper's tile tables: no [experiments] row "
                                                               "trains on tiles"]}, \
            ": skipped - no [experiments] row trains on tiles (the paper's Tables 3-7)"
    study.tiles = every = tiling.make_tiles(study.stack, study.inputs.deposits, **config["tiles"])
    study.first = first = exp.prepare_tiles(every, config, config.seeds[0])
    io.write_tiles(first.train, folder / "tiles_train.npz", overwrite=folder.replace)
    io.write_tiles(first.test, folder / "tiles_test.npz", overwrite=folder.replace)
    folder.csv(first.counts, "tiles.csv", index=False)
    counts = first.counts.set_index(["stage", "side"])

    def pair(stage: str, side: str) -> str:
        line = counts.loc[(stage, side)]
        return f"{int(line['ore'] + line['no_ore'])} ({int(line['ore'])} ore"

    return {"tiles": first.counts, "tile_size": every.size}, (
        f": {len(every)} of {every.size} x {every.size} px ({every.counts()['ore']} ore); seed {first.seed} split: "
        f"train {pair('split', 'train')}; {first.counts.attrs['dropped_overlap']} straddling the test blocks "
        f"dropped), test {pair('split', 'test')}); after SMOTE + noise the training side holds "
        f"{pair('SMOTE + noise', 'train')}); the test side is untouched")


def experiments(study: Study) -> Results:
    """Stage 4: every network row trained on each seed's tiles and scored on the test tiles (Tables 3-7)."""
    config, folder = study.config, study.folder
    started = time.perf_counter()
    rows = tile_rows(config)
    if not rows:
        return {}, None      # stage 3 said why
    fold_mapped = {run_key(row) for row in chosen_rows(config)}   # these map with their fold models
    specs: dict[str, dict[str, Any]] = {}   # rows with the same model train once per seed
    for row in rows:
        specs.setdefault(run_key(row), row)
    unique = list(specs)
    keep_all = bool(config["experiments"].get("keep_weights", False))
    map_key = run_key(study.map_row) if study.map_row is not None else None   # None: the best held-out row maps
    records = []
    for seed in config.seeds:
        data = study.first if seed == study.first.seed else exp.prepare_tiles(study.tiles, config, seed)
        for number, key in enumerate(unique, 1):
            keep = keep_all or (key == map_key and seed == study.first.seed and key not in fold_mapped)
            record = exp.train_row(specs[key], data, config, folder / "runs" / key / f"seed{seed}",
                                   resume=folder.resume, overwrite=folder.overwrite, keep_weights=keep)
            records.append(record)
            left = len(unique) * len(config.seeds) - len(records)
            trained = sum(not r["read_back"] for r in records)
            pace = (time.perf_counter() - started) / max(trained, 1)
            log.info("4 experiments: seed %d, %d/%d %s: accuracy %.3f, AUC %.3f, recall %.3f, F1 %.3f (%d epochs, "
                     "%.1f s)%s", seed, number, len(unique), key, record["accuracy"], record["auc"], record["recall"],
                     record["f1"], record["epochs"], record["seconds"],
                     f"; {left} runs left, about {_duration(pace * left)} at this pace" if left else "")
    frame = pd.DataFrame(records).drop(columns=["test_labels", "test_scores"], errors="ignore")
    resumed = int(frame.pop("read_back").sum())
    folder.csv(frame, "experiments.csv", index=False, float_format=None)  # as scored: no rounding
    summary = exp.summarise(rows, records, seed=config.seeds[0])
    folder.csv(summary, "tables.csv", index=False)
    return {"experiments": frame, "tables": summary, "resumed": resumed}, (
        f": {len(unique)} models x {len(config.seeds)} seeds trained and scored on the test tiles")


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


def map_(study: Study) -> Results:
    """Stage 6: the map (the map model's fold-mean when the held-out stage ran it, else its tile model),
    its uncertainty, target areas, the map's evaluation and figures."""
    from prospect import evaluation

    config, inputs, folder, row = study.config, study.inputs, study.folder, study.map_row
    heldout = study.results["heldout_maps"]
    why = "named in [map] model_label" if "model_label" in config["map"] else \
        best_heldout_row(config, study.results["heldout"])[1] if "heldout" in study.results else \
        "the first experiment row (no held-out stage ran to choose by)"
    if run_key(row) in heldout:
        result = heldout[run_key(row)]
        prob, spread = result.mean, result.std
        source = f"mean of its {len(result.folds)} fold {'ensembles' if row['name'] == 'ensemble' else 'models'}"
    else:
        prob, spread = _tile_map(study, row)
        source = f"its tile model, seed {study.first.seed}, {prob.attrs.get('windows', 0)} windows"
    cog = compute.is_lazy(prob)     # a map worked block by block goes out as a Cloud Optimized GeoTIFF ...
    written = folder.geotiff(prob, "prospectivity.tif", cog=cog)
    prob = _reread(prob, written) if cog else prob
    if spread is not None:
        written = folder.geotiff(spread, "uncertainty.tif", cog=cog)
        spread = _reread(spread, written) if cog else spread
    target_options = {"area_fraction": 0.1, **config["targets"]} if "threshold" not in config["targets"] \
        else dict(config["targets"])
    agreement = _consensus(study, target_options.get("area_fraction") or 0.1)
    if agreement is not None:
        folder.geotiff(agreement, "consensus.tif")
    shares = _contributions(study, heldout.get(run_key(row)))
    if shares is not None:
        folder.geotiff(shares, "contributions.tif")
    areas = evaluation.targets(prob, deposits=inputs.deposits, uncertainty=spread, agreement=agreement,
                               contributions=shares, **target_options)
    folder.vectors({"targets": areas}, "targets.gpkg")
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
    folder.csv(pd.DataFrame([summary]), "evaluation.csv", index=False)
    geology = inputs.categorical[0][0] if inputs.categorical else None
    faults = pd.concat([gdf.to_crs(prob.rio.crs) for gdf, _ in inputs.distance]) if inputs.distance else None
    title = config["report"].get("title", "Prospectivity")
    folder.figure(evaluation.plot_map(prob, inputs.deposits, areas, geology, title=f"{row['label']}: {title}",
                                      faults=faults, undiscovered=inputs.undiscovered), "map.png")
    folder.figure(evaluation.plot_rate_curve(*[c for c in (success, prediction) if c is not None]),
                  "rate_curves.png")
    folder.figure(evaluation.plot_prediction_area(evaluation.prediction_area(prob, inputs.deposits)),
                  "prediction_area.png")
    found = {"evaluation": summary, "map_model": row["label"], "map_source": source, "map_why": why, "targets": areas,
             "uncertainty": spread.attrs.get("definition", "") if spread is not None else "",
             "consensus": {} if agreement is None else {"models": agreement.attrs["models"],
                                                        "area_fraction": agreement.attrs["area_fraction"]},
             "contributions": {} if shares is None else {k: shares.attrs[k] for k in
                                                         ("units", "definition", "expected", "completeness")
                                                         if k in shares.attrs}}
    hidden = "" if inputs.undiscovered is None else \
        f" and {100 * summary['undiscovered_coverage']:.0f} % of the undiscovered ones"
    log.info("6 map: %s maps: %s", row["label"], why)
    return found, (f" with {row['label']} ({source}; {why.split(';')[0]}): map AUC {summary['map_auc']:.3f}, "
                   "success-rate AUC "
                   f"{summary['success_rate_auc']:.3f} (known deposits: a fit); top "
                   f"{100 * summary['coverage_area_fraction']:.0f} % of the area holds "
                   f"{100 * summary['coverage']:.0f} % of the known deposits{hidden}; {len(areas)} target areas")


def _reread(lazy: Any, path: Any) -> Any:
    """... and is evaluated from that file, read lazily in the same blocks: one file per pass over the map, not the
    fold maps its mean and standard deviation come from (the same float32 values)."""
    from prospect import io

    return io.read_geotiff(path, chunks=lazy.data.chunks[0][0]).isel(band=0, drop=True).assign_attrs(lazy.attrs)


def _contributions(study: Study, result: Any) -> Any:
    """Every band's share of each cell's score under the map's fold models (None when the map comes from a tile
    model, or ``[map] contributions = false``)."""
    if result is None or result.models is None or not study.config["map"].get("contributions", True):
        return None
    if compute.is_lazy(study.stack):
        log.warning("6 map: contributions.tif is not made for a stack worked block by block ([compute] chunks) "
                    "yet; importance.csv ranks the bands")
        return None
    started = time.perf_counter()
    config = study.config
    device = config["heldout"].get("device", config["trainer"].get("device", "auto"))   # where the fold models ran
    shares = result.contributions(study.stack, device=device)
    shares.attrs["units"] = shares.attrs["unit"]     # each band's unit in the GeoTIFF (log-odds, probability, ...)
    log.info("6 map: contributions.tif: %s (%s; %.0f s)", shares.attrs["definition"], shares.attrs["unit"],
             time.perf_counter() - started)
    return shares


def _consensus(study: Study, area_fraction: float) -> Any:
    """How many of the top held-out models (:func:`top_heldout_rows`) place each cell in their top
    ``area_fraction`` of the area, from their fold-mean maps; None unless the held-out stage found two or more."""
    from prospect import evaluation

    if "heldout" not in study.results:
        return None
    table, maps = study.results["heldout"], study.results["heldout_maps"]
    runs = top_heldout_rows(table)
    if len(runs) < 2:
        return None
    labels = table.set_index("run").loc[runs, "label"].tolist()
    agreement = evaluation.consensus([maps[run].mean for run in runs], area_fraction, labels=labels)
    log.info("6 map: consensus of %s (top %g %% of the area each)", ", ".join(labels), 100 * area_fraction)
    return agreement


def _tile_map(study: Study, row: dict[str, Any]) -> tuple[Any, Any]:
    """Map with the first seed's tile model of ``row`` (and its own uncertainty where it gives one)."""
    from safetensors.torch import load_file

    from prospect import mapping

    config, data, stack = study.config, study.first, study.stack
    model = exp.build_model(row, stack.sizes["band"], data.seed)
    model.load_state_dict(load_file(study.folder / "runs" / run_key(row) / f"seed{data.seed}" / "model.safetensors"))
    options = {"size": data.train.size, **{k: v for k, v in config["map"].items()
                                           if k not in ("model_label", "contributions")}}
    options.setdefault("device", config["trainer"].get("device", "auto"))
    spread = "uncertainty" in registry.get(row["name"]).outputs
    predicted = mapping.predict_map(model, stack, normalization=data.test.normalization, uncertainty=spread,
                                    **options)
    return predicted if spread else (predicted, None)


def report(study: Study) -> Results:
    """Stage 7: ``inputs.gpkg``, ``report.md`` / ``report.html`` and ``project.qgs``."""
    from prospect.pipeline import report as memo

    config, folder = study.config, study.folder
    viewing.write_inputs(config, study.inputs, study.results["grid"], folder, study.results.get("folds"))
    memo.write(config, study.results, folder)
    viewing.write_project(config, study.inputs, folder, config["report"].get("title", "prospectivity study"))
    return {}, (f": {folder.root / 'report.md'} and {folder.root / 'report.html'}; QGIS project: "
                f"{folder.root / 'project.qgs'}")
