"""Attention blocks: channel (CBAM), spatial (CBAM), Squeeze-and-Excitation and ECA.

All reduce with ``mean`` and ``amax`` rather than adaptive pooling layers, so
they run under ``torch.use_deterministic_algorithms(True)`` on CUDA.
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["ChannelAttention", "SpatialAttention", "SqueezeExcitation", "EfficientChannelAttention"]


class ChannelAttention(nn.Module):
    """CBAM channel attention, the MFAF paper's eq. 2.

    ``M_c = σ(MLP(AvgPool(F)) + MLP(MaxPool(F)))`` with one MLP shared by both
    descriptors (the paper writes the sum inside the MLP and also calls the
    block SE; we follow CBAM, Woo et al. 2018, whose form eq. 2 is). The input
    is rescaled channel by channel.

    Parameters
    ----------
    channels : int
    reduction : int
        Hidden width is ``max(channels // reduction, 4)``.
    """

    def __init__(self, channels: int, reduction: int = 4) -> None:
        super().__init__()
        hidden = max(channels // reduction, 4)
        self.mlp = nn.Sequential(nn.Linear(channels, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = torch.sigmoid(self.mlp(x.mean(dim=(2, 3))) + self.mlp(x.amax(dim=(2, 3))))
        return x * weight[:, :, None, None]


class SpatialAttention(nn.Module):
    """CBAM spatial attention, the MFAF paper's eq. 3: ``σ(f7×7([AvgPool_c(F); MaxPool_c(F)]))``."""

    def __init__(self, kernel_size: int = 7) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        descriptor = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return x * torch.sigmoid(self.conv(descriptor))


class SqueezeExcitation(nn.Module):
    """Squeeze-and-Excitation (Hu et al.): average-pooled descriptor, bottleneck MLP, sigmoid gate."""

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        hidden = max(channels // reduction, 8)
        self.mlp = nn.Sequential(nn.Linear(channels, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, channels),
                                 nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.mlp(x.mean(dim=(2, 3)))[:, :, None, None]


class EfficientChannelAttention(nn.Module):
    """ECA (Wang et al. 2020): a 1-D convolution across the pooled channel descriptor, no bottleneck.

    The kernel size follows the paper's rule ``|log2(C) / γ + b / γ|`` rounded to odd (γ = 2, b = 1).
    Works on channels-first ``(B, C, H, W)`` input.
    """

    def __init__(self, channels: int, gamma: int = 2, b: int = 1) -> None:
        super().__init__()
        size = int(abs(math.log2(channels) / gamma + b / gamma))
        size = size if size % 2 else size + 1
        self.conv = nn.Conv1d(1, 1, size, padding=size // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        descriptor = x.mean(dim=(2, 3))[:, None, :]
        return x * torch.sigmoid(self.conv(descriptor))[:, 0, :, None, None]
