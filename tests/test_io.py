import os
import warnings

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from shapely.geometry import Point

import prospect as pp
from prospect.errors import ColumnError, CRSError, InputError, MissingFileError, OutputExistsError

CSV = """X,Y,Sample,Ag,Au,Cu
421.63,2416.85,S-001,0.078,0.54,7
420.93,2416.80,S-002,<0.05,0.81,5
420.95,2416.35,S-003,0.086,<0.3,
421.21,2415.85,S-004,0.043,0.81,5
"""


@pytest.fixture
def survey_csv(tmp_path):
    path = tmp_path / "survey.csv"
    path.write_text(CSV)
    return path


def test_read_samples_km_coordinates_and_below_detection(survey_csv):
    with pytest.warns(UserWarning, match=r"2 below-detection values replaced by 0.5 x"):
        samples = pp.io.read_samples(survey_csv, crs="EPSG:32649", coord_scale=1000)
    assert samples.crs.to_epsg() == 32649
    assert samples.attrs["elements"] == ["Ag", "Au", "Cu"]
    assert samples.attrs["below_detection"] == {"Ag": 1, "Au": 1}
    np.testing.assert_allclose(samples.geometry.x, [421630, 420930, 420950, 421210])
    np.testing.assert_allclose(samples.geometry.y, [2416850, 2416800, 2416350, 2415850])
    np.testing.assert_allclose(samples["Ag"], [0.078, 0.025, 0.086, 0.043])
    np.testing.assert_allclose(samples["Au"], [0.54, 0.81, 0.15, 0.81])
    assert np.isnan(samples["Cu"].iloc[2])  # blank stays missing
    assert list(samples["Sample"]) == ["S-001", "S-002", "S-003", "S-004"]  # text kept, not an element


def test_read_samples_bdl_factor_and_element_choice(survey_csv):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        samples = pp.io.read_samples(survey_csv, crs=32649, elements=["Ag"], bdl_factor=1.0)
    assert samples.attrs["elements"] == ["Ag"]
    assert samples["Ag"].iloc[1] == pytest.approx(0.05)


def test_real_looking_columns(tmp_path):
    path = tmp_path / "survey.csv"
    path.write_text("east,north,Cu_ppm_511,Cu_flag,Au_ppb_FA\n1,2,10,ok,<1\n3,4,20,,5\n5,6,15,bad,2\n")
    with pytest.warns(UserWarning):
        samples = pp.io.read_samples(path, x="east", y="north", crs="EPSG:32750")
    assert samples.attrs["elements"] == ["Cu_ppm_511", "Au_ppb_FA"]


def test_read_samples_from_geopackage_reprojects(tmp_path):
    frame = gpd.GeoDataFrame({"Cu": [1.0, 2.0]}, geometry=[Point(113.0, 21.8), Point(113.1, 21.9)], crs=4326)
    frame.to_file(tmp_path / "pts.gpkg")
    samples = pp.io.read_samples(tmp_path / "pts.gpkg", crs="EPSG:32649")
    assert samples.crs.to_epsg() == 32649
    expected = frame.to_crs(32649)
    np.testing.assert_allclose(samples.geometry.x, expected.geometry.x)
    assert samples.attrs["elements"] == ["Cu"]


def test_read_samples_from_shapefile(tmp_path):
    frame = gpd.GeoDataFrame({"Zn": [3.0]}, geometry=[Point(420000, 2416000)], crs=32649)
    frame.to_file(tmp_path / "pts.shp")
    samples = pp.io.read_samples(tmp_path / "pts.shp")
    assert samples["Zn"].tolist() == [3.0] and samples.crs.to_epsg() == 32649


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (dict(x="East"), ColumnError, r"x='East' is not a column of survey.csv; columns are \['X', 'Y'"),
        (dict(y="North"), ColumnError, r"y='North' is not a column"),
        (dict(elements=["Ag", "Hg"]), ColumnError, r"elements \['Hg'\] are not columns.*available: \['Sample', 'Ag'"),
        (dict(elements=["Sample"]), ColumnError, r"'Sample' has 4 values.*row 0: 'S-001'"),
        (dict(crs="EPSG:4326", coord_scale=1000), CRSError, r"geographic"),
        (dict(coord_scale=0), InputError, r"coord_scale=0 must be a positive number"),
    ],
)
def test_read_samples_bad_input(survey_csv, kwargs, error, match):
    kwargs.setdefault("crs", "EPSG:32649")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(error, match=match):
            pp.io.read_samples(survey_csv, **kwargs)


def test_junk_in_a_numeric_column_names_column_and_rows(tmp_path):
    path = tmp_path / "junk.csv"
    path.write_text("X,Y,Cu\n1,1,5\n2,2,n.d.\n3,3,7\n4,4,8\n")
    with pytest.raises(ColumnError, match=r"'Cu' has 1 values.*row 1: 'n.d.'"):
        pp.io.read_samples(path, crs=32649)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(MissingFileError, match=r"path='.*nowhere.csv' does not exist"):
        pp.io.read_samples(tmp_path / "nowhere.csv", crs=32649)
    with pytest.raises(FileNotFoundError):
        pp.io.read_vector(tmp_path / "nowhere.gpkg")


