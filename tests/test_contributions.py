"""Why this cell: every band's share of each model's score adds up to that score (pp.explain)."""

import numpy as np
import pytest

import prospect as pp
from prospect.errors import InputError
from prospect.wofe import WeightsOfEvidence
from tests.test_wofe import _ordered


@pytest.mark.parametrize("categorical", [[], [2]])
def test_logistic_regression_shares_add_up_and_move_only_with_their_band(categorical):
    X, y = _ordered()
    model = pp.baselines.build_baseline("logistic_regression", categorical=categorical).fit(X, y)
    shares = pp.explain.contributions(model, X)
    logit = model.decision_function(X)
    # the shares add up to each cell's log-odds less the mean log-odds of the cells
    np.testing.assert_allclose(shares.sum(axis=1), logit - logit.mean(), atol=1e-9)
    # changing one band of a cell changes its log-odds by exactly the change of that band's share
    moved = X.copy()
    moved[:, 0] = moved[::-1, 0]
    moved[:, 2] = np.where(moved[:, 2] == 4, 1, moved[:, 2] + 1)
    both = np.vstack([X, moved])
    shares = pp.explain.contributions(model, both)
    logit = model.decision_function(both)
    n = len(X)
    np.testing.assert_allclose((shares[n:] - shares[:n]).sum(axis=1), logit[n:] - logit[:n], atol=1e-9)
    np.testing.assert_allclose(shares[n:, 1], shares[:n, 1], atol=1e-12)          # band 1 did not move
    # measured from the intercept: the shares add up to the log-odds less the intercept, exactly
    how = pp.explain.explainer(model, reference="intercept")
    np.testing.assert_allclose(how.shares(both).sum(axis=1), logit - model[-1].intercept_[0], atol=1e-9)
    assert how.expected == model[-1].intercept_[0]


def test_weights_of_evidence_shares_are_its_weights_and_rasters_follow_the_stack():
    X, y = _ordered()
    model = WeightsOfEvidence(categorical=[2]).fit(X, y)
    shares = pp.explain.contributions(model, X)
    np.testing.assert_allclose(shares.sum(axis=1) + model.prior_, model.decision_function(X))
    grid = pp.Grid.from_bounds((0, 0, 400, 500), resolution=10, crs="EPSG:32650")
    stack = grid.wrap(X.T.reshape(3, 50, 40).astype(np.float32), bands=["a", "b", "code"])
    stack.values[0, 0, 0] = np.nan
    raster = pp.explain.contribution_stack(model, stack)
    assert raster.dims == ("band", "y", "x") and list(raster["band"].values) == ["a", "b", "code"]
    assert np.isnan(raster.values[:, 0, 0]).all()
    values = stack.to_numpy().reshape(3, -1).T
    np.testing.assert_allclose(raster.to_numpy().reshape(3, -1).T[1:], model.weights(values[1:]), rtol=1e-6)
    assert raster.attrs["unit"] == "log-odds" and raster.attrs["expected"] == model.prior_


@pytest.mark.parametrize("categorical", [[], [2]])
def test_forest_path_shares_add_up_to_scikit_learns_probability(categorical):
    X, y = _ordered()
    model = pp.baselines.build_baseline("random_forest", n_estimators=25, categorical=categorical).fit(X, y)
    how = pp.explain.explainer(model)
    shares = how.shares(X)
    np.testing.assert_allclose(how.expected + shares.sum(axis=1), model.predict_proba(X)[:, 1], atol=1e-9)
    assert how.unit == "probability"
    # the noise band moves the score far less than the informative band and the code
    spread = np.abs(shares).mean(axis=0)
    assert spread[1] < spread[0] and spread[1] < spread[2]
    # a stump: one split, so its band carries all of it and the share is the leaf's deposit rate less the root's
    stump = pp.baselines.build_baseline("random_forest", n_estimators=1, max_depth=1, max_samples=None,
                                        bootstrap=False, class_weight=None).fit(X, y)
    tree = stump.estimators_[0].tree_
    band = tree.feature[0]
    left = X[:, band].astype(np.float32) <= tree.threshold[0]
    by_hand = np.where(left, y[left].mean(), y[~left].mean()) - y.mean()
    shares = pp.explain.contributions(stump, X)
    np.testing.assert_allclose(shares[:, band], by_hand, atol=1e-12)
    np.testing.assert_array_equal(np.delete(shares, band, axis=1), 0)


