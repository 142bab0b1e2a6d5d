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

from dataclasses import dataclass
from typing import Any, Literal

from prospect.errors import InputError

__all__ = ["ModelEntry", "get", "names", "descriptions", "KINDS"]

Kind = Literal["pixel", "network"]
KINDS: dict[str, str] = {
    "pixel": "a scikit-learn estimator on the values of one cell (no torch); judged on held-out deposits",
    "network": "a torch network on windows of the stack: held-out deposits and maps on windows, the paper's "
               "tables on tiles",
}


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
    """

    name: str
    kind: Kind
    description: str
    outputs: tuple[str, ...] = ("probability",)
    options: str | None = None

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
        return self.kind == "network"


_ENTRIES: tuple[ModelEntry, ...] = (
    ModelEntry("mfaf", "network", "MFAF: one dilated branch per rate, channel + spatial attention, "
               "ResNet18/ShuffleNetV2 backbones, shared head, vote (Gao et al.)",
               outputs=("probability", "vote", "uncertainty"), options="prospect.models.MFAF"),
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
