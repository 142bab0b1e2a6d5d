import warnings

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.metrics import roc_auc_score

import prospect as pp
from prospect.errors import ColumnError, CRSError, InputError
from prospect.screening import auc_z, label_samples, screen_elements
from tests.conftest import QINHANG

# The MFAF paper's Table 2: element -> (AUC, Z_AUC).
TABLE2 = {"Au": (0.6024, 2.8395), "B": (0.5901, 2.4839), "Sn": (0.6065, 2.9595), "Cu": (0.6311, 3.6977),
          "Ag": (0.6762, 5.1563), "Ba": (0.6147, 3.2020), "Mn": (0.5573, 1.5617), "Pb": (0.5778, 2.1341),
          "Zn": (0.5450, 1.2232), "As": (0.5655, 1.7893), "Sb": (0.5942, 2.6017), "Bi": (0.5901, 2.4839),
          "Hg": (0.6393, 3.9516), "Mo": (0.5983, 2.7203), "W": (0.5778, 2.1341), "F": (0.5696, 1.9037)}


def test_auc_z_reproduces_paper_table2():
    auc = np.array([a for a, _ in TABLE2.values()])
    expected = np.array([z for _, z in TABLE2.values()])
    # 120 ore-related and 125 background samples reproduce every printed Z within 0.1 %
    # (the printed AUCs are rounded to 4 decimals; dZ/dAUC is about 40).
    _, z = auc_z(auc, 120, 125)
    np.testing.assert_allclose(z, expected, rtol=1e-3)
    selected = {e for e, zz in zip(TABLE2, z, strict=True) if zz > stats.norm.ppf(0.995)}
    assert selected == {"Ag", "Au", "Sn", "Cu", "Ba", "Sb", "Hg", "Mo"}


def test_auc_z_closed_form_and_edges():
    s, z = auc_z(0.5, 10, 10)
    # at AUC 0.5: Q1 = Q2 = 1/3; S^2 = (0.25 + 9 (1/3 - 1/4) + 9 (1/3 - 1/4)) / 100 = 0.0175
    assert float(s) == pytest.approx(np.sqrt(0.0175)) and float(z) == 0.0
    _, z_low = auc_z(0.3, 50, 50)
    assert z_low < 0
    s1, z1 = auc_z(1.0, 10, 12)
    assert np.isfinite(z1) and s1 > 0 and z1 > auc_z(0.99, 10, 12)[1]
    _, z0 = auc_z(0.0, 10, 12)
    assert np.isfinite(z0) and z0 < -30  # the formula is not symmetric in AUC, so no exact mirror
    with pytest.raises(InputError, match=r"auc=.*must lie in \[0, 1\]"):
        auc_z(1.2, 10, 10)
    with pytest.raises(InputError, match=r"must be at least 1"):
        auc_z(0.6, 0, 10)


def test_s_auc_agrees_with_bootstrap():
    rng = np.random.default_rng(1)
    pos, neg = rng.exponential(1.6, 150), rng.exponential(1.0, 200)
    y = np.r_[np.ones(150), np.zeros(200)]
    auc = roc_auc_score(y, np.r_[pos, neg])
    boot = []
    for _ in range(1500):
        p, n = rng.choice(pos, 150), rng.choice(neg, 200)
        boot.append(stats.mannwhitneyu(p, n).statistic / (150 * 200))
    s, _ = auc_z(auc, 150, 200)
    assert float(s) == pytest.approx(np.std(boot), rel=0.12)


def _line_survey(values=None, n=11, crs="EPSG:32649"):
    x = 500000 + 100.0 * np.arange(n)
    data = {"Cu": np.arange(n, dtype=float)[::-1] if values is None else values}
    return gpd.GeoDataFrame(data, geometry=gpd.points_from_xy(x, np.full(n, 4000000.0)), crs=crs)


