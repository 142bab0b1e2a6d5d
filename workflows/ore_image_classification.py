"""Rock/ore image classification on a folder of class folders, with the shared Trainer.

    python workflows/ore_image_classification.py --out out/ore_images
    python workflows/ore_image_classification.py --config my_images.toml --out out/mine
    python workflows/ore_image_classification.py --root my_micrographs --models resnet50,mobilenet_v2 --out out/m

The study is described by ``workflows/ore_images.toml`` (or ``--config``): ``[data]`` feeds
``ImageFolderSplit``, each ``[[models]]`` row ``build_classifier`` and ``[trainer]`` the ``Trainer``; the
command-line options override a few of its keys. For every model: train on the training side (validation
picks the best epoch), then on the test side a per-class table like the Swin paper's Table 3
(``<model>/report.csv``), a confusion matrix (``<model>/confusion.png``) and Grad-CAM maps of a few test
images (``<model>/cam.png``); ``summary.csv`` compares the models and ``report.md`` / ``report.html`` say it all
in one place. Each model keeps its best weights in ``<model>/model.safetensors`` (``[study] keep_checkpoints``
also keeps ``last.pt`` and ``best.pt``). The default data is synthetic.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import pandas as pd
import torch

import prospect as pp
from prospect._workflow import prepare_output, stage_logging
from prospect.cli import INTERRUPTED
from prospect.errors import ProspectError
from prospect.pipeline.config import IMAGE_SECTIONS, load_config
from prospect.pipeline.experiments import trainer_settings
from prospect.pipeline.report import write_html
from prospect.pipeline.values import check_values

ROOT = Path(__file__).resolve().parents[1]
CONFIG = Path(__file__).resolve().with_name("ore_images.toml")
log = logging.getLogger("prospect.workflow")


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=CONFIG, help="the study file (TOML)")
    parser.add_argument("--root", type=Path, default=None, help="overrides [data] root")
    parser.add_argument("--models", default=None,
                        help="comma-separated zoo names replacing the [[models]] rows (pp.imagery.list_classifiers)")
    parser.add_argument("--size", type=int, default=None, help="overrides [data] size")
    parser.add_argument("--epochs", type=int, default=None, help="overrides [trainer] epochs")
    parser.add_argument("--out", type=Path, default=Path("out/ore_images"))
    parser.add_argument("--overwrite", action="store_true")
    parser.add_argument("--seed", type=int, default=None, help="overrides [study] seed")
    parser.add_argument("--device", default=None, help="overrides [trainer] device")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    try:
        config = load_config(args.config, schema=IMAGE_SECTIONS)
        for key, value in (("data.root", args.root and str(args.root.resolve())), ("data.size", args.size),
                           ("trainer.epochs", args.epochs), ("study.seed", args.seed), ("trainer.device", args.device)):
            if value is not None:
                config.override(key, value, f"--{key.split('.')[1]}")
        if args.models is not None:
            config.sections["models"] = [{"name": n.strip()} for n in args.models.split(",") if n.strip()]
        unknown = [row["name"] for row in config["models"] if row["name"] not in pp.imagery.list_classifiers()]
        if unknown or not config["models"]:
            raise pp.errors.ConfigError(f"models {unknown or '(none)'} are unknown; valid: "
                                        f"{sorted(pp.imagery.list_classifiers())}")
        sizes = [row["size"] for row in config["models"] if "size" in row]
        wrong = [v for v in sizes if v != "native" and (isinstance(v, bool) or not isinstance(v, int) or v < 8)]
        if wrong:
            raise pp.errors.ConfigError(f"[[models]] size={wrong[0]!r}; valid: a whole number of pixels ≥ 8, or "
                                        "'native' (the size the architecture was made for: 299 for inception_v3)")
        _check_study(config["study"])
        chosen = _choose_crops(config)
        check_values(config)     # every value, the Trainer's settings and the device, before any work
        settings = trainer_settings(config, int(config["study"].get("seed", 0)))
        with warnings.catch_warnings(record=True) as caught:   # the images, read before a file is written
            warnings.simplefilter("always")
            data = dict(config["data"])
            root = data.pop("root")
            first = pp.imagery.ImageFolderSplit(root, seed=settings["seed"], **data)
    except ProspectError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    problem = prepare_output(args.out, args.overwrite)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    with stage_logging(args.out / "run.log"):
        for warning in caught:       # what reading the images said (skipped files, classes missing from a side)
            if not issubclass(warning.category, (DeprecationWarning, FutureWarning)):
                log.warning("data: %s", warning.message)
        if chosen:
            log.info("data: %s", chosen)
        try:
            return _run(config, settings, args.out, args.overwrite, first)
        except ProspectError as exc:      # e.g. a loss that stopped being a number: one line, no traceback
            log.error("error: %s", exc)
            return 2
        except KeyboardInterrupt:
            log.error("the run stopped (interrupted)")
            return INTERRUPTED


def _check_study(study: dict) -> None:
    """The ``[study]`` keys the workflow reads itself, refused before any work."""
    def whole(value: Any) -> bool:
        return not isinstance(value, bool) and isinstance(value, int) and value >= 0

    rules = {"baseline": (lambda v: v is False or v in pp.imagery.BASELINE_MODELS,
                          f"one of {list(pp.imagery.BASELINE_MODELS)} or false"),
             "hybrid": (lambda v: isinstance(v, bool), "true or false"),
             "keep_checkpoints": (lambda v: isinstance(v, bool), "true or false"),
             "synthetic": (lambda v: isinstance(v, bool), "true or false"),
             "pretrain": (whole, "a whole number of epochs ≥ 0 (0: none)"),
             "cam_images": (whole, "a whole number ≥ 0"), "seed": (whole, "a whole number ≥ 0")}
    for key, (valid, what) in rules.items():
        if key in study and not valid(study[key]):
            raise pp.errors.ConfigError(f"[study] {key}={study[key]!r}; valid: {what}")


def _choose_crops(config: Any) -> str:
    """``[data] crops = "auto"``: crop size, crops and epochs from the images' sizes (``pp.imagery.choose_crops``)
    where the study does not set them; returns the reason for the log ("" when nothing was chosen)."""
    data = config["data"]
    if data.get("crops") != "auto":
        return ""
    choice = pp.imagery.choose_crops(data["root"])
    config.override("data.crops", choice.crops, "choose_crops")
    if data.get("size", "auto") == "auto":
        config.override("data.size", choice.size, "choose_crops")
    if data.get("repeats", "auto") == "auto":
        config.override("data.repeats", choice.repeats, "choose_crops")
    if "epochs" not in config["trainer"]:
        config.override("trainer.epochs", choice.epochs, "choose_crops")
    kept = [f"{key} {config[section][key]}" for section, key in (("data", "size"), ("data", "repeats"),
                                                                  ("trainer", "epochs"))
            if config.origins.get(f"{section}.{key}") != "choose_crops"]
    return choice.reason + (f"; the study sets {' and '.join(kept)} (kept)" if kept else "")


def _score(name: str, folder: Path, split: Any, probs: Any, started: float, reports: dict,
           history: Any = None) -> dict:
    """``report.csv`` and ``confusion.png`` of one model's test probabilities; its row of ``summary.csv``."""
    report = pp.imagery.classification_report(split.test.labels, probs, split.classes)
    report.to_csv(folder / "report.csv", float_format="%.4f")
    figure = pp.imagery.plot_confusion(split.test.labels, probs, split.classes)
    figure.savefig(folder / "confusion.png", dpi=120)
    plt.close(figure)
    reports[name] = report
    row = {"model": name, "accuracy": float(report.loc["accuracy", "f1"]),
           "precision_macro": report.loc["macro avg", "precision"], "recall_macro": report.loc["macro avg", "recall"],
           "f1_macro": report.loc["macro avg", "f1"], "seconds": time.perf_counter() - started,
           "epochs": len(history) if history is not None else None,
           "seconds_per_epoch": float(history["seconds"].mean()) if history is not None else None}
    log.info("%s: test accuracy %.3f, macro F1 %.3f (%.1f s)", name, row["accuracy"], row["f1_macro"], row["seconds"])
    return row


