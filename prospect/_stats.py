"""Small statistics shared by rooms that must not import each other (private)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from prospect.errors import InputError


def binary_auc(positive: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve by the rank-sum (Mann–Whitney) formula; NaN when a class is absent."""
    positive = np.asarray(positive).astype(bool)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(score)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def paired_difference(first, second, level: float = 0.95, resamples: int = 2000, seed: int = 0) -> dict[str, float]:
    """How much better ``first`` ranks the same held-out deposits than ``second``: the mean over deposits of
    their AUC differences, with a percentile-bootstrap interval over deposits (paired: one draw of deposits
    for both, so the deposits' shared difficulty cancels, as it does not when two models' own intervals are
    compared).

    ``first`` and ``second`` are ``ranks`` tables (:func:`prospect.validation.cross_validate`'s, columns
    ``deposit`` and ``auc``), of one run or of several (seeds) stacked: a deposit ranked several times counts
    once, at its mean. Both must rank the same deposits. Returns ``difference``, ``low``, ``high`` and
    ``deposits``; an interval that holds 0 says the deposits do not tell the two apart.
    """
    if int(resamples) != resamples or resamples < 1:
        raise InputError(f"resamples={resamples!r} must be a whole number >= 1")
    a, b = (pd.DataFrame(t).groupby("deposit")["auc"].mean() for t in (first, second))
    if set(a.index) != set(b.index):
        raise InputError(f"the two rank different deposits: only the first ranks {sorted(set(a.index) - set(b.index))}"
                         f", only the second {sorted(set(b.index) - set(a.index))}; compare runs on the same folds")
    if not len(a):
        raise InputError("no held-out deposit to compare on")
    difference = (a - b.reindex(a.index)).to_numpy(float)
    low, high = bootstrap_mean(difference, level, resamples, seed)
    return {"difference": float(difference.mean()), "low": float(low), "high": float(high),
            "deposits": len(difference)}


def bootstrap_mean(values: np.ndarray, level: float, resamples: int, seed: int) -> tuple[float, float]:
    """The percentile-bootstrap interval (at ``level``) of the mean of ``values``: ``resamples`` draws with
    replacement from ``seed``."""
    if not 0 < level < 1:
        raise InputError(f"level={level!r} must lie in (0, 1), e.g. 0.95")
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), (int(resamples), len(values)))].mean(axis=1)
    low, high = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high)
