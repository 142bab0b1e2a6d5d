"""The config-driven run (`prospect run`): config checking, a cut-down case study, determinism and resume."""

import functools
import inspect
import json
import re
import shutil
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
import torch

import prospect as pp
from prospect.cli import main as cli
from prospect.errors import ColumnError, ConfigError, CRSError, InputError, MissingFileError
from prospect.pipeline import config as cfg
from tests.conftest import ROOT

TINY = ROOT / "tests" / "data" / "tiny.toml"
CASE_STUDY = ROOT / "workflows" / "qinhang.toml"


def _tiny(tmp_path, *replacements, name="run.toml"):
    """tests/data/tiny.toml with absolute data paths and ``(old, new)`` text replacements, in tmp_path."""
    text = TINY.read_text().replace("../../data_samples", str(ROOT / "data_samples"))
    for old, new in replacements:
        assert old in text, old
        text = text.replace(old, new)
    path = tmp_path / name
    path.write_text(text)
    return path


def _two_baselines(tmp_path, label):
    """The tiny run file with a random-forest row labelled ``label`` beside logistic regression, the held-out stage
    on those two baselines only and the map from the better (no tile model)."""
    return _classical(tmp_path, f'[[experiments.models]]\ntable = "Classical baselines"\nlabel = "{label}"\n'
                                f'name = "random_forest"\n\n')


def _without_time(frame):
    return frame.drop(columns=[c for c in frame.columns if c == "seconds"])


# ------------------------------------------------------------------------------------------------ config
@pytest.mark.parametrize(("section", "function", "filled"), [
    ("idw", pp.interpolate.idw, {"samples", "grid"}),
    ("tiles", pp.tiles.make_tiles, {"stack", "deposits"}),
    ("screening", pp.screening.screen_elements, {"samples", "deposits", "labels", "seed"}),
    ("split", pp.tiles.spatial_split, {"tiles", "seed"}),
])
def test_section_keys_are_the_keyword_arguments_of_the_call(section, function, filled):
    assert set(cfg.valid_keys(section)) == set(inspect.signature(function).parameters) - filled


def test_trainer_keys_are_the_trainer_arguments():
    from prospect.training import Trainer

    expected = set(inspect.signature(Trainer).parameters) - {"model", "loss", "out_dir", "overwrite", "seed"}
    assert set(cfg.valid_keys("trainer")) == expected | {"preset"}


def test_the_case_study_config_loads_in_both_modes():
    full = pp.pipeline.load_config(CASE_STUDY)
    quick = pp.pipeline.load_config(CASE_STUDY, mode="quick")
    assert full["grid"]["shape"] == [1560, 1560] and full["tiles"]["size"] == 128 and full.changes == []
    assert full["trainer"]["epochs"] == 220 and full.seeds == [0, 1, 2, 3, 4]
    assert quick["grid"]["shape"] == [390, 390] and quick.seeds == [0] and quick["trainer"]["epochs"] == 8
    assert "grid.shape: [1560, 1560] -> [390, 390] (--quick)" in quick.changes
    assert quick["samples"]["path"] == str(ROOT / "data_samples" / "qinhang" / "stream_sediments.csv")
    tables = {row["table"] for row in full.models}
    assert len(tables) == 7 and len(full.models) == 31
    assert [r["name"] for r in full.models if r["table"] == "Classical baselines"] == [
        "random_forest", "gradient_boosting", "logistic_regression", "weights_of_evidence", "fuzzy_overlay"]
    assert full["heldout"]["k"] == 5
    assert quick["heldout"]["rows"] == ["ResNet18", "ShuffleNetV2", "MobileNetV2", "Classical baselines",
                                        "Recommended network"]
    runs = {pp.pipeline.experiments.run_key(row) for row in full.models}
    # 5 network baselines, 2 MFAF, 4 attention ablations, 5 weights, 3 dilation sets; 4 pixel baselines and the
    # fuzzy overlay (its memberships table as a digest); the window network
    assert len(runs) == 25
    fuzzy = next(row for row in full.models if row["name"] == "fuzzy_overlay")
    assert pp.pipeline.experiments.run_key(fuzzy).startswith("fuzzy_overlay_gamma-0.9_how-gamma_memberships-")
    assert len(pp.pipeline.experiments.run_key(fuzzy)) < 60


def test_quick_overrides_replace_a_list_of_layers(tmp_path):
    path = _tiny(tmp_path, ("[quick.trainer]", "[[quick.distance]]\npath = \"../faults.gpkg\"\nname = \"d\"\n\n"
                                               "[quick.trainer]"))
    quick = pp.pipeline.load_config(path, mode="quick")
    assert quick["distance"] == [{"path": str((tmp_path.parent / "faults.gpkg").resolve()), "name": "d"}]
    assert quick.changes[0].startswith("distance: 1 table(s) -> ")
    assert pp.pipeline.load_config(path)["distance"][0]["name"] == "fault_distance"


def test_check_reads_every_input_without_running(tmp_path, capsys):
    assert cli(["check", str(CASE_STUDY), "--quick"]) == 0
    said = capsys.readouterr().out
    assert "7512 samples" in said and "32 deposits" in said and "31 model row(s) x 1 seed(s)" in said


@pytest.mark.parametrize(("old", "new", "error", "message"), [
    ("k = 12", "k = 12\npowr = 2", ConfigError, r"\[idw\]: unknown key\(s\) \['powr'\]; valid keys of \[idw\]: "
                                               r"\['elements', 'power', 'k'"),
    ("[tiles]", "[tile]", ConfigError, r"unknown section\(s\) \['tile'\]; valid sections: \['samples'"),
    ('name = "shufflenet_v2"', 'name = "shufflenet_v2"\nbackbone = "resnet18"', ConfigError,
     r"'shufflenet_v2' takes no option \['backbone'\]; valid: \['augment', 'tta'"),
    ('name = "shufflenet_v2"', 'name = "alexnet"', ConfigError, r"name='alexnet'; valid model names: \['googlenet'"),
    ("seeds = [0, 1]", "seeds = [0, 0]", ConfigError, r"seeds=\[0, 0\] repeats a seed"),
    ('elements = "screen"', 'elements = "all"', ConfigError, r"elements='all'; valid: 'screen'"),
    ("[quick.trainer]", "[quick.trainers]", ConfigError, r"\[quick\]: unknown section\(s\) \['trainers'\]"),
    ('derive = ["high_pass"]', 'derive = ["hillshade"]', ConfigError,
     r"\[raster\] #1: derive=\['hillshade'\]; valid: a list of \['slope', 'smooth', 'high_pass'\]"),
    ("sigma = 2000", "", ConfigError, r"derive=\['high_pass'\] needs sigma"),
    ("sigma = 2000", 'sigma = 2000\nresolution = 50', ConfigError, r"unknown key\(s\) \['resolution'\]; valid keys of "
                                                         r"\[raster\]: \['source', 'band', 'name'"),
    ("[mask]\npath", "[mask]\nlayer", ConfigError, r"\[mask\] needs path"),
    ('method = "log10"', 'elements = ["Ag", "Au"]', ConfigError, r"\[transform\] needs method"),
])
def test_config_mistakes_name_the_key_and_the_valid_ones(tmp_path, old, new, error, message):
    with pytest.raises(error, match=message):
        pp.pipeline.load_config(_tiny(tmp_path, (old, new)))


