"""prospect: mineral prospectivity mapping with deep learning.

Rooms are imported on first use, so ``import prospect`` stays fast and never
imports torch::

    import prospect as pp
    samples = pp.io.read_samples("data_samples/qinhang/stream_sediments.csv", crs="EPSG:32649",
                                 coord_scale=1000)
"""

from __future__ import annotations

import importlib
from typing import Any

from prospect._version import __version__
from prospect.grid import Grid

__all__ = ["Grid", "__version__"]

# Every room of the package (see DESIGN.md); each is imported when first touched.
_ROOMS = ("errors", "files", "ranges", "registry", "grid", "io", "styles", "geochem", "screening", "interpolate",
          "layers", "tiles", "blocks", "folds", "normalization", "sampling", "baselines", "models", "training",
          "mapping", "evaluation", "validation", "imagery", "datasets", "pipeline", "qgis", "wofe", "fuzzy", "explain",
          "compute")


def __getattr__(name: str) -> Any:
    if name in _ROOMS:
        try:
            module = importlib.import_module(f"prospect.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"prospect.{name}":
                raise
            raise AttributeError(f"prospect.{name} is not part of this version of prospect "
                                 f"({__version__})") from exc
        globals()[name] = module
        return module
    raise AttributeError(f"module 'prospect' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_ROOMS))
