import json
import subprocess
import sys

import pytest

import prospect as pp

ROOMS = ["io", "screening", "interpolate", "layers", "tiles", "models", "training", "mapping", "evaluation",
         "imagery", "datasets", "qgis"]


def test_import_is_fast_and_does_not_import_torch():
    code = ("import sys, time; t = time.perf_counter(); import prospect; "
            "print(__import__('json').dumps([time.perf_counter() - t, 'torch' in sys.modules]))")
    runs = [json.loads(subprocess.check_output([sys.executable, "-c", code], text=True)) for _ in range(3)]
    assert not any(torch_loaded for _, torch_loaded in runs)
    # the fastest of three fresh interpreters, so a busy machine does not fail it (typically 0.2 s here)
    assert min(seconds for seconds, _ in runs) < 1.0


def test_every_room_is_reachable_lazily_and_torch_only_where_needed():
    code = ("import sys, prospect as pp; light = ['io', 'screening', 'interpolate', 'layers', 'tiles', 'evaluation', "
            "'datasets', 'qgis']; [getattr(pp, room) for room in light]; print('torch' in sys.modules)")
    assert subprocess.check_output([sys.executable, "-c", code], text=True).strip() == "False"
    for room in ROOMS:
        assert getattr(pp, room).__name__ == f"prospect.{room}"


def test_unknown_attribute_is_a_clear_error():
    with pytest.raises(AttributeError, match="has no attribute 'nonsense'"):
        pp.nonsense  # noqa: B018


def test_errors_inherit_builtins():
    from prospect import errors

    assert issubclass(errors.InputError, ValueError)
    assert issubclass(errors.CRSError, ValueError)
    assert issubclass(errors.MissingFileError, FileNotFoundError)
    assert issubclass(errors.OutputExistsError, FileExistsError)
