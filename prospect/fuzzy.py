"""Fuzzy logic: knowledge-driven prospectivity, set by hand and judged on the same held-out deposits.

    cu = pp.fuzzy.membership(stack.sel(band="Cu"), "large", midpoint=40, spread=5)   # Cu high: favourable
    near_fault = pp.fuzzy.membership(stack.sel(band="fault_distance"), "small", midpoint=1000, spread=3)
    prob = pp.fuzzy.overlay([cu, near_fault], "gamma", gamma=0.9)
    spec = {"name": "fuzzy_overlay", "memberships": [("large", 40, 5), ("small", 1000, 3), None], "gamma": 0.9}
    pp.validation.cross_validate(stack, deposits, folds, spec)      # no training: scored as set, fold by fold

Membership functions are those of ArcGIS's Fuzzy Membership tool, which EIS Toolkit and ArcSDM users know
(``spread`` is its f1, ``midpoint`` its f2)::

    linear     0 at or below low, 1 at or above high, a straight line between (decreasing when low > high)
    large      1 / (1 + (x / midpoint) ** -spread)        (x > 0; 0 at or below 0)
    small      1 / (1 + (x / midpoint) ** spread)         (x > 0; 1 at or below 0)
    gaussian   exp(-spread * (x - midpoint) ** 2)
    near       1 / (1 + spread * (x - midpoint) ** 2)
    classes    a value per class code, 0 for the codes not named

Overlays of memberships m1 ... mn: ``and`` min, ``or`` max, ``product`` Π m, ``sum`` 1 - Π (1 - m), ``gamma``
sum ** γ × product ** (1 - γ) (An et al. 1991). A cell without a value in any band used is NaN. No torch here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

from prospect.errors import InputError
from prospect.ranges import FRACTION_CLOSED

__all__ = ["membership", "overlay", "FuzzyOverlay", "FUNCTIONS", "OVERLAYS"]

FUNCTIONS = ("linear", "large", "small", "gaussian", "near", "classes")
OVERLAYS = ("and", "or", "product", "sum", "gamma")


def _membership(x: np.ndarray, function: str, a: Any, b: Any) -> np.ndarray:
    x = np.asarray(x, float)
    if function == "classes":
        if not isinstance(a, Mapping) or not all(0 <= float(v) <= 1 for v in a.values()):
            raise InputError(f"classes: {a!r}; valid: a mapping of class code to a membership in [0, 1]")
        out = np.zeros(x.shape)
        for code, value in a.items():
            out[x == float(code)] = float(value)
        return np.where(np.isfinite(x), out, np.nan)
    a, b = float(a), float(b)
    if not (np.isfinite(a) and np.isfinite(b)):
        raise InputError(f"{function}: ({a!r}, {b!r}) must be finite numbers")
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        if function == "linear":
            if a == b:
                raise InputError(f"linear: low={a!r} equals high={b!r}; give two different values")
            return np.clip((x - a) / (b - a), 0, 1)
        if function in ("large", "small"):
            midpoint, spread = a, b
            if midpoint <= 0 or spread <= 0:
                raise InputError(f"{function}: midpoint={midpoint!r} and spread={spread!r} must be positive")
            ratio = np.where(x > 0, x, np.nan) / midpoint
            value = 1 / (1 + ratio ** (-spread if function == "large" else spread))
            return np.where(np.isnan(x), np.nan, np.where(x > 0, value, 0.0 if function == "large" else 1.0))
        if function in ("gaussian", "near"):
            midpoint, spread = a, b
            if spread <= 0:
                raise InputError(f"{function}: spread={spread!r} must be positive")
            square = (x - midpoint) ** 2
            return np.exp(-spread * square) if function == "gaussian" else 1 / (1 + spread * square)
    raise InputError(f"function={function!r}; valid: {list(FUNCTIONS)}")


def membership(values: Any, function: str, midpoint: Any = None, spread: Any = None, low: float | None = None,
               high: float | None = None, classes: Mapping[Any, float] | None = None) -> Any:
    """The membership in [0, 1] of every value (an array or a DataArray, returned as the same kind).

    ``linear`` takes ``low`` and ``high``; ``large``, ``small``, ``gaussian`` and ``near`` take ``midpoint``
    and ``spread``; ``classes`` takes ``{code: membership}``. NaN stays NaN.
    """
    if function not in FUNCTIONS:
        raise InputError(f"function={function!r}; valid: {list(FUNCTIONS)}")
    a, b = (classes, None) if function == "classes" else (low, high) if function == "linear" else (midpoint, spread)
    if a is None or (b is None and function != "classes"):
        needs = {"linear": "low and high", "classes": "classes={code: membership}"}.get(function, "midpoint and spread")
        raise InputError(f"function={function!r} needs {needs}")
    if hasattr(values, "copy") and hasattr(values, "dims"):     # a DataArray: keep its coordinates
        out = values.copy(data=_membership(values.to_numpy(), function, a, b).astype(np.float32))
        out.attrs = {**values.attrs, "membership": f"{function} {a} {b if b is not None else ''}".strip()}
        return out
    return _membership(values, function, a, b)


def overlay(memberships: Sequence[Any], how: str = "gamma", gamma: float = 0.9) -> Any:
    """Combine memberships cell by cell (``and``, ``or``, ``product``, ``sum`` or ``gamma``); arrays or
    DataArrays of one shape, returned as the first one's kind."""
    if how not in OVERLAYS:
        raise InputError(f"how={how!r}; valid: {list(OVERLAYS)}")
    if not 0 <= gamma <= 1:
        raise InputError(f"gamma={gamma!r} must lie in [0, 1] (0: product, 1: sum)")
    if not len(memberships):
        raise InputError("memberships: give at least one")
    arrays = np.stack([np.asarray(m.to_numpy() if hasattr(m, "to_numpy") else m, float) for m in memberships])
    if np.nanmin(arrays) < 0 or np.nanmax(arrays) > 1:
        raise InputError("memberships must lie in [0, 1]; make them with pp.fuzzy.membership")
    product, total = np.prod(arrays, axis=0), 1 - np.prod(1 - arrays, axis=0)
    result = {"and": lambda: np.min(arrays, axis=0), "or": lambda: np.max(arrays, axis=0), "product": lambda: product,
              "sum": lambda: total, "gamma": lambda: total**gamma * product ** (1 - gamma)}[how]()
    first = memberships[0]
    if hasattr(first, "copy") and hasattr(first, "dims"):
        out = first.copy(data=result.astype(np.float32))
        out.attrs = {**first.attrs, "overlay": how if how != "gamma" else f"gamma {gamma:g}"}
        return out
    return result


