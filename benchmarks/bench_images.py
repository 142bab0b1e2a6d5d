"""Image classifiers from scratch against the classical baseline, on a hard generated set and the sample set.

    python benchmarks/bench_images.py                  # both sets, seeds 0 and 1
    python benchmarks/bench_images.py --seeds 0 --sets hard

For each set (64 px; split 0.6/0.2/0.2, stratified, seeded) and seed, in one process:
- ``before``: the call the documentation used to show: MobileNetV2 + SE, Adam 1e-3, 8 epochs, no schedule,
  batch 16, ImageNet normalisation, the six augmentations, the last epoch's weights, no BatchNorm recalibration;
- ``mobilenet_v2+se`` and ``resnet18``: the defaults now (``Trainer.preset("images")``: Adam 1e-3, cosine,
  30 epochs, batch 16, precise BatchNorm, best validation epoch; the split's own normalisation, flips and zoom);
- the classical baseline (colour + texture statistics, then logistic regression or a random forest) on the same
  split: the reference, and the time of its features, fit and prediction.
Test accuracy and seconds (per epoch for the networks). The hard set is ``prospect.datasets.make_hard_images``
(texture tells the classes; grey and RGB, sizes, brightness vary alike in every class); the sample set is
``data_samples/ore_images`` (synthetic).
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

import prospect as pp
from prospect.imagery.datasets import AUGMENTATIONS, IMAGENET_MEAN, IMAGENET_STD

SAMPLES = Path(__file__).resolve().parents[1] / "data_samples" / "ore_images"


def _network(root: Path, seed: int, name: str, before: bool) -> tuple[float, float, int]:
    if before:
        split = pp.imagery.ImageFolderSplit(root, size=64, seed=seed, normalize=(IMAGENET_MEAN, IMAGENET_STD),
                                            augment=AUGMENTATIONS)
        settings = dict(optimizer="adam", lr=1e-3, scheduler=None, epochs=8, batch_size=16, precise_bn=0,
                        restore_best=False, monitor="val_accuracy")
    else:
        split = pp.imagery.ImageFolderSplit(root, size=64, seed=seed)
        settings = dict(pp.training.PRESETS["images"])
    attention = {"attention": "se"} if name == "mobilenet_v2" else {}
    model = pp.imagery.build_classifier(name, len(split.classes), seed=seed, **attention)
    trainer = pp.training.Trainer(model, **settings, seed=seed, device="cpu", progress=False)
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        history = trainer.fit(split.train, split.val)
    seconds = time.perf_counter() - started
    return trainer.evaluate(split.test)["accuracy"], seconds / len(history), len(history)


def _baseline(root: Path, seed: int, method: str) -> tuple[float, float]:
    split = pp.imagery.ImageFolderSplit(root, size=64, seed=seed)
    started = time.perf_counter()
    features = pp.imagery.ImageFeatures()
    model = pp.imagery.classical_baseline(method, seed=seed).fit(features(split.train), split.train.labels)
    predicted = model.predict_proba(features(split.test)).argmax(1)
    return float((predicted == np.array(split.test.labels)).mean()), time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--sets", default="hard,samples")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads; test accuracy per seed {seeds}")
    with tempfile.TemporaryDirectory() as tmp:
        roots = {"hard": pp.datasets.make_hard_images(Path(tmp) / "hard", per_class=60, seed=0), "samples": SAMPLES}
        for label in args.sets.split(","):
            root = roots[label]
            print(f"\n{label} ({root.name}):")
            for name, network, before in (("before (MobileNetV2 + SE, 8 epochs)", "mobilenet_v2", True),
                                          ("mobilenet_v2 + se (defaults)", "mobilenet_v2", False),
                                          ("resnet18 (defaults)", "resnet18", False)):
                runs = [_network(root, seed, network, before) for seed in seeds]
                print(f"  {name:38s} accuracy {' '.join(f'{a:.3f}' for a, _, _ in runs)}   "
                      f"{np.median([s for _, s, _ in runs]):.2f} s/epoch x {runs[0][2]} epochs")
            for method in pp.imagery.BASELINE_MODELS:
                runs = [_baseline(root, seed, method) for seed in seeds]
                print(f"  {'colour + texture, ' + method:38s} accuracy {' '.join(f'{a:.3f}' for a, _ in runs)}   "
                      f"{np.median([s for _, s in runs]):.1f} s in all")


if __name__ == "__main__":
    main()
