"""Grad-CAM and Score-CAM heat maps for the classifier zoo (CNNs and Swin), and an overlay figure."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from prospect.errors import InputError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["grad_cam", "score_cam", "plot_cam"]


def grad_cam(model: nn.Module, images: torch.Tensor, target: Any = None, layer: str | nn.Module | None = None,
             channels_last: bool | None = None) -> np.ndarray:
    """Grad-CAM (Selvaraju et al.): where the model looked for its class.

    Parameters
    ----------
    model : nn.Module
        A classifier; by default the layer named by ``model.cam_layer`` (set by
        :func:`build_classifier`) is read.
    images : Tensor (N, 3, H, W)
        Normalised images, as the model takes them.
    target : int or sequence of int, optional
        Class to explain per image. Default: the predicted class.
    layer : str or module, optional
        Feature layer to read instead of ``model.cam_layer``.
    channels_last : bool, optional
        Whether that layer's output is ``(N, h, w, C)``; default ``model.cam_channels_last``
        (True for the Swin models of :func:`build_classifier`).

    Returns
    -------
    ndarray (N, H, W) in [0, 1] at the images' size, each scaled to a maximum of 1 —
    or all zero where nothing in the image speaks for the class (Grad-CAM keeps only
    positive evidence). Works with a frozen backbone, and with Swin's channels-last
    ``(N, h, w, C)`` features.
    """
    layer = layer if layer is not None else getattr(model, "cam_layer", None)
    if layer is None:
        raise InputError("grad_cam needs layer=... (a module or its name) for a model without cam_layer")
    module = model.get_submodule(layer) if isinstance(layer, str) else layer
    captured: dict[str, torch.Tensor] = {}

    def keep(_module, _inputs, output):
        if not output.requires_grad:  # a frozen backbone: make the features a leaf that collects gradients
            output = output.detach().requires_grad_(True)
        output.retain_grad()
        captured["features"] = output
        return output

    handle = module.register_forward_hook(keep)
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad():
            logits = model(images)
            logits = getattr(logits, "logits", logits)
            chosen = logits.argmax(1) if target is None else torch.as_tensor(target, device=logits.device).reshape(-1)
            if chosen.numel() == 1 and len(images) > 1:
                chosen = chosen.repeat(len(images))
            model.zero_grad(set_to_none=True)
            logits.gather(1, chosen[:, None]).sum().backward()
    finally:
        handle.remove()
        model.train(was_training)
    features, gradients = captured["features"], captured["features"].grad
    if channels_last is None:
        channels_last = bool(getattr(model, "cam_channels_last", False))
    if channels_last:  # Swin: (N, h, w, C)
        features, gradients = features.permute(0, 3, 1, 2), gradients.permute(0, 3, 1, 2)
    weights = gradients.mean(dim=(2, 3), keepdim=True)
    cam = F.relu((weights * features).sum(dim=1, keepdim=True))
    cam = F.interpolate(cam, size=images.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    low = cam.flatten(1).min(1).values[:, None, None]
    high = cam.flatten(1).max(1).values[:, None, None]
    return ((cam - low) / (high - low).clamp_min(1e-12)).detach().cpu().numpy()


@torch.no_grad()
def score_cam(model: nn.Module, images: torch.Tensor, target: Any = None, layer: str | nn.Module | None = None,
              channels_last: bool | None = None, batch_size: int = 64) -> np.ndarray:
    """Score-CAM (Wang et al. 2020), the class-activation map the Swin paper's description matches: each
    feature map of ``layer``, upsampled and scaled to [0, 1], masks the image; the class score of each masked
    image, softmaxed over the maps, weighs the maps. No gradients (so no gradient noise), one forward pass per
    feature map.

    Arguments and result as :func:`grad_cam`: (N, H, W) in [0, 1], each scaled to a maximum of 1, or all zero.
    """
    layer = layer if layer is not None else getattr(model, "cam_layer", None)
    if layer is None:
        raise InputError("score_cam needs layer=... (a module or its name) for a model without cam_layer")
    module = model.get_submodule(layer) if isinstance(layer, str) else layer
    captured: dict[str, torch.Tensor] = {}
    handle = module.register_forward_hook(lambda _m, _i, output: captured.__setitem__("features", output))
    was_training = model.training
    model.eval()
    try:
        logits = model(images)
        logits = getattr(logits, "logits", logits)
        chosen = logits.argmax(1) if target is None else torch.as_tensor(target, device=logits.device).reshape(-1)
        if chosen.numel() == 1 and len(images) > 1:
            chosen = chosen.repeat(len(images))
        features = captured["features"]
        if channels_last if channels_last is not None else bool(getattr(model, "cam_channels_last", False)):
            features = features.permute(0, 3, 1, 2)
        maps = F.interpolate(features, size=images.shape[-2:], mode="bilinear", align_corners=False)
        low = maps.flatten(2).min(2).values[..., None, None]
        high = maps.flatten(2).max(2).values[..., None, None]
        masks = (maps - low) / (high - low).clamp_min(1e-12)            # (N, K, H, W)
        cams = []
        for i in range(len(images)):
            scores = []
            for start in range(0, masks.shape[1], batch_size):
                masked = images[i:i + 1] * masks[i, start:start + batch_size, None]
                out = model(masked)
                out = getattr(out, "logits", out)
                scores.append(torch.softmax(out, dim=1)[:, chosen[i]])
            weights = torch.softmax(torch.cat(scores), dim=0)
            cams.append(F.relu((weights[:, None, None] * features[i]).sum(0)))
    finally:
        handle.remove()
        model.train(was_training)
    cam = F.interpolate(torch.stack(cams)[:, None], size=images.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    low = cam.flatten(1).min(1).values[:, None, None]
    high = cam.flatten(1).max(1).values[:, None, None]
    return ((cam - low) / (high - low).clamp_min(1e-12)).cpu().numpy()


def plot_cam(images: torch.Tensor, cams: np.ndarray, titles: list[str] | None = None,
             mean: tuple = (0.485, 0.456, 0.406), std: tuple = (0.229, 0.224, 0.225)) -> Figure:
    """Images with their Grad-CAM maps overlaid (one column per image)."""
    import matplotlib.pyplot as plt

    n = len(images)
    fig, axes = plt.subplots(1, n, figsize=(2.6 * n, 2.8), layout="constrained", squeeze=False)
    pictures = (images.detach().cpu() * torch.tensor(std)[:, None, None] + torch.tensor(mean)[:, None, None])
    heat = None
    for i, ax in enumerate(axes[0]):
        ax.imshow(pictures[i].permute(1, 2, 0).clamp(0, 1).numpy())
        heat = ax.imshow(cams[i], cmap="jet", alpha=0.45, vmin=0, vmax=1)
        ax.set_axis_off()
        if titles:
            ax.set_title(titles[i], fontsize="small")
    if heat is not None:
        bar = fig.colorbar(heat, ax=axes[0].tolist(), shrink=0.8, ticks=[0, 0.5, 1])
        bar.set_label("Grad-CAM (per image, max = 1)", fontsize="small")
    return fig
