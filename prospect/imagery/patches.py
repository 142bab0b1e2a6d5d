"""Sliding-window crops of large micrographs and offline augmentation (the Swin paper's data preparation)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from prospect.errors import InputError, MissingFileError

__all__ = ["crop_patches", "augment_offline"]

_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif", ".webp"}


def _images(source: Path) -> list[Path]:
    if source.is_file():
        return [source]
    if not source.is_dir():
        raise MissingFileError(f"{str(source)!r} is neither an image nor a folder")
    return sorted(p for p in source.rglob("*") if p.suffix.lower() in _IMAGE_SUFFIXES)


def crop_patches(image_or_folder: str | os.PathLike, size: int = 256, stride: int = 256,
                 out: str | os.PathLike = "patches", overwrite: bool = False) -> list[Path]:
    """Cut every image into ``size`` × ``size`` crops every ``stride`` pixels (partial edges dropped).

    Crops are written as PNG to ``out``, keeping the class sub-folder of each
    source, named ``<stem>_r<row>_c<col>.png`` — :class:`ImageFolderSplit` (its default ``group_by="source"``)
    then keeps all crops of one micrograph on one side of the split.
    """
    from PIL import Image

    from prospect.files import atomic_output
    from prospect.imagery.datasets import to_rgb

    if int(size) != size or size < 1 or int(stride) != stride or stride < 1:
        raise InputError(f"size={size!r} and stride={stride!r} must be positive whole numbers of pixels")
    source, out = Path(image_or_folder), Path(out)
    written = []
    for path in _images(source):
        relative = path.parent.relative_to(source) if source.is_dir() else Path()
        with Image.open(path) as image:
            rgb = to_rgb(image)
        width, height = rgb.size
        folder = out / relative
        folder.mkdir(parents=True, exist_ok=True)
        for top in range(0, height - size + 1, stride):
            for left in range(0, width - size + 1, stride):
                target = folder / f"{path.stem}_r{top}_c{left}.png"
                with atomic_output(target, overwrite) as tmp:
                    rgb.crop((left, top, left + size, top + size)).save(tmp, format="PNG")
                written.append(target)
    return written


def augment_offline(folder: str | os.PathLike, out: str | os.PathLike,
                    methods: Sequence[str] = ("erase", "flip", "gamma", "zoom", "contrast", "saturation"),
                    copies: int | Mapping[str, int] = 1, seed: int = 0, overwrite: bool = False) -> list[Path]:
    """Write ``copies`` augmented versions of every image per method (the Swin paper's offline augmentation).

    Files go to ``out`` with the class sub-folders kept, named ``<stem>_<method><k>.png``, so
    :class:`ImageFolderSplit` keeps every copy on its source's side of the split (its default ``group_by``).
    Methods: random erasing, horizontal/vertical flip, gamma, zoom (crop and
    resize back), contrast, saturation. Apply to the training side only.
    ``copies`` may differ per class (``{"bornite": 3, "quartz": 1}``; a class not named gets none), to balance
    the classes as the ConvNeXt-ECA paper did (its classes grew 4 to 8 times).
    """
    from PIL import Image, ImageEnhance

    from prospect.files import atomic_output
    from prospect.imagery.datasets import AUGMENTATIONS, to_rgb

    unknown = sorted(set(methods) - set(AUGMENTATIONS))
    if unknown:
        raise InputError(f"methods {unknown} are unknown; valid: {list(AUGMENTATIONS)}")
    per_class = dict(copies) if isinstance(copies, Mapping) else None
    for value in (per_class or {"": copies}).values():
        if isinstance(value, bool) or not isinstance(value, int) or value < (0 if per_class else 1):
            raise InputError(f"copies={copies!r} must be a whole number ≥ 1, or one ≥ 0 per class folder")
    source, out = Path(folder), Path(out)
    if per_class is not None:
        folders = sorted(p.name for p in source.iterdir() if p.is_dir())
        unknown = sorted(set(per_class) - set(folders))
        if unknown:
            raise InputError(f"copies names {unknown}, which are not class folders of {str(source)!r}; "
                             f"valid: {folders}")
    rng = np.random.default_rng(seed)
    written = []
    for path in _images(source):
        with Image.open(path) as image:
            rgb = to_rgb(image)
        width, height = rgb.size
        relative = path.parent.relative_to(source) if source.is_dir() else Path()
        (out / relative).mkdir(parents=True, exist_ok=True)
        count = copies if per_class is None else per_class.get(relative.parts[0] if relative.parts else "", 0)
        for method in methods:
            for k in range(count):
                if method == "flip":
                    result = rgb.transpose(Image.Transpose.FLIP_LEFT_RIGHT if rng.random() < 0.5
                                           else Image.Transpose.FLIP_TOP_BOTTOM)
                elif method == "gamma":
                    gamma = rng.uniform(0.7, 1.4)
                    result = rgb.point(lambda v, g=gamma: 255 * (v / 255) ** g)
                elif method == "zoom":
                    scale = rng.uniform(0.7, 0.9)
                    w, h = int(width * scale), int(height * scale)
                    left, top = rng.integers(0, width - w + 1), rng.integers(0, height - h + 1)
                    result = rgb.crop((left, top, left + w, top + h)).resize((width, height))
                elif method == "contrast":
                    result = ImageEnhance.Contrast(rgb).enhance(rng.uniform(0.7, 1.3))
                elif method == "saturation":
                    result = ImageEnhance.Color(rgb).enhance(rng.uniform(0.7, 1.3))
                else:  # erase: a random rectangle filled with noise
                    result = rgb.copy()
                    w, h = int(width * rng.uniform(0.1, 0.3)), int(height * rng.uniform(0.1, 0.3))
                    left, top = rng.integers(0, width - w + 1), rng.integers(0, height - h + 1)
                    patch = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
                    result.paste(Image.fromarray(patch), (int(left), int(top)))
                target = out / relative / f"{path.stem}_{method}{k}.png"
                with atomic_output(target, overwrite) as tmp:
                    result.save(tmp, format="PNG")
                written.append(target)
    return written
