"""Image folders (one folder per class) split into train/val/test without leakage between crops of one image."""

from __future__ import annotations

import logging
import math
import os
import re
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from prospect.errors import InputError, MissingFileError

__all__ = ["ImageFolderSplit", "ImageDataset", "IMAGENET_MEAN", "IMAGENET_STD", "eval_transforms",
           "train_transforms", "crop_transforms", "crop_origins", "scan_folder", "to_rgb", "provenance",
           "AUGMENTATIONS", "LIGHT_AUGMENTATION", "choose_crops", "CropChoice"]

log = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
AUGMENTATIONS = ("erase", "flip", "gamma", "zoom", "contrast", "saturation")   # the Swin paper's six
LIGHT_AUGMENTATION = ("flip", "zoom")


def scan_folder(root: str | os.PathLike) -> tuple[list[Path], list[int], list[str], list[Path]]:
    """Readable images under ``root/<class>/``: paths, labels, class names (sorted) and unreadable files."""
    from PIL import Image, UnidentifiedImageError

    root = Path(root)
    if not root.is_dir():
        raise MissingFileError(f"root={str(root)!r} is not a folder of class folders")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(classes) < 2:
        raise InputError(f"root={str(root)!r} has {len(classes)} class folder(s) {classes}; a classifier needs "
                         "at least 2")
    paths, labels, unreadable = [], [], []
    for label, name in enumerate(classes):
        found = 0
        for path in sorted((root / name).rglob("*")):
            if not path.is_file() or path.name.startswith("."):
                continue
            try:
                with Image.open(path) as image:
                    image.verify()
            except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
                unreadable.append(path)
                continue
            paths.append(path)
            labels.append(label)
            found += 1
        if found == 0:
            raise InputError(f"class folder {str(root / name)!r} holds no readable image")
    if unreadable:
        warnings.warn(f"skipped {len(unreadable)} unreadable files: {[str(p) for p in unreadable[:10]]}", stacklevel=2)
    return paths, labels, classes, unreadable


def eval_transforms(size: int, mean: Sequence[float], std: Sequence[float]) -> Callable:
    """RGB, resized to ``size`` × ``size``, float in [0, 1], normalised."""
    from torchvision.transforms import v2

    return v2.Compose([v2.ToImage(), v2.Resize((size, size), antialias=True), v2.ToDtype(torch.float32, scale=True),
                       v2.Normalize(list(mean), list(std))])


class _Gamma:
    def __init__(self, low: float = 0.7, high: float = 1.4) -> None:
        self.low, self.high = low, high

    def __call__(self, image):
        from torchvision.transforms.v2 import functional

        gamma = float(torch.empty(1).uniform_(self.low, self.high))
        return functional.adjust_gamma(image, gamma)


def train_transforms(size: int, mean: Sequence[float], std: Sequence[float],
                     methods: Sequence[str] = AUGMENTATIONS) -> Callable:
    """On-the-fly versions of the Swin paper's six augmentations (random erasing, flips, gamma, zoom,
    contrast and saturation), then the evaluation transform."""
    from torchvision.transforms import v2

    first = v2.RandomResizedCrop((size, size), scale=(0.7, 1.0), antialias=True) if "zoom" in methods \
        else v2.Resize((size, size), antialias=True)
    return _augmented([v2.ToImage(), first], methods, mean, std)


def _augmented(steps: list[Any], methods: Sequence[str], mean: Sequence[float], std: Sequence[float]) -> Callable:
    """``steps`` (reading and cropping), then the chosen flips, contrast/saturation, gamma, the conversion to
    normalised floats and random erasing."""
    from torchvision.transforms import v2

    unknown = sorted(set(methods) - set(AUGMENTATIONS))
    if unknown:
        raise InputError(f"augmentations {unknown} are unknown; valid: {list(AUGMENTATIONS)}")
    if "flip" in methods:
        steps += [v2.RandomHorizontalFlip(), v2.RandomVerticalFlip()]
    if "contrast" in methods or "saturation" in methods:
        steps.append(v2.ColorJitter(contrast=0.3 if "contrast" in methods else 0,
                                    saturation=0.3 if "saturation" in methods else 0))
    if "gamma" in methods:
        steps.append(_Gamma())
    steps += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(mean), list(std))]
    if "erase" in methods:
        steps.append(v2.RandomErasing(p=0.5, scale=(0.02, 0.15)))
    return v2.Compose(steps)


