"""Run configurations: a TOML file whose keys are the keyword arguments of the calls a run makes.

Each section of the file feeds one call of the API (the table :data:`SECTIONS` says which), so the
valid keys of a section are the parameters of that call, read from its signature: a key means what
the function's docstring says it means, and a key the function does not take is refused with the
list of valid ones. ``[quick]`` holds overrides (same sections, same keys) that ``--quick`` applies.

    config = load_config("workflows/qinhang.toml", mode="quick")
    config["idw"]      # {'elements': 'screen', 'power': 2.0}
"""

from __future__ import annotations

import inspect
import json
import os
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prospect.errors import ConfigError, InputError, MissingFileError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = ["RunConfig", "load_config", "select_rows", "chosen_rows", "ensemble_rows", "run_key", "map_row",
           "best_heldout_row", "top_heldout_rows", "tile_rows", "SECTIONS", "IMAGE_SECTIONS", "describe_sections"]


@dataclass(frozen=True)
class Section:
    """One section of a run file: the calls its keys go to, and what the run itself fills in."""

    calls: tuple[str, ...]
    filled: tuple[str, ...] = ()       # parameters the run passes itself (data, seed, output folder)
    extra: tuple[str, ...] = ()        # keys of the workflow, not of a call (documented in help)
    many: bool = False                 # an array of tables ([[categorical]]), each one call
    help: str = ""
    required: tuple[str, ...] = ()     # keys every table of the section must have
    optional: bool = False             # the section may be left out; `required` holds when it is there


