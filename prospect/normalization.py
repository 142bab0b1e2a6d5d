"""One standardisation for every model input: per-band mean and standard deviation, fitted on training data only.

    stats = fit(values, bands, axis=(0, 2, 3))     # tiles (n, band, y, x); or (band, n) cells with axis=1
    standardised = apply(values, stats, bands, band_axis=1)

The statistics are a plain dict (``band``, ``mean``, ``std``) that checkpoints, tile files and
``config.json`` carry as they are. Tiles (:func:`prospect.tiles.fit_normalization`), training cells
(:func:`prospect.sampling.fit_normalization`) and the maps (:func:`prospect.mapping.predict_map`, the
windows of :mod:`prospect.sampling`) all fit and apply them here.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from prospect.errors import InputError

__all__ = ["fit", "from_moments", "apply", "check_bands", "signed_indicators"]


def fit(values: np.ndarray, bands: Sequence[str], axis: int | tuple[int, ...]) -> dict:
    """Mean and standard deviation (float64) of ``values`` over ``axis``: one per band, in ``bands`` order.

    A constant band gets a standard deviation of 1, so standardising leaves it at 0 instead of NaN.
    """
    values = np.asarray(values, np.float64)
    return from_moments(bands, values.mean(axis=axis), values.std(axis=axis))


def from_moments(bands: Sequence[str], mean: np.ndarray, std: np.ndarray) -> dict:
    """The statistics of :func:`fit` from per-band means and standard deviations computed elsewhere (a lazy stack's,
    block by block); a standard deviation of 0 becomes 1, as there."""
    std = np.asarray(std, np.float64)
    return {"band": [str(b) for b in bands], "mean": np.asarray(mean, np.float64).tolist(),
            "std": np.where(std > 0, std, 1.0).tolist()}


def signed_indicators(stats: dict, indicator: Sequence[bool]) -> dict:
    """``stats`` (from :func:`fit`, with the bands' own means) with mean 0.5 and standard deviation 0.5 for the bands
    flagged as 0/1 indicators, so that 0 -> -1 and 1 -> +1 whatever their share, and ``reference``: every band's
    mean once standardised (0, or 2p - 1 for an indicator with a share p of 1s), the "all-mean" input that
    :func:`prospect.mapping.integrated_gradients` measures from. Changes ``stats`` in place and returns it."""
    indicator = np.asarray(indicator, bool)
    raw = np.asarray(stats["mean"], np.float64)
    stats["mean"] = np.where(indicator, 0.5, raw).tolist()
    stats["std"] = np.where(indicator, 0.5, stats["std"]).tolist()
    stats["reference"] = ((raw - np.asarray(stats["mean"])) / np.asarray(stats["std"])).tolist()
    return stats


def check_bands(stats: dict, bands: Sequence[str], what: str = "the stack") -> None:
    """Refuse statistics fitted on other bands (or in another order) than ``bands``."""
    bands = [str(b) for b in bands]
    if list(stats.get("band", [])) != bands:
        verb = "have" if what.endswith("s") else "has"
        raise InputError(f"normalization is for bands {stats.get('band')}, {what} {verb} {bands}")


def apply(values: np.ndarray, stats: dict, bands: Sequence[str], band_axis: int = 0, in_place: bool = False,
          what: str = "the stack") -> np.ndarray:
    """``(values - mean) / std`` per band, in float32; ``in_place`` writes into ``values`` (a float32 array)."""
    check_bands(stats, bands, what)
    shape = [1] * np.ndim(values)
    shape[band_axis] = -1
    mean = np.asarray(stats["mean"], np.float32).reshape(shape)
    std = np.asarray(stats["std"], np.float32).reshape(shape)
    if in_place:
        values -= mean
        values /= std
        return values
    return (values - mean) / std
