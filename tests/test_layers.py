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


# --- external rasters, derived layers, the study area ---------------------------------------------------------

UTM = pp.Grid.from_bounds((400000, 2400000, 439000, 2439000), shape=(130, 130), crs="EPSG:32649")


def _geographic_gradient(path, nodata=-99999.0):
    """A planted EPSG:4326 field over the UTM grid: a gradient in lon and lat plus a bump, a nodata corner."""
    import rasterio
    from rasterio.transform import from_origin

    west, north, res = 109.95, 22.05, 0.0015
    width, height = 330, 300
    lon = west + (np.arange(width) + 0.5) * res
    lat = north - (np.arange(height) + 0.5) * res
    values = (100 * (lon[None, :] - west) + 300 * (north - lat[:, None])
              + 20 * np.exp(-((lon[None, :] - 110.2) ** 2 + (lat[:, None] - 21.85) ** 2) / 0.002)).astype(np.float32)
    values[:40, :50] = nodata
    transform = from_origin(west, north, res, res)
    with rasterio.open(path, "w", driver="GTiff", width=width, height=height, count=1, dtype="float32",
                       crs="EPSG:4326", transform=transform, nodata=nodata) as dst:
        dst.write(values, 1)
        dst.set_band_description(1, "tmi_rtp")
    return values, transform


@pytest.mark.parametrize("resampling", ["bilinear", "nearest", "average"])
def test_from_raster_equals_rasterio_reproject(tmp_path, resampling):
    import rasterio.warp
    from rasterio.enums import Resampling

    values, transform = _geographic_gradient(tmp_path / "mag.tif")
    with pytest.warns(UserWarning, match=r"mag.tif covers 9\d.\d % of the grid with data"):
        ours = pp.layers.from_raster(tmp_path / "mag.tif", UTM, resampling=resampling)
    reference = np.full(UTM.shape, np.nan, np.float32)
    source = np.where(values == -99999.0, np.nan, values)
    rasterio.warp.reproject(source, reference, src_transform=transform, src_crs="EPSG:4326", src_nodata=np.nan,
                            dst_transform=UTM.transform, dst_crs="EPSG:32649", dst_nodata=np.nan,
                            resampling=Resampling[resampling])
    assert ours.dims == ("band", "y", "x") and list(ours["band"].values) == ["tmi_rtp"]
    assert pp.Grid.from_dataarray(ours) == UTM
    np.testing.assert_array_equal(np.isnan(ours.values[0]), np.isnan(reference))
    np.testing.assert_allclose(ours.values[0], reference, rtol=1e-6, equal_nan=True)
    assert np.isnan(reference).any() and np.isfinite(reference).mean() > 0.9   # the nodata corner is nodata
    assert ours.attrs["resampling"] == resampling and ours.attrs["source_crs"] == "EPSG:4326"
    # the same from an in-memory DataArray
    import rioxarray  # noqa: F401
    import xarray as xr

    array = xr.DataArray(values, dims=("y", "x"), name="tmi").rio.write_crs("EPSG:4326").rio.write_transform(transform)
    array = array.rio.write_nodata(-99999.0)
    with pytest.warns(UserWarning, match="covers"):
        again = pp.layers.from_raster(array, UTM, resampling=resampling)
    np.testing.assert_allclose(again.values[0], reference, rtol=1e-6, equal_nan=True)


