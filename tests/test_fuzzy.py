"""Fuzzy memberships and overlays against their closed forms; a fuzzy overlay judged on held-out deposits."""

import numpy as np
import pytest

import prospect as pp
from prospect.errors import InputError
from prospect.fuzzy import FuzzyOverlay, membership, overlay
from tests.test_validation import GRID, _deposits, _stack

X = np.array([-1.0, 0.0, 5.0, 10.0, 20.0, 40.0, np.nan])


@pytest.mark.parametrize(("function", "kwargs", "expected"), [
    ("linear", {"low": 0, "high": 20}, [0, 0, 0.25, 0.5, 1, 1, np.nan]),
    ("linear", {"low": 20, "high": 0}, [1, 1, 0.75, 0.5, 0, 0, np.nan]),
    ("large", {"midpoint": 10, "spread": 2}, [0, 0, 1 / (1 + 0.5**-2), 0.5, 1 / (1 + 2**-2), 1 / (1 + 4**-2), np.nan]),
    ("small", {"midpoint": 10, "spread": 2}, [1, 1, 1 / (1 + 0.5**2), 0.5, 1 / (1 + 2**2), 1 / (1 + 4**2), np.nan]),
    ("gaussian", {"midpoint": 10, "spread": 0.01}, [np.exp(-0.01 * 121), np.exp(-1), np.exp(-0.25), 1,
                                                    np.exp(-1), np.exp(-9), np.nan]),
    ("near", {"midpoint": 10, "spread": 0.01}, [1 / 2.21, 1 / 2, 1 / 1.25, 1, 1 / 2, 1 / 10, np.nan]),
    ("classes", {"classes": {5: 0.7, 10: 1.0}}, [0, 0, 0.7, 1, 0, 0, np.nan]),
])
def test_memberships_are_arcgis_closed_forms(function, kwargs, expected):
    np.testing.assert_allclose(membership(X, function, **kwargs), expected)


def test_memberships_keep_a_dataarray_and_refuse_what_they_cannot_use():
    band = GRID.wrap(np.full((1, *GRID.shape), 10, np.float32), bands=["Cu"]).sel(band="Cu")
    out = membership(band, "large", midpoint=10, spread=3)
    assert out.dims == band.dims and float(out.max()) == pytest.approx(0.5) and out.attrs["membership"] == "large 10 3"
    with pytest.raises(InputError, match=r"function='sigmoid'; valid: \['linear', 'large'"):
        membership(X, "sigmoid", midpoint=1, spread=1)
    with pytest.raises(InputError, match=r"function='linear' needs low and high"):
        membership(X, "linear", midpoint=1, spread=1)
    with pytest.raises(InputError, match=r"large: midpoint=-1.0 and spread=2.0 must be positive"):
        membership(X, "large", midpoint=-1, spread=2)
    with pytest.raises(InputError, match=r"classes: \{5: 1.5\}; valid: a mapping of class code to a membership"):
        membership(X, "classes", classes={5: 1.5})


def test_overlays_are_their_closed_forms():
    a, b = np.array([0.2, 0.9, np.nan]), np.array([0.5, 0.6, 0.3])
    np.testing.assert_allclose(overlay([a, b], "and"), [0.2, 0.6, np.nan])
    np.testing.assert_allclose(overlay([a, b], "or"), [0.5, 0.9, np.nan])
    np.testing.assert_allclose(overlay([a, b], "product"), [0.1, 0.54, np.nan])
    np.testing.assert_allclose(overlay([a, b], "sum"), [0.6, 0.96, np.nan])
    np.testing.assert_allclose(overlay([a, b], "gamma", gamma=0.9), [0.6**0.9 * 0.1**0.1, 0.96**0.9 * 0.54**0.1,
                                                                      np.nan])
    np.testing.assert_allclose(overlay([a, b], "gamma", gamma=0), overlay([a, b], "product"))
    np.testing.assert_allclose(overlay([a, b], "gamma", gamma=1), overlay([a, b], "sum"))
    with pytest.raises(InputError, match=r"memberships must lie in \[0, 1\]"):
        overlay([a, b * 3], "and")
    with pytest.raises(InputError, match=r"gamma=2 must lie in \[0, 1\]"):
        overlay([a, b], "gamma", gamma=2)


def test_a_fuzzy_overlay_set_by_hand_is_judged_on_held_out_deposits():
    deposits = _deposits()
    stack = _stack(deposits)       # band 0: 1 within 300 m of a deposit, bands 1-2: noise
    folds = pp.folds.spatial_folds(GRID, deposits, k=4, block_size=2000, seed=0)
    spec = {"memberships": [("linear", 0, 1), None, ("gaussian", 0, 0.5)], "how": "gamma", "gamma": 0.5}
    result = pp.validation.cross_validate(stack, deposits, folds, {"name": "fuzzy_overlay", **spec},
                                          positive_radius=300, seed=0, importance=False)
    assert result.summary()["auc"] > 0.9
    values = stack.to_numpy().reshape(3, -1).T.astype(float)
    by_hand = overlay([np.clip(values[:, 0], 0, 1), np.exp(-0.5 * values[:, 2] ** 2)], "gamma", gamma=0.5)
    np.testing.assert_allclose(FuzzyOverlay(**spec).fit(values).predict_proba(values)[:, 1], by_hand)
    np.testing.assert_allclose(result.mean.to_numpy().ravel(), by_hand, rtol=1e-6)     # the same map every fold
    with pytest.raises(InputError, match=r"memberships: 2 given for 3 bands"):
        FuzzyOverlay([None, ("linear", 0, 1)]).fit(values)