class FuzzyOverlay(ClassifierMixin, BaseEstimator):
    """A fuzzy overlay as a scikit-learn classifier of pixel values ``(n, bands)``, so that cross-validation
    scores it on held-out deposits beside the fitted models. ``fit`` learns nothing: the memberships are set.

    Parameters
    ----------
    memberships : sequence or mapping
        One per band, in the stack's order: None (the band is not used) or ``(function, a, b)`` with
        ``a, b`` = ``low, high`` for ``linear``, ``midpoint, spread`` otherwise, or ``("classes", {code: value})``.
        Or a mapping of band name to such a spec (the run file's form: ``memberships = { Cu = ["large", 40, 5] }``),
        with ``bands`` naming the columns.
    how : {"and", "or", "product", "sum", "gamma"}
    gamma : float
    bands : sequence of str, optional
        The names of the columns of ``X``, in order; needed when ``memberships`` is a mapping.
    """

    def __init__(self, memberships: Sequence[Any] | Mapping[str, Any] = (),
                 how: Literal["and", "or", "product", "sum", "gamma"] = "gamma",
                 gamma: Annotated[float, FRACTION_CLOSED] = 0.9, bands: Sequence[str] | None = None) -> None:
        self.memberships = memberships
        self.how = how
        self.gamma = gamma
        self.bands = bands

    def _specs(self, columns: int) -> list[Any]:
        """One spec (or None) per column."""
        if isinstance(self.memberships, Mapping):
            if self.bands is None or len(self.bands) != columns:
                raise InputError(f"memberships by band name need bands= naming the {columns} columns; got "
                                 f"{self.bands!r}")
            unknown = sorted(set(self.memberships) - {str(b) for b in self.bands})
            if unknown:
                raise InputError(f"memberships: {unknown} name no band; valid: {[str(b) for b in self.bands]}")
            return [self.memberships.get(str(band)) for band in self.bands]
        if len(self.memberships) != columns:
            raise InputError(f"memberships: {len(self.memberships)} given for {columns} bands; give one per band "
                             "(None for a band not used)")
        return list(self.memberships)

    def fit(self, X: Any, y: Any = None) -> FuzzyOverlay:
        X = np.asarray(X, float)
        specs = self._specs(X.shape[1])
        if all(m is None for m in specs):
            raise InputError("memberships: every one is None; set at least one band's")
        for spec in specs:
            if spec is not None and (isinstance(spec, str | bytes) or not isinstance(spec, Sequence)
                                     or not 2 <= len(spec) <= 3 or spec[0] not in FUNCTIONS):
                raise InputError(f"memberships: {spec!r}; valid: [function, a, b] with function one of "
                                 f"{list(FUNCTIONS)}, or ['classes', {{code: membership}}]")
        self.specs_ = specs
        self.classes_ = np.array([0, 1])
        self.n_features_in_ = X.shape[1]
        return self

    def memberships_of(self, X: Any) -> np.ndarray:
        """``(n, bands)``: every used band's membership at each cell, 0 for a band not used."""
        X = np.asarray(X, float)
        out = np.zeros(X.shape)
        for band, spec in enumerate(self.specs_):
            if spec is not None:
                out[:, band] = _membership(X[:, band], spec[0], spec[1], spec[2] if len(spec) > 2 else None)
        return out

    def predict_proba(self, X: Any) -> np.ndarray:
        X = np.asarray(X, float)
        values = [_membership(X[:, band], spec[0], spec[1], spec[2] if len(spec) > 2 else None)
                  for band, spec in enumerate(self.specs_) if spec is not None]
        p = overlay(values, self.how, self.gamma)
        return np.column_stack([1 - p, p])

    def predict(self, X: Any) -> np.ndarray:
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(int)
