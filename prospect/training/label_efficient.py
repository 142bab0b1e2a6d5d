"""Training with few deposits: a positive-unlabelled loss, and self-supervised pretraining on the stack.

    loss = NonNegativePULoss(prior=0.02)                 # labels: 1 = near a known deposit, 0 = unlabelled
    Trainer(model, loss=loss, ...).fit(windows)
    history = pretrain(model, stack, size=11, seed=0)    # no deposit in sight: every valid window is an example

**Positive-unlabelled (PU) learning.** The "background" cells of a prospectivity problem are not known to be
barren: some hold the deposits nobody has found yet. Kiryo et al. (2017, "Positive-unlabeled learning with
non-negative risk estimator") estimate the risk of the negatives from the unlabelled set *minus* the part
the positives explain, with a stated class prior ``pi`` (the share of ore-related cells in the unlabelled
background) and clip that part at zero:

    R(f) = pi E_P[l(f, +)] + max(0, E_U[l(f, -)] - pi E_P[l(f, -)])

where ``l`` is the cross-entropy. When the bracket goes negative (the network over-fits the few positives),
the step follows ``-(E_U[l(f, -)] - pi E_P[l(f, -)])`` instead (their Algorithm 1 with beta = 0, gamma = 1).
For a model with a constant output the risk is ``-pi log p - (1 - pi) log(1 - p)``: its minimum is
``p = pi``, the closed form the tests check.

**Pretraining.** :func:`pretrain` teaches a window network's feature extractor the stack itself: in random
valid windows of the whole area, a random share of the bands is blanked over the whole window and the network
reconstructs their centre-cell values from the other bands and the context (masked-band reconstruction). It
takes the stack and nothing else, so it reads no deposit and no fold's held-out labels: it runs once per
study and every fold fine-tunes from its weights.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Annotated

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from prospect.errors import InputError
from prospect.ranges import Range, whole

if TYPE_CHECKING:
    import xarray as xr

__all__ = ["NonNegativePULoss", "pretrain", "PRIOR"]

log = logging.getLogger(__name__)

PRIOR = Range(lambda v: 0 < v < 1, "a share in (0, 1)")


class NonNegativePULoss(nn.Module):
    """The non-negative PU risk of Kiryo et al. (2017) with cross-entropy, for 2-class logits.

    Parameters
    ----------
    prior : float
        The class prior pi: the share of positives hidden in the unlabelled set (here: of ore-related
        cells in the background), in (0, 1).
    positive : int
        The class index of the labelled positives (1).

    Accepts logits ``(B, 2)`` or an :class:`~prospect.models.MFAFOutput` (its fused log-probabilities).
    """

    def __init__(self, prior: Annotated[float, PRIOR], positive: int = 1) -> None:
        super().__init__()
        if not 0 < prior < 1:
            raise InputError(f"prior={prior!r} must lie in (0, 1): the share of positives among the unlabelled")
        self.prior, self.positive = float(prior), int(positive)

    def parts(self, output, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(pi E_P[l(f, +)], E_U[l(f, -)] - pi E_P[l(f, -)])``: the positive risk and the negative one."""
        from prospect.models import MFAFOutput

        logits = output.logits if isinstance(output, MFAFOutput) else output
        logp = F.log_softmax(logits.float(), dim=-1)
        labelled = target == self.positive
        negative = 1 - self.positive

        def mean(values: torch.Tensor, where: torch.Tensor) -> torch.Tensor:
            return values[where].mean() if bool(where.any()) else values.sum() * 0.0

        positive_risk = self.prior * mean(-logp[:, self.positive], labelled)
        negative_risk = mean(-logp[:, negative], ~labelled) - self.prior * mean(-logp[:, negative], labelled)
        return positive_risk, negative_risk

    def forward(self, output, target: torch.Tensor) -> torch.Tensor:
        positive_risk, negative_risk = self.parts(output, target)
        if negative_risk < 0:    # over-fitting the positives: step back up the negative risk (Algorithm 1)
            return -negative_risk
        return positive_risk + negative_risk