SECTIONS: dict[str, Section] = {
    "samples": Section(("prospect.io.read_samples",), required=("path",), optional=True,
                       help="optional: the stream-sediment survey (CSV, GPKG or SHP); without it the evidence is the "
                            "[[raster]], [[categorical]] and [[distance]] layers, and screening and IDW are skipped"),
    "deposits": Section(("prospect.io.read_deposits",), required=("path",),
                        help="known deposits: points in a vector file, a CSV/TXT with x, y columns and crs, or a "
                             "raster whose cells equal value (1) - labels, screening, folds, map evaluation"),
    "undiscovered": Section(("prospect.io.read_deposits",),
                            help="optional: deposits kept out of training, to judge the map (prediction rate); the "
                                 "same forms as [deposits]"),
    "transform": Section(("prospect.geochem.transform",), ("samples",), required=("method",), optional=True,
                         help="optional: log10, clr or ilr of the elements before screening and IDW; negative "
                              "below-detection codes and zeros substituted first"),
    "screening": Section(("prospect.screening.screen_elements",), ("samples", "deposits", "labels", "seed"),
                         help="AUC, S_AUC and Z_AUC of every element (the paper's Table 2)"),
    "grid": Section(("prospect.grid.Grid.from_bounds",), ("cls",), extra=("like",),
                    help="the raster grid: like = a raster whose cells it takes exactly, or bounds (default: the "
                         "survey's extent, else the first [[raster]]'s) with shape or resolution (default without a "
                         "survey: the first [[raster]]'s) and crs (default: the survey's, else the first raster's)"),
    "idw": Section(("prospect.interpolate.idw",), ("samples", "grid"),
                   help="element rasters; elements = 'screen' takes the screening's selection"),
    "categorical": Section(("prospect.io.read_vector", "prospect.layers.rasterize_categorical"),
                           ("gdf", "grid", "chunks"),
                           many=True, help="categorical layers such as geology, one [[categorical]] per layer",
                           required=("path", "field")),
    "distance": Section(("prospect.io.read_vector", "prospect.layers.distance_to"), ("gdf", "grid", "chunks"),
                        many=True,
                        help="distance-to layers such as faults, one [[distance]] per layer", required=("path",)),
    "raster": Section(("prospect.layers.from_raster",), ("grid",), extra=("derive", "sigma"), many=True,
                      required=("source",),
                      help="external rasters (magnetics, gravity, a DEM) warped onto the grid, one [[raster]] per "
                           "file; derive = any of ['slope', 'smooth', 'high_pass'] adds those layers (smooth and "
                           "high_pass with sigma = a distance in grid units)"),
    "mask": Section(("prospect.io.read_vector", "prospect.layers.study_area"), ("polygons", "grid", "chunks"),
                    required=("path",), optional=True,
                    help="optional: the study area (polygons); cells outside it are nodata in every later stage"),
    "tiles": Section(("prospect.tiles.make_tiles",), ("stack", "deposits"), help="sliding-window tiles"),
    "split": Section(("prospect.tiles.spatial_split",), ("tiles", "seed"), help="the spatial train/test split"),
    "smote": Section(("prospect.tiles.smote",), ("tiles", "seed"), help="SMOTE on the training side"),
    "noise": Section(("prospect.tiles.add_noise",), ("tiles", "seed"), help="Gaussian noise on the training side"),
    "trainer": Section(("prospect.training.Trainer",), ("model", "loss", "out_dir", "overwrite", "seed"),
                       extra=("preset",), help="training settings; preset = a name of prospect.training.PRESETS"),
    "experiments": Section((), extra=("seeds", "models", "keep_weights", "rows", "dilation_scale"),
                           help="the models to train and compare on tiles, each once per seed; rows = the labels or "
                                "table names to train (default all); dilation_scale = grid cell / the cell the MFAF "
                                "rates were chosen for, given to every MFAF row that sets none"),
    "heldout": Section(("prospect.folds.spatial_folds", "prospect.validation.cross_validate"),
                       ("stack", "deposits", "folds", "model", "seed", "label"), extra=("rows", "ensemble"),
                       help="held-out-deposit evaluation: spatial k-fold, the experiment rows named in `rows` "
                            "(labels or table names; default all) "
                            "trained per fold, judged on the deposits it never saw; k = 0 turns it off; ensemble = "
                            "true (or a list of row labels) adds the rank mean of a network and a baseline row, "
                            "chosen per fold inside its training area"),
    "map": Section(("prospect.mapping.predict_map",), ("model", "stack", "normalization", "uncertainty"),
                   extra=("model_label", "contributions"),
                   help="the prospectivity map; model_label = the experiment row whose first-seed model maps; "
                        "contributions = false skips contributions.tif (every band's share of each cell's score, "
                        "from the fold models of a held-out row)"),
    "targets": Section(("prospect.evaluation.targets",), ("prob", "deposits"), help="target polygons"),
    "evaluation": Section(("prospect.evaluation.evaluate_map",), ("prob", "deposits"), help="map evaluation"),
    "compute": Section(("prospect.compute.engine",), optional=True,
                       help="optional: a stack larger than memory - chunks = block side in cells: rasters read, "
                            "IDW, samples, baseline maps and files worked block by block through dask; address = a "
                            "dask scheduler (a cluster from dask-jobqueue or Kubernetes) or workers (+ memory_limit) "
                            "for a LocalCluster here. Baseline rows only, for now"),
    "report": Section((), extra=("title", "synthetic", "paper"),
                      help="report.md: its title, whether the data is synthetic, the paper to compare with"),
}
# The image-classification study (workflows/ore_image_classification.py).
IMAGE_SECTIONS: dict[str, Section] = {
    "data": Section(("prospect.imagery.ImageFolderSplit",), ("seed",), required=("root",),
                    help="a folder with one sub-folder of images per class, split into train/val/test"),
    "models": Section(("prospect.imagery.build_classifier",), ("num_classes", "seed"), extra=("size",), many=True,
                      required=("name",),
                      help="the zoo models to train, one [[models]] per model"),
    "trainer": SECTIONS["trainer"],
    "study": Section((), extra=("seed", "cam_images", "title", "synthetic", "keep_checkpoints", "baseline", "hybrid",
                                "pretrain"),
                     help="the seed of split, weights and order; CAM figures; the report's title, synthetic data; "
                          "keep last.pt/best.pt (default: only model.safetensors); the classical baseline "
                          "('logistic_regression', 'random_forest' or false); hybrid and ensemble rows of each "
                          "network with the baseline (default true); epochs of contrastive pretraining on all the "
                          "images, no labels (default 0: none)"),
}
REPORT_KEYS = ("label", "table", "paper")   # where a model row goes in the report, not how it is built
MODEL_KEYS = (*REPORT_KEYS, "name", "pretrained")   # beside MFAF's keyword arguments
PAPER_METRICS = ("accuracy", "auc", "recall", "f1")
MODES = ("full", "quick")
SURVEY_ONLY = ("transform", "screening", "idw")   # sections that act on [samples]


