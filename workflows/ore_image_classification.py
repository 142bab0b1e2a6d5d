"""Rock/ore image classification on a folder of class folders, with the shared Trainer.

    python workflows/ore_image_classification.py --out out/ore_images
    python workflows/ore_image_classification.py --root my_micrographs --models resnet50,mobilenet_v2,swin_t \
        --pretrained torchvision --size 224 --epochs 30 --out out/mine

For every model: train on the training side (validation picks the best epoch), then on the test side a
per-class table like the Swin paper's Table 3 (``<model>/report.csv``), a confusion matrix
(``<model>/confusion.png``) and Grad-CAM maps of a few test images (``<model>/cam.png``); ``summary.csv``
compares the models. The default data (data_samples/ore_images) is synthetic.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import torch

import prospect as pp
from prospect._workflow import prepare_output, stage_logging

ROOT = Path(__file__).resolve().parents[1]
log = logging.getLogger("prospect.workflow")


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=ROOT / "data_samples" / "ore_images",
                        help="folder with one sub-folder of images per class")
    parser.add_argument("--models", default="resnet18", help="comma-separated zoo names (pp.imagery.list_classifiers)")
    parser.add_argument("--attention", default=None, choices=["se", "eca"], help="SE (mobilenet_v2) or ECA (convnext)")
    parser.add_argument("--pretrained", default=None, help="'torchvision' (torch's cache) or a weights file")
    parser.add_argument("--freeze-epochs", type=int, default=0, help="epochs with the backbone frozen")
    parser.add_argument("--size", type=int, default=64, help="image size in pixels (default 64; the papers use 224)")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (1e-4 with pretrained weights)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--group-by", default=None,
                        help=r"regex on file stems keeping groups together, e.g. '^(.*)_r\d+_c\d+$'")
    parser.add_argument("--out", type=Path, default=Path("out/ore_images"))
    parser.add_argument("--overwrite", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    names = [n.strip() for n in args.models.split(",") if n.strip()]
    unknown = [n for n in names if n not in pp.imagery.list_classifiers()]
    if unknown:
        print(f"error: --models {unknown} are unknown; valid: {sorted(pp.imagery.list_classifiers())}",
              file=sys.stderr)
        return 2
    problem = prepare_output(args.out, args.overwrite)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    with stage_logging(args.out / "run.log"):
        return _run(args, names)


def _run(args: argparse.Namespace, names: list[str]) -> int:
    normalize = "imagenet" if args.pretrained else "dataset"
    split = pp.imagery.ImageFolderSplit(args.root, size=args.size, seed=args.seed, group_by=args.group_by,
                                        normalize=normalize)
    log.info("data: %s, %d classes %s; train %d, val %d, test %d images at %d px (normalised with %s statistics)",
             args.root, len(split.classes), split.classes, len(split.train), len(split.val), len(split.test),
             args.size, normalize)
    rows = []
    for name in names:
        started = time.perf_counter()
        folder = args.out / name
        torch.manual_seed(args.seed)
        model = pp.imagery.build_classifier(name, len(split.classes), pretrained=args.pretrained,
                                            attention=args.attention)
        trainer = pp.training.Trainer(model, optimizer="adam", lr=args.lr, scheduler=None, epochs=args.epochs,
                                      batch_size=args.batch_size, freeze_backbone_epochs=args.freeze_epochs,
                                      monitor="val_accuracy", out_dir=folder, overwrite=args.overwrite,
                                      seed=args.seed, device=args.device)
        trainer.fit(split.train, split.val)
        model.load_state_dict(pp.training.load_checkpoint(folder / "best.pt")["model"])
        probs = trainer.predict(split.test)
        report = pp.imagery.classification_report(split.test.labels, probs, split.classes)
        report.to_csv(folder / "report.csv", float_format="%.4f")
        figure = pp.imagery.plot_confusion(split.test.labels, probs, split.classes)
        figure.savefig(folder / "confusion.png", dpi=120)
        plt.close(figure)
        # one test image of each class (the CAM of a 64-px image at ResNet's last stage is coarse: use 224 px)
        shown = [split.test.labels.index(c) for c in range(len(split.classes)) if c in split.test.labels]
        images = torch.stack([split.test[i][0] for i in shown]).to(trainer.device)
        cams = pp.imagery.grad_cam(model, images)
        predicted = probs[shown].argmax(1)
        titles = [f"{split.classes[split.test.labels[i]]} → {split.classes[p]}" for i, p in zip(shown, predicted,
                                                                                                 strict=True)]
        figure = pp.imagery.plot_cam(images.cpu(), cams, titles, mean=split.mean, std=split.std)
        figure.savefig(folder / "cam.png", dpi=120)
        plt.close(figure)
        accuracy = float(report.loc["accuracy", "f1"])
        rows.append({"model": name, "accuracy": accuracy, "precision_macro": report.loc["macro avg", "precision"],
                     "recall_macro": report.loc["macro avg", "recall"], "f1_macro": report.loc["macro avg", "f1"],
                     "seconds": time.perf_counter() - started})
        log.info("%s: test accuracy %.3f, macro F1 %.3f (%.1f s)", name, accuracy, rows[-1]["f1_macro"],
                 rows[-1]["seconds"])
    pd.DataFrame(rows).to_csv(args.out / "summary.csv", index=False, float_format="%.4f")
    log.info("done: outputs in %s", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
