import shutil
import subprocess

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio

import prospect as pp
from prospect.errors import ColumnError, CRSError, InputError
from prospect.interpolate import idw


def _survey(n=300, seed=0, extent=1000.0, crs="EPSG:32649"):
    rng = np.random.default_rng(seed)
    x = 400000 + rng.uniform(0, extent, n)
    y = 2400000 + rng.uniform(0, extent, n)
    frame = gpd.GeoDataFrame({"Cu": rng.lognormal(1, 0.8, n), "Au": rng.lognormal(-1, 1, n)},
                             geometry=gpd.points_from_xy(x, y), crs=crs)
    return frame


def _grid(shape=(24, 30), extent=1000.0):
    return pp.Grid.from_bounds((400000, 2400000, 400000 + extent, 2400000 + extent), shape=shape, crs="EPSG:32649")


def _reference(samples, grid, elements, power=2.0, k=None, radius=None):
    """Eq. 11 evaluated directly in float64 (numpy, no shared code with the package)."""
    gx, gy = np.meshgrid(grid.x, grid.y)
    sx, sy = samples.geometry.x.to_numpy(), samples.geometry.y.to_numpy()
    d = np.hypot(gx.ravel()[:, None] - sx, gy.ravel()[:, None] - sy)
    with np.errstate(divide="ignore"):
        w = d ** -power
    if k is not None:
        far = np.argsort(d, axis=1)[:, k:]
        np.put_along_axis(w, far, 0.0, axis=1)
    if radius is not None:
        w[d > radius] = 0.0
    z = samples[elements].to_numpy()
    hit_pixel, hit_sample = np.nonzero(d == 0)
    w[hit_pixel] = 0.0
    w[hit_pixel, hit_sample] = 1.0  # a pixel centre on a sample takes its value
    with np.errstate(invalid="ignore"):
        return ((w @ z) / w.sum(axis=1)[:, None]).T.reshape(len(elements), *grid.shape)


@pytest.mark.parametrize("kwargs", [{}, {"k": 12}, {"radius": 180.0}, {"power": 3.0}, {"k": 5, "power": 1.5},
                                    {"power": 2.5}])
def test_idw_matches_direct_evaluation(kwargs):
    samples, grid = _survey(), _grid()
    result = idw(samples, ["Cu", "Au"], grid, max_distance=None, **kwargs)  # eq. 11 has no distance limit
    expected = _reference(samples, grid, ["Cu", "Au"], **kwargs)
    assert result.dims == ("band", "y", "x") and result.dtype == np.float32
    assert list(result["band"].values) == ["Cu", "Au"]
    np.testing.assert_allclose(result.values, expected, rtol=1e-5)
    assert pp.Grid.from_dataarray(result) == grid


def test_closed_form_two_samples():
    # Two samples, values 0 and 3, at distances 1 and 2 from the one pixel centre (1, 1.5), power 2:
    # Z = (0/1 + 3/4) / (1/1 + 1/4) = 0.6
    grid = pp.Grid.from_bounds((0, 0, 2, 3), shape=(1, 1), crs="EPSG:32649")
    samples = gpd.GeoDataFrame({"v": [0.0, 3.0]}, geometry=gpd.points_from_xy([1.0, 1.0], [2.5, -0.5]),
                               crs="EPSG:32649")
    assert float(idw(samples, "v", grid).values.squeeze()) == pytest.approx(0.6, rel=1e-6)
    assert float(idw(samples, "v", grid, k=1).values.squeeze()) == pytest.approx(0.0)
    assert float(idw(samples, "v", grid, power=1).values.squeeze()) == pytest.approx(1.0, rel=1e-6)  # (3/2)/(3/2)


def test_sample_at_pixel_centre_gives_its_own_value():
    grid = _grid(shape=(10, 10))
    samples = _survey(50)
    centre = gpd.GeoDataFrame({"Cu": [123.0], "Au": [4.5]},
                              geometry=gpd.points_from_xy([grid.x[3]], [grid.y[7]]), crs="EPSG:32649")
    samples = pd.concat([samples, centre], ignore_index=True)
    for kwargs in ({}, {"k": 8}, {"radius": 300.0}):
        result = idw(samples, ["Cu", "Au"], grid, **kwargs)
        assert result.values[0, 7, 3] == pytest.approx(123.0) and result.values[1, 7, 3] == pytest.approx(4.5)
        assert np.isfinite(result.values).all()


