"""The run's held-out-deposit stage: every chosen model under one spatial k-fold, judged on unseen deposits.

The ``[heldout]`` section feeds :func:`prospect.folds.spatial_folds` (``k``, ``block_size``, ``buffer``)
and :func:`prospect.validation.cross_validate` (labels, windows, training, map stride); ``rows``
picks the experiment rows (labels or table names; default all). Writes ``heldout.csv`` (one line per
model: AUC with its interval, capture of held-out deposits in the top 5/10/20 % of the area, the
undiscovered deposits on the fold-mean map, its AUC less the best row's over the same deposits with a paired
interval), ``heldout_deposits.csv`` (every held-out deposit of every
model), ``folds.csv``, ``importance.csv`` (baselines) and ``heldout_rate.png``. ``[heldout] ensemble`` adds the
*Ensemble* row (:func:`~prospect.pipeline.config.ensemble_rows`, :func:`prospect.validation.ensemble`) and
``ensemble_folds.csv`` (the members it chose per fold); it maps when it ranks best, as any row.
"""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from prospect.pipeline.config import (
    ENSEMBLE,
    FOLD_KEYS,
    REPORT_KEYS,
    best_heldout_row,
    chosen_rows,
    ensemble_rows,
    heldout_folds,
    map_row,
    run_key,
)

__all__ = ["chosen_rows", "run_heldout"]

log = logging.getLogger("prospect.workflow")


def _model(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k not in REPORT_KEYS}


def _keep_map_models(config: Any, summaries: list[dict[str, Any]], results: dict[str, Any]) -> None:
    """Keep the fold models of the row that maps (named in ``[map]``, else the best so far): they explain its map
    in stage 6. The others' are let go as soon as a row beats them, so memory holds two rows' models at most."""
    named = map_row(config)
    keep = run_key(named) if named is not None else run_key(best_heldout_row(config, pd.DataFrame(summaries))[0])
    for key, result in results.items():
        if key != keep:
            result.models = None


def _wofe_fit(rows: list[dict[str, Any]], stack: Any, inputs: Any, folder: Any) -> dict[str, Any]:
    """With a weights-of-evidence row: its weights fitted to every known deposit, as published WofE tables are
    (``wofe.csv``, every candidate pattern; the posterior and its standard deviation as ``wofe_posterior.tif``
    and ``wofe_posterior_std.tif``), and the conditional-independence test. Its held-out row is its honest score."""
    from prospect.wofe import weights_of_evidence

    row = next((r for r in rows if r["name"] == "weights_of_evidence"), None)
    if row is None:
        return {}
    options = {k: row[k] for k in ("classes", "min_studentized", "breaks") if k in row}
    fit = weights_of_evidence(stack, inputs.deposits, unit_area=1e6, **options)
    folder.csv(fit.table, "wofe.csv", index=False, float_format=None)
    posterior = fit.posterior.assign_attrs(kind="probability", definition="deposits per km² unit cell, all deposits")
    folder.geotiff(posterior, "wofe_posterior.tif")
    folder.geotiff(fit.std.assign_attrs(kind="uncertainty", definition="std of the posterior from the weights' "
                                                                        "variances"), "wofe_posterior_std.tif")
    log.info("5 held-out deposits: weights of evidence on all %d deposits -> wofe.csv: %d bands kept; conditional "
             "independence D/T = %.2f, Agterberg-Cheng p = %.3g", fit.deposits, int(fit.table["chosen"].sum()),
             fit.ci_ratio, fit.ac_p)
    return {"wofe": {"label": row["label"], "table": fit.table, "deposits": fit.deposits, "expected": fit.expected,
                     "ratio": fit.ci_ratio, "z": fit.ac_z, "p": fit.ac_p}}


def _paired(table: pd.DataFrame, ranks: pd.DataFrame, seed: int) -> pd.DataFrame:
    """``table`` with every row's held-out AUC against the best usable row's (the first not collapsed), deposit by
    deposit (:func:`prospect.evaluation.paired_difference` on the deposits both rank): ``paired_difference``,
    ``paired_low``, ``paired_high``. An interval that holds 0 is what the report calls "not told apart"."""
    from prospect.evaluation import paired_difference

    usable = table[~table["collapsed"].astype(bool)]
    if not len(usable):
        return table
    best = ranks[ranks["label"] == usable["label"].iloc[0]]
    found = []
    for label in table["label"]:
        mine = ranks[ranks["label"] == label]
        common = set(mine["deposit"]) & set(best["deposit"])   # a network's map may leave a deposit on no value
        found.append(paired_difference(mine[mine["deposit"].isin(common)], best[best["deposit"].isin(common)],
                                       seed=seed) if common else {"difference": None, "low": None, "high": None})
    return table.assign(paired_difference=[f["difference"] for f in found], paired_low=[f["low"] for f in found],
                        paired_high=[f["high"] for f in found])


