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
from typing import TYPE_CHECKING, Annotated, Any, Literal

import numpy as np

from prospect.errors import InputError
from prospect.grid import Grid
from prospect.ranges import whole

if TYPE_CHECKING:
    import torch
    import xarray as xr

__all__ = ["predict_map", "predict_centres", "default_window", "default_stride", "integrated_gradients",
           "model_in_channels"]

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


def _check_bands(model: Any, bands: list[str]) -> None:
    expected = model_in_channels(model)
    if expected is not None and expected != len(bands):
        raise InputError(f"the model expects {expected} bands but the stack has {len(bands)} ({bands})")


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
    size: Annotated[int, whole(1)] = 128,
    stride: Annotated[int, whole(1)] = 32,
    batch_size: Annotated[int, whole(1)] = 64,
    device: str = "auto",
    blend: Literal["mean", "gaussian"] = "mean",
    normalization: dict | None = None,
    uncertainty: bool = False,
    ore_class: Annotated[int, whole(0)] = 1,
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

    from prospect.grid import as_bands
    from prospect.models import MFAFOutput, probabilities

    grid = Grid.from_dataarray(stack)
    stack = as_bands(stack)
    bands = [str(b) for b in stack["band"].to_numpy()]
    rows, cols = grid.shape
    _check_bands(model, bands)
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
        from prospect import normalization as standard

        standard.apply(values, normalization, bands, in_place=True)

    device = _device(device)
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


def _device(device: str) -> torch.device:
    import torch

    chosen = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else
                          ("cpu" if device == "auto" else device))
    if chosen.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"device={str(chosen)!r} but torch sees no CUDA device; use device='cpu' or 'auto'")
    return chosen


class _Lattice:
    """The cells scored at ``stride``: every ``stride``-th row and column of a grid of ``shape`` (and the last),
    where a valid cell takes part of their score (within ``stride - 1`` cells); :meth:`surface` spreads values on
    them bilinearly.

    ``valid`` covers the grid's rows and columns from ``origin`` on; the lattice is the part around the ``core``
    cells ``((r0, r1), (c0, c1))`` (default: all of ``valid``), whose interpolation it needs. A block of a lazy
    stack read with a halo of ``2 * stride + size`` cells holds all it needs: the same centres and the same
    values as the whole grid's lattice there.
    """

    def __init__(self, valid: np.ndarray, stride: int, shape: tuple[int, int] | None = None,
                 origin: tuple[int, int] = (0, 0), core: tuple[tuple[int, int], tuple[int, int]] | None = None) -> None:
        from scipy.ndimage import maximum_filter

        shape = valid.shape if shape is None else shape
        core = ((origin[0], origin[0] + valid.shape[0]), (origin[1], origin[1] + valid.shape[1])) if core is None \
            else core
        self.valid, self.stride, self.origin, self.core = valid, stride, origin, core
        self.rows, self.cols = (self._around(n, stride, *span) for n, span in zip(shape, core, strict=True))
        near = maximum_filter(valid, size=2 * stride - 1, mode="constant") if stride > 1 else valid
        self.needed = near[np.ix_(self.rows - origin[0], self.cols - origin[1])]
        self.centres = [(self.rows[i], self.cols[j]) for i, j in np.argwhere(self.needed)]

    @staticmethod
    def _around(n: int, stride: int, start: int, stop: int) -> np.ndarray:
        """The lattice lines of an axis of ``n`` cells from the last at or before ``start`` to the first at or
        after ``stop - 1``."""
        lines = np.unique(np.r_[np.arange(0, n, stride), n - 1])
        first, last = lines[lines <= start].max(), lines[lines >= stop - 1].min()
        return lines[(lines >= first) & (lines <= last)]

    def surface(self, scores: np.ndarray) -> np.ndarray:
        """The core's ``(rows, cols)`` from one value per centre; unscored centres weigh 0 in every valid cell's
        interpolation."""
        from scipy.interpolate import RegularGridInterpolator

        lattice = np.zeros(self.needed.shape, np.float32)
        lattice[self.needed] = scores
        (r0, r1), (c0, c1) = self.core
        if self.stride == 1:
            return lattice
        interpolate = RegularGridInterpolator((self.rows, self.cols), lattice, method="linear")
        rr, cc = np.meshgrid(np.arange(r0, r1), np.arange(c0, c1), indexing="ij")
        return interpolate(np.column_stack([rr.ravel(), cc.ravel()])).reshape(r1 - r0, c1 - c0)


