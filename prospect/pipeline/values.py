"""The values of a run file, checked before any work: types from the API's annotations, ranges from its rules.

Every key of a section is a keyword argument of an API call (:mod:`prospect.pipeline.config`), so its type
is the annotation of that parameter: ``power = "two"`` is refused because :func:`prospect.interpolate.idw`
takes ``power: float``, ``shape = "64x64"`` because :meth:`prospect.Grid.from_bounds` takes ``shape:
tuple[int, int]``, and a ``Literal`` lists the valid words. :data:`RANGES` adds what an annotation cannot
say (``stride`` at least 1, ``test_size`` a fraction), matching the checks the calls make themselves; the
Trainer's settings go through the Trainer's own check (:func:`prospect.training.check_options`), with the
preset applied, and every ``device`` through :func:`prospect.training.check_device`. ``prospect check``
and ``prospect run`` call :func:`check_values` before reading an input or writing a file.
"""

from __future__ import annotations

import builtins
import collections.abc
import inspect
import math
import os
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prospect.errors import ConfigError, InputError

__all__ = ["check_values", "conforms", "describe", "RANGES"]


class _Opaque:
    """An annotation naming a type that is not importable here (``xr.DataArray`` under TYPE_CHECKING): any value."""

    def __getattr__(self, name: str) -> _Opaque:
        return self

    def __getitem__(self, item: Any) -> _Opaque:
        return self

    def __or__(self, other: Any) -> _Opaque:
        return self

    __ror__ = __or__


_OPAQUE = _Opaque()


class _Namespace(dict):
    """Names of a module, then builtins; a name found in neither (imported for type checking only) is opaque."""

    def __missing__(self, key: str) -> Any:
        return getattr(builtins, key, _OPAQUE)


def annotations(function: Callable) -> dict[str, Any]:
    """The parameters' annotations of ``function``, evaluated one by one (unknown names accept anything)."""
    if inspect.isclass(function):
        function = function.__init__
    found = {}
    for name, parameter in inspect.signature(function).parameters.items():
        annotation = parameter.annotation
        if isinstance(annotation, str):
            try:
                names = _Namespace(vars(typing) | function.__globals__)
                annotation = eval(annotation, {}, names)  # noqa: S307 (the package's own annotations)
            except Exception:    # an annotation we cannot evaluate checks nothing
                annotation = _OPAQUE
        found[name] = annotation
    return found


def _union(annotation: Any) -> tuple[Any, ...] | None:
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        return typing.get_args(annotation)
    return None


def conforms(value: Any, annotation: Any) -> bool:
    """Whether a TOML value fits an annotation (TOML arrays are lists; a whole number fits ``float``)."""
    if annotation in (Any, inspect.Parameter.empty) or isinstance(annotation, _Opaque):
        return True
    if annotation is None or annotation is type(None):
        return value is None
    members = _union(annotation)
    if members is not None:
        return any(conforms(value, member) for member in members)
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Literal:
        return any(type(value) is type(arg) and value == arg for arg in args)
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is str:
        return isinstance(value, str)
    if annotation in (os.PathLike, Path) or origin is os.PathLike:
        return isinstance(value, str)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(conforms(v, args[0]) for v in value)
        return len(value) == len(args) and all(conforms(v, a) for v, a in zip(value, args, strict=True))
    if origin in (list, collections.abc.Sequence, collections.abc.Iterable) or annotation in (list, tuple):
        return isinstance(value, (list, tuple)) and all(conforms(v, args[0]) for v in value) if args else \
            isinstance(value, (list, tuple))
    if origin in (dict, collections.abc.Mapping) or annotation is dict:
        return isinstance(value, dict) and (not args or all(conforms(v, args[1]) for v in value.values()))
    return isinstance(value, annotation) if isinstance(annotation, type) else True


def describe(annotation: Any) -> str:
    """An annotation in words, for error messages."""
    members = _union(annotation)
    if members is not None:
        return " or ".join(describe(m) for m in members)
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    words = {bool: "true or false", int: "a whole number", float: "a number", str: "a text", type(None): "none "
             "(leave the key out)", dict: "a table", Any: "anything"}
    if annotation in words:
        return words[annotation]
    if annotation is None:
        return words[type(None)]
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return f"a list of {_plural(args[0])}"
        return "[" + ", ".join(describe(a) for a in args) + "]"
    if origin in (list, collections.abc.Sequence, collections.abc.Iterable):
        return f"a list of {_plural(args[0])}" if args else "a list"
    if origin in (dict, collections.abc.Mapping):
        return "a table"
    if annotation in (os.PathLike, Path) or origin is os.PathLike:
        return "a path (text)"
    return getattr(annotation, "__name__", str(annotation))


