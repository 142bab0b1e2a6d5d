"""Image classifiers of the ore/mineral papers, from torchvision, with SE or ECA attention and local weights.

Nothing is downloaded: ``pretrained`` is a local weights file, torchvision's name of the weights
(``"ResNet50_Weights.IMAGENET1K_V2"``) or ``"torchvision"`` (the DEFAULT), both read from torch's cache
(``$TORCH_HOME/hub/checkpoints``), where a missing file is an error naming the file expected and the folder
to put it in.
"""

from __future__ import annotations

import numbers
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import nn

from prospect.errors import InputError, MissingFileError
from prospect.models.attention import EfficientChannelAttention, SqueezeExcitation
from prospect.models.backbones import _read_state

__all__ = ["build_classifier", "list_classifiers", "load_weights", "weights_file", "is_weights_name", "INPUT_SIZE",
           "headless"]

# name: (torchvision builder, weights enum name, head attribute, CAM layer, backbone attributes)
_ZOO: dict[str, tuple[str, str, str, str, tuple[str, ...]]] = {
    "resnet18": ("resnet18", "ResNet18_Weights", "fc", "layer4", ("conv1", "bn1", "layer1", "layer2", "layer3",
                                                                   "layer4")),
    "resnet50": ("resnet50", "ResNet50_Weights", "fc", "layer4", ("conv1", "bn1", "layer1", "layer2", "layer3",
                                                                   "layer4")),
    "resnext50_32x4d": ("resnext50_32x4d", "ResNeXt50_32X4D_Weights", "fc", "layer4",
                        ("conv1", "bn1", "layer1", "layer2", "layer3", "layer4")),
    "mobilenet_v2": ("mobilenet_v2", "MobileNet_V2_Weights", "classifier", "features", ("features",)),
    "convnext_tiny": ("convnext_tiny", "ConvNeXt_Tiny_Weights", "classifier", "features", ("features",)),
    "swin_t": ("swin_t", "Swin_T_Weights", "head", "features", ("features", "norm")),
    "swin_b": ("swin_b", "Swin_B_Weights", "head", "features", ("features", "norm")),
    "vgg16": ("vgg16", "VGG16_Weights", "classifier", "features", ("features",)),
    "vgg19": ("vgg19", "VGG19_Weights", "classifier", "features", ("features",)),
    "googlenet": ("googlenet", "GoogLeNet_Weights", "fc", "inception5b",
                  ("conv1", "conv2", "conv3", "inception3a", "inception3b", "inception4a", "inception4b",
                   "inception4c", "inception4d", "inception4e", "inception5a", "inception5b")),
    "alexnet": ("alexnet", "AlexNet_Weights", "classifier", "features", ("features",)),
    "inception_v3": ("inception_v3", "Inception_V3_Weights", "fc", "Mixed_7c",
                     ("Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "Conv2d_3b_1x1", "Conv2d_4a_3x3",
                      "Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d",
                      "Mixed_6e", "Mixed_7a", "Mixed_7b", "Mixed_7c")),
}
INPUT_SIZE = {name: (299 if name == "inception_v3" else 224) for name in _ZOO}


def list_classifiers() -> dict[str, int]:
    """Classifier names and their native input size."""
    return dict(INPUT_SIZE)


class _WithAttention(nn.Module):
    """A feature block then an attention block (SE after MobileNetV2's features, ECA after each ConvNeXt stage)."""

    def __init__(self, block: nn.Module, attention: nn.Module) -> None:
        super().__init__()
        self.block, self.attention = block, attention

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.attention(self.block(x))


def _replace_head(model: nn.Module, head: str, num_classes: int, dropout: float) -> None:
    old = getattr(model, head)
    if isinstance(old, nn.Linear):
        new: nn.Module = nn.Linear(old.in_features, num_classes)
        if dropout:
            new = nn.Sequential(nn.Dropout(dropout), new)
        setattr(model, head, new)
        return
    # a Sequential ending in a Linear (VGG, AlexNet, MobileNetV2, ConvNeXt)
    last = max(i for i, m in enumerate(old) if isinstance(m, nn.Linear))
    old[last] = nn.Linear(old[last].in_features, num_classes)
    if dropout:
        for module in old:
            if isinstance(module, nn.Dropout):
                module.p = dropout


_WEIGHTS_NAME = re.compile(r"^[A-Za-z0-9]+(_[A-Za-z0-9]+)*_Weights\.[A-Za-z0-9_]+$")


def is_weights_name(value: Any) -> bool:
    """Whether ``value`` names torchvision weights (``"ResNet50_Weights.IMAGENET1K_V2"``) rather than a file."""
    return isinstance(value, str) and bool(_WEIGHTS_NAME.match(value))


