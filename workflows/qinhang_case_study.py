"""The Qin-hang case study of the MFAF paper, on the embedded synthetic survey.

    python workflows/qinhang_case_study.py --quick --out out/qinhang
    # the same as: prospect run workflows/qinhang.toml --quick --out out/qinhang

Runs ``workflows/qinhang.toml`` (see that file for every setting, and ``prospect run --help`` for the
options: --quick/--full, --out, --overwrite, --resume, --seed, --epochs, --device):

1. screening of the 16 elements (AUC, S_AUC, Z_AUC; the paper's Table 2) -> ``screening.csv``, figures;
2. IDW of the selected elements, the geology and the distance to faults -> ``elements/*.tif``, ``stack.tif``;
3. tiles, a spatial split, SMOTE and noise on the training side only -> ``tiles.csv`` (section 4.1 (3)-(4));
4. MFAF-ResNet18, MFAF-ShuffleNetV2, the five baselines, the No-CA / No-SA ablations, the auxiliary-loss
   weights and the dilation sets (the paper's Tables 3-7), each over the seeds -> ``experiments.csv``,
   ``tables.csv``;
5. the prospectivity map of MFAF-ResNet18 and its branch disagreement -> ``prospectivity.tif`` (+ .qml),
   ``uncertainty.tif``, ``targets.gpkg``, ``evaluation.csv``, figures;
6. ``report.md`` beside the paper's numbers. The data is synthetic: compare shapes and orderings, not values.
"""

from __future__ import annotations

import sys
from pathlib import Path

from prospect.cli import main as prospect

CONFIG = Path(__file__).resolve().with_name("qinhang.toml")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    return prospect(["run", str(CONFIG), *argv])


if __name__ == "__main__":
    sys.exit(main())
