"""An independent oracle for image rotation: SciPy's bilinear affine resampling."""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage


def rotate(image: np.ndarray, theta: float) -> np.ndarray:
    """SciPy's bilinear rotation of a ``(H, W)`` image about its centre (zeros outside).

    Counter-clockwise as displayed for θ > 0 (invppl's convention, y up): the output
    pixel at offset d from the centre reads the input at R(θ)ᵀ d in (row, column) terms.
    """
    height, width = image.shape
    c, s = math.cos(theta), math.sin(theta)
    matrix = np.array([[c, s], [-s, c]])
    centre = np.array([(height - 1) / 2, (width - 1) / 2])
    return ndimage.affine_transform(
        np.asarray(image, np.float64),
        matrix,
        offset=centre - matrix @ centre,
        order=1,
        mode="grid-constant",
        cval=0.0,
    )