def _resolve(dotted: str) -> Callable:
    import importlib

    module, _, name = dotted.rpartition(".")
    try:
        target: Any = importlib.import_module(module)
    except ModuleNotFoundError:  # a method: module.Class.method
        module, _, owner = module.rpartition(".")
        target = getattr(importlib.import_module(module), owner)
    return getattr(target, name)


def _parameters(dotted: str) -> list[str]:
    function = _resolve(dotted)
    if inspect.isclass(function):
        function = function.__init__
    return [p.name for p in inspect.signature(function).parameters.values()
            if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]


def valid_keys(section: str, schema: Mapping[str, Section] = SECTIONS) -> list[str]:
    """The keys ``section`` accepts: the parameters of its calls not filled in by the run, and its extras."""
    spec = schema[section]
    keys: list[str] = []
    for call in spec.calls:
        keys += [name for name in _parameters(call) if name not in spec.filled and name not in keys]
    return keys + [k for k in spec.extra if k not in keys]


def model_keys() -> list[str]:
    """Keys of one ``[[experiments.models]]`` row: label, table, paper, the registry name, the models' options."""
    from prospect import registry

    keys = list(MODEL_KEYS)
    for name in registry.names():
        if registry.get(name).options is not None:
            keys += [k for k in option_keys(name) if k not in keys]
    return keys + [k for k in (*registry.RECIPE_KEYS, *registry.PIXEL_KEYS) if k not in keys]


def option_keys(name: str) -> list[str]:
    """The options a row of the registered model ``name`` may set (its options callable's keyword arguments)."""
    from prospect import registry

    options = registry.get(name).options
    return [] if options is None else [k for k in _parameters(options)
                                       if k not in ("in_channels", "num_classes", "pretrained", "categorical", "bands")]


def describe_sections(schema: Mapping[str, Section] = SECTIONS) -> str:
    """Every section, the call its keys go to and the keys it takes (for ``prospect keys`` and the README)."""
    lines = []
    for name, spec in schema.items():
        calls = " + ".join(spec.calls) if spec.calls else "workflow"
        lines.append(f"[{'[' if spec.many else ''}{name}{']' if spec.many else ''}]  -> {calls}: {spec.help}")
        lines.append("    " + ", ".join(valid_keys(name, schema)))
        if name == "experiments":
            lines.append("    [[experiments.models]] rows: " + ", ".join(model_keys()))
    return "\n".join(lines)


@dataclass
class RunConfig:
    """A checked run configuration: ``sections`` after the mode's overrides, paths made absolute.

    ``changes`` lists what the mode (``--quick``) and the command line changed, for the log and the report.
    """

    sections: dict[str, Any]
    source: Path
    mode: str = "full"
    changes: list[str] = field(default_factory=list)
    schema: Mapping[str, Section] = field(default_factory=lambda: SECTIONS, repr=False)
    origins: dict[str, str] = field(default_factory=dict)   # "section.key" -> what set it ("--quick", "--epochs")

    def __getitem__(self, name: str) -> Any:
        return self.sections.get(name, [] if self.schema[name].many else {})

    def override(self, dotted: str, value: Any, why: str) -> None:
        """Set ``section.key`` (checked like the file's keys) and record the change."""
        section, _, key = dotted.partition(".")
        _check_keys(section, {key: value}, f"{why}", self.schema)
        before = self.sections.setdefault(section, {}).get(key, "default")
        self.sections[section][key] = value
        self.changes.append(f"{dotted}: {before!r} -> {value!r} ({why})")
        self.origins[dotted] = why

    def origin(self, section: str, key: str) -> str:
        """`` (set by --quick)`` and the like for a value that the file's main sections did not set, else ``""``."""
        why = self.origins.get(f"{section}.{key}") or self.origins.get(section)
        return f" (set by {why})" if why else ""

    def as_json(self) -> str:
        return json.dumps({"mode": self.mode, "sections": self.sections}, indent=2, sort_keys=True, default=str)

    @property
    def seeds(self) -> list[int]:
        return list(self["experiments"].get("seeds", [0]))

    @property
    def models(self) -> list[dict[str, Any]]:
        return list(self["experiments"].get("models", []))


