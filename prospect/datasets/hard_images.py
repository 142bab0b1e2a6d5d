"""A generated image set that is hard the way real photographs are: texture, not colour, tells the classes.

Three textures of polished sections — ``lamellar`` (exsolution lamellae: parallel bands at a random angle and
spacing), ``granular`` (rounded grains of random size) and ``fibrous`` (crossing needles) — each image grey or
tinted RGB at random, at a random brightness, contrast, scale and size (not square), with sensor noise and uneven
illumination. Neither format, size, colour nor mean brightness carries the class, so a model must learn the
texture. Made in code (nothing is committed): for tests and ``benchmarks/bench_images.py``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

__all__ = ["make_hard_images", "TEXTURES"]

TEXTURES = ("fibrous", "granular", "lamellar")


def _texture(rng: np.random.Generator, kind: str, shape: tuple[int, int], scale: float) -> np.ndarray:
    """A texture in [0, 1] on ``shape`` (rows, cols); ``scale`` stretches its features."""
    rows, cols = shape
    y, x = np.mgrid[0:rows, 0:cols].astype(np.float64)
    if kind == "lamellar":
        angle = rng.uniform(0, np.pi)
        spacing = rng.uniform(5, 9) * scale
        phase = (x * np.cos(angle) + y * np.sin(angle)) / spacing * 2 * np.pi
        return (np.sin(phase + rng.uniform(0, 2 * np.pi)) > rng.uniform(-0.3, 0.3)).astype(np.float64)
    out = np.zeros(shape)
    if kind == "granular":
        for _ in range(int(rows * cols / (140 * scale**2))):
            cy, cx, r = rng.uniform(0, rows), rng.uniform(0, cols), rng.uniform(2.5, 6) * scale
            out[(y - cy) ** 2 + (x - cx) ** 2 <= r * r] = 1.0
        return out
    for _ in range(int(rows * cols / (260 * scale))):   # fibrous: needles in every direction
        cy, cx = rng.uniform(0, rows), rng.uniform(0, cols)
        angle, length = rng.uniform(0, np.pi), rng.uniform(10, 25) * scale
        t = np.linspace(-length / 2, length / 2, int(2 * length) + 2)
        py = np.clip(np.round(cy + t * np.sin(angle)).astype(int), 0, rows - 1)
        px = np.clip(np.round(cx + t * np.cos(angle)).astype(int), 0, cols - 1)
        out[py, px] = 1.0
    return out


def make_hard_images(out_dir: str | os.PathLike, per_class: int = 60, seed: int = 0) -> Path:
    """Write ``out_dir/<texture>/<n>.png`` for the three :data:`TEXTURES`; returns ``out_dir``.

    Same seed, same files. Images are 80-200 px a side, half grey (mode ``L``) and half RGB, in every class alike.
    """
    from PIL import Image

    out = Path(out_dir)
    rng = np.random.default_rng(seed)
    for kind in TEXTURES:
        (out / kind).mkdir(parents=True, exist_ok=True)
        for number in range(per_class):
            shape = (int(rng.integers(80, 201)), int(rng.integers(80, 201)))
            texture = _texture(rng, kind, shape, scale=rng.uniform(0.7, 1.5))
            rows, cols = shape
            y, x = np.mgrid[0:rows, 0:cols] / max(shape)
            light = 1 + rng.uniform(-0.3, 0.3) * (x - 0.5) + rng.uniform(-0.3, 0.3) * (y - 0.5)   # uneven lamp
            low, contrast = rng.uniform(0.05, 0.45), rng.uniform(0.2, 0.5)
            grey = np.clip((low + contrast * texture) * light + rng.normal(0, 0.05, shape), 0, 1)
            if rng.random() < 0.5:
                image = Image.fromarray(np.round(255 * grey).astype(np.uint8), mode="L")
            else:
                tint = rng.uniform(0.6, 1.0, 3)
                rgb = np.clip(grey[..., None] * tint + rng.normal(0, 0.02, (*shape, 3)), 0, 1)
                image = Image.fromarray(np.round(255 * rgb).astype(np.uint8), mode="RGB")
            image.save(out / kind / f"{number:03d}.png")
    return out
