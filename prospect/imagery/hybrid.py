"""A network and the classical baseline together: pooled network features beside colour/texture features under
one head, the average of their probabilities, and self-supervised pretraining on a study's own images.

    features = network_features(model, split.evaluated(split.train))     # (images, 512) for ResNet18
    hybrid = HybridClassifier(model, seed=0).fit(split.evaluated(split.train))
    probabilities = hybrid.predict_proba(split.test)
    history = pretrain_images(model, split.paths, size=64, mean=split.mean, std=split.std, crops=True)

**Hybrid.** A network trained from scratch on a hundred images and a texture baseline err on different images:
the hybrid standardises the network's pooled features (the input of its last layer, averaged over an image's
crops) and the baseline's :class:`~prospect.imagery.ImageFeatures`, joins them and fits one logistic-regression
head on the training images. The network is trained first and not changed.

**Pretraining.** :func:`pretrain_images` reads pixels only (paths, no label), so it may use every image of the
study, the test images included, without leaking a label; the head of the model is left as it was.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from prospect.errors import InputError
from prospect.imagery.baseline import ImageFeatures
from prospect.imagery.zoo import headless

__all__ = ["network_features", "HybridClassifier", "average_probabilities", "pretrain_images"]


@torch.no_grad()
def network_features(model: nn.Module, data: Any, batch_size: int = 32, device: str | torch.device | None = None
                     ) -> np.ndarray:
    """The pooled features a classifier's head reads, (images, F), in the order of ``data`` (a dataset of
    ``(tensor, label)``); an item of several crops ``(V, C, H, W)`` gets the mean of its crops' features."""
    device = torch.device(device) if device is not None else next(model.parameters()).device
    loader = torch.utils.data.DataLoader(data, batch_size=int(batch_size), shuffle=False)
    was_training = model.training
    model.eval()
    out = []
    with headless(model) as encoder:
        for x, _ in loader:
            x = x.to(device)
            if x.ndim == 5:
                out.append(encoder(x.flatten(0, 1)).float().view(x.shape[0], x.shape[1], -1).mean(1).cpu())
            else:
                out.append(encoder(x).float().cpu())
    model.train(was_training)
    return torch.cat(out).numpy().astype(np.float64)


class HybridClassifier:
    """One logistic-regression head on the network's pooled features joined with the colour/texture features.

    Parameters
    ----------
    model : torch.nn.Module
        A trained classifier of :func:`~prospect.imagery.build_classifier` (not changed).
    features : ImageFeatures, optional
        The baseline's features (default ``ImageFeatures()``).
    seed : int
    C : float
        Inverse regularisation of the head (scikit-learn's), on standardised features.

    ``blocks(data)`` gives the two feature blocks (network, baseline) of the images of ``data``; the head sees
    them side by side, each column standardised on the training images.
    """

    def __init__(self, model: nn.Module, features: ImageFeatures | None = None, seed: int = 0, C: float = 1.0,
                 batch_size: int = 32) -> None:
        if not (isinstance(C, (int, float)) and C > 0):
            raise InputError(f"C={C!r} must be a number above 0")
        self.model, self.features, self.seed, self.C = model, features or ImageFeatures(), int(seed), float(C)
        self.batch_size = int(batch_size)
        self.head: Any = None

    def blocks(self, data: Any) -> tuple[np.ndarray, np.ndarray]:
        """(network features, baseline features) of every image of ``data`` (a dataset with ``.paths``)."""
        if len(data) != len(data.paths):
            raise InputError(f"data yields {len(data)} items for {len(data.paths)} images (repeats); pass the images "
                             "with their evaluation transform: split.evaluated(split.train)")
        return network_features(self.model, data, self.batch_size), self.features(data)

    def fit(self, data: Any, labels: Sequence[int] | None = None) -> HybridClassifier:
        """Fit the head on the images of ``data`` (their labels, or ``labels``)."""
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        joined = np.hstack(self.blocks(data))
        self.head = make_pipeline(StandardScaler(), LogisticRegression(C=self.C, max_iter=5000,
                                                                       class_weight="balanced",
                                                                       random_state=self.seed))
        self.head.fit(joined, np.asarray(data.labels if labels is None else labels))
        return self

    def predict_proba(self, data: Any) -> np.ndarray:
        if self.head is None:
            raise InputError("the hybrid is not fitted yet: call fit first")
        return self.head.predict_proba(np.hstack(self.blocks(data)))


def average_probabilities(*probabilities: np.ndarray, weights: Sequence[float] | None = None) -> np.ndarray:
    """The (weighted) mean of several models' class probabilities for the same images: the ensemble row."""
    if len(probabilities) < 2:
        raise InputError(f"average_probabilities needs two or more arrays of probabilities; got {len(probabilities)}")
    shapes = {np.shape(p) for p in probabilities}
    if len(shapes) != 1:
        raise InputError(f"the probabilities have different shapes {sorted(shapes)}; they must be of the same images "
                         "and classes")
    w = np.ones(len(probabilities)) if weights is None else np.asarray(weights, dtype=float)
    if w.shape != (len(probabilities),) or (w < 0).any() or w.sum() <= 0:
        raise InputError(f"weights={weights!r} must be {len(probabilities)} numbers ≥ 0, not all 0")
    return np.tensordot(w / w.sum(), np.stack([np.asarray(p, dtype=float) for p in probabilities]), axes=1)


class _TwoViews(torch.utils.data.Dataset):
    """Two random views of each image (pixels only: nothing here knows a label)."""

    def __init__(self, paths: Sequence[Path], transform: Any) -> None:
        self.paths, self.transform = [Path(p) for p in paths], transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> torch.Tensor:
        from PIL import Image

        from prospect.imagery.datasets import to_rgb

        with Image.open(self.paths[index]) as image:
            rgb = to_rgb(image)
        return torch.stack([self.transform(rgb), self.transform(rgb)])


PRETRAIN_AUGMENTATION = ("flip", "zoom", "contrast", "saturation", "gamma")


def pretrain_images(model: nn.Module, paths: Sequence[str | Path], size: int, mean: Sequence[float],
                    std: Sequence[float], crops: bool = True, scale: float = 1.0, epochs: int = 20,
                    batch_size: int = 64, lr: float = 1e-3, seed: int = 0, device: str = "cpu",
                    progress: bool = False) -> pd.DataFrame:
    """Contrastive pretraining (SimCLR, :func:`prospect.training.contrastive.pretrain_contrastive`) of a
    classifier's feature extractor on images given by path: two views of each image (random crops at its
    own scale with ``crops``, else the whole image resized to ``size``; flips, zoom, contrast, saturation and
    gamma) must find each other in the batch. Reads pixels only; the weights change in place, the head is
    untouched. Returns the history (``epoch``, ``loss``, ``seconds``)."""
    from prospect.imagery.datasets import crop_transforms, train_transforms
    from prospect.training.contrastive import pretrain_contrastive

    if len(paths) < 2:
        raise InputError(f"paths holds {len(paths)} image(s); contrastive pretraining needs at least 2")
    if crops:
        transform = crop_transforms(size, mean, std, 1, scale, PRETRAIN_AUGMENTATION)[0]
    else:
        transform = train_transforms(size, mean, std, PRETRAIN_AUGMENTATION)
    with headless(model) as encoder:
        return pretrain_contrastive(encoder, _TwoViews(paths, transform), epochs=epochs,
                                    batch_size=min(int(batch_size), len(paths)), lr=lr, seed=seed, device=device,
                                    progress=progress)