class _Rescaled:
    """An image (tensor, C × H × W) scaled by ``factor`` (a chosen physical scale), then enlarged where a side is
    still below ``least`` (a crop must fit)."""

    def __init__(self, factor: float, least: int) -> None:
        self.factor, self.least = float(factor), int(least)

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        from torchvision.transforms.v2 import functional

        height, width = image.shape[-2:]
        grow = max(self.factor, self.least / min(height, width))
        if grow == 1:
            return image
        return functional.resize(image, [max(self.least, round(height * grow)), max(self.least, round(width * grow))],
                                 antialias=True)


class _RandomCrop:
    """A random ``size`` × ``size`` crop; with ``zoom``, its side is first drawn in [size / 1.25, size × 1.25]
    (within the image) and the crop resized to ``size``; with ``turn``, also a random 90° turn (transpose)."""

    def __init__(self, size: int, zoom: bool, turn: bool) -> None:
        self.size, self.zoom, self.turn = int(size), bool(zoom), bool(turn)

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        from torchvision.transforms.v2 import functional

        height, width = image.shape[-2:]
        side = self.size
        if self.zoom:
            side = min(height, width, round(self.size * 1.25 ** float(torch.empty(1).uniform_(-1, 1))))
        top = int(torch.randint(0, height - side + 1, ()))
        left = int(torch.randint(0, width - side + 1, ()))
        crop = image[..., top:top + side, left:left + side]
        if side != self.size:
            crop = functional.resize(crop, [self.size, self.size], antialias=True)
        if self.turn and bool(torch.randint(0, 2, ())):
            crop = crop.transpose(-1, -2)
        return crop


