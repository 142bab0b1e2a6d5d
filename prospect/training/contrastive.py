"""Self-supervised pretraining by contrast of two views (SimCLR), for networks that have few labelled examples.

    history = pretrain_contrastive(encoder, views, epochs=20, seed=0)   # views: (view 1, view 2) per example

Chen et al. (2020, "A simple framework for contrastive learning of visual representations"): every example
gives two random views (e.g. two crops of one image, flipped, jittered); an encoder and a small projection
head map them to unit vectors, and the NT-Xent loss asks each view to pick its partner out of the other
``2N − 2`` views of the batch (cross-entropy over the cosine similarities divided by a temperature). It needs
no label: :func:`pretrain_contrastive` takes the views and nothing else, so it may see every image of a study,
test images included, without reading a label. The encoder's weights change in place; the projection head is
dropped afterwards, as in the paper.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from prospect.errors import InputError

__all__ = ["pretrain_contrastive", "nt_xent"]

log = logging.getLogger(__name__)


def nt_xent(first: torch.Tensor, second: torch.Tensor, temperature: float = 0.2) -> torch.Tensor:
    """The NT-Xent loss of two batches of embeddings (N, D), row ``i`` of each the two views of one example:
    the mean over the ``2N`` views of ``−log softmax`` of the partner's cosine similarity among the other
    ``2N − 1`` views (similarities divided by ``temperature``)."""
    z = F.normalize(torch.cat([first, second]).float(), dim=1)
    similarity = z @ z.T / temperature
    similarity.fill_diagonal_(float("-inf"))          # a view is never its own partner
    n = len(first)
    partner = torch.cat([torch.arange(n, 2 * n), torch.arange(n)]).to(z.device)
    return F.cross_entropy(similarity, partner)


def pretrain_contrastive(encoder: nn.Module, views: Any, epochs: int = 20, batch_size: int = 64, lr: float = 1e-3,
                         temperature: float = 0.2, projection: int = 64, seed: int = 0, device: str = "cpu",
                         progress: bool = False) -> pd.DataFrame:
    """Train ``encoder`` (images → features (B, F)) on the NT-Xent loss of two views per example.

    Parameters
    ----------
    encoder : torch.nn.Module
        Maps a batch (B, C, H, W) to features (B, F); trained in place.
    views : torch Dataset
        Item ``i`` is a tensor (2, C, H, W): two random views of example ``i`` (a fresh draw each time it is
        read). Nothing else is read from it: no label.
    epochs, batch_size, lr : int, int, float
        Adam, with a cosine schedule over the epochs. The last batch of an epoch is dropped when it would
        hold fewer than 2 examples (a view needs negatives).
    temperature : float
        Of the NT-Xent loss (0.1–0.5 in the paper; 0.2 here).
    projection : int
        Width of the projection head (a two-layer MLP, dropped afterwards).
    seed : int
        Seeds the projection head, the order and every random view; the caller's random state is kept.

    Returns the history: ``epoch``, ``loss`` (mean NT-Xent) and ``seconds`` per epoch.
    """
    from tqdm.auto import tqdm

    for key, value in (("epochs", epochs), ("batch_size", batch_size), ("projection", projection)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < (2 if key == "batch_size"
                                                                                             else 1):
            raise InputError(f"{key}={value!r} must be a whole number ≥ {2 if key == 'batch_size' else 1}")
    if not (isinstance(lr, (int, float)) and lr > 0) or not (isinstance(temperature, (int, float)) and temperature > 0):
        raise InputError(f"lr={lr!r} and temperature={temperature!r} must be numbers above 0")
    if len(views) < 2:
        raise InputError(f"views holds {len(views)} example(s); contrast needs at least 2")
    device = torch.device(device)
    history = []
    with torch.random.fork_rng(devices=[device.index or 0] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        encoder.to(device).train()
        width = int(encoder(views[0].to(device)).shape[1])
        head = nn.Sequential(nn.Linear(width, width), nn.ReLU(), nn.Linear(width, int(projection))).to(device)
        parameters = [*encoder.parameters(), *head.parameters()]
        optimizer = torch.optim.Adam(parameters, lr=lr, weight_decay=1e-6)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=int(epochs))
        loader = torch.utils.data.DataLoader(views, batch_size=int(batch_size), shuffle=True,
                                             drop_last=len(views) % int(batch_size) == 1,
                                             generator=torch.Generator().manual_seed(seed))
        for epoch in range(int(epochs)):
            started, total, count = time.perf_counter(), 0.0, 0
            bar = tqdm(loader, desc=f"pretraining {epoch + 1}/{epochs}", leave=False,
                       disable=not (progress and sys.stderr.isatty()))
            for pair in bar:
                pair = pair.to(device)
                embedded = head(encoder(pair.flatten(0, 1))).view(len(pair), 2, -1)
                loss = nt_xent(embedded[:, 0], embedded[:, 1], float(temperature))
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total += float(loss.detach()) * len(pair)
                count += len(pair)
            schedule.step()
            history.append({"epoch": epoch + 1, "loss": total / count, "seconds": time.perf_counter() - started})
            log.info("contrastive pretraining, epoch %d: loss %.4f (%.1f s)", epoch + 1, total / count,
                     history[-1]["seconds"])
    encoder.eval()
    return pd.DataFrame(history)