def test_read_vector_crs_rules(tmp_path):
    frame = gpd.GeoDataFrame({"unit": ["T"]}, geometry=[Point(420000, 2416000)])
    with pytest.warns(UserWarning, match="crs"):
        frame.to_file(tmp_path / "nocrs.shp")
    with pytest.raises(CRSError, match=r"nocrs.shp has no CRS; pass crs="):
        pp.io.read_vector(tmp_path / "nocrs.shp")
    assert pp.io.read_vector(tmp_path / "nocrs.shp", crs=32649).crs.to_epsg() == 32649
    frame.set_crs(32649).to_file(tmp_path / "utm.gpkg")
    back = pp.io.read_vector(tmp_path / "utm.gpkg", crs=4326)
    assert back.crs.to_epsg() == 4326 and 110 < back.geometry.x[0] < 110.5


def test_geotiff_round_trip_keeps_georeference_nodata_and_names(tmp_path, small_grid):
    values = np.arange(200, dtype=np.float32).reshape(2, 10, 10)
    values[0, 0, 0] = np.nan
    da = small_grid.wrap(values, bands=["Cu", "Au"], attrs={"log10": "False", "units": "ppm"})
    path = pp.io.write_geotiff(da, tmp_path / "stack.tif")
    with rasterio.open(path) as src:
        assert src.crs.to_epsg() == 32649 and src.transform == small_grid.transform
        assert src.nodata == -9999.0 and src.dtypes == ("float32", "float32")
        assert src.descriptions == ("Cu", "Au")
        assert src.profile["compress"] == "deflate"
        assert float(src.tags(2)["STATISTICS_MAXIMUM"]) == 199.0
        assert src.read(1)[0, 0] == -9999.0
    back = pp.io.read_geotiff(path)
    assert back.dims == ("band", "y", "x") and list(back["band"].values) == ["Cu", "Au"]
    assert pp.Grid.from_dataarray(back) == small_grid
    np.testing.assert_array_equal(np.isnan(back.values), np.isnan(values))
    np.testing.assert_array_equal(back.values[np.isfinite(values)], values[np.isfinite(values)])
    assert back.attrs["units"] == "ppm"
    np.testing.assert_allclose(back["x"], small_grid.x)


def test_large_geotiff_is_tiled_with_overviews(tmp_path):
    grid = pp.Grid.from_bounds((0, 0, 600 * 25, 520 * 25), resolution=25, crs=32649)
    da = grid.wrap(np.random.default_rng(0).random((520, 600), dtype=np.float32))
    path = pp.io.write_geotiff(da, tmp_path / "big.tif")
    with rasterio.open(path) as src:
        assert src.block_shapes == [(256, 256)]
        assert src.overviews(1) == [2]
        assert src.profile["interleave"].lower() == "band"
    np.testing.assert_array_equal(pp.io.read_geotiff(path).values[0], da.values)


def test_write_geotiff_refuses_existing_and_leaves_no_partial_file(tmp_path, small_grid):
    path = tmp_path / "out.tif"
    da = small_grid.full(1.0)
    pp.io.write_geotiff(da, path)
    before = path.read_bytes()
    with pytest.raises(OutputExistsError, match=r"out.tif' exists; pass overwrite=True"):
        pp.io.write_geotiff(small_grid.full(2.0), path)
    assert path.read_bytes() == before
    with pytest.raises(InputError, match=r"nodata=1.0 occurs among the raster's real values"):
        pp.io.write_geotiff(da, tmp_path / "clash.tif", nodata=1.0)
    assert sorted(os.listdir(tmp_path)) == ["out.tif"]
    pp.io.write_geotiff(small_grid.full(2.0), path, overwrite=True)
    assert float(pp.io.read_geotiff(path).values.max()) == 2.0


def test_write_geotiff_needs_crs(tmp_path, small_grid):
    da = small_grid.full(1.0)
    da = da.drop_vars("spatial_ref")
    with pytest.raises(CRSError, match=r"the array has no CRS"):
        pp.io.write_geotiff(da, tmp_path / "x.tif")


def test_dask_backed_raster_is_written_block_by_block(tmp_path):
    dask_array = pytest.importorskip("dask.array")
    grid = pp.Grid.from_bounds((0, 0, 300 * 10, 700 * 10), resolution=10, crs=32649)
    values = np.random.default_rng(1).random((2, 700, 300), dtype=np.float32)
    values[1, 5, 5] = np.nan
    eager = grid.wrap(values, bands=["a", "b"])
    lazy = eager.copy(data=dask_array.from_array(values, chunks=(2, 100, 300)))
    pp.io.write_geotiff(lazy, tmp_path / "lazy.tif")
    pp.io.write_geotiff(eager, tmp_path / "eager.tif")
    with rasterio.open(tmp_path / "lazy.tif") as a, rasterio.open(tmp_path / "eager.tif") as b:
        np.testing.assert_array_equal(a.read(), b.read())
        assert a.tags(2) == b.tags(2)
        assert float(a.tags(1)["STATISTICS_MEAN"]) == pytest.approx(float(values[0].mean()), rel=1e-6)
        assert float(a.tags(2)["STATISTICS_STDDEV"]) == pytest.approx(float(np.nanstd(values[1])), rel=1e-5)
