"""The values of a run file, checked before any work: types from the API's annotations, ranges from its rules.

Every key of a section is a keyword argument of an API call (:mod:`prospect.pipeline.config`), so its type
is the annotation of that parameter: ``power = "two"`` is refused because :func:`prospect.interpolate.idw`
takes ``power: float``, ``shape = "64x64"`` because :meth:`prospect.Grid.from_bounds` takes ``shape:
tuple[int, int]``, and a ``Literal`` lists the valid words. Ranges are part of the same annotations
(``stride: Annotated[int, whole(1)]``, ``test_size: Annotated[float, FRACTION_OPEN]``; :mod:`prospect.ranges`),
declared once beside the parameter they constrain; :data:`RUN_FILE_RULES` holds the few a run file adds
(``[heldout] k = 0`` turns the stage off). The Trainer's settings go through the Trainer's own check
(:func:`prospect.training.check_options`), with the preset applied, and every ``device`` through
:func:`prospect.training.check_device`. ``prospect check`` and ``prospect run`` call :func:`check_values`
before reading an input or writing a file.
"""

from __future__ import annotations

import builtins
import collections.abc
import inspect
import os
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prospect.errors import ConfigError, InputError
from prospect.ranges import Range, rule_of, strip

__all__ = ["check_values", "conforms", "describe", "RUN_FILE_RULES"]


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
    annotation = strip(annotation)
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
    annotation = strip(annotation)
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


# A run file's own meaning beyond the API's: [heldout] k = 0 turns the stage off (spatial_folds needs k >= 2).
RUN_FILE_RULES: dict[tuple[str, str], Range] = {
    ("heldout", "k"): Range(lambda v: isinstance(v, int) and not isinstance(v, bool) and (v == 0 or v >= 2),
                            "a whole number of folds ≥ 2, or 0 to turn the stage off")}
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
                                 f"{call}", RUN_FILE_RULES.get((name, key)))
    if "experiments" in config.schema:
        _check_model_rows(config)
    if "trainer" in config.schema:
        _check_trainers(config)
    if "map" in config.schema and not isinstance(config["map"].get("contributions", True), bool):
        origin = config.origin("map", "contributions")
        raise ConfigError(f"[map] contributions={config['map']['contributions']!r}{origin}; valid: true or false "
                          "(write contributions.tif)")
    for name in ("map", "heldout", "idw"):
        device = config[name].get("device") if name in config.schema else None
        if device is not None:
            _device(device, f"[{name}] device", config.origin(name, "device"), cuda_only=name == "idw")


def _check_value(what: str, value: Any, annotation: Any, owner: str, rule: Range | None = None) -> None:
    """Refuse ``value`` (described by ``what``) when it does not fit ``annotation`` or its range.

    The range is the annotation's own (``Annotated[float, POSITIVE]``), unless ``rule`` (a run file's
    meaning beyond the API's) replaces it.
    """
    if not conforms(value, annotation):
        raise ConfigError(f"{what}; valid: {describe(annotation)} ({owner})")
    rule = rule or rule_of(annotation)
    if rule is not None and value is not None and not rule(value):
        raise ConfigError(f"{what}; valid: {rule.words}")


def _device(device: Any, where: str, origin: str, cuda_only: bool = False) -> None:
    """The device check of the call the section feeds (IDW: Numba on the CPU or torch on CUDA; else torch)."""
    from prospect.interpolate import _check_device as idw_device
    from prospect.training import check_device

    try:
        idw_device(device) if cuda_only else check_device(device, "device")
    except InputError as exc:
        raise ConfigError(f"{where}{origin}: {exc}") from None


def _check_model_rows(config: Any) -> None:
    """The options of ``[[experiments.models]]`` rows, against their model's options signature (the registry's)."""
    from prospect import registry

    for number, row in enumerate(config.models, 1):
        entry = registry.get(row["name"]) if row.get("name") in registry.names() else None
        if entry is None or entry.options is None:
            continue
        options = entry.options
        hints = annotations(entry.options_callable())
        where = f"[experiments] models #{number} ({row.get('label')})"
        for key, value in row.items():
            if key in hints and key != "pretrained":
                _check_value(f"{where}: {key}={value!r}", value, hints[key], f"{key} of {options}")


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
