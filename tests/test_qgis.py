"""QGIS styles and projects (prospect.qgis), the categorical and unit metadata of written GeoTIFFs."""

import shutil
import subprocess
from xml.etree import ElementTree

import geopandas as gpd
import matplotlib
import numpy as np
import pytest
import rasterio
from shapely.geometry import LineString, Point, box

import prospect as pp
from prospect.errors import ColumnError, InputError, OutputExistsError
from tests.conftest import open_in_qgis

GRID = pp.Grid.from_bounds((500000, 4000000, 500000 + 300 * 100, 4000000 + 280 * 100), resolution=100, crs=32650)


def _renderer(qml):
    return ElementTree.parse(qml).getroot().find("pipe/rasterrenderer")


def _ramp(renderer):
    items = renderer.findall("rastershader/colorrampshader/item")
    return [float(i.get("value")) for i in items], [i.get("color") for i in items]


def _probability(seed=0):
    values = np.random.default_rng(seed).beta(2, 5, GRID.shape).astype(np.float32) * 0.7 + 0.1
    values[:10, :10] = np.nan
    return GRID.wrap(values, name="prospectivity", attrs={"kind": "probability"})


def test_every_kind_of_raster_gets_its_own_style(tmp_path):
    prob = _probability()
    pp.io.write_geotiff(prob, tmp_path / "prospectivity.tif")
    values, colours = _ramp(_renderer(tmp_path / "prospectivity.qml"))
    finite = prob.values[np.isfinite(prob.values)]
    # a probability ramp fitted to the data (the map never reaches 0 or 1 here), in matplotlib's magma
    assert values[0] == pytest.approx(finite.min(), rel=1e-6) and values[-1] == pytest.approx(finite.max(), rel=1e-6)
    assert colours[0] == matplotlib.colors.to_hex(matplotlib.colormaps["magma"](0.0))
    spread = GRID.wrap(np.abs(prob.values - 0.3), name="uncertainty", attrs={"kind": "uncertainty"})
    pp.io.write_geotiff(spread, tmp_path / "uncertainty.tif")
    values, colours = _ramp(_renderer(tmp_path / "uncertainty.qml"))
    assert values[0] == 0.0 and values[-1] == pytest.approx(np.nanmax(spread.values), rel=1e-6)
    assert colours[-1] == matplotlib.colors.to_hex(matplotlib.colormaps["viridis"](1.0))
    # an evidence stack: band 1 stretched over mean +- 2 sd within its range (QGIS's own default), not RGB
    cu = np.random.default_rng(1).lognormal(3, 1, GRID.shape).astype(np.float32)
    stack = GRID.wrap(np.stack([cu, cu / 2, cu / 3]), bands=["Cu", "Pb", "Zn"], attrs={"units": "ppm"})
    pp.io.write_geotiff(stack, tmp_path / "stack.tif")
    renderer = _renderer(tmp_path / "stack.qml")
    values, _ = _ramp(renderer)
    assert renderer.get("band") == "1" and renderer.get("type") == "singlebandpseudocolor"
    assert values[0] == pytest.approx(max(cu.min(), cu.mean() - 2 * cu.std()), rel=1e-5)
    assert values[-1] == pytest.approx(min(cu.max(), cu.mean() + 2 * cu.std()), rel=1e-5)
    # contributions: every band on a diverging ramp symmetric about 0 (red lifts the score, blue lowers it)
    share = np.random.default_rng(2).normal(0.3, 1.0, GRID.shape).astype(np.float32)
    shares = GRID.wrap(np.stack([share, -share]), bands=["Cu", "fault_distance"], attrs={"kind": "contributions"})
    pp.io.write_geotiff(shares, tmp_path / "contributions.tif")
    for band, values_of_band in ((1, share), (2, -share)):
        values, colours = _ramp(ElementTree.fromstring(pp.styles.raster_renderer(tmp_path / "contributions.tif",
                                                                                 band)))
        low = max(values_of_band.min(), values_of_band.mean() - 2 * values_of_band.std())
        high = min(values_of_band.max(), values_of_band.mean() + 2 * values_of_band.std())
        assert values[0] == pytest.approx(-values[-1]) and values[-1] == pytest.approx(max(-low, high), rel=1e-4)
        assert colours[-1] == matplotlib.colors.to_hex(matplotlib.colormaps["RdBu_r"](1.0))


def test_categorical_layer_is_integer_codes_with_colours_names_and_a_legend(tmp_path):
    units = gpd.GeoDataFrame({"unit": ["Triassic", "Permian", "Devonian"]},
                             geometry=[box(500000, 4000000, 510000, 4028000), box(510000, 4000000, 520000, 4028000),
                                       box(520000, 4000000, 525000, 4028000)], crs=32650)
    layer = pp.layers.rasterize_categorical(units, "unit", GRID)
    path = pp.io.write_geotiff(layer, tmp_path / "unit.tif")
    legend = pp.layers.legend(layer)
    with rasterio.open(path) as src:
        assert src.dtypes == ("uint8",) and src.nodata == 0 and src.overviews(1) == [2]
        codes = src.read(1)
        table = src.colormap(1)
    np.testing.assert_array_equal(codes, np.nan_to_num(layer.values[0]).astype(np.uint8))
    palette = {int(e.get("value")): (e.get("label"), e.get("color"))
               for e in _renderer(tmp_path / "unit.qml").findall("colorPalette/paletteEntry")}
    assert {code: label for code, (label, _) in palette.items()} == legend     # the legend QGIS shows
    for code, (_, colour) in palette.items():                                 # the colours of the GeoTIFF's own table
        assert colour == "#{:02x}{:02x}{:02x}".format(*table[code][:3])
    back = pp.io.read_geotiff(path)
    np.testing.assert_array_equal(back.values, layer.values)                    # codes, NaN outside every unit
    if shutil.which("gdalinfo") is None:
        pytest.skip("gdalinfo (gdal-bin) is not installed")
    info = subprocess.run(["gdalinfo", "-json", str(path)], capture_output=True, text=True, check=True).stdout
    import json

    band = json.loads(info)["bands"][0]
    assert band["categories"][1:] == [legend[c] for c in sorted(legend)]        # GDAL reads the category names


