import geopandas as gpd
import numpy as np
import pytest

import prospect as pp
from prospect.errors import CRSError, InputError
from prospect.tiles import (
    TileSet,
    add_noise,
    fit_normalization,
    make_tiles,
    normalize,
    smote,
    spatial_kfold,
    spatial_split,
)

PAPER = pp.Grid.from_bounds((400000, 2400000, 439000, 2439000), shape=(1560, 1560), crs="EPSG:32649")


def _stack(grid=PAPER, bands=2, seed=0):
    rng = np.random.default_rng(seed)
    return grid.wrap(rng.random((bands, *grid.shape), dtype=np.float32), bands=[f"b{i}" for i in range(bands)])


def _deposits(rows_cols, grid=PAPER):
    x = grid.x[[c for _, c in rows_cols]]
    y = grid.y[[r for r, _ in rows_cols]]
    return gpd.GeoDataFrame(geometry=gpd.points_from_xy(x, y), crs=grid.crs)


def test_paper_geometry_counts_origins_and_labels():
    planted = [(5, 5), (130, 300), (1000, 1400), (1550, 1550)]  # the last lies in the dropped edge strip
    tiles = make_tiles(_stack(bands=1), _deposits(planted))
    assert len(tiles) == 144 and tiles.x.shape == (144, 1, 128, 128)
    assert sorted(set(tiles.row.tolist())) == list(range(0, 1536, 128))
    assert tiles.bounds[0].tolist() == [400000.0, 2439000.0 - 3200, 403200.0, 2439000.0]
    ore = {(int(r), int(c)) for r, c in zip(tiles.row[tiles.y == 1], tiles.col[tiles.y == 1], strict=True)}
    assert ore == {(0, 0), (128, 256), (896, 1280)}
    np.testing.assert_array_equal(tiles.x[5, 0], _stack(bands=1).values[0, 0:128, 640:768])
    shifted = make_tiles(_stack(bands=1), _deposits(planted), edge="shift")
    assert len(shifted) == 169 and shifted.row.max() == 1560 - 128
    assert ((shifted.row == 1432) & (shifted.col == 1432) & (shifted.y == 1)).sum() == 1


def test_center_label_ignores_deposits_at_tile_edges():
    tiles = make_tiles(_stack(bands=1), _deposits([(5, 5), (64, 64 + 128)]), label="center")
    ore = {(int(r), int(c)) for r, c in zip(tiles.row[tiles.y == 1], tiles.col[tiles.y == 1], strict=True)}
    assert ore == {(0, 128)}


def test_nan_handling_min_valid_and_fill():
    grid = pp.Grid.from_bounds((0, 0, 400, 200), shape=(20, 40), crs="EPSG:32649")
    values = np.ones((1, 20, 40), np.float32)
    values[0, :, :10] = np.nan            # first tile: all NaN -> dropped
    values[0, 0:3, 10:20] = np.nan        # second tile: 30 % NaN -> kept and filled
    values[0, 5, 15] = 7.0
    tiles = make_tiles(grid.wrap(values), _deposits([(2, 25)], grid), size=10, stride=10)
    assert len(tiles) == 6 and tiles.row[0] == 0 and tiles.col[0] == 10  # both tiles of columns 0-9 dropped
    assert tiles.filled[0] == 30 and np.isfinite(tiles.x).all()
    assert tiles.x[0, 0, 0, 0] == pytest.approx((69 * 1 + 7) / 70)  # the tile's band mean
    assert tiles.attrs["fill"] == "tile band mean"