def load_config(path: str | os.PathLike, mode: str = "full", schema: Mapping[str, Section] = SECTIONS) -> RunConfig:
    """Read and check a run file; ``mode="quick"`` applies its ``[quick]`` overrides.

    ``schema`` says which sections exist (:data:`SECTIONS` for a prospectivity study,
    :data:`IMAGE_SECTIONS` for an image-classification study).

    Raises :class:`~prospect.errors.ConfigError` naming the file and key for unknown sections or
    keys (listing the valid ones) and for values of the wrong kind, and
    :class:`~prospect.errors.MissingFileError` for a missing file. Input files named in the
    config are checked by :func:`prospect.pipeline.check_inputs`, not here.
    """
    path = Path(path)
    if mode not in MODES:
        raise ConfigError(f"mode={mode!r}; valid: {list(MODES)}")
    if not path.is_file():
        raise MissingFileError(f"config file {str(path)!r} does not exist")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from exc
    quick = raw.pop("quick", {})
    _check_document(raw, str(path), schema)
    if not isinstance(quick, dict):
        raise ConfigError(f"{path}: [quick] must be a table of overrides, got {quick!r}")
    _check_document(quick, f"{path} [quick]", schema, partial=True)
    sections, changes, origins = raw, [], {}
    if mode == "quick":
        for name, overrides in quick.items():
            if isinstance(overrides, list):  # [[quick.categorical]] and the like replace the whole list
                changes.append(f"{name}: {len(sections.get(name, []))} table(s) -> {overrides!r} (--quick)")
                sections[name] = overrides
                origins[name] = "--quick"
                continue
            for key, value in overrides.items():
                before = sections.get(name, {}).get(key, "default")
                sections.setdefault(name, {})[key] = value
                changes.append(f"{name}.{key}: {before!r} -> {value!r} (--quick)")
                origins[f"{name}.{key}"] = "--quick"
    for name, spec in schema.items():
        if spec.optional and name not in sections:
            continue
        if spec.required and not spec.many and any(key not in sections.get(name, {}) for key in spec.required):
            raise ConfigError(f"{path}: [{name}] needs {' and '.join(spec.required)} ({spec.help})")
    if schema is SECTIONS and "samples" not in sections:
        survey_only = [name for name in SURVEY_ONLY if sections.get(name)]
        if survey_only:
            raise ConfigError(f"{path}: {', '.join(f'[{n}]' for n in survey_only)} need(s) a survey, and the file has "
                              "no [samples]; add [samples] path = \"...\" or remove them")
    _absolute_paths(sections, path.parent)
    scale = sections.get("experiments", {}).get("dilation_scale") if schema is SECTIONS else None
    if scale is not None:
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not scale > 0:
            raise ConfigError(f"{path}: [experiments] dilation_scale={scale!r}; valid: a positive number, e.g. 4 "
                              "for 100 m cells and rates chosen for 25 m")
        rows = [row for row in sections["experiments"].get("models", [])
                if "dilation_scale" in _scaled_keys(row.get("name")) and "dilation_scale" not in row]
        for row in rows:
            row["dilation_scale"] = scale
        if rows:
            changes.append(f"experiments.dilation_scale: {scale!r} given to {len(rows)} MFAF row(s)")
    return RunConfig(sections, path.resolve(), mode, changes, schema, origins)


