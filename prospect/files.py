"""The ground floor of files: atomic writes, the existing-file rule, paths that must exist, legend text.

Every room that writes or reads a file goes through here (io, styles, qgis, training, the pipeline), and
this module imports nothing of the package but its errors, so none of them need import another to write.

    with atomic_output("out/map.png", overwrite=False) as tmp:   # refuses an existing file
        figure.savefig(tmp)                                       # renamed into place on success only
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from prospect.errors import MissingFileError, OutputExistsError

__all__ = ["atomic_output", "existing", "write_text", "is_partial", "parse_legend",
           "output_problem"]


def existing(path: str | os.PathLike, argument: str = "path") -> Path:
    """``path`` as a Path; a missing file is a :class:`MissingFileError` naming ``argument``."""
    path = Path(path)
    if not path.exists():
        raise MissingFileError(f"{argument}={str(path)!r} does not exist")
    return path


_UMASK = os.umask(0o022)   # read once (setting it back at once): a new file's mode is 0o666 less the umask
os.umask(_UMASK)


_PARTIAL = ".part"     # the temporary file of a write in progress: ".<stem>.<random>.part<suffix>"


def is_partial(name: str) -> bool:
    """Whether ``name`` is the temporary file of an :func:`atomic_output` write (left by a killed process)."""
    return name.startswith(".") and _PARTIAL in name


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it onto ``path``.

    Refuses an existing ``path`` unless ``overwrite=True``. If the body raises,
    the temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    if path.is_dir():
        raise OutputExistsError(f"{str(path)!r} is a folder, not a file; give a file name inside it (e.g. "
                                f"{str(path / ('output' + (path.suffix or '.tif')))!r}), overwrite or not")
    if path.exists() and not overwrite:
        raise OutputExistsError(f"{str(path)!r} exists; pass overwrite=True to replace it")
    if not path.parent.exists():
        raise MissingFileError(f"the folder {str(path.parent)!r} for {path.name!r} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f"{_PARTIAL}{path.suffix}", dir=path.parent)
    os.close(fd)
    os.unlink(tmp)  # writers such as GDAL want to create the file themselves
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if tmp_path.is_file():   # some writers (safetensors) create 0600 files: every output gets the same mode
            os.chmod(tmp_path, 0o666 & ~_UMASK)
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_text(path: str | os.PathLike, text: str, overwrite: bool = False) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; an existing file only with ``overwrite``."""
    path = Path(path)
    with atomic_output(path, overwrite) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path


def parse_legend(text: str) -> dict[int, str]:
    """``"1=Carboniferous;2=Devonian"`` (a categorical layer's ``legend``) as ``{1: "Carboniferous", ...}``."""
    return {int(code): name for code, name in (item.split("=", 1) for item in str(text).split(";") if "=" in item)}


def output_problem(out: Path, overwrite: bool) -> str | None:
    """Why the folder ``out`` cannot take a new run (it holds files and ``overwrite`` is False), or None."""
    if out.exists() and any(out.iterdir()) and not overwrite:
        return f"--out {out} is not empty; pass --overwrite or choose another folder"
    return None
