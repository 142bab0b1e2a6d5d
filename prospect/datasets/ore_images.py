"""A small synthetic set of reflected-light microscopy images of five opaque minerals.

Classes follow the Swin Transformer study of opaque minerals (Cai et al.):
arsenopyrite, chalcopyrite, gold, pyrite and stibnite, drawn so that colour,
grain shape and edge character differ as its Table 1 describes — gold bright
yellow and smooth, pyrite light yellow euhedral cubes, chalcopyrite
copper-yellow with broken edges, arsenopyrite bright white rhombs, stibnite
white-grey elongated columns — on a dark gangue, with varying illumination and
white balance, and some grains of a second mineral so the classes are not
trivially separable. For tests and the image workflow; not a benchmark.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

__all__ = ["make_ore_images", "MINERALS", "ORE_IMAGES_SEED"]

ORE_IMAGES_SEED = 7
MINERALS = ("arsenopyrite", "chalcopyrite", "gold", "pyrite", "stibnite")

# Reflected-light colour (RGB) of each mineral, before illumination and white balance vary.
_COLOUR = {
    "arsenopyrite": (236, 234, 226),
    "chalcopyrite": (214, 170, 72),
    "gold": (250, 206, 64),
    "pyrite": (228, 216, 150),
    "stibnite": (186, 188, 194),
}


def _polygon(rng: np.random.Generator, mineral: str, centre: np.ndarray, size: float) -> np.ndarray:
    """Outline of one grain, shaped by its mineral."""
    angle = rng.uniform(0, np.pi)
    rotate = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    if mineral == "pyrite":          # euhedral cube sections: squares, a few rectangles
        w, h = size, size * rng.uniform(0.8, 1.25)
        shape = np.array([[-w, -h], [w, -h], [w, h], [-w, h]]) / 2
    elif mineral == "arsenopyrite":  # rhombs
        w, h = size * rng.uniform(1.1, 1.5), size * rng.uniform(0.55, 0.8)
        shape = np.array([[-w, 0], [0, -h], [w, 0], [0, h]]) / 2
    elif mineral == "stibnite":      # elongated columns and laths
        w, h = size * rng.uniform(2.2, 4.0), size * rng.uniform(0.22, 0.4)
        shape = np.array([[-w, -h], [w, -h], [w, h], [-w, h]]) / 2
    elif mineral == "gold":          # smooth rounded blebs
        t = np.linspace(0, 2 * np.pi, 48, endpoint=False)
        radius = size / 2 * (1 + 0.12 * np.sin(2 * t + rng.uniform(0, 6)) + 0.06 * np.sin(3 * t + rng.uniform(0, 6)))
        shape = np.column_stack([radius * np.cos(t) * rng.uniform(0.8, 1.2), radius * np.sin(t)])
    else:                            # chalcopyrite: anhedral, broken jagged edges
        t = np.sort(rng.uniform(0, 2 * np.pi, 22))
        radius = size / 2 * rng.uniform(0.55, 1.15, len(t))
        shape = np.column_stack([radius * np.cos(t), radius * np.sin(t)])
    return shape @ rotate.T + centre


def _image(rng: np.random.Generator, mineral: str, size: int) -> np.ndarray:
    from PIL import Image, ImageDraw, ImageFilter

    scale = 2  # drawn at twice the size and reduced, for anti-aliased grain edges
    canvas = size * scale
    base = rng.uniform(38, 62)
    gangue = Image.new("RGB", (canvas, canvas), tuple(int(base + d) for d in rng.normal(0, 3, 3)))
    draw = ImageDraw.Draw(gangue)
    # Silicate gangue: a few slightly lighter and darker patches, then polishing scratches.
    for _ in range(rng.integers(4, 9)):
        c = rng.uniform(0, canvas, 2)
        r = rng.uniform(20, 90) * scale
        tone = int(base + rng.uniform(-12, 14))
        draw.ellipse([*(c - r), *(c + r)], fill=(tone, tone, tone + 2))
    gangue = gangue.filter(ImageFilter.GaussianBlur(18))
    draw = ImageDraw.Draw(gangue)
    for _ in range(rng.integers(0, 4)):
        p, q = rng.uniform(0, canvas, 2), rng.uniform(0, canvas, 2)
        draw.line([*p, *q], fill=(int(base) + 18,) * 3, width=1)

    minerals = [mineral]
    if rng.random() < 0.3:  # an intergrown second mineral in some sections
        minerals.append(MINERALS[rng.integers(len(MINERALS))])
    for index, kind in enumerate(minerals):
        count = rng.integers(3, 9) if index == 0 else rng.integers(1, 3)
        grain = rng.uniform(26, 70) * scale if index == 0 else rng.uniform(14, 34) * scale
        colour = np.array(_COLOUR[kind], float)
        if kind == "stibnite":  # columns grow in bundles of similar orientation
            count += 3
        for _ in range(count):
            centre = rng.uniform(0.1, 0.9, 2) * canvas
            outline = _polygon(rng, kind, centre, grain * rng.uniform(0.6, 1.3))
            tint = np.clip(colour * rng.uniform(0.94, 1.04), 0, 255)
            draw.polygon([tuple(p) for p in outline], fill=tuple(int(v) for v in tint))
            if kind in ("pyrite", "arsenopyrite") and rng.random() < 0.5:  # polishing pits in hard minerals
                pit = centre + rng.normal(0, grain / 6, 2)
                r = rng.uniform(1.5, 4) * scale
                draw.ellipse([*(pit - r), *(pit + r)], fill=(int(base),) * 3)
    image = gangue.resize((size, size), Image.LANCZOS).filter(ImageFilter.GaussianBlur(0.6))

    pixels = np.asarray(image, dtype=float)
    # Microscope illumination and camera white balance differ from image to image.
    pixels *= rng.uniform(0.8, 1.15) * rng.uniform(0.92, 1.08, 3)
    yy, xx = np.mgrid[0:size, 0:size] / size
    pixels *= (1 + rng.uniform(-0.08, 0.08) * (xx - 0.5) + rng.uniform(-0.08, 0.08) * (yy - 0.5))[..., None]
    return np.clip(np.round(pixels), 0, 255).astype(np.uint8)


def make_ore_images(out_dir: str | os.PathLike, seed: int = ORE_IMAGES_SEED, per_class: int = 40,
                    size: int = 256, overwrite: bool = False) -> Path:
    """Draw the synthetic microscopy set: one folder of PNG images per mineral.

    Parameters
    ----------
    out_dir : path
        Folder that receives ``<mineral>/<mineral>_NNN.png`` (created if missing).
    seed : int
        Seed of every random choice. Default :data:`ORE_IMAGES_SEED`, which gives
        the images in ``data_samples/ore_images``.
    per_class : int
        Images per mineral. Default 40.
    size : int
        Width and height in pixels. Default 256 (the Swin paper's crop size).
    overwrite : bool
        Replace images that already exist. Default False.

    Returns
    -------
    pathlib.Path of ``out_dir``.
    """
    from PIL import Image

    from prospect.errors import InputError
    from prospect.files import atomic_output

    if per_class < 1 or size < 32:
        raise InputError(f"per_class={per_class!r} must be at least 1 and size={size!r} at least 32")
    out_dir = Path(out_dir)
    for index, mineral in enumerate(MINERALS):
        folder = out_dir / mineral
        folder.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng([seed, index])  # one stream per class: per_class changes no other class
        for number in range(per_class):
            pixels = _image(rng, mineral, size)
            with atomic_output(folder / f"{mineral}_{number:03d}.png", overwrite) as tmp:
                Image.fromarray(pixels).save(tmp, format="PNG", optimize=True)
    return out_dir
