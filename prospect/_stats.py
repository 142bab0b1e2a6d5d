"""Small statistics shared by rooms that must not import each other (private)."""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata


def binary_auc(positive: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve by the rank-sum (Mann–Whitney) formula; NaN when a class is absent."""
    positive = np.asarray(positive).astype(bool)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(score)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
