"""A network built for evidence-stack windows: the centre cell's values beside multi-scale context.

    model = pp.models.build("window_net", in_channels=12)          # 9-33-cell windows of 5-50 bands
    logits = model(x)                                              # x: (B, 12, 11, 11)
    tta = DihedralAverage(model)                                   # the mean over the 8 rotations/reflections

ResNet18 was made for 224-px photographs: on an 11-cell window its stem halves the window twice before the
first block, and the value of the cell being judged (all that a pixel model sees) is mixed away. Here the
centre cell's bands reach the head through their own small MLP, and beside them MFAF's idea at window
scale: 3 x 3 convolutions dilated at rates 1, 2 and 4 on a 1 x 1 embedding of the bands (receptive fields
3, 5 and 9 cells; a rate whose kernel would not fit the window is dropped), channel attention over the
concatenated branches, 7 x 7 spatial attention, then the centre cell's context features and the window
mean. Dropout before the head. 9,712 parameters for 12 bands (11,536 for 50), not eleven million; on a CPU a fold
of the Kolari benchmark trains and maps in 7.5 s on its default 5-cell windows, 19 s on 11 cells
(``benchmarks/bench_real.py``), ResNet18's in over 170 s on 11 cells.

The window's 8 symmetries (4 rotations x reflection, :func:`dihedral`) carry no geological meaning that a
fold could learn from a handful of deposits, so training draws one at random per window
(:class:`DihedralWindows`) and mapping averages the 8 (:class:`DihedralAverage`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Annotated

import torch
from torch import nn

from prospect.errors import InputError
from prospect.models.attention import ChannelAttention, SpatialAttention
from prospect.ranges import Range, whole

__all__ = ["WindowNet", "DihedralAverage", "DihedralWindows", "dihedral"]


DROPOUT = Range(lambda v: 0 <= v < 1, "a fraction in [0, 1)")


def dihedral(x: torch.Tensor, k: int) -> torch.Tensor:
    """The ``k``-th of the square's 8 symmetries (0-3: rotations by k x 90 degrees, 4-7: the same after a
    left-right flip) applied to the last two axes of ``x``."""
    if not 0 <= int(k) < 8:
        raise InputError(f"k={k!r}: a window has 8 symmetries, 0..7")
    if k >= 4:
        x = torch.flip(x, dims=(-1,))
    return torch.rot90(x, int(k) % 4, dims=(-2, -1))


class WindowNet(nn.Module):
    """Centre-cell MLP + dilated, attended context for ``(B, in_channels, S, S)`` windows (S odd, >= 3).

    Parameters
    ----------
    in_channels, num_classes : int
    width : int
        Channels of the band embedding and of each dilated branch.
    dilations : sequence of int
        The context branches' rates (a rate r sees 2r + 1 cells across).
    dropout : float
        Before the head.
    channel_attention, spatial_attention : bool
    pretrained : path, optional
        A state dict saved from a model of the same shape (e.g. after :func:`prospect.training.pretrain`).
    """

    def __init__(self, in_channels: int, num_classes: int = 2, width: Annotated[int, whole(4)] = 16,
                 dilations: Sequence[int] = (1, 2, 4), dropout: Annotated[float, DROPOUT] = 0.3,
                 channel_attention: bool = True, spatial_attention: bool = True,
                 pretrained: str | os.PathLike | None = None) -> None:
        super().__init__()
        if int(width) != width or width < 4:
            raise InputError(f"width={width!r} must be a whole number >= 4")
        if not dilations or any(int(r) != r or r < 1 for r in dilations):
            raise InputError(f"dilations={dilations!r} must be whole rates >= 1")
        if not 0 <= dropout < 1:
            raise InputError(f"dropout={dropout!r} must lie in [0, 1)")
        width, self.dilations = int(width), tuple(int(r) for r in dilations)
        self.num_classes, self.in_channels = int(num_classes), int(in_channels)
        self.centre = nn.Sequential(nn.Linear(in_channels, 2 * width), nn.ReLU(inplace=True),
                                    nn.Linear(2 * width, width), nn.ReLU(inplace=True))
        self.embed = nn.Sequential(nn.Conv2d(in_channels, width, 1, bias=False), nn.BatchNorm2d(width),
                                   nn.ReLU(inplace=True))
        self.branches = nn.ModuleList(
            nn.Sequential(nn.Conv2d(width, width, 3, padding=rate, dilation=rate, bias=False), nn.BatchNorm2d(width),
                          nn.ReLU(inplace=True)) for rate in self.dilations)
        context = width * len(self.dilations)
        self.channel_attention = ChannelAttention(context) if channel_attention else nn.Identity()
        self.spatial_attention = SpatialAttention(7) if spatial_attention else nn.Identity()
        self.features_size = width + 2 * context
        self.dropout = nn.Dropout(float(dropout))
        self.head = nn.Linear(self.features_size, self.num_classes)
        self.config = {"name": "window_net", "in_channels": self.in_channels, "num_classes": self.num_classes,
                       "width": width, "dilations": list(self.dilations), "dropout": float(dropout),
                       "channel_attention": bool(channel_attention), "spatial_attention": bool(spatial_attention)}
        if pretrained is not None:     # a local file only: nothing is downloaded
            from prospect.files import existing

            self.load_state_dict(torch.load(existing(pretrained, "pretrained"), map_location="cpu", weights_only=True))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, features_size)``: the centre cell's MLP, the context at the centre and the context's mean."""
        if x.ndim != 4 or x.shape[-1] != x.shape[-2] or x.shape[-1] % 2 == 0:
            raise InputError(f"WindowNet takes square windows of odd side (B, C, S, S); got {tuple(x.shape)}")
        if x.shape[1] != self.in_channels:
            raise InputError(f"WindowNet was built for {self.in_channels} bands; the windows have {x.shape[1]}")
        middle = x.shape[-1] // 2
        embedded = self.embed(x)
        reach = [i for i, rate in enumerate(self.dilations) if rate <= middle] or [0]
        context = torch.cat([self.branches[i](embedded) if i in reach else torch.zeros_like(embedded)
                             for i in range(len(self.branches))], dim=1)
        context = self.spatial_attention(self.channel_attention(context))
        return torch.cat([self.centre(x[:, :, middle, middle]), context[:, :, middle, middle],
                          context.mean(dim=(2, 3))], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.features(x)))


