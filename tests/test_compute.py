"""Stacks larger than memory: every block-wise result against the same computation on the whole array."""

import gc
import shutil
import subprocess
import warnings

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
from shapely.geometry import Point

import prospect as pp
from prospect.errors import InputError

pytest.importorskip("dask")

CRS = "EPSG:32649"
CELL = 200
GRID = pp.Grid.from_bounds((400000, 2400000, 400000 + 90 * CELL, 2400000 + 70 * CELL), shape=(70, 90), crs=CRS)
ODD = 23     # block side that divides neither 70 nor 90: ragged last blocks on both axes


def _deposits(n=20, seed=3):
    rng = np.random.default_rng(seed)
    points = []
    while len(points) < n:
        x, y = rng.uniform(401000, 417000), rng.uniform(2401000, 2413000)
        if all(np.hypot(x - a, y - b) >= 1500 for a, b in points):
            points.append((x, y))
    points.append(points[0])        # two deposits on one cell: that cell is no negative, once
    return gpd.GeoDataFrame(geometry=[Point(x, y) for x, y in points], crs=CRS)


def _stack(deposits, seed=0):
    """A planted halo band, two noise bands, a corner of nodata and a band of ties (values rounded)."""
    rng = np.random.default_rng(seed)
    values = rng.normal(size=(3, *GRID.shape)).astype(np.float32)
    values[0] = pp.layers.deposit_layer(deposits, GRID, radius=500).to_numpy()[0] + 0.3 * values[0]
    values[2] = np.round(values[2])
    values[:, :9, :13] = np.nan
    return GRID.wrap(values, bands=["halo", "noise", "rounded"])


@pytest.fixture(scope="module")
def case():
    deposits = _deposits()
    return deposits, _stack(deposits)


def test_lazy_helpers_equal_numpy(case):
    _, stack = case
    lazy = pp.compute.chunked(stack, ODD)
    assert pp.compute.is_lazy(lazy) and not pp.compute.is_lazy(stack)
    assert lazy.data.chunks == ((3,), (23, 23, 23, 1), (23, 23, 23, 21))
    np.testing.assert_array_equal(pp.compute.valid_cells(lazy), np.isfinite(stack.values).all(axis=0))
    rows, cols = np.array([0, 22, 23, 69, 45]), np.array([89, 0, 23, 88, 46])
    np.testing.assert_array_equal(pp.compute.values_at(lazy, rows, cols), stack.values[:, rows, cols].T)
    np.testing.assert_array_equal(pp.compute.band_has_values(lazy), [True, True, True])
    with pytest.raises(InputError, match=r"chunks=8 must be a whole number of cells per block side, at least 16"):
        pp.compute.chunked(stack, 8)


def test_block_wise_prediction_equals_whole_array_prediction(case):
    from sklearn.ensemble import RandomForestClassifier

    deposits, stack = case
    points = pp.sampling.sample_points(stack, deposits, seed=0)
    model = RandomForestClassifier(n_estimators=20, random_state=0).fit(pp.sampling.pixel_values(stack, points),
                                                                        points.y)
    whole = pp.baselines.predict_stack(model, stack)
    lazy = pp.baselines.predict_stack(model, pp.compute.chunked(stack, ODD))
    assert pp.compute.is_lazy(lazy) and lazy.data.chunks == ((23, 23, 23, 1), (23, 23, 23, 21))
    np.testing.assert_array_equal(lazy.values, whole.values)       # every cell, NaN where a band is NaN
    # and the samples read from a lazy stack are the same cells' values
    np.testing.assert_array_equal(pp.sampling.pixel_values(pp.compute.chunked(stack, ODD), points),
                                  pp.sampling.pixel_values(stack, points))


def test_deposit_ranks_counted_block_by_block_equal_the_sorted_map(case):
    deposits, stack = case
    prob = stack.sel(band="rounded", drop=True)     # many ties, a nodata corner, two deposits on one cell
    with pytest.warns(UserWarning, match="1 on nodata cells; 20 of 21 are evaluated"):   # one in the corner
        whole = pp.evaluation.deposit_ranks(prob, deposits)
    with pytest.warns(UserWarning, match="1 on nodata cells; 20 of 21 are evaluated"):
        lazy = pp.evaluation.deposit_ranks(pp.compute.chunked(prob, ODD), deposits)
    assert len(whole) == 20 and whole["value"].nunique() == 5     # 20 deposits on 5 values: ties
    for column in whole:
        np.testing.assert_array_equal(lazy[column].to_numpy(), whole[column].to_numpy(), err_msg=column)