def _scaled_keys(name: Any) -> list[str]:
    """The options of a row's model (none for an unknown name: the row is refused later, by name)."""
    from prospect import registry

    return option_keys(name) if name in registry.names() else []


def _check_document(document: Mapping[str, Any], where: str, schema: Mapping[str, Section],
                    partial: bool = False) -> None:
    unknown = sorted(set(document) - set(schema))
    if unknown:
        raise ConfigError(f"{where}: unknown section(s) {unknown}; valid sections: {list(schema)} "
                          f"(and [quick] for --quick overrides)")
    for name, body in document.items():
        spec = schema[name]
        bodies = body if spec.many and isinstance(body, list) else [body]
        for i, one in enumerate(bodies):
            label = f"{where} [{name}]" + (f" #{i + 1}" if spec.many else "")
            if not isinstance(one, dict):
                raise ConfigError(f"{label} must be a table of keys, got {one!r}")
            missing = [key for key in spec.required if key not in one]
            if spec.many and missing and not partial:
                raise ConfigError(f"{label} needs {' and '.join(missing)}")
            _check_keys(name, one, label, schema)


def _check_keys(section: str, body: Mapping[str, Any], where: str, schema: Mapping[str, Section]) -> None:
    if section not in schema:
        raise ConfigError(f"{where}: unknown section {section!r}; valid sections: {list(schema)}")
    valid = valid_keys(section, schema)
    unknown = sorted(set(body) - set(valid))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; valid keys of [{section}]: {valid}")
    if schema is SECTIONS and section == "experiments":
        _check_experiments(body, where)
    if schema is SECTIONS and section == "raster":
        _check_raster(body, where)
    if schema is SECTIONS and section == "idw" and "elements" in body:
        elements = body["elements"]
        if not (elements == "screen" or (isinstance(elements, list) and all(isinstance(e, str) for e in elements))):
            raise ConfigError(f"{where}: elements={elements!r}; valid: 'screen' (the screening's selection) or a "
                              "list of column names")


DERIVED = ("slope", "smooth", "high_pass")


def _check_raster(body: Mapping[str, Any], where: str) -> None:
    derive = body.get("derive", [])
    if not (isinstance(derive, list) and all(d in DERIVED for d in derive)):
        raise ConfigError(f"{where}: derive={derive!r}; valid: a list of {list(DERIVED)}")
    sigma = body.get("sigma")
    if {"smooth", "high_pass"} & set(derive) and sigma is None:
        raise ConfigError(f"{where}: derive={derive!r} needs sigma = <a distance in grid units>, e.g. 2000")
    if sigma is not None and (isinstance(sigma, bool) or not isinstance(sigma, (int, float)) or not sigma > 0):
        raise ConfigError(f"{where}: sigma={sigma!r}; valid: a positive distance in grid units, e.g. 2000")
    if sigma is not None and not {"smooth", "high_pass"} & set(derive):
        raise ConfigError(f"{where}: sigma={sigma!r} is used only by derive = ['smooth'] or ['high_pass']")


