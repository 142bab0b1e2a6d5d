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
import os
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any

import numpy as np
import pandas as pd

from prospect import registry, sampling
from prospect._foldstore import FoldStore
from prospect.baselines import build_baseline, categorical_bands, permutation_importance, predict_stack
from prospect.compute import band_has_values, is_lazy
from prospect.errors import InputError
from prospect.folds import SpatialFolds
from prospect.grid import Grid
from prospect.mapping import default_stride, default_window
from prospect.ranges import POSITIVE, whole

if TYPE_CHECKING:
    import geopandas as gpd
    import xarray as xr

__all__ = ["CrossValidation", "cross_validate", "ensemble", "percentile_ranks", "default_window",
           "NETWORK_TRAINING", "RECIPE", "RECOMMENDED_NETWORK"]

log = logging.getLogger(__name__)

# Networks on centre-labelled windows: a few epochs of SGD, cosine schedule, seconds per fold on a CPU (ResNet18,
# 17-cell windows, 1,600 windows, 4 epochs: held-out AUC 0.97 on the case study). Any Trainer argument overrides.
NETWORK_TRAINING = dict(optimizer="sgd", lr=0.02, momentum=0.9, weight_decay=1e-4, scheduler="cosine", epochs=4,
                        batch_size=64, progress=False)