def _plural(annotation: Any) -> str:
    return {int: "whole numbers", float: "numbers", str: "texts"}.get(annotation, describe(annotation))


# ------------------------------------------------------------------------------------------------ ranges
def _whole(low: int) -> tuple[Callable[[Any], bool], str]:
    return (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= low), f"a whole number ≥ {low}"


def _number(test: Callable[[float], bool], words: str) -> tuple[Callable[[Any], bool], str]:
    def check(value: Any) -> bool:
        values = value if isinstance(value, (list, tuple)) else [value]
        return all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and test(v)
                   for v in values)

    return check, words


POSITIVE = _number(lambda v: v > 0, "a positive number")
NOT_NEGATIVE = _number(lambda v: v >= 0, "a number ≥ 0")
FRACTION_OPEN = _number(lambda v: 0 < v < 1, "a fraction in (0, 1)")
FRACTION_CLOSED = _number(lambda v: 0 <= v <= 1, "a fraction in [0, 1]")
UP_TO_ONE = _number(lambda v: 0 < v <= 1, "a fraction in (0, 1]")
FINITE = _number(lambda v: True, "a finite number")


def _or_word(word: str, rule: tuple[Callable[[Any], bool], str]) -> tuple[Callable[[Any], bool], str]:
    return (lambda v: v == word or (not isinstance(v, str) and rule[0](v))), f"{rule[1]}, or {word!r}"


# What annotations cannot say; each rule is the check the call itself makes.
RANGES: dict[str, dict[str, tuple[Callable[[Any], bool], str]]] = {
    "samples": {"coord_scale": POSITIVE, "bdl_factor": UP_TO_ONE},
    "transform": {"bdl_factor": UP_TO_ONE, "zero": _or_word("half_min", POSITIVE)},
    "screening": {"radius": POSITIVE, "alpha": FRACTION_OPEN, "buffer": NOT_NEGATIVE, "folds": _whole(2)},
    "grid": {"resolution": POSITIVE, "shape": (lambda v: all(isinstance(n, int) and n >= 1 for n in v),
                                               "two whole numbers ≥ 1 (rows, cols)")},
    "idw": {"power": POSITIVE, "k": _whole(1), "radius": POSITIVE, "min_points": _whole(1), "chunk": _whole(1),
            "max_distance": _or_word("auto", POSITIVE)},
    "distance": {"chunk": _whole(1)},
    "mask": {"buffer": FINITE},
    "tiles": {"size": _whole(1), "stride": _whole(1), "min_valid": FRACTION_CLOSED, "center": _whole(1)},
    "split": {"test_size": FRACTION_OPEN, "block_size": _whole(1), "buffer": _whole(0)},
    "smote": {"k_neighbors": _whole(1)},
    "noise": {"variance": POSITIVE, "copies": _whole(1), "only_class": _whole(0)},
    "heldout": {"k": (lambda v: isinstance(v, int) and not isinstance(v, bool) and (v == 0 or v >= 2),
                      "a whole number of folds ≥ 2, or 0 to turn the stage off"),
                "block_size": POSITIVE, "buffer": NOT_NEGATIVE, "positive_radius": POSITIVE,
                "negative_ratio": POSITIVE, "negative_distance": POSITIVE, "max_positives": _whole(1),
                "window": _whole(1), "map_stride": _whole(1)},
    "map": {"size": _whole(1), "stride": _whole(1), "batch_size": _whole(1), "ore_class": _whole(0)},
    "targets": {"threshold": FRACTION_OPEN, "area_fraction": UP_TO_ONE, "min_area": NOT_NEGATIVE},
    "evaluation": {"area_fraction": UP_TO_ONE},
}
_SPECIAL = {("idw", "elements")}   # checked when the file is read (prospect.pipeline.config)