def test_an_empty_band_is_named_and_never_filled():
    grid = pp.Grid.from_bounds((0, 0, 400, 200), shape=(20, 40), crs="EPSG:32649")
    values = np.ones((3, 20, 40), np.float32)
    values[1] = np.nan                                 # e.g. IDW with radius = 5 meant as km
    values[2, :, :] = np.nan
    values[2, 0, 0] = 1.0                              # 1 of 800 cells: sparse, not empty
    stack = grid.wrap(values, bands=["Cu", "Pb", "Zn"])
    for min_valid in (0.5, 0.0):                       # lowering min_valid does not let it through
        with pytest.raises(InputError, match=r"band\(s\) \['Pb'\] of the stack hold no value anywhere"):
            make_tiles(stack, _deposits([(2, 25)], grid), size=10, stride=10, min_valid=min_valid)
    with pytest.raises(InputError, match=r"no tile has at least min_valid=0.5 .* \(0.1 % of the stack's cells are\); "
                                         r"the sparsest bands, valid share: Zn 0.1 %"):
        make_tiles(stack.sel(band=["Cu", "Zn"]), _deposits([(2, 25)], grid), size=10, stride=10)

def test_split_then_smote_leaves_test_clean_and_no_overlap():
    grid = pp.Grid.from_bounds((0, 0, 6400, 6400), shape=(640, 640), crs="EPSG:32649")
    rng = np.random.default_rng(1)
    planted = [tuple(p) for p in rng.integers(0, 640, (30, 2))]
    tiles = make_tiles(_stack(grid, 3), _deposits(planted, grid), size=32, stride=16)
    train, test = spatial_split(tiles, test_size=0.25, seed=0)
    assert train.attrs["role"] == "train" and test.attrs["role"] == "test"
    assert train.attrs["dropped_overlap"] > 0  # stride < size: straddlers exist and are removed
    overlap = (np.abs(train.row[:, None] - test.row[None]) < 32) & (np.abs(train.col[:, None] - test.col[None]) < 32)
    assert not overlap.any()
    assert 0.15 < len(test) / (len(train) + len(test) + train.attrs["dropped_overlap"]) < 0.35
    assert test.y.sum() > 0 and train.y.sum() > 0
    balanced = smote(train, k_neighbors=3, seed=0)
    counts = balanced.counts()
    assert counts["ore"] == counts["no_ore"] and counts["synthetic"] == counts["ore"] - train.counts()["ore"]
    assert np.isnan(balanced.bounds[balanced.synthetic]).all() and (balanced.row[balanced.synthetic] == -1).all()
    assert len(train) == len(train.y) and not train.synthetic.any()  # input untouched
    assert not test.synthetic.any()
    with pytest.raises(InputError, match=r"smote was given the test set"):
        smote(test)
    with pytest.raises(InputError, match=r"split before smote/add_noise"):
        spatial_split(balanced)


