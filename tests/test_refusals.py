"""Nothing silent, nothing late: every bad input `run` would refuse, `prospect check` refuses first.

Each case changes the tiny run file (tests/data/tiny.toml) or one of its inputs, then asserts that `check` and
`run` both exit 2 with the same one-line error (no traceback) naming the run-file section, and that `run`
wrote nothing. Legal but suspicious inputs get a note from `check` instead.
"""

import re
import shutil

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
from shapely.geometry import Polygon

from prospect.cli import main as cli

from .test_pipeline import ROOT, _tiny

QINHANG = ROOT / "data_samples" / "qinhang"
SURVEY = str(QINHANG / "stream_sediments.csv")


def _survey(tmp_path, change):
    """A copy of the survey CSV (as text) changed by ``change(frame)``; returns the run-file replacement."""
    frame = pd.read_csv(QINHANG / "stream_sediments.csv", dtype=str)
    frame = change(frame)
    path = tmp_path / "survey.csv"
    frame.to_csv(path, index=False)
    return (SURVEY, str(path))


def _thousands(tmp_path):
    # Ba written with thousands separators and no decimal point anywhere else in the file: 1,640 is 1640 or 1.64
    def change(frame):
        frame = frame[["X", "Y", "formation", "Ba", "Cu"]].copy()
        frame["Ba"] = [f"{int(v) * 3:,}" for v in frame["Ba"].astype(float)]
        return frame
    return [_survey(tmp_path, change)]


def _duplicate(tmp_path):
    path = tmp_path / "survey.csv"
    text = (QINHANG / "stream_sediments.csv").read_text().splitlines()
    text[0] = text[0].replace(",Zn,", ",Cu,")
    path.write_text("\n".join(text) + "\n")
    return [(SURVEY, str(path))]


def _utf16(tmp_path):
    return [("coord_scale = 1000", 'coord_scale = 1000\nencoding = "utf-16"')]


def _zeros_with_log(tmp_path):
    def change(frame):
        frame.loc[0, "Ag"] = "0"
        return frame
    return [_survey(tmp_path, change), ('[transform]\nmethod = "log10"', ""), ("k = 12", "k = 12\nlog = true"),
            ('elements = "screen"', 'elements = ["Ag", "Cu"]')]


def _blank_element(tmp_path):
    return [_survey(tmp_path, lambda f: f.assign(Te="")), ('elements = "screen"', 'elements = ["Ag", "Te"]')]


def _constant_element(tmp_path):
    return [_survey(tmp_path, lambda f: f.assign(Te="<0.3")), ('elements = "screen"', 'elements = ["Ag", "Te"]')]


def _truncated_raster(tmp_path):
    path = tmp_path / "magnetics.tif"
    data = (QINHANG / "magnetics.tif").read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return [(str(QINHANG / "magnetics.tif"), str(path))]


def _nodata_raster(tmp_path):
    path = tmp_path / "magnetics.tif"
    with rasterio.open(QINHANG / "magnetics.tif") as src:
        profile = src.profile
        profile.update(nodata=-9999.0, dtype="float32")
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(np.full((1, src.height, src.width), -9999.0, np.float32))
    return [(str(QINHANG / "magnetics.tif"), str(path))]


def _empty_faults(tmp_path):
    path = tmp_path / "faults.gpkg"
    faults = gpd.read_file(QINHANG / "faults.gpkg")
    faults.iloc[:0].to_file(path)
    return [(str(QINHANG / "faults.gpkg"), str(path))]


def _one_deposit(tmp_path):
    path = tmp_path / "deposits.gpkg"
    gpd.read_file(QINHANG / "deposits.gpkg").iloc[:1].to_file(path)
    return [(str(QINHANG / "deposits.gpkg"), str(path))]