def _checked(model: Any, stack: xr.DataArray, size: Any, stride: Any, batch_size: Any) -> None:
    _check_bands(model, [str(b) for b in stack["band"].to_numpy()])
    if int(size) != size or size < 1:
        raise InputError(f"size={size!r} must be a positive whole number of cells (the training window)")
    if int(stride) != stride or stride < 1:
        raise InputError(f"stride={stride!r} must be a positive whole number of cells")
    if int(batch_size) != batch_size or batch_size < 1:
        raise InputError(f"batch_size={batch_size!r} must be a positive whole number")


def _centred(model: Any, stack: xr.DataArray, size: Any, stride: Any, batch_size: Any, normalization: dict | None,
             doing: str) -> tuple[np.ndarray, np.ndarray, _Lattice]:
    """What scoring centred windows needs, checked: the valid cells, the padded standardised stack and the
    lattice of centres (:func:`predict_centres` and :func:`integrated_gradients` share it)."""
    from prospect.sampling import padded

    _checked(model, stack, size, stride, batch_size)
    valid = np.isfinite(stack.to_numpy()).all(axis=0)
    if not valid.any():
        raise InputError(f"the stack has no cell that is valid in every band: nothing to {doing}")
    return valid, padded(stack, int(size), normalization), _Lattice(valid, int(stride))


def _scores(model: Any, source: np.ndarray, centres: list, origin: tuple[int, int], size: int, batch_size: int,
            chosen: torch.device, ore_class: int) -> np.ndarray:
    """The ore probability of the window centred on each ``(row, col)`` of ``centres``: ``source``'s
    ``[:, r - origin[0]:... + size, c - origin[1]:... + size]``, ``batch_size`` windows at a time."""
    import torch

    from prospect.models import probabilities

    scores = np.full(len(centres), np.nan, np.float32)
    with torch.inference_mode():
        for start in range(0, len(centres), batch_size):
            chunk = centres[start:start + batch_size]
            batch = np.stack([source[:, r - origin[0]:r - origin[0] + size, c - origin[1]:c - origin[1] + size]
                              for r, c in chunk])
            with torch.autocast(chosen.type, dtype=torch.bfloat16, enabled=chosen.type == "cuda"):
                output = model(torch.from_numpy(batch).to(chosen))
            scores[start:start + len(chunk)] = probabilities(output)[:, ore_class].float().cpu().numpy()
    return scores


def _lazy_centres(model: Any, stack: xr.DataArray, size: int, stride: int, normalization: dict | None,
                  batch_size: int, device: str, ore_class: int) -> Any:
    """:func:`predict_centres` of a lazy stack: each block scored from the block and a halo of ``2 * stride + size``
    cells around it, its lattice the whole grid's there; a lazy ``(y, x)`` float32 array of the stack's blocks."""
    import dask.array as da

    from prospect.compute import _cells, with_halo
    from prospect.sampling import filled

    bands = [str(b) for b in stack["band"].to_numpy()]
    data = _cells(stack)
    rows, cols = data.shape[1:]
    means = None
    if normalization is None:    # the whole band's mean fills its holes, as padded() fills them
        means = np.asarray(da.nanmean(data.astype(np.float64), axis=(1, 2)).compute(), np.float32)
        means = np.where(np.isfinite(means), means, 0.0).astype(np.float32)
    halo = 2 * stride + size
    half = size // 2

    def block(values: np.ndarray, core: tuple[tuple[int, int], tuple[int, int]],
              origin: tuple[int, int]) -> np.ndarray:
        (r0, r1), (c0, c1) = core
        valid = np.isfinite(values).all(axis=0)
        lattice = _Lattice(valid, stride, (rows, cols), origin, core)
        inside = valid[r0 - origin[0]:r1 - origin[0], c0 - origin[1]:c1 - origin[1]]
        out = np.full(inside.shape, np.nan, np.float32)
        if not inside.any():
            return out
        source = filled(values, bands, normalization, means)
        # a window reaching past the grid repeats its edge cells (padded()'s edge mode): indices clipped to the grid
        take_r = np.clip(np.arange(lattice.rows[0] - half, lattice.rows[-1] - half + size), 0, rows - 1) - origin[0]
        take_c = np.clip(np.arange(lattice.cols[0] - half, lattice.cols[-1] - half + size), 0, cols - 1) - origin[1]
        chosen = _device(device)      # on a cluster: the device of the worker the block runs on
        scores = _scores(model.to(chosen).eval(), source[:, take_r][:, :, take_c], lattice.centres,
                         (lattice.rows[0], lattice.cols[0]), size, batch_size, chosen, ore_class)
        out[inside] = lattice.surface(scores)[inside]
        return out

    return with_halo(data, halo, block)


