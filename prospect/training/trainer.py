"""One training loop for geo-image tiles and rock/ore photographs.

Anchors: timm's train script, torchvision's reference scripts and Lightning —
seeded and resumable, bf16 autocast on CUDA, checkpoints of plain types that load
with ``weights_only=True``, DistributedDataParallel under ``torchrun``.
"""

from __future__ import annotations

import itertools
import logging
import math
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
from torch import nn

from prospect.errors import InputError, OutputExistsError, TrainingError
from prospect.files import atomic_output
from prospect.models import MFAFLoss, MFAFOutput, probabilities
from prospect.training._batchnorm import batchnorm_layers, freeze_statistics, recalibrate
from prospect.training._checks import _check_classes, _check_finite, _class_counts, check_options
from prospect.training._data import _distributed, _EpochSampler, _seed_worker, _views_apart
from prospect.training.checkpoint import CheckpointError, _plain, export_run, load_checkpoint, state_mismatch
from prospect.training.metrics import classification_metrics

__all__ = ["Trainer", "PRESETS", "CheckpointError", "load_checkpoint"]

log = logging.getLogger(__name__)

PRESETS: dict[str, dict[str, Any]] = {
    # Gao et al. §4.2: SGD, momentum 0.2, weight decay 1e-4, lr 0.02 decayed 40 % every 30 epochs, 220 epochs,
    # batch 32.
    "mfaf": dict(optimizer="sgd", lr=0.02, momentum=0.2, weight_decay=1e-4, scheduler="step", step_size=30,
                 gamma=0.6, epochs=220, batch_size=32),
    # Images from scratch on a small set (prospect's own default, no paper): Adam 1e-3 with a cosine schedule,
    # batch 16, 30 epochs, BatchNorm statistics recomputed after every epoch (a fresh MobileNetV2 otherwise
    # evaluates as one class for its first ~80 steps), the best validation epoch kept.
    "images": dict(optimizer="adam", lr=1e-3, momentum=0.9, weight_decay=1e-4, scheduler="cosine", epochs=30,
                   batch_size=16, precise_bn=50, monitor="val_accuracy"),
    # The Swin paper (opaque minerals under the microscope, its section "Model Training"): Adam, betas 0.9/0.999
    # (torch's), lr 1e-6, batch 16, 20 epochs, the best validation accuracy of the 20 reported; ImageNet weights.
    "swin": dict(optimizer="adam", lr=1e-6, momentum=0.9, weight_decay=0.0, scheduler=None, epochs=20, batch_size=16,
                 monitor="val_accuracy"),
    # The MobileNetV2+SE replication (of Zhou et al. 2022): Adam 1e-4, batch 32, 20 epochs, the backbone frozen for
    # the first 10 (SE and the head train), best validation accuracy kept; ImageNet weights. Its dropout 0.5 and SE
    # reduction 8 belong to the model: build_classifier(..., attention="se", dropout=0.5, reduction=8).
    "senet_freeze": dict(optimizer="adam", lr=1e-4, momentum=0.9, weight_decay=0.0, scheduler=None, epochs=20,
                         batch_size=32, freeze_backbone_epochs=10, monitor="val_accuracy"),
    # The ConvNeXt-ECA paper fine-tunes ImageNet weights on a 6:2:2 split but prints no optimiser settings: these
    # are the other papers' fine-tuning choice (Adam 1e-4, batch 32) and 50 epochs, best validation epoch kept.
    "convnext_eca": dict(optimizer="adam", lr=1e-4, momentum=0.9, weight_decay=0.0, scheduler=None, epochs=50,
                         batch_size=32, monitor="val_accuracy"),
    # Fine-tuning with a frozen warm-up (backbone only: attention blocks and head always train), Adam 1e-4.
    "images_frozen_warmup": dict(optimizer="adam", lr=1e-4, momentum=0.9, weight_decay=0.0, scheduler=None,
                                 epochs=50, batch_size=16, freeze_backbone_epochs=5, monitor="val_accuracy"),
}

