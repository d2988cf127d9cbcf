"""The 8×8 handwritten digits that ship with scikit-learn (UCI optdigits test set)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Digits8", "load_digits8"]


@dataclass(frozen=True)
class Digits8:
    """8×8 digits with their labels.

    Attributes
    ----------
    images
        Shape ``(1797, 8, 8, 1)``, float32 in [0, 1] (the original counts
        0–16 divided by 16; ink is 1).
    labels
        Shape ``(1797,)``, int32 digit classes 0–9.
    source
        ``"sklearn"``.
    """

    images: np.ndarray
    labels: np.ndarray
    source: str


def load_digits8() -> Digits8:
    """Loads scikit-learn's 1,797 8×8 digits as float images in [0, 1].

    Returns
    -------
    Digits8
        ``images`` of shape ``(1797, 8, 8, 1)`` float32 and ``labels`` of
        shape ``(1797,)`` int32.

    >>> data = load_digits8()
    >>> data.images.shape, data.images.dtype.name, float(data.images.max())
    ((1797, 8, 8, 1), 'float32', 1.0)
    """
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = np.asarray(bunch.images, dtype=np.float32)[..., None] / np.float32(16.0)
    labels = np.asarray(bunch.target, dtype=np.int32)
    return Digits8(images=images, labels=labels, source="sklearn")
