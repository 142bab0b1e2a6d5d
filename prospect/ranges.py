"""Ranges of numeric parameters, declared once in the signatures they constrain and read by the run-file checks.

    def idw(..., power: Annotated[float, POSITIVE] = 2.0, k: Annotated[int | None, whole(1)] = None, ...)

:func:`prospect.pipeline.values.check_values` reads these annotations, so ``[idw] power = -1`` is refused
with the rule's words before a file is read; the function itself still checks what it is given (a
script's call), and a test holds the two to the same rule. ``None`` passes every range (it means the default).
"""

from __future__ import annotations

import math
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["Range", "whole", "or_word", "rule_of", "strip", "POSITIVE", "NOT_NEGATIVE", "FRACTION_OPEN",
           "FRACTION_CLOSED", "UP_TO_ONE", "FINITE", "PAIR_OF_WHOLE"]


@dataclass(frozen=True)
class Range:
    """A rule a value must keep (``test``) and how to say it (``words``, e.g. "a positive number")."""

    test: Callable[[Any], bool]
    words: str

    def __call__(self, value: Any) -> bool:
        return bool(self.test(value))


def _number(test: Callable[[float], bool], words: str) -> Range:
    def check(value: Any) -> bool:
        values = value if isinstance(value, (list, tuple)) else [value]
        return all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and test(v)
                   for v in values)

    return Range(check, words)


def whole(low: int) -> Range:
    """A whole number ≥ ``low``."""
    return Range(lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= low, f"a whole number ≥ {low}")


def or_word(word: str, rule: Range) -> Range:
    """``rule``, or the word ``word`` (e.g. ``"auto"``)."""
    return Range(lambda v: v == word or (not isinstance(v, str) and rule(v)), f"{rule.words}, or {word!r}")


POSITIVE = _number(lambda v: v > 0, "a positive number")
NOT_NEGATIVE = _number(lambda v: v >= 0, "a number ≥ 0")
FRACTION_OPEN = _number(lambda v: 0 < v < 1, "a fraction in (0, 1)")
FRACTION_CLOSED = _number(lambda v: 0 <= v <= 1, "a fraction in [0, 1]")
UP_TO_ONE = _number(lambda v: 0 < v <= 1, "a fraction in (0, 1]")
FINITE = _number(lambda v: True, "a finite number")
PAIR_OF_WHOLE = Range(lambda v: all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in v),
                      "two whole numbers ≥ 1 (rows, cols)")


def rule_of(annotation: Any) -> Range | None:
    """The :class:`Range` an ``Annotated[...]`` annotation carries, or None."""
    if typing.get_origin(annotation) is typing.Annotated:
        return next((m for m in annotation.__metadata__ if isinstance(m, Range)), None)
    return None


def strip(annotation: Any) -> Any:
    """The type an ``Annotated[...]`` annotation annotates (the annotation itself otherwise)."""
    return typing.get_args(annotation)[0] if typing.get_origin(annotation) is typing.Annotated else annotation