def test_from_raster_defaults_by_cell_size_and_kind(tmp_path):
    _geographic_gradient(tmp_path / "mag.tif")
    fine = pp.Grid.from_bounds((410000, 2410000, 420000, 2420000), resolution=50, crs="EPSG:32649")
    coarse = pp.Grid.from_bounds((410000, 2410000, 420000, 2420000), resolution=1000, crs="EPSG:32649")
    assert pp.layers.from_raster(tmp_path / "mag.tif", fine).attrs["resampling"] == "bilinear"     # ~155 m cells
    assert pp.layers.from_raster(tmp_path / "mag.tif", coarse).attrs["resampling"] == "average"
    codes = pp.layers.from_raster(tmp_path / "mag.tif", fine, categorical=True, name="code", legend={1: "a"})
    assert codes.attrs["resampling"] == "nearest" and codes.attrs["legend"] == "1=a"
    with pytest.raises(InputError, match=r"resampling='bilinear' would blend class codes"):
        pp.layers.from_raster(tmp_path / "mag.tif", fine, categorical=True, resampling="bilinear")
    with pytest.raises(InputError, match=r"resampling='spline'; valid: \['nearest'"):
        pp.layers.from_raster(tmp_path / "mag.tif", fine, resampling="spline")
    with pytest.raises(InputError, match=r"band=2; mag.tif has bands 1 to 1"):
        pp.layers.from_raster(tmp_path / "mag.tif", fine, band=2)
    with pytest.raises(InputError, match=r"name=\['a', 'b'\] gives 2 name\(s\) for 1 band"):
        pp.layers.from_raster(tmp_path / "mag.tif", fine, name=["a", "b"])
    declared = pp.layers.from_raster(tmp_path / "mag.tif", fine, nodata=float(np.float32(
        pp.layers.from_raster(tmp_path / "mag.tif", fine, resampling="nearest").values[0, 0, 0])),
        resampling="nearest")
    assert np.isnan(declared.values[0, 0, 0])             # a nodata value given by the caller is honoured


def test_a_raster_in_the_wrong_crs_is_refused(tmp_path):
    import rasterio
    from rasterio.transform import from_origin

    path = tmp_path / "dem.tif"
    with rasterio.open(path, "w", driver="GTiff", width=10, height=10, count=1, dtype="float32",
                       crs="EPSG:32649", transform=from_origin(110.0, 22.0, 0.01, 0.01)) as dst:
        dst.write(np.ones((1, 10, 10), np.float32))       # degrees written as if they were UTM metres
    with pytest.raises(CRSError, match=r"the raster dem.tif does not overlap the grid .*check the raster's CRS"):
        pp.layers.from_raster(path, UTM)
    with pytest.raises(InputError, match=r"is not a raster GDAL can read"):
        (tmp_path / "notes.tif").write_text("not a raster")
        pp.layers.from_raster(tmp_path / "notes.tif", UTM)


def test_slope_of_a_plane_and_of_a_cone():
    gx, gy = np.meshgrid(GRID.x, GRID.y)
    plane = GRID.wrap((0.3 * (gx - 500000) - 0.4 * (gy - 4000000))[None].astype(np.float32), bands=["dem"])
    slope = pp.layers.slope(plane)
    assert list(slope["band"].values) == ["dem_slope"] and slope.attrs["units"] == "degree"
    np.testing.assert_allclose(slope.values[0], np.degrees(np.arctan(0.5)), atol=1e-4)   # edges included
    cone = GRID.wrap(-0.2 * np.hypot(gx - 500500, gy - 4000400)[None], bands=["dem"])
    inner = pp.layers.slope(cone).values[0][5:-5, 5:-5]
    far = np.hypot(gx - 500500, gy - 4000400)[5:-5, 5:-5] > 60
    np.testing.assert_allclose(inner[far], np.degrees(np.arctan(0.2)), atol=0.3)   # Horn's 3 x 3 on a curved cone


def test_smooth_and_high_pass_split_a_field_into_trend_and_anomaly():
    from scipy.ndimage import gaussian_filter

    grid = pp.Grid.from_bounds((500000, 4000000, 502000, 4002000), resolution=20, crs="EPSG:32650")
    gx, gy = np.meshgrid(grid.x, grid.y)
    trend = 0.05 * (gx - 500000) + 0.02 * (gy - 4000000)
    bump = 10.0 * np.exp(-((gx - 501000) ** 2 + (gy - 4001000) ** 2) / (2 * 60.0**2))
    field = grid.wrap((trend + bump)[None], bands=["mag"])
    low = pp.layers.smooth(field, sigma=100).values[0]
    high = pp.layers.high_pass(field, sigma=100).values[0]
    np.testing.assert_allclose(low + high, field.values[0], atol=1e-4)
    # a regional gradient is all trend, to the edges (the field is extended linearly past them)
    np.testing.assert_allclose(pp.layers.high_pass(grid.wrap(trend[None]), sigma=100).values[0], 0, atol=1e-4)
    # the low-pass of the bump is scipy's Gaussian filter (sigma 100 m = 5 cells)
    np.testing.assert_allclose(low - trend, gaussian_filter(bump, 5, mode="constant", truncate=4.0), atol=1e-4)
    assert high.max() == pytest.approx(bump.max() - gaussian_filter(bump, 5).max(), rel=1e-4)
    with pytest.raises(InputError, match=r"sigma=5 is under half a cell \(20\)"):
        pp.layers.smooth(field, sigma=5)
    field = GRID.wrap(np.ones((1, *GRID.shape)), bands=["mag"])
    with pytest.raises(InputError, match=r"sigma=-1 must be a positive distance"):
        pp.layers.high_pass(field, sigma=-1)
    with pytest.raises(InputError, match=r"has 2 bands; pick one"):
        pp.layers.smooth(stack(field, field.assign_coords(band=["mag2"])), sigma=100)


