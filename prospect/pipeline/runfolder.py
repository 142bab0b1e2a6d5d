"""The output folder of one run: what it may replace, what it must refuse, and a record of every file it writes.

    folder = RunFolder("out/qinhang", overwrite=False, resume=False)
    folder.check(config)            # before any input is read: writable, empty (or --overwrite / --resume)
    folder.clear()                  # --overwrite: remove what the previous run wrote, keep anything else
    folder.start(config)            # config.json: the run as resolved, its inputs' SHA-256, its outputs so far
    folder.csv(table, "screening.csv"); folder.figure(figure, "map.png"); folder.geotiff(prob, "prospectivity.tif")
    path = folder / "report.md"     # any other writer: the path, and the name goes into the record

Every name a run writes (at the top of the folder: ``runs`` for everything under it) is recorded in
``config.json`` as it is written, so ``--overwrite`` removes exactly what an earlier run wrote — even one
that was killed half way — and leaves the user's own files. Nothing keeps a hand-made list of outputs.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from prospect.errors import InputError, OutputExistsError
from prospect.files import atomic_output, is_partial, output_problem

__all__ = ["RunFolder", "input_files", "checksums", "writable_folder", "RECORD", "RESUMABLE"]

RECORD = "config.json"                 # the run as resolved, its inputs' checksums and what it wrote
RESUMABLE = (("trainer", "epochs"),)   # settings a resumed run may change (it trains on, or afresh)


def input_files(config: Any) -> list[Path]:
    """Every file the run reads: the survey, vector layers (a shapefile with its side files) and rasters."""
    files: list[Path] = []
    for name in ("samples", "deposits", "undiscovered", "categorical", "distance", "raster", "mask"):
        for body in config[name] if isinstance(config[name], list) else [config[name]]:
            path = body.get("path", body.get("source"))
            if not isinstance(path, str):
                continue
            path = Path(path)
            sides = sorted(path.parent.glob(f"{path.stem}.*")) if path.suffix.lower() == ".shp" else [path]
            files += [side for side in sides if side.is_file() and side not in files]
    return files


def checksums(config: Any) -> dict[str, str]:
    """SHA-256 of every input file, by path (recorded in ``config.json`` so ``--resume`` can tell an edit)."""
    digests = {}
    for path in input_files(config):
        digest = hashlib.sha256()
        with path.open("rb") as handle:     # in 1 MiB blocks (hashlib.file_digest needs Python 3.11)
            for block in iter(lambda: handle.read(2**20), b""):   # noqa: B023 (used at once, in this loop)
                digest.update(block)
        digests[str(path)] = digest.hexdigest()
    return digests


def writable_folder(out: Path) -> str | None:
    """Why ``out`` cannot be (made into) a folder this process writes to, or None."""
    probe = out
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        return f"--out {out}: {probe} is a file, not a folder; choose a folder"
    try:
        with tempfile.TemporaryFile(dir=probe):
            pass
    except OSError as exc:
        return f"--out {out}: cannot write in {probe} ({exc.strerror or exc}); choose a folder you can write to"
    return None


class RunFolder:
    """The folder a run writes into (``--out``), with its overwrite and resume policy.

    Parameters
    ----------
    path : path
        The folder; created by :meth:`start` when missing.
    overwrite : bool
        A folder holding a run may be cleared (:meth:`clear`) and its files replaced.
    resume : bool
        Continue the run in the folder: same settings and inputs (:meth:`check`), files replaced as the
        stages write them again, models read back or trained on from their checkpoints.
    """

    def __init__(self, path: str | os.PathLike, *, overwrite: bool = False, resume: bool = False) -> None:
        self.root = Path(path)
        self.overwrite, self.resume = bool(overwrite), bool(resume)
        self.replace = self.overwrite or self.resume     # whether a file already there may be replaced
        self.previous: dict[str, Any] = {}               # the record of the run being resumed
        self.record: dict[str, Any] = {}
        self.written: list[str] = []

    def __repr__(self) -> str:
        return f"RunFolder({str(self.root)!r}, overwrite={self.overwrite}, resume={self.resume})"

    def __fspath__(self) -> str:
        return str(self.root)

    # ------------------------------------------------------------------------------------- the policy
    def check(self, config: Any) -> None:
        """Refuse a folder that cannot take this run; with ``resume``, require the run in it to be this one.

        The folder must be one this process can write to (or can create); a non-empty one needs
        ``overwrite``. ``resume`` refuses other settings (except ``[trainer] epochs``: a resumed run may
        train longer or shorter) and an input file that changed since, naming it. Nothing is read but
        ``config.json`` and the input files' bytes; nothing is written.
        """
        problem = writable_folder(self.root)
        if problem:
            raise InputError(problem)
        if not self.resume:
            problem = output_problem(self.root, self.overwrite)
            if problem:
                raise OutputExistsError(f"{problem}, or pass --resume to continue the run in it")
            return
        previous = self.root / RECORD
        if not previous.exists():
            raise InputError(f"--resume: {self.root} holds no run to resume (no config.json); start it without "
                             "--resume")
        before, now = json.loads(previous.read_text()), json.loads(config.as_json())
        for section, key in RESUMABLE:
            for record in (before, now):
                record["sections"].get(section, {}).pop(key, None)
        changed = (["mode"] if before["mode"] != now["mode"] else []) + sorted(
            name for name in set(before["sections"]) | set(now["sections"])
            if before["sections"].get(name) != now["sections"].get(name))
        if changed:
            raise InputError(f"--resume: the run in {self.root} was made with other settings ({', '.join(changed)} "
                             "differ); resume with the same config, mode and options (only --epochs may change), or "
                             "start afresh")
        recorded, current = before.get("inputs", {}), checksums(config)
        edited = sorted(Path(p).name for p in set(recorded) | set(current) if recorded.get(p) != current.get(p))
        if edited:
            raise InputError(f"--resume: input file(s) {edited} changed since the run in {self.root} started (their "
                             "SHA-256 differs from config.json): its models and tables belong to the old inputs. "
                             "Start afresh with --overwrite")

    def clear(self) -> list[str]:
        """Remove what the previous run in the folder wrote (its record's ``outputs``), so it holds one run.

        Only a folder holding a run (its ``config.json``) is cleared, and only with ``overwrite``; the
        names of everything else in it are returned, for the log.
        """
        record = self.root / RECORD
        if not (self.overwrite and record.is_file()):
            return []
        owned = {RECORD, *json.loads(record.read_text()).get("outputs", [])}
        kept = []
        for entry in sorted(self.root.iterdir()):
            if entry.name not in owned and not is_partial(entry.name):
                kept.append(entry.name)
            elif entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        return kept

    def start(self, config: Any) -> None:
        """Create the folder and write ``config.json``: the run as resolved and its inputs' SHA-256.

        A resumed run keeps what the previous record says it wrote and the stack's bands it was made with.
        """
        if self.record:
            return
        previous = self.root / RECORD
        if self.resume and previous.exists():
            self.previous = json.loads(previous.read_text())
            self.written = list(self.previous.get("outputs", []))
        self.root.mkdir(parents=True, exist_ok=True)
        self.record = {**json.loads(config.as_json()), "inputs": checksums(config)}
        if self.previous.get("bands"):
            self.record["bands"] = self.previous["bands"]
        self._save()

    def note(self, **entries: Any) -> None:
        """Add ``entries`` to ``config.json`` (e.g. the stack's bands, which ``--resume`` compares)."""
        self.record.update(entries)
        self._save()

    def _save(self) -> None:
        record = {**self.record, "outputs": sorted(set(self.written) - {RECORD})}
        with atomic_output(self.root / RECORD, overwrite=True) as tmp:
            tmp.write_text(json.dumps(record, indent=2, sort_keys=True, default=str))

    # ------------------------------------------------------------------------------------- writing
    def path(self, name: str | os.PathLike) -> Path:
        """``folder / name``, with ``name``'s first part recorded as the run's (``runs/x/y`` records ``runs``)."""
        top = Path(name).parts[0]
        if top not in self.written:
            self.written.append(top)
            if self.record:
                self._save()
        return self.root / name

    __truediv__ = path

    def outputs(self) -> list[str]:
        """The names at the top of the folder that this run wrote (and that exist)."""
        return sorted(name for name in {RECORD, *self.written} if (self.root / name).exists())

    def csv(self, frame: Any, name: str, **options: Any) -> Path:
        """A table as CSV (four decimals unless ``float_format`` says otherwise)."""
        path = self.path(name)
        with atomic_output(path, overwrite=True) as tmp:
            frame.to_csv(tmp, **{"float_format": "%.4f", **options})
        return path

    def figure(self, figure: Any, name: str) -> Path:
        """A matplotlib figure as PNG (120 dpi); the figure is closed."""
        import matplotlib.pyplot as plt

        path = self.path(name)
        with atomic_output(path, overwrite=True) as tmp:
            figure.savefig(tmp, dpi=120, format="png")
        plt.close(figure)
        return path

    def geotiff(self, da: Any, name: str, cog: bool = False) -> Path:
        """A raster through :func:`prospect.io.write_geotiff` (``cog``: Cloud Optimized), with the ``.qml`` and
        ``.aux.xml`` beside it."""
        from prospect import io

        path = io.write_geotiff(da, self.path(name), overwrite=self.replace, cog=cog)
        for side in (path.with_suffix(".qml"), Path(f"{path}.aux.xml")):
            if side.exists():
                self.path(side.relative_to(self.root))
        return path

    def vectors(self, frames: dict[str, Any], name: str) -> Path:
        """GeoDataFrames as the layers of one GeoPackage."""
        path = self.path(name)
        with atomic_output(path, overwrite=True) as tmp:
            for layer, frame in frames.items():
                frame.to_file(tmp, driver="GPKG", layer=layer)
        return path