@pytest.mark.parametrize(("old", "new", "error", "message"), [
    ("qinhang/deposits.gpkg", "qinhang/deposit.gpkg", MissingFileError, r"deposit\.gpkg"),
    ('field = "unit"', 'field = "formation"', ColumnError,
     r"field='formation' is not a column of geology\.gpkg; valid: \['unit'"),
    ('elements = "screen"', 'elements = ["Ag", "Unobtainium"]', ColumnError,
     r"\[idw\] elements: \['Unobtainium'\] are not element columns of stream_sediments\.csv after the log10; "
     r"valid: \['Ag'"),
    ("k = 12", "k = 12\nlog = true", ConfigError, r"\[idw\] log = true would take the log of \[transform\]ed values"),
    ('method = "log10"', 'method = "clr"\nzero = -1', InputError, r"zero=-1; valid: a positive number"),
    ("coord_scale = 1000", "coord_scale = 1", CRSError, r"spans only 38.9 x 38.9 metre .*pass coord_scale=1000"),
    ("sigma = 2000", "sigma = 2000\nband = 2", InputError, r"band=2; magnetics.tif has bands 1 to 1"),
    ('crs = "EPSG:32649"', 'crs = "EPSG:4326"', CRSError, r"\[samples\] crs='EPSG:4326' is geographic"),
    ("k = 3\n", "k = 40\n", ConfigError, r"\[heldout\]: deposits: 32 of 32 lie on the grid, fewer than k=40 folds"),
    ("block_size = 8000", "block_size = 80000", ConfigError,
     r"\[heldout\]: k=3: the deposits fall in only 1 blocks of block_size=80000, so a fold would hold none"),
    ("block_size = 8000", "block_size = 8000\nlink = 50000", ConfigError,
     r"\[heldout\]: k=3: deposits within link=50000 of one another share a fold, which leaves 1 groups for 3 folds"),
    ('model_label = "MFAF-ShuffleNetV2"', 'model_label = "MFAF"', ConfigError,
     r"model_label='MFAF' is not the label of an experiments row; valid: \['MFAF-ShuffleNetV2', 'ShuffleNetV2',"
     r" 'Logistic regression'\]"),
])
def test_input_problems_are_found_before_any_work(tmp_path, capsys, old, new, error, message):
    config = pp.pipeline.load_config(_tiny(tmp_path, (old, new)))
    with pytest.raises(error, match=message):
        pp.pipeline.check_inputs(config)
    out = tmp_path / "out"
    assert cli(["run", str(_tiny(tmp_path, (old, new))), "--out", str(out)]) == 2
    assert "error: " in capsys.readouterr().err
    assert not out.exists()  # nothing was written


@pytest.mark.parametrize(("old", "new", "message"), [
    ("shape = [160, 160]", 'shape = "64x64"', r"\[grid\] shape='64x64'; valid: \[a whole number, a whole number\] "
                                              r"or none .*\(shape of prospect.grid.Grid.from_bounds\)"),
    ("shape = [160, 160]", "shape = [0, 160]", r"\[grid\] shape=\[0, 160\]; valid: two whole numbers ≥ 1"),
    ("k = 12", 'k = 12\npower = "two"', r"\[idw\] power='two'; valid: a number \(power of prospect.interpolate.idw\)"),
    ("k = 12", "k = 0", r"\[idw\] k=0; valid: a whole number ≥ 1"),
    ("stride = 32", "stride = 0", r"\[tiles\] stride=0; valid: a whole number ≥ 1"),
    ("stride = 32", 'stride = 32\nlabel = "middle"', r"\[tiles\] label='middle'; valid: one of 'any', 'center'"),
    ("test_size = 0.3", "test_size = 30", r"\[split\] test_size=30; valid: a fraction in \(0, 1\)"),
    ('preset = "mfaf"', 'preset = "resnet"', r"\[trainer\] preset='resnet'; valid: \['convnext_eca', 'images', "),
    ("epochs = 2\nbatch_size = 16", "epochs = 2\nbatch_size = 0",
     r"\[trainer\]: batch_size=0 must be a whole number of at least 1"),
    ("epochs = 2\nbatch_size = 16", "epochs = 2\nbatch_size = 16\noptimizer = \"rmsprop\"",
     r"\[trainer\] optimizer='rmsprop'; valid: one of 'sgd', 'adam', 'adamw'"),
    ("trainer = { epochs = 1, batch_size = 32 }", "trainer = { epochs = 0 }",
     r"\[heldout\] trainer: epochs=0 must be a whole number of at least 1"),
    ("trainer = { epochs = 1, batch_size = 32 }", "trainer = { epoch = 1 }",
     r"\[heldout\] trainer: unknown key\(s\) \['epoch'\]"),
    ("k = 3\n", "k = 1\n", r"\[heldout\] k=1; valid: a whole number of folds ≥ 2, or 0 to turn the stage off"),
    ("k = 3\n", 'k = 3\nensemble = "yes"\n',
     r"\[heldout\] ensemble='yes'; valid: true, false or a list of held-out row"),
    ('rows = ["ShuffleNetV2", "Classical baselines"]', 'rows = ["Classical baselines"]\nensemble = true',
     r"\[heldout\] ensemble=True combines a network row and a baseline row; .* hold no network"),
    ('rows = ["ShuffleNetV2", "Classical baselines"]',
     'rows = ["ShuffleNetV2", "Classical baselines"]\nensemble = ["ShuffleNetV2", "Lasso"]',
     r"\[heldout\] ensemble: \['Lasso'\] name no held-out row; valid: \['ShuffleNetV2', 'Logistic regression'\]"),
    ("area_fraction = 0.1", "area_fraction = 10", r"\[targets\] area_fraction=10; valid: a fraction in \(0, 1\]"),
    ("stride = 16", 'stride = 16\ndevice = "gpu"', r"\[map\] device: device='gpu'; valid: 'auto', 'cpu'"),
    ("dilations = [1, 6]", 'dilations = "1,6"', r"\[experiments\] models #1 \(MFAF-ShuffleNetV2\): dilations='1,6'; "
                                                r"valid: a name of \['rate1'"),
    ("dilations = [1, 6]", "dilations = [1, 6]\naux_weight = -0.4",
     r"models #1 .*: aux_weight=-0.4; valid: a number ≥ 0"),
    ('backbone = "shufflenet_v2"', 'backbone = "resnet50"',
     r"models #1 .*: backbone='resnet50'; valid: one of 'resnet18', 'shufflenet_v2'"),
    ("[quick.trainer]\nepochs = 1", "[quick.trainer]\nepochs = -1",
     r"\[trainer\] \(set by --quick\): epochs=-1 must be a whole number of at least 1"),
])
def test_wrong_values_are_refused_by_check_and_run_before_any_work(tmp_path, capsys, old, new, message):
    config = _tiny(tmp_path, (old, new))
    mode = ["--quick"] if "quick" in old else []
    assert cli(["check", str(config), *mode]) == 2
    err = capsys.readouterr().err
    assert re.search(message, err), err
    assert err.count("\n") == 1 and "Traceback" not in err      # one line
    out = tmp_path / "out"
    assert cli(["run", str(config), *mode, "--out", str(out)]) == 2
    assert re.search(message, capsys.readouterr().err) and not out.exists()


