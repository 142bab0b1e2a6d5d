"""Every model the package can train, and what each one is: the one place a new method is added.

    entry = pp.registry.get("mfaf")
    entry.kind                 # 'network': torch, trained on windows (held-out, map) and on tiles (the paper's tables)
    entry.outputs              # ('probability', 'vote', 'uncertainty')
    pp.registry.names("pixel") # ['gradient_boosting', 'logistic_regression', 'random_forest']

The pipeline, the run-file checks and cross-validation ask an entry what it is instead of comparing names:
whether a row trains on tiles, whether it has options a run file may set (and which callable's signature
says what they are), whether its map carries an uncertainty of its own or a branch vote. No torch, no
scikit-learn here: building is :func:`prospect.models.build` (networks) and
:func:`prospect.baselines.build_baseline` (pixel estimators).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from prospect.errors import InputError

__all__ = ["ModelEntry", "get", "names", "descriptions", "KINDS", "RECIPE_KEYS", "PIXEL_KEYS"]

Kind = Literal["pixel", "network"]
KINDS: dict[str, str] = {
    "pixel": "a scikit-learn estimator on the values of one cell (no torch); judged on held-out deposits",
    "network": "a torch network on windows of the stack: held-out deposits and maps on windows, the paper's "
               "tables on tiles",
}

# Options of how a model is trained rather than built, which any row of its kind may set: the networks'
# label-efficient recipe on windows (prospect.validation.RECIPE) and the baselines' PU bagging.
RECIPE_KEYS = ("augment", "tta", "pretrain", "pu_prior", "members")
PIXEL_KEYS = ("pu_bags",)


@dataclass(frozen=True)
class ModelEntry:
    """What a registered model is.

    Attributes
    ----------
    name : str
        The name in run files and API calls.
    kind : {"pixel", "network"}
        See :data:`KINDS`.
    description : str
    outputs : tuple of str
        ``"probability"`` (every model), ``"vote"`` (a hard vote across branches, scored beside it) and
        ``"uncertainty"`` (a per-cell spread of one model, written beside its map).
    options : str, optional
        The dotted callable whose keyword arguments a run-file row may set (their types and ranges are its
        annotations); None when a row takes no options.
    tiles : bool
        Networks: whether it also trains on the paper's 128-cell tiles (Tables 3-7); False for a network
        made for small windows only.
    label_efficient : bool
        Networks: whether cross-validation trains it with the label-efficient recipe by default
        (:data:`prospect.validation.RECIPE`); any network may switch each step on or off.
    training : dict
        Networks: its own :class:`~prospect.training.Trainer` defaults on windows, over
        :data:`prospect.validation.NETWORK_TRAINING` and under what a caller or a run file sets; ``min_steps``:
        epochs are raised until a fold trains at least this many optimiser steps (not where the caller sets epochs).
    window : {"diameter", "radius"}
        Networks: what their window spans when none is given (:func:`prospect.validation.default_window`): the
        labelled zone's diameter (the positive radius on either side of the centre cell) or its radius.
    """

    name: str
    kind: Kind
    description: str
    outputs: tuple[str, ...] = ("probability",)
    options: str | None = None
    tiles: bool = True
    label_efficient: bool = False
    training: dict[str, Any] = field(default_factory=dict)
    window: Literal["diameter", "radius"] = "diameter"

    def options_callable(self) -> Any:
        """The callable :attr:`options` names (imported on first use), or None."""
        if self.options is None:
            return None
        import importlib

        module, _, name = self.options.rpartition(".")
        return getattr(importlib.import_module(module), name)

    @property
    def trains_on_tiles(self) -> bool:
        """Whether the paper's tile tables (Tables 3-7) train and score it."""
        return self.kind == "network" and self.tiles


