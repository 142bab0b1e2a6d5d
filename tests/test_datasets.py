import filecmp
import warnings

import geopandas as gpd
import numpy as np
import pytest

import prospect as pp
from prospect.datasets.qinhang import ELEMENTS, UNIT_COUNTS
from tests.conftest import QINHANG


@pytest.fixture(scope="module")
def survey():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pp.io.read_samples(QINHANG / "stream_sediments.csv", crs="EPSG:32649", coord_scale=1000)


def test_generator_reproduces_committed_files(tmp_path):
    pp.datasets.make_qinhang(tmp_path)
    assert filecmp.cmp(tmp_path / "stream_sediments.csv", QINHANG / "stream_sediments.csv", shallow=False)
    for name in ("geology", "faults", "deposits", "undiscovered"):
        ours, committed = gpd.read_file(tmp_path / f"{name}.gpkg"), gpd.read_file(QINHANG / f"{name}.gpkg")
        assert ours.drop(columns="geometry").equals(committed.drop(columns="geometry"))
        assert ours.geometry.geom_equals_exact(committed.geometry, tolerance=1e-6).all(), name


def test_generator_is_seeded_and_refuses_overwrite(tmp_path):
    pp.datasets.make_qinhang(tmp_path / "a", seed=7)
    pp.datasets.make_qinhang(tmp_path / "b", seed=7)
    pp.datasets.make_qinhang(tmp_path / "c", seed=8)
    a, b, c = (tmp_path / x / "stream_sediments.csv" for x in "abc")
    assert a.read_bytes() == b.read_bytes() != c.read_bytes()
    with pytest.raises(FileExistsError, match="overwrite=True"):
        pp.datasets.make_qinhang(tmp_path / "a", seed=7)


def test_survey_known_facts(survey):
    assert len(survey) == 7512
    assert survey.crs.to_epsg() == 32649
    assert survey.attrs["elements"] == list(ELEMENTS)
    assert survey["formation"].value_counts().to_dict() == UNIT_COUNTS
    x, y = survey.geometry.x, survey.geometry.y
    assert x.min() >= 400000 and x.max() <= 439000 and y.min() >= 2400000 and y.max() <= 2439000
    # the paper's Table 1 coordinates lie in the area, among samples
    near = np.hypot(x - 421630, y - 2416850).min()
    assert near < 500
    # magnitudes like Table 1 (medians within a factor of 2)
    table1 = {"Ag": 0.06, "Au": 0.8, "Sn": 2.2, "Cu": 6, "Ba": 700, "Mn": 330, "Pb": 35, "Zn": 25, "F": 215}
    for element, median in table1.items():
        assert median / 2 < survey[element].median() < median * 2, element
    # samples are not uniform noise: nearest-neighbour distances are far more regular than Poisson
    from scipy.spatial import cKDTree

    d, _ = cKDTree(np.column_stack([x, y])).query(np.column_stack([x, y]), k=2)
    assert d[:, 1].std() / d[:, 1].mean() < 0.4  # Poisson points give about 0.52
    assert sum(survey.attrs["below_detection"].values()) > 100


def test_vector_layers_known_facts():
    geology = pp.io.read_vector(QINHANG / "geology.gpkg")
    assert sorted(geology["unit"]) == sorted(["Triassic", "Permian", "Carboniferous", "Devonian", "Quaternary"])
    assert geology.crs.to_epsg() == 32649
    assert geology.union_all().area == pytest.approx(39000 * 39000, rel=1e-9)
    faults = pp.io.read_vector(QINHANG / "faults.gpkg")
    assert set(faults["family"]) == {"NE", "NW", "N-S"}
    deposits = pp.io.read_vector(QINHANG / "deposits.gpkg")
    assert 20 <= len(deposits) <= 60
    hosts = gpd.sjoin(deposits, geology, predicate="within")["unit"]
    assert (hosts == "Triassic").all()
    assert deposits.distance(faults[faults["mineralised"]].union_all()).max() < 700


