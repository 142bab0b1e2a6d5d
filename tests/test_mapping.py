import json
import shutil
import subprocess
import warnings
import xml.etree.ElementTree as ElementTree

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import roc_auc_score
from torch import nn

import prospect as pp
from prospect.errors import CRSError, InputError
from prospect.evaluation import deposit_coverage, map_auc, prediction_area, success_rate_curve, targets
from prospect.mapping import predict_map

GRID = pp.Grid.from_bounds((500000, 4000000, 500000 + 60 * 10, 4000000 + 48 * 10), resolution=10, crs="EPSG:32650")


class BandScore(nn.Module):
    """Scores a window by the mean of its first band: ore logit = mean, no-ore logit = 0."""

    config = {"in_channels": 2}

    def forward(self, x):
        mean = x[:, 0].mean(dim=(1, 2))
        return torch.stack([torch.zeros_like(mean), mean], dim=1)


def _stack(seed=0):
    rng = np.random.default_rng(seed)
    return GRID.wrap(rng.normal(size=(2, *GRID.shape)).astype(np.float32), bands=["a", "b"])


def _reference(stack, size, stride):
    """Each pixel: the mean over the windows covering it of sigmoid(mean of band a) — by brute force."""
    from prospect.tiles import _positions

    values = stack.values[0]
    rows, cols = values.shape
    total, count = np.zeros(values.shape), np.zeros(values.shape)
    for r in _positions(rows, size, stride, "shift"):
        for c in _positions(cols, size, stride, "shift"):
            p = 1 / (1 + np.exp(-values[r:r + size, c:c + size].mean()))
            total[r:r + size, c:c + size] += p
            count[r:r + size, c:c + size] += 1
    return total / count


def test_map_blends_windows_and_keeps_georeference():
    stack = _stack()
    result = predict_map(BandScore(), stack, size=16, stride=8, batch_size=7, device="cpu")
    assert result.dims == ("y", "x") and pp.Grid.from_dataarray(result) == GRID
    np.testing.assert_allclose(result.values, _reference(stack, 16, 8), rtol=1e-5)
    # 5 rows of windows; 6 columns plus one shifted inward to reach the edge
    assert result.attrs["kind"] == "probability" and result.attrs["windows"] == 5 * 7


def test_nan_stays_nan_and_normalization_is_applied():
    stack = _stack()
    stack.values[1, 5:9, 10:20] = np.nan
    result = predict_map(BandScore(), stack, size=16, stride=16, device="cpu")
    assert np.isnan(result.values[5:9, 10:20]).all() and np.isfinite(result.values).sum() == 48 * 60 - 40
    stats = {"band": ["a", "b"], "mean": [1.0, 0.0], "std": [2.0, 1.0]}
    shifted = predict_map(BandScore(), stack, size=16, stride=16, device="cpu", normalization=stats)
    window = (stack.values[0, :16, :16] - 1.0) / 2.0
    assert shifted.values[0, 0] == pytest.approx(1 / (1 + np.exp(-window.mean())), rel=1e-5)
    with pytest.raises(InputError, match=r"normalization is for bands \['x', 'y'\], the stack has \['a', 'b'\]"):
        predict_map(BandScore(), stack, size=16, stride=16, normalization={**stats, "band": ["x", "y"]})


def test_gaussian_blend_and_mfaf_uncertainty():
    torch.manual_seed(0)
    model = pp.models.build("mfaf", 2, dilations=(1, 2), backbone="shufflenet_v2")
    prob, spread = predict_map(model, _stack(), size=32, stride=16, blend="gaussian", uncertainty=True,
                               device="cpu")
    assert prob.shape == spread.shape == GRID.shape
    assert np.all((prob.values >= 0) & (prob.values <= 1)) and np.all(spread.values >= 0)
    assert spread.attrs["kind"] == "uncertainty"
    with pytest.raises(InputError, match=r"uncertainty=True needs an MFAF model"):
        predict_map(BandScore(), _stack(), size=16, stride=16, uncertainty=True)