_ENTRIES: tuple[ModelEntry, ...] = (
    ModelEntry("mfaf", "network", "MFAF: one dilated branch per rate, channel + spatial attention, "
               "ResNet18/ShuffleNetV2 backbones, shared head, vote (Gao et al.)",
               outputs=("probability", "vote", "uncertainty"), options="prospect.models.MFAF"),
    ModelEntry("window_net", "network", "window network: the centre cell's bands beside dilated, attended "
               "context, for 9-33-cell windows of evidence stacks (prospect's own)",
               options="prospect.models.window.WindowNet", tiles=False, label_efficient=True,
               # 8 epochs, not NETWORK_TRAINING's 4: Kolari held-out AUC 0.905 against 0.896 over seeds 0-2
               # (0.924/0.897/0.894 against 0.917/0.884/0.886), the synthetic case 0.976 either way (seed 0), for
               # about a quarter more time per fold (benchmarks/bench_real.py's settings, 2026-12-02)
               # at least 600 optimiser steps (more epochs where labels are few): no fold trains fewer than the 8
               # epochs give on Kolari's 200 m grid, where they were chosen (648-744 steps); on 1 km cells the 8
               # epochs are 32 steps, and the network ranked Kolari's held-out deposits at 0.764 (the forest 0.903)
               training={"epochs": 8, "min_steps": 600},
               # spanning the positive radius, not the labelled zone's diameter: Kolari (1 km radius, 200 m cells) 5
               # cells against 11, seeds 0-2: 0.918 against 0.911, with its ten geophysics rasters 0.948 against
               # 0.921, at 40 % of the time per fold (benchmarks/bench_real.py, 2026-12-03)
               window="radius"),
    ModelEntry("resnet18", "network", "ResNet18 (He et al.), first convolution for C channels"),
    ModelEntry("shufflenet_v2", "network", "ShuffleNetV2 x1.0 (Ma et al.), first convolution for C channels"),
    ModelEntry("googlenet", "network", "GoogLeNet (Szegedy et al.) without auxiliary heads, first convolution for "
               "C channels"),
    ModelEntry("mobilenet_v2", "network", "MobileNetV2 (Sandler et al.), first convolution for C channels"),
    ModelEntry("mnasnet", "network", "MnasNet 1.0 (Tan et al.), first convolution for C channels"),
    ModelEntry("random_forest", "pixel", "random forest (scikit-learn), 300 trees, balanced class weights"),
    ModelEntry("gradient_boosting", "pixel", "histogram gradient boosting (scikit-learn), balanced class weights"),
    ModelEntry("logistic_regression", "pixel", "logistic regression on standardised bands (categorical bands "
               "one-hot), balanced"),
    ModelEntry("weights_of_evidence", "pixel", "weights of evidence (Bonham-Carter 1994): each band generalised to "
               "the binary pattern of maximum studentized contrast (prospect.wofe)",
               options="prospect.wofe.WeightsOfEvidence"),
    ModelEntry("fuzzy_overlay", "pixel", "a fuzzy overlay set by hand (prospect.fuzzy.FuzzyOverlay: memberships per "
               "band, and/or/product/sum/gamma); fitted to nothing, judged like the rest",
               options="prospect.fuzzy.FuzzyOverlay"),
)
_BY_NAME = {entry.name: entry for entry in _ENTRIES}


def get(name: str) -> ModelEntry:
    """The entry of ``name``; an unknown name is an :class:`~prospect.errors.InputError` listing the valid ones."""
    try:
        return _BY_NAME[name]
    except (KeyError, TypeError):
        raise InputError(f"unknown model {name!r}; valid: {sorted(_BY_NAME)}") from None


def names(kind: Kind | None = None) -> list[str]:
    """The registered names (of one ``kind``), in registration order."""
    return [entry.name for entry in _ENTRIES if kind is None or entry.kind == kind]


def descriptions(kind: Kind | None = None) -> dict[str, str]:
    """Name -> description of every registered model (of one ``kind``)."""
    return {entry.name: entry.description for entry in _ENTRIES if kind is None or entry.kind == kind}
