"""Speed of the prospectivity map: a 10-band 1560 x 1560 stack, 128-px windows at stride 32.

    python benchmarks/bench_map.py                  # MFAF-ResNet18 and plain ResNet18, CPU (and CUDA if present)
    python benchmarks/bench_map.py --model resnet18

Reports windows/s and total seconds (goal: < 60 s on a CPU for the paper's stack), with a plain
ResNet18 as the reference in the same run.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

import prospect as pp


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", help="model names (default: mfaf and resnet18)")
    parser.add_argument("--size", type=int, default=1560)
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args()
    grid = pp.Grid.from_bounds((400000, 2400000, 439000, 2439000), shape=(args.size, args.size), crs="EPSG:32649")
    stack = grid.wrap(np.random.default_rng(0).normal(size=(10, *grid.shape)).astype(np.float32))
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    print(f"torch {torch.__version__}, CPU threads {torch.get_num_threads()}; stack 10 x {args.size} x {args.size}")
    for name in args.model or ["mfaf", "resnet18"]:
        torch.manual_seed(0)
        model = pp.models.build(name, 10)
        for device in devices:
            start = time.perf_counter()
            prob = pp.mapping.predict_map(model, stack, size=128, stride=32, batch_size=args.batch, device=device)
            seconds = time.perf_counter() - start
            windows = prob.attrs["windows"]
            print(f"{name:10s} {device:5s} {windows} windows in {seconds:6.1f} s = {windows / seconds:7.1f} windows/s "
                  f"(goal < 60 s on CPU)")


if __name__ == "__main__":
    main()
