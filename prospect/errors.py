"""Exception classes of prospect.

Every class also inherits the builtin exception a caller would naturally catch
(``ValueError``, ``FileNotFoundError``, ``FileExistsError``), so that
``except ValueError`` keeps working for code that does not know this package.
"""

from __future__ import annotations

__all__ = [
    "ProspectError",
    "InputError",
    "ColumnError",
    "ConfigError",
    "CRSError",
    "GridMismatchError",
    "MissingFileError",
    "OutputExistsError",
    "TrainingError",
]


class ProspectError(Exception):
    """Base class of every error raised on purpose by prospect."""


class InputError(ProspectError, ValueError):
    """An argument has a value that cannot be used (the message says which are valid)."""


class ColumnError(InputError):
    """A table lacks a requested column, or a column holds values that cannot be used."""


class ConfigError(InputError):
    """A run configuration has an unknown section or key, or a value of the wrong kind."""


class CRSError(InputError):
    """A coordinate reference system is missing, unknown or unsuitable (e.g. geographic)."""


class GridMismatchError(InputError):
    """Rasters that must share one grid (shape, transform, CRS) do not."""


class MissingFileError(ProspectError, FileNotFoundError):
    """An input file does not exist."""


class OutputExistsError(ProspectError, FileExistsError):
    """An output path exists and overwriting it was not asked for."""


class TrainingError(ProspectError, FloatingPointError):
    """Training cannot go on: the loss or the inputs stopped being finite numbers (nothing was exported)."""
