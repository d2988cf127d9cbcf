"""Fitting a scikit-learn estimator while recording, not raising, non-convergence."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

__all__ = ["fit_recording_convergence"]


def fit_recording_convergence(model: Any, inputs: np.ndarray, targets: np.ndarray) -> bool:
    """Fits ``model`` on ``(n, d)`` inputs and ``(n,)`` targets; returns whether it converged.

    scikit-learn's ConvergenceWarning is caught and turned into ``False``; any
    other warning is passed on.
    """
    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        model.fit(inputs, targets)
    converged = True
    for record in caught:
        if issubclass(record.category, ConvergenceWarning):
            converged = False
        else:
            warnings.warn_explicit(record.message, record.category, record.filename, record.lineno)
    return converged
