"""Classification metrics from labels and class probabilities (numpy; checked against scikit-learn)."""

from __future__ import annotations

from typing import Any

import numpy as np

from prospect._stats import binary_auc
from prospect.errors import InputError

__all__ = ["classification_metrics", "binary_auc", "auc_interval"]


def classification_metrics(y_true: Any, probabilities: Any, num_classes: int | None = None) -> dict[str, Any]:
    """Accuracy, precision, recall and F1 (macro and per class), ROC AUC and the confusion matrix.

    Parameters
    ----------
    y_true : (N,) int labels in ``[0, classes)``.
    probabilities : (N, classes) class probabilities; the prediction is their argmax.
    num_classes : int, optional
        Default: the width of ``probabilities``.

    Returns
    -------
    dict with ``accuracy``, ``precision_macro``, ``recall_macro``, ``f1_macro``,
    ``precision``, ``recall``, ``f1`` (lists per class; 0 where undefined, as
    scikit-learn's ``zero_division=0``), ``roc_auc`` (binary: from the ore
    probability; more classes: the macro one-vs-rest AUC over classes present),
    ``confusion`` (rows true, columns predicted) and ``n``.
    """
    y_true = np.asarray(y_true).astype(np.int64).ravel()
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if probabilities.ndim != 2 or len(probabilities) != len(y_true):
        raise InputError(f"probabilities must be (N, classes) for N = {len(y_true)} labels, "
                         f"got shape {probabilities.shape}")
    classes = probabilities.shape[1] if num_classes is None else int(num_classes)
    if len(y_true) and (y_true.min() < 0 or y_true.max() >= classes):
        raise InputError(f"labels must lie in [0, {classes}), found {int(y_true.min())}..{int(y_true.max())}")
    predicted = probabilities.argmax(axis=1)
    confusion = np.zeros((classes, classes), np.int64)
    np.add.at(confusion, (y_true, predicted), 1)
    true_positive = np.diag(confusion).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.nan_to_num(true_positive / confusion.sum(axis=0))
        recall = np.nan_to_num(true_positive / confusion.sum(axis=1))
        f1 = np.nan_to_num(2 * precision * recall / (precision + recall))
    if classes == 2:
        auc = binary_auc(y_true == 1, probabilities[:, 1])
    else:
        present = [c for c in range(classes) if 0 < (y_true == c).sum() < len(y_true)]
        auc = float(np.mean([binary_auc(y_true == c, probabilities[:, c]) for c in present])) if present else np.nan
    return {"accuracy": float(true_positive.sum() / max(len(y_true), 1)), "precision_macro": float(precision.mean()),
            "recall_macro": float(recall.mean()), "f1_macro": float(f1.mean()), "precision": precision.tolist(),
            "recall": recall.tolist(), "f1": f1.tolist(), "roc_auc": auc, "confusion": confusion.tolist(),
            "n": int(len(y_true))}


def auc_interval(labels: Any, scores: Any, level: float = 0.95, resamples: int = 2000,
                 seed: int = 0) -> tuple[float, float]:
    """Bootstrap interval of the ROC AUC over the evaluated samples (stratified, percentile method).

    Positives and negatives are resampled separately (so every resample has both classes) and the
    interval is the central ``level`` share of the resampled AUCs. It says how far the choice of
    test samples alone moves the AUC — with 4 ore tiles, a lot.

    Parameters
    ----------
    labels, scores : array (n,), or a list of them
        0/1 labels and the score of class 1. A list holds one test set per seed: each is resampled
        on its own and the resampled AUCs are averaged, giving an interval for the mean over seeds.
    level : float
        Coverage, in (0, 1).
    resamples : int
    seed : int

    Returns
    -------
    (low, high) ; NaN when a test set lacks a class.
    """
    from scipy.stats import rankdata

    if not 0 < level < 1:
        raise InputError(f"level={level!r} must lie in (0, 1), e.g. 0.95")
    if int(resamples) < 1:
        raise InputError(f"resamples={resamples!r} must be a positive whole number")
    several = isinstance(labels, (list, tuple)) and len(labels) > 0 and np.ndim(labels[0]) == 1
    sets = list(zip(labels, scores, strict=True)) if several else [(labels, scores)]
    rng = np.random.default_rng(seed)
    total = np.zeros(int(resamples))
    for y, s in sets:
        y, s = np.asarray(y).astype(bool), np.asarray(s, dtype=float)
        if y.shape != s.shape or y.ndim != 1:
            raise InputError(f"labels and scores must be 1-D of one length, got {y.shape} and {s.shape}")
        positive, negative = s[y], s[~y]
        if len(positive) == 0 or len(negative) == 0:
            return float("nan"), float("nan")
        drawn = np.concatenate([rng.choice(positive, (int(resamples), len(positive))),
                                rng.choice(negative, (int(resamples), len(negative)))], axis=1)
        ranks = rankdata(drawn, axis=1)[:, :len(positive)].sum(axis=1)
        total += (ranks - len(positive) * (len(positive) + 1) / 2) / (len(positive) * len(negative))
    low, high = np.quantile(total / len(sets), [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high)