def test_radius_min_points_gives_nan():
    grid = _grid(shape=(10, 10))
    samples = gpd.GeoDataFrame({"v": [1.0, 2.0]}, geometry=gpd.points_from_xy([400050.0, 400150.0],
                                                                               [2400950.0, 2400950.0]), crs=32649)
    result = idw(samples, "v", grid, radius=120.0).values[0]
    assert result[0, 0] == pytest.approx(1.0) and result[0, 1] == pytest.approx(2.0)
    assert np.isnan(result[9, 9])
    assert result[0, 2] == pytest.approx(2.0)  # centre 400250: only the sample 100 m away is inside
    for kwargs in ({}, {"k": 2}):
        both = idw(samples, "v", grid, radius=120.0, min_points=2, **kwargs).values[0]
        assert np.isnan(both[0, 2]) and np.isnan(both[9, 9])
        # a pixel centre on a sample takes its value whatever the count (as gdal_grid does)
        assert both[0, 0] == pytest.approx(1.0)


def test_log_interpolation_and_attrs():
    samples, grid = _survey(), _grid()
    result = idw(samples, ["Cu"], grid, log=True, max_distance=None)
    logged = samples.assign(Cu=np.log10(samples["Cu"]))
    np.testing.assert_allclose(result.values, _reference(logged, grid, ["Cu"]), rtol=1e-5)
    assert result.attrs["log10"] is True and "log10" in result.attrs["values"]
    with pytest.raises(InputError, match=r"log=True needs positive values.*\{'Cu': 1\}"):
        idw(samples.assign(Cu=np.r_[0.0, samples["Cu"].iloc[1:]]), ["Cu"], grid, log=True)


def test_nan_values_are_dropped_per_element():
    samples, grid = _survey(), _grid()
    holed = samples.copy()
    holed.loc[:20, "Cu"] = np.nan
    result = idw(holed, ["Cu", "Au"], grid, k=6, max_distance=None)
    np.testing.assert_allclose(result.values[0], _reference(samples.iloc[21:], grid, ["Cu"], k=6)[0], rtol=1e-5)
    np.testing.assert_allclose(result.values[1], _reference(samples, grid, ["Au"], k=6)[0], rtol=1e-5)


def test_duplicates_are_averaged_with_a_warning():
    grid = _grid(shape=(5, 5))
    samples = gpd.GeoDataFrame({"v": [1.0, 3.0, 10.0]},
                               geometry=gpd.points_from_xy([400100.0, 400100.0, 400900.0],
                                                           [2400100.0, 2400100.0, 2400900.0]),
                               crs=32649)
    with pytest.warns(UserWarning, match=r"1 samples share coordinates.*1 places, 2 samples with different values"):
        result = idw(samples, "v", grid)
    merged = gpd.GeoDataFrame({"v": [2.0, 10.0]}, geometry=gpd.points_from_xy([400100.0, 400900.0],
                                                                              [2400100.0, 2400900.0]), crs=32649)
    np.testing.assert_allclose(result.values, _reference(merged, grid, ["v"]), rtol=1e-5)


def test_samples_in_another_crs_are_reprojected():
    samples, grid = _survey(), _grid()
    direct = idw(samples, ["Cu"], grid, k=4)
    via_wgs84 = idw(samples.to_crs(4326), ["Cu"], grid, k=4)
    np.testing.assert_allclose(direct.values, via_wgs84.values, rtol=1e-5)


def test_selected_column_of_a_screening_table_picks_elements():
    samples, grid = _survey(), _grid(shape=(4, 4))
    selected = pd.Series([True, False], index=["Au", "Cu"], name="selected")
    assert list(idw(samples, selected, grid)["band"].values) == ["Au"]


def test_lazy_idw_equals_eager():
    pytest.importorskip("dask")
    samples, grid = _survey(), _grid(shape=(25, 20))
    lazy = pp.interpolate.idw_lazy(samples, ["Cu", "Au"], grid, k=7, rows_per_block=6)
    assert lazy.chunks is not None
    np.testing.assert_array_equal(lazy.values, idw(samples, ["Cu", "Au"], grid, k=7).values)


