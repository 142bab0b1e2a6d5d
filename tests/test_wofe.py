"""Weights of evidence against closed forms and brute force."""

import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

import prospect as pp
from prospect.errors import InputError
from prospect.wofe import WeightsOfEvidence, pattern_weights, weights_of_evidence
from tests.test_validation import GRID, _deposits, _stack


def test_pattern_weights_are_bonham_carters_closed_forms():
    # 10 deposits, 4 inside the pattern; 1000 unit cells without a deposit, 100 inside
    y = np.r_[np.ones(10), np.zeros(1000)]
    inside = np.r_[np.ones(4), np.zeros(6), np.ones(100), np.zeros(900)].astype(bool)
    line = pattern_weights(inside, y)
    assert line["w_plus"] == pytest.approx(np.log((4 / 10) / (100 / 1000)))
    assert line["w_minus"] == pytest.approx(np.log((6 / 10) / (900 / 1000)))
    assert line["s_w_plus"] == pytest.approx(np.sqrt(1 / 4 + 1 / 100))
    assert line["s_w_minus"] == pytest.approx(np.sqrt(1 / 6 + 1 / 900))
    assert line["contrast"] == pytest.approx(np.log(4) - np.log(2 / 3))
    assert line["studentized"] == pytest.approx(line["contrast"] / np.hypot(line["s_w_plus"], line["s_w_minus"]))
    # each non-deposit sample standing for 2 unit cells doubles the areas
    assert pattern_weights(inside, y, unit=2.0)["s_w_plus"] == pytest.approx(np.sqrt(1 / 4 + 1 / 200))
    # a pattern holding every deposit: 0.5 added to each count (Haldane), so W- is finite and uncertain
    every = np.r_[np.ones(10), np.ones(100), np.zeros(900)].astype(bool)
    line = pattern_weights(every, y)
    assert line["w_minus"] == pytest.approx(np.log((0.5 / 11) / (900.5 / 1001)))
    assert line["s_w_minus"] == pytest.approx(np.sqrt(1 / 0.5 + 1 / 900.5))
    # a pattern holding every sample has nothing outside: NaN, never chosen
    assert np.isnan(pattern_weights(np.ones(len(y), bool), y)["w_plus"])


def _ordered(seed=0, n=2000):
    """Band 0 raises the deposit rate above 0.8, band 1 is noise, band 2 is a code (3 favourable)."""
    rng = np.random.default_rng(seed)
    X = np.column_stack([rng.random(n), rng.random(n), rng.integers(1, 5, n).astype(float)])
    rate = 0.01 + 0.08 * (X[:, 0] > 0.8) + 0.05 * (X[:, 2] == 3)
    return X, (rng.random(n) < rate).astype(int)


def test_each_band_takes_the_pattern_of_maximum_studentized_contrast():
    X, y = _ordered()
    model = WeightsOfEvidence(categorical=[2]).fit(X, y)
    table = model.table_
    # brute force: band 0's deciles in both directions
    breaks = np.unique(np.quantile(X[:, 0], np.linspace(0, 1, 11)[1:-1]))
    scores = [pattern_weights(X[:, 0] >= t, y)["studentized"] for t in breaks] + \
             [pattern_weights(X[:, 0] <= t, y)["studentized"] for t in breaks]
    chosen = table[(table["band"] == 0) & table["chosen"]].iloc[0]
    assert chosen["studentized"] == pytest.approx(np.nanmax(scores))
    assert chosen["kind"] == "descending" and chosen["pattern"] == f">= {breaks[np.nanargmax(scores)]:.6g}"
    # the categorical band: classes ranked by their own W+, the best union chosen; class 3 leads
    own = {c: pattern_weights(X[:, 2] == c, y)["w_plus"] for c in (1, 2, 3, 4)}
    order = sorted(own, key=lambda c: -own[c])
    unions = [pattern_weights(np.isin(X[:, 2], order[:m]), y)["studentized"] for m in range(1, 4)]
    coded = table[(table["band"] == 2) & table["chosen"]].iloc[0]
    assert order[0] == 3 and coded["studentized"] == pytest.approx(max(unions))
    # the noise band: picked from 18 patterns its best may pass 1.96 by chance; a higher bar leaves it out
    noise = table[table["band"] == 1]["studentized"].max()
    assert table[table["band"] == 1]["chosen"].any() == (noise >= 1.96)
    strict = WeightsOfEvidence(categorical=[2], min_studentized=noise + 1e-9).fit(X, y)
    assert strict.patterns_[1] is None and strict.patterns_[0] is not None
    model = strict      # predict_proba is the logistic of the prior plus the two bands' weights
    w0 = np.where(X[:, 0] >= breaks[np.nanargmax(scores)], chosen["w_plus"], chosen["w_minus"])
    w2 = np.where(np.isin(X[:, 2], order[:int(np.argmax(unions)) + 1]), coded["w_plus"], coded["w_minus"])
    prior = np.log(y.sum() / (len(y) - y.sum()))
    np.testing.assert_allclose(model.predict_proba(X)[:, 1], 1 / (1 + np.exp(-(prior + w0 + w2))))
    # a missing value weighs 0
    gap = X[:3].copy()
    gap[:, 0] = np.nan
    np.testing.assert_allclose(model.decision_function(gap), prior + w2[:3])
    # the posterior's spread: P * sqrt(1 / D + the chosen weights' variances)
    s0 = np.where(X[:, 0] >= breaks[np.nanargmax(scores)], chosen["s_w_plus"], chosen["s_w_minus"])
    s2 = np.where(np.isin(X[:, 2], order[:int(np.argmax(unions)) + 1]), coded["s_w_plus"], coded["s_w_minus"])
    np.testing.assert_allclose(model.predict_std(X), model.predict_proba(X)[:, 1] * np.sqrt(1 / y.sum() + s0**2
                                                                                             + s2**2))
    assert clone(model).get_params() == model.get_params()


