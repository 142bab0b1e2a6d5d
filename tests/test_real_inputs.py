"""Real data in, as geologists have it: runs on rasters alone, deposits in any form, grids from a raster,
class-coded GIS grids with their class tables."""

import json
import shutil

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio

import prospect as pp
from prospect.cli import main as cli
from prospect.errors import ColumnError, ConfigError, CRSError, InputError
from tests.conftest import ROOT

SAMPLES = ROOT / "data_samples" / "qinhang"


@pytest.fixture(scope="module")
def rasters(tmp_path_factory):
    """The generated class-coded rasters and deposits.csv (as data_samples holds them), made afresh."""
    return pp.datasets.make_qinhang_rasters(tmp_path_factory.mktemp("rasters"))


def test_the_committed_rasters_are_what_the_generator_makes(rasters):
    for name in ("geology_classes.tif", "fault_distance_classes.tif"):
        with rasterio.open(rasters / name) as made, rasterio.open(SAMPLES / name) as kept:
            np.testing.assert_array_equal(made.read(), kept.read())
            assert made.transform == kept.transform and made.crs == kept.crs
    pd.testing.assert_frame_equal(pd.read_csv(rasters / "deposits.csv"), pd.read_csv(SAMPLES / "deposits.csv"))


def test_deposits_from_a_csv_and_from_a_raster_equal_those_of_the_vector_file(rasters, tmp_path):
    vector = pp.io.read_vector(SAMPLES / "deposits.gpkg")
    table = pp.io.read_deposits(rasters / "deposits.csv", crs="EPSG:32649")
    assert table.crs.to_epsg() == 32649 and table["name"].tolist() == vector["name"].tolist()
    np.testing.assert_allclose(table.geometry.x, vector.geometry.x, atol=0.05)    # the CSV keeps 0.1 m
    np.testing.assert_allclose(table.geometry.y, vector.geometry.y, atol=0.05)
    # a raster of deposit cells (value 7 marks them): one point per cell, at the cell's centre
    grid = pp.Grid.like(rasters / "geology_classes.tif")
    row, col, inside = pp.layers.deposit_pixels(vector, grid)
    cells = np.zeros(grid.shape, np.uint8)
    cells[row[inside], col[inside]] = 7
    path = tmp_path / "deposit_cells.tif"
    pp.io.write_geotiff(grid.wrap(cells[None].astype(np.float32), bands=["deposits"]), path)
    points = pp.io.read_deposits(path, value=7)
    expected = sorted({(float(grid.x[c]), float(grid.y[r])) for r, c in zip(row[inside], col[inside], strict=True)})
    got = sorted(zip(points.geometry.x, points.geometry.y, strict=True))
    assert len(got) == len(expected) and np.allclose(got, expected, rtol=0, atol=1e-6)
    assert points.crs == grid.crs
    with pytest.raises(InputError, match=r"no cell equals value=3"):
        pp.io.read_deposits(path, value=3)
    with pytest.raises(CRSError, match=r"crs=None; a text file's coordinates need their CRS"):
        pp.io.read_deposits(rasters / "deposits.csv")
    with pytest.raises(ColumnError, match=r"no coordinate column \['east'\]"):
        pp.io.read_deposits(rasters / "deposits.csv", crs="EPSG:32649", x="east")


def test_like_takes_the_reference_rasters_grid_exactly(rasters):
    grid = pp.Grid.like(rasters / "geology_classes.tif")
    with rasterio.open(rasters / "geology_classes.tif") as src:
        assert grid.shape == src.shape and grid.crs.to_epsg() == src.crs.to_epsg()
        assert grid.transform.almost_equals(src.transform, precision=1e-9)
        assert tuple(grid.bounds) == tuple(src.bounds)
    layer = pp.layers.from_raster(rasters / "geology_classes.tif", grid)
    with rasterio.open(rasters / "geology_classes.tif") as src:
        np.testing.assert_array_equal(layer.values[0], src.read(1).astype(np.float32))   # no resampling at all
    with pytest.raises(FileNotFoundError, match=r"like=.*does not exist"):
        pp.Grid.like(rasters / "nothing.tif")