def test_lazy_raster_reading_equals_reading_whole(tmp_path, case):
    _, stack = case
    path = pp.io.write_geotiff(stack, tmp_path / "stack.tif")
    lazy = pp.io.read_geotiff(path, chunks=ODD)
    assert pp.compute.is_lazy(lazy)
    np.testing.assert_array_equal(lazy.values, pp.io.read_geotiff(path).values)
    # on the file's own grid a block is read, not warped: the same values exactly
    same = pp.layers.from_raster(path, GRID, chunks=ODD)
    np.testing.assert_array_equal(same.values, pp.layers.from_raster(path, GRID).values)
    # on another grid of the same CRS (shifted, finer) each block is warped alone: float32 rounding apart
    other = pp.Grid.from_bounds((400150, 2400230, 415150, 2411230), shape=(110, 150), crs=CRS)
    lazy = pp.layers.from_raster(path, other, resampling="bilinear", chunks=ODD)
    whole = pp.layers.from_raster(path, other, resampling="bilinear")
    np.testing.assert_array_equal(np.isnan(lazy.values), np.isnan(whole.values))
    np.testing.assert_allclose(lazy.values, whole.values, atol=1e-6, equal_nan=True)


def test_vector_layers_rasterised_and_measured_by_strips_equal_the_whole_grid():
    # geology (overlapping polygons, one-hot or coded), faults with a point and a polygon (0 inside), a study area:
    # each strip of 37 rows (ragged last) rasterised with its own transform gives the whole grid's cells
    from shapely.geometry import LineString, Polygon, box

    units = gpd.GeoDataFrame({"unit": ["a", "b", "c", "a"]}, geometry=[
        Polygon([(400000, 2400000), (406000, 2400000), (404000, 2414000), (400000, 2414000)]),
        Polygon([(406000, 2400000), (418000, 2400000), (418000, 2406000), (404100, 2414000)]),
        box(410000, 2408000, 418000, 2414000), Point(415000, 2403000).buffer(1500)], crs=CRS)
    faults = gpd.GeoDataFrame(geometry=[LineString([(400500, 2400500), (417500, 2413500)]), Point(402000, 2412000),
                                        box(412000, 2401000, 414000, 2402000)], crs=CRS)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")     # the overlap of two units, said as a warning
        for one_hot in (False, True):
            whole = pp.layers.rasterize_categorical(units, "unit", GRID, one_hot=one_hot)
            lazy = pp.layers.rasterize_categorical(units, "unit", GRID, one_hot=one_hot, chunks=37)
            assert pp.compute.is_lazy(lazy) and lazy.attrs == whole.attrs
            np.testing.assert_array_equal(lazy.values, whole.values)
    whole, lazy = pp.layers.distance_to(faults, GRID), pp.layers.distance_to(faults, GRID, chunks=37, chunk=1000)
    assert pp.compute.is_lazy(lazy) and (whole.values == 0).sum() > 0
    np.testing.assert_array_equal(lazy.values, whole.values)
    whole, lazy = pp.layers.study_area(units.iloc[:2], GRID), pp.layers.study_area(units.iloc[:2], GRID, chunks=37)
    assert pp.compute.is_lazy(lazy) and lazy.attrs == whole.attrs and 0 < whole.attrs["area_fraction"] < 1
    np.testing.assert_array_equal(lazy.values, whole.values)
    masked = pp.layers.apply_mask(pp.compute.chunked(_stack(_deposits()), ODD), lazy)
    assert pp.compute.is_lazy(masked)
    np.testing.assert_array_equal(masked.values, pp.layers.apply_mask(_stack(_deposits()), whole).values)


@pytest.mark.parametrize("chunks", [16, ODD, 47])
def test_derived_layers_of_a_lazy_raster_are_filtered_block_by_block_as_the_whole(chunks):
    # slope (a 1-cell halo) and Gaussian filters (halo 4 sigma + 1 = 42 cells, more than a block of 16): each block
    # extended by its neighbours' cells and, at the grid's edges, by the same odd reflection: identical values
    rng = np.random.default_rng(0)
    rows, cols = np.mgrid[:70, :90]
    values = (np.sin(cols / 9) * 50 + rows * 3 + rng.normal(size=GRID.shape) * 5).astype(np.float32)
    values[30:34, 50:60] = np.nan
    dem = GRID.wrap(values[None], bands=["dem"])
    lazy = pp.compute.chunked(dem, chunks)
    for derive in (pp.layers.slope, lambda d: pp.layers.smooth(d, 1000), lambda d: pp.layers.high_pass(d, 2100)):
        blockwise, whole = derive(lazy), derive(dem)
        assert pp.compute.is_lazy(blockwise) and not pp.compute.is_lazy(whole) and blockwise.attrs == whole.attrs
        np.testing.assert_array_equal(blockwise.values, whole.values)