# The label-efficient recipe for networks on windows (each step switchable in the model spec):
#   augment  - train on one of the window's 8 rotations/reflections, drawn at random per window and epoch;
#   tta      - map with the mean over the 8 (a rotated window then gets the same score);
#   pretrain - masked-band reconstruction on random windows of the whole stack, once per study (no label
#              read, so no fold leaks), every fold fine-tuning from it (models with ``features``: window_net, mfaf);
#   pu_prior - the non-negative positive-unlabelled loss with this class prior (None: cross-entropy);
#   members  - an ensemble of this many networks per fold (seeds seed + fold + 1000 m), maps averaged.
# Networks registered as label_efficient (window_net) get RECIPE by default, the others OFF. Chosen by
# benchmarks/bench_real.py --ablation (3 seeds, Kolari and the synthetic case; the README's table): the symmetries
# and the pretraining helped on Kolari and did not hurt on the synthetic case; the PU loss and 3 members per fold did
# not help on both: off. The window network's own epochs and window: prospect.registry.
RECIPE: dict[str, Any] = dict(augment=True, tta=True, pretrain=True, pu_prior=None, members=1)
OFF: dict[str, Any] = dict(augment=False, tta=False, pretrain=False, pu_prior=None, members=1)
# The network the docs recommend for maps, and the pipeline's default held-out network row.
RECOMMENDED_NETWORK: dict[str, Any] = {"name": "window_net", **RECIPE}


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
    isolated_distance : float
        See :func:`cross_validate`.
    fold_maps : ndarray (folds, y, x) float32
        Each fold model's map (what :func:`ensemble` combines fold by fold); for a lazy stack a dask array
        reading the fold maps from disk (``mean`` and ``std`` too).
    settings : dict
        What was trained: the model's options, and for networks the recipe (:data:`RECIPE`), the trainer's
        settings (its ``epochs``) and the window.
    pretraining : DataFrame or None
        Networks pretrained on the stack: the reconstruction loss per epoch.
    models : list or None
        With ``keep_models=True``: each fold's fitted estimator, or for a network its modules (one per member,
        on the CPU), the normalisation and the window; what :meth:`contributions` explains.
    """

    label: str
    ranks: pd.DataFrame
    mean: xr.DataArray
    std: xr.DataArray
    folds: pd.DataFrame
    importance: pd.DataFrame | None = None
    isolated_distance: float | None = None
    fold_maps: np.ndarray | None = None
    settings: dict[str, Any] | None = None
    pretraining: pd.DataFrame | None = None
    models: list[Any] | None = None
    store: Any = field(default=None, repr=False)    # a lazy stack's fold maps on disk (prospect._foldstore.FoldStore)

    def contributions(self, stack: xr.DataArray, centres: Annotated[int, whole(1)] = 4000,
                      steps: Annotated[int, whole(2)] = 64, device: str = "auto") -> xr.DataArray:
        """Why each cell of the fold-mean map scores as it does: the mean over the fold models of every band's
        share (:mod:`prospect.explain` for the pixel models; integrated gradients for networks, on a lattice of
        about ``centres`` windows spread bilinearly, :func:`prospect.mapping.integrated_gradients`).

        Needs ``cross_validate(..., keep_models=True)`` on this ``stack``. Returns ``(band, y, x)`` float32 with
        the ``unit``, ``definition`` and ``expected`` (mean over folds) of the shares in ``attrs``; a network's
        bands are those it saw (one per class of a categorical band).
        """
        from prospect.explain import contribution_stack

        if self.models is None:
            raise InputError(f"{self.label}: no fold models kept; run cross_validate(..., keep_models=True)")
        if is_lazy(stack):
            raise InputError(f"{self.label}: contributions are not made for a lazy (dask-backed) stack yet; "
                             "load it with stack.load(), or rank the bands with cross_validate(..., importance=True)")
        total, first, expected, complete, count, seen = None, None, [], [], 0, None
        for fitted in self.models:        # a running sum: one fold's raster in memory at a time, not all of them
            if not isinstance(fitted, dict):
                rasters = [contribution_stack(fitted, stack)]
            else:
                from prospect.mapping import integrated_gradients

                seen = sampling.one_hot(stack) if seen is None else seen     # the bands the networks saw
                stride = max(1, int(np.ceil(np.sqrt(seen.sizes["y"] * seen.sizes["x"] / int(centres)))))
                rasters = [integrated_gradients(module, seen, size=fitted["window"], stride=stride,
                                                normalization=fitted["normalization"], steps=steps, device=device)
                           for module in fitted["modules"]]
            for raster in rasters:
                total = raster.to_numpy().astype(np.float64) if total is None else total + raster.to_numpy()
                first = raster if first is None else first
                expected.append(raster.attrs["expected"])
                complete += [raster.attrs["completeness"]] if "completeness" in raster.attrs else []
                count += 1
        mean = first.copy(data=(total / count).astype(np.float32))
        mean.attrs = {**first.attrs, "model": self.label, "expected": float(np.mean(expected)),
                      "definition": f"mean over {count} fold models of: {first.attrs['definition']}"}
        if complete:
            mean.attrs["completeness"] = float(max(complete))
        return mean

    def summary(self, level: float = 0.95, resamples: int = 2000, seed: int = 0) -> dict[str, Any]:
        """Held-out AUC (deposit-weighted over folds) with its bootstrap interval, top 5/10/20 % capture, the
        seconds of every fold and of the pretraining (once per study) together, and
        the same AUC over the isolated deposits alone (farther than ``isolated_distance`` from every deposit
        their fold's model trained on): ``isolated_auc``, ``isolated_low``, ``isolated_high``,
        ``isolated_deposits`` (NaN, 0 when none is)."""
        from prospect.evaluation import heldout_summary

        pretraining = 0.0 if self.pretraining is None else float(self.pretraining["seconds"].sum())
        line = {"model": self.label, **heldout_summary(self.ranks, level, resamples, seed),
                "folds": len(self.folds), "seconds": float(self.folds["seconds"].sum()) + pretraining,
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
    from prospect.compute import value_range

    low, high = value_range(prob)
    return bool(not np.isfinite(low) or high - low <= tolerance)


def _spec(model: str | dict[str, Any] | Callable[[int], Any]) -> tuple[str, dict[str, Any]]:
    if callable(model):
        return getattr(model, "__name__", type(model).__name__), {"factory": model}
    if isinstance(model, str):
        return model, {}
    if isinstance(model, dict) and "name" in model:
        return str(model["name"]), {k: v for k, v in model.items() if k != "name"}
    raise InputError(f"model={model!r}: give a baseline or network name, or a dict with 'name' and its options")


def _check_bands(stack: xr.DataArray) -> None:
    empty = [str(b) for b, filled in zip(stack["band"].to_numpy(), band_has_values(stack), strict=True) if not filled]
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
    map_stride: Annotated[int | None, whole(1)] = None,
    trainer: dict[str, Any] | None = None,
    importance: bool = True,
    device: str = "auto",
    seed: int = 0,
    label: str | None = None,
    isolated_distance: Annotated[float | None, POSITIVE] = None,
    keep_models: bool = False,
    workdir: str | os.PathLike | None = None,
    inner: bool = False,
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
        Networks: window side in cells, centred on the labelled cell. Default: :func:`default_window` by the
        network's :attr:`prospect.registry.ModelEntry.window`: the window network's spans ``positive_radius``
        (5 cells for 1 km on 200 m cells); the other networks' and your own ``2 × positive_radius`` (11).
    map_stride : int, optional
        Networks: score a window every ``map_stride`` cells and interpolate between
        (:func:`prospect.mapping.predict_centres`); 1 scores every cell. Default:
        :func:`prospect.mapping.default_stride`, half the positive radius (2 cells for 1 km on 200 m cells).
    trainer : dict, optional
        Networks: :class:`prospect.training.Trainer` arguments over :data:`NETWORK_TRAINING` and the model's
        own defaults (:attr:`prospect.registry.ModelEntry.training`: the window network trains 8 epochs, and at
        least 600 steps where labels are few, unless ``trainer`` sets ``epochs``).
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
    keep_models : bool
        Keep each fold's fitted model in the result (:meth:`CrossValidation.contributions` explains them).
    workdir : path, optional
        A lazy ``stack`` (:mod:`prospect.compute`): where each fold's map is written (``fold<f>.tif``, in a new
        folder ``<label>-folds-*`` inside it: ``result.store.folder``), block by block, so no map is held whole;
        ``mean``, ``std`` and ``fold_maps`` read them lazily. Default: a temporary folder, removed with the result.
        On a cluster of several machines, give a folder every worker can read (shared storage), as the rasters
        themselves must be. Networks train on windows gathered from the blocks they lie in and map block by
        block with a halo (:func:`prospect.mapping.predict_centres`); their pretraining gathers its windows once.
    inner : bool
        Also cross-validate the model inside each fold's training area, on the other ``k - 1`` folds
        (:meth:`~prospect.folds.SpatialFolds.inside`; the stack masked to that area, the same settings and seed):
        ``folds["inner_auc"]`` (and ``inner_seconds``), a score for fold ``f`` that no deposit or cell of fold ``f``
        went into, what :func:`ensemble` chooses its members by (a deposit within ``buffer`` of fold ``f`` lies on a
        masked cell there and is not scored). ``k - 1`` more fits per fold (k >= 3).
    """
    from prospect.evaluation import deposit_ranks

    name, options = _spec(model)
    grid = Grid.from_dataarray(stack)
    if folds.grid != grid:
        raise InputError(f"folds were dealt on {folds.grid}, but the stack is on {grid}; make them from this stack")
    if "factory" not in options and name not in registry.names():
        raise InputError(f"model {name!r} is neither a baseline ({sorted(registry.names('pixel'))}) nor a network "
                         f"({sorted(registry.names('network'))})")
    entry = None if "factory" in options else registry.get(name)     # None: the caller's own network
    network = entry is None or entry.kind == "network"
    if network:   # the entry's training under the caller's; epochs the caller sets are trained as set (no min_steps)
        own = {k: v for k, v in (entry.training if entry else {}).items()
               if k != "min_steps" or "epochs" not in (trainer or {})}
        trainer = {**own, **(trainer or {})}
    options, recipe = _recipe(name, options)
    lazy = is_lazy(stack)
    _check_bands(stack)
    if inner and folds.k < 3:
        raise InputError(f"inner=True needs k >= 3 folds (k - 1 >= 2 to cross-validate on inside each); k={folds.k}")
    given = stack
    store = FoldStore(grid, stack.data.chunks[1][0], workdir, label or name) if lazy else None
    if network:
        stack = sampling.one_hot(stack)     # a class code is a name: one 0/1 band per class
    if window is None:
        window = default_window(positive_radius, grid, entry.window if entry else "diameter")
    if int(window) != window or window < 1:
        raise InputError(f"window={window!r} must be a positive whole number of cells")
    map_stride = default_stride(positive_radius, grid, int(window)) if map_stride is None else map_stride
    if int(map_stride) != map_stride or map_stride < 1:
        raise InputError(f"map_stride={map_stride!r} must be a positive whole number of cells")
    bands = [str(b) for b in stack["band"].to_numpy()]
    label = label or name
    settings: dict[str, Any] = {"name": name, **{k: v for k, v in options.items() if k != "factory"}}
    pretrained = history = None
    if network:
        settings.update(recipe=recipe, trainer={**NETWORK_TRAINING, **(trainer or {})}, window=int(window),
                        map_stride=int(map_stride))
        if recipe["pretrain"]:
            pretrained, history = _pretrained(name, options, stack, int(window), device, seed)
    again = dict(positive_radius=positive_radius, negative_ratio=negative_ratio, negative_distance=negative_distance,
                 max_positives=max_positives, window=window, map_stride=map_stride, trainer=trainer, importance=False,
                 device=device, seed=seed)     # inner: the same settings inside each fold's training area
    fold_maps = np.empty((folds.k, *grid.shape), np.float32) if not lazy else []
    ranks, rows, importances, kept = [], [], [], []
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
            prob, fitted = _fit_network(name, options, recipe, pretrained, stack, points, allowed, int(window),
                                        int(map_stride), trainer, device, seed + fold)
        else:
            estimator = build_baseline(name, seed=seed + fold, categorical=categorical_bands(stack), bands=bands,
                                       **options)
            estimator.fit(sampling.pixel_values(stack, points), points.y)
            prob, fitted = predict_stack(estimator, stack), estimator
            if importance:
                importances.append(_held_out_importance(estimator, stack, deposits, folds, fold, positive_radius,
                                                        negative_ratio, negative_distance, bands, seed + fold))
        if lazy:   # computed block by block into the fold's file, read back lazily from there
            prob = store.keep(prob, fold)
            fold_maps.append(prob.data)
        else:
            fold_maps[fold] = prob.to_numpy()
        if keep_models:
            kept.append(fitted)
        held_deposits = deposits.iloc[folds.deposit_index[held]]
        fold_ranks = deposit_ranks(prob, held_deposits)
        nearest = _nearest_training(held_deposits, training_deposits, grid)
        fold_ranks["nearest_training"] = nearest[fold_ranks["deposit"].to_numpy()]
        fold_ranks["deposit"] = folds.deposit_index[held][fold_ranks["deposit"].to_numpy()]
        fold_ranks.insert(0, "fold", fold)
        ranks.append(fold_ranks)
        rows.append({"fold": fold, "held_out_deposits": int(held.sum()), "positives": points.counts()["positive"],
                     "negatives": points.counts()["negative"], "auc": float(fold_ranks["auc"].mean()),
                     **({"epochs": fitted["epochs"]} if network else {}), "seconds": time.perf_counter() - started})
        if inner:
            started, (within, area) = time.perf_counter(), folds.inside(fold)
            with warnings.catch_warnings():   # a deposit within the buffer of fold f lies on a masked cell there
                warnings.filterwarnings("ignore", "0 deposits lie outside the map and", UserWarning)
                masked = given.where(given.copy(data=np.broadcast_to(area, given.shape))).assign_attrs(given.attrs)
                inside = cross_validate(masked, deposits, within, model, **again, label=f"{label} inside fold {fold}")
            rows[-1].update(inner_auc=float(inside.ranks["auc"].mean()), inner_seconds=time.perf_counter() - started)
        log.info("%s fold %d/%d: %d training samples (%d positive), %d held-out deposits, AUC %.3f (%.1f s)", label,
                 fold + 1, folds.k, len(points), rows[-1]["positives"], rows[-1]["held_out_deposits"],
                 rows[-1]["auc"], rows[-1]["seconds"])
    if lazy:
        import dask.array

        fold_maps = dask.array.stack(fold_maps)
    mean = fold_maps.mean(axis=0, dtype=np.float64)
    std = fold_maps.std(axis=0, dtype=np.float64)
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
        float(2 * positive_radius if isolated_distance is None else isolated_distance), fold_maps, settings, history,
        kept if keep_models else None, store)


