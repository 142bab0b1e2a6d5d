import warnings

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest

import prospect as pp
from prospect.errors import ColumnError, InputError


def _survey():
    rng = np.random.default_rng(4)
    n = 40
    frame = gpd.GeoDataFrame({"Cu": rng.lognormal(2, 0.5, n), "Au": rng.lognormal(-1, 0.8, n),
                              "Sb": rng.lognormal(0, 0.6, n), "Sample": [f"S{i}" for i in range(n)]},
                             geometry=gpd.points_from_xy(421000 + 300 * np.arange(n), np.full(n, 2416000.0)),
                             crs=32649)
    frame.attrs["elements"] = ["Cu", "Au", "Sb"]
    return frame


def test_clr_by_hand_rows_sum_to_zero_and_equals_pyrolite():
    values = np.array([[1.0, 2.0, 4.0], [10.0, 10.0, 10.0], [0.5, 8.0, 2.0]])
    by_hand = np.log(values) - np.log(values).mean(axis=1, keepdims=True)
    np.testing.assert_allclose(pp.geochem.clr(values), by_hand, rtol=0, atol=1e-15)
    np.testing.assert_allclose(pp.geochem.clr(values)[0], [-np.log(2), 0, np.log(2)], atol=1e-15)
    np.testing.assert_allclose(pp.geochem.clr(values).sum(axis=1), 0, atol=1e-14)
    np.testing.assert_allclose(pp.geochem.clr(values * 7.3), pp.geochem.clr(values), atol=1e-14)  # scale-free
    codata = pytest.importorskip("pyrolite.comp.codata")
    compositions = np.random.default_rng(0).lognormal(0, 1, (50, 6))
    np.testing.assert_allclose(pp.geochem.clr(compositions), codata.CLR(compositions), atol=1e-12)
    np.testing.assert_allclose(pp.geochem.ilr(compositions), codata.ILR(compositions), atol=1e-12)


def test_ilr_is_an_isometry_of_the_clr():
    compositions = np.random.default_rng(1).lognormal(0, 1, (30, 5))
    coords = pp.geochem.ilr(compositions)
    centred = pp.geochem.clr(compositions)
    assert coords.shape == (30, 4)
    # Aitchison distances are kept: Euclidean distances between clr rows equal those between ilr rows
    d_clr = np.linalg.norm(centred[:, None] - centred[None], axis=2)
    d_ilr = np.linalg.norm(coords[:, None] - coords[None], axis=2)
    np.testing.assert_allclose(d_ilr, d_clr, atol=1e-12)
    # the first Helmert coordinate of a two-part composition is ln(x1/x2)/sqrt(2) up to sign
    two = np.array([[3.0, 12.0]])
    assert abs(pp.geochem.ilr(two)[0, 0]) == pytest.approx(np.log(4) / np.sqrt(2))


def test_negative_codes_and_zeros_are_substituted_and_counted():
    survey = _survey()
    survey.loc[[0, 1], "Au"] = [-0.3, -0.05]       # "below 0.3", "below 0.05"
    survey.loc[[2, 3, 4], "Sb"] = 0.0
    smallest = survey.loc[survey["Sb"] > 0, "Sb"].min()
    with pytest.warns(UserWarning, match=r"Au: 2 negative -> 0.5 x \|value\|; Sb: 0 negative -> 0.5 x \|value\|, "
                                         r"3 zero -> "):
        out = pp.geochem.substitute_below_detection(survey)
    np.testing.assert_allclose(out.loc[[0, 1], "Au"], [0.15, 0.025])
    np.testing.assert_allclose(out.loc[[2, 3, 4], "Sb"], 0.5 * smallest)
    assert out.attrs["substituted"] == {"Au": {"negative": 2, "zero": 0},
                                        "Sb": {"negative": 0, "zero": 3, "zero_substitute": 0.5 * smallest}}
    assert (survey.loc[[0, 1], "Au"] < 0).all()                  # the input is left alone
    with pytest.warns(UserWarning):
        fixed = pp.geochem.substitute_below_detection(survey, ["Sb"], zero=0.001, bdl_factor=1.0)
    np.testing.assert_allclose(fixed.loc[[2, 3, 4], "Sb"], 0.001)
    assert (fixed.loc[[0, 1], "Au"] < 0).all()                   # only the named elements


def test_transforms_replace_the_element_columns():
    survey = _survey()
    logged = pp.geochem.transform(survey, "log10")
    np.testing.assert_allclose(logged["Cu"], np.log10(survey["Cu"]))
    assert logged.attrs["elements"] == ["Cu", "Au", "Sb"] and logged.attrs["transform"].startswith("log10 of")
    centred = pp.geochem.transform(survey, "clr", elements=["Cu", "Au"])
    expected = np.log(survey[["Cu", "Au"]].to_numpy())
    np.testing.assert_allclose(centred[["Cu", "Au"]], expected - expected.mean(axis=1, keepdims=True))
    np.testing.assert_allclose(centred["Sb"], survey["Sb"])      # not a part of this composition
    assert centred.attrs["elements"] == ["Cu", "Au", "Sb"] and centred.attrs["transformed"] == ["Cu", "Au"]
    isometric = pp.geochem.transform(survey, "ilr")
    assert isometric.attrs["elements"] == ["ilr1", "ilr2"] and "Cu" not in isometric.columns
    np.testing.assert_allclose(isometric[["ilr1", "ilr2"]], pp.geochem.ilr(survey[["Cu", "Au", "Sb"]].to_numpy()))
    assert list(isometric["Sample"]) == list(survey["Sample"])


def test_a_sample_missing_a_part_gets_no_log_ratio():
    survey = _survey()
    survey.loc[5, "Au"] = np.nan
    with pytest.warns(UserWarning, match=r"1 of 40 samples miss one of \['Cu', 'Au', 'Sb'\]"):
        centred = pp.geochem.transform(survey, "clr")
    assert centred.loc[5, ["Cu", "Au", "Sb"]].isna().all()
    assert centred.drop(index=5)[["Cu", "Au", "Sb"]].notna().all().all()


def test_log_transformed_values_screen_with_the_same_value_auc():
    survey = _survey()
    labels = pd.Series(np.r_[np.ones(20, int), np.zeros(20, int)], index=survey.index)
    raw = pp.screening.screen_elements(survey, labels=labels, method="value")
    logged = pp.screening.screen_elements(pp.geochem.transform(survey, "log10"), labels=labels, method="value")
    np.testing.assert_allclose(logged["auc"], raw["auc"])       # a monotone transform keeps every ranking


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (dict(method="log"), InputError, r"method='log'; valid: \['log10', 'clr', 'ilr'\]"),
        (dict(method="clr", elements=["Cu"]), InputError, r"needs at least two elements"),
        (dict(method="log10", elements=["Zn"]), ColumnError, r"elements \['Zn'\] are not columns"),
        (dict(method="log10", bdl_factor=0), InputError, r"bdl_factor=0 must lie in \(0, 1\]"),
        (dict(method="log10", zero=-1), InputError, r"zero=-1; valid: a positive number, or 'half_min'"),
    ],
)
def test_bad_arguments_are_named(kwargs, error, match):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(error, match=match):
            pp.geochem.transform(_survey(), **kwargs)
