"""BatchNorm statistics that match the weights: recomputed before evaluation, fixed in a frozen backbone.

Why: a freshly initialised network (MobileNetV2 above all) changes its activations faster than BatchNorm's running
averages (momentum 0.1) follow. For its first ~70-85 optimiser steps the statistics used in evaluation do not match
the activations of the deepest layers (their variance 0.06-0.25x the stored one), so evaluation predicts one class
while training is fine. A small set at 8 epochs makes fewer steps than that. Recomputing the statistics from
training batches with the current weights ("precise BN", Wu & Johnson 2021, *Rethinking "Batch" in BatchNorm*)
removes the mismatch at the cost of a forward pass over those batches.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

__all__ = ["recalibrate", "freeze_statistics", "batchnorm_layers"]


def batchnorm_layers(module: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]


@torch.no_grad()
def recalibrate(model: nn.Module, batches: Iterable[torch.Tensor], skip: Iterable[nn.Module] = ()) -> int:
    """Recompute the running mean and variance of every BatchNorm layer (but those in ``skip``) as the plain
    average over ``batches`` (inputs, already on the model's device); returns the number of batches used.

    The model is left in evaluation mode; nothing else (weights, other buffers) changes.
    """
    frozen = {id(m) for module in skip for m in batchnorm_layers(module)}
    layers = [m for m in batchnorm_layers(model) if id(m) not in frozen]
    if not layers:
        return 0
    saved = [(m, m.momentum, m.training) for m in layers]
    for layer in layers:
        layer.reset_running_stats()
        layer.momentum = None          # a cumulative average over the batches, not an exponential one
    was_training = model.training
    model.train()
    for layer in {id(m): m for module in skip for m in batchnorm_layers(module)}.values():
        layer.eval()
    used = 0
    for x in batches:
        model(x)
        used += 1
    for layer, momentum, _ in saved:
        layer.momentum = momentum
    model.train(was_training)
    model.eval()
    return used


def freeze_statistics(modules: Iterable[nn.Module]) -> None:
    """Put the BatchNorm layers of ``modules`` in evaluation mode: a frozen backbone keeps its statistics too
    (as Keras does for a layer with ``trainable=False``), not only its weights."""
    for module in modules:
        for layer in batchnorm_layers(module):
            layer.eval()
