from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
QINHANG = ROOT / "data_samples" / "qinhang"
ORE_IMAGES = ROOT / "data_samples" / "ore_images"


@pytest.fixture
def small_grid():
    import prospect as pp

    return pp.Grid.from_bounds((500000, 4000000, 500100, 4000100), shape=(10, 10), crs="EPSG:32649")


@pytest.fixture(scope="session")
def qgis_python():
    """The system Python that has QGIS's bindings (Debian's python3-qgis), or skip: QGIS is not a pip package."""
    import shutil
    import subprocess

    for python in ("/usr/bin/python3", shutil.which("python3")):
        if python and subprocess.run([python, "-c", "import qgis.core"], capture_output=True).returncode == 0:
            return python
    pytest.skip("QGIS's Python bindings are not installed (Debian: apt-get install python3-qgis)")


def open_in_qgis(python, project, image):
    """Open ``project`` in headless QGIS (tests/qgis_check.py) and return what it saw."""
    import json
    import os
    import subprocess

    done = subprocess.run([python, str(ROOT / "tests" / "qgis_check.py"), str(project), str(image)],
                          capture_output=True, text=True, env={**os.environ, "QT_QPA_PLATFORM": "offscreen"},
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])