class DihedralAverage(nn.Module):
    """Test-time averaging: the mean class probability of ``model`` over a window's 8 symmetries.

    Returns ``log(mean_k softmax(model(dihedral(x, k))))`` as logits, so ``softmax`` of the output is that
    mean (what :func:`prospect.models.probabilities` reads). Invariant by construction: a rotated or
    reflected window gets the same prediction.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.config = getattr(model, "config", {})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        output = self.model(torch.cat([dihedral(x, k) for k in range(8)]))
        # an MFAFOutput carries its own (branch-mean) probabilities; plain logits take the softmax
        probabilities = output.probabilities() if hasattr(output, "probabilities") else torch.softmax(
            output.float(), dim=-1)
        mean = probabilities.reshape(8, x.shape[0], -1).mean(dim=0)
        return torch.log(mean.clamp_min(1e-12))


class DihedralWindows(torch.utils.data.Dataset):
    """A dataset of ``(window, label)`` whose windows each come out under one of the 8 symmetries at random.

    The draw uses torch's global generator, which :class:`~prospect.training.Trainer` seeds every epoch, so
    training stays reproducible. Evaluation should use the plain dataset (or :class:`DihedralAverage`).
    """

    def __init__(self, data: torch.utils.data.Dataset) -> None:
        self.data = data

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int):
        x, y = self.data[index]
        return dihedral(torch.as_tensor(x), int(torch.randint(8, ()))), y