def _check_experiments(body: Mapping[str, Any], where: str) -> None:
    seeds = body.get("seeds", [0])
    if not (isinstance(seeds, list) and seeds and all(isinstance(s, int) and not isinstance(s, bool) for s in seeds)):
        raise ConfigError(f"{where}: seeds={seeds!r}; valid: a non-empty list of whole numbers, e.g. [0, 1, 2]")
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"{where}: seeds={seeds!r} repeats a seed")
    models = body.get("models", [])
    if not isinstance(models, list) or not all(isinstance(m, dict) for m in models):
        raise ConfigError(f"{where}: models must be an array of tables ([[experiments.models]]), got {models!r}")
    valid = model_keys()
    from prospect import registry

    names = sorted(registry.names("network")) + sorted(registry.names("pixel"))
    seen: set[tuple[str, str]] = set()
    for i, row in enumerate(models):
        label = f"{where} models #{i + 1}"
        unknown = sorted(set(row) - set(valid))
        if unknown:
            raise ConfigError(f"{label}: unknown key(s) {unknown}; valid keys of a model row: {valid}")
        for key in ("label", "name"):
            if not isinstance(row.get(key), str):
                raise ConfigError(f"{label} needs {key} = \"...\" (a text), got {row.get(key)!r}")
        if row["name"] not in names:
            raise ConfigError(f"{label}: name={row['name']!r}; valid model names: {names}")
        options = sorted(set(row) - set(MODEL_KEYS))
        entry = registry.get(row["name"])
        if entry.kind == "pixel":
            own = [*option_keys(row["name"]), *registry.PIXEL_KEYS]
            wrong = sorted(set(options) - {"pretrained", *own})
            if wrong:
                raise ConfigError(f"{label}: {row['name']!r} takes no option {wrong}; valid here: {own}")
        else:
            wrong = sorted(set(options) - set(option_keys(row["name"])) - set(registry.RECIPE_KEYS))
            if wrong:
                own = option_keys(row["name"])
                raise ConfigError(f"{label}: {row['name']!r} takes no option {wrong}; valid: "
                                  f"{own + list(registry.RECIPE_KEYS)}")
        key = (str(row.get("table", "")), row["label"])
        if key in seen:
            raise ConfigError(f"{label}: label {row['label']!r} appears twice in table {key[0]!r}")
        seen.add(key)
        paper = row.get("paper", {})
        if not isinstance(paper, dict) or set(paper) - set(PAPER_METRICS):
            raise ConfigError(f"{label}: paper={paper!r}; valid: a table with keys {list(PAPER_METRICS)} (in %)")


def select_rows(config: RunConfig, section: str) -> list[dict[str, Any]]:
    """The experiment rows that ``[section] rows`` names (row labels or table names; all when absent)."""
    wanted = config[section].get("rows")
    rows = config.models
    if wanted is None:
        return rows
    if not (isinstance(wanted, list) and all(isinstance(w, str) for w in wanted)):
        raise ConfigError(f"[{section}] rows={wanted!r}; valid: a list of row labels or table names")
    known = {row["label"] for row in rows} | {str(row.get("table", "")) for row in rows}
    unknown = [w for w in wanted if w not in known]
    if unknown:
        raise ConfigError(f"[{section}] rows: {unknown} name no experiment row or table; valid: {sorted(known)}")
    return [row for row in rows if row["label"] in wanted or str(row.get("table", "")) in wanted]


def _absolute_paths(sections: dict[str, Any], base: Path) -> None:
    """Paths in a config are relative to the config file's folder."""
    from prospect.imagery.zoo import is_weights_name

    for name, body in sections.items():
        for one in body if isinstance(body, list) else [body]:
            for key in ("path", "root", "source", "like"):
                if isinstance(one, dict) and isinstance(one.get(key), str):
                    one[key] = str((base / one[key]).resolve())
            if name == "experiments":
                for row in one.get("models", []):
                    if isinstance(row.get("pretrained"), str) and row["pretrained"] != "torchvision" \
                            and not is_weights_name(row["pretrained"]):
                        row["pretrained"] = str((base / row["pretrained"]).resolve())


def run_key(row: dict[str, Any]) -> str:
    """A folder name for a model row; rows with the same model and options share it (and one training)."""
    import hashlib
    import json

    def text(value: Any) -> str:
        if isinstance(value, dict):    # a table (a fuzzy row's memberships): a short stable digest, not its text
            return hashlib.sha1(json.dumps(value, sort_keys=True).encode()).hexdigest()[:8]
        return "-".join(map(str, value)) if isinstance(value, list) else str(value)

    options = {k: v for k, v in row.items() if k not in REPORT_KEYS}
    parts = [options.pop("name")] + [f"{k}-{text(v)}" for k, v in sorted(options.items())]
    return re.sub(r"[^A-Za-z0-9_.=-]+", "", "_".join(str(p) for p in parts).replace(" ", ""))