def test_bad_input():
    stack = _stack()
    three = pp.models.build("resnet18", 3)
    with pytest.raises(InputError, match=r"the model expects 3 bands but the stack has 2 \(\['a', 'b'\]\)"):
        predict_map(three, stack, size=16, stride=16)
    with pytest.raises(InputError, match=r"stride=20 must be a whole number from 1 to size=16"):
        predict_map(BandScore(), stack, size=16, stride=20)
    with pytest.raises(CRSError, match=r"the array has no CRS"):
        predict_map(BandScore(), stack.drop_vars("spatial_ref"), size=16, stride=16)
    with pytest.raises(InputError, match=r"no pixel that is valid in every band"):
        predict_map(BandScore(), stack * np.nan, size=16, stride=16)


def _points(rows_cols, grid=GRID):
    return gpd.GeoDataFrame(geometry=gpd.points_from_xy(grid.x[[c for _, c in rows_cols]],
                                                        grid.y[[r for r, _ in rows_cols]]), crs=grid.crs)


def test_planted_perfect_and_random_maps():
    rng = np.random.default_rng(0)
    cells = [tuple(x) for x in rng.integers(0, [48, 60], (12, 2))]
    deposits = _points(cells)
    gy, gx = np.mgrid[0:48, 0:60]
    distance = np.min([np.hypot(gy - r, gx - c) for r, c in cells], axis=0)
    perfect = GRID.wrap(np.exp(-distance**2 / 8).astype(np.float32))
    assert map_auc(perfect, deposits) == pytest.approx(1.0)
    coverage = deposit_coverage(perfect, deposits, area_fraction=0.05)
    assert coverage["coverage"] == 1.0 and coverage["area_fraction"] <= 0.06  # cells tied at the cut count too
    curve = success_rate_curve(perfect, deposits)
    assert curve.attrs["auc"] > 0.98
    noise = GRID.wrap(rng.random(GRID.shape).astype(np.float32))
    many = _points([tuple(x) for x in rng.integers(0, [48, 60], (400, 2))])
    assert abs(map_auc(noise, many) - 0.5) < 0.06
    random_curve = success_rate_curve(noise, many)
    assert abs(random_curve.attrs["auc"] - 0.5) < 0.06
    for c in (curve, random_curve):
        assert c.iloc[0][["area_fraction", "deposit_fraction"]].tolist() == [0.0, 0.0]
        assert c.iloc[-1][["area_fraction", "deposit_fraction"]].tolist() == [1.0, 1.0]
        assert (np.diff(c["area_fraction"]) > 0).all() and (np.diff(c["deposit_fraction"]) >= 0).all()


def test_map_auc_equals_sklearn_and_nodata_is_not_area():
    rng = np.random.default_rng(1)
    values = rng.random(GRID.shape).astype(np.float32)
    values[:, :30] = np.nan  # half the map is nodata
    cells = [(r, c) for r, c in rng.integers(0, [48, 60], (30, 2)) if c >= 30]
    prob, deposits = GRID.wrap(values), _points(cells)
    positive = np.zeros(GRID.shape, bool)
    positive[tuple(np.array(cells).T)] = True
    valid = np.isfinite(values)
    assert map_auc(prob, deposits) == pytest.approx(roc_auc_score(positive[valid], values[valid]))
    coverage = deposit_coverage(prob, deposits, threshold=0.5)
    assert coverage["area_fraction"] == pytest.approx((values[valid] >= 0.5).mean())  # over valid cells only


def test_deposits_outside_are_counted_and_reported():
    prob = GRID.wrap(np.random.default_rng(2).random(GRID.shape).astype(np.float32))
    deposits = _points([(3, 3), (20, 20)])
    far = gpd.GeoDataFrame(geometry=gpd.points_from_xy([0.0], [0.0]), crs=GRID.crs)
    import pandas as pd

    with pytest.warns(UserWarning, match=r"1 deposits lie outside the map and 0 on nodata cells; 2 of 3"):
        curve = success_rate_curve(prob, pd.concat([deposits, far]))
    assert curve.attrs["outside"] == 1 and curve.attrs["used"] == 2