def check_values(config: Any) -> None:
    """Check every value of ``config`` (a :class:`~prospect.pipeline.config.RunConfig`) before any work.

    Raises :class:`~prospect.errors.ConfigError` naming the section, key and value, what is valid and,
    for a value set by ``--quick`` or the command line, where it came from.
    """
    from prospect.pipeline.config import _resolve

    for name, spec in config.schema.items():
        hints: dict[str, tuple[Any, str]] = {}
        for call in spec.calls:
            for key, annotation in annotations(_resolve(call)).items():
                hints.setdefault(key, (annotation, call))
        bodies = config[name] if spec.many else [config[name]]
        for number, body in enumerate(bodies, 1):
            where = f"[{name}]" + (f" #{number}" if spec.many else "")
            for key, value in body.items():
                if key in hints and (name, key) not in _SPECIAL:
                    annotation, call = hints[key]
                    _check_value(f"{where} {key}={value!r}{config.origin(name, key)}", value, annotation, f"{key} of "
                                 f"{call}", RANGES.get(name, {}).get(key))
    if "experiments" in config.schema:
        _check_model_rows(config)
    if "trainer" in config.schema:
        _check_trainers(config)
    for name in ("map", "heldout", "idw"):
        device = config[name].get("device") if name in config.schema else None
        if device is not None:
            _device(device, f"[{name}] device", config.origin(name, "device"), cuda_only=name == "idw")


def _check_value(what: str, value: Any, annotation: Any, owner: str,
                 rule: tuple[Callable[[Any], bool], str] | None = None) -> None:
    """Refuse ``value`` (described by ``what``) when it does not fit ``annotation`` or ``rule``."""
    if not conforms(value, annotation):
        raise ConfigError(f"{what}; valid: {describe(annotation)} ({owner})")
    if rule is not None and value is not None and not rule[0](value):
        raise ConfigError(f"{what}; valid: {rule[1]}")


def _device(device: Any, where: str, origin: str, cuda_only: bool = False) -> None:
    """The device check of the call the section feeds (IDW: Numba on the CPU or torch on CUDA; else torch)."""
    from prospect.interpolate import _check_device as idw_device
    from prospect.training import check_device

    try:
        idw_device(device) if cuda_only else check_device(device, "device")
    except InputError as exc:
        raise ConfigError(f"{where}{origin}: {exc}") from None


MFAF_RANGES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "aux_weight": NOT_NEGATIVE, "dilation_scale": POSITIVE, "width": _whole(1), "reduction": _whole(1)}


def _check_model_rows(config: Any) -> None:
    """MFAF's options in ``[[experiments.models]]`` rows, against :class:`prospect.models.MFAF`'s signature."""
    from prospect.models import MFAF
    from prospect.models.mfaf import DILATION_SETS

    hints = annotations(MFAF)
    for number, row in enumerate(config.models, 1):
        if row.get("name") != "mfaf":
            continue
        where = f"[experiments] models #{number} ({row.get('label')})"
        for key, value in row.items():
            if key in hints and key != "pretrained":
                _check_value(f"{where}: {key}={value!r}", value, hints[key], f"{key} of prospect.models.MFAF",
                             MFAF_RANGES.get(key))
        dilations = row.get("dilations")
        if isinstance(dilations, str) and dilations not in DILATION_SETS or \
                isinstance(dilations, list) and not all(rate >= 1 for rate in dilations):
            raise ConfigError(f"{where}: dilations={dilations!r}; valid: a name of {sorted(DILATION_SETS)} or a list "
                              "of rates ≥ 1")


def _check_trainers(config: Any) -> None:
    from prospect.pipeline.experiments import trainer_settings
    from prospect.training import PRESETS, Trainer, check_options
    from prospect.validation import NETWORK_TRAINING

    preset = config["trainer"].get("preset")
    if preset is not None and preset not in PRESETS:
        raise ConfigError(f"[trainer] preset={preset!r}{config.origin('trainer', 'preset')}; valid: "
                          f"{sorted(PRESETS)}")
    settings = trainer_settings(config, 0)
    try:
        check_options(settings)
    except InputError as exc:
        key = str(exc).split("=", 1)[0]
        raise ConfigError(f"[trainer]{config.origin('trainer', key)}: {exc}") from None
    nested = config["heldout"].get("trainer") if "heldout" in config.schema else None
    if nested is None:
        return
    if not isinstance(nested, dict):
        raise ConfigError(f"[heldout] trainer={nested!r}; valid: a table of Trainer settings, e.g. "
                          "trainer = { epochs = 20 }")
    hints = annotations(Trainer)
    valid = [k for k in hints if k not in ("self", "model", "loss", "out_dir", "seed", "overwrite", "device")]
    unknown = sorted(set(nested) - set(valid))
    if unknown:
        raise ConfigError(f"[heldout] trainer: unknown key(s) {unknown}; valid: {valid}")
    for key, value in nested.items():
        _check_value(f"[heldout] trainer {key}={value!r}", value, hints[key], "prospect.training.Trainer")
    try:
        check_options({**NETWORK_TRAINING, **nested})
    except InputError as exc:
        raise ConfigError(f"[heldout] trainer: {exc}") from None
