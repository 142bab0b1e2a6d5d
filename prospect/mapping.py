"""The prospectivity map: a trained model run over the whole evidence stack.

Windows of the training tile size slide over the stack; each window's ore
probability is spread over its pixels (evenly, or Gaussian-weighted towards its
centre) and overlapping windows are averaged. Windows are cut and scored in
batches, so memory holds the stack, two accumulators and one batch — never all
windows at once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from prospect.errors import InputError
from prospect.grid import Grid

if TYPE_CHECKING:
    import torch
    import xarray as xr

__all__ = ["predict_map", "model_in_channels"]

log = logging.getLogger(__name__)


def model_in_channels(model: Any) -> int | None:
    """The number of input bands a model expects (its config, else its first convolution)."""
    import torch

    config = getattr(model, "config", None) or {}
    if "in_channels" in config:
        return int(config["in_channels"])
    for module in model.modules():
        if isinstance(module, torch.nn.Conv2d):
            return int(module.in_channels)
    return None


def _windows(rows: int, cols: int, size: int, stride: int) -> list[tuple[int, int]]:
    from prospect.tiles import _positions

    return [(r, c) for r in _positions(rows, size, stride, "shift") for c in _positions(cols, size, stride, "shift")]


def _batches(values: np.ndarray, windows: list, size: int, batch_size: int) -> Iterator[tuple[list, np.ndarray]]:
    for start in range(0, len(windows), batch_size):
        chunk = windows[start:start + batch_size]
        yield chunk, np.stack([values[:, r:r + size, c:c + size] for r, c in chunk])


def predict_map(
    model: torch.nn.Module,
    stack: xr.DataArray,
    size: int = 128,
    stride: int = 32,
    batch_size: int = 64,
    device: str = "auto",
    blend: Literal["mean", "gaussian"] = "mean",
    normalization: dict | None = None,
    uncertainty: bool = False,
    ore_class: int = 1,
    channels_last: bool = True,
) -> xr.DataArray | tuple[xr.DataArray, xr.DataArray]:
    """Ore probability for every pixel of ``stack``.

    Parameters
    ----------
    model : torch.nn.Module
        Returns logits ``(B, classes)`` or an :class:`~prospect.models.MFAFOutput`.
    stack : DataArray (band, y, x)
        The evidence stack, same bands and order as the training tiles.
    size : int
        Window size, the training tile size.
    stride : int
        Step between windows (≤ ``size``). Windows at the right and bottom edges
        are shifted inward so every pixel is covered.
    batch_size : int
    device : {"auto", "cpu", "cuda", ...}
    blend : {"mean", "gaussian"}
        How overlapping windows combine: a plain mean, or weights falling off
        from each window's centre (σ = size / 4), which hides window seams.
    normalization : dict, optional
        The training set's statistics (``TileSet.normalization`` or
        :func:`prospect.tiles.fit_normalization`), applied to the stack; never
        recomputed from the map. None: the stack is used as it is.
    uncertainty : bool
        MFAF only: also return the per-pixel disagreement of its branches (the
        standard deviation of the branch ore probabilities, blended like the map).
    ore_class : int
        Index of the "ore" class in the model's output. Default 1.
    channels_last : bool
        Run the model in channels-last memory format (measured 23 % faster for
        MFAF-ResNet18 on a 2-core CPU; also the fast layout on CUDA). The model is
        moved to ``device`` and this format in place, as ``model.to`` does.

    Returns
    -------
    DataArray (y, x) float32 of probabilities on the stack's grid (NaN where any
    band of the stack is NaN; those pixels are filled with the band mean only so
    windows near them can be scored), with ``attrs["kind"] = "probability"`` so
    :func:`prospect.io.write_geotiff` writes a QGIS style beside it; with
    ``uncertainty=True`` a pair (probability, uncertainty).
    """
    import torch

    from prospect.io import _as_bands
    from prospect.models import MFAFOutput, probabilities

    grid = Grid.from_dataarray(stack)
    stack = _as_bands(stack)
    bands = [str(b) for b in stack["band"].to_numpy()]
    rows, cols = grid.shape
    expected = model_in_channels(model)
    if expected is not None and expected != len(bands):
        raise InputError(f"the model expects {expected} bands but the stack has {len(bands)} ({bands})")
    if int(size) != size or size < 1 or size > min(rows, cols):
        raise InputError(f"size={size!r} must be a whole number from 1 to the stack's smaller side ({min(rows, cols)})")
    if int(stride) != stride or stride < 1 or stride > size:
        raise InputError(f"stride={stride!r} must be a whole number from 1 to size={size} (larger strides leave gaps)")
    if blend not in ("mean", "gaussian"):
        raise InputError(f"blend={blend!r}; valid: 'mean', 'gaussian'")
    if int(batch_size) != batch_size or batch_size < 1:
        raise InputError(f"batch_size={batch_size!r} must be a positive whole number")

    values = stack.to_numpy().astype(np.float32, copy=True)
    valid = np.isfinite(values).all(axis=0)
    if not valid.any():
        raise InputError("the stack has no pixel that is valid in every band: nothing to map")
    for band in values:
        band[~np.isfinite(band)] = np.nanmean(band) if np.isfinite(band).any() else 0.0
    if normalization is not None:
        if list(normalization.get("band", [])) != bands:
            raise InputError(f"normalization is for bands {normalization.get('band')}, the stack has {bands}")
        values -= np.asarray(normalization["mean"], np.float32)[:, None, None]
        values /= np.asarray(normalization["std"], np.float32)[:, None, None]

    device = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else
                          ("cpu" if device == "auto" else device))
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"device={str(device)!r} but torch sees no CUDA device; use device='cpu' or 'auto'")
    if blend == "gaussian":
        axis = np.arange(size) - (size - 1) / 2
        kernel = np.exp(-(axis[:, None] ** 2 + axis[None, :] ** 2) / (2 * (size / 4) ** 2))
    else:
        kernel = np.ones((size, size))
    total = np.zeros(grid.shape)
    spread = np.zeros(grid.shape) if uncertainty else None
    weight = np.zeros(grid.shape)
    windows = _windows(rows, cols, size, stride)
    model = model.to(device).eval()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    started = time.perf_counter()
    with torch.inference_mode():
        for chunk, batch in _batches(values, windows, size, batch_size):
            x = torch.from_numpy(batch).to(device)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                output = model(x)
            ore = probabilities(output)[:, ore_class].float().cpu().numpy()
            if uncertainty:
                if not isinstance(output, MFAFOutput):
                    raise InputError("uncertainty=True needs an MFAF model (the disagreement of its branches)")
                branch = torch.softmax(output.branch_logits.float(), dim=-1)[..., ore_class]
                disagreement = branch.std(dim=1, unbiased=False).cpu().numpy()
            for i, (r, c) in enumerate(chunk):
                total[r:r + size, c:c + size] += ore[i] * kernel
                weight[r:r + size, c:c + size] += kernel
                if uncertainty:
                    spread[r:r + size, c:c + size] += disagreement[i] * kernel
    seconds = time.perf_counter() - started
    log.info("scored %d windows in %.1f s (%.0f windows/s)", len(windows), seconds, len(windows) / max(seconds, 1e-9))
    attrs = {"kind": "probability", "size": int(size), "stride": int(stride), "blend": blend,
             "windows": len(windows), "model": type(model).__name__, "seconds": round(seconds, 3)}
    probability = np.where(valid, total / weight, np.nan).astype(np.float32)
    result = grid.wrap(probability, name="probability", attrs=attrs)
    if not uncertainty:
        return result
    disagreement = np.where(valid, spread / weight, np.nan).astype(np.float32)
    return result, grid.wrap(disagreement, name="uncertainty",
                             attrs={**attrs, "kind": "uncertainty",
                                    "definition": "std of the MFAF branches' ore probabilities"})