def test_prediction_area_intersection():
    gy, gx = np.mgrid[0:48, 0:60]
    prob = GRID.wrap((gx / 59.0).astype(np.float32))  # probability rises west to east
    deposits = _points([(10, 59), (20, 55), (30, 50), (40, 5)])
    table = prediction_area(prob, deposits)
    rate, threshold = table.attrs["intersection_rate"], table.attrs["intersection_threshold"]
    occupied = (prob.values >= threshold).mean()
    assert rate == pytest.approx(0.75) and rate >= 1 - occupied
    assert table.attrs["normalized_density"] == pytest.approx(3.0)


def test_prediction_area_crossing_lies_on_both_curves():
    """The prediction rate jumps from 50 % to 100 % where the remaining area is 50 %: the curves meet at 50 %."""
    prob = GRID.wrap(np.broadcast_to(np.arange(60, dtype=np.float32) / 59, GRID.shape).copy())
    table = prediction_area(prob, _points([(10, 59), (20, 30)]))
    threshold = table.attrs["intersection_threshold"]
    assert threshold == pytest.approx(30 / 59)
    assert table.attrs["intersection_rate"] == pytest.approx(0.5)              # not the 100 % top of the jump
    assert table.attrs["intersection_rate"] == pytest.approx(1 - (prob.values >= threshold).mean())
    assert table.attrs["normalized_density"] == pytest.approx(1.0)


def test_targets_are_ranked_polygons(tmp_path):
    values = np.zeros(GRID.shape, np.float32)
    values[5:10, 5:15] = 0.8   # 50 cells
    values[30:34, 40:44] = 0.95  # 16 cells
    values[40, 2] = 0.9          # 1 cell, below min_area
    found = targets(GRID.wrap(values), threshold=0.5, min_area=200.0, deposits=_points([(6, 6), (7, 8)]))
    assert found["rank"].tolist() == [1, 2]
    assert found["max_probability"].tolist() == pytest.approx([0.95, 0.8])
    assert found["area"].tolist() == [1600.0, 5000.0]
    assert found.geometry.area.tolist() == pytest.approx([1600.0, 5000.0])
    assert found["n_deposits"].tolist() == [0, 2]
    assert found["area_km2"].tolist() == pytest.approx([0.0016, 0.005])
    # centres of the 4 x 4 block (rows 30-33, cols 40-43) and the 5 x 10 block (rows 5-9, cols 5-14), 10 m cells
    np.testing.assert_allclose(found[["centroid_x", "centroid_y"]].to_numpy(),
                               [[500000 + 42 * 10, 4000480 - 32 * 10], [500000 + 10 * 10, 4000480 - 7.5 * 10]])
    spread = np.broadcast_to(np.arange(60, dtype=np.float32) / 100, GRID.shape).copy()   # rises west to east
    found = targets(GRID.wrap(values), threshold=0.5, min_area=200.0, uncertainty=GRID.wrap(spread))
    assert found["mean_uncertainty"].tolist() == pytest.approx([0.415, 0.095])          # mean column / 100
    other = pp.Grid.from_bounds((0, 0, 600, 480), resolution=10, crs="EPSG:32650")
    with pytest.raises(pp.errors.GridMismatchError, match=r"uncertainty is on .*, the map on"):
        targets(GRID.wrap(values), threshold=0.5, uncertainty=other.wrap(spread))
    found.to_file(tmp_path / "targets.gpkg")
    assert len(gpd.read_file(tmp_path / "targets.gpkg")) == 2
    top = targets(GRID.wrap(values), area_fraction=16 / values.size)
    assert len(top) == 1 and top["max_probability"].iloc[0] == pytest.approx(0.95)


