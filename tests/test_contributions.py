"""Why this cell: every band's exact share of the log-odds, for logistic regression and weights of evidence."""

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
    shares = pp.baselines.contributions(model, X)
    logit = model.decision_function(X)
    # the shares add up to each cell's log-odds less the mean log-odds of the cells
    np.testing.assert_allclose(shares.sum(axis=1), logit - logit.mean(), atol=1e-9)
    # changing one band of a cell changes its log-odds by exactly the change of that band's share
    moved = X.copy()
    moved[:, 0] = moved[::-1, 0]
    moved[:, 2] = np.where(moved[:, 2] == 4, 1, moved[:, 2] + 1)
    both = np.vstack([X, moved])
    shares = pp.baselines.contributions(model, both)
    logit = model.decision_function(both)
    n = len(X)
    np.testing.assert_allclose((shares[n:] - shares[:n]).sum(axis=1), logit[n:] - logit[:n], atol=1e-9)
    np.testing.assert_allclose(shares[n:, 1], shares[:n, 1], atol=1e-12)          # band 1 did not move


def test_weights_of_evidence_shares_are_its_weights_and_rasters_follow_the_stack():
    X, y = _ordered()
    model = WeightsOfEvidence(categorical=[2]).fit(X, y)
    shares = pp.baselines.contributions(model, X)
    np.testing.assert_allclose(shares.sum(axis=1) + model.prior_, model.decision_function(X))
    grid = pp.Grid.from_bounds((0, 0, 400, 500), resolution=10, crs="EPSG:32650")
    stack = grid.wrap(X.T.reshape(3, 50, 40).astype(np.float32), bands=["a", "b", "code"])
    stack.values[0, 0, 0] = np.nan
    raster = pp.baselines.contribution_stack(model, stack)
    assert raster.dims == ("band", "y", "x") and list(raster["band"].values) == ["a", "b", "code"]
    assert np.isnan(raster.values[:, 0, 0]).all()
    values = stack.to_numpy().reshape(3, -1).T
    np.testing.assert_allclose(raster.to_numpy().reshape(3, -1).T[1:], model.weights(values[1:]), rtol=1e-6)
    forest = pp.baselines.build_baseline("random_forest", n_estimators=5).fit(X, y)
    with pytest.raises(InputError, match=r"exact shares exist for logistic regression and weights of evidence, not "
                                         r"for RandomForestClassifier"):
        pp.baselines.contributions(forest, X)
