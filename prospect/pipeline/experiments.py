"""Train and compare the configured models on the same tiles, once per seed (the paper's Tables 3-7).

Each seed draws its own spatial split, SMOTE and noise, initial weights and batch order, so the spread over
seeds includes the choice of test blocks. Every model is scored on the spatially separated test tiles with
the weights of its **last** epoch: the test tiles never pick an epoch. A run that is killed leaves its
``last.pt``; the next ``--resume`` continues it from there and skips the runs that finished.
"""

from __future__ import annotations

import inspect
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from prospect import registry
from prospect import tiles as tiling
from prospect.errors import ConfigError, InputError
from prospect.files import atomic_output
from prospect.pipeline.config import REPORT_KEYS, run_key

__all__ = ["run_key", "SeedTiles", "prepare_tiles", "train_row", "branch_vote", "summarise"]

log = logging.getLogger("prospect.workflow")
METRICS = {"accuracy": "accuracy", "auc": "roc_auc", "recall": "recall", "f1": "f1_macro"}


@dataclass
class SeedTiles:
    """The tiles of one seed: training side after SMOTE and noise, test side untouched, both standardised."""

    seed: int
    train: tiling.TileSet
    test: tiling.TileSet
    counts: pd.DataFrame


def prepare_tiles(tiles: tiling.TileSet, config: Any, seed: int) -> SeedTiles:
    """Split first, then fit the standardisation on real training tiles, then SMOTE and noise (training only)."""
    train, test = tiling.spatial_split(tiles, seed=seed, **config["split"])
    stats = tiling.fit_normalization(train)
    train, test = tiling.normalize(train, stats), tiling.normalize(test, stats)
    smote = dict(config["smote"])
    k = int(smote.pop("k_neighbors", 5))
    ore = min(train.counts()["ore"], train.counts()["no_ore"])
    if ore < 2:
        raise InputError(f"seed {seed}: the training side holds {ore} tile(s) of one class; SMOTE needs at least 2 "
                         "- use a larger grid, smaller tiles or a smaller [split] test_size")
    if k >= ore:
        log.info("note: seed %d: smote.k_neighbors=%d lowered to %d (the training side has %d ore tiles)",
                 seed, k, ore - 1, ore)
        k = ore - 1
    balanced = tiling.smote(train, k_neighbors=k, seed=seed, **smote)
    augmented = tiling.add_noise(balanced, seed=seed, **config["noise"])
    counts = pd.DataFrame([{"stage": "tiles", "side": "all", **tiles.counts()},
                           {"stage": "split", "side": "train", **train.counts()},
                           {"stage": "split", "side": "test", **test.counts()},
                           {"stage": "SMOTE + noise", "side": "train", **augmented.counts()},
                           {"stage": "SMOTE + noise", "side": "test", **test.counts()}])
    counts.attrs["dropped_overlap"] = int(train.attrs.get("dropped_overlap", 0))
    return SeedTiles(seed, augmented, test, counts)


def build_model(row: dict[str, Any], in_channels: int, seed: int):
    """The model of a row, with initial weights drawn from ``seed``."""
    import torch

    from prospect.models import build
    from prospect.registry import RECIPE_KEYS

    # the label-efficient recipe is how the held-out stage trains windows; the tile tables keep the paper's
    options = {k: v for k, v in row.items() if k not in (*REPORT_KEYS, "name", *RECIPE_KEYS)}
    torch.manual_seed(seed)
    return build(row["name"], in_channels, **options)


def trainer_settings(config: Any, seed: int) -> dict[str, Any]:
    """The ``[trainer]`` keys on top of its ``preset``, with ``seed``: the Trainer's keyword arguments."""
    from prospect.training import PRESETS

    settings = dict(config["trainer"])
    preset = settings.pop("preset", None)
    if preset is not None and preset not in PRESETS:
        raise ConfigError(f"[trainer] preset={preset!r}; valid: {sorted(PRESETS)}")
    return {**(PRESETS[preset] if preset else {}), **settings, "seed": seed}


