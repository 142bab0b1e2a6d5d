"""Pixel classifiers a geologist would otherwise pick: random forest, gradient boosting, logistic regression.

    model = pp.baselines.build_baseline("random_forest", seed=0)
    points = pp.sampling.sample_points(stack, deposits, positive_radius=1000, negative_ratio=5)
    model.fit(pp.sampling.pixel_values(stack, points), points.y)
    prob = pp.baselines.predict_stack(model, stack)            # (y, x) probability, NaN = nodata
    pp.baselines.permutation_importance(model, X_test, y_test, bands)

They are scikit-learn estimators, so they take the same labels (:mod:`prospect.sampling`), the same
spatial folds (:mod:`prospect.folds`) and give the same probability rasters as the networks. No torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from prospect import registry
from prospect.errors import InputError
from prospect.grid import Grid
from prospect.layers import categorical_bands  # the stack's own marks; kept here too for callers

if TYPE_CHECKING:
    import xarray as xr

__all__ = ["BASELINES", "list_baselines", "build_baseline", "categorical_bands", "predict_stack",
           "permutation_importance"]

BASELINES = registry.descriptions("pixel")   # name -> what it is (prospect.registry says what each is)


def list_baselines() -> dict[str, str]:
    """Baseline names and what each is."""
    return dict(BASELINES)


def build_baseline(name: str, seed: int = 0, categorical: list[int] | None = None,
                   class_weight: str | None = "balanced", pu_bags: int | None = None,
                   bands: list[str] | None = None, **options: Any) -> Any:
    """A scikit-learn classifier for pixel values ``(n, bands)``.

    Parameters
    ----------
    name : {"random_forest", "gradient_boosting", "logistic_regression", "weights_of_evidence", "fuzzy_overlay"}
    seed : int
        ``random_state`` of the estimator.
    categorical : list of int, optional
        Positions of categorical bands (codes such as geology units): one-hot encoded for the
        logistic regression, declared categorical to gradient boosting; the forest splits codes.
    class_weight : {"balanced", None}
        Weigh classes inversely to their counts (the default), or not.
    pu_bags : int, optional
        Positive-unlabelled bagging (Mordelet & Vert 2014): that many estimators, each fitted on every
        positive and an equal-sized random draw of the background (the unlabelled cells), their
        probabilities averaged (imbalanced-learn's ``BalancedBaggingClassifier``). None: one estimator.
    bands : list of str, optional
        The names of the columns, for a fuzzy overlay's memberships or weights of evidence's breaks given by band
        name.
    **options
        Passed to the estimator (e.g. ``n_estimators``, ``max_depth``, ``C``); they override the
        defaults (forest: 300 trees, ``min_samples_leaf=2``, ``max_samples=0.5``, all cores).
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    if pu_bags is not None:
        return _pu_bagging(build_baseline(name, seed, categorical, class_weight, bands=bands, **options), pu_bags,
                           seed)
    if name not in BASELINES:
        raise InputError(f"unknown baseline {name!r}; valid: {sorted(BASELINES)}")
    if class_weight not in ("balanced", None):
        raise InputError(f"class_weight={class_weight!r}; valid: 'balanced', None")
    categorical = [int(i) for i in (categorical or [])]
    try:
        if name == "weights_of_evidence":    # counts, not a loss: class weights change its prior, not its ranking
            from prospect.wofe import WeightsOfEvidence

            return WeightsOfEvidence(categorical=categorical, **{"bands": bands, **options})
        if name == "fuzzy_overlay":          # set by hand: nothing is fitted, the labels only judge it
            from prospect.fuzzy import FuzzyOverlay

            return FuzzyOverlay(**{"bands": bands, **options})
        if name == "random_forest":
            settings = {"n_estimators": 300, "min_samples_leaf": 2, "max_samples": 0.5, "n_jobs": -1, **options}
            forest = globals().get("RandomForest") or _forest_class()
            return forest(random_state=seed, class_weight=class_weight, **settings)
        if name == "gradient_boosting":
            return HistGradientBoostingClassifier(random_state=seed, class_weight=class_weight,
                                                  categorical_features=categorical or None, **options)
        linear = LogisticRegression(class_weight=class_weight, random_state=seed, **{"max_iter": 2000, **options})
    except TypeError as error:
        raise InputError(f"{name}: {error}; see the scikit-learn estimator's parameters") from error
    if not categorical:
        return make_pipeline(StandardScaler(), linear)
    encode = ColumnTransformer([("categorical", OneHotEncoder(handle_unknown="ignore"), categorical)],
                               remainder=StandardScaler())
    return make_pipeline(encode, linear)


def _forest_class() -> type:
    from sklearn.ensemble import RandomForestClassifier

    class RandomForest(RandomForestClassifier):
        """scikit-learn's random forest whose probabilities are the same on every run.

        With ``n_jobs`` > 1 scikit-learn adds the trees' probabilities in the order its threads finish, so the
        last bits of a cell's probability change from run to run and ties between cells break differently
        (measured: permutation importance differed in the fifth decimal between two runs of one seed). Here the
        rows are dealt to the threads and each row adds its trees in the forest's order: scikit-learn's result
        with ``n_jobs=1``, bit for bit, at the parallel speed.
        """

        def predict_proba(self, X: Any) -> np.ndarray:
            from joblib import Parallel, delayed, effective_n_jobs
            from sklearn.utils.validation import check_is_fitted

            check_is_fitted(self)
            x = np.ascontiguousarray(X, dtype=np.float32)
            if x.ndim != 2 or x.shape[1] != self.n_features_in_:
                raise ValueError(f"X has shape {x.shape}; the forest was fitted on {self.n_features_in_} features")
            parts = np.array_split(np.arange(len(x)), max(1, min(effective_n_jobs(self.n_jobs), len(x) // 2048)))

            def summed(rows: np.ndarray) -> np.ndarray:
                part = x[rows[0]:rows[-1] + 1] if len(rows) else x[:0]
                total = np.zeros((len(part), self.n_classes_))
                for tree in self.estimators_:
                    total += tree.predict_proba(part, check_input=False)
                return total

            found = Parallel(n_jobs=len(parts), prefer="threads")(delayed(summed)(rows) for rows in parts)
            return np.concatenate(found) / len(self.estimators_)

    RandomForest.__module__ = __name__
    RandomForest.__qualname__ = "RandomForest"
    globals()["RandomForest"] = RandomForest    # made once; pickles as prospect.baselines.RandomForest
    return RandomForest


def __getattr__(name: str) -> Any:
    if name == "RandomForest":     # made on first use, so importing this module does not import scikit-learn
        return _forest_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _pu_bagging(estimator: Any, bags: Any, seed: int) -> Any:
    from imblearn.ensemble import BalancedBaggingClassifier

    if isinstance(bags, bool) or not isinstance(bags, int) or bags < 1:
        raise InputError(f"pu_bags={bags!r}; valid: a whole number >= 1 (estimators, each on all positives and as "
                         "many background cells drawn at random)")
    # sampling_strategy=1.0: as many negatives as positives per bag, drawn without replacement; no bootstrap of
    # the positives (bootstrap=False), so each bag sees every positive (PU bagging's rule)
    return BalancedBaggingClassifier(estimator, n_estimators=bags, sampling_strategy=1.0, replacement=False,
                                     bootstrap=False, random_state=seed)


def predict_stack(model: Any, stack: xr.DataArray, chunk: int = 2**18) -> xr.DataArray:
    """Probability of class 1 at every cell of ``stack``, NaN where any band is NaN.

    Returns a DataArray (y, x) float32 with ``attrs["kind"] = "probability"`` (styled in QGIS by
    :func:`prospect.io.write_geotiff`). Cells are scored ``chunk`` at a time; a lazy stack
    (:mod:`prospect.compute`) gives a lazy map, each block scored when it is computed or written.
    """
    from prospect.compute import map_cells

    grid = Grid.from_dataarray(stack)
    result = map_cells(lambda x: model.predict_proba(x)[:, 1], stack, chunk=chunk)
    return grid.wrap(result, name="probability", attrs={"kind": "probability", "model": type(model).__name__})


def permutation_importance(model: Any, x: np.ndarray, y: np.ndarray, bands: list[str], repeats: int = 5,
                           seed: int = 0) -> pd.DataFrame:
    """Drop in ROC AUC when each band is shuffled (scikit-learn's permutation importance).

    Compute it on samples the model was not fitted on (a held-out fold). Returns one row per band,
    ``importance`` (mean drop) and ``importance_std``, largest first.
    """
    from sklearn.inspection import permutation_importance as permute

    if x.shape[1] != len(bands):
        raise InputError(f"x has {x.shape[1]} columns but {len(bands)} band names were given")
    if len(np.unique(y)) < 2:
        raise InputError("permutation importance by ROC AUC needs samples of both classes")
    result = permute(model, x, y, scoring="roc_auc", n_repeats=int(repeats), random_state=seed)
    frame = pd.DataFrame({"band": bands, "importance": result.importances_mean,
                          "importance_std": result.importances_std})
    return frame.sort_values("importance", ascending=False).reset_index(drop=True)