def test_label_samples_closed_form():
    samples = _line_survey()
    deposit = gpd.GeoDataFrame(geometry=gpd.points_from_xy([500000.0], [4000000.0]), crs="EPSG:32649")
    labels = label_samples(samples, deposit, radius=250, buffer=500, seed=3)
    assert labels.iloc[:3].tolist() == [1, 1, 1]
    assert (labels.iloc[3:6] == -1).all()  # between radius and buffer: unused
    assert (labels.iloc[6:] >= 0).sum() == 3 and set(labels.iloc[6:]) <= {0, -1}
    assert labels.attrs["n_pos"] == 3 and labels.attrs["n_neg"] == 3
    everything = label_samples(samples, deposit, radius=250, buffer=500, background="all")
    assert (everything.iloc[6:] == 0).all()
    default = label_samples(samples, deposit)
    assert default.attrs["radius"] == 200 and default.attrs["buffer"] == 400  # twice the 100 m spacing


def test_value_method_matches_sklearn_and_mann_whitney():
    rng = np.random.default_rng(0)
    n = 300
    labels = np.r_[np.ones(60), np.zeros(60), -np.ones(n - 120)].astype(int)
    frame = pd.DataFrame({"Cu": rng.lognormal(0, 1, n) * np.where(labels == 1, 1.6, 1.0),
                          "Zn": rng.lognormal(0, 1, n) * np.where(labels == 1, 0.6, 1.0)})
    table = screen_elements(frame, labels=labels, method="value")
    used = labels >= 0
    for element in ("Cu", "Zn"):
        expected = roc_auc_score(labels[used], frame[element][used])
        assert table.at[element, "auc"] == pytest.approx(expected, abs=1e-12)
        u = stats.mannwhitneyu(frame[element][labels == 1], frame[element][labels == 0]).statistic
        assert table.at[element, "auc"] == pytest.approx(u / 3600, abs=1e-12)
        s, z = auc_z(expected, 60, 60)
        assert table.at[element, "z_auc"] == pytest.approx(float(z))
    assert table.at["Zn", "auc"] < 0.5 and table.at["Zn", "z_auc"] < 0 and table.at["Zn", "direction"] == "depleted"
    assert not table.at["Zn", "selected"]
    assert table.at["Cu", "p_value"] == pytest.approx(2 * stats.norm.sf(table.at["Cu", "z_auc"]))
    svm = screen_elements(frame, labels=labels, method="svm", seed=1)
    assert svm.at["Zn", "auc"] > 0.5  # the support-vector model learns depletion as a signal
    assert svm.attrs["method"] == "svm" and svm.attrs["critical"] == pytest.approx(2.5758, abs=1e-4)


def test_svm_scores_are_cross_validated_and_seeded():
    rng = np.random.default_rng(5)
    labels = np.r_[np.ones(80), np.zeros(80)].astype(int)
    frame = pd.DataFrame({"noise": rng.lognormal(0, 1, 160)})
    a = screen_elements(frame, labels=labels, seed=2)
    b = screen_elements(frame, labels=labels, seed=2)
    assert a.equals(b)
    # an in-sample RBF fit on pure noise would score well above 0.5; out-of-fold it does not
    assert abs(a.at["noise", "auc"] - 0.5) < 0.12 and not a.at["noise", "selected"]


def test_signal_free_elements_score_around_half_out_of_fold_and_below_it_is_not_depletion():
    # 40 pure-noise elements: their out-of-fold AUCs scatter around 0.5 (the mean no higher), several below 0.45,
    # and none is selected; the same elements scored by value sit around 0.5 too
    rng = np.random.default_rng(11)
    labels = np.r_[np.ones(80), np.zeros(80)].astype(int)
    frame = pd.DataFrame({f"e{i}": rng.lognormal(0, 1, 160) for i in range(40)})
    svm = screen_elements(frame, labels=labels, seed=0)
    assert 0.45 < svm["auc"].mean() <= 0.51 and (svm["auc"] < 0.45).sum() >= 2 and not svm["selected"].any()
    value = screen_elements(frame, labels=labels, method="value")
    assert abs(value["auc"].mean() - 0.5) < 0.03


@pytest.fixture(scope="module")
def qinhang():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        samples = pp.io.read_samples(QINHANG / "stream_sediments.csv", crs="EPSG:32649", coord_scale=1000)
    return samples, pp.io.read_vector(QINHANG / "deposits.gpkg")


