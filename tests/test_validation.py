"""Held-out-deposit evaluation: spatial folds, training samples, baselines, deposit ranks, cross-validation."""

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from scipy.stats import rankdata
from shapely.geometry import Point
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

import prospect as pp
from prospect.errors import InputError

CRS = "EPSG:32649"
# 80 × 80 cells of 200 m: a 16 km square, on which 300 m halos of 24 deposits cover 2.7 % of the area (a
# deposit ties with every halo cell, so a perfect halo map scores about 1 - 0.027 / 2 ≈ 0.987)
CELL = 200
GRID = pp.Grid.from_bounds((400000, 2400000, 400000 + 80 * CELL, 2400000 + 80 * CELL), shape=(80, 80), crs=CRS)


def _deposits(n=24, seed=3, spacing=1800.0):
    """Deposits at random, at least ``spacing`` apart, away from the edges."""
    rng = np.random.default_rng(seed)
    points = []
    while len(points) < n:
        x, y = rng.uniform(401000, 415000), rng.uniform(2401000, 2415000)
        if all(np.hypot(x - a, y - b) >= spacing for a, b in points):
            points.append((x, y))
    return gpd.GeoDataFrame({"name": [f"d{i}" for i in range(n)]},
                            geometry=[Point(x, y) for x, y in points], crs=CRS)


def _stack(deposits, signal=True, seed=0, bands=3):
    """Noise bands, and first a band that is 1 within 300 m of a deposit (the planted signal)."""
    rng = np.random.default_rng(seed)
    values = rng.normal(size=(bands, *GRID.shape)).astype(np.float32)
    if signal:
        values[0] = pp.layers.deposit_layer(deposits, GRID, radius=300).to_numpy()[0]
    return GRID.wrap(values, bands=[f"b{i}" for i in range(bands)])


# ---------------------------------------------------------------------------------------------- folds
def test_folds_deal_deposits_to_every_fold_and_cover_the_grid():
    deposits = _deposits()
    folds = pp.folds.spatial_folds(GRID, deposits, k=4, block_size=2000, seed=1)
    counts = folds.counts()
    assert counts["deposits"].sum() == len(deposits) and (counts["deposits"] >= 5).all()  # 24 over 4: 6 ± 1
    assert counts["cells"].sum() == 80 * 80 and set(np.unique(folds.fold)) == {0, 1, 2, 3}
    # whole 10 × 10-cell blocks go to one fold
    blocks = folds.fold.reshape(8, 10, 8, 10)
    assert (blocks == blocks[:, :1, :, :1]).all()
    # the fold of each deposit is the fold of its cell
    row, col, _ = pp.layers.deposit_pixels(deposits, GRID)
    np.testing.assert_array_equal(folds.deposit_fold, folds.fold[row, col])
    same = pp.folds.spatial_folds(GRID, deposits, k=4, block_size=2000, seed=1)
    np.testing.assert_array_equal(same.fold, folds.fold)


def test_no_training_window_touches_a_held_out_block_or_its_buffer():
    deposits = _deposits()
    folds = pp.folds.spatial_folds(GRID, deposits, k=4, block_size=2000, buffer=500, seed=0)
    margin = 3  # a 7 × 7 window
    for fold in range(4):
        allowed = folds.training_mask(fold, margin=margin)
        held = folds.fold == fold
        # brute force: distance from every cell centre to the nearest held-out cell centre, in metres
        hr, hc = np.nonzero(held)
        rr, cc = np.mgrid[0:80, 0:80]
        distance = np.sqrt(((rr.ravel()[:, None] - hr[None]) ** 2 + (cc.ravel()[:, None] - hc[None]) ** 2)
                           .min(axis=1)).reshape(80, 80) * CELL
        forbidden = distance <= 500
        for r, c in zip(*np.nonzero(allowed), strict=True):
            window = forbidden[max(r - margin, 0):r + margin + 1, max(c - margin, 0):c + margin + 1]
            assert not window.any()
        # and nothing more is forbidden than needed: a cell whose window is clear is allowed
        clear = ~np.array([[forbidden[max(r - margin, 0):r + margin + 1, max(c - margin, 0):c + margin + 1].any()
                            for c in range(80)] for r in range(80)])
        np.testing.assert_array_equal(allowed, clear)
        # training samples drawn from the mask never come from the held-out fold
        points = pp.sampling.sample_points(_stack(deposits), deposits.iloc[folds.deposit_index[~folds.held_out(fold)]],
                                           allowed=allowed, positive_radius=300, seed=fold)
        assert not held[points.row, points.col].any() and not forbidden[points.row, points.col].any()