def test_weights_of_evidence_refuses_what_it_cannot_weigh():
    X, y = _ordered()
    with pytest.raises(InputError, match=r"y holds \[0(\.0)?\]; weights of evidence needs deposits"):
        WeightsOfEvidence().fit(X, np.zeros(len(X)))
    with pytest.raises(InputError, match=r"classes=1 must be a whole number of quantile breaks ≥ 2"):
        WeightsOfEvidence(classes=1).fit(X, y)


def test_on_the_area_one_layer_is_conditionally_independent_and_a_copy_is_not():
    deposits = _deposits()
    halo = pp.layers.deposit_layer(deposits, GRID, radius=300).to_numpy()[0]
    rng = np.random.default_rng(0)
    halo = np.where(rng.random(halo.shape) < 0.1, 1 - halo, halo)      # a halo with 10 % of its cells flipped
    one = GRID.wrap(halo[None].astype(np.float32), bands=["halo"])
    cell = GRID.resolution[0] * GRID.resolution[1]
    result = weights_of_evidence(one, deposits, unit_area=cell)
    # one binary layer: the posterior sums to the deposits exactly (T = d + (D - d))
    assert result.deposits == 24 and result.ci_ratio == pytest.approx(1.0) and result.expected == pytest.approx(24)
    assert result.table["chosen"].sum() == 1 and result.table.loc[result.table["chosen"], "band"].item() == "halo"
    assert float(result.posterior.max()) > float(result.posterior.min())
    # a one-layer posterior is the class's conditional probability by hand: deposit cells / cells in the class
    from prospect.layers import deposit_pixels

    row, col, inside = deposit_pixels(deposits, GRID)
    marked = np.zeros(GRID.shape, bool)
    marked[row[inside], col[inside]] = True
    posterior = result.posterior.to_numpy()[0]
    for state in (0, 1):
        cells = halo == state
        np.testing.assert_allclose(posterior[cells], marked[cells].sum() / cells.sum(), rtol=1e-9)
    # the same layer twice: the weights count the evidence twice, the model expects more deposits than there are
    twice = GRID.wrap(np.stack([halo, halo]).astype(np.float32), bands=["halo", "copy"])
    with pytest.warns(UserWarning, match=r"not conditionally independent .*\(ratio 0\.\d+"):
        doubled = weights_of_evidence(twice, deposits, unit_area=cell)
    assert doubled.ci_ratio < 0.85 and doubled.ac_p < 0.05
    # s(T) by hand: two conditions (inside both copies of the pattern, outside both), each its area in unit cells
    # times the deviation of its posterior (P x sqrt(1/D + the weights' variances)), Agterberg & Cheng's eq. 9
    line = doubled.table[doubled.table["chosen"]].iloc[0]
    inside = halo == 1
    s_t = 0.0
    for cells, w, s_w in ((inside, line["w_plus"], line["s_w_plus"]), (~inside, line["w_minus"], line["s_w_minus"])):
        p = 1 / (1 + np.exp(-(doubled.model.prior_ + 2 * w)))
        s_t += (cells.sum() * p * np.sqrt(1 / 24 + 2 * s_w**2)) ** 2
    assert doubled.ac_z == pytest.approx((doubled.expected - 24) / np.sqrt(s_t), rel=1e-9)
    assert doubled.expected - 24 > 5


def test_cross_validate_judges_weights_of_evidence_on_held_out_deposits():
    deposits = _deposits()
    folds = pp.folds.spatial_folds(GRID, deposits, k=4, block_size=2000, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = pp.validation.cross_validate(_stack(deposits), deposits, folds, "weights_of_evidence",
                                              positive_radius=300, seed=0, importance=False)
    # the planted halo band: the held-out deposits rank near the top (a binary pattern ties them with the halo)
    assert result.summary()["auc"] > 0.95
    assert pp.registry.get("weights_of_evidence").kind == "pixel"


def test_breaks_given_replace_the_quantiles_and_name_their_band():
    X, y = _ordered()
    model = WeightsOfEvidence(breaks={"a": [0.5, 0.8]}, bands=["a", "b", "code"], categorical=[2]).fit(X, y)
    tried = model.table_[model.table_["band"] == 0]
    assert sorted(tried["pattern"]) == ["<= 0.5", "<= 0.8", ">= 0.5", ">= 0.8"]
    # the chosen pattern's weights are the closed form on the given break (band 0 lifts the deposit rate above 0.8)
    chosen = tried[tried["chosen"]].iloc[0]
    assert chosen["pattern"] == ">= 0.8"
    assert chosen["w_plus"] == pytest.approx(pattern_weights(X[:, 0] >= 0.8, y)["w_plus"], abs=1e-12)
    by_position = WeightsOfEvidence(breaks={0: [0.5, 0.8]}, categorical=[2]).fit(X, y)
    pd.testing.assert_frame_equal(by_position.table_, model.table_)
    with pytest.raises(InputError, match=r"breaks: 'Cu' names no band; valid: \['a', 'b', 'code'\]"):
        WeightsOfEvidence(breaks={"Cu": [1]}, bands=["a", "b", "code"]).fit(X, y)
    with pytest.raises(InputError, match=r"breaks\['a'\]=\[\]; valid: a list of finite numbers"):
        WeightsOfEvidence(breaks={"a": []}, bands=["a", "b", "code"]).fit(X, y)
