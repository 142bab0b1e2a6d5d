"""Seeded generators of the embedded sample data, and where the committed copy lives.

``data_samples/`` in the repository holds the output of these generators with
their default seeds; :func:`sample_path` finds it from a source checkout.
"""

from __future__ import annotations

from pathlib import Path

from prospect.datasets.geophysics import make_qinhang_geophysics
from prospect.datasets.hard_images import TEXTURES, make_hard_images
from prospect.datasets.ore_images import MINERALS, ORE_IMAGES_SEED, make_ore_images
from prospect.datasets.qinhang import QINHANG_BOUNDS, QINHANG_CRS, QINHANG_SEED, make_qinhang
from prospect.datasets.rasters import make_qinhang_rasters
from prospect.errors import MissingFileError

__all__ = ["make_qinhang", "make_qinhang_geophysics", "make_qinhang_rasters", "make_ore_images", "make_hard_images",
           "TEXTURES",
           "sample_path", "QINHANG_SEED", "QINHANG_CRS", "QINHANG_BOUNDS",
           "MINERALS", "ORE_IMAGES_SEED"]


def sample_path(name: str = "qinhang") -> Path:
    """The folder ``data_samples/<name>`` of a source checkout (``"qinhang"`` or ``"ore_images"``).

    An installed (non-editable) copy of the package has no sample data; regenerate
    it with :func:`make_qinhang` then.
    """
    folder = Path(__file__).resolve().parents[2] / "data_samples" / name
    if not folder.is_dir():
        raise MissingFileError(f"no sample data at {str(folder)!r}; regenerate it with "
                               f"prospect.datasets.make_{name}(out_dir)")
    return folder