def _distances(deposits):
    xy = np.column_stack([deposits.geometry.x, deposits.geometry.y])
    return np.hypot(*(xy[:, None] - xy[None]).transpose(2, 0, 1))


def test_deposits_closer_than_the_link_share_a_fold():
    # two tight clusters of 4 (300 m apart) beside 16 scattered deposits, on 2 km blocks
    scattered = _deposits(n=16, seed=5, spacing=2500.0)
    cluster = [Point(x + dx, y) for x, y in ((405500, 2404100), (411900, 2411900)) for dx in (0, 300, 600, 900)]
    deposits = pd.concat([scattered, gpd.GeoDataFrame(geometry=cluster, crs=CRS)], ignore_index=True)
    distance = _distances(deposits)
    nearest = np.sort(distance, axis=1)[:, 1]
    folds = pp.folds.spatial_folds(GRID, deposits, k=4, block_size=2000, seed=0)
    # the default: the (lower) median nearest-neighbour distance, found by brute force; every pair it joins
    # shares a fold
    assert folds.link == pytest.approx(np.sort(nearest)[(len(nearest) - 1) // 2]) and "median" in folds.why
    order = np.argsort(folds.deposit_index)
    fold_of = folds.deposit_fold[order]
    apart = fold_of[:, None] != fold_of[None]
    assert distance[apart].min() > folds.link
    assert (fold_of == fold_of[np.argsort(distance, axis=1)[:, 1]]).mean() >= 0.5
    # the two clusters each lie in one fold although they straddle blocks
    assert len(set(fold_of[16:20])) == 1 and len(set(fold_of[20:24])) == 1
    # the blocks of a fold are still whole 10 x 10-cell blocks
    blocks = folds.fold.reshape(8, 10, 8, 10)
    assert (blocks == blocks[:, :1, :, :1]).all()
    # link = 0 joins nothing: the clusters' blocks are dealt apart
    alone = pp.folds.spatial_folds(GRID, deposits, k=4, block_size=2000, seed=0, link=0)
    assert alone.link == 0 and alone.why == "as given"
    assert len(set(alone.deposit_fold[np.argsort(alone.deposit_index)][16:20])) > 1
    # a link given is used as given
    given = pp.folds.spatial_folds(GRID, deposits, k=4, block_size=2000, seed=0, link=1000)
    fold_of = given.deposit_fold[np.argsort(given.deposit_index)]
    assert given.link == 1000 and distance[fold_of[:, None] != fold_of[None]].min() > 1000


def test_the_default_link_shortens_until_every_fold_can_hold_a_group():
    # three pairs 300 m apart across block edges, far apart: the median link leaves 3 groups, too few for 4 folds
    pairs = [Point(x + dx, y) for x, y in ((401900, 2401100), (407900, 2408100), (413900, 2402100)) for dx in (0, 300)]
    deposits = gpd.GeoDataFrame(geometry=pairs, crs=CRS)
    folds = pp.folds.spatial_folds(GRID, deposits, k=4, block_size=2000, seed=0)
    assert folds.link == 0 and "fewer than k=4 groups" in folds.why
    assert pp.folds.spatial_folds(GRID, deposits, k=3, block_size=2000, seed=0).link == pytest.approx(300)
    with pytest.raises(InputError, match=r"deposits within link=500 of one another share a fold, which leaves 3 "
                                         r"groups for 4 folds; use a smaller link"):
        pp.folds.spatial_folds(GRID, deposits, k=4, block_size=2000, link=500)
    with pytest.raises(InputError, match=r"link=-1 must be a distance ≥ 0"):
        pp.folds.spatial_folds(GRID, deposits, k=2, link=-1)


def test_folds_refuse_what_cannot_be_judged():
    deposits = _deposits(n=6)
    with pytest.raises(InputError, match=r"deposits: 6 of 6 lie on the grid, fewer than k=8 folds"):
        pp.folds.spatial_folds(GRID, deposits, k=8, block_size=500)
    clustered = gpd.GeoDataFrame(geometry=[Point(400100 + 50 * i, 2400100) for i in range(6)], crs=CRS)
    with pytest.raises(InputError, match=r"k=3: the deposits fall in only 1 blocks of block_size=4000, so a fold "
                                         r"would hold none"):
        pp.folds.spatial_folds(GRID, clustered, k=3, block_size=4000)
    with pytest.raises(InputError, match=r"k=1 must be a whole number of folds ≥ 2"):
        pp.folds.spatial_folds(GRID, deposits, k=1)
    with pytest.raises(InputError, match=r"block_size=-5 must be a positive distance"):
        pp.folds.spatial_folds(GRID, deposits, k=2, block_size=-5)



def test_the_folds_inside_a_fold_are_the_others_within_its_training_area():
    deposits = _deposits()
    folds = pp.folds.spatial_folds(GRID, deposits, k=4, block_size=2000, buffer=300, seed=1)
    within, area = folds.inside(1)
    renumbered = {0: 0, 2: 1, 3: 2}
    assert within.k == 3
    kept = folds.deposit_fold != 1
    np.testing.assert_array_equal(within.deposit_index, folds.deposit_index[kept])
    assert within.deposit_fold.tolist() == [renumbered[f] for f in folds.deposit_fold[kept]]
    assert (within.fold[folds.fold == 1] == -1).all()
    outside = folds.fold != 1
    assert within.fold[outside].tolist() == [renumbered[f] for f in folds.fold[outside]]
    assert within.counts()["cells"].sum() == outside.sum()
    # the area: no cell of fold 1 nor within the buffer (300 m) of it, by brute force over cell centres
    rows, cols = np.nonzero(folds.fold == 1)
    held = np.column_stack([GRID.x[cols], GRID.y[rows]])
    yy, xx = np.meshgrid(GRID.y, GRID.x, indexing="ij")
    nearest = np.full(GRID.shape, np.inf)
    for x, y in held:
        nearest = np.minimum(nearest, np.hypot(xx - x, yy - y))
    np.testing.assert_array_equal(area, nearest > 300)
    with pytest.raises(InputError, match=r"need k >= 3 .*k=2"):
        pp.folds.spatial_folds(GRID, deposits, k=2, block_size=2000).inside(0)


# ---------------------------------------------------------------------------------------------- samples
def test_sample_points_follow_the_positive_rule_and_ratio():
    deposits = _deposits()
    stack = _stack(deposits)
    points = pp.sampling.sample_points(stack, deposits, positive_radius=300, negative_ratio=2,
                                       negative_distance=800, seed=4)
    xy = np.column_stack([GRID.x[points.col], GRID.y[points.row]])
    sites = np.column_stack([deposits.geometry.x, deposits.geometry.y])
    nearest = np.sqrt(((xy[:, None] - sites[None]) ** 2).sum(-1)).min(axis=1)
    assert (nearest[points.y == 1] <= 300).all() and (nearest[points.y == 0] > 800).all()
    # every cell within 300 m is a positive, and there are twice as many negatives
    near = pp.layers.deposit_layer(deposits, GRID, radius=300).to_numpy()[0] > 0
    assert points.counts() == {"positive": int(near.sum()), "negative": 2 * int(near.sum())}
    np.testing.assert_array_equal(pp.sampling.pixel_values(stack, points)[:, 0], points.y)
    capped = pp.sampling.sample_points(stack, deposits, positive_radius=300, max_positives=50, seed=4)
    assert capped.counts() == {"positive": 50, "negative": 250}


def test_windows_are_centred_on_their_cell():
    deposits = _deposits()
    stack = _stack(deposits)
    points = pp.sampling.Points(np.array([40, 0, 79]), np.array([30, 5, 79]), np.array([1, 0, 0]))
    tiles = pp.sampling.windows(stack, points, size=5)
    values = stack.to_numpy()
    np.testing.assert_array_equal(tiles.x[0], values[:, 38:43, 28:33])
    assert tiles.x[0, 1, 2, 2] == values[1, 40, 30]
    # at the upper edge the window repeats the first row
    np.testing.assert_array_equal(tiles.x[1, :, 0], values[:, 0, 3:8])
    np.testing.assert_array_equal(tiles.x[1, :, 2], values[:, 0, 3:8])
    assert list(tiles.y) == [1, 0, 0] and tiles.row[0] == 38 and tiles.col[0] == 28


# ---------------------------------------------------------------------------------------------- baselines
@pytest.mark.parametrize("name", ["random_forest", "gradient_boosting", "logistic_regression"])
def test_baseline_probabilities_equal_scikit_learn(name):
    deposits = _deposits()
    stack = _stack(deposits)
    points = pp.sampling.sample_points(stack, deposits, positive_radius=300, seed=0)
    x = pp.sampling.pixel_values(stack, points)
    model = pp.baselines.build_baseline(name, seed=7).fit(x, points.y)
    reference = {"random_forest": RandomForestClassifier(n_estimators=300, min_samples_leaf=2, max_samples=0.5,
                                                         class_weight="balanced", random_state=7),
                 "gradient_boosting": HistGradientBoostingClassifier(class_weight="balanced", random_state=7),
                 "logistic_regression": LogisticRegression(class_weight="balanced", max_iter=2000, random_state=7)
                 }[name]
    if name == "logistic_regression":
        mean, std = x.mean(axis=0), x.std(axis=0)
        reference.fit((x - mean) / std, points.y)
        expected = reference.predict_proba((stack.to_numpy().reshape(3, -1).T - mean) / std)[:, 1]
    else:
        reference.fit(x, points.y)
        expected = reference.predict_proba(stack.to_numpy().reshape(3, -1).T)[:, 1]
    prob = pp.baselines.predict_stack(model, stack)
    np.testing.assert_allclose(prob.to_numpy().ravel(), expected, rtol=1e-5, atol=1e-6)
    assert prob.attrs["kind"] == "probability" and pp.Grid.from_dataarray(prob) == GRID


def test_the_forest_gives_the_same_probabilities_on_every_run():
    # scikit-learn's forest with n_jobs=-1 adds its trees in the order threads finish (last bits vary by run);
    # the package's sums each row's trees in order on every thread: scikit-learn's n_jobs=1 result, bit for bit
    rng = np.random.default_rng(0)
    x = rng.normal(size=(9000, 4)).astype(np.float32)
    y = (x[:, 0] + rng.normal(size=len(x)) > 1).astype(int)
    model = pp.baselines.build_baseline("random_forest", seed=3, n_estimators=60).fit(x, y)
    serial = RandomForestClassifier(**{**model.get_params(), "n_jobs": 1}).fit(x, y)
    first = model.predict_proba(x)
    np.testing.assert_array_equal(first, serial.predict_proba(x))
    np.testing.assert_array_equal(model.predict_proba(x), first)
    assert isinstance(model, RandomForestClassifier) and model.n_jobs == -1
    assert model.predict_proba(x[:0]).shape == (0, 2)


def test_baselines_refuse_unknown_names_and_options():
    with pytest.raises(InputError, match=r"unknown baseline 'svm'; valid: \['fuzzy_overlay', 'gradient_boosting', "
                                         r"'logistic_regression', 'random_forest', 'weights_of_evidence'\]"):
        pp.baselines.build_baseline("svm")
    with pytest.raises(InputError, match=r"random_forest: .*n_trees"):
        pp.baselines.build_baseline("random_forest", n_trees=5)


def test_permutation_importance_finds_the_signal_band():
    deposits = _deposits()
    stack = _stack(deposits)
    points = pp.sampling.sample_points(stack, deposits, positive_radius=300, seed=0)
    x = pp.sampling.pixel_values(stack, points)
    model = pp.baselines.build_baseline("logistic_regression").fit(x, points.y)
    table = pp.baselines.permutation_importance(model, x, points.y, ["b0", "b1", "b2"])
    assert table["band"].iloc[0] == "b0" and table["importance"].iloc[0] > 0.3
    assert table["importance"].iloc[1:].abs().max() < 0.05


# ---------------------------------------------------------------------------------------------- scores
def test_deposit_ranks_average_to_map_auc_and_give_the_searched_area():
    deposits = _deposits()
    rng = np.random.default_rng(0)
    prob = GRID.wrap(rng.random(GRID.shape).astype(np.float32))
    prob[:3] = np.nan
    ranks = pp.evaluation.deposit_ranks(prob, deposits)
    assert ranks["auc"].mean() == pytest.approx(pp.evaluation.map_auc(prob, deposits), abs=1e-12)
    # area above: brute force over valid cells
    cells = prob.to_numpy()[np.isfinite(prob.to_numpy())]
    expected = [(cells >= v).mean() for v in ranks["value"]]
    np.testing.assert_allclose(ranks["area_above"], expected)
    # against scikit-learn: one deposit against every cell holding none
    row, col, _ = pp.layers.deposit_pixels(deposits, GRID)
    holds = np.zeros(GRID.shape, bool)
    holds[row, col] = True
    valid = np.isfinite(prob.to_numpy())
    negatives = prob.to_numpy()[valid & ~holds]
    first = ranks.iloc[0]
    labels = np.r_[1, np.zeros(len(negatives))]
    assert first["auc"] == pytest.approx(roc_auc_score(labels, np.r_[first["value"], negatives]))


def test_heldout_summary_interval_and_capture():
    ranks = pd.DataFrame({"auc": np.linspace(0.5, 1.0, 20), "area_above": np.linspace(0.0, 0.5, 20)})
    summary = pp.evaluation.heldout_summary(ranks, seed=0)
    assert summary["auc"] == pytest.approx(0.75)
    assert summary["auc_low"] < 0.75 < summary["auc_high"]
    # the bootstrap interval is about ±1.96 standard errors of the mean
    half = 1.96 * np.std(ranks["auc"]) / np.sqrt(20)
    assert summary["auc_high"] - summary["auc_low"] == pytest.approx(2 * half, rel=0.15)
    assert summary["top_5"] == pytest.approx(2 / 20) and summary["top_10"] == pytest.approx(4 / 20)
    assert summary["top_20"] == pytest.approx(8 / 20) and summary["deposits"] == 20
    curve = pp.evaluation.heldout_rate_curve(ranks)
    assert curve.attrs["auc"] == pytest.approx(0.75)
    assert (np.diff(curve["deposit_fraction"]) >= 0).all() and curve["deposit_fraction"].iloc[-1] == 1



def test_paired_difference_pairs_deposits_and_matches_a_reference_bootstrap():
    from scipy.stats import bootstrap

    rng = np.random.default_rng(1)
    common = rng.uniform(0.4, 1.0, 30)                     # how hard each deposit is, shared by both models
    first = pd.DataFrame({"deposit": np.arange(30), "auc": np.clip(common + rng.normal(0.03, 0.02, 30), 0, 1)})
    second = pd.DataFrame({"deposit": np.arange(30)[::-1], "auc": common[::-1]})      # another order: paired by name
    seeds = pd.concat([first, first.assign(auc=first["auc"] - 0.01)])                # two seeds: each deposit's mean
    result = pp.evaluation.paired_difference(seeds, second, resamples=4000, seed=0)
    difference = first["auc"].to_numpy() - 0.005 - common
    assert result["difference"] == pytest.approx(difference.mean()) and result["deposits"] == 30
    reference = bootstrap((difference,), np.mean, method="percentile", n_resamples=4000, random_state=0)
    assert result["low"] == pytest.approx(reference.confidence_interval.low, abs=0.002)
    assert result["high"] == pytest.approx(reference.confidence_interval.high, abs=0.002)
    assert 0 < result["low"]            # paired, the shared difficulty cancels; the models' own intervals overlap
    own = [pp.evaluation.heldout_summary(t.assign(area_above=0.0)) for t in (first, second)]
    assert own[0]["auc_low"] < own[1]["auc_high"]
    shifted = pp.evaluation.paired_difference(second.assign(auc=second["auc"] + 0.02), second)
    assert shifted["difference"] == pytest.approx(0.02) and shifted["low"] == pytest.approx(0.02)
    assert shifted["high"] == pytest.approx(0.02)
    with pytest.raises(InputError, match=r"only the first ranks \[\], only the second \[29\]"):
        pp.evaluation.paired_difference(first[first["deposit"] < 29], second)


# ---------------------------------------------------------------------------------------------- cross-validation
def test_random_forest_ranks_held_out_deposits_of_a_planted_signal():
    deposits = _deposits()
    folds = pp.folds.spatial_folds(GRID, deposits, k=4, block_size=2000, seed=0)
    result = pp.validation.cross_validate(_stack(deposits), deposits, folds, "random_forest",
                                          positive_radius=300, seed=0)
    summary = result.summary()
    assert summary["auc"] > 0.95 and summary["deposits"] == len(deposits) and summary["folds"] == 4
    assert sorted(result.ranks["deposit"]) == list(range(len(deposits)))
    assert result.importance["band"].iloc[0] == "b0"
    # the fold rows agree with the ranks, and the map is the mean of the fold maps
    for fold, group in result.ranks.groupby("fold"):
        assert result.folds.loc[fold, "auc"] == pytest.approx(group["auc"].mean())
    assert result.mean.attrs["kind"] == "probability" and result.std.attrs["kind"] == "uncertainty"
    assert float(result.std.max()) > 0


def test_noise_bands_give_chance_held_out_auc():
    deposits = _deposits()
    folds = pp.folds.spatial_folds(GRID, deposits, k=4, block_size=2000, seed=0)
    aucs = [pp.validation.cross_validate(_stack(deposits, signal=False, seed=s), deposits, folds, name,
                                         positive_radius=300, importance=False, seed=s).summary()["auc"]
            for s in range(3) for name in ("random_forest", "logistic_regression")]
    assert abs(np.mean(aucs) - 0.5) < 0.1


def test_a_small_cnn_ranks_held_out_deposits_of_a_planted_signal():
    import torch
    from torch import nn

    def small_cnn(bands):
        return nn.Sequential(nn.Conv2d(bands, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
                             nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Linear(8, 2))

    deposits = _deposits()
    folds = pp.folds.spatial_folds(GRID, deposits, k=4, block_size=2000, seed=0)
    before = torch.get_rng_state()
    result = pp.validation.cross_validate(_stack(deposits), deposits, folds, small_cnn, positive_radius=300,
                                          window=5, map_stride=2, trainer={"epochs": 8, "lr": 0.05}, device="cpu")
    assert torch.equal(torch.get_rng_state(), before)  # the caller's RNG is not touched
    assert result.summary()["auc"] > 0.95
    again = pp.validation.cross_validate(_stack(deposits), deposits, folds, small_cnn, positive_radius=300,
                                         window=5, map_stride=2, trainer={"epochs": 8, "lr": 0.05}, device="cpu")
    np.testing.assert_array_equal(again.mean.to_numpy(), result.mean.to_numpy())  # same seed, same map


def test_cross_validate_refuses_bad_input_before_training():
    deposits = _deposits()
    stack = _stack(deposits)
    folds = pp.folds.spatial_folds(GRID, deposits, k=4, block_size=2000, seed=0)
    empty = stack.copy()
    empty[2] = np.nan
    with pytest.raises(InputError, match=r"stack: band\(s\) \['b2'\] hold no valid value \(all NaN\)"):
        pp.validation.cross_validate(empty, deposits, folds, "random_forest")
    with pytest.raises(InputError, match=r"model 'svm' is neither a baseline .* nor a network"):
        pp.validation.cross_validate(stack, deposits, folds, "svm")
    other = pp.folds.spatial_folds(pp.Grid.from_bounds(GRID.bounds, shape=(40, 40), crs=CRS),
                                   deposits, k=4, block_size=2000)
    with pytest.raises(InputError, match=r"folds were dealt on Grid\(shape=\(40, 40\)"):
        pp.validation.cross_validate(stack, deposits, other, "random_forest")


def test_rank_formula_matches_rankdata():
    # deposit_ranks' per-deposit AUC is the Mann-Whitney statistic of one positive: check on ties too
    values = np.array([[0.1, 0.2, 0.2], [0.3, 0.2, 0.9]], np.float32)
    grid = pp.Grid.from_bounds((0, 0, 3, 2), shape=(2, 3), crs=CRS)
    prob = grid.wrap(values)
    deposit = gpd.GeoDataFrame(geometry=[Point(1.5, 0.5)], crs=CRS)   # the 0.2 in the lower row
    ranks = pp.evaluation.deposit_ranks(prob, deposit)
    others = np.delete(values.ravel(), 4)
    expected = (rankdata(np.r_[0.2, others])[0] - 1) / len(others)
    assert ranks["auc"].iloc[0] == pytest.approx(expected)


def test_the_distance_to_the_nearest_training_deposit_and_the_isolated_auc():
    deposits = _deposits()
    folds = pp.folds.spatial_folds(GRID, deposits, k=4, block_size=2000, seed=0)
    result = pp.validation.cross_validate(_stack(deposits), deposits, folds, "logistic_regression",
                                          positive_radius=300, seed=0, isolated_distance=2500)
    # brute force: every held-out deposit against every deposit of the other folds
    xy = np.column_stack([deposits.geometry.x, deposits.geometry.y])
    fold_of = dict(zip(folds.deposit_index, folds.deposit_fold, strict=True))
    for line in result.ranks.itertuples():
        others = [i for i, f in fold_of.items() if f != fold_of[line.deposit]]
        expected = min(np.hypot(*(xy[line.deposit] - xy[i])) for i in others)
        assert line.nearest_training == pytest.approx(expected, rel=1e-12)
    summary = result.summary(seed=0)
    alone = result.ranks[result.ranks["nearest_training"] > 2500]
    assert 0 < len(alone) < len(result.ranks) and summary["isolated_deposits"] == len(alone)
    assert summary["isolated_auc"] == pytest.approx(alone["auc"].mean(), rel=1e-12)
    assert summary["isolated_low"] <= summary["isolated_auc"] <= summary["isolated_high"]
    assert summary["isolated_distance"] == 2500
    default = pp.validation.cross_validate(_stack(deposits), deposits, folds, "logistic_regression",
                                           positive_radius=300, seed=0, importance=False)
    assert default.isolated_distance == 600          # 2 x positive_radius
    assert default.summary()["isolated_deposits"] == int((default.ranks["nearest_training"] > 600).sum())


def _largest_unit(xy, size, link):
    """Brute force: deposits joined when in one block or within link, transitively; the largest count."""
    block = [(int((x - 400000) // size), int((2560000 - y) // size)) for x, y in xy]
    parent = list(range(len(xy)))

    def root(i):
        while parent[i] != i:
            i = parent[i]
        return i
    for i in range(len(xy)):
        for j in range(i):
            if block[i] == block[j] or np.hypot(*(xy[i] - xy[j])) <= link:
                parent[root(i)] = root(j)
    return max(np.bincount([root(i) for i in range(len(xy))]))


def test_the_default_block_shrinks_until_no_fold_must_take_most_deposits():
    # two chains of 5 deposits 600 m apart beside 6 scattered ones on a 160 km square: on 16 km blocks the
    # chains share a block (a unit of 10), over twice a fold's share (2 x 16 / 4 = 8); smaller blocks part them
    wide = pp.Grid.from_bounds((400000, 2400000, 560000, 2560000), resolution=1000, crs=CRS)
    chains = [Point(x + 600 * i, 2431000) for x in (431000, 440000) for i in range(5)]
    rng = np.random.default_rng(1)
    scattered = [Point(x, y) for x, y in rng.uniform((460000, 2405000), (555000, 2555000), size=(6, 2))]
    deposits = gpd.GeoDataFrame(geometry=chains + scattered, crs=CRS)
    folds = pp.folds.spatial_folds(wide, deposits, k=4, seed=0)
    assert folds.link == pytest.approx(600)
    xy = np.column_stack([deposits.geometry.x, deposits.geometry.y])
    expected = next(size for size in [16000 * 0.8 ** i for i in range(12)]
                    if _largest_unit(xy, size, folds.link) <= 8)
    assert folds.block_size == pytest.approx(expected) and expected < 16000 and "shrunk" in folds.block_why
    assert folds.counts()["deposits"].max() <= 8
    assert pp.folds.spatial_folds(wide, deposits, k=4, block_size=16000).block_why == "as given"