@pytest.mark.parametrize(("flags", "message"), [
    (["--epochs", "0"], r"\[trainer\] \(set by --epochs\): epochs=0 must be a whole number of at least 1"),
    (["--device", "tpu"], r"\[trainer\] \(set by --device\): device='tpu'; valid: 'auto', 'cpu'"),
    pytest.param(["--device", "cuda"], r"device='cuda' but torch sees no CUDA device",
                 marks=pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")),
])
def test_wrong_command_line_values_are_refused_before_any_work(tmp_path, capsys, flags, message):
    out = tmp_path / "out"
    assert cli(["run", str(_tiny(tmp_path)), "--out", str(out), *flags]) == 2
    assert re.search(message, capsys.readouterr().err) and not out.exists()


def test_an_out_that_is_a_file_or_not_writable_is_one_line_before_reading(tmp_path, capsys, monkeypatch):
    config = _tiny(tmp_path)
    (tmp_path / "taken").write_text("a file")
    read = []
    monkeypatch.setattr(pp.pipeline, "check_inputs", lambda *a, **k: read.append(1))    # the first input read
    for out, message in ((tmp_path / "taken", r"--out .*taken: .*taken is a file, not a folder"),
                         (tmp_path / "taken" / "sub", r"--out .*sub: .*taken is a file, not a folder"),
                         (Path("/proc/prospect-out/run"), r"--out /proc/prospect-out/run: cannot write in /proc")):
        assert cli(["run", str(config), "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert re.fullmatch(rf"error: {message}.*\n", err), err
    assert read == [] and (tmp_path / "taken").read_text() == "a file"


@pytest.mark.parametrize(("section", "message"), [
    ("deposits", r"no Point of \[deposits\] deposits.gpkg overlaps the grid .*check the CRS"),
    ("geology", r"no (Multi)?Polygon of \[\[categorical\]\] #1 geology.gpkg overlaps the grid"),
    ("study_area", r"no Polygon of \[mask\] study_area.gpkg overlaps the grid"),
    ("magnetics", r"the raster magnetics.tif does not overlap the grid .*check the raster's CRS"),
])
def test_a_layer_in_the_wrong_crs_is_refused_before_any_file_is_written(tmp_path, capsys, section, message):
    """A file whose coordinates are declared in the wrong CRS (the neighbouring UTM zone, or metres for degrees)."""
    qinhang = ROOT / "data_samples" / "qinhang"
    if section == "magnetics":
        with rasterio.open(qinhang / "magnetics.tif") as src:
            profile, values = src.profile, src.read()
        profile["crs"] = "EPSG:32649"                  # the degrees taken as metres
        with rasterio.open(tmp_path / "magnetics.tif", "w", **profile) as dst:
            dst.write(values)
    else:
        frame = gpd.read_file(qinhang / f"{section}.gpkg")
        wrong = "EPSG:32649" if section == "study_area" else "EPSG:32650"
        frame.set_crs(wrong, allow_override=True).to_file(tmp_path / f"{section}.gpkg")
    config = _tiny(tmp_path, (str(ROOT / "data_samples" / "qinhang" / f"{section}."), str(tmp_path / f"{section}.")))
    with pytest.raises(CRSError, match=message):
        pp.pipeline.check_inputs(pp.pipeline.load_config(config))
    out = tmp_path / "out"
    assert cli(["run", str(config), "--out", str(out)]) == 2
    assert "check the" in capsys.readouterr().err and not out.exists()


def test_refuses_a_non_empty_output_folder_and_a_changed_resume(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("keep me")
    assert cli(["run", str(_tiny(tmp_path)), "--out", str(out)]) == 2
    assert "is not empty; pass --overwrite" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]
    assert cli(["run", str(_tiny(tmp_path)), "--out", str(out), "--resume"]) == 2
    assert "holds no run to resume" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------ runs
@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny")
    config = _tiny(folder)
    assert cli(["run", str(config), "--out", str(folder / "out")]) == 0
    return config, folder / "out"


def test_a_tiny_run_writes_every_output_and_they_open(tiny_run):
    _, out = tiny_run
    table = pd.read_csv(out / "screening.csv", index_col=0)
    selected = table.index[table["selected"]].tolist()
    assert len(selected) >= 2 and len(list((out / "elements").glob("*.tif"))) == len(selected)
    with rasterio.open(out / "stack.tif") as src:
        assert src.count == len(selected) + 4 and src.shape == (160, 160) and src.crs.to_epsg() == 32649
        assert src.descriptions[-4:] == ("unit", "fault_distance", "mag_rtp", "mag_rtp_highpass2000")
        stack = src.read(masked=True)
        grid = pp.Grid.from_bounds(src.bounds, shape=src.shape, crs=32649)
    # the licence is the study area: outside it every band is nodata; inside, only the unflown block lacks magnetics
    area = pp.layers.study_area(pp.io.read_vector(ROOT / "data_samples" / "qinhang" / "study_area.gpkg"), grid)
    outside = area.values[0] == 0
    assert 0.05 < outside.mean() < 0.15 and stack.mask[:, outside].all()
    valid = ~stack.mask.any(axis=0)
    assert (valid == (~outside & ~stack.mask[-2])).all() and 0.8 < valid.mean() < 0.9
    counts = pd.read_csv(out / "tiles.csv")
    tiles = sum(valid[r:r + 32, c:c + 32].mean() >= 0.5 for r in range(0, 160, 32) for c in range(0, 160, 32))
    assert 20 <= tiles < 25 and counts.loc[0, ["ore", "no_ore"]].sum() == tiles
    assert counts[counts.side == "test"]["synthetic"].eq(0).all()
    with rasterio.open(out / "prospectivity.tif") as src:
        values = src.read(1, masked=True)
        assert src.shape == (160, 160) and src.crs.to_epsg() == 32649 and 0 <= values.min() <= values.max() <= 1
        assert (values.mask == ~valid).all()          # no probability on a cell outside the study area
    assert (out / "prospectivity.qml").exists() and (out / "uncertainty.tif").exists()
    targets = gpd.read_file(out / "targets.gpkg")
    assert len(targets) >= 1 and targets.crs.to_epsg() == 32649
    evaluation = pd.read_csv(out / "evaluation.csv")
    assert evaluation.loc[0, "deposits"] == 32 and evaluation.loc[0, "undiscovered"] == 8
    report = (out / "report.md").read_text()
    assert "**Synthetic data.**" in report and "### Table 3: methods" in report and "| Ag |" in report
    log = (out / "run.log").read_text()
    assert all(f" {stage} " in log for stage in ("1 screening:", "2 evidence layers:", "3 tiles:", "4 experiments:",
                                                  "5 held-out deposits:", "6 map", "7 report:"))
    assert json.loads((out / "config.json").read_text())["mode"] == "full"


def test_the_held_out_table_is_the_mean_over_held_out_deposits(tiny_run):
    _, out = tiny_run
    table = pd.read_csv(out / "heldout.csv")
    deposits = pd.read_csv(out / "heldout_deposits.csv")
    assert sorted(table["label"]) == ["Logistic regression", "ShuffleNetV2"]
    assert pd.read_csv(out / "folds.csv")["deposits"].sum() == 32
    for line in table.itertuples():
        mine = deposits[deposits["label"] == line.label]
        assert len(mine) == line.deposits == 32 and sorted(mine["deposit"]) == list(range(32))
        assert line.auc == pytest.approx(mine["auc"].mean())
        assert line.auc_low <= line.auc <= line.auc_high
        assert line.top_10 == pytest.approx((mine["area_above"] <= 0.1 + 1e-12).mean())
        assert line.undiscovered == 8 and 0 <= line.undiscovered_auc <= 1
    assert table["auc"].is_monotonic_decreasing
    # each row against the best, deposit by deposit, by hand: the mean of the differences, inside its interval
    best = deposits[deposits["label"] == table["label"].iloc[0]].set_index("deposit")["auc"]
    for line in table.itertuples():
        mine = deposits[deposits["label"] == line.label].set_index("deposit")["auc"]
        assert line.paired_difference == pytest.approx((mine - best.reindex(mine.index)).mean())
        assert line.paired_low <= line.paired_difference <= line.paired_high
    assert table[["paired_difference", "paired_low", "paired_high"]].iloc[0].tolist() == [0.0, 0.0, 0.0]
    importance = pd.read_csv(out / "importance.csv")
    with rasterio.open(out / "stack.tif") as src:
        bands = src.count                                   # 8 elements, geology, faults, magnetics and its residual
    assert set(importance["label"]) == {"Logistic regression"} and len(importance) == bands == 12
    report = (out / "report.md").read_text()
    headline = report.index("## Which model finds deposits it never saw")
    assert headline < report.index("## 1 Element screening") and "| Logistic regression |" in report[headline:]
    assert (out / "heldout_rate.png").exists()


def _markdown_table(text, heading):
    """The first table under ``heading`` in a Markdown report, as a DataFrame of strings."""
    block = []
    for line in text[text.index(heading):].splitlines()[2:]:
        if line.startswith("|"):
            block.append(line)
        elif block:
            break
    header = [c.strip() for c in block[0].strip("|").split("|")]
    return pd.DataFrame([[c.strip() for c in row.strip("|").split("|")] for row in block[2:]], columns=header)


def test_the_report_lists_the_target_areas_of_targets_gpkg(tiny_run):
    import rasterio.features

    _, out = tiny_run
    areas = gpd.read_file(out / "targets.gpkg")
    text = (out / "report.md").read_text()
    assert text.index("## Summary") < text.index("## Target areas") < text.index("## Figures") \
        < text.index("## 1 Element screening")
    table = _markdown_table(text, "## Target areas")
    assert table["rank"].astype(int).tolist() == areas["rank"].tolist()
    assert table["area (km²)"].tolist() == [f"{a:.2f}" for a in areas["area_km2"]]
    np.testing.assert_allclose(areas["area_km2"], areas.geometry.area / 1e6)          # the polygons' own areas
    assert table["centroid x"].tolist() == [f"{x:.0f}" for x in areas.geometry.centroid.x]
    deposits = pp.io.read_vector(ROOT / "data_samples" / "qinhang" / "deposits.gpkg")
    inside = [int(deposits.within(polygon).sum()) for polygon in areas.geometry]
    assert table["known deposits inside"].astype(int).tolist() == inside == areas["n_deposits"].tolist()
    with rasterio.open(out / "uncertainty.tif") as src:
        spread, transform = src.read(1, masked=True), src.transform
    for polygon, shown in zip(areas.geometry, table["mean uncertainty"], strict=True):
        cells = rasterio.features.geometry_mask([polygon], spread.shape, transform, invert=True)
        assert shown == f"{spread[cells].mean():.3f}"


def test_targets_rank_first_by_how_many_top_held_out_models_share_them(tiny_run, tmp_path):
    import rasterio.features

    from prospect.pipeline.config import top_heldout_rows

    # the tiny run: ShuffleNetV2's interval does not reach logistic regression's, which stands alone
    _, out = tiny_run
    assert top_heldout_rows(pd.read_csv(out / "heldout.csv")) == ["logistic_regression"]
    assert not (out / "consensus.tif").exists() and "models_agreeing" not in gpd.read_file(out / "targets.gpkg")
    # two baselines whose intervals overlap: their consensus ranks the targets
    config = _two_baselines(tmp_path, "Random forest")
    assert cli(["run", str(config), "--out", str(tmp_path / "out")]) == 0
    out = tmp_path / "out"
    table = pd.read_csv(out / "heldout.csv")
    runs = top_heldout_rows(table)
    assert sorted(runs) == ["logistic_regression", "random_forest"]
    areas = gpd.read_file(out / "targets.gpkg")
    with rasterio.open(out / "consensus.tif") as src:
        agreement, transform = src.read(1, masked=True), src.transform
        assert src.crs.to_epsg() == 32649
    assert agreement.min() >= 0 and agreement.max() <= len(runs)
    for polygon, shown in zip(areas.geometry, areas["models_agreeing"], strict=True):
        cells = rasterio.features.geometry_mask([polygon], agreement.shape, transform, invert=True)
        assert shown == np.sort(agreement[cells].compressed())[(cells.sum() - 1) // 2]     # the lower median
    ranked = areas.sort_values(["models_agreeing", "max_probability"], ascending=False, kind="stable")
    assert ranked["rank"].tolist() == areas["rank"].tolist() == list(range(1, len(areas) + 1))
    text = (out / "report.md").read_text()
    labels = table.set_index("run").loc[runs, "label"].tolist()
    assert f"top held-out models ({', '.join(labels)}" in text
    assert _markdown_table(text, "## Target areas")["models agreeing"].tolist() == \
        [f"{n} of {len(runs)}" for n in areas["models_agreeing"].head(30)]     # the report shows the first 30


def test_report_html_is_the_report_with_its_figures_inside(tiny_run):
    import re

    _, out = tiny_run
    text, page = (out / "report.md").read_text(), (out / "report.html").read_text()
    figures = re.findall(r"!\[[^\]]*\]\(([^)]+\.png)\)", text)
    assert len(figures) >= 6 and all((out / f).exists() for f in figures)
    assert page.count('src="data:image/png;base64,') == len(figures) and ".png\"" not in page
    assert "<table>" in page and "<h2>Target areas</h2>" in page and "Synthetic data." in page


def test_the_run_opens_in_qgis_with_every_layer_styled(tiny_run, tmp_path, qgis_python):
    from tests.conftest import open_in_qgis

    _, out = tiny_run
    moved = shutil.copytree(out, tmp_path / "sent elsewhere", ignore=shutil.ignore_patterns("runs", "*.npz"))
    seen = open_in_qgis(qgis_python, moved / "project.qgs", tmp_path / "render.png")
    layers = {layer["name"]: layer for layer in seen["layers"]}
    assert seen["read"] and seen["crs"] == "EPSG:32649" and not seen["absolute_paths"]
    assert all(layer["valid"] and layer["source"].startswith(str(moved)) for layer in layers.values())
    assert layers["target areas (rank)"]["label_field"] == "rank"
    assert layers["target areas (rank)"]["features"] == len(gpd.read_file(out / "targets.gpkg"))
    assert layers["known deposits"]["features"] == 32
    assert layers["undiscovered deposits (kept out of every step)"]["features"] == 8
    assert layers["faults"]["renderer"] == "singleSymbol"
    units = ["Carboniferous", "Devonian", "Permian", "Quaternary", "Triassic"]
    assert layers["geology"]["renderer"] == "categorizedSymbol" and layers["geology"]["legend"] == units
    assert layers["prospectivity (ore probability)"]["renderer"] == "singlebandpseudocolor"
    assert layers["uncertainty"]["renderer"] == "singlebandpseudocolor" and not layers["uncertainty"]["checked"]
    evidence = [layer for layer in seen["layers"] if layer["group"] == "evidence layers (stack.tif)"]
    with rasterio.open(out / "stack.tif") as src:
        assert [layer["band"] for layer in evidence] == list(range(1, src.count + 1))
        assert src.units[0].startswith("log10(") and src.overviews(1) == []     # 160 px: one block, no overview
    assert layers["unit"]["renderer"] == "paletted" and layers["unit"]["legend"] == units
    assert layers["Ag (log10(ng/g))"]["renderer"] == "singlebandpseudocolor"
    assert seen["render"]["colours"] > 50


def test_a_constant_model_is_flagged_collapsed_and_never_called_best(tmp_path, monkeypatch):
    """A planted constant model: the random-forest row gets scikit-learn's DummyClassifier (the class prior)."""
    from sklearn.dummy import DummyClassifier

    import prospect.validation

    built = prospect.validation.build_baseline
    monkeypatch.setattr(prospect.validation, "build_baseline", lambda name, **kw: DummyClassifier(strategy="prior")
                        if name == "random_forest" else built(name, **kw))
    config = _two_baselines(tmp_path, "Planted constant")
    assert cli(["run", str(config), "--out", str(tmp_path / "out")]) == 0
    table = pd.read_csv(tmp_path / "out" / "heldout.csv").set_index("label")
    assert table.loc["Planted constant", "collapsed"] and not table.loc["Logistic regression", "collapsed"]
    text = (tmp_path / "out" / "report.md").read_text()
    assert "| Planted constant (collapsed: constant map) |" in text
    assert "- **Collapsed** (a constant map; never called best): Planted constant." in text
    assert "- **Best on deposits it never saw**: Logistic regression" in text
    assert "**Planted constant** ranks" not in text


def test_a_tile_model_that_says_one_class_is_collapsed_and_tables_that_overlap_say_so():
    from prospect.pipeline import experiments as exp
    from prospect.pipeline import report

    labels = [0] * 20 + [1] * 4
    rng = np.random.default_rng(0)
    scores = {"steady": [0.42] * 24,                                     # constant: collapsed
              "timid": list(rng.uniform(0.0, 0.4, 24)),                  # ranks, but every tile "no ore": collapsed
              "useful": [0.2] * 20 + [0.7, 0.8, 0.3, 0.9]}
    rows = [{"label": name, "name": name, "table": "T"} for name in scores]
    records = [{"run": name, "seed": 0, "accuracy": 0.8, "auc": auc, "recall": 0.5, "f1": 0.6, "test_labels": labels,
                "test_scores": scores[name]} for name, auc in (("steady", 0.99), ("timid", 0.9), ("useful", 0.7))]
    table = exp.summarise(rows, records)
    assert table.set_index("label")["collapsed"].to_dict() == {"steady": True, "timid": True, "useful": False}
    line = report._ordering(table)
    assert line.startswith("AUC ordering here: useful") and "collapsed, not ranked: steady, timid" in line
    close = pd.DataFrame({"label": ["a", "b"], "auc_mean": [70.0, 60.0], "auc_low": [40.0, 30.0],
                          "auc_high": [95.0, 85.0], "auc_paper": [np.nan, np.nan], "collapsed": [False, False]})
    assert report._ordering(close).startswith("**This table cannot separate these models**")
    # held out: "not told apart" is the paired interval holding 0, not two intervals overlapping
    heldout = pd.DataFrame({"label": ["best", "paired_close", "overlapping_only"], "auc": [0.92, 0.91, 0.90],
                            "auc_low": [0.87, 0.80, 0.84], "auc_high": [0.96, 0.97, 0.95],
                            "paired_difference": [0.0, -0.01, -0.02], "paired_low": [0.0, -0.06, -0.03],
                            "paired_high": [0.0, 0.04, -0.005], "collapsed": [False] * 3})
    assert report._overlapping(heldout, heldout.iloc[0])["label"].tolist() == ["paired_close"]
    unpaired = heldout.drop(columns=["paired_difference", "paired_low", "paired_high"])
    assert report._overlapping(unpaired, unpaired.iloc[0])["label"].tolist() == ["paired_close", "overlapping_only"]
    assert report._apart(heldout, heldout.iloc[[1]]).startswith("The held-out deposits do not tell paired_close apart")


def test_dilation_scale_reaches_every_mfaf_row_that_sets_none(tmp_path):
    config = pp.pipeline.load_config(_tiny(tmp_path, ("[experiments]", "[experiments]\ndilation_scale = 2")))
    mfaf = [row for row in config.models if row["name"] == "mfaf"]
    assert [row["dilation_scale"] for row in mfaf] == [2] and "dilation_scale" not in config.models[1]
    assert "experiments.dilation_scale: 2 given to 1 MFAF row(s)" in config.changes
    assert pp.pipeline.experiments.build_model(mfaf[0], 10, 0).dilations == (1, 3)   # [1, 6] / 2
    with pytest.raises(ConfigError, match=r"\[experiments\] dilation_scale='4'; valid: a positive number"):
        pp.pipeline.load_config(_tiny(tmp_path, ("[experiments]", "[experiments]\ndilation_scale = '4'")))


def test_rows_pick_models_by_label_or_table(tmp_path):
    from prospect.pipeline.config import select_rows
    from prospect.pipeline.heldout import chosen_rows

    config = pp.pipeline.load_config(_tiny(tmp_path, ("[experiments]", '[experiments]\nrows = ["ShuffleNetV2"]')))
    assert [row["label"] for row in select_rows(config, "experiments")] == ["ShuffleNetV2"]
    assert [row["label"] for row in chosen_rows(config)] == ["ShuffleNetV2", "Logistic regression"]
    everything = pp.pipeline.load_config(_tiny(tmp_path, ('rows = ["ShuffleNetV2", "Classical baselines"]\n', "")))
    assert len(chosen_rows(everything)) == 3   # no rows: every row, once per distinct model
    off = pp.pipeline.load_config(_tiny(tmp_path, ("k = 3", "k = 0")))
    assert chosen_rows(off) == []
    wrong = pp.pipeline.load_config(_tiny(tmp_path, ('"Classical baselines"]', '"Classical baseline"]')))
    with pytest.raises(ConfigError, match=r"\[heldout\] rows: \['Classical baseline'\] name no experiment row or "
                                          r"table; valid: \['Classical baselines', 'Logistic regression'"):
        chosen_rows(wrong)


def test_a_map_model_that_no_stage_trains_is_refused_before_any_work(tmp_path):
    path = _tiny(tmp_path, ('model_label = "MFAF-ShuffleNetV2"', 'model_label = "Logistic regression"'),
                 ('rows = ["ShuffleNetV2", "Classical baselines"]', 'rows = ["ShuffleNetV2"]'))
    config = pp.pipeline.load_config(path)
    with pytest.raises(ConfigError, match=r"\[map\] model_label='Logistic regression' maps with its fold models "
                                          r"\(held-out stage\) or its tile model, but neither stage trains it"):
        pp.pipeline.check_inputs(config)


def test_the_vote_is_the_majority_of_the_branches(tiny_run):
    import torch
    from safetensors.torch import load_file

    _, out = tiny_run
    runs = pd.read_csv(out / "experiments.csv")
    mfaf = runs[runs["run"].str.startswith("mfaf") & (runs["seed"] == 0)].iloc[0]
    model = pp.models.build("mfaf", 12, backbone="shufflenet_v2", dilations=[1, 6])   # the tiny stack's 12 bands
    model.load_state_dict(load_file(out / "runs" / mfaf["run"] / "seed0" / "model.safetensors"))
    test = pp.tiles.TileSet.load(out / "tiles_test.npz")
    model.eval()
    with torch.no_grad():
        branches = model(torch.from_numpy(test.x)).branch_logits.argmax(dim=-1).numpy()   # (tiles, 2 branches)
        fused = model(torch.from_numpy(test.x)).probabilities().numpy()
    ore_votes = branches.sum(axis=1)
    # two branches: a 1-1 tie goes to the class of higher fused probability
    majority = np.where(ore_votes * 2 > branches.shape[1], 1, np.where(ore_votes * 2 < branches.shape[1], 0,
                                                                          fused.argmax(axis=1)))
    np.testing.assert_array_equal(pp.pipeline.experiments.branch_vote(model, test), majority)
    assert mfaf["vote_accuracy"] == pytest.approx((majority == test.y).mean())
    assert runs[~runs["run"].str.startswith("mfaf")]["vote_accuracy"].isna().all()


def test_tables_are_the_mean_and_spread_of_the_runs(tiny_run):
    _, out = tiny_run
    runs = pd.read_csv(out / "experiments.csv")
    assert len(runs) == 4 and set(runs["seed"]) == {0, 1} and runs["epochs"].eq(2).all()
    tables = pd.read_csv(out / "tables.csv")
    for line in tables.itertuples():
        mine = runs[runs["run"] == line.run]
        assert line.seeds == 2
        assert line.auc_mean == pytest.approx(100 * mine["auc"].mean(), abs=1e-3)
        assert line.auc_std == pytest.approx(100 * mine["auc"].std(ddof=1), abs=1e-3)
    assert tables.loc[0, "auc_paper"] == pytest.approx(65.42)
    from prospect.training import auc_interval

    for line in tables.itertuples():
        saved = [json.loads((out / "runs" / line.run / f"seed{seed}" / "metrics.json").read_text()) for seed in (0, 1)]
        test = pp.tiles.TileSet.load(out / "tiles_test.npz")
        assert saved[0]["test_labels"] == test.y.tolist()  # seed 0 scored the saved test tiles
        low, high = auc_interval([m["test_labels"] for m in saved], [m["test_scores"] for m in saved], seed=0)
        assert (line.auc_low, line.auc_high) == pytest.approx((100 * low, 100 * high), abs=1e-3)
        assert line.auc_low <= line.auc_mean <= line.auc_high


def test_scores_equal_scikit_learn_on_the_saved_map_model(tiny_run):
    from safetensors.torch import load_file
    from sklearn.metrics import f1_score, roc_auc_score

    _, out = tiny_run
    runs = pd.read_csv(out / "experiments.csv")
    key = "mfaf_backbone-shufflenet_v2_dilations-1-6"
    folder = out / "runs" / key / "seed0"
    assert not (folder / "last.pt").exists()  # checkpoints go once a run is scored
    assert not (out / "runs" / "shufflenet_v2" / "seed0" / "model.safetensors").exists()  # only the map model's
    model = pp.models.build("mfaf", 12, backbone="shufflenet_v2", dilations=[1, 6])   # the tiny stack's 12 bands
    model.load_state_dict(load_file(folder / "model.safetensors"))
    model.eval()
    test = pp.tiles.TileSet.load(out / "tiles_test.npz")
    import torch

    with torch.no_grad():
        prob = pp.models.probabilities(model(torch.from_numpy(test.x))).numpy()
    row = runs[(runs["run"] == key) & (runs["seed"] == 0)].iloc[0]
    assert row["auc"] == pytest.approx(roc_auc_score(test.y, prob[:, 1]), abs=1e-6)
    assert row["f1"] == pytest.approx(f1_score(test.y, prob.argmax(1), average="macro"), abs=1e-6)


def test_a_killed_run_resumes_to_the_same_tables(tiny_run, tmp_path, monkeypatch, capsys):
    config, whole = tiny_run
    from prospect.training import Trainer

    original = Trainer._save
    calls = {"n": 0}

    def killed(self, epoch, improved, checkpoint=True):
        original(self, epoch, improved, checkpoint)
        calls["n"] += 1
        if calls["n"] == 5:  # seed 1, first model, after its first epoch's checkpoint
            raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "_save", killed)
    out = tmp_path / "out"
    capsys.readouterr()
    assert cli(["run", str(config), "--out", str(out)]) == 130     # Ctrl-C: the shell's code, no traceback
    err = capsys.readouterr().err
    assert "the run stopped (interrupted); the same command with --resume continues it" in err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    monkeypatch.setattr(Trainer, "_save", original)
    interrupted = out / "runs" / "mfaf_backbone-shufflenet_v2_dilations-1-6" / "seed1"
    assert (interrupted / "last.pt").exists() and not (interrupted / "metrics.json").exists()
    assert not (out / "prospectivity.tif").exists()
    assert cli(["run", str(config), "--out", str(out), "--resume"]) == 0
    for name in ("experiments.csv", "tables.csv", "screening.csv", "tiles.csv", "evaluation.csv"):
        pd.testing.assert_frame_equal(_without_time(pd.read_csv(out / name)), _without_time(pd.read_csv(whole / name)))
    with rasterio.open(out / "prospectivity.tif") as a, rasterio.open(whole / "prospectivity.tif") as b:
        np.testing.assert_array_equal(a.read(), b.read())
    log = (out / "run.log").read_text()
    assert "the run stopped" in log and "resuming mfaf_backbone-shufflenet_v2_dilations-1-6 seed 1 after epoch 1" \
        in log
    assert "This run was resumed: 2 model(s) were read back" in (out / "report.md").read_text()


def test_resume_refuses_other_settings_and_edited_inputs(tiny_run, tmp_path, capsys):
    config, out = tiny_run
    before = sorted(p.name for p in out.iterdir())
    assert cli(["run", str(config), "--out", str(out), "--resume", "--quick"]) == 2
    assert "was made with other settings (mode differ)" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == before
    # what the run recorded: every input's SHA-256 and the stack's bands
    import hashlib

    recorded = json.loads((out / "config.json").read_text())
    deposits = ROOT / "data_samples" / "qinhang" / "deposits.gpkg"
    assert recorded["inputs"][str(deposits)] == hashlib.sha256(deposits.read_bytes()).hexdigest()
    assert sorted(Path(p).name for p in recorded["inputs"]) == [
        "deposits.gpkg", "faults.gpkg", "geology.gpkg", "magnetics.tif", "stream_sediments.csv", "study_area.gpkg",
        "undiscovered.gpkg"]
    with rasterio.open(out / "stack.tif") as src:
        assert recorded["bands"] == list(src.descriptions)
    # deposits edited in place after the run started: --resume names the file and writes nothing
    edited = tmp_path / "deposits.gpkg"
    shutil.copy(deposits, edited)
    moved = _tiny(tmp_path, (str(deposits), str(edited)))
    folder = tmp_path / "out"
    shutil.copytree(out, folder)
    record = json.loads((folder / "config.json").read_text())
    record["sections"]["deposits"]["path"] = str(edited)
    record["inputs"][str(edited)] = record["inputs"].pop(str(deposits))
    (folder / "config.json").write_text(json.dumps(record))      # as if the run had been made on the copy
    frame = gpd.read_file(edited)
    frame.iloc[:-1].to_file(edited, driver="GPKG")                # one deposit deleted in place
    listing = {p: p.stat().st_mtime_ns for p in folder.rglob("*")}
    assert cli(["run", str(moved), "--out", str(folder), "--resume"]) == 2
    assert re.search(r"--resume: input file\(s\) \['deposits.gpkg'\] changed since the run in .* started",
                     capsys.readouterr().err)
    assert {p: p.stat().st_mtime_ns for p in folder.rglob("*")} == listing


def test_resume_with_more_epochs_trains_on_to_a_longer_run(tiny_run, tmp_path, capsys):
    config, out = tiny_run
    longer = tmp_path / "longer"
    shutil.copytree(out, longer)
    assert cli(["run", str(config), "--out", str(longer), "--resume", "--epochs", "3"]) == 0
    fresh = tmp_path / "fresh"
    assert cli(["run", str(config), "--out", str(fresh), "--epochs", "3"]) == 0
    resumed, started = pd.read_csv(longer / "experiments.csv"), pd.read_csv(fresh / "experiments.csv")
    assert (resumed["epochs"] == 3).all() and (resumed["epochs_planned"] == 3).all()
    pd.testing.assert_frame_equal(_without_time(resumed), _without_time(started))
    assert "was trained for 2 epochs, now 3 are asked for" in (longer / "run.log").read_text()
    assert json.loads((longer / "config.json").read_text())["sections"]["trainer"]["epochs"] == 3


def test_every_file_a_run_writes_is_one_it_owns(tiny_run):
    _, out = tiny_run
    owned = {"config.json", *json.loads((out / "config.json").read_text())["outputs"]}   # recorded as written

    strays = [p.name for p in out.iterdir() if p.name not in owned]
    assert strays == []


def test_overwrite_clears_the_previous_run_and_keeps_other_files(tiny_run, tmp_path):
    config, out = tiny_run
    folder = tmp_path / "out"
    shutil.copytree(out, folder)
    (folder / "notes.txt").write_text("my notes")
    stale = folder / "runs" / "resnet18" / "seed0"
    stale.mkdir(parents=True)
    (stale / "metrics.json").write_text("{}")
    assert (folder / "uncertainty.tif").exists() and (folder / "heldout.csv").exists()
    # the same survey, now mapped by a tile model without the held-out stage: no uncertainty, no heldout.csv
    other = _tiny(tmp_path, ("k = 3\n", "k = 0\n"),
                  ('model_label = "MFAF-ShuffleNetV2"', 'model_label = "ShuffleNetV2"'), name="other.toml")
    assert cli(["run", str(other), "--out", str(folder), "--overwrite"]) == 0
    names = sorted(p.name for p in folder.iterdir())
    assert "notes.txt" in names and (folder / "notes.txt").read_text() == "my notes"
    for gone in ("uncertainty.tif", "heldout.csv", "heldout_deposits.csv", "folds.csv", "importance.csv"):
        assert gone not in names
    assert sorted(p.name for p in (folder / "runs").iterdir()) == ["mfaf_backbone-shufflenet_v2_dilations-1-6",
                                                                   "shufflenet_v2"]
    assert "resnet18" not in (folder / "report.md").read_text()
    assert "kept what no run writes: notes.txt" in (folder / "run.log").read_text()


def test_python_dash_m_prospect_is_the_command():
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "prospect", "keys"], capture_output=True, text=True, check=True)
    assert "[[experiments.models]] rows: label, table, paper, name" in done.stdout
    assert "[idw]  -> prospect.interpolate.idw" in done.stdout


@pytest.mark.slow
def test_a_run_killed_by_sigkill_resumes(tmp_path):
    """A real kill (SIGKILL, no clean-up) in the middle of training, then --resume."""
    import os
    import signal
    import subprocess
    import sys
    import time

    config = _tiny(tmp_path)
    command = [sys.executable, "-m", "prospect", "run", str(config), "--epochs", "25"]
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    subprocess.run(command + ["--out", str(whole)], check=True, capture_output=True)
    process = subprocess.Popen(command + ["--out", str(cut)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    running = cut / "runs" / "shufflenet_v2" / "seed0"
    deadline = time.monotonic() + 120
    while not (running / "last.pt").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.3)  # a few more epochs
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert (running / "last.pt").exists() and not (running / "metrics.json").exists()
    subprocess.run(command + ["--out", str(cut), "--resume"], check=True, capture_output=True)
    assert "resuming shufflenet_v2 seed 0 after epoch" in (cut / "run.log").read_text()
    for name in ("experiments.csv", "tables.csv"):
        pd.testing.assert_frame_equal(_without_time(pd.read_csv(cut / name)), _without_time(pd.read_csv(whole / name)))
    assert os.path.getsize(cut / "prospectivity.tif") > 0


def _classical(tmp_path, rows):
    """The tiny run file with only classical rows (``rows``: TOML text of [[experiments.models]] tables), the
    held-out stage on them, and the map from the best of them."""
    linear = '[[experiments.models]]\ntable = "Classical baselines"\nlabel = "Logistic regression"\n'
    return _tiny(tmp_path, (linear, rows + linear),
                 ('rows = ["ShuffleNetV2", "Classical baselines"]', 'rows = ["Classical baselines"]'),
                 ('model_label = "MFAF-ShuffleNetV2"\n', ''),
                 ("seeds = [0, 1]", 'seeds = [0]\nrows = ["Classical baselines"]'))


FUZZY_AND_WOFE = '''[[experiments.models]]
table = "Classical baselines"
label = "Fuzzy near faults in Devonian"
name = "fuzzy_overlay"
memberships = { fault_distance = ["small", 1500.0, 3.0], unit = ["classes", { 1 = 0.5, 2 = 1, 3 = 0.5, 4 = 0.5 }] }
how = "gamma"
gamma = 0.5

[[experiments.models]]
table = "Classical baselines"
label = "Weights of evidence"
name = "weights_of_evidence"
classes = 5
breaks = { fault_distance = [500.0, 1000.0, 2000.0] }

'''


@pytest.fixture(scope="module")
def classical_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("classical")
    config = _classical(folder, FUZZY_AND_WOFE)
    assert cli(["run", str(config), "--out", str(folder / "out")]) == 0
    return folder / "out"


def test_weights_of_evidence_and_a_fuzzy_overlay_set_in_the_run_file_are_judged_and_the_map_is_explained(
        classical_run):
    out = classical_run
    table = pd.read_csv(out / "heldout.csv")
    assert set(table["label"]) == {"Fuzzy near faults in Devonian", "Weights of evidence", "Logistic regression"}
    assert table["auc"].between(0, 1).all() and (table["seconds"] >= 0).all()
    best = table.iloc[0]
    with rasterio.open(out / "contributions.tif") as src, rasterio.open(out / "stack.tif") as stack_src, \
            rasterio.open(out / "prospectivity.tif") as map_src:
        shares, prob = src.read(masked=True), map_src.read(1, masked=True)
        assert src.descriptions == stack_src.descriptions and src.tags()["kind"] == "contributions"
        assert (shares.mask.any(axis=0) == prob.mask).all()
    # the shares add up to the fold models' mean log-odds (less a constant); the map is their mean probability,
    # which orders the cells nearly, not exactly, alike
    from scipy.stats import spearmanr

    assert best["name"] != "fuzzy_overlay"
    assert spearmanr(shares.sum(axis=0).compressed(), prob.compressed()).statistic > 0.95
    areas = gpd.read_file(out / "targets.gpkg")
    assert {"drivers", "top_band"} <= set(areas) and areas["top_band"].isin(stack_src.descriptions).all()
    text = (out / "report.md").read_text()
    assert _markdown_table(text, "## Target areas")["why (mean share over the area)"].tolist()[:5] == \
        areas["drivers"].tolist()[:5]
    assert "`contributions.tif`" in text
    project = (out / "project.qgs").read_text()
    assert project.count("contributions.tif") >= len(stack_src.descriptions)
    assert "why each cell scores (contributions.tif)" in project
    # weights of evidence fitted to every deposit, beside its held-out row: the chosen patterns as wofe.csv says
    weights = pd.read_csv(out / "wofe.csv")
    chosen = weights[weights["chosen"]]
    assert sorted(weights.loc[weights["band"] == "fault_distance", "pattern"]) == [      # the breaks given
        "<= 1000", "<= 2000", "<= 500", ">= 1000", ">= 2000", ">= 500"]
    shown = _markdown_table(text, "## Weights of evidence, fitted to every deposit")
    assert shown["band"].tolist() == chosen["band"].tolist() and len(shown) >= 2
    assert shown["W+"].tolist() == [f"{w:.2f} ± {s:.2f}" for w, s in zip(chosen["w_plus"], chosen["s_w_plus"],
                                                                         strict=True)]
    assert re.search(r"Conditional independence (holds|fails).*D/T = \d\.\d\d", text)
    with rasterio.open(out / "wofe_posterior.tif") as src:
        assert src.count == 1 and src.tags()["kind"] == "probability"


def test_the_ensemble_row_is_the_rank_mean_of_the_network_and_the_baseline_chosen_inside_each_fold(
        tmp_path, monkeypatch):
    from scipy.stats import rankdata

    from prospect.pipeline.config import (
        ENSEMBLE,
        best_heldout_row,
        ensemble_rows,
        load_config,
        map_row,
        top_heldout_rows,
    )

    made = {}

    def recording(real):
        @functools.wraps(real)     # the run file's keys are read from its signature
        def call(*args, **kwargs):
            result = real(*args, **kwargs)
            made.setdefault(result.label, result)   # the first: not an inner cross-validation's
            return result
        return call

    monkeypatch.setattr(pp.validation, "cross_validate", recording(pp.validation.cross_validate))
    monkeypatch.setattr(pp.validation, "ensemble", recording(pp.validation.ensemble))
    linear = '[[experiments.models]]\ntable = "Classical baselines"\nlabel = "Logistic regression"\n'
    more = ('[[experiments.models]]\ntable = "Recommended network"\nlabel = "Window network"\nname = "window_net"\n'
            'pretrain = false\ntta = false\n\n[[experiments.models]]\ntable = "Classical baselines"\n'
            'label = "Weights of evidence"\nname = "weights_of_evidence"\n\n')
    config = _tiny(tmp_path, (linear, more + linear), ('rows = ["ShuffleNetV2", "Classical baselines"]',
                                                       'rows = ["Recommended network", "Classical baselines"]\n'
                                                       'ensemble = true'),
                   ('model_label = "MFAF-ShuffleNetV2"\n', ''),
                   ("seeds = [0, 1]", 'seeds = [0]\nrows = ["Classical baselines"]'))   # no tile model
    out = tmp_path / "out"
    assert cli(["run", str(config), "--out", str(out)]) == 0
    net, wofe, linear, joint = (made[label] for label in ("Window network", "Weights of evidence",
                                                          "Logistic regression", "Ensemble"))
    # the two baselines were cross-validated inside each fold's training area too, the one network was not
    assert "inner_auc" in wofe.folds and "inner_auc" in linear.folds and "inner_auc" not in net.folds
    chosen = pd.read_csv(out / "ensemble_folds.csv")
    for fold in range(3):
        baseline = max((wofe, linear), key=lambda r: r.folds["inner_auc"].iloc[fold])   # ties: the first listed
        assert chosen["members"].iloc[fold] == f"Window network + {baseline.label}"
        valid = np.isfinite(net.fold_maps[fold])
        by_hand = (rankdata(net.fold_maps[fold][valid]) + rankdata(baseline.fold_maps[fold][valid])) / 2 / valid.sum()
        np.testing.assert_allclose(joint.fold_maps[fold][valid], by_hand, rtol=1e-5)
    table = pd.read_csv(out / "heldout.csv").set_index("label")
    deposits = pd.read_csv(out / "heldout_deposits.csv")
    assert table.loc["Ensemble", "auc"] == pytest.approx(deposits.loc[deposits["label"] == "Ensemble", "auc"].mean())
    np.testing.assert_allclose(deposits.loc[deposits["label"] == "Ensemble", "auc"], joint.ranks["auc"])
    assert "*Ensemble*: the mean percentile rank" in (out / "report.md").read_text()
    # ranked first, it maps as any row does
    run = load_config(config)
    first = table.reset_index().assign(auc=lambda t: np.where(t["label"] == "Ensemble", 1.0, t["auc"]))
    assert best_heldout_row(run, first)[0] == ENSEMBLE
    assert "ensemble" not in top_heldout_rows(first)   # the consensus would count its two members' agreement twice
    (tmp_path / "named.toml").write_text(config.read_text().replace("[map]\n", '[map]\nmodel_label = "Ensemble"\n'))
    assert map_row(load_config(tmp_path / "named.toml")) == ENSEMBLE    # [map] may name it
    # ensemble = true takes the recommended network's rows where there are some (no option set, or only the
    # recommended values), else every network
    both = config.read_text().replace('rows = ["Recommended network"', 'rows = ["ShuffleNetV2", "Recommended network"')
    (tmp_path / "both.toml").write_text(both)
    assert [r["label"] for r in ensemble_rows(load_config(tmp_path / "both.toml"))[0]] == ["ShuffleNetV2",
                                                                                          "Window network"]
    (tmp_path / "plain.toml").write_text(both.replace("pretrain = false\ntta = false\n", ""))
    assert [r["label"] for r in ensemble_rows(load_config(tmp_path / "plain.toml"))[0]] == ["Window network"]
    said = both.replace("pretrain = false\ntta = false\n", "pretrain = true\ntta = true\n")   # the recipe's values
    (tmp_path / "said.toml").write_text(said)
    assert [r["label"] for r in ensemble_rows(load_config(tmp_path / "said.toml"))[0]] == ["Window network"]


def test_the_contribution_layers_open_in_qgis_on_a_diverging_ramp(classical_run, tmp_path, qgis_python):
    from tests.conftest import open_in_qgis

    seen = open_in_qgis(qgis_python, classical_run / "project.qgs", tmp_path / "render.png")
    shares = [layer for layer in seen["layers"] if layer["group"] == "why each cell scores (contributions.tif)"]
    with rasterio.open(classical_run / "contributions.tif") as src:
        assert [layer["band"] for layer in shares] == list(range(1, src.count + 1))
    assert all(layer["valid"] and layer["renderer"] == "singlebandpseudocolor" and not layer["checked"]
               for layer in shares)


@pytest.mark.parametrize(("membership", "message"), [
    ('memberships = { Cu_typo = ["large", 1.0, 2.0] }', r"'Fuzzy' \(fuzzy_overlay\): memberships: \['Cu_typo'\] name "
                                                        r"no band; valid: \[.*'fault_distance'"),
    ('memberships = { fault_distance = ["steep", 1.0, 2.0] }', r"memberships: \['steep', 1.0, 2.0\]; valid: "
                                                               r"\[function, a, b\]"),
    ('memberships = { fault_distance = ["small", -1.0, 2.0] }', r"small: midpoint=-1.0 and spread=2.0 must be "
                                                                r"positive"),
    ('breaks = { fault_distanse = [500.0, 1000.0] }', r"'Fuzzy' \(weights_of_evidence\): breaks: 'fault_distanse' "
                                                       r"names no band; valid: \[.*'fault_distance'"),
])
def test_a_fuzzy_row_that_names_no_band_or_a_bad_function_is_refused_by_check(tmp_path, capsys, membership, message):
    name = "weights_of_evidence" if membership.startswith("breaks") else "fuzzy_overlay"
    row = f'[[experiments.models]]\ntable = "Classical baselines"\nlabel = "Fuzzy"\nname = "{name}"\n' \
          f'{membership}\n\n'
    config = _classical(tmp_path, row)
    for command in (["check", str(config)], ["run", str(config), "--out", str(tmp_path / "out")]):
        assert cli(command) != 0
        assert re.search(message, capsys.readouterr().err)
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------------------------- larger than memory
def test_a_run_worked_block_by_block_equals_the_run_in_memory(tmp_path):
    # [compute] chunks: IDW by strips, samples gathered and maps scored by block, fold maps kept on disk; 48
    # divides neither side of the 160 x 160 grid (ragged last blocks). The magnetics (in degrees) are left out:
    # GDAL's warper approximates a change of CRS differently over a block than over the grid (tests/test_compute
    # checks rasters warped by block within the same CRS)
    boosting = ('[[experiments.models]]\ntable = "Classical baselines"\nlabel = "Gradient boosting"\n'
                'name = "gradient_boosting"\n\n'
                '[[experiments.models]]\ntable = "Classical baselines"\nlabel = "Window network"\n'
                'name = "window_net"\nwidth = 8\npretrain = false\n\n')   # a network judged held out: trained, mapped
    # (its pretraining on a lazy stack equals the in-memory one: tests/test_compute.py, cross_validate)
    runs = {}
    for name, extra in (("memory", ""), ("blocks", "\n[compute]\nchunks = 48\n")):
        (tmp_path / name).mkdir()
        config = _classical(tmp_path / name, boosting)
        text = config.read_text()
        raster = text[text.index("[[raster]]"):text.index("[mask]")]
        config.write_text(text.replace(raster, "") + extra)
        assert cli(["run", str(config), "--out", str(tmp_path / name / "out")]) == 0
        runs[name] = tmp_path / name / "out"
    memory, blocks = runs["memory"], runs["blocks"]
    assert "compute: block by block (48 x 48 cells) on dask's threads" in (blocks / "run.log").read_text()
    table = pd.read_csv(blocks / "heldout.csv")
    assert {"Gradient boosting", "Window network", "Logistic regression"} <= set(table["label"])
    pd.testing.assert_frame_equal(_without_time(table), _without_time(pd.read_csv(memory / "heldout.csv")))
    pd.testing.assert_frame_equal(pd.read_csv(blocks / "heldout_deposits.csv"),
                                  pd.read_csv(memory / "heldout_deposits.csv"))
    for name, tolerance in (("stack.tif", 0), ("prospectivity.tif", 1e-6), ("uncertainty.tif", 1e-6)):
        with rasterio.open(blocks / name) as a, rasterio.open(memory / name) as b:
            np.testing.assert_allclose(a.read(masked=True).filled(np.nan), b.read(masked=True).filled(np.nan),
                                       rtol=tolerance, atol=tolerance, equal_nan=True, err_msg=name)
            assert a.descriptions == b.descriptions
    assert not (blocks / "contributions.tif").exists() and (memory / "contributions.tif").exists()
    with rasterio.open(blocks / "prospectivity.tif") as cog, rasterio.open(memory / "prospectivity.tif") as plain:
        assert cog.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
        assert "LAYOUT" not in plain.tags(ns="IMAGE_STRUCTURE")
    assert "contributions.tif is not made for a stack worked block by block" in (blocks / "run.log").read_text()


@pytest.mark.parametrize(("compute", "message"), [
    ("chunks = 48\n", r"\[compute\] chunks=48: the rows \['MFAF-ShuffleNetV2', 'ShuffleNetV2'\] train on the "
                      r"paper's tiles"),
    ("workers = 2\n", r"\[compute\] address or workers need chunks"),
    ("chunks = 8\n", r"\[compute\] chunks=8; valid: a whole number ≥ 16"),
    ('chunks = 64\naddress = "localhost:8786"\n', r"\[compute\] address='localhost:8786' must be a scheduler address"),
])
def test_check_and_run_refuse_what_cannot_run_block_by_block(tmp_path, capsys, compute, message):
    config = _tiny(tmp_path)
    config.write_text(config.read_text() + "\n[compute]\n" + compute)
    assert cli(["check", str(config)]) == 2
    assert re.search(message, capsys.readouterr().err)
    assert cli(["run", str(config), "--out", str(tmp_path / "out")]) == 2
    assert re.search(message, capsys.readouterr().err)
    assert not (tmp_path / "out").exists()