FOLD_KEYS = ("k", "block_size", "buffer", "link")   # the [heldout] keys of prospect.folds.spatial_folds


def heldout_folds(config: RunConfig, grid: Any, deposits: Any) -> Any:
    """The held-out stage's folds (:func:`prospect.folds.spatial_folds` with the ``[heldout]`` keys and the
    run's first seed); what they refuse is refused naming the section."""
    from prospect import folds

    options = {key: config["heldout"][key] for key in FOLD_KEYS if key in config["heldout"]}
    try:
        return folds.spatial_folds(grid, deposits, seed=config.seeds[0], **options)
    except InputError as exc:
        raise ConfigError(f"[heldout]: {exc}") from exc


def chosen_rows(config: RunConfig) -> list[dict[str, Any]]:
    """The experiment rows the held-out stage evaluates (one per distinct model), in the file's order."""
    if int(config["heldout"].get("k", 5)) == 0:
        return []
    distinct: dict[str, dict[str, Any]] = {}
    for row in select_rows(config, "heldout"):
        distinct.setdefault(run_key(row), row)
    return list(distinct.values())


ENSEMBLE = {"label": "Ensemble", "name": "ensemble"}   # the [heldout] ensemble row's place in the tables


def ensemble_rows(config: RunConfig) -> tuple[list[dict[str, Any]], list[dict[str, Any]]] | None:
    """The held-out rows ``[heldout] ensemble`` combines, (networks, baselines); None when it is off (the default).

    ``true``: the rows of the recommended network (:data:`prospect.validation.RECOMMENDED_NETWORK`: ``name =
    "window_net"`` with no option other than the recommended values), else every network row, and every baseline
    row; a list: those rows (labels).
    Where a kind has several rows they are cross-validated inside each fold's training area too, and
    :func:`prospect.validation.ensemble` takes, per fold, the one that scores best there.
    """
    from prospect import registry
    from prospect.validation import RECOMMENDED_NETWORK

    wanted = config["heldout"].get("ensemble", False)
    rows = chosen_rows(config)
    if wanted is False or not rows:
        return None
    labels = [row["label"] for row in rows]
    if not (wanted is True or isinstance(wanted, list) and wanted and all(isinstance(w, str) for w in wanted)):
        raise ConfigError(f"[heldout] ensemble={wanted!r}; valid: true, false or a list of held-out row labels "
                          f"({labels})")
    if ENSEMBLE["label"] in labels:
        raise ConfigError(f"[heldout] ensemble: a row is labelled {ENSEMBLE['label']!r}, the ensemble row's label; "
                          "rename that row")
    unknown = [w for w in wanted if w not in labels] if isinstance(wanted, list) else []
    if unknown:
        raise ConfigError(f"[heldout] ensemble: {unknown} name no held-out row; valid: {labels}")
    picked = rows if wanted is True else [row for row in rows if row["label"] in wanted]
    networks = [row for row in picked if registry.get(row["name"]).kind == "network"]
    baselines = [row for row in picked if registry.get(row["name"]).kind == "pixel"]
    chosen = RECOMMENDED_NETWORK      # a row that sets its options, or some of them, to the recommended values is it
    recommended = [row for row in networks if {**chosen, **{k: v for k, v in row.items() if k not in REPORT_KEYS}}
                   == chosen]
    if wanted is True and recommended:
        networks = recommended
    if not networks or not baselines:
        raise ConfigError(f"[heldout] ensemble={wanted!r} combines a network row and a baseline row; the held-out "
                          f"rows {[row['label'] for row in picked]} hold "
                          f"{'no network' if not networks else 'no baseline'}")
    if max(len(networks), len(baselines)) > 1 and int(config["heldout"].get("k", 5)) < 3:
        raise ConfigError(f"[heldout] ensemble chooses between several rows by a cross-validation inside each fold's "
                          f"training area, which needs k >= 3 folds; k={config['heldout'].get('k')}")
    return networks, baselines