def weights_file(weights: str, name: str | None = None) -> Path:
    """The file torch's cache holds (or would hold) for torchvision weights: ``$TORCH_HOME/hub/checkpoints/`` and
    the name at the end of the weights' URL, the name torch's hub cache keeps such a file under.

    ``weights`` is torchvision's name (``"ResNet50_Weights.IMAGENET1K_V2"``) or ``"torchvision"`` for the
    ``DEFAULT`` weights of classifier ``name``; with ``name``, the weights must belong to that architecture.
    Nothing is downloaded and the file need not exist (:func:`build_classifier` says when it does not).
    """
    from torchvision import models

    if name is not None and name not in _ZOO:
        raise InputError(f"unknown classifier {name!r}; valid: {sorted(_ZOO)}")
    if weights == "torchvision":
        if name is None:
            raise InputError("weights='torchvision' means the DEFAULT weights of an architecture; pass name")
        found = getattr(models, _ZOO[name][1]).DEFAULT
    else:
        if not is_weights_name(weights):
            raise InputError(f"weights={weights!r}; valid: torchvision's name of the weights, such as "
                             "'ResNet50_Weights.IMAGENET1K_V2', or 'torchvision' (the architecture's DEFAULT)")
        try:
            found = models.get_weight(weights)
        except (KeyError, ValueError) as exc:
            enum = getattr(models, weights.split(".")[0], None)
            known = [f"{weights.split('.')[0]}.{member}" for member in enum.__members__] if enum else \
                [f"{_ZOO[n][1]}.<name>" for n in sorted(_ZOO)]
            raise InputError(f"weights={weights!r} are not torchvision weights; valid: {known}") from exc
        if name is not None and type(found).__name__ != _ZOO[name][1]:
            raise InputError(f"weights={weights!r} belong to another architecture than {name!r}; valid: "
                             f"{[f'{_ZOO[name][1]}.{m}' for m in getattr(models, _ZOO[name][1]).__members__]}")
    return Path(torch.hub.get_dir()) / "checkpoints" / found.url.rsplit("/", 1)[-1]


def build_classifier(name: str, num_classes: int, pretrained: str | os.PathLike | None = None,
                     attention: str | None = None, dropout: float = 0.0, reduction: int = 16,
                     seed: int | None = 0) -> nn.Module:
    """A torchvision classifier for ``num_classes`` classes.

    Parameters
    ----------
    name : str
        One of :func:`list_classifiers`: ``resnet18``, ``resnet50``, ``resnext50_32x4d``, ``mobilenet_v2``,
        ``convnext_tiny``, ``swin_t``, ``swin_b``, ``vgg16``, ``vgg19``, ``googlenet``, ``alexnet``,
        ``inception_v3`` (GoogLeNet and Inception-v3 without auxiliary heads).
    num_classes : int
    pretrained : path, weights name or "torchvision", optional
        ImageNet weights: a local file; torchvision's name of the weights
        (``"ResNet50_Weights.IMAGENET1K_V2"``), read from the file torchvision caches
        under ``$TORCH_HOME/hub/checkpoints`` (:func:`weights_file`); or ``"torchvision"``
        for the architecture's DEFAULT weights there. Never downloaded: a file missing
        from the cache is an error naming it. The head is replaced; any other mismatch is
        an error naming it.
    attention : {"se", "eca"}, optional
        ``"se"``: a Squeeze-and-Excitation block after the features (the
        MobileNetV2+SE model); ``"eca"``: ECA after every ConvNeXt stage (the
        ConvNeXt-ECA model). Either adds parameters; the backbone keeps its weights.
    dropout : float
        Dropout before the new head.
    reduction : int
        The SE block's channel reduction (16 in Hu et al.; the MobileNetV2+SE replication used 8).
    seed : int or None
        Seeds the initial weights (the caller's random state is left as it was): same
        seed, same model. None draws from torch's global generator.

    The model carries ``backbone_names`` (what a Trainer's ``freeze_backbone_epochs``
    freezes: the pretrained layers, never the SE/ECA blocks nor the new head),
    ``cam_layer`` (the feature layer Grad-CAM reads), ``input_size`` and ``config``.
    """

    if name not in _ZOO:
        raise InputError(f"unknown classifier {name!r}; valid: {sorted(_ZOO)}")
    if isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral) or num_classes < 2:
        raise InputError(f"num_classes={num_classes!r} must be a whole number ≥ 2")
    if pretrained is not None and not isinstance(pretrained, (str, os.PathLike)):
        raise InputError(f"pretrained={pretrained!r}; valid: a local weights file, torchvision's name of the weights "
                         "('ResNet50_Weights.IMAGENET1K_V2'), 'torchvision' (the DEFAULT; either read from "
                         "$TORCH_HOME/hub/checkpoints, never downloaded) or None")
    if isinstance(reduction, bool) or not isinstance(reduction, numbers.Integral) or reduction < 1:
        raise InputError(f"reduction={reduction!r} must be a whole number ≥ 1 (the SE bottleneck's divisor)")
    if seed is None:
        return _build(name, int(num_classes), pretrained, attention, dropout, int(reduction))
    with torch.random.fork_rng():
        torch.manual_seed(int(seed))
        return _build(name, int(num_classes), pretrained, attention, dropout, int(reduction))


