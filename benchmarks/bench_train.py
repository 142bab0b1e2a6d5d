"""Training speed of MFAF-ResNet18 against five plain torchvision ResNet18s, in one run.

    python benchmarks/bench_train.py                   # CPU (and CUDA, bf16 + channels_last, when present)
    python benchmarks/bench_train.py --steps 5 --batch 32

Reports tiles/s of full training steps (forward, MFAF loss, backward, SGD) on 10-band 128 x 128 tiles,
the ratio to five ResNet18s stepped on the same batch (the MFAF paper's branches are five backbones;
goal <= 1.3x), and the time the paper's protocol would take (220 epochs of 524 training tiles).
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn

import prospect as pp


class FiveResNets(nn.Module):
    """The reference: five independent ResNet18s on the same 10-band input, logits averaged."""

    def __init__(self) -> None:
        super().__init__()
        self.nets = nn.ModuleList(pp.models.build("resnet18", 10) for _ in range(5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([net(x) for net in self.nets]).mean(0)


def tiles_per_second(model: nn.Module, loss: nn.Module, device: torch.device, batch: int, steps: int,
                     bf16: bool, channels_last: bool) -> float:
    model.to(device).train()
    x = torch.randn(batch, 10, 128, 128, device=device)
    y = torch.randint(0, 2, (batch,), device=device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.02, momentum=0.2, weight_decay=1e-4)

    def step() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            value = loss(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        value.backward()
        optimizer.step()

    step()  # warm-up (allocator, cuDNN autotuning)
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps * batch / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args()
    torch.manual_seed(0)
    settings = [("cpu", False, False)]
    if torch.cuda.is_available():
        settings += [("cuda", False, False), ("cuda", True, False), ("cuda", True, True)]
    print(f"torch {torch.__version__}, CPU threads {torch.get_num_threads()}, "
          f"CUDA: {torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'none'}")
    for device_name, bf16, channels_last in settings:
        device = torch.device(device_name)
        mfaf = pp.models.build("mfaf", 10, backbone="resnet18")
        ours = tiles_per_second(mfaf, mfaf.default_loss(), device, args.batch, args.steps, bf16, channels_last)
        reference = tiles_per_second(FiveResNets(), nn.CrossEntropyLoss(), device, args.batch, args.steps, bf16,
                                     channels_last)
        paper_run = 220 * 524 / ours
        label = f"{device_name}{' bf16' if bf16 else ' fp32'}{' channels_last' if channels_last else ''}"
        print(f"{label:28s} MFAF-ResNet18 {ours:8.1f} tiles/s | 5 x ResNet18 {reference:8.1f} tiles/s | "
              f"step-time ratio {reference / ours:.2f} (goal <= 1.3) | paper's 220 epochs ~ {paper_run / 60:.1f} min")


if __name__ == "__main__":
    main()
