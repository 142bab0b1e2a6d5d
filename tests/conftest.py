from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
QINHANG = ROOT / "data_samples" / "qinhang"
ORE_IMAGES = ROOT / "data_samples" / "ore_images"


@pytest.fixture
def small_grid():
    import prospect as pp

    return pp.Grid.from_bounds((500000, 4000000, 500100, 4000100), shape=(10, 10), crs="EPSG:32649")
