"""Models for geo-image tiles: MFAF and the MFAF paper's baselines (Table 3), behind one registry.

    model = pp.models.build("mfaf", in_channels=10, backbone="resnet18")
    model = pp.models.build("mobilenet_v2", in_channels=10)
    probs = pp.models.probabilities(model(x))      # (B, classes), for either kind of output

Every model returns logits ``(B, classes)`` or, for MFAF, an :class:`MFAFOutput`.
Every model names its backbone (``model.backbone`` for MFAF, ``model.backbone_names``
for the baselines) so a trainer can freeze it.
"""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import nn

from prospect import registry
from prospect.errors import InputError
from prospect.models.attention import ChannelAttention, EfficientChannelAttention, SpatialAttention, SqueezeExcitation
from prospect.models.backbones import classifier, load_pretrained
from prospect.models.mfaf import DILATION_SETS, MFAF, MFAFLoss, MFAFOutput
from prospect.models.window import DihedralAverage, DihedralWindows, WindowNet, dihedral

__all__ = ["build", "list_models", "probabilities", "parameter_table", "MFAF", "MFAFLoss", "MFAFOutput",
           "DILATION_SETS", "WindowNet", "DihedralAverage", "DihedralWindows", "dihedral", "ChannelAttention",
           "SpatialAttention", "SqueezeExcitation", "EfficientChannelAttention"]

_MODELS = registry.descriptions("network")   # name -> what it is (prospect.registry says what each is)


def list_models() -> dict[str, str]:
    """Model names and what each is; all take ``(B, in_channels, H, W)`` tiles (H, W ≥ 32), except
    ``window_net``, made for small odd windows (3-33 cells)."""
    return dict(_MODELS)


def build(name: str, in_channels: int, num_classes: int = 2, pretrained: str | os.PathLike | None = None,
          **kwargs: Any) -> nn.Module:
    """Build a registered model for ``in_channels``-band tiles.

    Parameters
    ----------
    name : str
        One of :func:`list_models`.
    in_channels, num_classes : int
    pretrained : path, optional
        Local ImageNet weights of the architecture (inflated to ``in_channels``; the
        head is skipped). A missing file is an error naming it; nothing is downloaded.
    **kwargs
        Passed to :class:`MFAF` (``dilations``, ``backbone``, ``channel_attention``, ...).
    """
    if name not in _MODELS:
        raise InputError(f"unknown model {name!r}; valid: {sorted(_MODELS)}")
    if int(in_channels) != in_channels or in_channels < 1:
        raise InputError(f"in_channels={in_channels!r} must be a positive whole number")
    own = registry.get(name).options_callable()
    if own is not None:     # a model class of our own, built from its options
        return own(in_channels, num_classes, pretrained=pretrained, **kwargs)
    if kwargs:
        raise InputError(f"{name} takes no options {sorted(kwargs)}; only MFAF has them")
    model = classifier(name, int(in_channels), int(num_classes))
    if pretrained is not None:
        load_pretrained(model, pretrained, name)
    model.config = {"name": name, "in_channels": int(in_channels), "num_classes": int(num_classes)}
    return model


def probabilities(output: torch.Tensor | MFAFOutput) -> torch.Tensor:
    """Class probabilities (B, classes) from logits or from an MFAF output (mean of its branches)."""
    if isinstance(output, MFAFOutput):
        return output.probabilities()
    if isinstance(output, torch.Tensor) and output.ndim == 2:
        return torch.softmax(output.float(), dim=-1)
    raise InputError(f"expected logits (batch, classes) or an MFAFOutput, got {type(output).__name__}"
                     f"{'' if not isinstance(output, torch.Tensor) else tuple(output.shape)}")


def parameter_table(in_channels: int = 10, num_classes: int = 2) -> Any:
    """Trainable parameters of every registered model (and MFAF's variants) as a pandas DataFrame."""
    import pandas as pd

    rows = []
    variants = [("mfaf", {"backbone": "resnet18"}, "MFAF-ResNet18"),
                ("mfaf", {"backbone": "shufflenet_v2"}, "MFAF-ShuffleNetV2"),
                ("mfaf", {"backbone": "resnet18", "channel_attention": False}, "No-CA-MFAF-ResNet18"),
                ("mfaf", {"backbone": "resnet18", "spatial_attention": False}, "No-SA-MFAF-ResNet18"),
                ("window_net", {}, "window_net")]
    variants += [(name, {}, name) for name in _MODELS if registry.get(name).options is None]
    for name, kwargs, label in variants:
        model = build(name, in_channels, num_classes, **kwargs)
        rows.append({"model": label, "parameters": sum(p.numel() for p in model.parameters() if p.requires_grad)})
    return pd.DataFrame(rows).set_index("model")
