"""A prospectivity study from a run file: survey -> screening -> evidence layers -> tiles -> models -> map.

    config = load_config("workflows/qinhang.toml", mode="quick")
    inputs = check_inputs(config)          # reads and checks every input before any heavy work
    run(config, inputs, "out/qinhang")      # what ``prospect run`` does after checking the output folder

:func:`run` is a loop over :data:`STAGES` (:mod:`prospect.pipeline.stages`), each a function of the study
that returns its results and one line for the log; the loop times and logs them. The run folder
(:class:`~prospect.pipeline.runfolder.RunFolder`) writes every file and records its name in ``config.json``.

Outputs in the folder: ``screening.csv`` (Table 2), ``elements/*.tif`` and ``stack.tif``, ``tiles.csv`` and the
first seed's ``tiles_train.npz`` / ``tiles_test.npz``, ``runs/<model>/seed<N>/`` (history, metrics,
weights of the map model), ``experiments.csv`` (every model and seed) and ``tables.csv`` (mean and spread over
seeds beside the paper), ``folds.csv``, ``heldout.csv``, ``heldout_deposits.csv``, ``importance.csv``,
``prospectivity.tif`` (+ ``.qml``), ``uncertainty.tif``, ``targets.gpkg``, ``evaluation.csv``, figures,
``report.md`` and ``report.html``, ``project.qgs`` (every layer styled for QGIS) with ``inputs.gpkg`` and
``layers/`` (categorical bands as integer codes), ``config.json`` (the run as resolved, its inputs' SHA-256
and the names of everything it wrote) and ``run.log``.
"""

from __future__ import annotations

import logging
import os
import time
import warnings
from pathlib import Path
from typing import Any

from prospect import compute
from prospect.pipeline import stages
from prospect.pipeline.config import RunConfig
from prospect.pipeline.heldout import run_heldout
from prospect.pipeline.inputs import Inputs, check_inputs, user_notes
from prospect.pipeline.runfolder import RunFolder

__all__ = ["Inputs", "check_inputs", "check_output", "run", "clear_run", "STAGES"]

log = logging.getLogger("prospect.workflow")

STAGES = (("1 screening", stages.screen), ("2 evidence layers", stages.evidence), ("3 tiles", stages.tiles),
          ("4 experiments", stages.experiments), ("5 held-out deposits", run_heldout), ("6 map", stages.map_),
          ("7 report", stages.report))


def _said(note: str, notes: list[str]) -> bool:
    """Whether ``note`` was already said: word for word, or under another name for the same thing (the check names
    a layer by its run-file table, ``[[categorical]] #1 geology.gpkg: ...``, the API by its argument, ``gdf: ...``)."""
    body = note.split(": ", 1)[-1]
    return any(note == said or body == said.split(": ", 1)[-1] for said in notes)


def run(config: RunConfig, inputs: Inputs, out: str | os.PathLike | RunFolder, *, overwrite: bool = False,
        resume: bool = False) -> dict[str, Any]:
    """Run every stage into ``out`` (a folder the caller has checked); returns the numbers of the report."""
    folder = out if isinstance(out, RunFolder) else RunFolder(out, overwrite=overwrite, resume=resume)
    folder.start(config)
    counted = {name: 0 if frame is None else len(frame) for name, frame in
               (("samples", inputs.samples), ("deposits", inputs.deposits), ("undiscovered", inputs.undiscovered))}
    results = {"timings": {}, "changes": list(config.changes), "notes": list(inputs.notes), "heldout_maps": {},
               "survey": counted}
    study = stages.Study(config, inputs, folder, results)
    log.info("%s%s: %s mode, seeds %s", config["report"].get("title", "prospectivity study"),
             " on SYNTHETIC data" if config["report"].get("synthetic") else "", config.mode, config.seeds)
    for change in config.changes:
        log.info("  %s", change)
    for note in inputs.notes:
        log.info("note: %s", note)
    with compute.engine(**config["compute"]) as engine:    # a cluster client, where [compute] names one
        if engine.lazy:
            log.info("compute: %s", engine.describe())
        for name, stage in STAGES:
            started = time.perf_counter()
            with warnings.catch_warnings(record=True) as caught:   # every warning of a stage reaches run.log
                warnings.simplefilter("always")
                found, summary = stage(study)
            results.update(found)
            for note in dict.fromkeys(user_notes(caught)):
                if not _said(note, results["notes"]):
                    log.warning("%s: %s", name, note)
                    results["notes"].append(note)
            if summary is not None:
                results["timings"][name] = time.perf_counter() - started
                log.info("%s%s (%.1f s)", name, summary, results["timings"][name])
    return results


def check_output(config: RunConfig, out: str | os.PathLike, *, overwrite: bool = False, resume: bool = False) -> None:
    """Refuse an ``out`` that cannot take this run (see :meth:`RunFolder.check`); nothing is written."""
    RunFolder(out, overwrite=overwrite, resume=resume).check(config)


def clear_run(out: Path) -> list[str]:
    """Remove what the previous run in ``out`` wrote (see :meth:`RunFolder.clear`); returns what was kept."""
    return RunFolder(out, overwrite=True).clear()