def test_element_units_reach_the_band_metadata(tmp_path):
    samples = gpd.GeoDataFrame({"Cu": [10.0, 20.0, 30.0, 25.0], "Au": [1.0, 3.0, 2.0, 5.0]},
                               geometry=[Point(500500, 4000500), Point(520000, 4020000), Point(505000, 4025000),
                                         Point(528000, 4003000)], crs=32650)
    csv = tmp_path / "survey.csv"
    samples.assign(X=samples.geometry.x, Y=samples.geometry.y).drop(columns="geometry").to_csv(csv, index=False)
    read = pp.io.read_samples(csv, crs=32650, units={"Au": "ng/g", "*": "ppm"})
    assert read.attrs["units"] == {"Cu": "ppm", "Au": "ng/g"}
    logged = pp.geochem.transform(read, "log10", elements=["Au"])
    assert logged.attrs["units"] == {"Cu": "ppm", "Au": "log10(ng/g)"}
    faults = gpd.GeoDataFrame(geometry=[LineString([(500000, 4000000), (530000, 4028000)])], crs=32650)
    stack = pp.layers.stack(pp.interpolate.idw(logged, ["Cu", "Au"], GRID, k=3),
                            pp.layers.distance_to(faults, GRID, name="fault_distance"))
    pp.io.write_geotiff(stack, tmp_path / "stack.tif")
    with rasterio.open(tmp_path / "stack.tif") as src:
        assert src.units == ("ppm", "log10(ng/g)", "metre")
    assert pp.qgis.raster_layer(tmp_path / "stack.tif", band=2).name == "Au (log10(ng/g))"
    with pytest.raises(ColumnError, match=r"units names \['Pb'\], which are not element columns; valid: \['Cu', "):
        pp.io.read_samples(csv, crs=32650, units={"Pb": "ppm"})
    with pytest.raises(InputError, match=r"units=5; valid: a unit for every element"):
        pp.io.read_samples(csv, crs=32650, units=5)


def test_write_project_checks_its_arguments_first(tmp_path):
    pp.io.write_geotiff(_probability(), tmp_path / "map.tif")
    layer = pp.qgis.raster_layer(tmp_path / "map.tif")
    with pytest.raises(InputError, match=r"path='.*map.qgz'; valid: a file name ending in .qgs"):
        pp.qgis.write_project(tmp_path / "map.qgz", [layer])
    with pytest.raises(InputError, match=r"layers is empty"):
        pp.qgis.write_project(tmp_path / "p.qgs", [])
    (tmp_path / "p.qgs").write_text("mine")
    with pytest.raises(OutputExistsError, match=r"p.qgs' exists; pass overwrite=True"):
        pp.qgis.write_project(tmp_path / "p.qgs", [layer])
    assert (tmp_path / "p.qgs").read_text() == "mine"
    with pytest.raises(InputError, match=r"band=4; map.tif has bands 1..1"):
        pp.qgis.raster_layer(tmp_path / "map.tif", band=4)
    points = gpd.GeoDataFrame({"name": ["a"]}, geometry=[Point(501000, 4001000)], crs=32650)
    points.to_file(tmp_path / "points.gpkg")
    with pytest.raises(InputError, match=r"label='rank' is not a field of points.gpkg; fields are \['name'\]"):
        pp.qgis.vector_layer(tmp_path / "points.gpkg", label="rank")


def test_a_project_opens_in_qgis_with_every_layer_styled(tmp_path, qgis_python):
    folder = tmp_path / "study"
    folder.mkdir()
    pp.io.write_geotiff(_probability(), folder / "prospectivity.tif")
    areas = pp.evaluation.targets(_probability(), area_fraction=0.05)
    areas.to_file(folder / "targets.gpkg", layer="targets")
    layers = [pp.qgis.vector_layer(folder / "targets.gpkg", "targets", "target areas", outline="cyan", label="rank"),
              pp.qgis.raster_layer(folder / "prospectivity.tif")]
    pp.qgis.write_project(folder / "project.qgs", layers, title="a test")
    moved = shutil.move(folder, tmp_path / "moved")             # relative paths: the folder travels whole
    seen = open_in_qgis(qgis_python, tmp_path / "moved" / "project.qgs", tmp_path / "render.png")
    assert seen["read"] and seen["crs"] == "EPSG:32650" and seen["title"] == "a test" and not seen["absolute_paths"]
    targets, raster = seen["layers"]
    assert targets["valid"] and targets["renderer"] == "singleSymbol" and targets["label_field"] == "rank"
    assert targets["features"] == len(areas) and targets["source"].startswith(str(moved))
    assert raster["valid"] and raster["renderer"] == "singlebandpseudocolor" and raster["source"].startswith(str(moved))
    assert seen["render"]["colours"] > 50                        # a map, not a flat image