CASES = {
    # wrong before: silent or a raw traceback
    "thousands separators": (_thousands, r"\[samples\] survey.csv has values such as 'Ba': \['[0-9],[0-9]{3}'.* pass "
                                         r"decimal='.'"),
    "IDW radius of 5 m": (lambda t: [("k = 12", "k = 12\nradius = 5")],
                          r"\[idw\] radius=5.0, max_distance=.*: only 0\.\d+ % of the grid lies within"),
    "geology polygons as a distance layer": (
        lambda t: [(str(QINHANG / "faults.gpkg"), str(QINHANG / "geology.gpkg"))],
        r"every cell of the grid lies inside a polygon of \[\[distance\]\] #1 geology.gpkg"),
    "truncated raster": (_truncated_raster, r"magnetics.tif.*(cannot read its cells|is not a raster GDAL can read)"),
    "utf-16 asked of a utf-8 survey": (_utf16, r"\[samples\] stream_sediments.csv cannot be read as "
                                               r"encoding='utf-16'"),
    "a column named twice": (_duplicate, r"\[samples\] survey.csv names the column\(s\) \['Cu'\] more than once"),
    # late before: refused after files were written, or with a misleading message
    "a 1 x 1 grid": (lambda t: [("shape = [160, 160]", "shape = [1, 1]")],
                     r"\[\[raster\]\] #1: sigma=2000 is under half a cell \(39000\); it would change nothing"),
    "a 1 x 1 grid, no raster": (lambda t: [("shape = [160, 160]", "shape = [1, 1]"), ("derive = [\"high_pass\"]", ""),
                                           ("sigma = 2000", "")],
                                r"\[tiles\] size=32 is larger than the grid \(1 x 1 cells\)"),
    "one deposit": (_one_deposit, r"\[heldout\]: deposits: 1 of 1 lie on the grid, fewer than k=3 folds|"
                                  r"one deposit"),
    "a tile larger than the grid": (lambda t: [("size = 32", "size = 256")],
                                    r"\[tiles\] size=256 is larger than the grid \(160 x 160 cells\)"),
    "log = true with zeros": (_zeros_with_log, r"\[idw\]: log=True needs positive values, but these elements have "
                                               r"zeros or negatives"),
    "a raster named like another band": (
        lambda t: [("derive = [\"high_pass\"]", "derive = [\"high_pass\"]\nname = \"fault_distance\"")],
        r"band names the stack would hold twice: 'fault_distance' from \[\[distance\]\] #1 and \[\[raster\]\]"),
    "a held-out window larger than the grid": (lambda t: [("window = 9", "window = 401")],
                                               r"\[heldout\] window=401 is larger than the grid \(160 x 160 cells\)"),
    "a default held-out window larger than the grid": (
        lambda t: [("window = 9", "positive_radius = 100000")],
        r"the window made from \[heldout\] positive_radius=100000 is larger than the grid \(160 x 160 cells\)"),
    "an empty vector file": (_empty_faults, r"faults.gpkg holds no features"),
    "an all-nodata raster": (_nodata_raster, r"magnetics.tif holds no data where it covers the grid"),
    "an all-blank element column": (_blank_element, r"\[idw\] elements: \['Te'\] are columns of survey.csv but every "
                                                    r"cell of them is blank"),
    "a constant element": (_constant_element, r"\[idw\] elements: \['Te'\] hold one value in every sample"),
    "no element passes the screening": (lambda t: [('method = "value"', 'method = "value"\nalpha = 1e-300')],
                                        r"no element passed the screening"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_check_refuses_what_run_would_and_run_writes_nothing(tmp_path, capsys, case):
    make, message = CASES[case]
    config = _tiny(tmp_path, *make(tmp_path))
    assert cli(["check", str(config)]) == 2
    err = capsys.readouterr().err
    assert re.search(message, err), err
    assert err.count("\n") == 1 and "Traceback" not in err        # one line
    out = tmp_path / "out"
    assert cli(["run", str(config), "--out", str(out)]) == 2
    assert capsys.readouterr().err == err and not out.exists()     # the same line; nothing written


def _bow_tie(tmp_path):
    geology = gpd.read_file(QINHANG / "geology.gpkg")
    x0, y0, x1, y1 = geology.total_bounds
    tie = Polygon([(x0 + 1000, y0 + 1000), (x0 + 3000, y0 + 3000), (x0 + 3000, y0 + 1000), (x0 + 1000, y0 + 3000)])
    geology = pd.concat([geology, gpd.GeoDataFrame({"unit": ["Triassic"]}, geometry=[tie], crs=geology.crs)],
                        ignore_index=True)
    path = tmp_path / "geology.gpkg"
    geology.to_file(path)
    return [(str(QINHANG / "geology.gpkg"), str(path))]


def _overlapping_units(tmp_path):
    geology = gpd.read_file(QINHANG / "geology.gpkg")
    moved = geology.iloc[[0]].copy()
    moved["unit"] = "Quaternary" if geology["unit"].iloc[0] != "Quaternary" else "Devonian"
    moved["geometry"] = moved.geometry.translate(1500, 1500)
    path = tmp_path / "geology.gpkg"
    pd.concat([geology, moved], ignore_index=True).to_file(path)
    return [(str(QINHANG / "geology.gpkg"), str(path))]


@pytest.mark.parametrize(("make", "message"), [
    (_bow_tie, r"note: \[\[categorical\]\] #1 geology.gpkg: 1 of \d+ polygons are invalid \(Self-intersection\); "
               r"they are repaired with make_valid"),
    (_overlapping_units, r"note: \[\[categorical\]\] #1 geology.gpkg: \d+ pair\(s\) of polygons of different unit "
                         r"overlap \([\d.]+ km² in all"),
])
def test_check_notes_polygons_that_are_legal_but_suspicious(tmp_path, capsys, make, message):
    config = _tiny(tmp_path, *make(tmp_path))
    assert cli(["check", str(config)]) == 0
    said = capsys.readouterr().out
    assert re.search(message, said), said


def test_a_run_says_what_its_check_noted_of_polygons_once(tmp_path):
    # the check names the layer by its table ([[categorical]] #1 geology.gpkg), the rasterising (the API) by its
    # argument (gdf): the same two notes, said once each in run.log, under the run file's names
    _bow_tie(tmp_path)
    tied = tmp_path / "tied.gpkg"
    (tmp_path / "geology.gpkg").rename(tied)
    config = _tiny(tmp_path, *_overlapping_units(tmp_path),
                   ('rows = ["ShuffleNetV2", "Classical baselines"]', 'rows = ["Classical baselines"]'),
                   ("[experiments]\n", "[experiments]\nrows = []\n"), ('model_label = "MFAF-ShuffleNetV2"\n', ""))
    both = pd.concat([gpd.read_file(tmp_path / "geology.gpkg"), gpd.read_file(tied).iloc[[-1]]], ignore_index=True)
    both.to_file(tmp_path / "geology.gpkg")
    assert cli(["run", str(config), "--out", str(tmp_path / "out")]) == 0
    log = (tmp_path / "out" / "run.log").read_text()
    for said in ("polygons are invalid", "pair(s) of polygons of different unit overlap"):
        lines = [line for line in log.splitlines() if said in line]
        assert len(lines) == 1 and "[[categorical]] #1 geology.gpkg: " in lines[0], lines


def test_a_vector_file_gdal_cannot_read_is_one_line(tmp_path, capsys):
    path = tmp_path / "faults.gpkg"
    shutil.copy(QINHANG / "faults.gpkg", path)
    path.write_bytes(path.read_bytes()[:100])
    config = _tiny(tmp_path, (str(QINHANG / "faults.gpkg"), str(path)))
    assert cli(["check", str(config)]) == 2
    err = capsys.readouterr().err
    assert re.search(r"faults.gpkg is not a vector layer GDAL can read", err) and err.count("\n") == 1


def test_a_deposit_on_nodata_is_one_line_in_run_log_and_the_report(tmp_path):
    from shapely.geometry import Point

    deposits = gpd.read_file(QINHANG / "deposits.gpkg")
    outside = gpd.GeoDataFrame({"name": ["Outside-1"]}, geometry=[Point(400250, 2419750)], crs=deposits.crs)
    path = tmp_path / "deposits.gpkg"
    pd.concat([deposits, outside], ignore_index=True).to_file(path)      # off the study area: every band nodata
    config = _tiny(tmp_path, (str(QINHANG / "deposits.gpkg"), str(path)),
                   ('rows = ["ShuffleNetV2", "Classical baselines"]', 'rows = ["Classical baselines"]'))
    assert cli(["run", str(config), "--out", str(tmp_path / "out")]) == 0
    line = "[deposits]: 1 of 33 lie on cells where a band has no value (nodata), so no model sees them there: Outside-1"
    log = (tmp_path / "out" / "run.log").read_text()
    assert sum(line in row for row in log.splitlines()) == 1
    assert f"- {line}" in (tmp_path / "out" / "report.md").read_text()