def test_qinhang_default_screen_selects_the_papers_eight(qinhang):
    samples, deposits = qinhang
    table = screen_elements(samples, deposits)
    assert set(table.index[table["selected"]]) == {"Ag", "Au", "Sn", "Cu", "Ba", "Sb", "Hg", "Mo"}
    assert list(table.index[:8]) == list(table.index[table["selected"]])  # sorted by Z
    assert table.attrs["n_pos"] == table.attrs["n_neg"] > 50
    assert table.attrs["radius"] == pytest.approx(2 * pp.screening.sample_spacing(samples))
    assert (table["z_auc"].diff().dropna() <= 0).all()
    for key in ("critical", "method", "background", "buffer", "seed", "roc"):
        assert key in table.attrs


def test_deposits_in_another_crs_are_reprojected(qinhang):
    samples, deposits = qinhang
    table = screen_elements(samples, deposits, elements=["Ag", "Zn"], method="value")
    geographic = screen_elements(samples, deposits.to_crs(4326), elements=["Ag", "Zn"], method="value")
    pd.testing.assert_frame_equal(table, geographic, check_exact=False, rtol=1e-9)
    with pytest.raises(CRSError, match=r"deposits have no CRS"):
        screen_elements(samples, deposits.set_crs(None, allow_override=True))


def test_real_looking_columns_with_flags():
    rng = np.random.default_rng(3)
    n = 200
    labels = np.r_[np.ones(50), np.zeros(150)].astype(int)
    frame = pd.DataFrame({"Cu_ppm_511": rng.lognormal(0, 1, n) * np.where(labels == 1, 3, 1),
                          "Cu_flag": rng.integers(0, 2, n), "Au_ppb_FA": rng.lognormal(0, 1, n)})
    table = screen_elements(frame, labels=labels, elements=["Cu_ppm_511", "Au_ppb_FA"])
    assert list(table.index) == ["Cu_ppm_511", "Au_ppb_FA"] and table.at["Cu_ppm_511", "selected"]


def test_constant_all_nan_and_nan_values_are_reported_not_fatal():
    rng = np.random.default_rng(4)
    labels = np.r_[np.ones(40), np.zeros(40)].astype(int)
    cu = rng.lognormal(0, 1, 80)
    cu[[0, 1, 50]] = np.nan
    frame = pd.DataFrame({"Cu": cu, "Flat": np.ones(80), "Empty": np.full(80, np.nan)})
    table = screen_elements(frame, labels=labels, method="value")
    assert table.at["Flat", "note"] == "constant" and not table.at["Flat", "selected"]
    assert table.at["Empty", "note"] == "all values missing" and np.isnan(table.at["Empty", "auc"])
    assert table.at["Cu", "n_dropped"] == 3 and table.at["Cu", "n_pos"] == 38 and table.at["Cu", "n_neg"] == 39
    assert list(table.index[-2:]) == ["Flat", "Empty"]


def test_bad_input():
    samples = _line_survey()
    far = gpd.GeoDataFrame(geometry=gpd.points_from_xy([900000.0], [4000000.0]), crs="EPSG:32649")
    with pytest.raises(InputError, match=r"no sample lies within radius=200 of any of the 1 deposits \(1 of them"):
        screen_elements(samples, far)
    with pytest.raises(InputError, match=r"1 ore-related and 1 background"):
        screen_elements(samples.drop(columns="geometry"), labels=[1, 0] + [-1] * 9)
    with pytest.raises(ColumnError, match=r"elements \['Hg'\] are not columns of samples; available: \['Cu'\]"):
        screen_elements(samples, labels=[1] * 5 + [0] * 6, elements=["Hg"])
    with pytest.raises(InputError, match=r"method='rf'; valid: 'svm'"):
        screen_elements(samples, labels=[1] * 5 + [0] * 6, method="rf")
    with pytest.raises(InputError, match=r"exactly one of deposits="):
        screen_elements(samples)
    with pytest.raises(CRSError, match=r"geographic.*reproject"):
        screen_elements(_line_survey(crs=None).set_crs(4326, allow_override=True), far.to_crs(4326))


def test_plots_return_figures(qinhang):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    samples, deposits = qinhang
    table = screen_elements(samples, deposits, elements=["Ag", "Zn", "Hg"])
    assert isinstance(pp.screening.plot_z(table), Figure)
    fig = pp.screening.plot_roc(table)
    assert len(fig.axes[0].lines) == 1 + int(table["selected"].sum())
    with pytest.raises(InputError, match=r"no ROC curve for \['Cu'\]"):
        pp.screening.plot_roc(table, elements=["Cu"])
