"""The Qin-hang case study of the MFAF paper, on the embedded synthetic survey.

    python workflows/qinhang_case_study.py --quick --out out/qinhang

Stages that exist in this version of prospect:

1. screening of the 16 elements (AUC, S_AUC, Z_AUC; the paper's Table 2) -> ``screening.csv``, figures;
2. IDW of the selected elements, the geology and the distance to faults -> one GeoTIFF per element
   (``elements/``) and the stacked raster ``stack.tif`` (the paper's 1560 x 1560, 10 bands);
3. tiles (the paper's 3.2 km windows: 128 px at 25 m, 32 px at 100 m in --quick), a spatial split, then
   SMOTE and Gaussian noise on the training side only -> ``tiles_train.npz``, ``tiles_test.npz``,
   ``tiles.csv`` (the counts of the paper's section 4.1 (3)-(4));
4. MFAF-ResNet18 trained with the paper's optimiser settings (SGD, momentum 0.2, weight decay 1e-4, lr 0.02
   decayed 40 % every 30 epochs, batch 32, 220 epochs; --quick: 20 epochs, decay every 3) and evaluated on the
   spatially separated test tiles -> ``training/`` (history, checkpoints, model.safetensors), ``metrics.csv``;
5. the prospectivity map and the branches' disagreement over the whole stack -> ``prospectivity.tif`` (+ .qml
   for QGIS), ``uncertainty.tif``, target areas ``targets.gpkg``, ``evaluation.csv`` (map AUC, success rate on
   the known deposits, prediction rate on the planted undiscovered ones, coverage, P-A) and figures.

Baselines, ablations, seeds and the report (the paper's Tables 3-7) follow with the case-study issue. The data is
synthetic (see data_samples/qinhang/README.md): results describe it, not the real Jinshan area.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

import prospect as pp
from prospect._workflow import prepare_output, stage_logging

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data_samples" / "qinhang"
log = logging.getLogger("prospect.workflow")


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="a coarser grid (390 x 390, 100 m) for a fast run")
    mode.add_argument("--full", action="store_true", help="the paper's grid, 1560 x 1560 at 25 m (default)")
    parser.add_argument("--out", type=Path, default=Path("out/qinhang"), help="output folder (default out/qinhang)")
    parser.add_argument("--overwrite", action="store_true", help="write into a non-empty output folder")
    parser.add_argument("--seed", type=int, default=0, help="seed of every random choice (default 0)")
    parser.add_argument("--device", default="auto", help="'auto' (CUDA when present), 'cpu' or 'cuda'")
    parser.add_argument("--epochs", type=int, default=None, help="training epochs (default: 220, or 20 with --quick)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    problem = prepare_output(args.out, args.overwrite)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    with stage_logging(args.out / "run.log"):
        return _run(args, args.out)


def _run(args: argparse.Namespace, out: Path) -> int:
    size = 390 if args.quick else 1560
    log.info("Qin-hang case study on SYNTHETIC data (data_samples/qinhang), grid %d x %d, seed %d",
             size, size, args.seed)

    started = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        samples = pp.io.read_samples(DATA / "stream_sediments.csv", crs="EPSG:32649", coord_scale=1000)
    for warning in caught:
        log.info("note: %s", warning.message)
    deposits = pp.io.read_vector(DATA / "deposits.gpkg", crs="EPSG:32649")
    table = pp.screening.screen_elements(samples, deposits, seed=args.seed)
    table.drop(columns="note").to_csv(out / "screening.csv", float_format="%.4f")
    selected = table.index[table["selected"]].tolist()
    figures = {"screening_z.png": pp.screening.plot_z(table), "screening_roc.png": pp.screening.plot_roc(table)}
    for name, figure in figures.items():
        figure.savefig(out / name, dpi=120)
        plt.close(figure)
    log.info("1 screening: %d ore-related and %d background samples, radius %.0f m; selected %s (%.1f s)",
             table.attrs["n_pos"], table.attrs["n_neg"], table.attrs["radius"], ", ".join(selected),
             time.perf_counter() - started)

    started = time.perf_counter()
    grid = pp.Grid.from_bounds(pp.datasets.QINHANG_BOUNDS, shape=(size, size), crs="EPSG:32649")
    elements = pp.interpolate.idw(samples, selected, grid, power=2.0)
    pp.interpolate.to_geotiffs(elements, out / "elements", overwrite=args.overwrite)
    geology = pp.layers.rasterize_categorical(pp.io.read_vector(DATA / "geology.gpkg"), "unit", grid)
    faults = pp.layers.distance_to(pp.io.read_vector(DATA / "faults.gpkg"), grid, name="fault_distance")
    stack = pp.layers.stack(elements, geology, faults)
    pp.io.write_geotiff(stack, out / "stack.tif", overwrite=args.overwrite)
    log.info("2 evidence layers: %d bands (%s) on %s -> stack.tif (%.1f s)", stack.sizes["band"],
             ", ".join(map(str, stack["band"].values)), grid, time.perf_counter() - started)
    started = time.perf_counter()
    tile_size = 32 if args.quick else 128
    tiles = pp.tiles.make_tiles(stack, deposits, size=tile_size, stride=tile_size)
    train, test = pp.tiles.spatial_split(tiles, test_size=0.2, seed=args.seed)
    stats = pp.tiles.fit_normalization(train)
    train, test = pp.tiles.normalize(train, stats), pp.tiles.normalize(test, stats)
    balanced = pp.tiles.smote(train, k_neighbors=min(5, train.counts()["ore"] - 1), seed=args.seed)
    augmented = pp.tiles.add_noise(balanced, variance=0.01, only_class=1, seed=args.seed)
    augmented.save(out / "tiles_train.npz", overwrite=args.overwrite)
    test.save(out / "tiles_test.npz", overwrite=args.overwrite)
    counts = pd.DataFrame([{"stage": "tiles", "side": "all", **tiles.counts()},
                           {"stage": "split", "side": "train", **train.counts()},
                           {"stage": "split", "side": "test", **test.counts()},
                           {"stage": "SMOTE + noise", "side": "train", **augmented.counts()},
                           {"stage": "SMOTE + noise", "side": "test", **test.counts()}])
    counts.to_csv(out / "tiles.csv", index=False)
    log.info("3 tiles: %d of %d x %d px (%d ore); split %s / %s (%d straddling training tiles dropped); "
             "after SMOTE + noise %s (%.1f s)", len(tiles), tile_size, tile_size, tiles.counts()["ore"],
             train.counts(), test.counts(), train.attrs["dropped_overlap"], augmented.counts(),
             time.perf_counter() - started)
    started = time.perf_counter()
    import torch

    torch.manual_seed(args.seed)
    model = pp.models.build("mfaf", in_channels=stack.sizes["band"], backbone="resnet18")
    epochs = args.epochs or (20 if args.quick else 220)
    trainer = pp.training.Trainer.preset("mfaf", model, epochs=epochs, step_size=max(1, round(epochs * 30 / 220)),
                                         out_dir=out / "training", seed=args.seed, overwrite=args.overwrite,
                                         device=args.device)
    history = trainer.fit(augmented, test)
    best = pp.training.load_checkpoint(out / "training" / "best.pt")
    model.load_state_dict(best["model"])
    scores = trainer.evaluate(test)
    metrics = {k: v for k, v in scores.items() if not isinstance(v, list)}
    pd.DataFrame([{"model": "MFAF-ResNet18", "best_epoch": int(best["epoch"]) + 1, **metrics}]).to_csv(
        out / "metrics.csv", index=False, float_format="%.4f")
    log.info("4 training: %d epochs on %s; best epoch %d; test accuracy %.3f, AUC %.3f, recall %.3f, F1 %.3f "
             "(%.1f s)", len(history), trainer.device, int(best["epoch"]) + 1, scores["accuracy"],
             scores["roc_auc"], scores["recall"][1], scores["f1_macro"], time.perf_counter() - started)

    started = time.perf_counter()
    prob, spread = pp.mapping.predict_map(model, stack, size=tile_size, stride=tile_size // 4,
                                          normalization=test.normalization, uncertainty=True, device=args.device)
    pp.io.write_geotiff(prob, out / "prospectivity.tif", overwrite=args.overwrite)
    pp.io.write_geotiff(spread, out / "uncertainty.tif", overwrite=args.overwrite)
    undiscovered = pp.io.read_vector(DATA / "undiscovered.gpkg", crs="EPSG:32649")
    areas = pp.evaluation.targets(prob, area_fraction=0.1, min_area=4 * grid.resolution[0] ** 2, deposits=deposits)
    areas.to_file(out / "targets.gpkg", driver="GPKG")
    summary = pp.evaluation.evaluate_map(prob, deposits, area_fraction=0.1)
    success = pp.evaluation.success_rate_curve(prob, deposits)
    prediction = pp.evaluation.prediction_rate_curve(prob, undiscovered)
    hidden = pp.evaluation.deposit_coverage(prob, undiscovered, area_fraction=0.1)
    summary.update(undiscovered_prediction_rate_auc=prediction.attrs["auc"], undiscovered_coverage=hidden["coverage"],
                   targets=len(areas))
    pd.DataFrame([summary]).to_csv(out / "evaluation.csv", index=False, float_format="%.4f")
    geology = pp.io.read_vector(DATA / "geology.gpkg")
    figures = {"map.png": pp.evaluation.plot_map(prob, deposits, areas, geology,
                                                 title="MFAF prospectivity (synthetic Qin-hang data)"),
               "rate_curves.png": pp.evaluation.plot_rate_curve(success, prediction),
               "prediction_area.png": pp.evaluation.plot_prediction_area(pp.evaluation.prediction_area(prob, deposits))}
    for name, figure in figures.items():
        figure.savefig(out / name, dpi=120)
        plt.close(figure)
    log.info("5 map: %d windows; map AUC %.3f, success-rate AUC %.3f; top 10 %% of the area holds %.0f %% of the "
             "known and %.0f %% of the undiscovered deposits; %d target areas (%.1f s)", prob.attrs["windows"],
             summary["map_auc"], summary["success_rate_auc"], 100 * summary["coverage"], 100 * hidden["coverage"],
             len(areas), time.perf_counter() - started)
    log.info("done: outputs in %s (synthetic data: compare shapes and orderings with the paper, not values)", out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