def test_a_lazy_stack_stays_lazy_through_stacking_and_masking(tmp_path, case):
    deposits, stack = case
    path = pp.io.write_geotiff(stack, tmp_path / "stack.tif")
    layers = [pp.layers.from_raster(path, GRID, band=b, name=n, chunks=ODD) for b, n in ((1, "a"), (3, "c"))]
    halo = pp.layers.deposit_layer(deposits, GRID, radius=300)            # in memory, stacked with lazy layers
    lazy = pp.layers.stack(layers[0], halo, layers[1])
    assert pp.compute.is_lazy(lazy) and lazy.data.chunks[0] == (3,)
    area = pp.layers.study_area(gpd.GeoDataFrame(geometry=[Point(408000, 2407000).buffer(5000)], crs=CRS), GRID)
    masked = pp.layers.apply_mask(lazy, area)
    assert pp.compute.is_lazy(masked)
    eager = pp.layers.apply_mask(pp.layers.stack(stack.isel(band=[0]).assign_coords(band=["a"]), halo,
                                                 stack.isel(band=[2]).assign_coords(band=["c"])), area)
    np.testing.assert_array_equal(masked.values, eager.values)


def test_lazy_cross_validation_equals_in_memory(tmp_path, case):
    deposits, stack = case
    folds = pp.folds.spatial_folds(stack, deposits, k=3, block_size=3000, link=0, seed=0)
    options = dict(model={"name": "random_forest", "n_estimators": 30}, positive_radius=400, seed=0)
    whole = pp.validation.cross_validate(stack, deposits, folds, **options)
    lazy = pp.validation.cross_validate(pp.compute.chunked(stack, ODD), deposits, folds, workdir=tmp_path,
                                        **options)
    folder = lazy.store.folder          # a folder of its own inside workdir, kept
    assert folder.parent == tmp_path and folder.name.startswith("random_forest-folds-")
    assert sorted(p.name for p in folder.iterdir()) == ["fold0.tif", "fold1.tif", "fold2.tif"]
    assert pp.compute.is_lazy(lazy.mean) and pp.compute.is_lazy(lazy.std)
    for column in ("fold", "deposit", "value", "auc", "area_above", "nearest_training"):
        np.testing.assert_array_equal(lazy.ranks[column].to_numpy(), whole.ranks[column].to_numpy(), err_msg=column)
    np.testing.assert_array_equal(lazy.fold_maps.compute(), whole.fold_maps)
    np.testing.assert_allclose(lazy.mean.values, whole.mean.values, rtol=1e-6, equal_nan=True)
    np.testing.assert_allclose(lazy.std.values, whole.std.values, rtol=1e-5, atol=1e-7, equal_nan=True)
    assert lazy.summary() | {"seconds": 0} == whole.summary() | {"seconds": 0}
    np.testing.assert_allclose(lazy.importance["importance"], whole.importance["importance"])
    # the rank mean of two lazy results (their fold maps read from their files) is the in-memory one, and so is
    # the cross-validation inside each fold's training area it would choose by (a run's [heldout] ensemble)
    linear = {"model": "logistic_regression", "positive_radius": 400, "seed": 0, "importance": False, "inner": True}
    in_memory = pp.validation.cross_validate(stack, deposits, folds, **linear)
    chunked = pp.validation.cross_validate(pp.compute.chunked(stack, ODD), deposits, folds, **linear)
    np.testing.assert_allclose(chunked.folds["inner_auc"], in_memory.folds["inner_auc"])
    joint = pp.validation.ensemble([whole], [in_memory], deposits, folds)
    lazy_joint = pp.validation.ensemble([lazy], [chunked], deposits, folds)
    np.testing.assert_allclose(lazy_joint.fold_maps, joint.fold_maps, equal_nan=True)
    np.testing.assert_array_equal(lazy_joint.ranks["auc"], joint.ranks["auc"])