def test_nodata_stays_nodata_and_is_left_out_of_the_averages():
    values = np.full(GRID.shape, 5.0, np.float32)
    values[10:20, 10:20] = np.nan
    values[:, 30:] = 9.0
    low = pp.layers.smooth(GRID.wrap(values[None], bands=["g"]), sigma=60).values[0]
    assert np.isnan(low[10:20, 10:20]).all() and np.isfinite(low[~np.isnan(values)]).all()
    np.testing.assert_allclose(low[:, :15][np.isfinite(low[:, :15])], 5.0, atol=1e-6)   # no NaN leaks into means


def test_the_study_area_masks_every_band():
    area = gpd.GeoDataFrame(geometry=[Polygon([(500000, 4000000), (501000, 4000000), (500000, 4000800)])],
                            crs="EPSG:32650").to_crs(4490)     # a licence outline in CGCS2000 degrees
    mask = pp.layers.study_area(area, GRID)
    gx, gy = np.meshgrid(GRID.x, GRID.y)
    inside = (gx - 500000) / 1000 + (gy - 4000000) / 800 < 1
    np.testing.assert_array_equal(mask.values[0] == 1, inside)
    layers = stack(GRID.wrap(np.ones((1, *GRID.shape)), bands=["a"]), GRID.wrap(np.zeros((1, *GRID.shape)),
                                                                                  bands=["b"]))
    masked = pp.layers.apply_mask(layers, mask)
    assert np.isnan(masked.values[:, ~inside]).all() and np.isfinite(masked.values[:, inside]).all()
    assert masked.attrs["masked_fraction"] == pytest.approx(1 - inside.mean())
    grown = pp.layers.study_area(area, GRID, buffer=100)
    assert grown.values.sum() > mask.values.sum()
    with pytest.raises(InputError, match=r"polygons holds \['Point'\] geometries; a study area must be polygons"):
        pp.layers.study_area(gpd.GeoDataFrame(geometry=[Point(500500, 4000400)], crs="EPSG:32650"), GRID)


def test_layers_that_miss_the_grid_name_the_crs():
    far = gpd.GeoDataFrame({"unit": ["T"]}, geometry=[Polygon([(0, 0), (100, 0), (100, 100)])], crs="EPSG:32650")
    with pytest.raises(CRSError, match=r"no Polygon of gdf overlaps the grid .*check the CRS"):
        rasterize_categorical(far, "unit", GRID)
    with pytest.raises(CRSError, match=r"no Point of deposits overlaps the grid"):
        deposit_layer(gpd.GeoDataFrame(geometry=[Point(10, 10)], crs="EPSG:32650"), GRID)
    with pytest.raises(CRSError, match=r"no LineString of gdf overlaps the grid"):
        distance_to(gpd.GeoDataFrame(geometry=[LineString([(0, 0), (10, 10)])], crs="EPSG:32650"), GRID)
    # a fault just beyond the edge still gives distances
    beyond = gpd.GeoDataFrame(geometry=[LineString([(501200, 3990000), (501200, 4010000)])], crs="EPSG:32650")
    np.testing.assert_allclose(distance_to(beyond, GRID).values[0], np.broadcast_to(501200 - GRID.x, GRID.shape),
                               atol=1e-3)
