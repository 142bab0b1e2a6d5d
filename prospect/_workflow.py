"""What the workflow scripts share: the output folder rule and one-line-per-stage logging (private)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path

from prospect.files import output_problem


def prepare_output(out: Path, overwrite: bool) -> str | None:
    """Create ``out``; return an error message instead when it holds files and ``overwrite`` is False."""
    import os

    problem = output_problem(out, overwrite)
    if problem is None:
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            return f"--out {str(out)!r} cannot be created ({exc.strerror}); choose a folder you may write in"
        if not os.access(out, os.W_OK | os.X_OK):
            return f"--out {str(out)!r} is not writable; choose a folder you may write in"
    return problem


@contextlib.contextmanager
def stage_logging(path: Path, append: bool = False) -> Iterator[logging.Logger]:
    """Log the workflow's stages to the terminal and ``path``; the library itself only when it warns."""
    package = logging.getLogger("prospect")
    package.setLevel(logging.WARNING)
    workflow = logging.getLogger("prospect.workflow")
    workflow.setLevel(logging.INFO)
    formatter = logging.Formatter("%(asctime)s %(message)s", datefmt="%H:%M:%S")
    handlers: list[logging.Handler] = [logging.StreamHandler(), logging.FileHandler(path, mode="a" if append else "w")]
    shown = logging.getLogger("py.warnings")     # every warning not caught by a stage reaches the log too
    for handler in handlers:
        handler.setFormatter(formatter)
        package.addHandler(handler)
        shown.addHandler(handler)
    logging.captureWarnings(True)
    try:
        yield workflow
    finally:
        logging.captureWarnings(False)
        for handler in handlers:
            package.removeHandler(handler)
            shown.removeHandler(handler)
            handler.close()