_RUN_FILES = ("last.pt", "best.pt", "history.csv", "model.safetensors", "config.json")
_ADDED = {"precise_bn": 0, "restore_best": True}   # settings newer than some checkpoints, with the value they had



class Trainer:
    """Train, evaluate and predict with any classifier returning logits or an :class:`MFAFOutput`.

    Parameters
    ----------
    model : torch.nn.Module
    loss : module, optional
        Default: the model's own (``model.default_loss()``, e.g. MFAF's auxiliary loss),
        else cross-entropy; ``class_weights`` and ``label_smoothing`` apply to either.
    optimizer : {"sgd", "adam", "adamw"}
    lr, momentum, weight_decay : float
    scheduler : {"step", "cosine", None}
        ``"step"``: multiply the rate by ``gamma`` every ``step_size`` epochs
        (the paper's "decayed 40 % every 30 epochs" is ``gamma=0.6``); ``"cosine"`` over ``epochs``.
    epochs, batch_size : int
        When a training epoch would end in a batch of one sample (which BatchNorm cannot
        normalise), that sample sits the epoch out; the shuffled order picks another each epoch.
    device : {"auto", "cpu", "cuda", "cuda:N"}
        ``"auto"``: CUDA when available, else the CPU.
    precision : {"bf16", "fp32"}
        ``"bf16"``: bf16 autocast on CUDA (no grad scaler needed); the CPU always trains in fp32.
    out_dir : path, optional
        Where ``history.csv``, ``last.pt``, ``best.pt``, ``model.safetensors`` and
        ``config.json`` go. A folder holding another run is refused unless
        ``overwrite=True`` (or the run is resumed with :meth:`resume`).
    seed : int
        Seeds the data order and every random draw during training (the caller's
        global RNG state is restored afterwards); same seed, same history on CPU.
    checkpoint_every : int
        Write ``last.pt`` (what :meth:`resume` continues from) every N epochs and
        after the last one; ``best.pt`` is written whenever ``monitor`` improves.
    freeze_backbone_epochs : int
        Freeze the model's backbone (``model.backbone`` or ``model.backbone_names``)
        for the first N epochs, then train everything.
    precise_bn : int
        After every epoch, recompute the BatchNorm statistics from this many training
        batches with the epoch's weights (0: off), so evaluation, checkpoints and the
        export use statistics that match the weights; a frozen backbone keeps its own.
        A fresh network's running averages lag its weights for its first ~80 steps.
    restore_best : bool
        With a validation set, end :meth:`fit` with the weights of the best epoch by
        ``monitor`` (those of ``best.pt`` and ``model.safetensors``), so ``evaluate``
        and ``predict`` use them. Default True. A warning says when the model predicts
        one class for every validation sample.
    early_stopping : int, optional
        Stop after this many epochs without improvement of ``monitor``.
    monitor : str
        History column that picks ``best.pt`` and drives early stopping; loss
        columns are minimised, others maximised. Default ``"val_roc_auc"``.
    class_weights : sequence of float, optional
    label_smoothing : float
    num_workers : int
        DataLoader workers (seeded per worker).
    progress : bool
        tqdm bars, shown only when stderr is a terminal.
    channels_last, compile : bool
        Memory format and ``torch.compile`` (CUDA speed-ups).
    overwrite : bool
    tensorboard : bool
        Also log to TensorBoard in ``out_dir/tensorboard`` (needs the tensorboard package).
    """

    def __init__(
        self,
        model: nn.Module,
        loss: nn.Module | None = None,
        optimizer: Literal["sgd", "adam", "adamw"] = "sgd",
        lr: float = 0.01,
        momentum: float = 0.9,
        weight_decay: float = 0.0,
        scheduler: Literal["step", "cosine"] | None = "step",
        step_size: int = 30,
        gamma: float = 0.6,
        epochs: int = 10,
        batch_size: int = 32,
        device: str = "auto",
        precision: Literal["bf16", "fp32"] = "bf16",
        out_dir: str | os.PathLike | None = None,
        seed: int = 0,
        checkpoint_every: int = 1,
        freeze_backbone_epochs: int = 0,
        precise_bn: int = 0,
        restore_best: bool = True,
        early_stopping: int | None = None,
        monitor: str = "val_roc_auc",
        class_weights: Any = None,
        label_smoothing: float = 0.0,
        num_workers: int = 0,
        progress: bool = True,
        channels_last: bool = False,
        compile: bool = False,
        overwrite: bool = False,
        tensorboard: bool = False,
    ) -> None:
        check_options(dict(optimizer=optimizer, lr=lr, momentum=momentum, weight_decay=weight_decay,
                           scheduler=scheduler, step_size=step_size, gamma=gamma, epochs=epochs,
                           batch_size=batch_size, device=device, precision=precision, seed=seed,
                           checkpoint_every=checkpoint_every, freeze_backbone_epochs=freeze_backbone_epochs,
                           precise_bn=precise_bn, restore_best=restore_best,
                           early_stopping=early_stopping, monitor=monitor, class_weights=class_weights,
                           label_smoothing=label_smoothing, num_workers=num_workers))
        self.config = dict(optimizer=optimizer, lr=float(lr), momentum=float(momentum),
                           weight_decay=float(weight_decay), scheduler=scheduler, step_size=int(step_size),
                           gamma=float(gamma), epochs=int(epochs), batch_size=int(batch_size),
                           precision=precision, seed=int(seed), freeze_backbone_epochs=int(freeze_backbone_epochs),
                           precise_bn=int(precise_bn), restore_best=bool(restore_best),
                           early_stopping=early_stopping, monitor=monitor,
                           class_weights=None if class_weights is None else [float(w) for w in class_weights],
                           label_smoothing=float(label_smoothing), channels_last=bool(channels_last))
        self.model = model
        self.device = self._pick_device(device)
        self.out_dir = None if out_dir is None else Path(out_dir)
        self.rank, self.world = _distributed()
        self.num_workers, self.progress, self.tensorboard = int(num_workers), bool(progress), bool(tensorboard)
        self.checkpoint_every = int(checkpoint_every)
        self._claimed = bool(overwrite)     # whether out_dir may hold a run already (checked by fit, not here)
        self.model.to(self.device)
        if channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.loss = self._make_loss(loss).to(self.device)
        self.optimizer = self._make_optimizer()
        self.scheduler = self._make_scheduler()
        self.history: list[dict[str, Any]] = []
        self.start_epoch = 0
        self.best = None
        self._best_state: dict[str, torch.Tensor] | None = None
        self.wait = 0
        self._compile = bool(compile)
        self._ddp = None

    # ----------------------------------------------------------------------------------------- set-up
    @staticmethod
    def _pick_device(device: str) -> torch.device:
        if device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(device)

    @staticmethod
    def _holds_a_run(folder: Path) -> bool:
        return folder.is_dir() and any((folder / name).exists() for name in _RUN_FILES)

    def _make_loss(self, loss: nn.Module | None) -> nn.Module:
        if loss is not None:
            return loss
        weight = None if self.config["class_weights"] is None else torch.tensor(self.config["class_weights"])
        if hasattr(self.model, "default_loss"):
            own = self.model.default_loss()
            if isinstance(own, MFAFLoss):
                return MFAFLoss(own.aux_weight, self.config["label_smoothing"], weight)
            return own
        return nn.CrossEntropyLoss(weight=weight, label_smoothing=self.config["label_smoothing"])

    def _make_optimizer(self) -> torch.optim.Optimizer:
        c, params = self.config, self.model.parameters()
        if c["optimizer"] == "sgd":
            return torch.optim.SGD(params, lr=c["lr"], momentum=c["momentum"], weight_decay=c["weight_decay"])
        if c["optimizer"] == "adam":
            return torch.optim.Adam(params, lr=c["lr"], weight_decay=c["weight_decay"])
        return torch.optim.AdamW(params, lr=c["lr"], weight_decay=c["weight_decay"])

    def _make_scheduler(self):
        c = self.config
        if c["scheduler"] == "step":
            return torch.optim.lr_scheduler.StepLR(self.optimizer, step_size=c["step_size"], gamma=c["gamma"])
        if c["scheduler"] == "cosine":
            return torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, T_max=c["epochs"])
        return None

    @classmethod
    def preset(cls, name: str, model: nn.Module, **overrides: Any) -> Trainer:
        """A Trainer with the settings of a paper (:data:`PRESETS`), any of them overridden."""
        if name not in PRESETS:
            raise InputError(f"preset {name!r} is unknown; valid: {sorted(PRESETS)}")
        return cls(model, **{**PRESETS[name], **overrides})

    def _backbone_modules(self) -> list[nn.Module]:
        """What freeze_backbone_epochs freezes: ``model.backbone``, or the (dotted) ``model.backbone_names``."""
        model = self.model
        if isinstance(getattr(model, "backbone", None), nn.Module):
            return [model.backbone]
        names = getattr(model, "backbone_names", None)
        if names:
            return [model.get_submodule(name) for name in names]
        raise InputError(f"freeze_backbone_epochs needs a model that names its backbone (a 'backbone' module or "
                         f"'backbone_names'); {type(model).__name__} does neither")

    # ----------------------------------------------------------------------------------------- data
    def _loader(self, data: Any, shuffle: bool, epoch: int = 0, distributed: bool = True):
        if isinstance(data, torch.utils.data.DataLoader):
            return data
        if hasattr(data, "as_torch") and not isinstance(data, torch.utils.data.Dataset):
            data = data.as_torch()  # a prospect TileSet
        if len(data) == 0:
            raise InputError("the dataset is empty: nothing to train or evaluate on")
        rank, world = (self.rank, self.world) if distributed else (0, 1)
        sampler = _EpochSampler(len(data), self.config["seed"], shuffle, rank, world)
        sampler.epoch = epoch
        # BatchNorm cannot train on a batch of one: when the shuffled epoch would end in one, that sample
        # sits this epoch out (another one the next epoch, as the order changes). Evaluation keeps all.
        lonely = shuffle and len(sampler) % self.config["batch_size"] == 1 and len(sampler) > 1
        return torch.utils.data.DataLoader(data, batch_size=self.config["batch_size"], sampler=sampler,
                                           num_workers=self.num_workers, worker_init_fn=_seed_worker,
                                           generator=torch.Generator().manual_seed(self.config["seed"] + epoch),
                                           pin_memory=self.device.type == "cuda", drop_last=lonely)

    def _autocast(self):
        enabled = self.device.type == "cuda" and self.config["precision"] == "bf16"
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=enabled)

    def _to_device(self, x: torch.Tensor, y: Any) -> tuple[torch.Tensor, torch.Tensor]:
        x = x.to(self.device, non_blocking=True)
        if self.config["channels_last"] and x.ndim == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, torch.as_tensor(y).to(self.device, non_blocking=True).long()

    def _check_batch(self, output: Any, y: torch.Tensor) -> None:
        logits = output.logits if isinstance(output, MFAFOutput) else output
        if not isinstance(logits, torch.Tensor) or logits.ndim != 2:
            raise InputError(f"the model returned {type(output).__name__} of shape "
                             f"{getattr(logits, 'shape', None)}; expected logits (batch, classes) or an MFAFOutput")
        classes = logits.shape[1]
        expected = getattr(self.model, "num_classes", None) or getattr(self.model, "config", {}).get("num_classes")
        if expected is not None and expected != classes:
            raise InputError(f"the model outputs {classes} classes but was built for {expected}")
        if len(y) and (int(y.min()) < 0 or int(y.max()) >= classes):
            raise InputError(f"labels must lie in [0, {classes}) for a {classes}-class model; found "
                             f"{int(y.min())}..{int(y.max())}")

    # ----------------------------------------------------------------------------------------- training
    def fit(self, train: Any, val: Any = None) -> pd.DataFrame:
        """Train for the configured epochs; returns the history (also ``out_dir/history.csv``).

        Refused before the first step: a training set with fewer than two classes, and tiles holding
        NaN or infinite values (named by tile and band). Training stops at the first non-finite loss
        with a :class:`~prospect.errors.TrainingError`, exporting nothing (``last.pt`` keeps the
        last finite epoch). A run resumed after early stopping has nothing left to train.
        """
        from tqdm.auto import tqdm

        counts = _class_counts(train)
        if counts is not None:
            _check_classes(counts)
        _check_finite(train, "train")
        if val is not None:
            _check_finite(val, "val")
        if self.out_dir is not None and not self._claimed and self._holds_a_run(self.out_dir):
            raise OutputExistsError(f"out_dir={str(self.out_dir)!r} holds another run; pass overwrite=True to "
                                    "replace it or Trainer.resume(out_dir, model, ...) to continue it")
        self._claimed = True
        model = self._prepare_model()
        if self.out_dir is not None and self.rank == 0:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        writer = self._tensorboard()
        steps = len(self._loader(train, shuffle=True)) * self.config["epochs"]
        if val is not None and steps < 100 and not self.config["precise_bn"] and batchnorm_layers(self.model):
            warnings.warn(f"{steps} optimiser steps in all: a fresh network's BatchNorm statistics lag its weights "
                          "for ~80 steps, so evaluation may see one class; set precise_bn (e.g. 50) or train longer",
                          stacklevel=2)
        frozen = self.config["freeze_backbone_epochs"]
        cuda = [self.device.index or 0] if self.device.type == "cuda" else []
        patience = self.config["early_stopping"]
        if patience and self.wait >= int(patience):
            log.info("the run stopped early after epoch %d (%d epochs without improvement of %s): nothing left to "
                     "train", self.start_epoch, self.wait, self.config["monitor"])
        seen: set[int] = set()
        with torch.random.fork_rng(devices=cuda):
            for epoch in range(self.start_epoch, self.config["epochs"]):
                if patience and self.wait >= int(patience):
                    break
                torch.manual_seed(self.config["seed"] * 1_000_003 + epoch)
                still = self._backbone_modules() if frozen and epoch < frozen else []
                if frozen:
                    for module in self._backbone_modules():
                        module.requires_grad_(epoch >= frozen)
                started = time.perf_counter()
                loader = self._loader(train, shuffle=True, epoch=epoch)
                model.train()
                freeze_statistics(still)
                total, count = 0.0, 0
                bar = tqdm(loader, desc=f"epoch {epoch + 1}/{self.config['epochs']}", leave=False,
                           disable=not (self.progress and self.rank == 0 and sys.stderr.isatty()))
                for batch, (x, y) in enumerate(bar):
                    x, y = self._to_device(x, y)
                    if x.ndim == 5:      # several views of each sample (N, V, C, H, W): each view trains
                        x, y = _views_apart(x), y.repeat_interleave(x.shape[1])
                    if counts is None and epoch == self.start_epoch:
                        seen.update(torch.unique(y).tolist())
                    with self._autocast():
                        output = model(x)
                        if count == 0:
                            self._check_batch(output, y)
                        loss = self.loss(output, y)
                    if not torch.isfinite(loss):
                        raise TrainingError(
                            f"the training loss is {float(loss.detach())} at epoch {epoch + 1}, batch {batch + 1} (lr "
                            f"{self.optimizer.param_groups[0]['lr']:g}): the weights would no longer be numbers, so "
                            "training stopped and nothing was exported. Lower lr, check the inputs for extreme "
                            f"values{'; last.pt holds the last finite epoch' if self.history else ''}")
                    self.optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    self.optimizer.step()
                    total += float(loss.detach()) * len(y)
                    count += len(y)
                    bar.set_postfix(loss=f"{total / count:.4f}")
                if counts is None and epoch == self.start_epoch and self.world == 1:
                    _check_classes({label: 1 for label in seen}, counted=False)
                total, count = self._all_reduce(total, count)
                row: dict[str, Any] = {"epoch": epoch + 1, "train_loss": total / count,
                                       "lr": self.optimizer.param_groups[0]["lr"], "train_samples": count}
                if self.scheduler is not None:
                    self.scheduler.step()
                if self.config["precise_bn"]:
                    sample = itertools.islice(self._loader(train, shuffle=True, epoch=epoch), self.config["precise_bn"])
                    recalibrate(self.model, (_views_apart(self._to_device(x, y)[0]) for x, y in sample), skip=still)
                if val is not None:
                    metrics = self.evaluate(val)
                    row.update({f"val_{k}": v for k, v in metrics.items() if not isinstance(v, list)})
                row["seconds"] = time.perf_counter() - started
                self.history.append(row)
                improved = self._track(row)
                if improved and val is not None and self.config["monitor"] in row:
                    self._best_state = {k: v.detach().to("cpu", copy=True) for k, v in self.model.state_dict().items()}
                stop = bool(patience) and self.wait >= int(patience)
                self._save(epoch, improved, stop or epoch + 1 == self.config["epochs"]
                           or (epoch + 1) % self.checkpoint_every == 0)
                if writer is not None:
                    for key, value in row.items():
                        if isinstance(value, float) and key != "epoch":
                            writer.add_scalar(key, value, epoch + 1)
                log.info("epoch %d: %s", epoch + 1, {k: round(v, 4) if isinstance(v, float) else v
                                                      for k, v in row.items()})
                if stop:
                    log.info("early stopping after %d epochs without improvement of %s", self.wait,
                             self.config["monitor"])
        if val is not None and self.config["restore_best"]:
            self._restore_best(val)
        self._export()
        if writer is not None:
            writer.close()
        return pd.DataFrame(self.history)

    def _restore_best(self, val: Any) -> None:
        """The best epoch's weights back in the model; a warning when it predicts one class for all of ``val``."""
        state = self._best_state
        if state is None and self.out_dir is not None and (self.out_dir / "best.pt").exists():
            state = load_checkpoint(self.out_dir / "best.pt")["model"]     # a resumed run
        monitor = self.config["monitor"]
        scored = [row for row in self.history if isinstance(row.get(monitor), float) and not math.isnan(row[monitor])]
        if state is not None and scored:
            best = (min if monitor.endswith("loss") else max)(scored, key=lambda r: r[monitor])
            if best["epoch"] != self.history[-1]["epoch"]:
                self.model.load_state_dict(state)
                log.info("restored the weights of epoch %d (best %s %.4f)", best["epoch"], monitor, best[monitor])
        probs, labels, _ = self._outputs(val)
        predicted = np.unique(probs.argmax(1))
        if len(predicted) == 1 and len(np.unique(labels)) > 1:
            warnings.warn(f"the model predicts class {int(predicted[0])} for every one of the {len(labels)} validation "
                          f"samples ({len(np.unique(labels))} classes there): it has learnt no distinction yet. Train "
                          "longer or with more steps per epoch (smaller batches), or use precise_bn", stacklevel=3)

    def _prepare_model(self) -> nn.Module:
        model = self.model
        if self.world > 1:
            import torch.distributed as dist

            if not dist.is_initialized():
                dist.init_process_group("nccl" if self.device.type == "cuda" else "gloo")
            if self._ddp is None:
                ids = [self.device.index] if self.device.type == "cuda" else None
                self._ddp = nn.parallel.DistributedDataParallel(model, device_ids=ids)
            model = self._ddp
        if self._compile:
            model = torch.compile(model)
        return model

    def _all_reduce(self, total: float, count: int) -> tuple[float, int]:
        if self.world == 1:
            return total, count
        import torch.distributed as dist

        tensor = torch.tensor([total, float(count)], dtype=torch.float64)
        dist.all_reduce(tensor)
        return float(tensor[0]), int(tensor[1])

    def _track(self, row: dict[str, Any]) -> bool:
        """Whether this epoch is the best so far by ``monitor`` (without that column, the latest is the best)."""
        monitor = self.config["monitor"]
        if monitor not in row:
            return True  # no validation data: best.pt follows the last epoch
        value = row[monitor]
        if isinstance(value, float) and math.isnan(value):
            return self.best is None  # e.g. AUC on a one-class validation set: cannot judge
        better = self.best is None or (value < self.best if monitor.endswith("loss") else value > self.best)
        if better:
            self.best, self.wait = float(value), 0
        else:
            self.wait += 1
        return better

    def _tensorboard(self):
        if not (self.tensorboard and self.out_dir is not None and self.rank == 0):
            return None
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            log.warning("tensorboard=True but the tensorboard package is not installed; not logging to it")
            return None
        return SummaryWriter(self.out_dir / "tensorboard")

    # ----------------------------------------------------------------------------------------- evaluation
    @torch.no_grad()
    def _outputs(self, data: Any) -> tuple[np.ndarray, np.ndarray, float]:
        """Probabilities, labels and mean loss over ``data``, gathered from every rank."""
        model = self.model
        model.eval()
        loader = self._loader(data, shuffle=False)
        probs, labels, total = [], [], 0.0
        for x, y in loader:
            x, y = self._to_device(x, y)
            with self._autocast():
                output = model(_views_apart(x))
                if x.ndim == 5:    # several views of each sample: the mean of their probabilities, as logits
                    mean = probabilities(output).float().view(x.shape[0], x.shape[1], -1).mean(1)
                    output = torch.log(mean.clamp_min(1e-12))
                self._check_batch(output, y)
                total += float(self.loss(output, y)) * len(y)
            probs.append(probabilities(output).float().cpu().numpy())
            labels.append(y.cpu().numpy())
        probs, labels = np.concatenate(probs), np.concatenate(labels)
        if self.world > 1:
            import torch.distributed as dist

            gathered: list[Any] = [None] * self.world
            dist.all_gather_object(gathered, (probs, labels, total))
            # Rank r evaluated positions r, r + world, ... of the padded order: undo that, drop the padding.
            size = loader.sampler.size
            padded = np.arange(math.ceil(size / self.world) * self.world) % size
            positions = np.concatenate([padded[r::self.world] for r in range(self.world)])
            _, first = np.unique(positions, return_index=True)
            probs = np.concatenate([g[0] for g in gathered])[first]
            labels = np.concatenate([g[1] for g in gathered])[first]
            # the loss averages over the padded positions too (at most world - 1 repeats)
            return probs, labels, sum(g[2] for g in gathered) / len(positions)
        return probs, labels, total / len(labels)

    def evaluate(self, data: Any) -> dict[str, Any]:
        """Loss and :func:`~prospect.training.metrics.classification_metrics` over ``data``."""
        probs, labels, loss = self._outputs(data)
        return {"loss": loss, **classification_metrics(labels, probs)}

    def predict(self, data: Any) -> np.ndarray:
        """Class probabilities (N, classes) in the order of ``data``.

        A sample of several views, ``(V, C, H, W)`` (the crops of one image), gets the mean of its views'
        probabilities, as do :meth:`evaluate` and validation (the loss takes its log as logits).
        """
        return self._outputs(data)[0]

    # ----------------------------------------------------------------------------------------- files
    def _state(self, epoch: int) -> dict[str, Any]:
        rng = {"cpu": torch.get_rng_state()}
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        return {"format": "prospect.Trainer/1", "epoch": epoch, "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": None if self.scheduler is None else self.scheduler.state_dict(),
                "rng": rng, "config": self.config, "model_config": _plain(getattr(self.model, "config", {})),
                "history": [_plain(row) for row in self.history], "best": self.best, "wait": self.wait}

    def _save(self, epoch: int, improved: bool, checkpoint: bool = True) -> None:
        if self.out_dir is None or self.rank != 0:
            return
        state = self._state(epoch)
        if checkpoint:
            with atomic_output(self.out_dir / "last.pt", overwrite=True) as tmp:
                torch.save(state, tmp)
        if improved and self.config["monitor"] in self.history[-1]:  # without validation, best.pt = last.pt
            with atomic_output(self.out_dir / "best.pt", overwrite=True) as tmp:
                torch.save(state, tmp)
        with atomic_output(self.out_dir / "history.csv", overwrite=True) as tmp:
            pd.DataFrame(self.history).to_csv(tmp, index=False)

    def _export(self) -> None:
        """``model.safetensors`` (weights of the best epoch when there is one) and ``config.json``."""
        if self.out_dir is not None and self.rank == 0:
            export_run(self.out_dir, self.model, self.config, self.best)

    @classmethod
    def resume(cls, out_dir: str | os.PathLike, model: nn.Module, **kwargs: Any) -> Trainer:
        """Continue the run in ``out_dir`` from its ``last.pt``, with the settings it was started with.

        The resumed run ends with the same history and weights as an uninterrupted one. ``epochs``
        may differ from the saved run's, to train a finished or interrupted run longer (or to stop it
        sooner, down to the epochs already done): with the step schedule (or none) the result equals a
        run started with the new ``epochs``; a cosine schedule is stretched to the new length from
        where it stands (the rate jumps), which a warning says. Every other setting must match.
        """
        path = Path(out_dir) / "last.pt"
        state = load_checkpoint(path)
        trainer = cls(model, out_dir=out_dir, overwrite=True, **kwargs)
        saved = {**_ADDED, **state["config"]}     # a run started before a setting existed had its default
        different = {k: (saved.get(k), v) for k, v in trainer.config.items() if k != "epochs" and saved.get(k) != v}
        if different:
            raise CheckpointError(f"{path} was made with other settings (saved, given): {different}; only epochs "
                                  "may change when a run is resumed")
        done = int(state["epoch"]) + 1
        if trainer.config["epochs"] < done:
            raise CheckpointError(f"epochs={trainer.config['epochs']} but {path} already holds {done} epochs; "
                                  f"resume with epochs of at least {done}, or train afresh")
        mismatch = state_mismatch(model, state["model"])
        if mismatch:
            raise CheckpointError(f"{path} holds the weights of another model ({mismatch}); train afresh (without "
                                  "--resume, or in an empty folder)")
        model.load_state_dict(state["model"])
        trainer.optimizer.load_state_dict(state["optimizer"])
        if trainer.scheduler is not None and state["scheduler"] is not None:
            trainer.scheduler.load_state_dict(state["scheduler"])
            if trainer.config["scheduler"] == "cosine" and saved.get("epochs") != trainer.config["epochs"]:
                trainer.scheduler.T_max = trainer.config["epochs"]
                warnings.warn(f"{path}: the cosine schedule of {saved.get('epochs')} epochs now spans "
                              f"{trainer.config['epochs']}, continued from epoch {done} (the rate jumps; a run "
                              f"started with epochs={trainer.config['epochs']} would differ)", stacklevel=2)
        trainer.history = list(state["history"])
        trainer.start_epoch = done
        trainer.best, trainer.wait = state["best"], int(state["wait"])
        return trainer