def percentile_ranks(values: np.ndarray) -> np.ndarray:
    """Each finite value's rank among the finite values, scaled to (0, 1] (ties share their mean rank); NaN
    stays NaN. What :func:`ensemble` averages, so that maps on different scales weigh alike."""
    from scipy.stats import rankdata

    out = np.full(values.shape, np.nan, np.float64)
    finite = np.isfinite(values)
    out[finite] = rankdata(values[finite]) / finite.sum()
    return out


def ensemble(networks: list[CrossValidation], baselines: list[CrossValidation], deposits: gpd.GeoDataFrame,
             folds: SpatialFolds, label: str = "ensemble") -> CrossValidation:
    """The rank average of the best network and the best baseline, chosen per fold inside its training folds.

    For fold ``f``, the network and the baseline with the highest ``inner_auc`` of fold ``f`` (their
    cross-validation inside fold ``f``'s training area, :func:`cross_validate` with ``inner=True``: no deposit
    or cell of fold ``f`` enters the choice; ties: the first given) are taken; their fold-``f`` maps become
    percentile ranks over the valid cells and are averaged, and fold ``f``'s held-out deposits are ranked on
    that average. A list of one needs no choice (nor ``inner``); either list may be empty (then the best of the
    other is taken alone). Every result must come from :func:`cross_validate` on these ``folds``.

    Choosing by the other folds' held-out AUC instead would be optimistic: fold ``f``'s deposits trained
    each of those folds' models. Returns a :class:`CrossValidation` whose ``folds`` table names the members
    chosen per fold; its seconds: the members', every candidate's inner cross-validation and pretraining.
    """
    from prospect.evaluation import deposit_ranks

    groups = [list(group) for group in (networks, baselines) if len(group)]
    if not groups:
        raise InputError("ensemble needs at least one cross-validation result (networks or baselines)")
    every = [result for group in groups for result in group]
    for result in every:
        if result.fold_maps is None or len(result.folds) != folds.k:
            raise InputError(f"{result.label}: no fold maps for {folds.k} folds; give results of cross_validate on "
                             "these folds")
    inner = [r for group in groups if len(group) > 1 for r in group]     # chosen between: by (and at) inner_auc
    unscored = [r.label for r in inner if "inner_auc" not in r.folds]
    if unscored:
        raise InputError(f"{unscored}: no inner_auc to choose between them by; cross-validate each with inner=True")
    grid = folds.grid
    fold_maps = np.empty((folds.k, *grid.shape), np.float32)   # in memory, also from lazy fold maps
    ranks, rows = [], []
    for fold in range(folds.k):
        chosen = [max(group, key=lambda r: np.nan_to_num(r.folds["inner_auc"].iloc[fold], nan=-np.inf))   # 1st tie
                  if len(group) > 1 else group[0] for group in groups]    # NaN: no inner deposit scored, chosen last
        combined = np.mean([percentile_ranks(np.asarray(r.fold_maps[fold])) for r in chosen], axis=0)
        fold_maps[fold] = combined
        held = folds.held_out(fold)
        fold_ranks = deposit_ranks(grid.wrap(combined.astype(np.float32), name="probability"),
                                   deposits.iloc[folds.deposit_index[held]])
        fold_ranks["deposit"] = folds.deposit_index[held][fold_ranks["deposit"].to_numpy()]
        own = chosen[0].ranks[chosen[0].ranks["fold"] == fold].set_index("deposit")
        if "nearest_training" in own:
            fold_ranks["nearest_training"] = own["nearest_training"].reindex(fold_ranks["deposit"]).to_numpy()
        fold_ranks.insert(0, "fold", fold)
        ranks.append(fold_ranks)
        rows.append({"fold": fold, "held_out_deposits": int(held.sum()), "members": " + ".join(r.label for r in chosen),
                     "auc": float(fold_ranks["auc"].mean()),
                     "seconds": float(sum(r.folds["seconds"].iloc[fold] for r in chosen)
                                      + sum(r.folds["inner_seconds"].iloc[fold] for r in inner))})
        log.info("%s fold %d/%d: %s, AUC %.3f", label, fold + 1, folds.k, rows[-1]["members"], rows[-1]["auc"])
    attrs = {"model": label, "folds": folds.k, "definition": "mean percentile rank of the chosen members' fold maps"}
    pretrained = [r.pretraining for r in every if r.pretraining is not None]   # once per study each: in its summary
    return CrossValidation(
        label, pd.concat(ranks, ignore_index=True),
        grid.wrap(fold_maps.mean(axis=0).astype(np.float32), name="probability",
                  attrs={**attrs, "kind": "probability"}),
        grid.wrap(fold_maps.std(axis=0).astype(np.float32), name="uncertainty",
                  attrs={**attrs, "kind": "uncertainty", "definition": "std of the fold ensembles' rank maps"}),
        pd.DataFrame(rows), None, every[0].isolated_distance, fold_maps,
        {"name": "ensemble", "candidates": [r.label for r in every]},
        pd.concat(pretrained, ignore_index=True) if pretrained else None)