def test_torch_path_matches_reference_on_cpu():
    from prospect.interpolate import _prepare, _rows_torch

    samples, grid = _survey(), _grid()
    for kwargs in ({}, {"k": 12}, {"radius": 180.0}):
        problem = _prepare(samples, ["Cu", "Au"], grid, 2.0, kwargs.get("k"), kwargs.get("radius"), 1, False,
                           "cpu", 2**20)
        out = np.empty((2, *grid.shape), np.float32)
        columns, rows = problem.groups()[0]
        _rows_torch(problem, columns, rows, 0, grid.shape[0], out)
        np.testing.assert_allclose(out, _reference(samples, grid, ["Cu", "Au"], **kwargs), rtol=1e-6)


@pytest.mark.gpu
def test_cuda_path_matches_cpu():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    samples, grid = _survey(2000), _grid(shape=(200, 200))
    for kwargs in ({}, {"k": 12}):
        np.testing.assert_allclose(idw(samples, ["Cu", "Au"], grid, device="cuda", **kwargs).values,
                                   idw(samples, ["Cu", "Au"], grid, **kwargs).values, rtol=2e-5)


def test_to_geotiffs_writes_one_file_per_element(tmp_path):
    samples, grid = _survey(), _grid()
    stack = idw(samples, ["Cu", "Au"], grid, max_distance=None)
    paths = pp.io.write_bands(stack, tmp_path / "elements")
    assert [p.name for p in paths] == ["Cu.tif", "Au.tif"]
    with rasterio.open(paths[1]) as src:
        assert src.count == 1 and src.descriptions == ("Au",) and src.crs.to_epsg() == 32649
        np.testing.assert_array_equal(src.read(1), stack.sel(band="Au").values)
    with pytest.raises(FileExistsError, match=r"Cu.tif.*exist; pass overwrite=True"):
        pp.io.write_bands(stack, tmp_path / "elements")


@pytest.mark.parametrize(
    ("change", "error", "match"),
    [
        (dict(power=0), InputError, r"power=0 must be a positive number"),
        (dict(power=-1), InputError, r"power=-1 must be a positive number"),
        (dict(k=301), InputError, r"k=301 is larger than the number of samples with values \(300\)"),
        (dict(k=0), InputError, r"k=0 must be a whole number"),
        (dict(radius=-5), InputError, r"radius=-5 must be a positive distance"),
        (dict(elements=["Zn"]), ColumnError, r"elements \['Zn'\] are not columns of samples; available: \['Cu', "),
        (dict(device="tpu"), InputError, r"device='tpu'; valid: 'cpu'"),
    ],
)
def test_bad_arguments(change, error, match):
    kwargs = dict(elements=["Cu"], power=2.0)
    kwargs.update(change)
    with pytest.raises(error, match=match):
        idw(_survey(), grid=_grid(), **kwargs)


def test_bad_crs_and_extent():
    samples = _survey()
    geographic = pp.Grid.from_bounds((110, 21, 111, 22), shape=(4, 4), crs="EPSG:4326")
    with pytest.raises(CRSError, match=r"grid.crs='EPSG:4326' is geographic.*reproject.*UTM"):
        idw(samples, "Cu", geographic)
    with pytest.raises(CRSError, match=r"samples have no CRS"):
        idw(samples.set_crs(None, allow_override=True), "Cu", _grid())
    far = pp.Grid.from_bounds((500000, 2500000, 501000, 2501000), shape=(4, 4), crs="EPSG:32649")
    with pytest.raises(InputError, match=r"all 300 samples lie outside the grid bounds"):
        idw(samples, "Cu", far)


GDAL = shutil.which("gdal_grid")


def _gdal_grid(tmp_path, samples, element, grid, algorithm, exact=False):
    csv = tmp_path / "points.csv"
    pd.DataFrame({"x": samples.geometry.x, "y": samples.geometry.y, "v": samples[element]}).to_csv(
        csv, index=False, float_format="%.10f")
    vrt = tmp_path / "points.vrt"
    vrt.write_text(f'<OGRVRTDataSource><OGRVRTLayer name="points"><SrcDataSource>{csv}</SrcDataSource>'
                   '<GeometryType>wkbPoint</GeometryType><GeometryField encoding="PointFromColumns" x="x" y="y" '
                   'z="v"/></OGRVRTLayer></OGRVRTDataSource>')
    out = tmp_path / "gdal.tif"
    xmin, ymin, xmax, ymax = grid.bounds
    config = ["--config", "GDAL_USE_AVX", "NO", "--config", "GDAL_USE_SSE", "NO"] if exact else []
    subprocess.run(["gdal_grid", "-q", *config, "-a", algorithm, "-txe", str(xmin), str(xmax), "-tye", str(ymax),
                    str(ymin), "-outsize", str(grid.shape[1]), str(grid.shape[0]), "-ot", "Float64", "-l", "points",
                    str(vrt), str(out)], check=True)
    with rasterio.open(out) as src:
        assert src.transform == grid.transform
        return src.read(1)