def test_a_class_table_becomes_the_legend_and_codes_alone_stay_ordered(rasters):
    grid = pp.Grid.like(rasters / "geology_classes.tif")
    geology = pp.layers.from_raster(rasters / "geology_classes.tif", grid, name="unit")
    names = gpd.read_file(rasters / "geology_classes.tif.vat.dbf")
    assert geology.attrs["kind"] == "categorical" and geology.attrs["resampling"] == "nearest"
    assert pp.io.parse_legend(geology.attrs["legend"]) == dict(zip(names["Value"], names["UNIT"], strict=True))
    faults = pp.layers.from_raster(rasters / "fault_distance_classes.tif", grid, name="fault_class")
    assert faults.attrs["kind"] == "ordinal" and list(pp.io.parse_legend(faults.attrs["legend"])) == list(range(1, 11))
    plain = pp.layers.from_raster(rasters / "fault_distance_classes.tif", grid, name="fault_class", categorical=False)
    assert plain.attrs["kind"] == "continuous" and "legend" not in plain.attrs
    stack = pp.layers.stack(geology, faults, plain.assign_coords(band=["fault_number"]))
    assert pp.baselines.categorical_bands(stack) == [0]        # ordered classes keep their order for the models


def _raster_run(tmp_path, rasters, **changes):
    text = (ROOT / "workflows" / "qinhang_rasters.toml").read_text().replace("../data_samples/qinhang", str(rasters))
    text = text.replace(str(rasters) + "/magnetics.tif", str(SAMPLES / "magnetics.tif"))
    text = text.replace(str(rasters) + "/undiscovered.gpkg", str(SAMPLES / "undiscovered.gpkg"))
    for old, new in changes.items():
        assert old in text, old
        text = text.replace(old, new)
    path = tmp_path / "rasters.toml"
    path.write_text(text)
    return path


def test_a_run_on_rasters_alone(rasters, tmp_path, capsys):
    # three folds, two classical rows on at most 300 positives a fold: the whole run in seconds
    table = pd.read_csv(rasters / "deposits.csv")       # and two deposits beyond the grid, as real lists have
    pd.concat([table, table.iloc[:2].assign(name=["far east", "far north"], x=[480000.0, 420000.0],
                                            y=[2420000.0, 2480000.0])]).to_csv(tmp_path / "deposits.csv", index=False)
    config = _raster_run(tmp_path, rasters, **{"k = 5": "k = 3", 'label = "ResNet18"\nname = "resnet18"\n': "",
                                               'label = "Gradient boosting"\nname = "gradient_boosting"\n': "",
                                               "map_stride = 4\n": "map_stride = 4\nmax_positives = 300\n",
                                               str(rasters / "deposits.csv"): str(tmp_path / "deposits.csv")})
    text = config.read_text()
    text = text[:text.index("[[experiments.models]]\n\n")] + text[text.index("[quick.heldout]"):]   # no network
    config.write_text(text)
    assert cli(["check", str(config)]) == 0
    said = capsys.readouterr().out
    assert "no survey (rasters and vector layers alone" in said and "unit (categorical)" in said
    assert "'fault_class (ordinal)', 'mag_rtp']" in said
    out = tmp_path / "out"
    assert cli(["run", str(config), "--out", str(out)]) == 0
    heldout = pd.read_csv(out / "heldout.csv")
    assert sorted(heldout["label"]) == ["Logistic regression", "Random forest"]
    assert heldout["deposits"].eq(32).all() and (heldout["auc"] > 0.5).all()
    assert not (out / "screening.csv").exists() and not (out / "tiles.csv").exists() and not (out / "elements").exists()
    with rasterio.open(out / "stack.tif") as src:
        assert src.descriptions == ("unit", "fault_class", "mag_rtp") and src.shape == (390, 390)
    with rasterio.open(out / "prospectivity.tif") as src, rasterio.open(rasters / "geology_classes.tif") as ref:
        assert src.transform.almost_equals(ref.transform, precision=1e-9)
    report = (out / "report.md").read_text()
    assert "rasters and vector layers alone (no survey)" in report and "Tile tables" in report
    # no [map] model_label: the best held-out row maps, and the report says so
    best = heldout.sort_values("auc", ascending=False)["label"].iloc[0]
    assert f"**The map** ({best}, mean of its 3 fold models; the best held-out AUC of 2 rows" in report
    # the deposits the report counts are the deposits evaluated, and the two off the grid are named
    assert "32 of the 34 known deposits given (the other 2 lie off the grid" in report
    assert "2 of 34 lie off the grid and are not used: far east, far north" in report
    assert "Skipped: screening and IDW: no survey ([samples])" in report
    log = (out / "run.log").read_text()
    assert "1 screening: skipped - no survey" in log and "3 tiles: skipped - no [experiments] row trains on tiles" \
        in log and "4 experiments" not in log
    assert (out / "layers" / "unit.tif").exists()              # the categorical band for QGIS, with its legend
    recorded = json.loads((out / "config.json").read_text())["outputs"]
    assert {p.name for p in out.iterdir()} <= {"config.json", *recorded}


