"""The ranges declared in the API's annotations are the ranges the functions enforce themselves."""

import typing

import geopandas as gpd
import numpy as np
import pytest

import prospect as pp
from prospect.errors import InputError
from prospect.pipeline.values import annotations
from prospect.ranges import POSITIVE, rule_of

GRID = pp.Grid.from_bounds((0, 0, 6400, 6400), shape=(64, 64), crs="EPSG:32649")
CANDIDATES = [-1, 0, 0.5, 1, 1.5, 2.5, 7]


def _deposits():
    rng = np.random.default_rng(0)
    x, y = rng.uniform(100, 6300, 12), rng.uniform(100, 6300, 12)
    return gpd.GeoDataFrame(geometry=gpd.points_from_xy(x, y), crs=GRID.crs)


def _tiles():
    stack = GRID.wrap(np.random.default_rng(1).random((2, 64, 64), dtype=np.float32), bands=["a", "b"])
    return pp.tiles.make_tiles(stack, _deposits(), size=8, stride=8)


def _samples():
    rng = np.random.default_rng(2)
    frame = gpd.GeoDataFrame({"Cu": rng.random(30) + 1}, geometry=gpd.points_from_xy(rng.uniform(0, 6400, 30),
                                                                                      rng.uniform(0, 6400, 30)),
                             crs=GRID.crs)
    frame.attrs["elements"] = ["Cu"]
    return frame


CASES = {
    "spatial_folds k": (pp.folds.spatial_folds, "k", lambda v: pp.folds.spatial_folds(GRID, _deposits(), k=v)),
    "spatial_folds block_size": (pp.folds.spatial_folds, "block_size",
                                 lambda v: pp.folds.spatial_folds(GRID, _deposits(), k=2, block_size=v)),
    "spatial_folds buffer": (pp.folds.spatial_folds, "buffer",
                             lambda v: pp.folds.spatial_folds(GRID, _deposits(), k=2, buffer=v)),
    "spatial_split test_size": (pp.tiles.spatial_split, "test_size",
                                lambda v: pp.tiles.spatial_split(_tiles(), test_size=v)),
    "spatial_split buffer": (pp.tiles.spatial_split, "buffer", lambda v: pp.tiles.spatial_split(_tiles(), buffer=v)),
    "from_bounds resolution": (pp.Grid.from_bounds, "resolution",
                               lambda v: pp.Grid.from_bounds((0, 0, 10, 10), resolution=v, crs=GRID.crs)),
    "idw power": (pp.interpolate.idw, "power", lambda v: pp.interpolate.idw(_samples(), ["Cu"], GRID, power=v)),
    "idw k": (pp.interpolate.idw, "k", lambda v: pp.interpolate.idw(_samples(), ["Cu"], GRID, k=v)),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_what_an_annotation_refuses_the_function_refuses(case):
    function, parameter, call = CASES[case]
    rule = rule_of(annotations(function)[parameter])
    assert rule is not None, f"{case}: no range in the annotation"
    refused = [v for v in CANDIDATES if not rule(v)]
    assert refused, f"{case}: the rule refuses none of {CANDIDATES}"
    for value in refused:
        with pytest.raises(InputError, match=parameter):
            call(value)


def test_annotated_parameters_keep_their_types_for_the_checker():
    hints = annotations(pp.interpolate.idw)
    assert typing.get_origin(hints["power"]) is typing.Annotated and rule_of(hints["power"]) is POSITIVE
    assert pp.pipeline.values.conforms(2, hints["power"]) and not pp.pipeline.values.conforms("two", hints["power"])
    assert pp.pipeline.values.describe(hints["k"]) == "a whole number or none (leave the key out)"