@pytest.mark.skipif(GDAL is None, reason="gdal_grid (Debian's gdal-bin) is not installed")
def test_agrees_with_gdal_grid(tmp_path):
    samples = _survey(400, seed=3, extent=2000.0)
    grid = pp.Grid.from_bounds((400100, 2400100, 401900, 2401900), shape=(30, 36), crs="EPSG:32649")
    expected = _gdal_grid(tmp_path, samples, "Cu", grid, "invdist:power=2:smoothing=0:nodata=-9999", exact=True)
    np.testing.assert_allclose(idw(samples, "Cu", grid, max_distance=None).values[0], expected, rtol=1e-5)
    expected = _gdal_grid(tmp_path, samples, "Cu", grid,
                          "invdistnn:power=2:smoothing=0:radius=100000:max_points=12:min_points=1:nodata=-9999")
    np.testing.assert_allclose(idw(samples, "Cu", grid, k=12, max_distance=None).values[0], expected, rtol=1e-6)
    expected = _gdal_grid(tmp_path, samples, "Cu", grid,
                          "invdistnn:power=2:smoothing=0:radius=150:max_points=12:min_points=3:nodata=-9999")
    ours = idw(samples, "Cu", grid, k=12, radius=150, min_points=3, max_distance=None).values[0]
    np.testing.assert_array_equal(np.isnan(ours), expected == -9999)
    np.testing.assert_allclose(ours[np.isfinite(ours)], expected[expected != -9999], rtol=1e-6)


def test_max_distance_leaves_pixels_far_from_every_sample_as_nodata():
    from scipy.spatial import cKDTree

    samples, grid = _survey(), _grid()
    holed = samples.copy()
    holed.loc[:40, "Cu"] = np.nan                      # Cu's own samples decide its nodata, not Au's
    gx, gy = np.meshgrid(grid.x, grid.y)
    pixels = np.column_stack([gx.ravel(), gy.ravel()])
    xy = np.column_stack([samples.geometry.x, samples.geometry.y])
    spacing = np.median(cKDTree(xy).query(xy, k=2)[0][:, 1])
    for limit, expected_limit in ((90.0, 90.0), ("auto", 3 * spacing)):
        result = idw(holed, ["Cu", "Au"], grid, max_distance=limit)
        unlimited = idw(holed, ["Cu", "Au"], grid, max_distance=None)
        assert result.attrs["max_distance"] == pytest.approx(expected_limit, abs=1e-3)
        assert result.attrs["sample_spacing"] == pytest.approx(spacing, abs=1e-3)
        for band, rows in ((0, holed["Cu"].notna().to_numpy()), (1, np.ones(len(holed), bool))):
            far = (cKDTree(xy[rows]).query(pixels)[0] > expected_limit).reshape(grid.shape)
            assert far.any() and not far.all()
            np.testing.assert_array_equal(np.isnan(result.values[band]), far)
            np.testing.assert_array_equal(result.values[band][~far], unlimited.values[band][~far])
    with pytest.raises(InputError, match=r"max_distance='far'; valid: 'auto'"):
        idw(samples, "Cu", grid, max_distance="far")
    with pytest.raises(InputError, match=r"max_distance=-1 must be a positive distance"):
        idw(samples, "Cu", grid, max_distance=-1)
    with pytest.raises(InputError, match=r"max_distance=\[500\] must be a positive distance"):
        idw(samples, "Cu", grid, max_distance=[500])


def test_an_element_left_almost_all_nodata_is_reported():
    samples, grid = _survey(), _grid()
    with pytest.warns(UserWarning, match=r"almost all nodata: \{'Cu': '(99|100)\.\d %'\}.*radius=1\.0.*metres, not km"):
        result = idw(samples, "Cu", grid, radius=1.0, max_distance=None)
    assert np.isnan(result.values).mean() >= 0.99