def test_survey_sections_without_a_survey_and_a_run_without_evidence_are_refused(rasters, tmp_path, capsys):
    config = _raster_run(tmp_path, rasters, **{"[heldout]\n": "[idw]\npower = 2\n\n[heldout]\n"})
    assert cli(["check", str(config)]) == 2
    assert "[idw] need(s) a survey, and the file has no [samples]" in capsys.readouterr().err
    text = _raster_run(tmp_path, rasters).read_text()
    bare = text.split("[[raster]]")[0] + "[experiments]" + text.split("[experiments]")[1]
    (tmp_path / "bare.toml").write_text(bare.replace('like = "', 'like = "'))
    with pytest.raises(ConfigError, match=r"no evidence: give a survey \(\[samples\]\) or at least one"):
        pp.pipeline.check_inputs(pp.pipeline.load_config(tmp_path / "bare.toml"))


def test_deposits_off_the_grid_are_counted_and_named(rasters, tmp_path):
    table = pd.read_csv(rasters / "deposits.csv")
    moved = pd.concat([table, table.iloc[:2].assign(name=["far east", "far north"], x=[480000.0, 420000.0],
                                                    y=[2420000.0, 2480000.0])])
    moved.to_csv(tmp_path / "deposits.csv", index=False)
    config = _raster_run(tmp_path, rasters, **{str(rasters / "deposits.csv"): str(tmp_path / "deposits.csv")})
    inputs = pp.pipeline.check_inputs(pp.pipeline.load_config(config))
    assert any("2 of 34 lie off the grid and are not used: far east, far north" in n for n in inputs.notes)
    shutil.rmtree(tmp_path / "out", ignore_errors=True)


def test_gdal_category_names_are_read_as_the_legend_so_our_own_layers_read_back(tmp_path):
    grid = pp.Grid.from_bounds((0, 0, 1000, 1000), shape=(10, 10), crs="EPSG:32649")
    codes = np.repeat(np.array([1, 2, 3, 2, 1], np.float32), 20).reshape(1, 10, 10)
    layer = grid.wrap(codes, bands=["unit"], attrs={"kind": "categorical", "legend": "1=granite;2=schist;3=skarn"})
    path = pp.io.write_geotiff(layer, tmp_path / "unit.tif")       # names in unit.tif.aux.xml, as GDAL writes them
    assert pp.layers.class_table(path) == ({1: "granite", 2: "schist", 3: "skarn"}, True)
    back = pp.layers.from_raster(path, grid)
    assert back.attrs["kind"] == "categorical" and back.attrs["legend"] == "1=granite;2=schist;3=skarn"
    np.testing.assert_array_equal(back.values, codes)
    assert pp.layers.class_table(SAMPLES / "magnetics.tif") is None     # a continuous grid has no class table
