"""Real data through the run file: the public Kolari IOCG data of EIS Toolkit's workflow demo (EUPL-1.2), read
from ``../shared/data/kolari`` beside the project (see its SOURCE.md; never copied into the project). A user's clone
and CI have no shared/, so these tests skip there.

What a geologist's own files go through: a till survey as a shapefile whose assay columns are named like
``Cu_ppm_511`` beside flag and text columns, deposits, lithology polygons and structures as shapefiles in EPSG:3067,
the demo's target area as the study area. The run file must give what the API gives (``benchmarks/bench_real.py``
builds the same case from the API)."""

import numpy as np
import pandas as pd
import pytest
import rasterio

import prospect as pp
from prospect.cli import main as cli
from tests.conftest import ROOT

KOLARI = ROOT.parent / "shared" / "data" / "kolari"
pytestmark = pytest.mark.skipif(not KOLARI.is_dir(), reason=f"{KOLARI} is absent (real data beside the project)")

SURVEY = KOLARI / "Geochemical_Data/Vector_files/IOCG_CLB_Till_Geochem_reg_511p.shp"
DEPOSITS = KOLARI / "Discretized_data/IOCG_Deps_Prosp_Occs_2.shp"
LITHOLOGY = KOLARI / "Geological_Data/IOCG_CLB_Lith_Asstn_1M.shp"
STRUCTURES = KOLARI / "Geological_Data/IOCG_CLB_Structures_1M.shp"
AREA = KOLARI / "Geological_Data/EIS_IOCG_target_area.shp"
ELEMENTS = ["Al", "Ba", "Ca", "Co", "Cr", "Cu", "Fe", "K", "La", "Mg", "Mn", "Ni", "Sc", "Th", "Ti", "V", "Zn"]
BOUNDS = (346002.6493, 7465680.6857, 414002.6493, 7540080.6857)
LABELS = dict(positive_radius=1000.0, negative_ratio=5.0, max_positives=2000)

RUN_FILE = f'''[report]
title = "Kolari IOCG (real data: EIS Toolkit's workflow demo, EUPL-1.2)"
synthetic = false

[samples]
path = "{SURVEY}"
elements = {ELEMENTS}
element_pattern = "{{el}}_{{unit}}_*"

[transform]
method = "log10"

[deposits]
path = "{DEPOSITS}"

[grid]
bounds = {list(BOUNDS)}
resolution = 200
crs = "EPSG:3067"

[idw]
elements = "screen"
k = 12

[[categorical]]
path = "{LITHOLOGY}"
field = "ROCK_CLA_1"

[[distance]]
path = "{STRUCTURES}"
name = "structure_distance"

[mask]
path = "{AREA}"

[heldout]
k = 5
block_size = 6000
positive_radius = 1000
negative_ratio = 5
max_positives = 2000
rows = ["Classical baselines"]

[map]

[experiments]
seeds = [0]
rows = []

[[experiments.models]]
table = "Classical baselines"
label = "Logistic regression"
name = "logistic_regression"
'''


def _api_case():
    """The Kolari stack and deposits as bench_real.py builds them from the API."""
    samples = pp.io.read_samples(SURVEY, elements=ELEMENTS, element_pattern="{el}_{unit}_*")
    samples = pp.geochem.transform(samples, "log10", elements=ELEMENTS)
    deposits = pp.io.read_vector(DEPOSITS)
    grid = pp.Grid.from_bounds(BOUNDS, resolution=200, crs="EPSG:3067")
    table = pp.screening.screen_elements(samples, deposits, elements=ELEMENTS, seed=0)
    chosen = table.index[table["selected"]].tolist()
    layers = [pp.interpolate.idw(samples, chosen, grid, k=12),
              pp.layers.rasterize_categorical(pp.io.read_vector(LITHOLOGY), "ROCK_CLA_1", grid),
              pp.layers.distance_to(pp.io.read_vector(STRUCTURES), grid, name="structure_distance")]
    area = pp.layers.study_area(pp.io.read_vector(AREA), grid)
    return pp.layers.apply_mask(pp.layers.stack(*layers), area), deposits, table


def test_the_run_file_on_real_kolari_data_gives_what_the_api_gives(tmp_path, capsys):
    config = tmp_path / "kolari.toml"
    config.write_text(RUN_FILE)
    assert cli(["check", str(config)]) == 0
    capsys.readouterr()
    out = tmp_path / "out"
    assert cli(["run", str(config), "--out", str(out)]) == 0
    stack, deposits, screening = _api_case()
    # screening: the same elements, Z_AUC and choice
    written = pd.read_csv(out / "screening.csv", index_col=0)
    np.testing.assert_allclose(written.loc[screening.index, "z_auc"], screening["z_auc"], atol=5e-5)   # 4 decimals
    assert written["selected"].astype(bool).to_dict() == screening["selected"].astype(bool).to_dict()
    # the stack: the same bands and values, the target area outside the mask as nodata
    with rasterio.open(out / "stack.tif") as src:
        assert list(src.descriptions) == [str(b) for b in stack["band"].values]
        assert src.crs.to_epsg() == 3067 and src.shape == stack.shape[1:]
        np.testing.assert_allclose(src.read(masked=True).filled(np.nan), stack.values, rtol=1e-6, equal_nan=True)
    # the held-out row: the API's cross-validation on the same folds, labels and seed
    folds = pp.folds.spatial_folds(stack, deposits, k=5, block_size=6000, seed=0)
    reference = pp.validation.cross_validate(stack, deposits, folds, "logistic_regression", **LABELS, seed=0,
                                             importance=False).summary(seed=0)
    row = pd.read_csv(out / "heldout.csv").set_index("label").loc["Logistic regression"]
    assert row["deposits"] == reference["deposits"] == 17
    assert row["auc"] == pytest.approx(reference["auc"], abs=1e-9)
    assert row["auc"] > 0.8           # real deposits ranked far above chance (0.897 in bench_real.py, seed 0)
    report = (out / "report.md").read_text()
    assert "**Synthetic data.**" not in report and "17 held-out deposits" in report