def _build(name: str, num_classes: int, pretrained: Any, attention: str | None, dropout: float,
           reduction: int) -> nn.Module:
    from torchvision import models

    builder, _, head, cam_layer, backbone = _ZOO[name]
    extra: dict[str, Any] = {}
    if name in ("googlenet", "inception_v3"):
        extra = {"aux_logits": False, "init_weights": True}
    model = getattr(models, builder)(weights=None, **extra)
    if pretrained is not None:
        cached = str(pretrained) == "torchvision" or is_weights_name(str(pretrained))
        path = weights_file(str(pretrained), name) if cached else Path(pretrained)
        if cached and not path.is_file():
            raise MissingFileError(f"pretrained={str(pretrained)!r} needs {path.name} in {path.parent} (torch's "
                                   "cache, $TORCH_HOME/hub/checkpoints); copy it there — nothing is downloaded")
        _load(model, path, name, head)
    _replace_head(model, head, int(num_classes), float(dropout))
    if attention is not None:
        if attention == "se" and name == "mobilenet_v2":
            model.features = _WithAttention(model.features, SqueezeExcitation(model.last_channel, reduction))
            backbone = ("features.block",)
        elif attention == "se":
            raise InputError("attention='se' is placed after MobileNetV2's features; use name='mobilenet_v2'")
        elif attention == "eca" and name == "convnext_tiny":
            for index, stage in enumerate(model.features):
                if isinstance(stage, nn.Sequential) and index % 2 == 1:  # the four CNBlock stages
                    channels = [m for m in stage.modules() if isinstance(m, nn.Conv2d)][0].out_channels
                    model.features[index] = _WithAttention(stage, EfficientChannelAttention(channels))
            backbone = tuple(f"features.{i}.block" if isinstance(m, _WithAttention) else f"features.{i}"
                             for i, m in enumerate(model.features))
        elif attention == "eca":
            raise InputError("attention='eca' follows the ConvNeXt stages; use name='convnext_tiny'")
        else:
            raise InputError(f"attention={attention!r}; valid: 'se', 'eca' or None")
    model.backbone_names = backbone
    model.cam_layer = cam_layer
    model.cam_channels_last = name.startswith("swin")  # Swin's features are (N, h, w, C)
    model.input_size = INPUT_SIZE[name]
    model.num_classes = int(num_classes)
    model.config = {"name": name, "num_classes": int(num_classes), "attention": attention, "dropout": float(dropout),
                    "reduction": int(reduction)}
    return model


def _load(model: nn.Module, path: Path, name: str, head: str) -> None:
    state = _read_state(path)
    own = model.state_dict()
    unknown = [k for k in state if k not in own]
    if unknown:
        raise InputError(f"{path.name} holds {unknown[:3]}, which a {name} does not have: a weights file for "
                         "another architecture?")
    wrong = [(k, tuple(v.shape), tuple(own[k].shape)) for k, v in state.items()
             if v.shape != own[k].shape and not k.startswith(head + ".")]
    if wrong:
        raise InputError(f"{path.name} does not fit a {name}: {wrong[:3]} (file shape, model shape)")
    missing = [k for k in own if k not in state and not k.startswith(head + ".")]
    if missing:
        raise InputError(f"{path.name} lacks {missing[:3]} of a {name}: a weights file for another architecture?")
    model.load_state_dict(state, strict=False)


def load_weights(model: nn.Module, path: str | os.PathLike) -> nn.Module:
    """Load a fine-tuned classifier's weights (e.g. a Trainer's ``model.safetensors``) exactly.

    Every key and shape must match — a file for another architecture or another
    number of classes is an error naming the mismatch.
    """
    path = Path(path)
    if path.suffix == ".safetensors" and path.is_file():
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        state = _read_state(path)
    own = model.state_dict()
    wrong = [(k, tuple(v.shape), tuple(own[k].shape)) for k, v in state.items() if k in own and v.shape != own[k].shape]
    if wrong:
        raise InputError(f"{path.name} does not fit this model: {wrong[:3]} (file shape, model shape) — another "
                         "architecture or another number of classes")
    unknown, missing = sorted(set(state) - set(own)), sorted(set(own) - set(state))
    if unknown or missing:
        raise InputError(f"{path.name} does not fit this model: unexpected {unknown[:3]}, missing {missing[:3]}")
    model.load_state_dict(state)
    return model


@contextmanager
def headless(model: nn.Module) -> Iterator[nn.Module]:
    """The classifier with its last Linear layer swapped for an identity: it returns the pooled features the head
    reads (B, F), e.g. 512 for ResNet18; the layer is put back on leaving."""
    name = getattr(model, "config", {}).get("name")
    if name not in _ZOO:
        raise InputError(f"headless needs a classifier of build_classifier (it names its head); got "
                         f"{type(model).__name__}")
    head = _ZOO[name][2]
    inner = [n for n, m in model.get_submodule(head).named_modules() if isinstance(m, nn.Linear)][-1]
    path = f"{head}.{inner}" if inner else head           # e.g. "fc", "fc.1" (after dropout), "classifier.2"
    where, _, key = path.rpartition(".")
    owner = model.get_submodule(where) if where else model
    linear = getattr(owner, key)
    setattr(owner, key, nn.Identity())
    try:
        yield model
    finally:
        setattr(owner, key, linear)