def test_ore_images_layout_and_determinism(tmp_path):
    from PIL import Image

    from tests.conftest import ORE_IMAGES

    for mineral in pp.datasets.MINERALS:
        files = sorted((ORE_IMAGES / mineral).glob("*.png"))
        assert len(files) >= 40
        with Image.open(files[0]) as image:
            assert image.size == (256, 256) and image.mode == "RGB"
    # one random stream per class: the first images do not depend on how many are drawn
    pp.datasets.make_ore_images(tmp_path, per_class=2)
    for mineral in pp.datasets.MINERALS:
        for number in range(2):
            name = f"{mineral}/{mineral}_{number:03d}.png"
            ours = np.asarray(Image.open(tmp_path / name))
            committed = np.asarray(Image.open(ORE_IMAGES / name))
            np.testing.assert_array_equal(ours, committed)


def test_ore_image_classes_differ_in_colour():
    from PIL import Image

    from tests.conftest import ORE_IMAGES

    def bright_mean(mineral):
        pixels = np.concatenate([np.asarray(Image.open(f)).reshape(-1, 3)
                                 for f in sorted((ORE_IMAGES / mineral).glob("*.png"))[:10]])
        return pixels[pixels.mean(axis=1) > 120].mean(axis=0)

    gold, arsenopyrite = bright_mean("gold"), bright_mean("arsenopyrite")
    assert gold[2] < 0.5 * gold[0]            # yellow: little blue
    assert arsenopyrite[2] > 0.85 * arsenopyrite[0]  # white: balanced channels


def test_geophysics_generator_reproduces_committed_files(tmp_path):
    import rasterio

    pp.datasets.make_qinhang_geophysics(tmp_path)
    with rasterio.open(tmp_path / "magnetics.tif") as ours, rasterio.open(QINHANG / "magnetics.tif") as committed:
        assert ours.crs == committed.crs and ours.crs.to_epsg() == 4326
        assert ours.transform == committed.transform and ours.nodata == committed.nodata == -99999
        np.testing.assert_array_equal(ours.read(1), committed.read(1))
        assert ours.descriptions == ("mag_rtp",) and ours.tags(1)["units"] == "nT"
    ours, committed = gpd.read_file(tmp_path / "study_area.gpkg"), gpd.read_file(QINHANG / "study_area.gpkg")
    assert ours.crs.to_epsg() == committed.crs.to_epsg() == 4490
    assert ours.geometry.geom_equals_exact(committed.geometry, tolerance=1e-12).all()
    with pytest.raises(FileExistsError, match="overwrite=True"):
        pp.datasets.make_qinhang_geophysics(tmp_path)


def test_geophysics_facts():
    """Gap, coverage, alteration lows and the licence, as the data README says."""
    import warnings

    grid = pp.Grid.from_bounds((400000, 2400000, 439000, 2439000), shape=(390, 390), crs="EPSG:32649")
    with pytest.warns(UserWarning, match=r"magnetics.tif covers 9\d.\d % of the grid"):
        mag = pp.layers.from_raster(QINHANG / "magnetics.tif", grid)
    values = mag.values[0]
    assert 0.95 < np.isfinite(values).mean() < 0.99                        # the unflown block only
    gap = values[: int(7500 / 100), int(29000 / 100) + 2: int(35500 / 100) - 2]
    assert np.isnan(gap[5:-5]).all()
    area = pp.layers.study_area(pp.io.read_vector(QINHANG / "study_area.gpkg"), grid)
    assert 0.88 < area.attrs["area_fraction"] < 0.92
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in ("deposits", "undiscovered"):
            row, col, inside = pp.layers.deposit_pixels(pp.io.read_vector(QINHANG / f"{name}.gpkg"), grid)
            assert inside.all() and (area.values[0][row, col] == 1).all()   # no deposit outside the licence
    # alteration: the residual field is lower at deposits than over the rest of the Triassic
    residual = pp.layers.high_pass(mag, sigma=2000).values[0]
    row, col, _ = pp.layers.deposit_pixels(pp.io.read_vector(QINHANG / "deposits.gpkg"), grid)
    assert np.nanmedian(residual[row, col]) < np.nanmedian(residual) - 2
