"""Trainer checkpoints: plain types only, read with ``weights_only=True``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from prospect.errors import MissingFileError, ProspectError

__all__ = ["CheckpointError", "load_checkpoint"]


class CheckpointError(ProspectError, ValueError):
    """A checkpoint is corrupt, truncated, or from another run."""


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a Trainer checkpoint with ``weights_only=True`` (no arbitrary objects are unpickled)."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"checkpoint {str(path)!r} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"checkpoint {str(path)!r} is corrupt or truncated ({type(exc).__name__}); "
                              "nothing was changed") from exc
    if not isinstance(state, dict) or state.get("format") != "prospect.Trainer/1":
        raise CheckpointError(f"{str(path)!r} is not a prospect Trainer checkpoint")
    return state


def _plain(value: Any) -> Any:
    """Plain Python types only (checkpoints must load with weights_only=True)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (np.floating, np.integer, np.bool_)):
        return value.item()
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def state_mismatch(model: torch.nn.Module, state: dict[str, Any], shown: int = 3) -> str:
    """How a saved state dict differs from ``model``'s, in a line ("" when it fits): counts and a few names."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in own
              if k in state and hasattr(state[k], "shape") and tuple(state[k].shape) != tuple(own[k].shape)]
    parts = [f"{len(items)} {what} (e.g. {', '.join(items[:shown])})"
             for items, what in ((missing, "of the model's tensors missing"), (unexpected, "tensors it does not have"),
                                 (shapes, "of another shape, saved vs model")) if items]
    return "; ".join(parts)


def export_run(out_dir: Path, model: torch.nn.Module, config: dict[str, Any], best: Any) -> None:
    """``model.safetensors`` (the weights of ``best.pt`` when there is one, else the model's) and ``config.json``."""
    import json

    from safetensors.torch import save_file

    from prospect.files import atomic_output

    checkpoint = out_dir / "best.pt"
    weights = load_checkpoint(checkpoint)["model"] if checkpoint.exists() else model.state_dict()
    with atomic_output(out_dir / "model.safetensors", overwrite=True) as tmp:
        save_file({k: v.detach().cpu().contiguous() for k, v in weights.items()}, str(tmp))
    described = {"model": _plain(getattr(model, "config", {})), "model_class": type(model).__name__,
                 "trainer": config, "best": best, "monitor": config["monitor"]}
    with atomic_output(out_dir / "config.json", overwrite=True) as tmp:
        tmp.write_text(json.dumps(described, indent=2))
