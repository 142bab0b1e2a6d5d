"""The one preamble every figure helper shares, and the figures of the evaluation's tables (private; public
through :mod:`prospect.evaluation`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure


def figure_and_axes(ax: Any, figsize: tuple[float, float]) -> tuple[Any, Any]:
    """Draw on ``ax`` when given, else on a new constrained-layout figure of ``figsize``."""
    if ax is not None:
        return ax.figure, ax
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=figsize, layout="constrained")


def plot_rate_curve(*curves: pd.DataFrame, ax: Any = None) -> Figure:
    """Success- and prediction-rate curves (from :func:`~prospect.evaluation.success_rate_curve` /
    :func:`~prospect.evaluation.prediction_rate_curve`)."""
    fig, ax = figure_and_axes(ax, (4.5, 4.5))
    for curve in curves:
        name = curve.attrs.get("label", curve.attrs.get("kind", "rate"))
        steps = "held-out" in curve.attrs.get("kind", "")   # deposits are found at their area: a step curve
        ax.plot(curve["area_fraction"], curve["deposit_fraction"], drawstyle="steps-post" if steps else "default",
                label=f"{name} (AUC {curve.attrs.get('auc', float('nan')):.3f})")
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
    ax.set(xlabel="fraction of area (highest probability first)", ylabel="fraction of deposits", xlim=(0, 1),
           ylim=(0, 1), aspect="equal")
    ax.legend(loc="lower right", fontsize="small")
    return fig


def plot_prediction_area(table: pd.DataFrame, ax: Any = None) -> Figure:
    """The P-A plot: prediction rate and occupied area against the threshold, with the intersection."""
    from matplotlib.ticker import ScalarFormatter

    fig, ax = figure_and_axes(ax, (5, 4))
    ax.plot(table["threshold"], 100 * table["prediction_rate"], drawstyle="steps-pre",
            label="deposits at or above the threshold (%)")
    ax.plot(table["threshold"], 100 * (1 - table["occupied_area"]), label="area below the threshold (%)")
    rate, threshold = 100 * table.attrs["intersection_rate"], table.attrs["intersection_threshold"]
    ax.plot([threshold], [rate], "o", color="k",
            label=f"crossing at {threshold:.3f}: {rate:.0f} % of deposits in {100 - rate:.0f} % of the area")
    ax.axvline(threshold, color="k", linestyle="--", linewidth=0.8)
    ax.xaxis.set_major_formatter(ScalarFormatter(useOffset=False))
    ax.set(xlabel="probability threshold", ylabel="percent", ylim=(0, 100))
    ax.legend(fontsize="small", loc="lower left")
    return fig
