import importlib.util
import sys

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio

import prospect as pp
from tests.conftest import ROOT

spec = importlib.util.spec_from_file_location("qinhang_case_study", ROOT / "workflows" / "qinhang_case_study.py")
workflow = importlib.util.module_from_spec(spec)
sys.modules["qinhang_case_study"] = workflow
spec.loader.exec_module(workflow)


@pytest.mark.slow
def test_quick_case_study_writes_readable_outputs(tmp_path):
    """The README's main command, as it runs (about 7 minutes on 2 CPU cores)."""
    out = tmp_path / "run"
    assert workflow.main(["--quick", "--out", str(out)]) == 0
    table = pd.read_csv(out / "screening.csv", index_col=0)
    assert set(table.index[table["selected"]]) == {"Ag", "Au", "Sn", "Cu", "Ba", "Sb", "Hg", "Mo"}
    with rasterio.open(out / "stack.tif") as src:
        assert src.count == 10 and src.crs.to_epsg() == 32649 and src.shape == (390, 390)
        assert src.descriptions[-2:] == ("unit", "fault_distance")
    assert len(list((out / "elements").glob("*.tif"))) == 8
    counts = pd.read_csv(out / "tiles.csv")
    assert counts.loc[0, ["ore", "no_ore"]].sum() == 144
    test = pp.tiles.TileSet.load(out / "tiles_test.npz")
    assert not test.synthetic.any() and np.isfinite(test.bounds).all()
    with rasterio.open(out / "prospectivity.tif") as src:
        assert src.crs.to_epsg() == 32649 and src.shape == (390, 390) and src.nodata == -9999
        values = src.read(1, masked=True)
        assert 0 <= values.min() and values.max() <= 1
    assert (out / "prospectivity.qml").exists() and (out / "uncertainty.tif").exists()
    assert len(gpd.read_file(out / "targets.gpkg")) >= 1
    # quick: Table 3's tile table only; the held-out stage judges four networks and the five classical rows
    assert len(pd.read_csv(out / "experiments.csv")) == 7 and len(pd.read_csv(out / "tables.csv")) == 7
    report = (out / "report.md").read_text()
    assert report.count("### Table") == 1 and "`trainer.epochs: 220 -> 8 (--quick)`" in report
    heldout = pd.read_csv(out / "heldout.csv").set_index("label")
    assert sorted(heldout.index) == ["Ensemble", "Fuzzy overlay", "Gradient boosting", "Logistic regression",
                                     "MobileNetV2", "Random forest", "ResNet18", "ShuffleNetV2", "Weights of evidence",
                                     "Window network"]
    # [heldout] ensemble = true: the window network (the recommended one of the four networks) beside the baseline
    # that scored best inside each fold's training area
    members = pd.read_csv(out / "ensemble_folds.csv")["members"]
    assert len(members) == 5 and members.str.startswith("Window network + ").all()
    assert set(members.str.removeprefix("Window network + ")) <= {"Random forest", "Gradient boosting",
                                                                  "Logistic regression", "Weights of evidence",
                                                                  "Fuzzy overlay"}
    assert (heldout["auc_low"] <= heldout["auc"]).all() and (heldout["auc"] <= heldout["auc_high"]).all()
    assert (heldout["deposits"] == 32).all() and (heldout["undiscovered"] == 8).all()
    assert heldout.loc["Window network", "epochs"] == 3 and heldout.loc["Window network", "window"] == 17
    # no [map] model_label: the best held-out row maps (its fold-mean map), ties to 3 decimals to the cheaper
    best = heldout.assign(rounded=heldout["auc"].round(3)).sort_values(["rounded", "seconds"],
                                                                       ascending=[False, True]).index[0]
    evaluation = pd.read_csv(out / "evaluation.csv")
    assert heldout.loc[best, "undiscovered_top_10"] == pytest.approx(evaluation.loc[0, "undiscovered_coverage"])
    assert best != "Ensemble", "this run's best row is a single model, whose fold models explain its cells below"
    assert f"**The map** ({best}, mean of its 5 fold models; the best held-out AUC of {len(heldout)} rows" in report
    assert "3 epochs per held-out fold network" in report
    assert report.index("## Which model finds deposits it never saw") < report.index("## 1 Element screening")
    # why each target scores: the map model's shares, one band per evidence band; weights of evidence on all deposits
    with rasterio.open(out / "contributions.tif") as src, rasterio.open(out / "stack.tif") as stack:
        assert src.descriptions == stack.descriptions and src.tags()["kind"] == "contributions"
    assert gpd.read_file(out / "targets.gpkg")["top_band"].isin(["fault_distance", "unit"]).head(3).all()
    assert pd.read_csv(out / "wofe.csv")["chosen"].any() and "## Weights of evidence, fitted to every deposit" in report