def test_consensus_counts_the_maps_whose_top_holds_a_cell_and_ranks_shared_targets_first():
    rng = np.random.default_rng(0)
    maps = [rng.random(GRID.shape).astype(np.float32) for _ in range(3)]
    maps[1][0, :5] = np.nan
    agreement = pp.evaluation.consensus([GRID.wrap(m) for m in maps], area_fraction=0.1, labels=["a", "b", "c"])
    # brute force: each map's top 10 % of its own valid cells (ceil(0.1 n) cells), counted per cell
    expected = np.zeros(GRID.shape)
    for m in maps:
        valid = np.isfinite(m)
        cut = np.sort(m[valid])[::-1][int(np.ceil(0.1 * valid.sum())) - 1]
        expected += valid & (m >= cut)
    expected[~np.isfinite(maps[1])] = np.nan
    np.testing.assert_array_equal(agreement.to_numpy(), expected)
    assert agreement.attrs["models"] == ["a", "b", "c"] and np.nanmax(agreement.to_numpy()) == 3
    # lazy maps (blocks of 17 cells): each threshold and the count worked block by block, the same cells
    pytest.importorskip("dask")
    lazy = pp.evaluation.consensus([pp.compute.chunked(GRID.wrap(m), 17) for m in maps], area_fraction=0.1)
    assert pp.compute.is_lazy(lazy)
    np.testing.assert_array_equal(lazy.to_numpy(), expected)
    found = targets(GRID.wrap(maps[0]), area_fraction=0.1, agreement=lazy)
    pd.testing.assert_frame_equal(found.drop(columns="geometry"),
                                  targets(GRID.wrap(maps[0]), area_fraction=0.1, agreement=agreement)
                                  .drop(columns="geometry"))
    # a target all three share outranks a higher one that a single model proposes
    values = np.zeros(GRID.shape, np.float32)
    values[5:10, 5:15] = 0.8
    values[30:34, 40:44] = 0.95
    shared = np.zeros(GRID.shape, np.float32)
    shared[5:10, 5:15] = 3
    shared[5:8, 5:15] = 1       # 30 of the 50 cells agreed on by 1 model, 20 by 3: the lower median is 1
    shared[30:34, 40:44] = 2
    found = targets(GRID.wrap(values), threshold=0.5, agreement=GRID.wrap(shared))
    assert found["models_agreeing"].tolist() == [2, 1]
    assert found["max_probability"].tolist() == pytest.approx([0.95, 0.8])
    shared[5:8, 5:15] = 3       # now all 50 cells by 3 models: the lower 0.8 target outranks the 0.95 one
    found = targets(GRID.wrap(values), threshold=0.5, agreement=GRID.wrap(shared))
    assert found["models_agreeing"].tolist() == [3, 2]
    assert found["max_probability"].tolist() == pytest.approx([0.8, 0.95])
    assert targets(GRID.wrap(values), threshold=0.5)["max_probability"].tolist() == pytest.approx([0.95, 0.8])
    other = pp.Grid.from_bounds((0, 0, 600, 480), resolution=10, crs="EPSG:32650")
    with pytest.raises(pp.errors.GridMismatchError, match=r"map 2 is on .*, map 1 on"):
        pp.evaluation.consensus([GRID.wrap(maps[0]), other.wrap(maps[1])])


def test_probability_geotiff_has_a_qgis_style_and_right_extent(tmp_path):
    prob = predict_map(BandScore(), _stack(), size=16, stride=16, device="cpu")
    path = pp.io.write_geotiff(prob, tmp_path / "prospectivity.tif")
    style = ElementTree.parse(tmp_path / "prospectivity.qml").getroot()
    renderer = style.find("pipe/rasterrenderer")
    assert renderer.get("type") == "singlebandpseudocolor"
    assert len(renderer.findall("rastershader/colorrampshader/item")) == 11
    if shutil.which("gdalinfo"):
        info = json.loads(subprocess.run(["gdalinfo", "-json", str(path)], capture_output=True, text=True,
                                         check=True).stdout)
        assert info["coordinateSystem"]["wkt"].endswith('ID["EPSG",32650]]')
        assert info["cornerCoordinates"]["upperLeft"] == [500000.0, 4000480.0]
        assert info["cornerCoordinates"]["lowerRight"] == [500600.0, 4000000.0]
        assert info["bands"][0]["noDataValue"] == -9999.0


