import geopandas as gpd
import numpy as np
import pytest
import shapely
from shapely.geometry import LineString, Point, Polygon

import prospect as pp
from prospect.errors import CRSError, GridMismatchError, InputError
from prospect.layers import deposit_layer, distance_to, legend, rasterize_categorical, stack
from tests.conftest import QINHANG

GRID = pp.Grid.from_bounds((500000, 4000000, 501000, 4000800), resolution=20, crs="EPSG:32650")


def test_distance_to_a_straight_fault_is_the_x_offset():
    fault = gpd.GeoDataFrame(geometry=[LineString([(500437.0, 3990000), (500437.0, 4010000)])], crs="EPSG:32650")
    distance = distance_to(fault, GRID, name="fault_distance")
    assert distance.dims == ("band", "y", "x") and list(distance["band"].values) == ["fault_distance"]
    expected = np.broadcast_to(np.abs(GRID.x - 500437.0), GRID.shape)
    np.testing.assert_allclose(distance.values[0], expected, rtol=0, atol=1e-3)


def test_distance_matches_shapely_for_lines_points_and_polygons():
    rng = np.random.default_rng(0)
    lines = [LineString(rng.uniform([500000, 4000000], [501000, 4000800], (4, 2))) for _ in range(3)]
    points = [Point(500100, 4000100)]
    square = Polygon([(500600, 4000500), (500800, 4000500), (500800, 4000700), (500600, 4000700)])
    layer = gpd.GeoDataFrame(geometry=[*lines, *points, square], crs="EPSG:32650")
    ours = distance_to(layer, GRID).values[0]
    gx, gy = np.meshgrid(GRID.x, GRID.y)
    expected = shapely.distance(shapely.points(gx, gy), layer.union_all())
    np.testing.assert_allclose(ours, expected, atol=1e-3)
    assert ours[GRID.rowcol(500700, 4000600)] == 0.0  # inside the polygon


def test_distance_on_the_sample_faults_matches_shapely():
    faults = pp.io.read_vector(QINHANG / "faults.gpkg")
    grid = pp.Grid.from_bounds((400000, 2400000, 439000, 2439000), shape=(156, 156), crs="EPSG:32649")
    ours = distance_to(faults, grid).values[0]
    gx, gy = np.meshgrid(grid.x, grid.y)
    np.testing.assert_allclose(ours, shapely.distance(shapely.points(gx, gy), faults.union_all()), atol=5e-3)


def test_rasterize_categorical_codes_legend_and_one_hot():
    west = Polygon([(500000, 4000000), (500500, 4000000), (500500, 4000800), (500000, 4000800)])
    east = Polygon([(500500, 4000000), (500900, 4000000), (500900, 4000800), (500500, 4000800)])
    geology = gpd.GeoDataFrame({"unit": ["Triassic", "Permian"]}, geometry=[west, east], crs="EPSG:32650")
    codes = rasterize_categorical(geology, "unit", GRID)
    assert legend(codes) == {1: "Permian", 2: "Triassic"}
    values = codes.values[0]
    assert (values[:, GRID.x < 500500] == 2).all() and (values[:, (GRID.x > 500500) & (GRID.x < 500900)] == 1).all()
    assert np.isnan(values[:, GRID.x > 500900]).all()  # no polygon: nodata
    hot = rasterize_categorical(geology, "unit", GRID, one_hot=True, categories=["Triassic", "Permian"])
    assert list(hot["band"].values) == ["unit=Triassic", "unit=Permian"]
    np.testing.assert_array_equal(hot.values[0][:, GRID.x < 500500], 1.0)
    np.testing.assert_array_equal(hot.values.sum(axis=0)[:, GRID.x < 500900], 1.0)
    with pytest.raises(InputError, match=r"categories \['Triassic'\] do not include \['Permian'\]"):
        rasterize_categorical(geology, "unit", GRID, categories=["Triassic"])
    with pytest.raises(ValueError, match=r"field='lithology' is not a column; columns are \['unit'\]"):
        rasterize_categorical(geology, "lithology", GRID)


def test_reprojects_and_refuses_missing_crs():
    fault = gpd.GeoDataFrame(geometry=[LineString([(500437.0, 3990000), (500437.0, 4010000)])], crs="EPSG:32650")
    np.testing.assert_allclose(distance_to(fault.to_crs(4326), GRID).values, distance_to(fault, GRID).values,
                               atol=0.05)
    with pytest.raises(CRSError, match=r"gdf has no CRS"):
        distance_to(fault.set_crs(None, allow_override=True), GRID)


def test_deposit_layer():
    deposits = gpd.GeoDataFrame(geometry=[Point(500010, 4000790), Point(500505, 4000405), Point(600000, 4000000)],
                                crs="EPSG:32650")
    mask = deposit_layer(deposits, GRID).values[0]
    assert mask.sum() == 2 and mask[0, 0] == 1 and mask[GRID.rowcol(500505, 4000405)] == 1
    near = deposit_layer(deposits, GRID, radius=30).values[0]
    gx, gy = np.meshgrid(GRID.x, GRID.y)
    expected = (np.hypot(gx - 500010, gy - 4000790) <= 30) | (np.hypot(gx - 500505, gy - 4000405) <= 30)
    np.testing.assert_array_equal(near == 1, expected)


def test_stack_checks_grids_and_names():
    a = GRID.full(1.0, bands=["Cu"])
    b = GRID.full(2.0, name="fault_distance")
    combined = stack(a, b)
    assert list(combined["band"].values) == ["Cu", "fault_distance"] and combined.dtype == np.float32
    assert pp.Grid.from_dataarray(combined) == GRID
    other = pp.Grid.from_bounds((500000, 4000000, 501000, 4000800), resolution=40, crs="EPSG:32650")
    with pytest.raises(GridMismatchError, match=r"array 1 \('x'\) is on Grid\(shape=\(20, 25\)"):
        stack(a, other.full(0.0, name="x"))
    with pytest.raises(InputError, match=r"band names \['Cu'\] occur more than once"):
        stack(a, a)


def test_paper_stack_of_ten_bands_round_trips(tmp_path):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        samples = pp.io.read_samples(QINHANG / "stream_sediments.csv", crs="EPSG:32649", coord_scale=1000)
    grid = pp.Grid.from_bounds((400000, 2400000, 439000, 2439000), shape=(78, 78), crs="EPSG:32649")
    elements = ["Ag", "Au", "Sn", "Cu", "Ba", "Sb", "Hg", "Mo"]
    layers = stack(pp.interpolate.idw(samples, elements, grid, k=12),
                   rasterize_categorical(pp.io.read_vector(QINHANG / "geology.gpkg"), "unit", grid),
                   distance_to(pp.io.read_vector(QINHANG / "faults.gpkg"), grid, name="fault_distance"))
    assert layers.sizes == {"band": 10, "y": 78, "x": 78}
    assert layers.attrs["unit_legend"].startswith("1=Carboniferous;")
    assert np.isfinite(layers.values).all()
    path = pp.io.write_geotiff(layers, tmp_path / "stack.tif")
    back = pp.io.read_geotiff(path)
    assert list(back["band"].values) == [*elements, "unit", "fault_distance"]
    np.testing.assert_array_equal(back.values, layers.values)