def test_the_fold_maps_of_a_lazy_run_go_with_its_result(case):
    deposits, stack = case
    folds = pp.folds.spatial_folds(stack, deposits, k=3, block_size=3000, link=0, seed=0)
    result = pp.validation.cross_validate(pp.compute.chunked(stack, 32), deposits, folds,
                                          model="logistic_regression", importance=False)
    folder = result.store.folder
    assert sorted(p.name for p in folder.iterdir()) == ["fold0.tif", "fold1.tif", "fold2.tif"]
    del result
    gc.collect()
    assert not folder.exists()


@pytest.mark.parametrize(("size", "stride", "normalised", "chunks"), [
    (5, 1, True, ODD), (7, 3, True, ODD), (9, 4, False, 17), (11, 5, True, 16), (3, 2, False, 40)])
def test_a_network_maps_a_lazy_stack_block_by_block_as_it_maps_the_whole_array(case, size, stride, normalised, chunks):
    # each block scored from a halo around it: the same windows (edge cells repeated past the grid, holes filled
    # with 0 or the whole band's mean) and the same lattice of centres as the whole grid's, blocks smaller than
    # the halo included
    import torch

    _, stack = case
    torch.manual_seed(0)
    model = pp.models.WindowNet(3, width=8).eval()
    stats = pp.sampling.fit_normalization(stack) if normalised else None
    options = dict(size=size, stride=stride, normalization=stats, device="cpu")
    whole = pp.mapping.predict_centres(model, stack, **options)
    lazy = pp.mapping.predict_centres(model, pp.compute.chunked(stack, chunks), **options)
    assert pp.compute.is_lazy(lazy) and lazy.data.chunks == pp.compute.chunked(stack, chunks).data.chunks[1:]
    np.testing.assert_allclose(lazy.values, whole.values, rtol=0, atol=1e-6, equal_nan=True)
    assert np.isnan(whole.values).sum() == 9 * 13


def test_class_bands_are_one_hot_encoded_lazily(case):
    _, stack = case
    values = stack.values.copy()
    values[2] = np.clip(values[2], -2, 2) + 2
    coded = stack.copy(data=values).assign_attrs(rounded_legend="0: a; 1: b; 2: c; 3: d; 4: e")
    whole = pp.sampling.one_hot(coded)
    lazy = pp.sampling.one_hot(pp.compute.chunked(coded, ODD))
    assert pp.compute.is_lazy(lazy) and len(lazy.data.chunks[0]) == 1
    assert list(lazy["band"].values) == list(whole["band"].values) == \
        ["halo", "noise", "rounded=0", "rounded=1", "rounded=2", "rounded=3", "rounded=4"]
    np.testing.assert_array_equal(lazy.values, whole.values)