def test_blocks_keep_neighbours_together_where_random_does_not():
    grid = pp.Grid.from_bounds((0, 0, 6400, 6400), shape=(640, 640), crs="EPSG:32649")
    tiles = make_tiles(_stack(grid, 1), _deposits([(100, 100), (500, 500), (300, 20)], grid), size=32, stride=32)
    train, test = spatial_split(tiles, test_size=0.2, seed=3, block_size=128)
    block = lambda t: set(zip(((t.row + 16) // 128).tolist(), ((t.col + 16) // 128).tolist(), strict=True))  # noqa: E731
    assert not (block(train) & block(test))
    assert len(test) % 16 == 0  # whole 4 x 4 blocks of tiles


def test_kfold_covers_every_tile_once():
    grid = pp.Grid.from_bounds((0, 0, 6400, 6400), shape=(640, 640), crs="EPSG:32649")
    planted = [(r, c) for r in range(40, 640, 150) for c in range(40, 640, 150)]
    tiles = make_tiles(_stack(grid, 1), _deposits(planted, grid), size=32, stride=32)
    seen = []
    for train, test in spatial_kfold(tiles, k=4, block_size=128):
        seen.extend(zip(test.row.tolist(), test.col.tolist(), strict=True))
        assert test.y.sum() > 0
        assert not set(zip(train.row.tolist(), train.col.tolist(), strict=True)) & set(seen[-len(test):])
    assert sorted(seen) == sorted(zip(tiles.row.tolist(), tiles.col.tolist(), strict=True))


def test_noise_and_normalization():
    grid = pp.Grid.from_bounds((0, 0, 1280, 1280), shape=(128, 128), crs="EPSG:32649")
    stack = _stack(grid, 2)
    stack.values[1] *= 100
    tiles = make_tiles(stack, _deposits([(5, 5), (70, 70)], grid), size=16, stride=16)
    train, test = spatial_split(tiles, seed=0)
    stats = fit_normalization(train)
    np.testing.assert_allclose(stats["mean"], train.x.mean(axis=(0, 2, 3)), rtol=1e-5)
    train_n, test_n = normalize(train, stats), normalize(test, stats)
    np.testing.assert_allclose(test_n.x, (test.x - train.x.mean(axis=(0, 2, 3))[None, :, None, None])
                               / train.x.std(axis=(0, 2, 3))[None, :, None, None], rtol=1e-4, atol=1e-4)
    assert abs(train_n.x.mean()) < 1e-4 and train_n.normalization == stats
    noisy = add_noise(train_n, variance=0.01, copies=2, only_class=1, seed=4)
    added = noisy[noisy.synthetic]
    assert len(added) == 2 * train.counts()["ore"] and (added.y == 1).all()
    residual = added.x - np.tile(train_n.x[train_n.y == 1], (2, 1, 1, 1))
    assert residual.var() == pytest.approx(0.01, rel=0.05) and abs(residual.mean()) < 0.01
    with pytest.raises(InputError, match=r"fit_normalization was given the test set"):
        fit_normalization(test)


def test_save_load_round_trip_and_torch(tmp_path):
    grid = pp.Grid.from_bounds((0, 0, 1280, 1280), shape=(128, 128), crs="EPSG:32649")
    tiles = make_tiles(_stack(grid, 2), _deposits([(5, 5)], grid), size=32, stride=32)
    path = pp.io.write_tiles(tiles, tmp_path / "tiles.npz")
    back = TileSet.load(path)
    for name in ("x", "y", "row", "col", "bounds", "synthetic", "filled"):
        np.testing.assert_array_equal(getattr(back, name), getattr(tiles, name))
    assert back.band == tiles.band and back.transform == tiles.transform and back.crs == tiles.crs
    assert pp.grid.as_crs(back.crs).to_epsg() == 32649
    with pytest.raises(FileExistsError):
        pp.io.write_tiles(tiles, path)
    joined = TileSet.concat(tiles[:3], tiles[[5, 6]])
    assert len(joined) == 5 and joined.row.tolist() == [*tiles.row[:3], *tiles.row[[5, 6]]]
    dataset = tiles.as_torch()
    x, y = dataset[0]
    assert tuple(x.shape) == (2, 32, 32) and str(x.dtype) == "torch.float32" and y == 1


def test_bad_input():
    grid = pp.Grid.from_bounds((0, 0, 1280, 1280), shape=(128, 128), crs="EPSG:32649")
    stack, deposits = _stack(grid, 1), _deposits([(5, 5)], grid)
    with pytest.raises(InputError, match=r"size=200 must be a whole number of pixels from 1 to .*128"):
        make_tiles(stack, deposits, size=200)
    with pytest.raises(InputError, match=r"stride=0 must be a positive"):
        make_tiles(stack, deposits, size=32, stride=0)
    with pytest.raises(InputError, match=r"no tile holds a deposit: nothing to learn"):
        make_tiles(stack, deposits, size=32, label="center")
    far = gpd.GeoDataFrame(geometry=gpd.points_from_xy([1e6], [1e6]), crs=32649)
    with pytest.raises(InputError, match=r"none of the 1 deposits lies inside the stack"):
        make_tiles(stack, far, size=32)
    with pytest.raises(CRSError, match=r"the array has no CRS"):
        make_tiles(stack.drop_vars("spatial_ref"), deposits, size=32)
    tiles = make_tiles(stack, _deposits([(5, 5), (5, 40), (40, 5)], grid), size=32, stride=32)
    with pytest.raises(InputError, match=r"SMOTE needs at least k_neighbors \+ 1 = 6 tiles of each class, but the "
                                         r"smaller class has 3; pass k_neighbors=2"):
        smote(tiles)
    with pytest.raises(InputError, match=r"the smaller class has 1; it needs at least 2"):
        smote(make_tiles(stack, deposits, size=32, stride=32))