@pytest.mark.parametrize("categorical", [[], [2]])
def test_boosting_path_shares_add_up_to_scikit_learns_decision_function(categorical):
    X, y = _ordered()
    X[::97, 1] = np.nan                 # a missing value takes the side the tree learned for it
    model = pp.baselines.build_baseline("gradient_boosting", categorical=categorical, max_iter=30).fit(X, y)
    how = pp.explain.explainer(model)
    shares = how.shares(X)
    np.testing.assert_allclose(how.expected + shares.sum(axis=1), model.decision_function(X), atol=1e-9)
    assert how.unit == "log-odds" and np.abs(shares[:, 0]).mean() > np.abs(shares[:, 1]).mean()


def test_bagged_forest_shares_are_the_mean_of_its_bags_and_add_up():
    X, y = _ordered()
    model = pp.baselines.build_baseline("random_forest", n_estimators=10, pu_bags=3).fit(X, y)
    how = pp.explain.explainer(model)
    np.testing.assert_allclose(how.expected + how.shares(X).sum(axis=1), model.predict_proba(X)[:, 1], atol=1e-9)


def test_fuzzy_shares_are_the_memberships_and_anything_else_is_refused():
    X, y = _ordered()
    model = pp.baselines.build_baseline("fuzzy_overlay", bands=["a", "b", "code"],
                                        memberships={"a": ["linear", 0.2, 0.9], "code": ["classes", {3: 1.0}]},
                                        how="product").fit(X, y)
    shares = pp.explain.contributions(model, X)
    np.testing.assert_allclose(shares[:, 0], np.clip((X[:, 0] - 0.2) / 0.7, 0, 1))
    np.testing.assert_array_equal(shares[:, 1], 0)
    np.testing.assert_array_equal(shares[:, 2], (X[:, 2] == 3).astype(float))
    np.testing.assert_allclose(shares.prod(axis=1, where=[True, False, True]), model.predict_proba(X)[:, 1])
    with pytest.raises(InputError, match=r"no split into bands for SVC"):
        from sklearn.svm import SVC

        pp.explain.contributions(SVC().fit(X, y), X)


def test_fold_models_explain_the_fold_mean_map_and_the_signal_band_drives_the_targets():
    from tests.test_validation import GRID, _deposits, _stack

    deposits = _deposits()
    stack = _stack(deposits)
    folds = pp.folds.spatial_folds(GRID, deposits, k=4, block_size=2000, seed=0)
    result = pp.validation.cross_validate(stack, deposits, folds, "logistic_regression", positive_radius=300,
                                          importance=False, keep_models=True)
    shares = result.contributions(stack)
    # the fold models' own log-odds (scikit-learn), averaged: what the shares and the expected value add up to
    cells = stack.to_numpy().reshape(3, -1).T
    logit = np.mean([model.decision_function(cells) for model in result.models], axis=0)
    np.testing.assert_allclose(shares.to_numpy().reshape(3, -1).sum(axis=0) + shares.attrs["expected"], logit,
                               rtol=1e-5, atol=1e-4)
    assert shares.attrs["unit"] == "log-odds" and "mean over 4 fold models" in shares.attrs["definition"]
    areas = pp.evaluation.targets(result.mean, area_fraction=0.05, deposits=deposits, contributions=shares)
    found = areas[areas["n_deposits"] > 0]           # the targets on the planted halos are there because of b0
    assert len(found) >= 10 and (found["top_band"] == "b0").all() and found["drivers"].str.startswith("b0 +").all()
    with pytest.raises(InputError, match=r"no fold models kept; run cross_validate\(\.\.\., keep_models=True\)"):
        pp.validation.cross_validate(stack, deposits, folds, "logistic_regression", positive_radius=300,
                                     importance=False).contributions(stack)


def test_a_networks_fold_shares_are_complete_within_one_percent():
    from tests.test_validation import GRID, _deposits, _stack

    deposits = _deposits()
    stack = _stack(deposits)
    folds = pp.folds.spatial_folds(GRID, deposits, k=3, block_size=2000, seed=0)
    spec = {"name": "window_net", "pretrain": False, "tta": False}
    result = pp.validation.cross_validate(stack, deposits, folds, spec, positive_radius=300, window=5, map_stride=4,
                                          max_positives=100, trainer={"epochs": 6}, device="cpu", keep_models=True)
    shares = result.contributions(stack, centres=150, device="cpu")
    assert shares.attrs["completeness"] < 0.01 and shares.attrs["unit"] == "log-odds"
    assert list(shares["band"].values) == ["b0", "b1", "b2"]
    halo = stack.sel(band="b0").to_numpy() == 1       # on the planted halos, the planted band lifts the score most
    lift = shares.to_numpy()[:, halo].mean(axis=1)
    assert lift[0] > 0 and lift[0] > lift[1] and lift[0] > lift[2]
