"""Per-class results like the Swin paper's Table 3, and a confusion-matrix figure."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from prospect.errors import InputError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["classification_report", "plot_confusion", "study_report"]


def classification_report(y_true: Any, y_prob: Any, classes: Sequence[str]) -> pd.DataFrame:
    """Precision, recall, F1 and support per class, then macro and weighted averages and accuracy.

    ``y_prob`` is (N, classes) probabilities (from ``Trainer.predict``); the
    prediction is their argmax. Undefined ratios are 0 (scikit-learn's ``zero_division=0``). The macro
    average is over the classes that have test images (support > 0): a class with none has no F1 to
    average (a warning names it).
    """
    from prospect.training.metrics import classification_metrics

    y_prob = np.asarray(y_prob)
    if y_prob.ndim != 2 or y_prob.shape[1] != len(classes):
        raise InputError(f"y_prob has shape {y_prob.shape}; expected (N, {len(classes)}) for classes {list(classes)}")
    metrics = classification_metrics(y_true, y_prob)
    support = np.bincount(np.asarray(y_true, dtype=np.int64), minlength=len(classes))
    table = pd.DataFrame({"precision": metrics["precision"], "recall": metrics["recall"], "f1": metrics["f1"],
                          "support": support}, index=list(classes))
    weights = support / max(support.sum(), 1)
    present = support > 0
    if not present.all():
        warnings.warn(f"class(es) {[c for c, p in zip(classes, present, strict=True) if not p]} have no test image: "
                      "left out of the macro averages", stacklevel=2)
    table.loc["macro avg"] = [float(np.mean(np.asarray(metrics[k])[present])) for k in ("precision", "recall", "f1")] \
        + [support.sum()]
    table.loc["weighted avg"] = [float(np.dot(weights, metrics[k])) for k in ("precision", "recall", "f1")] + \
        [support.sum()]
    table.loc["accuracy"] = [np.nan, np.nan, metrics["accuracy"], support.sum()]
    table["support"] = table["support"].astype(int)
    return table


def plot_confusion(y_true: Any, y_prob: Any, classes: Sequence[str], normalize: bool = True, ax: Any = None) -> Figure:
    """Confusion matrix (rows true, columns predicted), as fractions of each true class when ``normalize``."""
    from prospect._plot import figure_and_axes
    from prospect.training.metrics import classification_metrics

    matrix = np.asarray(classification_metrics(y_true, np.asarray(y_prob))["confusion"], dtype=float)
    if normalize:
        matrix = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    fig, ax = figure_and_axes(ax, (1.1 * len(classes) + 2, 1.1 * len(classes) + 1.5))
    image = ax.imshow(matrix, cmap="Blues", vmin=0, vmax=1 if normalize else None)
    for (i, j), value in np.ndenumerate(matrix):
        ax.text(j, i, f"{value:.2f}" if normalize else f"{int(value)}", ha="center", va="center",
                color="white" if value > 0.6 * matrix.max() else "black", fontsize="small")
    ax.set(xticks=range(len(classes)), yticks=range(len(classes)), xlabel="predicted", ylabel="true")
    ax.set_xticklabels(classes, rotation=45, ha="right")
    ax.set_yticklabels(classes)
    fig.colorbar(image, ax=ax, shrink=0.8)
    return fig


def _markdown(frame: pd.DataFrame, digits: int = 3) -> str:
    lines = ["| " + " | ".join(map(str, frame.columns)) + " |", "|" + "---|" * len(frame.columns)]
    for row in frame.itertuples(index=False):
        cells = ["–" if isinstance(v, float) and np.isnan(v) else f"{v:.{digits}f}" if isinstance(v, float) else str(v)
                 for v in row]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def study_report(title: str, setting: Sequence[str], summary: pd.DataFrame, reports: dict[str, pd.DataFrame],
                 synthetic: bool = False, baselines: Sequence[str] = (), combined: Sequence[str] = ()) -> str:
    """The ore-image study as Markdown: what was run, the models side by side, and per model its per-class
    table, confusion matrix (``<model>/confusion.png``) and class-activation maps (``<model>/cam.png``; not for
    the classical ``baselines`` nor the ``combined`` rows of a network and the baseline, which have none)."""
    text = [f"# {title}", ""]
    if synthetic:
        text += ["> **Synthetic images.** The sample set is generated (`prospect.datasets.make_ore_images`); its "
                 "numbers say whether the code learns, not how a model does on real photographs.", ""]
    text += [*[f"- {line}" for line in setting], "", "## Models", "",
             "Test accuracy and macro averages over the classes (each class counts the same); the best by macro F1 "
             "is listed first."
             + (f" *{', '.join(baselines)}* is the classical baseline (colour histograms and texture statistics, "
                "scikit-learn, on the same split): what the networks must beat." if baselines else "")
             + (" Rows ending in *_hybrid* join the network's pooled features and the baseline's features under one "
                "logistic-regression head (fitted on the training images); *_ensemble* is the mean of the network's "
                "and the baseline's probabilities." if combined else "")
             + (" *seconds_per_epoch* is a network's mean training time per epoch." if "seconds_per_epoch" in summary
                else ""),
             "", _markdown(summary.sort_values("f1_macro", ascending=False)), ""]
    for name, table in reports.items():
        frame = table.reset_index(names="class")
        text += [f"## {name}", "", _markdown(frame), "",
                 f"![confusion matrix of {name}]({name}/confusion.png)", "",
                 "*Confusion matrix*: rows are the true classes, columns the predicted ones, as fractions of each "
                 "true class; off-diagonal cells are the confusions to look at.", ""]
        if name in baselines or name in combined:
            continue
        text += [f"![class-activation maps of {name}]({name}/cam.png)", "",
                 "*Grad-CAM*: where in each test image the model found evidence for the class it predicted (title: "
                 "true → predicted); red is strongest. Evidence on the mineral grains is what you want; on borders, "
                 "scale bars or background it is a shortcut.", ""]
    return "\n".join(text)