def test_evaluate_map_summary():
    from prospect.evaluation import evaluate_map

    gy, gx = np.mgrid[0:48, 0:60]
    prob = GRID.wrap((gx / 59.0).astype(np.float32))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        summary = evaluate_map(prob, _points([(10, 59), (20, 55)]), area_fraction=0.1)
    assert summary["coverage"] == 1.0 and summary["map_auc"] > 0.95 and summary["used"] == 2


def test_centre_windows_skip_only_lattice_cells_no_valid_cell_uses():
    # a stack with a masked quarter: scoring every lattice centre (the plain algorithm, by hand) and scoring only
    # those within stride - 1 cells of a valid cell give the same map on every valid cell
    from scipy.interpolate import RegularGridInterpolator

    grid = pp.Grid.from_bounds((0, 0, 3100, 2900), shape=(29, 31), crs="EPSG:32649")
    values = np.random.default_rng(0).normal(size=(2, 29, 31)).astype(np.float32)
    values[:, :15, :16] = np.nan
    stack = grid.wrap(values, bands=["a", "b"])
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 3 * 3, 2)).eval()
    stats = pp.sampling.fit_normalization(stack)
    got = pp.mapping.predict_centres(model, stack, size=5, stride=3, normalization=stats, device="cpu")
    source = pp.sampling.padded(stack, 5, stats)
    rows, cols = np.unique(np.r_[np.arange(0, 29, 3), 28]), np.unique(np.r_[np.arange(0, 31, 3), 30])
    with torch.no_grad():
        lattice = np.array([[torch.softmax(model(torch.from_numpy(source[None, :, r:r + 5, c:c + 5])), -1)[0, 1].item()
                             for c in cols] for r in rows])
    rr, cc = np.meshgrid(np.arange(29), np.arange(31), indexing="ij")
    expected = RegularGridInterpolator((rows, cols), lattice)(np.column_stack([rr.ravel(), cc.ravel()])).reshape(29, 31)
    valid = np.isfinite(values).all(axis=0)
    np.testing.assert_allclose(got.to_numpy()[valid], expected[valid], rtol=1e-5, atol=1e-6)
    assert np.isnan(got.to_numpy()[~valid]).all() and got.attrs["windows"] < len(rows) * len(cols)


def test_integrated_gradients_of_a_linear_score_are_its_terms_and_a_network_is_complete():
    # BandScore's log-odds is the mean of band a over the window: integrated gradients from the all-zero window
    # give band a exactly that mean (standardised) and band b nothing
    stack = _stack()
    stats = pp.sampling.fit_normalization(stack)
    shares = pp.mapping.integrated_gradients(BandScore(), stack, size=3, normalization=stats, steps=4, device="cpu")
    source = pp.sampling.padded(stack, 3, stats)
    by_hand = np.array([[source[0, r:r + 3, c:c + 3].mean() for c in range(GRID.shape[1])]
                        for r in range(GRID.shape[0])])
    np.testing.assert_allclose(shares.sel(band="a").to_numpy(), by_hand, atol=1e-5)
    np.testing.assert_allclose(shares.sel(band="b").to_numpy(), 0, atol=1e-7)
    assert shares.attrs["expected"] == 0 and shares.attrs["unit"] == "log-odds"
    # the window network: the shares add up to the log-odds less the all-mean window's within 1 %
    torch.manual_seed(0)
    net = pp.models.build("window_net", in_channels=2).eval()
    got = pp.mapping.integrated_gradients(net, stack, size=9, stride=4, normalization=stats, steps=64, device="cpu")
    assert got.attrs["completeness"] < 0.01
    prob = pp.mapping.predict_centres(net, stack, size=9, stride=1, normalization=stats, device="cpu").to_numpy()
    r, c = 8, 12                         # a lattice centre: its shares are its own, not interpolated
    logit = np.log(prob[r, c]) - np.log1p(-prob[r, c])
    np.testing.assert_allclose(got.to_numpy()[:, r, c].sum() + got.attrs["expected"], logit, rtol=0.01, atol=1e-3)
