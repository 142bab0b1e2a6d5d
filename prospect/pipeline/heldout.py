"""The run's held-out-deposit stage: every chosen model under one spatial k-fold, judged on unseen deposits.

The ``[heldout]`` section feeds :func:`prospect.folds.spatial_folds` (``k``, ``block_size``, ``buffer``)
and :func:`prospect.validation.cross_validate` (labels, windows, training, map stride); ``rows``
picks the experiment rows (labels or table names; default all). Writes ``heldout.csv`` (one line per
model: AUC with its interval, capture of held-out deposits in the top 5/10/20 % of the area, the
undiscovered deposits on the fold-mean map), ``heldout_deposits.csv`` (every held-out deposit of every
model), ``folds.csv``, ``importance.csv`` (baselines) and ``heldout_rate.png``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pandas as pd

from prospect.pipeline.config import REPORT_KEYS, select_rows

__all__ = ["chosen_rows", "run_heldout"]

log = logging.getLogger("prospect.workflow")
FOLD_KEYS = ("k", "block_size", "buffer")


def chosen_rows(config: Any) -> list[dict[str, Any]]:
    """The experiment rows the held-out stage evaluates (one per distinct model), in the file's order."""
    from prospect.pipeline.experiments import run_key

    if int(config["heldout"].get("k", 5)) == 0:
        return []
    distinct: dict[str, dict[str, Any]] = {}
    for row in select_rows(config, "heldout"):
        distinct.setdefault(run_key(row), row)
    return list(distinct.values())


def _model(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k not in REPORT_KEYS}


def run_heldout(config: Any, inputs: Any, stack: Any, out: Path) -> dict[str, Any]:
    """Cross-validate the chosen rows on ``stack``; returns the tables and each model's fold-mean map."""
    from prospect import evaluation, folds, validation
    from prospect.pipeline.experiments import run_key
    from prospect.pipeline.prospectivity import _save_figure, _write_csv

    rows = chosen_rows(config)
    options = dict(config["heldout"])
    options.pop("rows", None)
    fold_options = {key: options.pop(key) for key in FOLD_KEYS if key in options}
    options.setdefault("device", config["trainer"].get("device", "auto"))
    seed = config.seeds[0]
    split = folds.spatial_folds(stack, inputs.deposits, seed=seed, **fold_options)
    _write_csv(split.counts(), out / "folds.csv", index=False)
    log.info("5 held-out deposits: %d folds of %g m blocks (deposits per fold %s); %d models", split.k,
             split.block_size, split.counts()["deposits"].tolist(), len(rows))
    summaries, ranks, importances, curves, results = [], [], [], [], {}
    for number, row in enumerate(rows, 1):
        result = validation.cross_validate(stack, inputs.deposits, split, _model(row), seed=seed, label=row["label"],
                                           **options)
        line = {"label": row["label"], "run": run_key(row), "name": row["name"], **result.summary(seed=seed)}
        line.pop("model")
        if inputs.undiscovered is not None:
            hidden = evaluation.heldout_summary(evaluation.deposit_ranks(result.mean, inputs.undiscovered), seed=seed)
            line.update(undiscovered_auc=hidden["auc"], undiscovered_top_10=hidden["top_10"],
                        undiscovered=hidden["deposits"])
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
    table = pd.DataFrame(summaries).sort_values("auc", ascending=False, kind="stable")
    _write_csv(table, out / "heldout.csv", index=False, float_format=None)
    _write_csv(pd.concat(ranks, ignore_index=True), out / "heldout_deposits.csv", index=False, float_format=None)
    if importances:
        _write_csv(pd.concat(importances, ignore_index=True), out / "importance.csv", index=False)
    _save_figure(evaluation.plot_rate_curve(*curves), out / "heldout_rate.png")
    return {"heldout": table, "heldout_maps": results, "folds": split}
