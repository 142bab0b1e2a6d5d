"""What the checks before a run cost, beside the reading they guard, in one process.

    python benchmarks/bench_checks.py                 # the case study's run file, --quick
    python benchmarks/bench_checks.py --repeats 9

Times (median of ``--repeats``) on the embedded (synthetic) case study:
- ``check_values``: every value of every section against the API's annotations and ranges;
- ``checksums``: the SHA-256 of every input file (``config.json``, ``--resume``);
- ``check_inputs``: reading and checking every input (the reference: what ``prospect check`` does);
- the Trainer's NaN check of held-out-stage windows (2,000 x 10 x 65 x 65 float32, chunked) against one
  whole-array ``np.isfinite(x).all()`` on the same windows (the reference for that line).
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from pathlib import Path

import numpy as np

from prospect.pipeline import check_inputs, load_config
from prospect.pipeline.runfolder import checksums
from prospect.pipeline.values import check_values
from prospect.training._checks import _check_finite

RUN_FILE = Path(__file__).resolve().parents[1] / "workflows" / "qinhang.toml"


def _median(function, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


class _Windows:
    def __init__(self, x: np.ndarray) -> None:
        self.x, self.band = x, [f"b{i}" for i in range(x.shape[1])]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    config = load_config(RUN_FILE, mode="quick")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reading = _median(lambda: check_inputs(config), args.repeats)
    values = _median(lambda: check_values(config), args.repeats)
    digests = _median(lambda: checksums(config), args.repeats)
    size = sum(Path(p).stat().st_size for p in checksums(config)) / 2**20
    print(f"case study (--quick), median of {args.repeats}; reference: check_inputs {reading:.3f} s")
    print(f"  check_values  {1000 * values:8.1f} ms  {values / reading:6.3f} x check_inputs")
    print(f"  checksums     {1000 * digests:8.1f} ms  {digests / reading:6.3f} x check_inputs "
          f"({size:.1f} MiB of inputs)")
    x = np.random.default_rng(0).normal(size=(2000, 10, 65, 65)).astype(np.float32)
    whole = _median(lambda: bool(np.isfinite(x).all()), args.repeats)
    chunked = _median(lambda: _check_finite(_Windows(x), "train"), args.repeats)
    print(f"NaN check of {x.nbytes / 2**20:.0f} MiB of windows: chunked {1000 * chunked:.1f} ms, whole-array "
          f"np.isfinite {1000 * whole:.1f} ms ({chunked / whole:.2f} x)")


if __name__ == "__main__":
    main()