def train_row(row: dict[str, Any], data: SeedTiles, config: Any, folder: Path, *, resume: bool, overwrite: bool,
              keep_weights: bool) -> dict[str, Any]:
    """Train one model on one seed's tiles and score it on the test tiles; returns the metrics row.

    With ``resume``, a finished run (``metrics.json``) is read back and an interrupted one continues
    from ``last.pt``. Checkpoints are removed once the run is scored; ``model.safetensors`` stays when
    ``keep_weights``.
    """
    from prospect.training import Trainer, classification_metrics, load_checkpoint

    done = folder / "metrics.json"
    settings = trainer_settings(config, data.seed)
    planned = int(settings.get("epochs", inspect.signature(Trainer).parameters["epochs"].default))
    if resume and done.exists():
        finished = json.loads(done.read_text())
        if finished.get("epochs_planned", finished["epochs"]) == planned:
            _tidy(folder, keep_weights)
            return {**finished, "read_back": True}
        log.info("  %s seed %d was trained for %d epochs, now %d are asked for: %s", folder.parent.name, data.seed,
                 finished.get("epochs_planned", finished["epochs"]), planned,
                 "trained on from its checkpoint" if (folder / "last.pt").exists() else
                 "trained afresh (its checkpoint was removed; the result is the same as training on)")
        done.unlink()
    model = build_model(row, data.train.x.shape[1], data.seed)
    last = folder / "last.pt"
    if resume and last.exists() and int(load_checkpoint(last)["epoch"]) + 1 <= planned:
        trainer = Trainer.resume(folder, model, **settings)
        log.info("  resuming %s seed %d after epoch %d", folder.parent.name, data.seed, trainer.start_epoch)
    else:
        trainer = Trainer(model, out_dir=folder, overwrite=overwrite or resume, **settings)
    history = trainer.fit(data.train)
    probabilities = trainer.predict(data.test)
    scores = classification_metrics(data.test.y, probabilities)
    voted = {}
    if "vote" in registry.get(row["name"]).outputs:   # MFAF's hard decision: the class most branches predict
        one_hot = np.eye(probabilities.shape[1])[branch_vote(trainer.model, data.test)]
        votes = classification_metrics(data.test.y, one_hot)
        voted = {f"vote_{name}": _positive(votes[key]) for name, key in METRICS.items() if name != "auc"}
    result = {"run": folder.parent.name, "seed": data.seed, "epochs": len(history), "epochs_planned": planned,
              **{name: _positive(scores[key]) for name, key in METRICS.items()}, **voted,
              "precision": _positive(scores["precision"]), "test_tiles": scores["n"],
              "test_ore": int((data.test.y == 1).sum()), "seconds": float(history["seconds"].sum()),
              # kept for the bootstrap interval of the AUC over test tiles (summarise)
              "test_labels": data.test.y.astype(int).tolist(), "test_scores": probabilities[:, 1].tolist()}
    with atomic_output(done, overwrite=True) as tmp:
        tmp.write_text(json.dumps(result, indent=2))
    _tidy(folder, keep_weights)
    return {**result, "read_back": False}


def branch_vote(model: Any, tiles: tiling.TileSet, batch_size: int = 64) -> np.ndarray:
    """The MFAF vote (:meth:`~prospect.models.MFAFOutput.vote`) of every tile, (n,) int."""
    import torch

    device = next(model.parameters()).device
    model.eval()
    with torch.inference_mode():
        return np.concatenate([model(torch.from_numpy(tiles.x[start:start + batch_size]).to(device)).vote().cpu()
                               .numpy() for start in range(0, len(tiles), batch_size)])


def _positive(value: Any) -> float:
    """Recall and precision of the ore class (index 1); other metrics as they are."""
    return float(value[1]) if isinstance(value, list) else float(value)


def _tidy(folder: Path, keep_weights: bool) -> None:
    for name in ("last.pt", "best.pt") + (() if keep_weights else ("model.safetensors",)):
        (folder / name).unlink(missing_ok=True)


def _collapsed(scores: Any, tolerance: float = 1e-6) -> bool:
    """Constant scores, or every tile on one side of 0.5: the model says one thing whatever it is shown."""
    scores = np.asarray(scores, dtype=float)
    return bool(np.ptp(scores) <= tolerance or (scores >= 0.5).all() or (scores < 0.5).all())


def summarise(rows: list[dict[str, Any]], records: list[dict[str, Any]], seed: int = 0) -> pd.DataFrame:
    """One line per model row of the config: mean and standard deviation over seeds, in %, beside the paper.

    ``auc_low`` / ``auc_high`` bound the mean AUC with a 95 % stratified bootstrap over the test tiles
    (:func:`~prospect.training.metrics.auc_interval`): the spread that the few test tiles alone allow.
    ``collapsed``: in every seed the model gave every test tile the same score, or put all on one side of 0.5.
    """
    from prospect.training.metrics import auc_interval

    results = pd.DataFrame(records)
    lines = []
    for row in rows:
        mine = results[results["run"] == run_key(row)]
        line: dict[str, Any] = {"table": str(row.get("table", "")), "label": row["label"], "run": run_key(row),
                                "seeds": len(mine)}
        for metric in METRICS:
            values = 100 * mine[metric].to_numpy(float)
            line[f"{metric}_mean"] = float(np.mean(values)) if len(values) else np.nan
            line[f"{metric}_std"] = float(np.std(values, ddof=1)) if len(values) > 1 else np.nan
            line[f"{metric}_paper"] = float(row.get("paper", {}).get(metric, np.nan))
        for metric in ("vote_accuracy", "vote_recall", "vote_f1"):   # MFAF's branch vote; NaN for other models
            values = 100 * mine[metric].to_numpy(float) if metric in mine else np.array([])
            line[f"{metric}_mean"] = float(np.nanmean(values)) if np.isfinite(values).any() else np.nan
        kept = [r for r in records if r["run"] == run_key(row) and "test_scores" in r]
        low, high = (auc_interval([r["test_labels"] for r in kept], [r["test_scores"] for r in kept], seed=seed)
                     if kept else (np.nan, np.nan))
        line["auc_low"], line["auc_high"] = 100 * low, 100 * high
        line["collapsed"] = bool(kept) and all(_collapsed(r["test_scores"]) for r in kept)
        lines.append(line)
    return pd.DataFrame(lines)

