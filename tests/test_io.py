import os
import shutil
import subprocess
import warnings

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
import torch
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
        samples = pp.io.read_samples(survey_csv, crs=32649, coord_scale=1000, elements=["Ag"], bdl_factor=1.0)
    assert samples.attrs["elements"] == ["Ag"]
    assert samples["Ag"].iloc[1] == pytest.approx(0.05)


def test_real_looking_columns(tmp_path):
    path = tmp_path / "survey.csv"
    path.write_text("east,north,Cu_ppm_511,Cu_flag,Au_ppb_FA\n500100,7500200,10,ok,<1\n500300,7500400,20,,5\n"
                    "500500,7500600,15,bad,2\n")
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
    kwargs.setdefault("coord_scale", 1000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(error, match=match):
            pp.io.read_samples(survey_csv, **kwargs)


def test_junk_in_a_numeric_column_names_column_and_rows(tmp_path):
    path = tmp_path / "junk.csv"
    path.write_text("X,Y,Cu\n421000,2416000,5\n421300,2416000,n.d.\n421000,2416300,7\n421300,2416300,8\n")
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
        assert src.overviews(1) == [2, 4]         # 300 px, then 150: the smallest fits one 256-px block
        assert src.profile["interleave"].lower() == "band"
    np.testing.assert_array_equal(pp.io.read_geotiff(path).values[0], da.values)


@pytest.mark.parametrize("size", [160, 390, 600, 1560])
def test_overview_levels_are_gdaladdos_own(tmp_path, size):
    """The levels gdaladdo picks by itself (GDAL >= 3.2, no levels given), which QGIS's pyramids dialog follows."""
    expected = {160: [], 390: [2], 600: [2, 4], 1560: [2, 4, 8]}[size]
    grid = pp.Grid.from_bounds((0, 0, size * 25, size * 25), resolution=25, crs=32649)
    path = pp.io.write_geotiff(grid.full(1.0), tmp_path / "ours.tif", style=False)
    with rasterio.open(path) as src:
        assert src.overviews(1) == expected
    if shutil.which("gdaladdo") is None:
        pytest.skip("gdaladdo (gdal-bin) is not installed")
    plain = pp.io.write_geotiff(grid.full(1.0), tmp_path / "plain.tif", overviews=False, style=False)
    subprocess.run(["gdaladdo", str(plain)], check=True, capture_output=True)
    with rasterio.open(plain) as src:
        assert src.overviews(1) == expected


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
    assert sorted(os.listdir(tmp_path)) == ["out.qml", "out.tif"]     # the map and its QGIS style
    (tmp_path / "maps").mkdir()     # a folder named as the output: refused as a folder, overwrite or not
    for overwrite in (False, True):
        with pytest.raises(OutputExistsError, match=r"maps' is a folder, not a file; give a file name inside it"):
            pp.io.write_geotiff(da, tmp_path / "maps", overwrite=overwrite)
    assert list((tmp_path / "maps").iterdir()) == []
    pp.io.write_geotiff(small_grid.full(2.0), path, overwrite=True)
    assert float(pp.io.read_geotiff(path).values.max()) == 2.0



def test_write_geotiff_checks_its_style_path_before_writing(tmp_path, small_grid):
    prob = small_grid.full(0.5)
    prob.attrs["kind"] = "probability"
    (tmp_path / "map.qml").write_text("mine")
    with pytest.raises(OutputExistsError, match=r"map.qml' exists; pass overwrite=True"):
        pp.io.write_geotiff(prob, tmp_path / "map.tif")
    assert sorted(os.listdir(tmp_path)) == ["map.qml"]     # the .tif was not written first
    assert (tmp_path / "map.qml").read_text() == "mine"
    pp.io.write_geotiff(prob, tmp_path / "map.tif", overwrite=True)
    assert "singlebandpseudocolor" in (tmp_path / "map.qml").read_text()


def test_every_output_gets_the_mode_of_a_new_file(tmp_path):
    from safetensors.torch import save_file

    umask = os.umask(0o022)
    os.umask(umask)
    with pp.io.atomic_output(tmp_path / "model.safetensors") as tmp:
        save_file({"w": torch.zeros(2)}, str(tmp))     # safetensors itself creates 0600 files
    with pp.io.atomic_output(tmp_path / "table.csv") as tmp:
        tmp.write_text("a\n")
    modes = {p.name: p.stat().st_mode & 0o777 for p in tmp_path.iterdir()}
    assert modes == {"model.safetensors": 0o666 & ~umask, "table.csv": 0o666 & ~umask}

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


# --- surveys as they come from laboratories -------------------------------------------------------------------

CLEAN = """X,Y,Sample,Au,Cu,Ag
421630.5,2416850.25,S-001,0.54,7.5,<0.05
420930,2416800,S-002,0.81,5.25,0.078
420950,2416350,S-003,<0.3,,0.086
421210,2415850,S-004,0.81,5,0.043
"""


def test_a_latin1_semicolon_export_with_decimal_commas_reads_like_its_clean_twin(tmp_path):
    clean, lab = tmp_path / "clean.csv", tmp_path / "lab.csv"
    clean.write_text(CLEAN, encoding="utf-8")
    # The same table as a European lab exports it: ';' separators, decimal commas, cp1252/latin-1 text with a
    # degree sign and a micro sign in the headers, and Windows line ends.
    rows = [line.split(",") for line in CLEAN.strip().splitlines()]
    rows[0] = ["X", "Y", "Sample", "Au µg/g", "Cu µg/g", "Ag °"]
    lab.write_bytes("\r\n".join(";".join(cell.replace(".", ",") for cell in row) for row in rows).encode("latin-1"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = pp.io.read_samples(clean, crs=32649)
        with pytest.raises(InputError, match=r"lab.csv is not 'utf-8-sig' text .*encoding='cp1252' or 'latin-1'"):
            pp.io.read_samples(lab, crs=32649, encoding="utf-8-sig")
        with pytest.raises(InputError, match=r"lab.csv parsed to a single column .* contains ';': pass sep=';'"):
            pp.io.read_samples(lab, crs=32649, encoding="latin-1")
        ours = pp.io.read_samples(lab, crs=32649, sep=";", decimal=",", encoding="latin-1")
    assert ours.attrs["elements"] == ["Au µg/g", "Cu µg/g", "Ag °"]
    for clean_name, lab_name in zip(reference.attrs["elements"], ours.attrs["elements"], strict=True):
        np.testing.assert_array_equal(ours[lab_name].to_numpy(), reference[clean_name].to_numpy())
    np.testing.assert_array_equal(ours.geometry.x, reference.geometry.x)
    np.testing.assert_array_equal(ours.geometry.y, [2416850.25, 2416800, 2416350, 2415850])
    assert ours.attrs["below_detection"] == {"Au µg/g": 1, "Ag °": 1}


def test_a_comma_is_read_as_the_file_shows_and_refused_where_it_does_not(tmp_path):
    # "1,234" alone: thousands (1234) or a decimal comma (1.234)? Nothing in the file says: refused by default
    path = tmp_path / "survey.txt"
    path.write_text("X;Y;Cu\n421000;2416000;1,234\n421300;2416000;5\n421000;2416300;7\n")
    with pytest.raises(ColumnError, match=r"survey.txt has values such as 'Cu': \['1,234'\] that read as thousands "
                                          r".*pass decimal='.' .* or decimal=','"):
        pp.io.read_samples(path, crs=32649, sep=";")
    assert pp.io.read_samples(path, crs=32649, sep=";", decimal=",")["Cu"].iloc[0] == pytest.approx(1.234)
    assert pp.io.read_samples(path, crs=32649, sep=";", decimal=".")["Cu"].iloc[0] == 1234
    # a decimal point declared refuses a comma that cannot group thousands
    path.write_text("X;Y;Cu\n421000;2416000;1,23\n421300;2416000;5\n421000;2416300;7\n")
    with pytest.raises(ColumnError, match=r"'Cu' has 1 values .*row 0: '1,23'"):
        pp.io.read_samples(path, crs=32649, sep=";", decimal=".")
    # a lab export with thousands separators beside decimal points (issue 27: Ba = "1,640" once read as 1.64)
    lines = ["X,Y,Au,Ba"] + [f'{421000 + 300 * i},2416000,0.{i + 1},"{(1640 if i % 2 else 842):,}"' for i in range(6)]
    path = tmp_path / "lab.csv"
    path.write_text("\n".join(lines) + "\n")
    samples = pp.io.read_samples(path, crs=32649)
    np.testing.assert_array_equal(samples["Ba"], [842, 1640] * 3)
    np.testing.assert_allclose(samples["Au"], [0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
    # and the European twin: decimal commas beside thousands-like values are decimal commas
    path.write_text("X;Y;Au;Ba\n" + "".join(f"{421000 + 300 * i};2416000;0,{i + 1};1,640\n" for i in range(6)))
    np.testing.assert_allclose(pp.io.read_samples(path, crs=32649, sep=";")["Ba"], 1.64)


@pytest.mark.parametrize(
    ("text", "kwargs", "match"),
    [
        ("", {}, r"empty.csv is empty: no header, no rows"),
        ("X,Y,Cu\n", {}, r"empty.csv has a header but no rows"),
        ("X,Y,Cu\n421000,2416000,5\n", {"sep": ""}, r"sep=''; valid: a separator"),
        ("X,Y,Cu\n421000,2416000,5\n", {"decimal": ";"}, r"decimal=';'; valid: '.', ','"),
        ("X,Y,Cu\n421000,2416000,5\n", {"encoding": "klingon"}, r"encoding='klingon' is not a text encoding"),
        ("X,Y,Cu\n421000,2416000,5\n", {"na_values": "n.d."}, r"na_values='n.d.'; valid: a list of texts"),
    ],
)
def test_unreadable_survey_files_get_clear_errors(tmp_path, text, kwargs, match):
    path = tmp_path / "empty.csv"
    path.write_text(text)
    with pytest.raises(InputError, match=match):
        pp.io.read_samples(path, crs=32649, **kwargs)


def test_a_mostly_text_element_is_reported_and_na_values_read_it(tmp_path):
    path = tmp_path / "survey.csv"
    lines = ["X,Y,Sample,Cu,Hg"] + [f"{421000 + 300 * i},{2416000 + 200 * (i % 3)},S{i},{5 + i},"
                                     f"{'n.d.' if i % 5 < 3 else 0.02 * i}" for i in range(10)]
    path.write_text("\n".join(lines) + "\n")
    with pytest.warns(UserWarning, match=r"columns read as text.*'Hg': 6 text values such as \['n.d.'\] beside 4 "
                                         r"numbers.*na_values"):
        samples = pp.io.read_samples(path, crs=32649)
    assert samples.attrs["elements"] == ["Cu"] and samples.attrs["text_columns"] == ["Hg"]
    samples = pp.io.read_samples(path, crs=32649, na_values=["N.D."])
    assert samples.attrs["elements"] == ["Cu", "Hg"]
    assert samples["Hg"].isna().sum() == 6 and samples["Hg"].iloc[3] == pytest.approx(0.06)
    with pytest.raises(ColumnError, match=r"element column 'Hg' of survey.csv has no values"):
        pp.io.read_samples(path, crs=32649, elements=["Hg"], na_values=["n.d.", "0.06", "0.08", "0.16", "0.18"])


@pytest.mark.parametrize(
    ("scale", "crs", "match"),
    [
        (1.0, "EPSG:32649", r"spans only 0.7 x 1 metre .*too small for a survey: they look like kilometres: pass "
                            r"coord_scale=1000"),
        (0.001, "EPSG:32649", r"spans only .*they look like degrees: pass crs='EPSG:4326'"),
        (1000.0, "EPSG:4326", r"coord_scale=1000.0 rescales coordinates.*geographic"),
        (1000.0, "EPSG:27700", r"falls at lon -?\d+.\d+, lat 7\d.\d+, outside the area where crs='EPSG:27700' "
                               r"\(OSGB36 / British National Grid\) is used"),
        (-1.0, "EPSG:4547", r"falls at .*outside the area where crs='EPSG:4547'.*zone prefix"),
    ],
)
def test_coordinates_that_cannot_be_in_the_crs_are_refused(tmp_path, scale, crs, match):
    path = tmp_path / "survey.csv"
    # km coordinates (the paper's Table 1); scale 0.001 of them gives degree-sized numbers
    rows = ["X,Y,Cu", "421.63,2416.85,5", "420.93,2416.80,6", "420.95,2416.35,7", "421.21,2415.85,8"]
    if scale == 0.001:
        rows = ["X,Y,Cu", "110.21,21.84,5", "110.20,21.83,6", "110.22,21.82,7", "110.21,21.81,8"]
        scale = 1.0
    if scale == -1.0:   # Gauss-Kruger eastings with the zone number in front (38 421 630), as Chinese surveys write
        rows = ["X,Y,Cu", "38421630,2416850,5", "38420930,2416800,6", "38420950,2416350,7"]
        scale = 1.0
    path.write_text("\n".join(rows) + "\n")
    with pytest.raises(CRSError, match=match):
        pp.io.read_samples(path, crs=crs, coord_scale=scale)


def test_degree_coordinates_in_a_geographic_crs_and_metres_in_a_projected_one_pass(tmp_path):
    path = tmp_path / "survey.csv"
    path.write_text("X,Y,Cu\n110.21,21.84,5\n110.20,21.83,6\n110.22,21.82,7\n")
    assert len(pp.io.read_samples(path, crs="EPSG:4326")) == 3
    path.write_text("X,Y,Cu\n421630,2416850,5\n420930,2416800,6\n420950,2416350,7\n")
    assert len(pp.io.read_samples(path, crs="EPSG:32649")) == 3
    with pytest.raises(CRSError, match=r"are not degrees, but crs='EPSG:4326' is geographic"):
        pp.io.read_samples(path, crs="EPSG:4326")
    path.write_text("X,Y,Cu\n38421630,2416850,5\n38420930,2416800,6\n38420950,2416350,7\n")
    assert len(pp.io.read_samples(path, crs="EPSG:4526")) == 3   # CGCS2000 / 3-degree GK zone 38: with the prefix


# ------------------------------------------------------------------------------------------ element columns
def test_element_symbols_are_pyrolites_first_92():
    ind = pytest.importorskip("pyrolite.geochem.ind")
    assert pp.io.ELEMENT_SYMBOLS == ind.common_elements(output="str", cutoff=92)


def _kolari_like(tmp_path, n=8):
    """A survey shaped like a Finnish till export: ids, years, two coordinate systems, map sheets, text
    fields, assays named Cu_ppm_511 with their flag columns Cu_511P_T."""
    rng = np.random.default_rng(0)
    east, north = 400000 + 500 * np.arange(n), 7500000 + 300 * np.arange(n)
    table = pd.DataFrame({
        "OBJECTID": np.arange(2259, 2259 + n), "Year": [81, 82] * (n // 2), "Observatio": 49114 + np.arange(n),
        "Northing": north, "Easting": east, "Northing_k": north + 3145, "Easting_kk": east + 3000134,
        "Map_sheet_": ["2741"] * n, "Material": ["till"] * n, "Sample_ID": np.arange(n), "S_ID": np.arange(n),
        "Cu_ppm_511": rng.uniform(10, 100, n).round(1), "Cu_511P_T": [None] * n,
        "Co_ppm_511": rng.uniform(5, 50, n).round(1), "Zr_ppm_511": [0.0] * (n - 1) + [3.0],
        "Zr_511P_T": ["<"] * (n - 1) + [None], "Sc": rng.uniform(5, 20, n).round(1),
    })
    path = tmp_path / "till.gpkg"
    gpd.GeoDataFrame(table, geometry=gpd.points_from_xy(east, north), crs="EPSG:3067").to_file(path)
    return path


def test_ids_coordinates_years_and_sheets_are_never_elements(tmp_path):
    path = _kolari_like(tmp_path)
    with pytest.warns(UserWarning, match=r"numeric columns not read as elements, since their names name no element "
                                         r"or oxide.*'OBJECTID', 'Year', 'Observatio', 'Northing', 'Easting', "
                                         r"'Northing_k', 'Easting_kk', 'Map_sheet_', 'Sample_ID', 'S_ID'"):
        samples = pp.io.read_samples(path)
    assert samples.attrs["elements"] == ["Cu_ppm_511", "Co_ppm_511", "Zr_ppm_511", "Sc"]
    for name in ["OBJECTID", "Year", "Northing", "Easting", "Easting_kk", "Map_sheet_", "Sample_ID", "S_ID"]:
        assert pp.io.element_name(name) is None
    # flag columns named for an element hold no numbers (blank or "<"): not elements either
    assert {"Material", "Cu_511P_T", "Zr_511P_T"}.isdisjoint(samples.attrs["elements"])
    # a column named like an element that copies a coordinate is a coordinate
    frame = gpd.read_file(path).assign(Sc=lambda f: f.geometry.y)
    frame.to_file(tmp_path / "with_y.gpkg")
    with pytest.warns(UserWarning, match="numeric columns not read"):
        assert "Sc" not in pp.io.read_samples(tmp_path / "with_y.gpkg").attrs["elements"]
    # naming a column reads it, whatever its name
    assert pp.io.read_samples(path, elements=["Year"]).attrs["elements"] == ["Year"]


@pytest.mark.parametrize(("column", "element"), [
    ("Cu", "Cu"), ("Cu_ppm_511", "Cu"), ("Au (ppb)", "Au"), ("SiO2", "SiO2"), ("Fe2O3T", "Fe2O3T"),
    ("CU_PPM", "Cu"), ("AU_PPB", "Au"), ("FE2O3", "Fe2O3"), ("CO2", "CO2"), ("S", "S"), ("Mn ppm", "Mn"),
    ("cu_ppm", "Cu"), ("au_ppb", "Au"), ("cu", None), ("k", None), ("year", None), ("sample_id", None),
    ("CU", None), ("SN", None), ("NO", None), ("No", None), ("N", None), ("He", None), ("LOI", None),
    ("ID", None), ("FID", None), ("pH", None), ("Ca/Mg", None), ("SN_NO", None), ("B_No", None), ("Time", None),
])
def test_element_name_reads_symbols_oxides_and_lab_capitals(column, element):
    assert pp.io.element_name(column) == element


def test_an_element_pattern_gives_clean_names_and_units(tmp_path):
    path = _kolari_like(tmp_path)
    samples = pp.io.read_samples(path, element_pattern="{el}_{unit}_*")
    assert samples.attrs["elements"] == ["Cu", "Co", "Zr"]
    assert samples.attrs["units"] == {"Cu": "ppm", "Co": "ppm", "Zr": "ppm"}
    raw = gpd.read_file(path)
    np.testing.assert_array_equal(samples["Cu"], raw["Cu_ppm_511"])
    assert pp.io.read_samples(path, element_pattern="{el}_ppm_*", elements=["Co"]).attrs["elements"] == ["Co"]
    # the grid's bands take the clean names
    grid = pp.Grid.from_bounds((399000, 7499000, 405000, 7503000), resolution=500, crs="EPSG:3067")
    assert list(pp.interpolate.idw(samples, ["Cu"], grid, k=4)["band"].values) == ["Cu"]
    with pytest.raises(ColumnError, match=r"element_pattern='\{el\}_\*' gives one name to several columns of "
                                          r"till.gpkg: \{'Cu': \['Cu_ppm_511', 'Cu_511P_T'\]"):
        pp.io.read_samples(path, element_pattern="{el}_*")
    with pytest.raises(ColumnError, match=r"element_pattern='\{el\}-ppb' matches no column of till.gpkg"):
        pp.io.read_samples(path, element_pattern="{el}-ppb")
    with pytest.raises(InputError, match=r"element_pattern='Cu_\*'; valid: a column-name pattern with \{el\} once"):
        pp.io.read_samples(path, element_pattern="Cu_*")