def tile_rows(config: RunConfig) -> list[dict[str, Any]]:
    """The ``[experiments]`` rows the paper's tile tables train: networks (pixel estimators are judged held out)."""
    from prospect import registry

    return [row for row in select_rows(config, "experiments") if registry.get(row["name"]).trains_on_tiles]


def map_row(config: RunConfig) -> dict[str, Any] | None:
    """The experiment row whose model maps: ``[map] model_label`` (``"Ensemble"``: the ``[heldout] ensemble`` row);
    without it, None when the held-out stage runs (the map then comes from its best row: :func:`best_heldout_row`),
    else the first row.

    Refused unless a stage trains it: the held-out stage (its fold models map) or the tile tables (its
    first seed's tile model maps).
    """
    labels = [row["label"] for row in config.models]
    if not labels:
        raise ConfigError("[experiments] lists no models; add at least one [[experiments.models]] row")
    if "model_label" not in config["map"] and chosen_rows(config):
        return None
    chosen = config["map"].get("model_label", labels[0])
    if chosen == ENSEMBLE["label"] and ensemble_rows(config) is not None:
        return ENSEMBLE      # the held-out stage's ensemble row maps with its fold ensembles
    if chosen not in labels:
        raise ConfigError(f"[map] model_label={chosen!r} is not the label of an experiments row; valid: {labels}")
    evaluated = [row["label"] for row in chosen_rows(config)]
    tiled = [row["label"] for row in tile_rows(config)]
    if chosen not in evaluated and chosen not in tiled:
        raise ConfigError(f"[map] model_label={chosen!r} maps with its fold models (held-out stage) or its tile model, "
                          f"but neither stage trains it; add it to [heldout] rows (now {evaluated}) or [experiments] "
                          "rows")
    return next(row for row in config.models if row["label"] == chosen)


def top_heldout_rows(table: Any, most: int = 5) -> list[str]:
    """The runs (``run`` column) a held-out table cannot tell from its best row, best first: the best usable row
    (as :func:`best_heldout_row` ranks) and every usable row whose AUC interval reaches the best's lower end,
    at most ``most``. The ensemble row is left out: it combines two of the others, whose agreement it would count
    again."""
    table = table[table["run"] != run_key(ENSEMBLE)]
    scored = table[~table["collapsed"].astype(bool)] if "collapsed" in table else table
    if not len(scored):
        return []
    ranked = scored.assign(_auc=scored["auc"].round(3)).sort_values(["_auc", "seconds"], ascending=[False, True],
                                                                   kind="stable")
    best = ranked.iloc[0]
    close = ranked.iloc[1:][ranked["auc_high"].iloc[1:] >= best["auc_low"]]
    return [best["run"], *close["run"].tolist()][:most]


def best_heldout_row(config: RunConfig, table: Any) -> tuple[dict[str, Any], str]:
    """The held-out row that maps when ``[map]`` names none, and why: the highest held-out AUC among the rows
    whose map is not constant, ties (to 3 decimals, as reported) going to the fewer seconds."""
    scored = table[~table["collapsed"].astype(bool)] if "collapsed" in table else table
    if not len(scored):
        scored = table
    ranked = scored.assign(_auc=scored["auc"].round(3)).sort_values(["_auc", "seconds"], ascending=[False, True],
                                                                   kind="stable")
    best = ranked.iloc[0]
    row = next(row for row in [*chosen_rows(config), ENSEMBLE] if row["label"] == best["label"])
    tied = ranked.loc[ranked["_auc"] == ranked["_auc"].iloc[0], "label"].iloc[1:].tolist()
    why = (f"the best held-out AUC of {len(table)} rows ({best['auc']:.3f})"
           + (f", tied with {', '.join(tied)} and cheaper ({best['seconds']:.0f} s)" if tied else "")
           + "; name another in [map] model_label")
    return row, why
