"""torchvision architectures adapted to C-channel geo-images, and local pretrained weights.

The first convolution is replaced to take ``in_channels``; ImageNet weights from
a local file are inflated to it by averaging the RGB filters and spreading them
over the C channels (``× 3 / C``, so activations keep their scale). Nothing is
ever downloaded.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from prospect.errors import InputError, MissingFileError

__all__ = ["FIRST_CONV", "HEAD", "Features", "adapt_first_conv", "classifier", "load_pretrained", "GlobalAvgPool"]

# Where each architecture keeps its first convolution and its classification head (torchvision's names).
FIRST_CONV = {"resnet18": "conv1", "shufflenet_v2": "conv1.0", "googlenet": "conv1.conv",
              "mobilenet_v2": "features.0.0", "mnasnet": "layers.0"}
HEAD = {"resnet18": "fc", "shufflenet_v2": "fc", "googlenet": "fc", "mobilenet_v2": "classifier",
        "mnasnet": "classifier"}
# The convolutional trunk of the backbones MFAF can use, in forward order (torchvision's attribute names).
_TRUNK = {"resnet18": ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4"),
          "shufflenet_v2": ("conv1", "maxpool", "stage2", "stage3", "stage4", "conv5")}


class GlobalAvgPool(nn.Module):
    """Mean over H and W, keeping (B, C, 1, 1): a deterministic stand-in for ``AdaptiveAvgPool2d(1)``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3), keepdim=True)


def _torchvision(name: str, num_classes: int) -> nn.Module:
    from torchvision import models

    if name == "resnet18":
        model = models.resnet18(weights=None, num_classes=num_classes)
        model.avgpool = GlobalAvgPool()
    elif name == "shufflenet_v2":
        model = models.shufflenet_v2_x1_0(weights=None, num_classes=num_classes)
    elif name == "googlenet":
        # No auxiliary heads: they only exist in training mode and would change the output type.
        model = models.googlenet(weights=None, num_classes=num_classes, aux_logits=False, init_weights=True,
                                 transform_input=False)
        model.avgpool = GlobalAvgPool()
    elif name == "mobilenet_v2":
        model = models.mobilenet_v2(weights=None, num_classes=num_classes)
    elif name == "mnasnet":
        model = models.mnasnet1_0(weights=None, num_classes=num_classes)
    else:
        raise InputError(f"architecture {name!r} is unknown; valid: {sorted(FIRST_CONV)}")
    return model


def adapt_first_conv(model: nn.Module, path: str, in_channels: int) -> None:
    """Replace the convolution at ``path`` by one taking ``in_channels`` (same kernel, stride, padding)."""
    parent_path, _, leaf = path.rpartition(".")
    parent = model.get_submodule(parent_path) if parent_path else model
    old = getattr(parent, leaf)
    new = nn.Conv2d(in_channels, old.out_channels, old.kernel_size, old.stride, old.padding, old.dilation,
                    old.groups if old.groups == 1 else in_channels, bias=old.bias is not None)
    setattr(parent, leaf, new)


def classifier(name: str, in_channels: int, num_classes: int = 2) -> nn.Module:
    """A torchvision classifier with its first convolution taking ``in_channels``."""
    model = _torchvision(name, num_classes)
    adapt_first_conv(model, FIRST_CONV[name], in_channels)
    model.backbone_names = tuple(n for n, _ in model.named_children() if n != HEAD[name])
    return model


class Features(nn.Module):
    """The convolutional trunk of ResNet18 or ShuffleNetV2, on ``in_channels`` inputs.

    Keeps torchvision's parameter names, so ImageNet weights load into it.
    ``out_channels`` is the width of the last feature map (512 or 1024).
    """

    def __init__(self, name: str, in_channels: int) -> None:
        super().__init__()
        if name not in _TRUNK:
            raise InputError(f"backbone={name!r}; valid: {sorted(_TRUNK)}")
        model = _torchvision(name, 1000)
        adapt_first_conv(model, FIRST_CONV[name], in_channels)
        self.name = name
        for part in _TRUNK[name]:
            self.add_module(part, getattr(model, part))
        self.out_channels = 512 if name == "resnet18" else model.conv5[0].out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for module in self.children():
            x = module(x)
        return x


def _read_state(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"pretrained={str(path)!r} does not exist: pass a local weights file (.pth/.pt "
                               "or .safetensors); prospect never downloads weights")
    if path.suffix == ".safetensors":
        try:
            from safetensors.torch import load_file
        except ImportError as exc:
            raise ImportError("reading .safetensors needs the safetensors package: pip install safetensors") from exc
        return load_file(str(path))
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise InputError(f"pretrained={str(path)!r} could not be read as a weights file: {exc}") from exc
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise InputError(f"pretrained={str(path)!r} does not hold a state dict of tensors")
    return state


def load_pretrained(module: nn.Module, path: str | os.PathLike, architecture: str) -> dict[str, Any]:
    """Load ImageNet-style weights of ``architecture`` from a local file into ``module``.

    The first convolution is inflated to the module's input channels; the
    file's classification head is skipped. Any other key that is missing or
    has another shape is an error naming it (a file for another architecture).
    Returns what was skipped.
    """
    state = _read_state(path)
    own = module.state_dict()
    first = FIRST_CONV[architecture] + ".weight"
    head = HEAD[architecture] + "."
    skipped = sorted(k for k in state if k.startswith(head) or k.startswith("aux"))
    loaded = {}
    for key, value in state.items():
        if key in skipped:
            continue
        if key not in own:
            raise InputError(f"{Path(path).name} holds {key!r}, which a {architecture} does not have: "
                             "is it a weights file for another architecture?")
        if key == first and value.shape[1] != own[key].shape[1]:
            channels = own[key].shape[1]
            value = value.mean(dim=1, keepdim=True).repeat(1, channels, 1, 1) * (value.shape[1] / channels)
        if value.shape != own[key].shape:
            raise InputError(f"{Path(path).name}: {key!r} has shape {tuple(value.shape)}, the model expects "
                             f"{tuple(own[key].shape)}: a weights file for another architecture or class count")
        loaded[key] = value
    missing = sorted(k for k in own if k not in loaded and not k.startswith(head))
    if missing:
        raise InputError(f"{Path(path).name} lacks {missing[:5]}{' ...' if len(missing) > 5 else ''} "
                         f"of a {architecture}: is it a weights file for another architecture?")
    module.load_state_dict(loaded, strict=False)
    return {"skipped": skipped, "loaded": len(loaded)}
