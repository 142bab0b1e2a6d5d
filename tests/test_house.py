"""The shared mechanisms: the model registry, the run folder, blocks dealt into parts, one standardisation, one
pixel-classifier factory."""

import json

import numpy as np
import pandas as pd
import pytest

import prospect as pp
from prospect.errors import InputError, OutputExistsError
from prospect.pipeline import RunFolder


def test_the_registry_says_what_each_model_is():
    assert pp.registry.names("pixel") == list(pp.baselines.BASELINES)
    assert pp.registry.names("network") == list(pp.models.list_models())
    assert set(pp.registry.names()) == set(pp.baselines.BASELINES) | set(pp.models.list_models())
    mfaf = pp.registry.get("mfaf")
    assert mfaf.kind == "network" and mfaf.trains_on_tiles and {"vote", "uncertainty"} <= set(mfaf.outputs)
    forest = pp.registry.get("random_forest")
    assert forest.kind == "pixel" and not forest.trains_on_tiles and forest.outputs == ("probability",)
    with pytest.raises(InputError, match=r"unknown model 'svm'; valid: \[.*'logistic_regression'"):
        pp.registry.get("svm")
    # a row's options are its options callable's keyword arguments (MFAF's), none for the others
    from prospect.pipeline.config import option_keys

    assert "dilations" in option_keys("mfaf") and "in_channels" not in option_keys("mfaf")
    assert option_keys("resnet18") == [] and option_keys("random_forest") == []


def test_the_run_folder_records_what_it_writes_and_clears_only_that(tmp_path):
    class Config:
        sections = {}

        def __getitem__(self, name):
            return [] if name in ("categorical", "distance", "raster") else {}

        def as_json(self):
            return json.dumps({"mode": "quick", "sections": {}})

    folder = RunFolder(tmp_path / "out")
    folder.check(Config())
    folder.start(Config())
    folder.csv(pd.DataFrame({"a": [1.0]}), "table.csv")
    (folder / "runs" / "m" / "seed0").mkdir(parents=True)
    (folder.root / "runs" / "m" / "seed0" / "metrics.json").write_text("{}")
    (folder.root / "notes.txt").write_text("mine")                    # not the run's
    (folder.root / ".map.abc123.part.tif").write_text("")             # left by a killed write
    record = json.loads((folder.root / "config.json").read_text())
    assert record["outputs"] == ["runs", "table.csv"] and record["mode"] == "quick"
    assert folder.outputs() == ["config.json", "runs", "table.csv"]
    with pytest.raises(OutputExistsError, match=r"is not empty; pass --overwrite"):
        RunFolder(folder.root).check(Config())
    kept = RunFolder(folder.root, overwrite=True).clear()
    assert kept == ["notes.txt"] and sorted(p.name for p in folder.root.iterdir()) == ["notes.txt"]


def test_blocks_are_dealt_whole_and_as_the_shares_ask():
    ids = np.repeat(np.arange(20), 5)                    # 20 blocks of 5 positions
    primary = np.zeros(100)
    primary[::5][:10] = 1                               # one deposit in each of the first 10 blocks
    for ties in ("random", "first"):
        part = pp.blocks.deal(ids, primary, np.ones(100), [0.2] * 5, seed=3, ties=ties)
        assert all(len(set(part[ids == b])) == 1 for b in range(20))       # a block goes whole to one part
        assert np.bincount(part, weights=primary, minlength=5).tolist() == [2.0] * 5
        assert np.bincount(part, minlength=5).tolist() == [20] * 5         # and the cells follow the shares
        again = pp.blocks.deal(ids, primary, np.ones(100), [0.2] * 5, seed=3, ties=ties)
        np.testing.assert_array_equal(part, again)
    part = pp.blocks.deal(ids, primary, np.ones(100), [0.8, 0.2], seed=0, ties="first")
    assert np.bincount(part, weights=primary).tolist() == [8.0, 2.0] and np.bincount(part).tolist() == [80, 20]
    rows, cols = np.meshgrid(np.arange(4), np.arange(6), indexing="ij")
    block = pp.blocks.block_ids(rows.ravel(), cols.ravel(), (100.0, 50.0), 200.0).reshape(4, 6)
    assert block.tolist() == [[0, 0, 0, 0, 1, 1], [0, 0, 0, 0, 1, 1], [2, 2, 2, 2, 3, 3], [2, 2, 2, 2, 3, 3]]


def test_one_standardisation_for_tiles_cells_and_maps():
    rng = np.random.default_rng(0)
    x = rng.normal(3.0, 2.0, (7, 3, 4, 4)).astype(np.float32)
    stats = pp.normalization.fit(x, ["a", "b", "c"], axis=(0, 2, 3))
    np.testing.assert_allclose(stats["mean"], x.astype(np.float64).mean(axis=(0, 2, 3)), rtol=1e-12)
    np.testing.assert_allclose(stats["std"], x.astype(np.float64).std(axis=(0, 2, 3)), rtol=1e-12)
    out = pp.normalization.apply(x, stats, ["a", "b", "c"], band_axis=1)
    np.testing.assert_allclose(out.mean(axis=(0, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(out.std(axis=(0, 2, 3)), 1, atol=1e-5)
    cells = x.transpose(1, 0, 2, 3).reshape(3, -1).copy()
    pp.normalization.apply(cells, stats, ["a", "b", "c"], band_axis=0, in_place=True)
    np.testing.assert_array_equal(cells, out.transpose(1, 0, 2, 3).reshape(3, -1))
    assert pp.normalization.fit(np.ones((2, 5)), ["a", "b"], axis=1)["std"] == [1.0, 1.0]   # constant band
    with pytest.raises(InputError, match=r"normalization is for bands \['a', 'b', 'c'\], the stack has \['c'"):
        pp.normalization.apply(cells, stats, ["c", "b", "a"])


def test_the_image_baseline_is_the_pixel_factory_with_image_settings():
    linear = pp.imagery.classical_baseline("logistic_regression", seed=4)
    assert linear[-1].get_params()["max_iter"] == 5000 and linear[-1].get_params()["random_state"] == 4
    assert linear[-1].get_params()["class_weight"] == "balanced"
    forest = pp.imagery.classical_baseline("random_forest", seed=2, n_estimators=50)
    reference = {"n_estimators": 50, "class_weight": "balanced", "random_state": 2, "n_jobs": -1,
                 "min_samples_leaf": 1, "max_samples": None}
    assert {k: forest.get_params()[k] for k in reference} == reference
    with pytest.raises(InputError, match=r"model='svm'; valid"):
        pp.imagery.classical_baseline("svm")
