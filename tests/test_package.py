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


def _import_graph():
    """Module -> the package's modules it imports (at module level or inside functions), from the source."""
    import ast
    from pathlib import Path

    root = Path(pp.__file__).parent
    modules = {}
    for path in root.rglob("*.py"):
        name = ".".join(("prospect", *path.relative_to(root).with_suffix("").parts))
        modules[name.removesuffix(".__init__")] = path
    graph = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")
                    base = ".".join(parts[:len(parts) - node.level + 1] + ([base] if base else []))
                targets = [f"{base}.{alias.name}" for alias in node.names]
                found |= {t if t in modules else base for t in targets if base.startswith("prospect")}
            elif isinstance(node, ast.Import):
                found |= {alias.name for alias in node.names if alias.name.startswith("prospect")}
        graph[name] = {t for t in found if t in modules and t != name}
    return graph, modules


def test_the_import_graph_has_no_circle_and_nothing_imports_the_package_root():
    graph, _ = _import_graph()
    assert "prospect.io" in graph and "prospect.files" in graph["prospect.io"]
    # the package root re-exports; only the command line's entry imports it
    assert sorted(name for name, targets in graph.items() if "prospect" in targets) == []
    state, circles = {}, []

    def visit(name, trail):
        state[name] = "open"
        for target in sorted(graph[name]):
            if state.get(target) == "open":
                circles.append(trail[trail.index(target):] + [target])
            elif target not in state:
                visit(target, trail + [target])
        state[name] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert circles == []
    assert "prospect.qgis" not in graph["prospect.io"] and "prospect.io" not in graph["prospect.qgis"]


def test_no_module_is_over_600_lines_and_run_is_a_short_loop():
    import inspect

    _, modules = _import_graph()
    long = {name: n for name, path in modules.items() if (n := len(path.read_text().splitlines())) > 600}
    assert long == {}
    assert len(inspect.getsource(pp.pipeline.run).splitlines()) <= 40
