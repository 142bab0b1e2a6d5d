import numpy as np
import pytest
from affine import Affine

import prospect as pp
from prospect.errors import CRSError, InputError


def test_paper_grid_geometry():
    grid = pp.Grid.from_bounds((400000, 2400000, 439000, 2439000), shape=(1560, 1560), crs="EPSG:32649")
    assert grid.shape == (1560, 1560)
    assert grid.resolution == (25.0, 25.0)
    assert grid.x[0] == 400012.5 and grid.y[0] == 2438987.5
    assert grid.x[-1] == 438987.5 and grid.y[-1] == 2400012.5
    assert np.all(np.diff(grid.y) < 0) and np.all(np.diff(grid.x) > 0)
    assert grid.transform == Affine(25, 0, 400000, 0, -25, 2439000)
    assert grid.crs.to_epsg() == 32649


def test_resolution_grows_grid_to_cover_bounds():
    grid = pp.Grid.from_bounds((0, 0, 100, 50), resolution=30, crs="EPSG:32649")
    assert grid.shape == (2, 4)
    # the north-west corner stays; the grid grows east and south
    assert grid.bounds == (0.0, -10.0, 120.0, 50.0)
    exact = pp.Grid.from_bounds((400000, 2400000, 439000, 2439000), resolution=25, crs="EPSG:32649")
    assert exact.shape == (1560, 1560)


def test_transform_maps_pixel_centres_to_x_y():
    grid = pp.Grid.from_bounds((10, 20, 70, 50), resolution=(6, 3), crs="EPSG:3857")
    cols, rows = np.meshgrid(np.arange(grid.shape[1]) + 0.5, np.arange(grid.shape[0]) + 0.5)
    xs, ys = grid.transform @ (cols, rows)
    np.testing.assert_allclose(xs[0], grid.x)
    np.testing.assert_allclose(ys[:, 0], grid.y)
    row, col = grid.rowcol(grid.x[3], grid.y[2])
    assert (int(row), int(col)) == (2, 3)


def test_dataarray_helpers_carry_georeference(small_grid):
    da = small_grid.full(3.0, bands=["Cu", "Au"])
    assert da.dims == ("band", "y", "x") and da.dtype == np.float32
    assert list(da["band"].values) == ["Cu", "Au"]
    assert da.rio.crs.to_epsg() == 32649
    assert da.rio.transform() == small_grid.transform
    assert pp.Grid.from_dataarray(da) == small_grid
    assert np.isnan(small_grid.empty().values).all() and small_grid.empty().dims == ("y", "x")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(bounds=(10, 0, 5, 10), shape=(2, 2)), r"xmin < xmax"),
        (dict(bounds=(0, 10, 5, 10), shape=(2, 2)), r"ymin < ymax"),
        (dict(bounds=(0, 0, 10, 10), shape=(2, 2), resolution=5), r"exactly one of shape"),
        (dict(bounds=(0, 0, 10, 10)), r"exactly one of shape"),
        (dict(bounds=(0, 0, 10, 10), resolution=-1), r"resolution=-1 must be positive"),
        (dict(bounds=(0, 0, 10, 10), shape=(0, 3)), r"shape=\(0, 3\) must be two positive"),
        (dict(bounds=(0, 0, 10), shape=(2, 2)), r"must be four numbers"),
    ],
)
def test_bad_grid_arguments(kwargs, match):
    with pytest.raises(InputError, match=match):
        pp.Grid.from_bounds(crs="EPSG:32649", **kwargs)


def test_bad_crs():
    with pytest.raises(CRSError, match=r"crs='EPSG:99999999' is not a coordinate reference system"):
        pp.Grid.from_bounds((0, 0, 1, 1), shape=(1, 1), crs="EPSG:99999999")
    with pytest.raises(CRSError, match=r"crs is None"):
        pp.Grid.from_bounds((0, 0, 1, 1), shape=(1, 1))


def test_geographic_crs_refused_where_metres_are_needed():
    from prospect.grid import require_projected

    with pytest.raises(CRSError, match=r"EPSG:4326.*geographic.*reproject.*UTM") as info:
        require_projected("EPSG:4326")
    assert isinstance(info.value, ValueError)
    assert require_projected("EPSG:32649").to_epsg() == 32649


def test_wrap_rejects_wrong_shape(small_grid):
    with pytest.raises(InputError, match=r"shape \(3, 4\) does not fit a grid of shape \(10, 10\)"):
        small_grid.wrap(np.zeros((3, 4)))


def test_an_esri_prj_crs_becomes_its_epsg_code_in_grids_files_and_labels(tmp_path):
    import rasterio
    from pyproj import CRS

    # the .prj of a Finnish survey's shapefile (GTK's export), byte for byte
    esri = ('PROJCS["EUREF_FIN_TM35FIN",GEOGCS["GCS_EUREF_FIN",DATUM["D_ETRS_1989",SPHEROID["GRS_1980",6378137.0,'
            '298.257222101]],PRIMEM["Greenwich",0.0],UNIT["Degree",0.0174532925199433]],PROJECTION["Transverse_Mercator"],'
            'PARAMETER["False_Easting",500000.0],PARAMETER["False_Northing",0.0],PARAMETER["Central_Meridian",27.0],'
            'PARAMETER["Scale_Factor",0.9996],PARAMETER["Latitude_Of_Origin",0.0],UNIT["Meter",1.0]]')
    import geopandas as gpd

    points = gpd.GeoDataFrame({"id": [1, 2]}, geometry=gpd.points_from_xy([346500, 347500], [7465500, 7466500]),
                              crs="EPSG:3067")
    points.to_file(tmp_path / "survey.shp")
    (tmp_path / "survey.prj").write_text(esri)
    read = pp.io.read_vector(tmp_path / "survey.shp").crs
    assert read.to_string() != "EPSG:3067" and read.to_epsg() == 3067     # as GDAL reads the .prj: a WKT
    assert pp.grid.as_crs(read).to_string() == "EPSG:3067" and pp.grid.as_crs(CRS.from_wkt(esri)) == read
    grid = pp.Grid.from_bounds((346000, 7465000, 348000, 7467000), shape=(20, 20), crs=read)
    assert pp.grid.crs_label(grid.crs) == "EPSG:3067 (ETRS89 / TM35FIN(E,N))"
    path = pp.io.write_geotiff(grid.wrap(np.ones((1, 20, 20), np.float32), bands=["one"]), tmp_path / "one.tif")
    with rasterio.open(path) as src:
        assert src.crs.to_epsg() == 3067
    custom = "+proj=tmerc +lat_0=0 +lon_0=27.3 +k=0.9996 +x_0=500000 +y_0=0 +ellps=GRS80 +units=m"
    assert pp.grid.as_crs(custom).to_epsg() is None and pp.grid.crs_label(custom) == pp.grid.as_crs(custom).name
