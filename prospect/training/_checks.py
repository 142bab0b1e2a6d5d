"""Checks of the Trainer's settings and data, usable without a model (``prospect check`` runs them on a run file)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from prospect.errors import InputError

__all__ = ["check_options", "check_device"]


def _whole(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float, np.number)) and not isinstance(value, bool) and math.isfinite(value)


def check_device(device: Any, argument: str = "device") -> None:
    """Refuse a device torch cannot use here: not one of 'auto', 'cpu', 'cuda', 'cuda:N', or CUDA without a GPU."""
    valid = "valid: 'auto', 'cpu', 'cuda', 'cuda:N'"
    if not isinstance(device, str):
        raise InputError(f"{argument}={device!r}; {valid}")
    if device == "auto":
        return
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise InputError(f"{argument}={device!r}; {valid}") from exc
    if parsed.type not in ("cpu", "cuda"):
        raise InputError(f"{argument}={device!r}; {valid}")
    if parsed.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"{argument}={device!r} but torch sees no CUDA device (torch {torch.__version__}); "
                         f"use {argument}='cpu' or 'auto'")
    if parsed.type == "cuda" and parsed.index is not None and parsed.index >= torch.cuda.device_count():
        raise InputError(f"{argument}={device!r} but torch sees {torch.cuda.device_count()} CUDA device(s)")


def check_options(options: dict[str, Any]) -> None:
    """Check :class:`Trainer` keyword arguments without a model: what ``prospect check`` runs on ``[trainer]``.

    Raises :class:`~prospect.errors.InputError` naming the argument, its value and what is valid.
    Arguments not given are not checked (the Trainer's defaults are valid).
    """
    choices = {"optimizer": ("sgd", "adam", "adamw"), "scheduler": ("step", "cosine", None),
               "precision": ("bf16", "fp32")}
    for key, valid in choices.items():
        if key in options and options[key] not in valid:
            raise InputError(f"{key}={options[key]!r}; valid: {', '.join(repr(v) for v in valid)}")
    at_least = {"epochs": 1, "batch_size": 1, "step_size": 1, "checkpoint_every": 1, "freeze_backbone_epochs": 0,
                "num_workers": 0, "seed": 0, "precise_bn": 0}
    for key, low in at_least.items():
        if key in options and not (_whole(options[key]) and options[key] >= low):
            raise InputError(f"{key}={options[key]!r} must be a whole number of at least {low}")
    if options.get("early_stopping") is not None and not (_whole(options["early_stopping"])
                                                          and options["early_stopping"] >= 1):
        raise InputError(f"early_stopping={options['early_stopping']!r} must be a patience of at least 1 epoch, "
                         "or None")
    if "lr" in options and not (_number(options["lr"]) and options["lr"] > 0):
        raise InputError(f"lr={options['lr']!r} must be a positive number")
    for key in ("momentum", "weight_decay"):
        if key in options and not (_number(options[key]) and options[key] >= 0):
            raise InputError(f"{key}={options[key]!r} must be a number ≥ 0")
    if "gamma" in options and not (_number(options["gamma"]) and 0 < options["gamma"] <= 1):
        raise InputError(f"gamma={options['gamma']!r} must be a factor in (0, 1] (0.6: the rate falls by 40 %)")
    if "label_smoothing" in options and not (_number(options["label_smoothing"])
                                             and 0 <= options["label_smoothing"] < 1):
        raise InputError(f"label_smoothing={options['label_smoothing']!r} must be a fraction in [0, 1)")
    if "restore_best" in options and not isinstance(options["restore_best"], bool):
        raise InputError(f"restore_best={options['restore_best']!r} must be true or false")
    if "monitor" in options and not isinstance(options["monitor"], str):
        raise InputError(f"monitor={options['monitor']!r} must be a column name of the history, e.g. 'val_roc_auc'")
    weights = options.get("class_weights")
    try:
        values = None if weights is None else np.asarray(weights, dtype=float)
    except (TypeError, ValueError):
        values = np.array([np.nan])
    if values is not None and not (values.ndim == 1 and values.size and np.all(np.isfinite(values) & (values > 0))):
        raise InputError(f"class_weights={weights!r} must be one positive number per class, or None")
    if "device" in options:
        check_device(options["device"])


def _labels(data: Any) -> np.ndarray | None:
    """The labels of a dataset without loading its samples, where it exposes them (else None)."""
    if isinstance(data, torch.utils.data.Subset):
        inner = _labels(data.dataset)
        return None if inner is None else inner[np.asarray(data.indices, dtype=np.int64)]
    if isinstance(data, torch.utils.data.TensorDataset) and len(data.tensors) > 1:
        return data.tensors[1].cpu().numpy()
    for name in ("y", "targets", "labels"):
        values = getattr(data, name, None)
        if isinstance(values, (np.ndarray, list, tuple, torch.Tensor)):
            return np.asarray(values.cpu() if isinstance(values, torch.Tensor) else values)
    return None


def _class_counts(data: Any) -> dict[int, int] | None:
    labels = _labels(data)
    if labels is None or labels.size == 0:
        return None
    found, counts = np.unique(labels.astype(np.int64), return_counts=True)
    return {int(k): int(n) for k, n in zip(found, counts, strict=True)}


def _check_classes(counts: dict[int, int], counted: bool = True) -> None:
    if len(counts) < 2:
        what = f"class counts {counts}" if counted else f"only class {sorted(counts)} in the first epoch"
        raise InputError(f"the training data holds one class ({what}); a classifier needs examples of at least "
                         "two classes. For tiles: check that deposits fall on the grid, or use smaller tiles or a "
                         "smaller test_size")


def _check_finite(data: Any, argument: str) -> None:
    """Refuse tiles holding NaN or infinity, naming the first such tile and band (TileSet-like data)."""
    x = getattr(data, "x", None)
    if not isinstance(x, np.ndarray) or x.ndim != 4:
        return
    step = max(1, 2**24 // max(1, x[0].size))          # about 16 M values at a time: no copy of the whole set
    bad = np.concatenate([~np.isfinite(x[i:i + step]).all(axis=(2, 3)) for i in range(0, len(x), step)]) \
        if len(x) else np.zeros((0, 0), bool)
    if bad.any():
        tile, band = (int(i) for i in np.argwhere(bad)[0])
        names = getattr(data, "band", None)
        name = names[band] if isinstance(names, (list, tuple)) and band < len(names) else f"#{band}"
        raise InputError(f"{argument}: {int(bad.any(axis=1).sum())} of {len(x)} tiles hold NaN or infinite values, "
                         f"the first is tile {tile} in band {name!r}; fill or drop them first (make_tiles fills "
                         "holes; a band that is empty everywhere is a problem of the stack)")

