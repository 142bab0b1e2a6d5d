"""Classification metrics from labels and class probabilities (numpy; checked against scikit-learn)."""

from __future__ import annotations

from typing import Any

import numpy as np

from prospect._stats import binary_auc
from prospect.errors import InputError

__all__ = ["classification_metrics", "binary_auc"]


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
