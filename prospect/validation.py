"""Does a model rank deposits it never saw? Spatial cross-validation of whole prospectivity maps.

    folds = pp.folds.spatial_folds(stack, deposits, k=5, seed=0)
    rf = pp.validation.cross_validate(stack, deposits, folds, "random_forest")
    cnn = pp.validation.cross_validate(stack, deposits, folds, {"name": "resnet18"}, window=17,
                                       trainer={"epochs": 4})
    rf.summary()          # {'auc': 0.97, 'auc_low': 0.95, 'auc_high': 0.98, 'top_5': ..., 'top_10': ..., ...}
    rf.mean, rf.std       # the map (mean of the fold models) and their disagreement

For each fold the model is trained on samples of the other folds only (:mod:`prospect.sampling`,
inside :meth:`~prospect.folds.SpatialFolds.training_mask`, so no training pixel or window touches a
held-out block), maps the whole area, and the held-out deposits are ranked against every valid cell
(:func:`prospect.evaluation.deposit_ranks`). Baselines (:mod:`prospect.baselines`) and networks
(:mod:`prospect.models`) go through the same folds, labels and map output.

The final map is the mean of the fold models' maps: every deposit took part in training k − 1 of
them, and their standard deviation is an honest uncertainty (how much the map depends on which
deposits were known). Refitting one model on all deposits is the other choice; it has no held-out
score of its own.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

import numpy as np
import pandas as pd

from prospect import registry, sampling
from prospect.baselines import build_baseline, categorical_bands, permutation_importance, predict_stack
from prospect.errors import InputError
from prospect.folds import SpatialFolds
from prospect.grid import Grid
from prospect.ranges import POSITIVE, whole

if TYPE_CHECKING:
    import geopandas as gpd
    import xarray as xr

__all__ = ["CrossValidation", "cross_validate", "NETWORK_TRAINING"]

log = logging.getLogger(__name__)

# Networks on centre-labelled windows: a few epochs of SGD with a cosine schedule learn the halo and
# fault patterns on a CPU in seconds per fold (measured: ResNet18, 17-cell windows, 1,600 windows, 4
# epochs → held-out AUC 0.97 on the case study). Any Trainer argument overrides these.
NETWORK_TRAINING = dict(optimizer="sgd", lr=0.02, momentum=0.9, weight_decay=1e-4, scheduler="cosine", epochs=4,
                        batch_size=64, progress=False)


@dataclass
class CrossValidation:
    """The result of :func:`cross_validate` for one model.

    Attributes
    ----------
    label : str
    ranks : DataFrame
        One row per held-out deposit: ``fold`` and :func:`~prospect.evaluation.deposit_ranks`'s columns
        (``deposit`` indexes the GeoDataFrame given).
    mean, std : DataArray (y, x)
        Mean and standard deviation of the fold models' maps.
    folds : DataFrame
        Per fold: held-out deposits, training samples, AUC of its held-out deposits, seconds.
    importance : DataFrame or None
        Baselines: permutation importance per band on the held-out samples, averaged over folds.
    """

    label: str
    ranks: pd.DataFrame
    mean: xr.DataArray
    std: xr.DataArray
    folds: pd.DataFrame
    importance: pd.DataFrame | None = None
    isolated_distance: float | None = None

    def summary(self, level: float = 0.95, resamples: int = 2000, seed: int = 0) -> dict[str, Any]:
        """Held-out AUC (deposit-weighted over folds) with its bootstrap interval, top 5/10/20 % capture, and
        the same AUC over the isolated deposits alone (farther than ``isolated_distance`` from every deposit
        their fold's model trained on): ``isolated_auc``, ``isolated_low``, ``isolated_high``,
        ``isolated_deposits`` (NaN, 0 when none is)."""
        from prospect.evaluation import heldout_summary

        line = {"model": self.label, **heldout_summary(self.ranks, level, resamples, seed),
                "folds": len(self.folds), "seconds": float(self.folds["seconds"].sum()),
                "collapsed": collapsed(self.mean)}
        if self.isolated_distance is not None and "nearest_training" in self.ranks:
            alone = self.ranks[self.ranks["nearest_training"] > self.isolated_distance]
            scored = heldout_summary(alone, level, resamples, seed) if len(alone) else {}
            line.update(isolated_distance=self.isolated_distance, isolated_deposits=len(alone),
                        isolated_auc=scored.get("auc", np.nan), isolated_low=scored.get("auc_low", np.nan),
                        isolated_high=scored.get("auc_high", np.nan))
        return line

    def rate_curve(self) -> pd.DataFrame:
        """The out-of-fold prediction-rate curve (:func:`~prospect.evaluation.heldout_rate_curve`)."""
        from prospect.evaluation import heldout_rate_curve

        curve = heldout_rate_curve(self.ranks)
        curve.attrs["label"] = self.label
        return curve


def _nearest_training(held: gpd.GeoDataFrame, training: gpd.GeoDataFrame, grid: Grid) -> np.ndarray:
    """Distance (CRS units) from each held-out deposit to the nearest training deposit of its fold."""
    from scipy.spatial import cKDTree

    def xy(frame: gpd.GeoDataFrame) -> np.ndarray:
        points = frame.to_crs(grid.crs).geometry.representative_point()
        return np.column_stack([points.x, points.y])

    if len(training) == 0:
        return np.full(len(held), np.inf)
    return cKDTree(xy(training)).query(xy(held))[0]


def collapsed(prob: xr.DataArray, tolerance: float = 1e-6) -> bool:
    """Whether a probability map is constant over its valid cells (a model that learnt nothing)."""
    values = prob.to_numpy()
    values = values[np.isfinite(values)]
    return bool(values.size == 0 or values.max() - values.min() <= tolerance)


def _spec(model: str | dict[str, Any] | Callable[[int], Any]) -> tuple[str, dict[str, Any]]:
    if callable(model):
        return getattr(model, "__name__", type(model).__name__), {"factory": model}
    if isinstance(model, str):
        return model, {}
    if isinstance(model, dict) and "name" in model:
        return str(model["name"]), {k: v for k, v in model.items() if k != "name"}
    raise InputError(f"model={model!r}: give a baseline or network name, or a dict with 'name' and its options")


def _check_bands(stack: xr.DataArray) -> None:
    values = stack.to_numpy()
    empty = [str(b) for b, band in zip(stack["band"].to_numpy(), values, strict=True) if not np.isfinite(band).any()]
    if empty:
        raise InputError(f"stack: band(s) {empty} hold no valid value (all NaN); every model would see nothing "
                         "there - drop them from the stack (stack.drop_sel(band=[...])) or fix the layer")


def cross_validate(
    stack: xr.DataArray,
    deposits: gpd.GeoDataFrame,
    folds: SpatialFolds,
    model: str | dict[str, Any] | Callable[[int], Any] = "random_forest",
    positive_radius: Annotated[float, POSITIVE] = 1000.0,
    negative_ratio: Annotated[float, POSITIVE] = 5.0,
    negative_distance: Annotated[float | None, POSITIVE] = None,
    max_positives: Annotated[int | None, whole(1)] = 5000,
    window: Annotated[int | None, whole(1)] = None,
    map_stride: Annotated[int, whole(1)] = 4,
    trainer: dict[str, Any] | None = None,
    importance: bool = True,
    device: str = "auto",
    seed: int = 0,
    label: str | None = None,
    isolated_distance: Annotated[float | None, POSITIVE] = None,
) -> CrossValidation:
    """Train ``model`` once per fold without that fold's deposits, map the area, rank the held-out deposits.

    Parameters
    ----------
    stack : DataArray (band, y, x)
        The evidence stack; every band must hold valid values.
    deposits : GeoDataFrame
        The known deposits: the training labels of the other folds and the held-out ones of each fold.
    folds : SpatialFolds
        From :func:`prospect.folds.spatial_folds` on this stack's grid and these deposits.
    model : str or dict
        A baseline of :data:`prospect.baselines.BASELINES` (options in a dict: ``{"name":
        "random_forest", "n_estimators": 500}``), or a network of :func:`prospect.models.list_models`
        with its options (``{"name": "mfaf", "backbone": "resnet18"}``), or a function that takes the
        number of bands and returns a new ``torch.nn.Module`` (your own network).
    positive_radius, negative_ratio, negative_distance, max_positives
        The labels (:func:`prospect.sampling.sample_points`), the same for every model.
    window : int, optional
        Networks: window side in cells, centred on the labelled cell. Default: the odd number of
        cells spanning ``2 × positive_radius``.
    map_stride : int
        Networks: score a window every ``map_stride`` cells and interpolate between
        (:func:`prospect.mapping.predict_centres`); 1 scores every cell.
    trainer : dict, optional
        Networks: :class:`prospect.training.Trainer` arguments over :data:`NETWORK_TRAINING`.
    importance : bool
        Baselines: permutation importance per band on each fold's held-out samples.
    device : str
        Networks: where to train and map.
    seed : int
        Samples, initial weights, data order and estimator randomness (fold ``f`` uses ``seed + f``).
    label : str, optional
        Name in tables (default: the model's name).
    isolated_distance : float, optional
        CRS units. A held-out deposit farther than this from every deposit its fold's model trained on is
        *isolated*; :meth:`CrossValidation.summary` scores those apart (``isolated_auc``), since real
        deposits cluster and a held-out deposit next to a training one is found by proximity, not by its
        evidence. Default: ``2 × positive_radius`` (no training positive lies within ``positive_radius``
        of the held-out deposit's own labelled zone). Every deposit's distance is in ``ranks``
        (``nearest_training``).
    """
    from prospect.evaluation import deposit_ranks

    name, options = _spec(model)
    grid = Grid.from_dataarray(stack)
    if folds.grid != grid:
        raise InputError(f"folds were dealt on {folds.grid}, but the stack is on {grid}; make them from this stack")
    if int(map_stride) != map_stride or map_stride < 1:
        raise InputError(f"map_stride={map_stride!r} must be a positive whole number of cells")
    if "factory" not in options and name not in registry.names():
        raise InputError(f"model {name!r} is neither a baseline ({sorted(registry.names('pixel'))}) nor a network "
                         f"({sorted(registry.names('network'))})")
    network = "factory" in options or registry.get(name).kind == "network"
    _check_bands(stack)
    resolution = max(grid.resolution)
    if window is None:
        window = 2 * int(np.ceil(positive_radius / resolution)) + 1
    if int(window) != window or window < 1:
        raise InputError(f"window={window!r} must be a positive whole number of cells")
    bands = [str(b) for b in stack["band"].to_numpy()]
    label = label or name
    total = np.zeros(grid.shape)
    squares = np.zeros(grid.shape)
    ranks, rows, importances = [], [], []
    for fold in range(folds.k):
        started = time.perf_counter()
        held = folds.held_out(fold)
        training_deposits = deposits.iloc[folds.deposit_index[~held]]
        margin = int(window) // 2 if network else 0
        allowed = folds.training_mask(fold, margin=margin)
        points = sampling.sample_points(stack, training_deposits, allowed=allowed, positive_radius=positive_radius,
                                        negative_ratio=negative_ratio, negative_distance=negative_distance,
                                        max_positives=max_positives, seed=seed + fold)
        if network:
            prob = _fit_network(name, options, stack, points, allowed, int(window), int(map_stride), trainer,
                                device, seed + fold)
        else:
            estimator = build_baseline(name, seed=seed + fold, categorical=categorical_bands(stack), **options)
            estimator.fit(sampling.pixel_values(stack, points), points.y)
            prob = predict_stack(estimator, stack)
            if importance:
                importances.append(_held_out_importance(estimator, stack, deposits, folds, fold, positive_radius,
                                                        negative_ratio, negative_distance, bands, seed + fold))
        values = prob.to_numpy().astype(np.float64)
        total += values
        squares += values**2
        held_deposits = deposits.iloc[folds.deposit_index[held]]
        fold_ranks = deposit_ranks(prob, held_deposits)
        nearest = _nearest_training(held_deposits, training_deposits, grid)
        fold_ranks["nearest_training"] = nearest[fold_ranks["deposit"].to_numpy()]
        fold_ranks["deposit"] = folds.deposit_index[held][fold_ranks["deposit"].to_numpy()]
        fold_ranks.insert(0, "fold", fold)
        ranks.append(fold_ranks)
        rows.append({"fold": fold, "held_out_deposits": int(held.sum()), "positives": points.counts()["positive"],
                     "negatives": points.counts()["negative"], "auc": float(fold_ranks["auc"].mean()),
                     "seconds": time.perf_counter() - started})
        log.info("%s fold %d/%d: %d training samples (%d positive), %d held-out deposits, AUC %.3f (%.1f s)", label,
                 fold + 1, folds.k, len(points), rows[-1]["positives"], rows[-1]["held_out_deposits"],
                 rows[-1]["auc"], rows[-1]["seconds"])
    mean = total / folds.k
    std = np.sqrt(np.maximum(squares / folds.k - mean**2, 0.0))
    attrs = {"model": label, "folds": folds.k, "definition": "mean of the fold models' maps"}
    importance_table = None
    if importances:
        per_band = pd.concat(importances).groupby("band", sort=False)["importance"]
        importance_table = (per_band.agg(importance="mean", importance_std=lambda s: np.std(s))   # spread over folds
                            .sort_values("importance", ascending=False).reset_index())
    return CrossValidation(
        label, pd.concat(ranks, ignore_index=True),
        grid.wrap(mean.astype(np.float32), name="probability", attrs={**attrs, "kind": "probability"}),
        grid.wrap(std.astype(np.float32), name="uncertainty",
                  attrs={**attrs, "kind": "uncertainty", "definition": "std of the fold models' maps"}),
        pd.DataFrame(rows), importance_table,
        float(2 * positive_radius if isolated_distance is None else isolated_distance))


def _held_out_importance(estimator: Any, stack: xr.DataArray, deposits: gpd.GeoDataFrame, folds: SpatialFolds,
                         fold: int, positive_radius: float, negative_ratio: float, negative_distance: float | None,
                         bands: list[str], seed: int) -> pd.DataFrame:
    """Permutation importance on samples of the held-out fold (its deposits against its background)."""
    test = sampling.sample_points(stack, deposits.iloc[folds.deposit_index[folds.held_out(fold)]],
                                  allowed=folds.fold == fold, positive_radius=positive_radius,
                                  negative_ratio=negative_ratio, negative_distance=negative_distance, seed=seed)
    return permutation_importance(estimator, sampling.pixel_values(stack, test), test.y, bands, seed=seed)


def _fit_network(name: str, options: dict[str, Any], stack: xr.DataArray, points: sampling.Points,
                 allowed: np.ndarray, window: int, map_stride: int, trainer: dict[str, Any] | None, device: str,
                 seed: int) -> xr.DataArray:
    import torch

    from prospect.mapping import predict_centres
    from prospect.models import build
    from prospect.training import Trainer

    stats = sampling.fit_normalization(stack, allowed)
    tiles = sampling.windows(stack, points, window, normalization=stats)
    with torch.random.fork_rng():   # initial weights from the seed, the caller's RNG state untouched
        torch.manual_seed(seed)
        factory = options.get("factory")
        model = factory(stack.sizes["band"]) if factory else build(name, stack.sizes["band"], **options)
    settings = {**NETWORK_TRAINING, **(trainer or {}), "seed": seed, "device": device}
    Trainer(model, **settings).fit(tiles)
    return predict_centres(model, stack, size=window, stride=map_stride, normalization=stats,
                           batch_size=256, device=device)