GEOPHYSICS = ROOT / "workflows" / "qinhang_geophysics.toml"


def test_the_geophysics_run_file_checks(capsys):
    from prospect.cli import main as cli

    assert cli(["check", str(GEOPHYSICS), "--quick"]) == 0
    said = capsys.readouterr().out
    assert "(log10 of Ag, Au" in said and "raster layers ['mag_rtp', 'mag_rtp_highpass2000']" in said
    assert "study area 90.2 % of the grid" in said and "note: magnetics.tif covers 96.8 % of the grid" in said


@pytest.mark.slow
def test_the_geophysics_example_runs_with_the_raster_and_the_study_area(tmp_path):
    """workflows/qinhang_geophysics.toml --quick (about 3 minutes on 2 CPU cores)."""
    from prospect.cli import main as cli

    out = tmp_path / "run"
    assert cli(["run", str(GEOPHYSICS), "--quick", "--out", str(out)]) == 0
    with rasterio.open(out / "stack.tif") as src:
        assert src.count == 12 and src.descriptions[-2:] == ("mag_rtp", "mag_rtp_highpass2000")
        valid = ~src.read(masked=True).mask.any(axis=0)
    with rasterio.open(out / "prospectivity.tif") as src:
        values = src.read(1, masked=True)
    assert 0.85 < valid.mean() < 0.9 and (values.mask == ~valid).all()   # licence and flown area only
    heldout = pd.read_csv(out / "heldout.csv").set_index("label")
    assert sorted(heldout.index) == ["Gradient boosting", "Logistic regression", "Random forest", "ResNet18"]
    importance = pd.read_csv(out / "importance.csv")
    assert {"mag_rtp", "mag_rtp_highpass2000"} <= set(importance["band"])
    log = (out / "run.log").read_text()
    assert "study area 90.2 % of the grid" in log and "\"method\": \"log10\"" in (out / "config.json").read_text()


def test_refuses_a_non_empty_output_folder(tmp_path, capsys):
    (tmp_path / "something.txt").write_text("keep me")
    assert workflow.main(["--quick", "--out", str(tmp_path)]) == 2
    assert "is not empty; pass --overwrite" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["something.txt"]
    assert (tmp_path / "something.txt").read_text() == "keep me"


