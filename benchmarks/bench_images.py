"""Image classifiers against the classical colour/texture baseline: whole images shrunk to 64 px against crops at the
images' own scale, with the hybrid and the ensemble of each, on a hard generated set and the sample set.

    python benchmarks/bench_images.py                      # both sets, seeds 0 and 1 (~1 h on 2 CPU cores)
    python benchmarks/bench_images.py --seeds 0 --sets hard --modes '' --pretrain 10

For each set (split 0.6/0.2/0.2, stratified, seeded) and seed, in one process, on the same split:
- ``colour + texture``: the classical baseline (``ImageFeatures`` then logistic regression): the reference;
- per mode, the default network (ResNet18 from scratch, ``Trainer.preset("images")``) with
  ``resize``: every image shrunk to 64 px (the default before), or ``crops``: random crops at the image's own
  scale, each test image the mean of its crops (the default now; size, crop count and epochs from
  ``pp.imagery.choose_crops``);
- ``hybrid``: one logistic-regression head on the network's pooled features and the baseline's features;
- ``ensemble``: the mean of the network's and the baseline's probabilities;
- with ``--pretrain N``: the crops rows after N epochs of contrastive pretraining on every image of the set
  (pixels only).
Test accuracy per seed, their mean, and seconds per epoch (networks) or in all (baseline). The hard set is
``prospect.datasets.make_hard_images`` (texture tells the classes; grey and RGB, sizes and brightness vary alike in
every class); the sample set is ``data_samples/ore_images`` (synthetic).
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import sklearn
import torch

import prospect as pp

SAMPLES = Path(__file__).resolve().parents[1] / "data_samples" / "ore_images"


def _accuracy(probabilities: np.ndarray, labels: list[int]) -> float:
    return float((np.asarray(probabilities).argmax(1) == np.asarray(labels)).mean())


def _run(root: Path, seed: int, mode: str, pretrain: int) -> dict[str, tuple[float, float]]:
    """Accuracy and seconds (per epoch for the network) of each row, on one split."""
    settings = dict(pp.training.PRESETS["images"])
    if mode == "crops":
        choice = pp.imagery.choose_crops(root)
        split = pp.imagery.ImageFolderSplit(root, size=choice.size, crops=choice.crops, repeats=choice.repeats,
                                            seed=seed)
        settings["epochs"] = choice.epochs
    else:
        split = pp.imagery.ImageFolderSplit(root, size=64, seed=seed)
    rows = {}
    started = time.perf_counter()
    features = pp.imagery.ImageFeatures()
    baseline = pp.imagery.classical_baseline("logistic_regression", seed=seed)
    baseline.fit(features(split.train.paths), split.train.labels)
    baseline_probabilities = baseline.predict_proba(features(split.test.paths))
    rows["colour + texture (logistic regression)"] = (_accuracy(baseline_probabilities, split.test.labels),
                                                       time.perf_counter() - started)
    model = pp.imagery.build_classifier("resnet18", len(split.classes), seed=seed)
    label = f"resnet18, {mode}"
    if pretrain:
        started = time.perf_counter()
        history = pp.imagery.pretrain_images(model, split.paths, size=split.size, mean=split.mean, std=split.std,
                                             crops=mode == "crops", epochs=pretrain, seed=seed)
        rows[f"  (pretraining, {len(history)} epochs)"] = (float("nan"), (time.perf_counter() - started)
                                                           / len(history))
        label += " + pretraining"
    trainer = pp.training.Trainer(model, **settings, seed=seed, device="cpu", progress=False)
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        history = trainer.fit(split.train, split.val)
    per_epoch = (time.perf_counter() - started) / len(history)
    network = trainer.predict(split.test)
    rows[label] = (_accuracy(network, split.test.labels), per_epoch)
    started = time.perf_counter()
    hybrid = pp.imagery.HybridClassifier(model, features=features, seed=seed).fit(split.evaluated(split.train))
    rows[f"{label}: hybrid"] = (_accuracy(hybrid.predict_proba(split.test), split.test.labels),
                                time.perf_counter() - started)
    ensemble = pp.imagery.average_probabilities(network, baseline_probabilities)
    rows[f"{label}: ensemble"] = (_accuracy(ensemble, split.test.labels), 0.0)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--sets", default="hard,samples")
    parser.add_argument("--modes", default="resize,crops")
    parser.add_argument("--pretrain", type=int, default=0, metavar="EPOCHS",
                        help="also the crops rows after this many epochs of contrastive pretraining")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    torch.manual_seed(0)
    print(f"prospect {pp.__version__}, torch {torch.__version__}, scikit-learn {sklearn.__version__}, "
          f"{torch.get_num_threads()} CPU threads; test accuracy per seed {seeds}")
    with tempfile.TemporaryDirectory() as tmp:
        roots = {"hard": lambda: pp.datasets.make_hard_images(Path(tmp) / "hard", per_class=60, seed=0),
                 "samples": lambda: SAMPLES}
        for name in args.sets.split(","):
            root = roots[name]()
            print(f"\n{name} ({root}): {pp.imagery.choose_crops(root).reason}")
            results: dict[str, list[tuple[float, float]]] = {}
            runs = [(m, 0) for m in args.modes.split(",") if m] + ([("crops", args.pretrain)] if args.pretrain else [])
            for number, (mode, pretrain) in enumerate(runs):
                for seed in seeds:
                    for row, value in _run(root, seed, mode, pretrain).items():
                        if number == 0 or not row.startswith("colour"):   # the same split in every mode
                            results.setdefault(row, []).append(value)
            for row, values in results.items():
                accuracy = [a for a, _ in values]
                seconds = float(np.median([s for _, s in values]))
                unit = "s/epoch" if (row.startswith("resnet18") and ":" not in row) or row.startswith("  (") else "s"
                shown = "" if np.isnan(accuracy).all() else \
                    f"{' '.join(f'{a:.3f}' for a in accuracy)}  mean {np.mean(accuracy):.3f}"
                print(f"  {row:52s} {shown:26s} {seconds:7.2f} {unit}")


if __name__ == "__main__":
    main()