def _line(row: dict[str, Any], result: Any, inputs: Any, seed: int) -> dict[str, Any]:
    """One line of ``heldout.csv``: the row's cross-validation summarised, the undiscovered deposits on its map."""
    from prospect import evaluation

    line = {"label": row["label"], "run": run_key(row), "name": row["name"], **result.summary(seed=seed)}
    if "trainer" in result.settings:   # networks: what each fold trained, as the report states it
        epochs = result.folds["epochs"] if "epochs" in result.folds else [result.settings["trainer"]["epochs"]]
        line.update(epochs=int(max(epochs)), window=result.settings["window"])   # min_steps may raise a fold's
    line.pop("model")
    if inputs.undiscovered is not None:
        hidden = evaluation.heldout_summary(evaluation.deposit_ranks(result.mean, inputs.undiscovered), seed=seed)
        line.update(undiscovered_auc=hidden["auc"], undiscovered_top_10=hidden["top_10"],
                    undiscovered=hidden["deposits"])
    return line


def run_heldout(study: Any) -> tuple[dict[str, Any], str | None]:
    """Stage 5: cross-validate the chosen rows on the study's stack; the tables and each model's fold-mean map.

    Nothing to do (summary None) when ``[heldout] k = 0`` or no row is chosen.
    """
    from prospect import evaluation, validation

    config, inputs, stack, folder = study.config, study.inputs, study.stack, study.folder
    rows = chosen_rows(config)
    if not rows:
        return {}, None
    options = dict(config["heldout"])
    options.pop("rows", None)
    options.pop("ensemble", None)
    members = ensemble_rows(config)    # chosen between (several of a kind): also cross-validated inside each fold
    inner = {run_key(row) for group in members or () if len(group) > 1 for row in group}
    for key in FOLD_KEYS:
        options.pop(key, None)
    options.setdefault("device", config["trainer"].get("device", "auto"))
    seed = config.seeds[0]
    split = heldout_folds(config, stack, inputs.deposits)
    folder.csv(split.counts(), "folds.csv", index=False)
    log.info("5 held-out deposits: %d folds of %.0f m blocks (%s), deposits within %.0f m of one another dealt "
             "together (%s; deposits per fold %s); %d models", split.k, split.block_size, split.block_why, split.link,
             split.why, split.counts()["deposits"].tolist(), len(rows))
    summaries, ranks, importances, curves, results = [], [], [], [], {}
    for number, row in enumerate(rows, 1):
        result = validation.cross_validate(stack, inputs.deposits, split, _model(row), seed=seed, label=row["label"],
                                           keep_models=True, inner=run_key(row) in inner, **options)
        line = _line(row, result, inputs, seed)
        summaries.append(line)
        ranks.append(result.ranks.assign(label=row["label"]))
        if result.importance is not None:
            importances.append(result.importance.assign(label=row["label"]))
        curves.append(result.rate_curve())
        results[run_key(row)] = result
        log.info("5 held-out deposits: %d/%d %s: AUC %.3f (95 %% CI %.3f-%.3f), top 10 %% holds %.0f %% of %d "
                 "held-out deposits%s (%.0f s)", number, len(rows), row["label"], line["auc"], line["auc_low"],
                 line["auc_high"], 100 * line["top_10"], line["deposits"],
                 "" if inputs.undiscovered is None else
                 f"; undiscovered AUC {line['undiscovered_auc']:.3f}", line["seconds"])
        _keep_map_models(config, summaries, results)
    if members:
        joint = validation.ensemble(*[[results[run_key(row)] for row in group] for group in members],
                                    inputs.deposits, split, label=ENSEMBLE["label"])
        summaries.append(_line(ENSEMBLE, joint, inputs, seed))
        ranks.append(joint.ranks.assign(label=ENSEMBLE["label"]))
        curves.append(joint.rate_curve())
        results[run_key(ENSEMBLE)] = joint
        folder.csv(joint.folds, "ensemble_folds.csv", index=False)
        _keep_map_models(config, summaries, results)
        log.info("5 held-out deposits: %s (%s per fold): AUC %.3f (95 %% CI %.3f-%.3f)", ENSEMBLE["label"],
                 " | ".join(joint.folds["members"]), summaries[-1]["auc"], summaries[-1]["auc_low"],
                 summaries[-1]["auc_high"])
    table = pd.DataFrame(summaries).sort_values("auc", ascending=False, kind="stable")
    table = _paired(table, pd.concat(ranks, ignore_index=True), seed)
    folder.csv(table, "heldout.csv", index=False, float_format=None)
    folder.csv(pd.concat(ranks, ignore_index=True), "heldout_deposits.csv", index=False, float_format=None)
    if importances:
        folder.csv(pd.concat(importances, ignore_index=True), "importance.csv", index=False)
    folder.figure(evaluation.plot_rate_curve(*curves), "heldout_rate.png")
    # the row the map stage takes (collapsed rows never, ties to 3 decimals to the cheaper), so both say one name
    label = best_heldout_row(config, table)[0]["label"]
    best = {**table.set_index("label").loc[label].to_dict(), "label": label}
    found = {"heldout": table, "heldout_maps": results, "folds": split, **_wofe_fit(rows, stack, inputs, folder)}
    return found, (
        f": {best['label']} ranks the held-out deposits best, AUC {best['auc']:.3f} (95 % CI {best['auc_low']:.3f}-"
        f"{best['auc_high']:.3f})")