def _ore_workflow():
    """workflows/ore_image_classification.py as a module (a fresh one per test)."""
    spec = importlib.util.spec_from_file_location("ore_image_classification",
                                                  ROOT / "workflows" / "ore_image_classification.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _ore_study_file():
    return (ROOT / "workflows" / "ore_images.toml").read_text().replace("../data_samples", str(ROOT / "data_samples"))


def _networks_alone():
    """The study file with the networks alone (no hybrid, no baseline) on 2 crops an image: for tests of what the
    workflow does with its data and models, not of what they score."""
    return _ore_study_file().replace('crops = "auto"', "crops = 2").replace("hybrid = true", "hybrid = false") \
        .replace('baseline = "logistic_regression"', "baseline = false")


def test_ore_image_workflow_writes_reports(tmp_path):
    images = _ore_workflow()
    out = tmp_path / "ore"
    assert images.main(["--out", str(out), "--size", "32", "--epochs", "1", "--models", "mobilenet_v2"]) == 0
    report = pd.read_csv(out / "mobilenet_v2" / "report.csv", index_col=0)
    assert list(report.index[:5]) == ["arsenopyrite", "chalcopyrite", "gold", "pyrite", "stibnite"]
    assert report.loc["accuracy", "support"] == 40
    assert (out / "mobilenet_v2" / "confusion.png").exists() and (out / "mobilenet_v2" / "cam.png").exists()
    log = (out / "run.log").read_text()      # crops = "auto": the crops chosen from the image sizes, and why
    assert "data: 200 images, median shorter side 256 px" in log and "data.crops: 'auto' -> 8 (choose_crops)" in log
    assert "; the study sets size 32 and epochs 1 (kept)" in log
    chosen = [line.split(": ")[0].split()[-1] for line in log.splitlines() if line.endswith("(choose_crops)")]
    assert chosen == ["data.crops", "data.repeats"]                  # --size and --epochs were given
    summary = pd.read_csv(out / "summary.csv")
    assert summary["model"].tolist() == ["mobilenet_v2", "mobilenet_v2_hybrid", "mobilenet_v2_ensemble",
                                         "colour_texture_logistic_regression"]   # + the baseline
    assert summary.loc[0, "epochs"] == 1 and summary.loc[0, "seconds_per_epoch"] > 0
    baseline = pd.read_csv(out / "colour_texture_logistic_regression" / "report.csv", index_col=0)
    assert baseline.loc["accuracy", "f1"] == pytest.approx(summary.loc[3, "accuracy"], abs=1e-4)
    assert (out / "colour_texture_logistic_regression" / "confusion.png").exists()
    assert sorted(p.name for p in (out / "mobilenet_v2").glob("*.pt")) == []     # only model.safetensors is kept
    assert (out / "mobilenet_v2" / "model.safetensors").exists()
    text = (out / "report.md").read_text()
    assert "> **Synthetic images.**" in text and "| mobilenet_v2 |" in text and "| chalcopyrite |" in text
    assert f"| accuracy | – | – | {report.loc['accuracy', 'f1']:.3f} | 40 |" in text     # the table of report.csv
    assert text.index("## mobilenet_v2") < text.index("(mobilenet_v2/confusion.png)") < text.index("/cam.png)")
    assert "*colour_texture_logistic_regression* is the classical baseline" in text
    assert "colour_texture_logistic_regression/cam.png" not in text          # a baseline has no CAM
    assert "Rows ending in *_hybrid*" in text and "mobilenet_v2_hybrid/cam.png" not in text
    assert "as 32-px crops at 1× their own scale (8 per training image and epoch, 8 averaged" in text
    assert (out / "report.html").read_text().count("data:image/png;base64,") == 5
    assert images.main(["--out", str(tmp_path / "x"), "--models", "lenet"]) == 2


def test_ore_image_study_file_keys_are_checked(tmp_path, capsys):
    images = _ore_workflow()
    text = _ore_study_file()
    config = tmp_path / "images.toml"
    config.write_text(text.replace("split = [", "resize = 32\nsplit = ["))
    assert images.main(["--config", str(config), "--out", str(tmp_path / "a")]) == 2
    said = capsys.readouterr().err
    assert "unknown key(s) ['resize']; valid keys of [data]: ['root', 'size', 'split'" in said
    config.write_text(text.replace('name = "resnet18"', 'name = "resnet18"\nattention = "se"\nweights = "x.pth"'))
    assert images.main(["--config", str(config), "--out", str(tmp_path / "b")]) == 2
    assert "valid keys of [models]: ['name', 'pretrained', 'attention', 'dropout', 'reduction', 'size']" in \
        capsys.readouterr().err
    for bad, said in (('baseline = "svm"', "[study] baseline='svm'; valid: one of ['logistic_regression', "
                                           "'random_forest'] or false"),
                      ("pretrain = -1", "[study] pretrain=-1; valid: a whole number of epochs ≥ 0"),
                      ("hybrid = 1", "[study] hybrid=1; valid: true or false")):
        key = bad.split(" =")[0]
        config.write_text("\n".join(bad if line.startswith(f"{key} =") else line for line in text.splitlines()))
        assert images.main(["--config", str(config), "--out", str(tmp_path / "c")]) == 2
        assert said in capsys.readouterr().err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists() and not (tmp_path / "c").exists()


def test_ore_image_models_take_their_own_input_size(tmp_path, capsys):
    images = _ore_workflow()
    text = _ore_study_file()
    config = tmp_path / "images.toml"
    config.write_text(_networks_alone().replace('name = "resnet18"\n', 'name = "resnet18"\nsize = 40\n\n[[models]]\n'
                                                'name = "mobilenet_v2"\n', 1).replace("pretrain = 0", "pretrain = 1"))
    assert images.main(["--config", str(config), "--out", str(tmp_path / "out"), "--epochs", "1", "--size",
                        "48"]) == 0
    log = (tmp_path / "out" / "run.log").read_text()
    assert "resnet18: 40 px input, test images" in log and "mobilenet_v2: 48 px input, test images" in log
    assert "resnet18: contrastive pretraining on all 200 images (no labels), 1 epochs" in log
    tests = {line.split("test images ")[1] for line in log.splitlines() if "px input, test images" in line}
    assert len(tests) == 1                                    # the same test images at either size
    config.write_text(text.replace('name = "resnet18"\n', 'name = "resnet18"\nsize = "huge"\n', 1))
    assert images.main(["--config", str(config), "--out", str(tmp_path / "bad")]) == 2
    assert "[[models]] size='huge'; valid: a whole number of pixels ≥ 8, or 'native'" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


def test_ore_image_workflow_checks_the_images_before_writing_and_logs_what_they_lack(tmp_path, capsys):
    import os
    import shutil

    images = _ore_workflow()
    # a folder with no images: refused in one line, nothing written (run.log included)
    (tmp_path / "empty" / "pyrite").mkdir(parents=True)
    assert images.main(["--root", str(tmp_path / "empty"), "--out", str(tmp_path / "none")]) == 2
    assert capsys.readouterr().err.count("\n") == 1 and not (tmp_path / "none").exists()
    # an --out that cannot be created: one line, no OSError traceback (root may write anywhere: not tested as root)
    if os.geteuid() != 0:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        assert images.main(["--out", str(locked / "out"), "--models", "mobilenet_v2"]) == 2
        assert "cannot be created" in capsys.readouterr().err
    # a class with a single image lands in training only: run.log says so, the macro average leaves it out
    root = tmp_path / "ore"
    shutil.copytree(ROOT / "data_samples" / "ore_images", root)
    for extra in sorted((root / "gold").glob("*.png"))[1:]:
        extra.unlink()
    (root / "pyrite" / "broken.png").write_bytes(b"not a picture")     # skipped, and run.log says so
    out = tmp_path / "out"
    config = tmp_path / "images.toml"           # the network alone, on 2 crops an image: what is checked is the data
    config.write_text(_networks_alone())
    assert images.main(["--config", str(config), "--root", str(root), "--out", str(out), "--size", "32", "--epochs",
                        "1", "--models", "mobilenet_v2"]) == 0
    log = (out / "run.log").read_text()
    assert "class(es) ['gold'] have no test image (images in all: {'gold': 1})" in log
    assert "data: skipped 1 unreadable files" in log and "broken.png" in log
    report = pd.read_csv(out / "mobilenet_v2" / "report.csv", index_col=0)
    assert report.loc["gold", "support"] == 0
    present = report.loc[["arsenopyrite", "chalcopyrite", "pyrite", "stibnite"], "f1"]
    assert report.loc["macro avg", "f1"] == pytest.approx(present.mean(), abs=1e-4)