def pretrain(
    model: nn.Module,
    stack: xr.DataArray,
    size: Annotated[int, whole(3)],
    normalization: dict | None = None,
    windows: Annotated[int, whole(1)] = 20000,
    epochs: Annotated[int, whole(1)] = 4,
    mask_fraction: float = 0.3,
    batch_size: Annotated[int, whole(2)] = 256,
    lr: float = 2e-3,
    seed: int = 0,
    device: str = "cpu",
) -> pd.DataFrame:
    """Masked-band reconstruction on ``windows`` random valid windows of ``stack``; trains ``model`` in place.

    Parameters
    ----------
    model : Module
        Has ``features(x) -> (B, features_size)`` and ``features_size`` (e.g. :class:`~prospect.models.WindowNet`);
        its head is not touched.
    stack : DataArray (band, y, x)
        The evidence stack. Nothing else: no deposit, no label.
    size : int
        The window side (odd), as the fine-tuning will use.
    normalization : dict, optional
        :func:`prospect.sampling.fit_normalization` statistics (default: fitted on every valid cell).
    windows, epochs, batch_size, lr, seed
        Adam on the masked bands' mean squared error; the windows and masks are drawn from ``seed``.
    mask_fraction : float
        Share of the bands blanked per window (at least one).

    Returns
    -------
    DataFrame: ``epoch``, ``loss`` (mean squared error of the masked bands, standardised units: predicting the
    band mean scores about 1; a 0/1 indicator band is -1/+1, :func:`prospect.sampling.fit_normalization`),
    ``seconds``.
    """
    from prospect.compute import is_lazy
    from prospect.sampling import Points, _nth_true, _valid, fit_normalization, padded
    from prospect.sampling import windows as windows_of

    if not hasattr(model, "features") or not hasattr(model, "features_size"):
        raise InputError(f"pretrain needs a model with features(x) and features_size (e.g. WindowNet); "
                         f"{type(model).__name__} has not")
    if int(size) != size or size < 3 or size % 2 == 0:
        raise InputError(f"size={size!r} must be an odd whole number >= 3")
    if not 0 < mask_fraction < 1:
        raise InputError(f"mask_fraction={mask_fraction!r} must lie in (0, 1)")
    valid = _valid(stack)
    n_valid = int(np.count_nonzero(valid))
    if not n_valid:
        raise InputError("the stack has no cell valid in every band: nothing to pretrain on")
    stats = normalization if normalization is not None else fit_normalization(stack)
    bands, cols = stack.sizes["band"], stack.sizes["x"]
    rng = np.random.default_rng(seed)
    # the n-th valid cells drawn (what rng.choice of the valid cells' list draws, without the list)
    chosen = _nth_true(valid, rng.choice(n_valid, size=min(int(windows), n_valid), replace=False))
    rows_, cols_ = chosen // cols, chosen % cols
    offsets = torch.arange(int(size))
    if is_lazy(stack):    # the chosen windows gathered once from the blocks they lie in
        gathered = torch.from_numpy(windows_of(stack, Points(rows_, cols_, np.zeros(len(chosen))), int(size),
                                               normalization=stats).x)

        def cut(pick: np.ndarray) -> torch.Tensor:
            return gathered[torch.from_numpy(pick)]
    else:
        source = torch.from_numpy(padded(stack, int(size), stats))

        def cut(pick: np.ndarray) -> torch.Tensor:
            r = torch.from_numpy(rows_[pick])[:, None] + offsets
            c = torch.from_numpy(cols_[pick])[:, None] + offsets
            return source[:, r[:, :, None], c[:, None, :]].permute(1, 0, 2, 3).contiguous()
    target_device = torch.device(device)
    model.to(target_device).train()
    with torch.random.fork_rng():   # the decoder's weights and the masks from the seed; the caller's RNG untouched
        torch.manual_seed(seed)
        decoder = nn.Linear(model.features_size, bands).to(target_device)
        optimizer = torch.optim.Adam([*model.parameters(), *decoder.parameters()], lr=lr)
        history = []
        for epoch in range(int(epochs)):
            started, total, count = time.perf_counter(), 0.0, 0
            order = rng.permutation(len(chosen))
            for start in range(0, len(order), int(batch_size)):
                pick = order[start:start + int(batch_size)]
                if len(pick) < 2:
                    continue
                x = cut(pick)
                target = x[:, :, size // 2, size // 2].clone()
                masked = torch.rand(len(pick), bands) < mask_fraction
                masked[torch.arange(len(pick)), torch.randint(bands, (len(pick),))] = True   # at least one
                x = x * (~masked)[:, :, None, None]
                x, target, masked = x.to(target_device), target.to(target_device), masked.to(target_device)
                error = (decoder(model.features(x)) - target) ** 2
                loss = error[masked].mean()
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total += float(loss.detach()) * len(pick)
                count += len(pick)
            history.append({"epoch": epoch + 1, "loss": total / max(count, 1),
                            "seconds": time.perf_counter() - started})
            log.info("pretraining epoch %d: masked-band MSE %.4f", epoch + 1, history[-1]["loss"])
    return pd.DataFrame(history)
