"""The one preamble every figure helper shares (private)."""

from __future__ import annotations

from typing import Any


def figure_and_axes(ax: Any, figsize: tuple[float, float]) -> tuple[Any, Any]:
    """Draw on ``ax`` when given, else on a new constrained-layout figure of ``figsize``."""
    if ax is not None:
        return ax.figure, ax
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=figsize, layout="constrained")
