"""MFAF, the Multiscale Feature Attention Framework of Gao et al. (§3, Fig. 1), built from the paper.

For each dilation rate a branch applies a dilated 3 × 3 convolution to the input
geo-image (so the rate acts where the map is still 128 px wide: at the end of a
ResNet18 it is 4 × 4, where a rate-24 kernel would see only its centre), channel
attention (eq. 2), a backbone (ResNet18 or ShuffleNetV2 from torchvision, its
first convolution adapted), spatial attention on the last feature map (eq. 3),
global average pooling and a fully connected head **shared by all branches**.
Each branch gives its own softmax; the fused prediction is their mean and the
paper's hard decision is the vote (eqs. 5–6).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from typing import Annotated, Literal, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from prospect.errors import InputError
from prospect.models.attention import ChannelAttention, SpatialAttention
from prospect.models.backbones import Features, load_pretrained
from prospect.ranges import NOT_NEGATIVE, POSITIVE, Range, whole

__all__ = ["MFAF", "MFAFOutput", "MFAFLoss", "DILATION_SETS", "scale_dilations"]

# The paper's dilation sets (§4.5, Table 7); rate3 is its choice.
DILATION_SETS = {"rate1": (1, 2, 4, 8, 10), "rate2": (1, 4, 8, 12, 16), "rate3": (1, 6, 12, 18, 24),
                 "rate4": (1, 8, 16, 24, 32)}
# A run file's dilations: a name above or rates >= 1 (other kinds are refused by the type check).
DILATIONS = Range(lambda v: not isinstance(v, (str, list)) or (v in DILATION_SETS if isinstance(v, str) else
                                                                all(rate >= 1 for rate in v)),
                  f"a name of {sorted(DILATION_SETS)} or a list of rates ≥ 1")


class MFAFOutput(NamedTuple):
    """What :class:`MFAF` returns.

    Attributes
    ----------
    logits : Tensor (B, classes)
        The fused prediction as log-probabilities: ``log(mean_k softmax(branch_k))``,
        so ``softmax(logits)`` is the mean of the branch probabilities (soft fusion,
        used for probability maps).
    branch_logits : Tensor (B, branches, classes)
        Each branch's own logits.
    """

    logits: torch.Tensor
    branch_logits: torch.Tensor

    def probabilities(self) -> torch.Tensor:
        """Mean of the branch probabilities, (B, classes)."""
        return self.logits.exp()

    def vote(self) -> torch.Tensor:
        """The paper's hard decision (eqs. 5–6): the class most branches predict, (B,).

        Ties (possible with an even number of branches or more than two classes)
        go to the tied class with the highest fused probability.
        """
        classes = self.branch_logits.shape[-1]
        votes = F.one_hot(self.branch_logits.argmax(dim=-1), classes).sum(dim=1).to(self.logits.dtype)
        # The fused probability (< 1) only separates classes with equal vote counts.
        return (votes + self.probabilities() * 0.5).argmax(dim=-1)


class MFAFLoss(nn.Module):
    """Cross-entropy of the fused prediction plus ``aux_weight`` × the mean branch cross-entropy.

    ``L = NLL(log mean_k p_k, y) + aux_weight · (1/K) Σ_k CE(branch_k, y)`` (eq. 4 with
    the paper's auxiliary weight 0.4, §4.5). The auxiliary term is a **mean**
    over branches, so its weight does not depend on how many rates are used.
    With ``aux_weight=0`` only the fused prediction is trained.
    """

    def __init__(self, aux_weight: float = 0.4, label_smoothing: float = 0.0,
                 weight: torch.Tensor | None = None) -> None:
        super().__init__()
        if aux_weight < 0:
            raise InputError(f"aux_weight={aux_weight!r} must be ≥ 0")
        self.aux_weight = float(aux_weight)
        self.label_smoothing = float(label_smoothing)
        self.register_buffer("weight", weight)

    def forward(self, output: MFAFOutput, target: torch.Tensor) -> torch.Tensor:
        if not isinstance(output, MFAFOutput):
            raise InputError("MFAFLoss needs the MFAFOutput of an MFAF model")
        logp = output.logits
        fused = F.nll_loss(logp, target, weight=self.weight)
        if self.label_smoothing:  # as F.cross_entropy(label_smoothing=ε): (1 − ε)·NLL + ε·mean over classes
            fused = (1 - self.label_smoothing) * fused + self.label_smoothing * (-logp.mean(dim=-1)).mean()
        if self.aux_weight == 0:
            return fused
        branches = output.branch_logits
        k = branches.shape[1]
        auxiliary = F.cross_entropy(branches.reshape(-1, branches.shape[-1]), target.repeat_interleave(k),
                                    weight=self.weight, label_smoothing=self.label_smoothing)
        return fused + self.aux_weight * auxiliary


class _Branch(nn.Module):
    def __init__(self, in_channels: int, width: int, dilation: int, backbone: Features, channel_attention: bool,
                 spatial_attention: bool, reduction: int) -> None:
        super().__init__()
        self.dilated = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=dilation, dilation=dilation, bias=False),
            nn.BatchNorm2d(width), nn.ReLU(inplace=True))
        self.channel_attention = ChannelAttention(width, reduction) if channel_attention else None
        self.backbone = backbone
        self.spatial_attention = SpatialAttention(7) if spatial_attention else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.dilated(x)
        if self.channel_attention is not None:
            x = self.channel_attention(x)
        x = self.backbone(x)
        self.trunk_size = tuple(x.shape[2:])
        if self.spatial_attention is not None:
            x = self.spatial_attention(x)
        return x.mean(dim=(2, 3))


def scale_dilations(dilations: Sequence[int], scale: float) -> tuple[int, ...]:
    """Rates for a grid ``scale`` times as coarse as the one they were chosen for (half up, at least 1).

    The paper's rates (1, 6, 12, 18, 24) act on 25 m cells; on 100 m cells (``scale=4``) the same
    ground reach is (1, 2, 3, 5, 6).
    """
    if not (np.isfinite(scale) and scale > 0):
        raise InputError(f"dilation_scale={scale!r} must be a positive number (grid cell / reference cell)")
    return tuple(max(1, int(np.floor(d / scale + 0.5))) for d in dilations)


class MFAF(nn.Module):
    """Multiscale Feature Attention Framework.

    Parameters
    ----------
    in_channels : int
        Bands of the geo-image tiles (10 in the paper).
    num_classes : int
        2: no ore / ore.
    dilations : sequence of int or str
        One branch per rate; or a name of :data:`DILATION_SETS` (``"rate3"`` =
        ``(1, 6, 12, 18, 24)``, the paper's and the default).
    backbone : {"resnet18", "shufflenet_v2"}
        torchvision trunk of every branch (each branch has its own).
    channel_attention, spatial_attention : bool
        Switch the attention blocks off for the ablations (No-CA, No-SA).
    width : int, optional
        Channels of each branch's dilated feature map, which channel attention
        weighs and the backbone reads. Default ``in_channels``: one channel per
        evidence layer, and a backbone stem as cheap as a plain ResNet18's (a
        width of 32 made a training step 2.4× slower than five ResNet18s on CPU).
    reduction : int
        Channel-attention MLP reduction. Default 4.
    aux_weight : float
        Weight of the auxiliary branch losses in :meth:`default_loss` (0.4, the paper's).
    pretrained : path, optional
        Local ImageNet weights of the backbone architecture, loaded into every
        branch (first convolution inflated to ``width``). Never downloaded.
    shared_backbone : bool
        One trunk for all branches (11 M parameters with ResNet18 instead of 56 M;
        the compute is the same). The paper can be read either way; default False,
        a trunk per branch.
    dilation_scale : float
        Divide the rates by this (half up, at least 1) so they keep their ground reach
        on a coarser grid: the paper's rates are for 25 m cells, so 100 m cells take 4
        (:func:`scale_dilations`). Default 1.

    The model's ``backbone`` attribute lists the backbones, which a trainer may freeze.
    The first forward pass warns when the trunk's last feature map is smaller than
    3 × 3 (spatial attention then weighs almost nothing).
    """

    def __init__(self, in_channels: int, num_classes: int = 2,
                 dilations: Annotated[Sequence[int] | str, DILATIONS] = "rate3",
                 backbone: Literal["resnet18", "shufflenet_v2"] = "resnet18", channel_attention: bool = True,
                 spatial_attention: bool = True, width: Annotated[int | None, whole(1)] = None,
                 reduction: Annotated[int, whole(1)] = 4, aux_weight: Annotated[float, NOT_NEGATIVE] = 0.4,
                 pretrained: str | os.PathLike | None = None, shared_backbone: bool = False,
                 dilation_scale: Annotated[float, POSITIVE] = 1.0) -> None:
        super().__init__()
        if isinstance(dilations, str):
            if dilations not in DILATION_SETS:
                raise InputError(f"dilations={dilations!r}; valid names: {sorted(DILATION_SETS)}, or a list of rates")
            dilations = DILATION_SETS[dilations]
        dilations = tuple(int(d) for d in dilations)
        if not dilations or min(dilations) < 1:
            raise InputError(f"dilations={dilations!r} must be one or more rates ≥ 1")
        dilations = scale_dilations(dilations, float(dilation_scale))
        if int(in_channels) != in_channels or in_channels < 1:
            raise InputError(f"in_channels={in_channels!r} must be a positive whole number")
        if num_classes < 2:
            raise InputError(f"num_classes={num_classes!r} must be at least 2")
        self.in_channels, self.num_classes, self.dilations = int(in_channels), int(num_classes), dilations
        width = int(in_channels) if width is None else int(width)
        self.aux_weight = float(aux_weight)
        shared = Features(backbone, width) if shared_backbone else None
        self.branches = nn.ModuleList(
            _Branch(in_channels, width, d, shared or Features(backbone, width), channel_attention, spatial_attention,
                    reduction) for d in dilations)
        self._checked_size = False
        self.head = nn.Linear(self.branches[0].backbone.out_channels, num_classes)  # shared by every branch
        self.config = {"in_channels": int(in_channels), "num_classes": int(num_classes), "dilations": list(dilations),
                       "backbone": backbone, "channel_attention": channel_attention,
                       "spatial_attention": spatial_attention, "width": width, "reduction": reduction,
                       "aux_weight": float(aux_weight), "shared_backbone": bool(shared_backbone)}
        if pretrained is not None:
            for branch in self.branches[:1] if shared_backbone else self.branches:
                load_pretrained(branch.backbone, pretrained, backbone)

    @property
    def backbone(self) -> nn.ModuleList:
        """The branch backbones (what ``freeze_backbone_epochs`` freezes); one when shared."""
        unique = {id(branch.backbone): branch.backbone for branch in self.branches}
        return nn.ModuleList(unique.values())

    @property
    def features_size(self) -> int:
        """Width of :meth:`features`: the backbone's output channels (what the shared head reads)."""
        return int(self.head.in_features)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, features_size)``: the mean over branches of what the shared head reads from each (the pooled,
        attended trunk). What :func:`prospect.training.pretrain` reconstructs the masked bands from, so MFAF takes
        the label-efficient recipe's pretraining as the window network does."""
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise InputError(f"MFAF expects (batch, {self.in_channels}, height, width) input, got {tuple(x.shape)}")
        return torch.stack([branch(x) for branch in self.branches], dim=1).mean(dim=1)

    def default_loss(self) -> MFAFLoss:
        """The paper's loss: fused cross-entropy + ``aux_weight`` × mean branch cross-entropy."""
        return MFAFLoss(self.aux_weight)

    def forward(self, x: torch.Tensor) -> MFAFOutput:
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise InputError(f"MFAF expects (batch, {self.in_channels}, height, width) input, got {tuple(x.shape)}")
        branch_logits = torch.stack([self.head(branch(x)) for branch in self.branches], dim=1)
        trunk = self.branches[0].trunk_size
        if not self._checked_size and min(trunk) < 3:
            warnings.warn(f"MFAF: the {self.config['backbone']} trunk ends at {trunk[0]} x {trunk[1]} on "
                          f"{x.shape[2]} x {x.shape[3]} inputs; below 3 x 3 its spatial attention is almost a scalar "
                          "gate - use tiles of at least 96 px (both trunks shrink them 32-fold) for it to act",
                          stacklevel=2)
        self._checked_size = True
        fused = torch.logsumexp(F.log_softmax(branch_logits.float(), dim=-1), dim=1) - torch.log(
            torch.tensor(float(len(self.branches)), device=x.device))
        return MFAFOutput(fused, branch_logits)