def default_window(positive_radius: float, grid: Grid, span: str = "diameter") -> int:
    """The networks' window when none is given, in cells: ``"diameter"``, the positive radius on either side of
    the centre cell (11 for 1 km on 200 m cells); ``"radius"``, the odd number of cells that spans the positive
    radius, at least 3 (5 there). Each network's :attr:`prospect.registry.ModelEntry.window` says which."""
    cells = int(np.ceil(positive_radius / max(grid.resolution)))
    if span == "diameter":
        return 2 * cells + 1
    if span != "radius":
        raise InputError(f"span={span!r}; valid: 'diameter' or 'radius'")
    return max(cells, 3) | 1      # an even count of cells rounds up to the next odd one


def default_stride(positive_radius: float, grid: Grid, window: int) -> int:
    """The cells between scored windows when a map of centre-labelled windows is not told (``map_stride``): half the
    labels' radius, at most half the window, so that every cell lies in the windows whose scores it is given, and
    at least 1 (2 for 1 km on 200 m cells and 5-cell windows; 1 on 1 km cells; 5 on 100 m cells and 11-cell ones)."""
    return max(1, min(int(positive_radius // (2 * max(grid.resolution))), (int(window) + 1) // 2))


def predict_centres(
    model: torch.nn.Module,
    stack: xr.DataArray,
    size: int,
    stride: int = 1,
    normalization: dict | None = None,
    batch_size: int = 256,
    device: str = "auto",
    ore_class: Annotated[int, whole(0)] = 1,
) -> xr.DataArray:
    """Ore probability of every cell for a model trained on windows labelled by their centre cell.

    A window of ``size`` cells is centred on every ``stride``-th cell (and the last row and column),
    as :func:`prospect.sampling.windows` cut the training windows, and the cells in between take the
    bilinear interpolation of the four lattice cells around them. ``stride=1`` scores every cell.

    A lazy stack (:mod:`prospect.compute`) gives a lazy map: each block is scored when it is computed or
    written, from the block and a halo of ``2 * stride + size`` cells (the same windows and lattice as the whole
    grid's), on the device of the machine it runs on.

    Parameters
    ----------
    model : torch.nn.Module
        Returns logits ``(B, classes)`` or an :class:`~prospect.models.MFAFOutput`.
    stack : DataArray (band, y, x)
    size : int
        The training window size.
    stride : int
        Step of the lattice of scored cells, ≥ 1.
    normalization : dict, optional
        The training statistics (:func:`prospect.sampling.fit_normalization`).
    batch_size : int
    device : {"auto", "cpu", "cuda", ...}
    ore_class : int

    Returns
    -------
    DataArray (y, x) float32, NaN where any band of the stack is NaN, ``attrs["kind"] = "probability"``.
    """
    from prospect.compute import is_lazy, valid_cells

    grid = Grid.from_dataarray(stack)
    size = int(size)
    attrs = {"kind": "probability", "size": size, "stride": int(stride), "label": "center cell",
             "model": type(model).__name__}
    if is_lazy(stack):
        _checked(model, stack, size, stride, batch_size)
        _device(device)
        if not valid_cells(stack).any():
            raise InputError("the stack has no cell that is valid in every band: nothing to map")
        lazy = _lazy_centres(model, stack, size, int(stride), normalization, int(batch_size), device, int(ore_class))
        return grid.wrap(lazy, name="probability", attrs=attrs)
    valid, source, lattice = _centred(model, stack, size, stride, batch_size, normalization, "map")
    chosen = _device(device)
    started = time.perf_counter()
    scores = _scores(model.to(chosen).eval(), source, lattice.centres, (0, 0), size, int(batch_size), chosen,
                     int(ore_class))
    seconds = time.perf_counter() - started
    log.info("scored %d centred windows in %.1f s", len(lattice.centres), seconds)
    probability = np.where(valid, lattice.surface(scores), np.nan).astype(np.float32)
    return grid.wrap(probability, name="probability",
                     attrs={**attrs, "windows": len(lattice.centres), "seconds": round(seconds, 3)})


def integrated_gradients(
    model: torch.nn.Module,
    stack: xr.DataArray,
    size: int,
    stride: int = 1,
    normalization: dict | None = None,
    steps: Annotated[int, whole(2)] = 64,
    batch_size: int = 64,
    device: str = "auto",
    ore_class: Annotated[int, whole(0)] = 1,
) -> xr.DataArray:
    """Why each cell scores as it does under a window network: every band's share of its ore log-odds.

    Integrated gradients (Sundararajan et al. 2017) from the all-mean window (every band at its mean: 0 once
    standardised, or ``normalization["reference"]`` where a 0/1 band is read as -1/+1; the "no evidence" window)
    to the cell's window, ``steps`` midpoint steps along the straight path, summed over
    the window's cells per band. The shares add up to the window's log-odds less the all-mean window's
    (completeness, up to the path integral's discretisation; ``attrs["completeness"]`` is the summed gap over
    the scored windows relative to their summed absolute log-odds difference). Windows are centred on the same
    lattice as :func:`predict_centres` and spread between lattice cells bilinearly.

    Returns
    -------
    DataArray (band, y, x) float32, NaN where any band is NaN; ``attrs`` ``unit`` ("log-odds"), ``expected``
    (the all-mean window's log-odds) and ``completeness``.
    """
    import torch

    from prospect.models import probabilities

    grid = Grid.from_dataarray(stack)
    bands = [str(b) for b in stack["band"].to_numpy()]
    if int(steps) != steps or steps < 2:
        raise InputError(f"steps={steps!r} must be a whole number >= 2")
    size, steps = int(size), int(steps)
    valid, source, lattice = _centred(model, stack, size, stride, batch_size, normalization, "explain")
    chosen = _device(device)
    model = model.to(chosen).eval()

    def log_odds(x: torch.Tensor) -> torch.Tensor:
        p = probabilities(model(x)).double().clamp_min(1e-12)
        return torch.log(p[:, ore_class]) - torch.log1p(-p[:, ore_class].clamp_max(1 - 1e-12))

    alphas = (torch.arange(steps, dtype=torch.float32, device=chosen) + 0.5) / steps
    shares = np.zeros((len(lattice.centres), len(bands)), np.float64)
    gaps = np.zeros((len(lattice.centres), 2))      # |shares' sum - log-odds difference|, |difference|
    started = time.perf_counter()
    # the all-mean window: 0 in every standardised band, or the band's mean where the statistics say otherwise
    # (a 0/1 band read as -1/+1, prospect.sampling.fit_normalization)
    reference = torch.zeros((1, len(bands), 1, 1), device=chosen)
    if normalization is not None and "reference" in normalization:
        reference[0, :, 0, 0] = torch.as_tensor(normalization["reference"], dtype=torch.float32)
    with torch.no_grad():
        expected = float(log_odds(reference.expand(1, len(bands), size, size))[0])
    for start in range(0, len(lattice.centres), int(batch_size)):
        chunk = lattice.centres[start:start + int(batch_size)]
        x = torch.from_numpy(np.stack([source[:, r:r + size, c:c + size] for r, c in chunk])).to(chosen)
        total = torch.zeros_like(x)
        for alpha in alphas:
            point = (reference + alpha * (x - reference)).requires_grad_(True)
            (gradient,) = torch.autograd.grad(log_odds(point).sum(), point)
            total += gradient
        attribution = ((x - reference) * total / steps).double().sum(dim=(2, 3)).cpu().numpy()
        with torch.no_grad():
            difference = log_odds(x).cpu().numpy() - expected
        shares[start:start + len(chunk)] = attribution
        gaps[start:start + len(chunk)] = np.column_stack([np.abs(attribution.sum(axis=1) - difference),
                                                          np.abs(difference)])
    seconds = time.perf_counter() - started
    completeness = float(gaps[:, 0].sum() / max(gaps[:, 1].sum(), 1e-12))
    log.info("integrated gradients of %d centred windows (%d steps) in %.1f s; completeness gap %.2g of the "
             "log-odds differences", len(lattice.centres), steps, seconds, completeness)
    out = np.stack([np.where(valid, lattice.surface(shares[:, b].astype(np.float32)), np.nan)
                    for b in range(len(bands))]).astype(np.float32)
    return grid.wrap(out, bands=bands, name="contributions",
                     attrs={"kind": "contributions", "model": type(model).__name__, "unit": "log-odds",
                            "expected": expected, "completeness": completeness, "steps": steps,
                            "size": size, "stride": int(stride), "seconds": round(seconds, 3),
                            "definition": "integrated gradients from the all-mean window, summed over the window "
                                          "per band; they add up to the cell's log-odds less the all-mean "
                                          "window's"})
