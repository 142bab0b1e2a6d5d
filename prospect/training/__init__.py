"""The shared training loop (tiles and images) and its metrics."""

from prospect.training._checks import check_device, check_options
from prospect.training.checkpoint import CheckpointError, load_checkpoint
from prospect.training.metrics import auc_interval, binary_auc, classification_metrics
from prospect.training.trainer import PRESETS, Trainer

__all__ = ["Trainer", "PRESETS", "CheckpointError", "load_checkpoint", "classification_metrics", "binary_auc",
           "auc_interval", "check_options", "check_device"]