def _held_out_importance(estimator: Any, stack: xr.DataArray, deposits: gpd.GeoDataFrame, folds: SpatialFolds,
                         fold: int, positive_radius: float, negative_ratio: float, negative_distance: float | None,
                         bands: list[str], seed: int) -> pd.DataFrame:
    """Permutation importance on samples of the held-out fold (its deposits against its background)."""
    test = sampling.sample_points(stack, deposits.iloc[folds.deposit_index[folds.held_out(fold)]],
                                  allowed=folds.fold == fold, positive_radius=positive_radius,
                                  negative_ratio=negative_ratio, negative_distance=negative_distance, seed=seed)
    return permutation_importance(estimator, sampling.pixel_values(stack, test), test.y, bands, seed=seed)


def _recipe(name: str, options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The model's own options and the training recipe (:data:`RECIPE`) split apart, defaults filled in."""
    keys = [key for key in options if key in RECIPE]
    network = "factory" in options or registry.get(name).kind == "network"
    if keys and not network:
        raise InputError(f"{name}: {keys} belong to networks on windows (the label-efficient recipe); a baseline "
                         "takes its scikit-learn options (and pu_bags)")
    entry = None if "factory" in options else registry.get(name)
    recipe = {**(RECIPE if entry is not None and entry.label_efficient else OFF),
              **{key: options[key] for key in keys}}
    for key in ("augment", "tta", "pretrain"):
        if not isinstance(recipe[key], bool):
            raise InputError(f"{name}: {key}={recipe[key]!r}; valid: true or false")
    prior = recipe["pu_prior"]
    if prior is not None and not (isinstance(prior, (int, float)) and 0 < prior < 1):
        raise InputError(f"{name}: pu_prior={prior!r}; valid: a share in (0, 1) (of ore-related cells hidden in the "
                         "background), or None for cross-entropy")
    members = recipe["members"]
    if isinstance(members, bool) or not isinstance(members, int) or members < 1:
        raise InputError(f"{name}: members={members!r}; valid: a whole number >= 1 (networks per fold)")
    return {k: v for k, v in options.items() if k not in RECIPE}, recipe


def _build(name: str, options: dict[str, Any], bands: int, seed: int) -> Any:
    import torch

    from prospect.models import build

    with torch.random.fork_rng():   # initial weights from the seed, the caller's RNG state untouched
        torch.manual_seed(seed)
        factory = options.get("factory")
        return factory(bands) if factory else build(name, bands, **options)


def _pretrained(name: str, options: dict[str, Any], stack: xr.DataArray, window: int, device: str,
                seed: int) -> tuple[dict[str, Any], pd.DataFrame]:
    """Masked-band pretraining on the whole stack (never the deposits): the weights every fold starts from."""
    from prospect.training.label_efficient import pretrain

    model = _build(name, options, stack.sizes["band"], seed)
    if not hasattr(model, "features"):
        raise InputError(f"{name}: pretrain=true needs a network with features(x) (window_net, mfaf); "
                         f"{type(model).__name__} has none")
    from prospect.mapping import _device

    stats = sampling.fit_normalization(stack)
    history = pretrain(model, stack, window, normalization=stats, seed=seed, device=str(_device(device)))
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items() if not k.startswith("head.")}
    log.info("%s: pretrained on the stack (no label), masked-band MSE %.3f -> %.3f in %d epochs", name,
             history["loss"].iloc[0], history["loss"].iloc[-1], len(history))
    return {"state": state, "normalization": stats}, history


