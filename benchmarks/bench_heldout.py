"""Where the time of a held-out-deposit evaluation goes: per model, training against mapping, in one run.

    python benchmarks/bench_heldout.py                      # the quick case study's stack (390 x 390, 100 m)
    python benchmarks/bench_heldout.py --positives 400 --epochs 4 --models resnet18 mfaf

Builds the quick case study's 10-band stack from the embedded (synthetic) survey, deals 5 spatial folds,
and for one fold times each model's training and its map, then prints seconds and the ratio to the logistic
regression measured in the same process (the reference), and what 5 folds would take. CPU training speed is
what decides how many networks ``--quick`` can afford.
"""

from __future__ import annotations

import argparse
import logging
import time
import warnings
from pathlib import Path

import torch

import prospect as pp

DATA = Path(__file__).resolve().parents[1] / "data_samples" / "qinhang"
NETWORKS = {"resnet18": {}, "shufflenet_v2": {}, "mobilenet_v2": {}, "mnasnet": {},
            "mfaf_shufflenet_v2": {"name": "mfaf", "backbone": "shufflenet_v2"},
            "mfaf": {"name": "mfaf", "backbone": "resnet18"}}


def quick_stack():
    samples = pp.io.read_samples(DATA / "stream_sediments.csv", crs="EPSG:32649", coord_scale=1000)
    deposits = pp.io.read_vector(DATA / "deposits.gpkg")
    table = pp.screening.screen_elements(samples, deposits, method="value")
    grid = pp.Grid.from_bounds((400000, 2400000, 439000, 2439000), shape=(390, 390), crs="EPSG:32649")
    elements = pp.interpolate.idw(samples, table.index[table["selected"]].tolist(), grid, power=2)
    geology = pp.layers.rasterize_categorical(pp.io.read_vector(DATA / "geology.gpkg"), "unit", grid)
    faults = pp.layers.distance_to(pp.io.read_vector(DATA / "faults.gpkg"), grid, name="fault_distance")
    return pp.layers.stack(elements, geology, faults), deposits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["random_forest", "gradient_boosting", "resnet18",
                                                        "shufflenet_v2", "mfaf_shufflenet_v2"],
                        help=f"baselines and networks ({', '.join(NETWORKS)})")
    parser.add_argument("--positives", type=int, default=200, help="positive windows per fold (quick: 200)")
    parser.add_argument("--ratio", type=float, default=3.0, help="negatives per positive (quick: 3)")
    parser.add_argument("--window", type=int, default=17)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--stride", type=int, default=6, help="map stride in cells (quick: 6)")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    logging.disable(logging.INFO)
    stack, deposits = quick_stack()
    folds = pp.folds.spatial_folds(stack, deposits, k=5, block_size=3900, seed=0)
    held = folds.held_out(0)
    train = deposits.iloc[folds.deposit_index[~held]]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; stack {tuple(stack.shape)}; fold 0 of 5")

    def one(name: str) -> tuple[float, float]:
        network = name in NETWORKS
        allowed = folds.training_mask(0, margin=args.window // 2 if network else 0)
        points = pp.sampling.sample_points(stack, train, allowed=allowed, max_positives=args.positives,
                                           negative_ratio=args.ratio, seed=0)
        started = time.perf_counter()
        if not network:
            model = pp.baselines.build_baseline(name, categorical=pp.baselines.categorical_bands(stack))
            model.fit(pp.sampling.pixel_values(stack, points), points.y)
            trained = time.perf_counter()
            pp.baselines.predict_stack(model, stack)
            return trained - started, time.perf_counter() - trained
        spec = {"name": name, **NETWORKS[name]}
        stats = pp.sampling.fit_normalization(stack, allowed)
        tiles = pp.sampling.windows(stack, points, args.window, stats)
        torch.manual_seed(0)
        model = pp.models.build(spec.pop("name"), stack.sizes["band"], **spec)
        pp.training.Trainer(model, **{**pp.validation.NETWORK_TRAINING, "epochs": args.epochs, "device": "cpu"}
                            ).fit(tiles)
        trained = time.perf_counter()
        pp.mapping.predict_centres(model, stack, args.window, args.stride, stats, device="cpu")
        return trained - started, time.perf_counter() - trained

    reference = sum(one("logistic_regression"))
    print(f"{'model':>20} {'train s':>8} {'map s':>7} {'fold s':>7} {'x LR':>7} {'5 folds s':>9}")
    print(f"{'logistic_regression':>20} {'':>8} {'':>7} {reference:7.2f} {1.0:7.1f} {5 * reference:9.1f}")
    for name in args.models:
        fit, mapped = one(name)
        total = fit + mapped
        print(f"{name:>20} {fit:8.2f} {mapped:7.2f} {total:7.2f} {total / reference:7.1f} {5 * total:9.1f}")
    print(f"positives {args.positives}, ratio {args.ratio:g}, window {args.window}, epochs {args.epochs}, "
          f"map stride {args.stride}; the embedded synthetic survey")


if __name__ == "__main__":
    main()
