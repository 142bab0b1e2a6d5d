import importlib.util
import sys

import geopandas as gpd
import numpy as np
import pandas as pd
import rasterio

from tests.conftest import ROOT

spec = importlib.util.spec_from_file_location("qinhang_case_study", ROOT / "workflows" / "qinhang_case_study.py")
workflow = importlib.util.module_from_spec(spec)
sys.modules["qinhang_case_study"] = workflow
spec.loader.exec_module(workflow)


def test_quick_case_study_writes_readable_outputs(tmp_path):
    out = tmp_path / "run"
    assert workflow.main(["--quick", "--epochs", "1", "--out", str(out)]) == 0
    table = pd.read_csv(out / "screening.csv", index_col=0)
    assert set(table.index[table["selected"]]) == {"Ag", "Au", "Sn", "Cu", "Ba", "Sb", "Hg", "Mo"}
    with rasterio.open(out / "stack.tif") as src:
        assert src.count == 10 and src.crs.to_epsg() == 32649 and src.shape == (390, 390)
        assert src.descriptions[-2:] == ("unit", "fault_distance")
    assert len(list((out / "elements").glob("*.tif"))) == 8
    counts = pd.read_csv(out / "tiles.csv")
    assert counts.loc[0, ["ore", "no_ore"]].sum() == 144
    final_test = counts[(counts.stage == "SMOTE + noise") & (counts.side == "test")].iloc[0]
    assert final_test["synthetic"] == 0
    import prospect as pp

    test = pp.tiles.TileSet.load(out / "tiles_test.npz")
    assert not test.synthetic.any() and np.isfinite(test.bounds).all()
    assert (out / "run.log").read_text().count("SYNTHETIC") == 1
    with rasterio.open(out / "prospectivity.tif") as src:
        assert src.crs.to_epsg() == 32649 and src.shape == (390, 390) and src.nodata == -9999
        values = src.read(1, masked=True)
        assert 0 <= values.min() and values.max() <= 1
    assert (out / "prospectivity.qml").exists() and (out / "uncertainty.tif").exists()
    assert len(gpd.read_file(out / "targets.gpkg")) >= 1
    evaluation = pd.read_csv(out / "evaluation.csv")
    assert evaluation.loc[0, "deposits"] == 32 and 0 <= evaluation.loc[0, "map_auc"] <= 1
    history = pd.read_csv(out / "training" / "history.csv")
    assert len(history) == 1 and (out / "training" / "model.safetensors").exists()


def test_refuses_a_non_empty_output_folder(tmp_path, capsys):
    (tmp_path / "something.txt").write_text("keep me")
    assert workflow.main(["--quick", "--out", str(tmp_path)]) == 2
    assert "is not empty; pass --overwrite" in capsys.readouterr().err
    assert (tmp_path / "something.txt").read_text() == "keep me"


def test_ore_image_workflow_writes_reports(tmp_path):
    spec = importlib.util.spec_from_file_location("ore_image_classification",
                                                  ROOT / "workflows" / "ore_image_classification.py")
    images = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(images)
    out = tmp_path / "ore"
    assert images.main(["--out", str(out), "--size", "32", "--epochs", "1", "--models", "mobilenet_v2"]) == 0
    report = pd.read_csv(out / "mobilenet_v2" / "report.csv", index_col=0)
    assert list(report.index[:5]) == ["arsenopyrite", "chalcopyrite", "gold", "pyrite", "stibnite"]
    assert report.loc["accuracy", "support"] == 40
    assert (out / "mobilenet_v2" / "confusion.png").exists() and (out / "mobilenet_v2" / "cam.png").exists()
    assert len(pd.read_csv(out / "summary.csv")) == 1
    assert images.main(["--out", str(tmp_path / "x"), "--models", "lenet"]) == 2