def _fit_network(name: str, options: dict[str, Any], recipe: dict[str, Any], pretrained: dict[str, Any] | None,
                 stack: xr.DataArray, points: sampling.Points, allowed: np.ndarray, window: int, map_stride: int,
                 trainer: dict[str, Any] | None, device: str, seed: int) -> tuple[xr.DataArray, dict[str, Any]]:
    from prospect.mapping import predict_centres
    from prospect.models import DihedralAverage, DihedralWindows
    from prospect.training import Trainer
    from prospect.training.label_efficient import NonNegativePULoss

    # pretrained weights came with the whole stack's statistics (no label in them); otherwise the fold's
    stats = pretrained["normalization"] if pretrained else sampling.fit_normalization(stack, allowed)
    tiles = sampling.windows(stack, points, window, normalization=stats)
    data = DihedralWindows(tiles.as_torch()) if recipe["augment"] else tiles
    settings = {**NETWORK_TRAINING, **(trainer or {}), "device": device}
    per_epoch = -(-len(data) // settings["batch_size"])        # few labels: more epochs, up to min_steps steps
    settings["epochs"] = max(settings["epochs"], -(-settings.pop("min_steps", 0) // per_epoch))
    maps, modules = [], []
    for member in range(recipe["members"]):
        member_seed = seed + 1000 * member
        model = _build(name, options, stack.sizes["band"], member_seed)
        if pretrained:
            model.load_state_dict(pretrained["state"], strict=False)   # all but the head
        loss = None if recipe["pu_prior"] is None else NonNegativePULoss(recipe["pu_prior"])
        Trainer(model, loss=loss, **{**settings, "seed": member_seed}).fit(data)
        mapper = DihedralAverage(model) if recipe["tta"] else model
        modules.append(mapper)
        maps.append(predict_centres(mapper, stack, size=window, stride=map_stride, normalization=stats,
                                    batch_size=256 if not recipe["tta"] else 64, device=device))
    fitted = {"modules": [m.cpu() for m in modules], "normalization": stats, "window": window,
              "epochs": settings["epochs"]}
    if len(maps) == 1:
        return maps[0], fitted
    mean = maps[0].copy(data=np.mean(np.stack([m.data for m in maps]), axis=0).astype(np.float32))  # lazy stays
    mean.attrs["members"] = len(maps)
    return mean, fitted