def crop_origins(height: int, width: int, size: int, crops: int) -> list[tuple[int, int]]:
    """Top-left corners of ``crops`` ``size``-px crops spread evenly over an image (the centre for one): a grid
    of ⌈√crops⌉ × ⌈√crops⌉ corners from one edge to the other, ``crops`` of them taken at even steps."""
    if crops == 1:
        return [((height - size) // 2, (width - size) // 2)]
    side = math.ceil(math.sqrt(crops))
    grid = [(int(round(t)), int(round(u))) for t in np.linspace(0, height - size, side)
            for u in np.linspace(0, width - size, side)]
    return [grid[int(i)] for i in np.round(np.linspace(0, len(grid) - 1, crops))]


class _GridCrops:
    """``crops`` crops of ``size`` px spread over the image (:func:`crop_origins`), as (crops, C, size, size)."""

    def __init__(self, size: int, crops: int, after: Callable) -> None:
        self.size, self.crops, self.after = int(size), int(crops), after

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        height, width = image.shape[-2:]
        return torch.stack([self.after(image[..., top:top + self.size, left:left + self.size])
                            for top, left in crop_origins(height, width, self.size, self.crops)])


def crop_transforms(size: int, mean: Sequence[float], std: Sequence[float], crops: int = 8, scale: float = 1.0,
                    methods: Sequence[str] | None = LIGHT_AUGMENTATION) -> tuple[Callable, Callable]:
    """(training, evaluation) transforms that keep the image's own pixels: training takes one random ``size``-px
    crop (``zoom``: its side varies by up to 1.25×; ``flip``: flips and 90° turns, as a micrograph has no up;
    ``contrast``, ``saturation``, ``gamma``, ``erase`` as in :func:`train_transforms`); evaluation takes
    ``crops`` crops spread over the image, a tensor (crops, 3, size, size) whose probabilities the Trainer
    averages. ``scale`` resamples the image first (0.5 halves it); an image with a side below ``size`` is
    enlarged to fit one crop."""
    from torchvision.transforms import v2

    methods = () if methods is None else tuple(methods)
    start = [v2.ToImage(), _Rescaled(scale, size)]
    training = _augmented([*start, _RandomCrop(size, "zoom" in methods, "flip" in methods)], methods, mean, std)
    values = v2.Compose([v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(mean), list(std))])
    return training, v2.Compose([*start, _GridCrops(size, crops, values)])


class CropChoice(NamedTuple):
    """What :func:`choose_crops` picked, and why (``reason``, one line for the log)."""

    size: int
    crops: int
    repeats: int
    epochs: int
    reason: str


def choose_crops(images: str | os.PathLike | Sequence[str | os.PathLike], largest: int = 128,
                 budget: float = 1.3e8) -> CropChoice:
    """Crop size, crops per image and epochs for a network trained from scratch on a CPU, from the images'
    sizes (read from their headers):

    - ``size``: half the median shorter side, to a multiple of 16 in [32, ``largest``] — a crop holds a good
      part of an image (its texture at the image's own scale) and still moves around it;
    - ``crops``: the crops averaged per validation/test image, about twice what tiles the median image, in
      [4, 16];
    - ``repeats``: as many random crops per training image and epoch;
    - ``epochs``: ``budget / (images × repeats × size²)`` — about ``budget`` crop pixels in all — in [10, 30]
      (30: the ``images`` preset). 1.3·10⁸ is ~5 min for ResNet18 on 2 CPU cores (the hard generated set: 64-px
      crops, 20 epochs at 15 s); larger crops reach the floor of 10 epochs sooner and take longer (the sample
      set: 128 px, 10 epochs at 40 s).

    ``images``: a folder of class folders, or image paths.
    """
    from PIL import Image

    paths = scan_folder(images)[0] if isinstance(images, (str, os.PathLike)) else [Path(p) for p in images]
    if not paths:
        raise InputError("choose_crops needs at least one image")
    sizes = []
    for path in paths:
        with Image.open(path) as image:
            sizes.append(image.size)
    shorter = float(np.median([min(w, h) for w, h in sizes]))
    area = float(np.median([w * h for w, h in sizes]))
    size = int(np.clip(16 * round(shorter / 32), 32, max(32, int(largest))))
    crops = int(np.clip(math.ceil(2 * area / size**2), 4, 16))
    repeats = crops
    epochs = int(np.clip(round(budget / (len(paths) * repeats * size**2)), 10, 30))
    reason = (f"{len(paths)} images, median shorter side {shorter:.0f} px: {size}-px crops at their own scale, "
              f"{repeats} per training image and epoch, {crops} averaged per validation/test image, {epochs} epochs "
              f"(~{budget:.1e} crop pixels, 10 to 30 epochs; pp.imagery.choose_crops)")
    return CropChoice(size, crops, repeats, epochs, reason)


def to_rgb(image: Any) -> Any:
    """A PIL image as 8-bit RGB. 16-bit grey (``I;16``, common in microscopy TIFFs) and 32-bit integer images
    are scaled by 65535 (by their maximum when larger), float images by 1 (by their maximum when larger),
    instead of saturating at 255 as ``Image.convert`` does."""
    from PIL import Image

    if image.mode.startswith("I") or image.mode == "F":
        values = np.asarray(image, dtype=np.float64)
        full = 65535.0 if image.mode.startswith("I") else 1.0
        top = float(np.nanmax(values)) if values.size else 0.0
        scaled = np.clip(values / max(full, top), 0, 1) * 255
        return Image.fromarray(np.round(np.nan_to_num(scaled)).astype(np.uint8), mode="L").convert("RGB")
    return image.convert("RGB")


class ImageDataset(torch.utils.data.Dataset):
    """Images converted to RGB (grey, 16-bit, RGBA, palette, any size) and transformed; yields ``(tensor, label)``.

    ``paths`` and ``labels`` are per image; with ``repeats`` > 1 every image is drawn that many times per epoch
    (``len`` is images × repeats; item ``i`` is image ``i % images``), e.g. several random crops of each."""

    def __init__(self, paths: Sequence[Path], labels: Sequence[int], transform: Callable, classes: list[str],
                 repeats: int = 1) -> None:
        self.paths, self.labels, self.transform, self.classes = list(paths), list(labels), transform, classes
        self.repeats = int(repeats)     # items per image and epoch (a random crop each): len is images × repeats

    def __len__(self) -> int:
        return len(self.paths) * self.repeats

    def __getitem__(self, index: int):
        from PIL import Image

        index = index % len(self.paths)
        with Image.open(self.paths[index]) as image:
            rgb = to_rgb(image)
        return self.transform(rgb), int(self.labels[index])


# What crop_patches and augment_offline add to a file's stem: the default group_by strips it, so crops and
# augmented copies of one image stay on one side of the split.
_DERIVED = re.compile(r"(_r\d+_c\d+)?(_(erase|flip|gamma|zoom|contrast|saturation)\d+)?$")


def _groups(paths: list[Path], group_by: Any) -> list[str]:
    if group_by == "source":
        return [str(p.parent / _DERIVED.sub("", p.stem)) for p in paths]
    if group_by is None:
        return [str(p) for p in paths]
    if callable(group_by):
        return [str(group_by(p)) for p in paths]
    pattern = re.compile(group_by)
    keys = []
    for path in paths:
        match = pattern.search(path.stem)
        keys.append(match.group(1) if match and match.groups() else (match.group(0) if match else path.stem))
    return keys


def provenance(paths: Sequence[Path], labels: Sequence[int], classes: list[str]) -> Any:
    """Images per class by mode, and the range of their sizes: logged, with a warning for a class that its
    format alone gives away (a mode no other class has, or a few sizes no other class has)."""
    import pandas as pd
    from PIL import Image

    modes, sizes = [], []
    for path in paths:
        with Image.open(path) as image:
            modes.append(image.mode)
            sizes.append(image.size)
    names = pd.Series([classes[i] for i in labels], name="class")
    table = pd.crosstab(names, pd.Series(modes, name="mode"))
    frame = pd.DataFrame({"class": names, "size": sizes, "pixels": [w * h for w, h in sizes]})
    for name, group in frame.groupby("class"):
        smallest, largest = group.loc[group["pixels"].idxmin(), "size"], group.loc[group["pixels"].idxmax(), "size"]
        table.loc[name, "sizes"] = (f"{group['size'].nunique()}: {smallest[0]}x{smallest[1]} to "
                                    f"{largest[0]}x{largest[1]}")
    log.info("images per class, by mode and size:\n%s", table.to_string())
    frame["mode"] = modes
    for name in table.index:
        mine, others = frame[frame["class"] == name], frame[frame["class"] != name]
        mode_alone = not set(mine["mode"]) & set(others["mode"])
        size_alone = mine["size"].nunique() <= 3 and not set(mine["size"]) & set(others["size"])
        if mode_alone or size_alone:
            told = (f"modes {sorted(set(mine['mode']))}" if mode_alone else
                    f"sizes {sorted(set(mine['size']))}")
            warnings.warn(f"class {name!r} can be told by its format alone ({told}, which no other class has): a "
                          "model may learn the source, not the mineral; mix the sources or convert the images alike",
                          stacklevel=3)
    return table


def _statistics_given(normalize: Any) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(mean, std) given by the caller: three numbers each, or one number each for all three channels."""
    valid = ("valid: 'imagenet', 'dataset' or (mean, std), each three numbers (one per RGB channel) or one number "
             "for all, e.g. (0.5, 0.25) or ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))")
    try:
        mean, std = normalize
        mean, std = (np.full(3, float(v)) if np.ndim(v) == 0 else np.asarray(v, dtype=float) for v in (mean, std))
    except (TypeError, ValueError) as exc:
        raise InputError(f"normalize={normalize!r}; {valid}") from exc
    if mean.shape != (3,) or std.shape != (3,) or not (np.isfinite(mean).all() and (std > 0).all()):
        raise InputError(f"normalize={normalize!r}; {valid}, with standard deviations above 0")
    return tuple(mean), tuple(std)


class ImageFolderSplit:
    """Split ``root/<class>/*`` images into ``.train``, ``.val`` and ``.test`` torch Datasets.

    Parameters
    ----------
    root : path
        One sub-folder per class (names sorted give the class indices, ``.classes``).
    size : int
        Images are resized to ``size`` × ``size`` RGB.
    split : (train, val, test) fractions
        Default (0.6, 0.2, 0.2), the ConvNeXt paper's; the Swin paper's 3:1:1 is the same.
    seed : int
    stratify : bool
        Split each class separately so every side keeps the class proportions.
    group_by : "source", callable, regex or None
        Keeps all images of one group on one side. Default ``"source"``: the crops
        (:func:`crop_patches`, ``_r<i>_c<j>``) and augmented copies
        (:func:`augment_offline`, ``_<method><k>``) of one image are one group, so
        no copy of a test image trains the model. Also a function of the path, a
        regular expression on the file stem whose first group is the key, or None
        (every file its own group).
    normalize : {"dataset", "imagenet"} or (mean, std)
        The training set's own statistics (default: for a network trained from
        scratch), ImageNet's (with pretrained weights), or given.
    augment : sequence of str or None
        On-the-fly training augmentations (:func:`train_transforms`). Default: flips
        and zoom, light enough for a small set trained from scratch; the Swin
        paper's six are :data:`AUGMENTATIONS`; None for none.
    crops : int, optional
        Keep the images' own pixels instead of shrinking them (:func:`crop_transforms`):
        training draws random ``size``-px crops, ``repeats`` per image and epoch (default
        ``crops``); validation and test items are ``crops`` crops spread over each image,
        whose probabilities the Trainer averages (multi-crop test-time averaging). The
        texture of a 500-px micrograph (grain boundaries, twinning) survives; a 64-px
        resize blurs it away. None (default): every image resized to ``size``.
    scale : float
        With ``crops``: resample every image by this factor first (a chosen physical
        scale: 0.5 for images taken at twice the magnification wanted).
    repeats : int, optional
        Training items per image and epoch (default: ``crops`` with crops, else 1).

    ``.provenance`` counts each class's images by (mode, size), logged: a class that is all grey at
    500 px while another is all RGB at 224 px can be told by format alone, which a warning says.
    """

    def __init__(self, root: str | os.PathLike, size: int = 224, split: Sequence[float] = (0.6, 0.2, 0.2),
                 seed: int = 0, stratify: bool = True, group_by: Any = "source", normalize: Any = "dataset",
                 augment: Sequence[str] | None = LIGHT_AUGMENTATION, crops: int | None = None, scale: float = 1.0,
                 repeats: int | None = None) -> None:
        for name, value in (("crops", crops), ("repeats", repeats)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise InputError(f"{name}={value!r} must be a whole number ≥ 1 (or None)")
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not 0 < scale <= 16:
            raise InputError(f"scale={scale!r} must be a number in (0, 16] (the factor the images are resampled by)")
        if scale != 1 and crops is None:
            raise InputError(f"scale={scale!r} resamples the images before cropping; it needs crops (a number)")
        if len(split) != 3 or min(split) < 0 or not np.isclose(sum(split), 1.0):
            raise InputError(f"split={tuple(split)!r} must be three fractions (train, val, test) summing to 1")
        if int(size) != size or size < 8:
            raise InputError(f"size={size!r} must be a whole number of pixels ≥ 8")
        paths, labels, self.classes, self.skipped = scan_folder(root)
        self.provenance = provenance(paths, labels, self.classes)
        groups = _groups(paths, group_by)
        rng = np.random.default_rng(seed)
        side = np.zeros(len(paths), np.int64)
        keys = sorted(set(groups))
        key_label = {k: np.bincount([labels[i] for i, g in enumerate(groups) if g == k]).argmax() for k in keys}
        strata = sorted(set(key_label.values())) if stratify else [None]
        for stratum in strata:
            members = [k for k in keys if stratum is None or key_label[k] == stratum]
            members = [members[i] for i in rng.permutation(len(members))]
            n = len(members)
            n_train = int(round(split[0] * n))
            n_val = int(round(split[1] * n))
            for position, key in enumerate(members):
                part = 0 if position < n_train else (1 if position < n_train + n_val else 2)
                for i, g in enumerate(groups):
                    if g == key:
                        side[i] = part
        self.groups = groups
        self.size, self.crops, self.scale = int(size), crops, float(scale)
        train_paths = [p for p, s in zip(paths, side, strict=True) if s == 0]
        if not train_paths:
            raise InputError("the training side is empty; use more images or a larger train fraction")
        if isinstance(normalize, str):
            if normalize == "imagenet":
                mean, std = IMAGENET_MEAN, IMAGENET_STD
            elif normalize == "dataset":
                mean, std = self._statistics(train_paths)
            else:
                raise InputError(f"normalize={normalize!r}; valid: 'imagenet', 'dataset' or (mean, std)")
        else:
            mean, std = _statistics_given(normalize)
        self.mean, self.std = tuple(float(m) for m in mean), tuple(float(s) for s in std)
        if crops is None:
            plain = eval_transforms(self.size, self.mean, self.std)
            training = plain if augment is None else train_transforms(self.size, self.mean, self.std, augment)
        else:
            training, plain = crop_transforms(self.size, self.mean, self.std, crops, self.scale, augment)
        repeats = repeats or crops or 1

        def subset(part: int, transform: Callable, times: int = 1) -> ImageDataset:
            chosen = np.flatnonzero(side == part)
            return ImageDataset([paths[i] for i in chosen], [labels[i] for i in chosen], transform, self.classes,
                                times)

        self.train, self.val, self.test = subset(0, training, repeats), subset(1, plain), subset(2, plain)
        self._plain = plain
        for part, name in ((2, "test"), (1, "validation")):
            if split[part] == 0:
                continue
            held = set(np.asarray(labels)[side == part].tolist())
            absent = [c for k, c in enumerate(self.classes) if k not in held]
            if absent:
                counts = {c: labels.count(self.classes.index(c)) for c in absent}
                left_out = " and leave them out of the macro averages" if part == 2 else ""
                warnings.warn(f"class(es) {absent} have no {name} image (images in all: {counts}); the {name} scores "
                              f"say nothing about them{left_out}; add images of them", stacklevel=2)
        log.info("%d images in %d classes: train %d, val %d, test %d%s", len(paths), len(self.classes),
                 len(self.train.paths), len(self.val), len(self.test),
                 "" if crops is None else f"; {size}-px crops at {scale:g}× their own scale, {repeats} per training "
                 f"image and epoch, {crops} per validation/test image averaged")

    @property
    def paths(self) -> list[Path]:
        """Every image of the split (train, validation, test), without labels: what pretraining may read."""
        return [*self.train.paths, *self.val.paths, *self.test.paths]

    def evaluated(self, data: ImageDataset) -> ImageDataset:
        """The images of ``data`` (e.g. ``split.train``) once each, with the evaluation transform (no random
        augmentation; every crop position with ``crops``): what features and predictions of them read."""
        return ImageDataset(data.paths, data.labels, self._plain, self.classes)

    def _statistics(self, paths: list[Path]) -> tuple[tuple[float, ...], tuple[float, ...]]:
        from PIL import Image

        total, squares, count = np.zeros(3), np.zeros(3), 0
        for path in paths:
            with Image.open(path) as image:
                rgb = to_rgb(image)
            shape = (self.size, self.size) if self.crops is None else \
                (max(1, round(rgb.width * self.scale)), max(1, round(rgb.height * self.scale)))
            pixels = np.asarray(rgb.resize(shape) if shape != rgb.size else rgb, np.float64) / 255
            total += pixels.sum(axis=(0, 1))
            squares += (pixels**2).sum(axis=(0, 1))
            count += pixels.shape[0] * pixels.shape[1]
        mean = total / count
        return tuple(mean), tuple(np.sqrt(np.maximum(squares / count - mean**2, 1e-12)))
