"""Past one machine's memory: a generated evidence stack of N x N cells x 16 bands, on disk, through held-out scores
to a COG, block by block; peak memory and time at several sizes.

    python benchmarks/bench_scale.py                              # 3,000² and 6,000², gradient boosting
    python benchmarks/bench_scale.py --sizes 3000 6000 12000      # the issue's sizes (12,000² x 16: 9.2 GB)
    python benchmarks/bench_scale.py --sizes 3000 --workers 2     # the same under a 2-worker LocalCluster
    python benchmarks/bench_scale.py --sizes 3000 --eager         # the in-memory path, for the reference

For each size the stack is generated once (``--data``, default ``/tmp/prospect-scale``): 16 single-band float32
GeoTIFFs (tiled, uncompressed) of smooth random fields, written block by block, and deposits drawn where two of
the bands are high. The run is a child process, timed by ``/usr/bin/time -v`` (its peak resident memory is
the number reported). By default the run is ``prospect run`` on a run file written beside the data: every band a
``[[raster]]``, one ``[heldout]`` row of the model, target areas of at least 1 km² (a map of noise bands has
tens of thousands of one-cell patches in its top 10 %), ``[compute] chunks`` (and ``workers``). With ``--api``: every
band read lazily with :func:`prospect.layers.from_raster` (``chunks``), stacked,
5 spatial folds, :func:`prospect.validation.cross_validate` of the model, and the fold-mean map and its standard
deviation written as Cloud Optimized GeoTIFFs. Prints per size: cells, seconds, seconds per million cells
(and its ratio to the smallest size: 1.0 is linear), peak memory, and the held-out AUC.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

BANDS = 16
CELL = 100.0
ORIGIN = (500000.0, 7000000.0)
CRS = "EPSG:32635"


def _field(rows: np.ndarray, cols: np.ndarray, coarse: np.ndarray, scale: int) -> np.ndarray:
    """A smooth field: ``coarse`` (one value per ``scale`` cells) interpolated bilinearly at the cells."""
    from scipy.ndimage import map_coordinates

    rr, cc = np.meshgrid(rows / scale, cols / scale, indexing="ij")
    return map_coordinates(coarse, [rr.ravel(), cc.ravel()], order=1).reshape(rr.shape)


def generate(size: int, folder: Path, seed: int = 0) -> None:
    """16 bands of ``size`` x ``size`` cells and ~ size / 30 deposits, written block by block."""
    import geopandas as gpd
    import rasterio
    from rasterio.transform import from_origin
    from rasterio.windows import Window
    from shapely.geometry import Point

    folder.mkdir(parents=True, exist_ok=True)
    if (folder / "deposits.gpkg").exists():
        return
    started = time.perf_counter()
    rng = np.random.default_rng(seed)
    scale = 64
    coarse = [rng.normal(size=(size // scale + 2, size // scale + 2)) for _ in range(BANDS)]
    transform = from_origin(ORIGIN[0], ORIGIN[1] + size * CELL, CELL, CELL)
    profile = dict(driver="GTiff", width=size, height=size, count=1, dtype="float32", crs=CRS, transform=transform,
                   tiled=True, blockxsize=512, blockysize=512, nodata=-9999.0, BIGTIFF="YES")
    step = 1024
    for band in range(BANDS):
        noise = np.random.default_rng([seed, band])
        with rasterio.open(folder / f"band{band:02d}.tif", "w", **profile) as dst:
            dst.set_band_description(1, f"b{band:02d}")
            for r0 in range(0, size, step):
                rows = np.arange(r0, min(size, r0 + step))
                for c0 in range(0, size, step):
                    cols = np.arange(c0, min(size, c0 + step))
                    values = _field(rows, cols, coarse[band], scale) + 0.2 * noise.normal(size=(len(rows), len(cols)))
                    dst.write(values.astype(np.float32), 1, window=Window(c0, r0, len(cols), len(rows)))
    # deposits where bands 0 and 1 are both high (a signal a model can learn), drawn on the coarse fields
    count = max(20, size // 30)
    rows, cols = rng.uniform(0, size - 1, 50 * count), rng.uniform(0, size - 1, 50 * count)
    from scipy.ndimage import map_coordinates

    score = sum(map_coordinates(coarse[b], [rows / scale, cols / scale], order=1) for b in (0, 1))
    chosen = np.argsort(-score + 0.5 * rng.normal(size=len(score)))[:count]
    points = [Point(ORIGIN[0] + (cols[i] + 0.5) * CELL, ORIGIN[1] + (size - rows[i] - 0.5) * CELL) for i in chosen]
    gpd.GeoDataFrame({"name": [f"d{i}" for i in range(count)]}, geometry=points, crs=CRS).to_file(
        folder / "deposits.gpkg")
    print(f"  generated {size} x {size} x {BANDS} in {time.perf_counter() - started:.0f} s -> {folder}", flush=True)


def run(folder: Path, model: str, chunks: int, workers: int, eager: bool, out: Path) -> dict:
    """The measured run (in a child process): lazy bands -> stack -> folds -> cross-validation -> COGs."""
    import prospect as pp

    timings, started = {}, time.perf_counter()
    client = pp.compute.client(workers=workers, memory_limit="2GB") if workers else None
    deposits = pp.io.read_vector(folder / "deposits.gpkg")
    paths = sorted(folder.glob("band*.tif"))
    with __import__("rasterio").open(paths[0]) as src:
        b = src.bounds
        grid = pp.Grid((b.left, b.bottom, b.right, b.top), (src.height, src.width), src.crs)
    layers = [pp.layers.from_raster(p, grid, chunks=None if eager else chunks) for p in paths]
    stack = pp.layers.stack(*layers)
    timings["stack"] = time.perf_counter() - started
    folds = pp.folds.spatial_folds(grid, deposits, k=5, seed=0)
    timings["folds"] = time.perf_counter() - started - sum(timings.values())
    result = pp.validation.cross_validate(stack, deposits, folds, model, max_positives=5000, importance=False,
                                          seed=0, workdir=None if eager else out)
    timings["cross_validate"] = time.perf_counter() - started - sum(timings.values())
    pp.io.write_geotiff(result.mean, out / "prospectivity.tif", cog=True, overwrite=True)
    pp.io.write_geotiff(result.std, out / "uncertainty.tif", cog=True, overwrite=True)
    timings["write"] = time.perf_counter() - started - sum(timings.values())
    summary = result.summary()
    if client is not None:
        client.close()
    return {"auc": summary["auc"], "auc_low": summary["auc_low"], "auc_high": summary["auc_high"],
            "deposits": summary["deposits"], "timings": timings}


def run_file(folder: Path, model: str, chunks: int, workers: int, eager: bool) -> Path:
    """A run file for ``prospect run``: every band a [[raster]], the deposits, one held-out row, [compute]."""
    bands = "".join(f'[[raster]]\nsource = "{p}"\nname = "{p.stem}"\n\n' for p in sorted(folder.glob("band*.tif")))
    compute = "" if eager else f"[compute]\nchunks = {chunks}\n" + (f"workers = {workers}\n" if workers else "")
    text = (f'[report]\ntitle = "bench_scale {folder.name}"\nsynthetic = true\n\n'
            f'[grid]\nlike = "{folder / "band00.tif"}"\n\n[deposits]\npath = "{folder / "deposits.gpkg"}"\n\n'
            f'{bands}[heldout]\nk = 5\nmax_positives = 5000\nimportance = false\n\n'
            '[targets]\narea_fraction = 0.1\nmin_area = 1e6\n\n[experiments]\nrows = []\n\n'
            f'[[experiments.models]]\nlabel = "{model}"\nname = "{model}"\n\n{compute}')
    path = folder / f"run{'_eager' if eager else ''}{f'_{workers}w' if workers else ''}.toml"
    path.write_text(text)
    return path


def measured(size: int, args: argparse.Namespace) -> dict:
    """Run one size in a child process under /usr/bin/time -v; its result, wall time and peak memory."""
    out = Path(args.data) / f"out{size}"
    out.mkdir(parents=True, exist_ok=True)
    if args.api:
        command = [sys.executable, __file__, "--child", str(size), "--data", args.data, "--model", args.model,
                   "--chunks", str(args.chunks), "--workers", str(args.workers)] + (["--eager"] if args.eager else [])
    else:
        config = run_file(Path(args.data) / str(size), args.model, args.chunks, args.workers, args.eager)
        out = out / config.stem
        command = [sys.executable, "-m", "prospect", "run", str(config), "--out", str(out), "--overwrite"]
    timer = ["/usr/bin/time", "-v"] if Path("/usr/bin/time").exists() else []
    started = time.perf_counter()
    done = subprocess.run(timer + command, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode:
        raise SystemExit(f"size {size} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    if args.api:
        result = json.loads(done.stdout.strip().splitlines()[-1])
    else:     # the run's own numbers: its held-out table and the stages' times in config.json
        import pandas as pd

        line = pd.read_csv(out / "heldout.csv").iloc[0]
        stages = re.findall(r"^\| (\d) ([a-z -]+?) \| ([\d.]+) \|$", (out / "report.md").read_text(), re.M)
        result = {"auc": line["auc"], "auc_low": line["auc_low"], "auc_high": line["auc_high"],
                  "deposits": int(line["deposits"]), "timings": {name: float(t) for _, name, t in stages}}
    peak = re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr)
    result.update(size=size, seconds=wall, peak_gb=int(peak.group(1)) / 2**20 if peak else float("nan"))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[3000, 6000])
    parser.add_argument("--model", default="gradient_boosting")
    parser.add_argument("--chunks", type=int, default=1024)
    parser.add_argument("--workers", type=int, default=0, help="a LocalCluster of this many workers (0: threads)")
    parser.add_argument("--eager", action="store_true", help="read every band whole (the in-memory path)")
    parser.add_argument("--api", action="store_true", help="the API calls alone, not prospect run")
    parser.add_argument("--data", default="/tmp/prospect-scale")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        import logging
        import warnings

        logging.disable(logging.INFO)
        warnings.simplefilter("ignore")
        out = Path(args.data) / f"out{args.child}"
        print(json.dumps(run(Path(args.data) / str(args.child), args.model, args.chunks, args.workers, args.eager,
                             out)))
        return
    import prospect as pp

    engine = f"LocalCluster of {args.workers} workers" if args.workers else "threads"
    print(f"prospect {pp.__version__}, Python {sys.version.split()[0]}, {os.cpu_count()} CPUs; {args.model}, "
          f"5 folds, chunks {args.chunks}, {engine}{', in memory (eager)' if args.eager else ''}", flush=True)
    rows = []
    for size in args.sizes:
        generate(size, Path(args.data) / str(size))
        rows.append(measured(size, args))
        line = rows[-1]
        per = line["seconds"] / (size * size / 1e6)
        ratio = per / (rows[0]["seconds"] / (rows[0]["size"] ** 2 / 1e6))
        print(f"{size:>6} x {size:<6} {size * size / 1e6:7.1f} M cells  {line['seconds']:7.0f} s  "
              f"{per:6.2f} s per M cells (x{ratio:.2f} of the first)  peak {line['peak_gb']:.2f} GB  "
              f"held-out AUC {line['auc']:.3f} ({line['auc_low']:.3f}-{line['auc_high']:.3f}, {line['deposits']} "
              f"deposits)  [{', '.join(f'{k} {v:.0f} s' for k, v in line['timings'].items())}]", flush=True)


if __name__ == "__main__":
    main()