def test_networks_cross_validate_on_a_lazy_stack_as_in_memory(case):
    # pretrained (its windows gathered from the blocks), trained on gathered windows, two members mapped block by
    # block into the fold files: the same ranks, maps to float32 rounding, the same pretraining losses (test-time
    # averaging only wraps the network a block is mapped with: left out for time)
    deposits, stack = case
    folds = pp.folds.spatial_folds(stack, deposits, k=3, block_size=3000, link=0, seed=0)
    options = dict(model={"name": "window_net", "width": 8, "members": 2, "tta": False}, window=5, map_stride=2,
                   trainer={"epochs": 2}, device="cpu", positive_radius=400, keep_models=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")      # a deposit on the nodata corner
        whole = pp.validation.cross_validate(stack, deposits, folds, **options)
        lazy = pp.validation.cross_validate(pp.compute.chunked(stack, ODD), deposits, folds, **options)
    assert lazy.settings["recipe"]["pretrain"] and lazy.settings["recipe"]["augment"]
    assert pp.compute.is_lazy(lazy.mean) and sorted(p.name for p in lazy.store.folder.iterdir()) == \
        ["fold0.tif", "fold1.tif", "fold2.tif"]
    pd.testing.assert_frame_equal(lazy.ranks, whole.ranks)
    pd.testing.assert_frame_equal(lazy.pretraining.drop(columns="seconds"), whole.pretraining.drop(columns="seconds"))
    np.testing.assert_allclose(np.asarray(lazy.fold_maps), whole.fold_maps, rtol=0, atol=1e-6, equal_nan=True)
    np.testing.assert_allclose(lazy.mean.values, whole.mean.values, rtol=0, atol=1e-6, equal_nan=True)
    with pytest.raises(InputError, match=r"window_net: contributions are not made for a lazy .*stack.load\(\)"):
        lazy.contributions(pp.compute.chunked(stack, ODD))


def test_a_lazy_map_is_written_block_by_block_as_a_cloud_optimized_geotiff(tmp_path, case):
    _, stack = case
    big = pp.Grid.from_bounds((400000, 2400000, 400000 + 700 * CELL, 2400000 + 600 * CELL), shape=(600, 700),
                              crs=CRS)
    values = np.tile(stack.values[0], (9, 8))[:600, :700]
    lazy = pp.compute.chunked(big.wrap(values, name="probability", attrs={"kind": "probability"}), 256)
    path = pp.io.write_geotiff(lazy, tmp_path / "map.tif", cog=True)
    with rasterio.open(path) as src:
        assert src.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
        assert src.overviews(1) == [2] and src.block_shapes[0] == (512, 512)     # down to one 512-px block
        assert src.descriptions == ("probability",) and "STATISTICS_MEAN" in src.tags(1)
        np.testing.assert_array_equal(src.read(1, masked=True).filled(np.nan), values)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["map.qml", "map.tif"]     # no tiled draft left behind
    clash = lazy.where(lazy.x < lazy.x[400], -9999.0)         # the nodata value among the values: refused, ...
    with pytest.raises(InputError, match=r"nodata=-9999.0 occurs among the raster's real values"):
        pp.io.write_geotiff(clash, tmp_path / "clash.tif", cog=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["map.qml", "map.tif"]     # ... and nothing left
    # GDAL's own validator (Debian's python3-gdal, run by the system Python as the QGIS tests are)
    validator = "osgeo_utils.samples.validate_cloud_optimized_geotiff"
    python = shutil.which("python3", path="/usr/bin")
    if python is None or subprocess.run([python, "-c", f"import {validator}"], capture_output=True).returncode:
        pytest.skip("GDAL's Python utilities (Debian's python3-gdal) are not installed")
    checked = subprocess.run([python, "-m", validator, "--full-check=yes", str(path)], capture_output=True, text=True)
    assert checked.returncode == 0 and "is a valid cloud optimized GeoTIFF" in checked.stdout, checked


def test_writing_a_lazy_map_shows_a_bar_on_a_terminal_only(tmp_path, case, monkeypatch, capsys):
    _, stack = case
    lazy = pp.compute.chunked(stack, ODD)          # 4 rows of blocks
    pp.io.write_geotiff(lazy, tmp_path / "quiet.tif")
    assert "rows of blocks" not in capsys.readouterr().err      # not a terminal (a log file, CI): no bar
    monkeypatch.setattr("sys.stderr.isatty", lambda: True)
    pp.io.write_geotiff(lazy, tmp_path / "shown.tif")
    shown = capsys.readouterr().err
    assert "shown.tif (rows of blocks)" in shown and "/4 " in shown, shown     # four rows of blocks


def test_a_local_cluster_gives_the_same_cross_validation_as_threads(case):
    pytest.importorskip("distributed")
    deposits, stack = case
    folds = pp.folds.spatial_folds(stack, deposits, k=3, block_size=3000, link=0, seed=0)
    options = dict(model="logistic_regression", positive_radius=400, importance=False, seed=0)
    threads = pp.validation.cross_validate(pp.compute.chunked(stack, 32), deposits, folds, **options)
    with pp.compute.engine(chunks=32, workers=2, memory_limit="1GB") as engine:
        assert engine.client is not None and len(engine.client.scheduler_info()["workers"]) == 2
        assert engine.describe() == "block by block (32 x 32 cells) on a LocalCluster of 2 workers"
        cluster = pp.validation.cross_validate(pp.compute.chunked(stack, 32), deposits, folds, **options)
        np.testing.assert_array_equal(cluster.mean.values, threads.mean.values)
    assert engine.client is None
    for column in ("fold", "deposit", "value", "auc", "area_above"):
        np.testing.assert_array_equal(cluster.ranks[column].to_numpy(), threads.ranks[column].to_numpy())


def test_the_engine_refuses_settings_that_cannot_work_together():
    with pytest.raises(InputError, match=r"address='tcp://h:8786' and workers=2: give one"):
        pp.compute.engine(chunks=64, address="tcp://h:8786", workers=2)
    with pytest.raises(InputError, match=r"memory_limit='2GB' is each LocalCluster worker's; give workers too"):
        pp.compute.engine(chunks=64, memory_limit="2GB")
    assert pp.compute.engine().describe() == "in memory" and not pp.compute.engine().lazy


def test_a_large_map_is_drawn_as_block_means_with_its_first_targets(case):
    import matplotlib

    matplotlib.use("Agg")
    deposits, stack = case
    prob = stack.sel(band="halo", drop=True)                # 70 x 90 cells, a NaN corner
    areas = pp.evaluation.targets(prob, area_fraction=0.2)
    assert len(areas) > 12
    fig = pp.evaluation.plot_map(prob, deposits, areas, title="halo", pixels=256, outlines=12, numbers=5)
    ax = fig.axes[0]
    np.testing.assert_array_equal(ax.images[0].get_array().filled(np.nan), prob.values)    # small: every cell
    assert [t.get_text() for t in ax.texts] == ["1", "2", "3", "4", "5"]
    assert ax.get_legend().get_texts()[0].get_text() == f"target areas (rank; the first 12 of {len(areas)})"
    # a map wider than `pixels` is shown as means of square blocks (NaN-aware), its extent kept
    wide = pp.Grid.from_bounds((400000, 2400000, 400000 + 900 * CELL, 2400000 + 700 * CELL), shape=(700, 900),
                               crs=CRS)
    values = np.kron(prob.values, np.ones((10, 10)))          # 10 x 10 copies of each cell
    fig = pp.evaluation.plot_map(wide.wrap(values.astype(np.float32)), pixels=256)
    shown = fig.axes[0].images[0].get_array().filled(np.nan)
    assert shown.shape == (175, 225) and "(shown as means of 4 x 4 cells)" in fig.axes[0].get_title()
    blocks = np.kron(prob.values, np.ones((10, 10)))[:700, :900].reshape(175, 4, 225, 4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)       # the corner's all-NaN blocks
        expected = np.nanmean(blocks, axis=(1, 3))
    np.testing.assert_allclose(shown, expected, rtol=1e-6)
    # the same map lazy (blocks of 64 rows: 11 strips): its block means, colour range and top-area marks the same
    lazy = pp.evaluation.plot_map(pp.compute.chunked(wide.wrap(values.astype(np.float32)), 64), pixels=256)
    np.testing.assert_array_equal(lazy.axes[0].images[0].get_array().filled(np.nan), shown)
    assert lazy.axes[0].images[0].get_clim() == fig.axes[0].images[0].get_clim()
    np.testing.assert_array_equal([line.get_ydata()[0] for line in lazy.axes[1].lines],
                                  [line.get_ydata()[0] for line in fig.axes[1].lines])
    assert len(fig.axes[1].lines) == 3


@pytest.mark.parametrize("seed", [0, 9, 11])     # 9 and 11: the P-A curves cross between two deposits' values
def test_a_large_map_is_evaluated_in_little_memory_to_the_same_numbers(monkeypatch, seed):
    rng = np.random.default_rng(seed)
    deposits = _deposits(seed=seed)
    values = np.round(rng.normal(size=GRID.shape) + 2 * pp.layers.deposit_layer(deposits, GRID, radius=600).values[0],
                      2).astype(np.float32)                  # rounded: ties, deposits among them
    values[:9, :13] = np.nan
    prob, spread = GRID.wrap(values), GRID.wrap(rng.random(GRID.shape).astype(np.float32))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)          # a deposit on the nodata corner, each time
        exact = {"curve": pp.evaluation.success_rate_curve(prob, deposits),
                 "pa": pp.evaluation.prediction_area(prob, deposits), "auc": pp.evaluation.map_auc(prob, deposits),
                 "summary": pp.evaluation.evaluate_map(prob, deposits),
                 "targets": pp.evaluation.targets(prob, area_fraction=0.15, uncertainty=spread, deposits=deposits)}
        monkeypatch.setattr(pp.evaluation, "LARGE_MAP", 100)     # every map is large now
        for shown in (prob, pp.compute.chunked(prob, ODD)):       # in memory, and lazy
            curve = pp.evaluation.success_rate_curve(shown, deposits)
            assert curve.attrs["rows"] == "turning points" and len(curve) < len(exact["curve"]) / 5
            # its rows are rows of the full curve, with the same area under them
            merged = curve.merge(exact["curve"], on="threshold", suffixes=("", "_full"))
            assert len(merged) == len(curve)
            np.testing.assert_array_equal(merged["area_fraction"], merged["area_fraction_full"])
            np.testing.assert_array_equal(merged["deposit_fraction"], merged["deposit_fraction_full"])
            assert curve.attrs["auc"] == pytest.approx(exact["curve"].attrs["auc"], abs=1e-12)
            pa = pp.evaluation.prediction_area(shown, deposits)
            for key in ("intersection_threshold", "intersection_rate", "normalized_density"):
                assert pa.attrs[key] == exact["pa"].attrs[key], key
            assert pp.evaluation.map_auc(shown, deposits) == pytest.approx(exact["auc"], abs=1e-12)
            assert pp.evaluation.evaluate_map(shown, deposits) == pytest.approx(exact["summary"], abs=1e-12)
            areas = pp.evaluation.targets(shown, area_fraction=0.15, uncertainty=spread, deposits=deposits)
            pd.testing.assert_frame_equal(areas.drop(columns="geometry"), exact["targets"].drop(columns="geometry"))


def test_windows_across_block_borders_equal_windows_cut_from_the_whole_array(case):
    deposits, stack = case
    lazy = pp.compute.chunked(stack, ODD)
    # centres on block borders (22|23, 45|46), at the grid's edges and corners (edge cells repeated), in the NaN corner
    rows = np.array([22, 23, 45, 46, 0, 69, 0, 69, 4, 35])
    cols = np.array([22, 23, 46, 45, 0, 89, 89, 0, 6, 68])
    points = pp.sampling.Points(rows, cols, np.zeros(len(rows), np.int64))
    for stats in (None, pp.sampling.fit_normalization(stack)):
        whole = pp.sampling.windows(stack, points, 11, normalization=stats)
        blocks = pp.sampling.windows(lazy, points, 11, normalization=stats)
        np.testing.assert_array_equal(blocks.x, whole.x)
        np.testing.assert_array_equal(blocks.bounds, whole.bounds)
    allowed = np.zeros(GRID.shape, bool)
    allowed[30:, 40:] = True
    lazy_stats, stats = pp.sampling.fit_normalization(lazy, allowed), pp.sampling.fit_normalization(stack, allowed)
    assert lazy_stats["band"] == stats["band"]
    np.testing.assert_allclose(lazy_stats["mean"], stats["mean"], rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(lazy_stats["std"], stats["std"], rtol=1e-12)


def test_normalisation_reads_indicator_bands_as_minus_and_plus_one():
    """A 0/1 band (a rare class, a binary raster) becomes -1/+1 whatever its share; the other bands are standardised
    as numpy does, on the allowed valid cells, and a lazy stack's statistics are the same."""
    rng = np.random.default_rng(4)
    values = np.stack([rng.normal(5.0, 2.0, GRID.shape), (rng.random(GRID.shape) < 0.003).astype(float),
                       rng.integers(0, 3, GRID.shape).astype(float)]).astype(np.float32)
    values[:, :3, :3] = np.nan
    stack = GRID.wrap(values, bands=["cu", "rare_class", "codes"])
    allowed = np.zeros(GRID.shape, bool)
    allowed[:, 20:] = True
    use = allowed & np.isfinite(values).all(axis=0)
    for fitted in (pp.sampling.fit_normalization(stack, allowed),
                   pp.sampling.fit_normalization(pp.compute.chunked(stack, ODD), allowed)):
        assert fitted["mean"][1] == 0.5 and fitted["std"][1] == 0.5      # z-scored its 1s would reach ~18
        share = values[1][use].astype(np.float64).mean()
        np.testing.assert_allclose(fitted["reference"], [0.0, 2 * share - 1, 0.0], atol=1e-12)   # the band means
        for band in (0, 2):
            np.testing.assert_allclose(fitted["mean"][band], values[band][use].astype(np.float64).mean(), rtol=1e-9)
            np.testing.assert_allclose(fitted["std"][band], values[band][use].astype(np.float64).std(), rtol=1e-9)
    windows = pp.sampling.windows(stack, pp.sampling.Points(np.array([30]), np.array([40]), np.zeros(1, np.int64)), 5,
                                  normalization=pp.sampling.fit_normalization(stack))
    np.testing.assert_array_equal(windows.x[0, 1], 2 * values[1, 28:33, 38:43] - 1)