def _run(config, settings: dict, out: Path, overwrite: bool, first: Any) -> int:
    seed = settings["seed"]
    data = dict(config["data"])
    root = data.pop("root")
    splits: dict[int, Any] = {data.get("size", 224): first}    # the split main() read (and checked) already

    def split_at(size: int) -> Any:
        """The split at one input size: the same images on the same sides, whatever the size (same seed)."""
        if size not in splits:
            splits[size] = pp.imagery.ImageFolderSplit(root, seed=seed, **{**data, "size": size})
        return splits[size]

    default_size = data.get("size", 224)
    split = split_at(default_size)
    log.info("data: %s, %d classes %s; train %d, val %d, test %d images %s", config["data"]["root"],
             len(split.classes), split.classes, len(split.train.paths), len(split.val), len(split.test),
             f"at {split.size} px" if split.crops is None else f"as {split.size}-px crops, {split.crops} a test image")
    for change in config.changes:
        log.info("  %s", change)
    rows, reports = [], {}
    started_study = time.perf_counter()
    study = config["study"]
    method = study.get("baseline", "logistic_regression")
    baselines, combined, baseline_probs, features = [], [], None, pp.imagery.ImageFeatures()
    if method:    # the classical baseline on the same split: what the networks must beat
        started = time.perf_counter()
        name = f"colour_texture_{method}"
        baseline = pp.imagery.classical_baseline(method, seed=seed).fit(features(split.train.paths),
                                                                        split.train.labels)
        baseline_probs = baseline.predict_proba(features(split.test.paths))
        (out / name).mkdir(exist_ok=True)
        baseline_row = _score(name, out / name, split, baseline_probs, started, reports)
        baselines = [name]
    for row in config["models"]:
        started = time.perf_counter()
        options = {k: v for k, v in row.items() if k != "size"}
        size = row.get("size", default_size)     # "native": the size the architecture was made for (299, 224)
        split = split_at(pp.imagery.INPUT_SIZE[options["name"]] if size == "native" else int(size))
        name = options["name"] + (f"_{options['attention']}" if options.get("attention") else "")
        folder = out / name
        log.info("%s: %d px input, test images %s", name, split.size,
                 hashlib.sha256("\n".join(map(str, split.test.paths)).encode()).hexdigest()[:12])
        model = pp.imagery.build_classifier(num_classes=len(split.classes), seed=seed, **options)
        trainer = pp.training.Trainer(model, out_dir=folder, overwrite=overwrite, **settings)
        if study.get("pretrain", 0):    # every image of the study, pixels only: no label is read
            pretrained = pp.imagery.pretrain_images(model, split.paths, split.size, split.mean, split.std,
                                                    crops=split.crops is not None, scale=split.scale,
                                                    epochs=int(study["pretrain"]), seed=seed, device=trainer.device,
                                                    progress=settings.get("progress", True))
            log.info("%s: contrastive pretraining on all %d images (no labels), %d epochs, loss %.3f -> %.3f, "
                     "%.1f s/epoch", name, len(split.paths), len(pretrained), pretrained["loss"].iloc[0],
                     pretrained["loss"].iloc[-1], pretrained["seconds"].mean())
        history = trainer.fit(split.train, split.val)          # ends with the best validation epoch's weights
        probs = trainer.predict(split.test)
        # one test image of each class (the CAM of a 64-px image at ResNet's last stage is coarse: use 224 px)
        shown = [split.test.labels.index(c) for c in range(len(split.classes)) if c in split.test.labels]
        shown = shown[:int(study.get("cam_images", 5))]
        views = [split.test[i][0] for i in shown]          # with crops: (crops, C, H, W); the middle crop is shown
        images = torch.stack([v[len(v) // 2] if v.ndim == 4 else v for v in views]).to(trainer.device)
        cams = pp.imagery.grad_cam(model, images)
        predicted = probs[shown].argmax(1)
        titles = [f"{split.classes[split.test.labels[i]]} → {split.classes[p]}" for i, p in zip(shown, predicted,
                                                                                                 strict=True)]
        figure = pp.imagery.plot_cam(images.cpu(), cams, titles, mean=split.mean, std=split.std)
        figure.savefig(folder / "cam.png", dpi=120)
        plt.close(figure)
        if not study.get("keep_checkpoints", False):   # model.safetensors holds the best weights
            for checkpoint in ("last.pt", "best.pt"):
                (folder / checkpoint).unlink(missing_ok=True)
        rows.append(_score(name, folder, split, probs, started, reports, history))
        if baseline_probs is not None and study.get("hybrid", True):
            started = time.perf_counter()
            hybrid = pp.imagery.HybridClassifier(model, features=features, seed=seed)
            hybrid.fit(split.evaluated(split.train))
            (out / f"{name}_hybrid").mkdir(exist_ok=True)
            rows.append(_score(f"{name}_hybrid", out / f"{name}_hybrid", split, hybrid.predict_proba(split.test),
                               started, reports))
            (out / f"{name}_ensemble").mkdir(exist_ok=True)
            rows.append(_score(f"{name}_ensemble", out / f"{name}_ensemble", split,
                               pp.imagery.average_probabilities(probs, baseline_probs), time.perf_counter(), reports))
            combined += [f"{name}_hybrid", f"{name}_ensemble"]
    if baselines:
        rows.append(baseline_row)
        reports[baselines[0]] = reports.pop(baselines[0])     # the baseline's section after the networks'
    summary = pd.DataFrame(rows)
    summary.to_csv(out / "summary.csv", index=False, float_format="%.4f")
    counts = ", ".join(f"{c} {split.train.labels.count(i) + split.val.labels.count(i) + split.test.labels.count(i)}"
                       for i, c in enumerate(split.classes))
    scale = (f"at {split.size} px" if split.crops is None else f"as {split.size}-px crops at {split.scale:g}× "
             f"their own scale ({len(split.train) // len(split.train.paths)} per training image and epoch, "
             f"{split.crops} averaged per validation/test image)")
    setting = [f"Data: `{config['data']['root']}`, {len(split.classes)} classes ({counts} images); train "
               f"{len(split.train.paths)}, validation {len(split.val)} (picks the best epoch), test "
               f"{len(split.test)} (reported), {scale}.",
               f"Trainer: {', '.join(f'{k}={v}' for k, v in settings.items() if k not in ('progress',))}.",
               f"Made {time.strftime('%Y-%m-%d %H:%M')} by prospect {pp.__version__} (torch {torch.__version__}) "
               f"on {trainer.device}, {torch.get_num_threads()} CPU threads, in "
               f"{time.perf_counter() - started_study:.0f} s (each model's seconds in the table).",
               *[f"`{change}`" for change in config.changes]]
    text = pp.imagery.study_report(study.get("title", "Ore-image study"), setting, summary, reports,
                                   synthetic=bool(study.get("synthetic", False)), baselines=baselines,
                                   combined=combined)
    with pp.io.atomic_output(out / "report.md", overwrite=True) as tmp:
        tmp.write_text(text, encoding="utf-8")
    write_html(text, out, study.get("title", "Ore-image study"))
    log.info("done: outputs in %s; report.md and report.html", out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
