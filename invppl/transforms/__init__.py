"""Transformations T_η of images: affine (Lie-algebra), colour and discrete groups.

Every family declares its parameters' names and supports
(:attr:`parameters`), applies to a batch ``(batch, height, width, channels)``
with one resampling, and works under ``jax.jit``, ``jax.vmap`` and ``jax.grad``.
"""

from invppl.transforms.affine import (
    AFFINE_NAMES,
    GENERATORS,
    Affine,
    AffineMap,
    affine_matrix,
    sampling_grid,
    warp,
)
from invppl.transforms.align import (
    FrameTemplates,
    PosePrior,
    align_poses,
    align_to_own,
    fit_templates,
    search_widths,
)
from invppl.transforms.blur import gaussian_blur
from invppl.transforms.colour import COLOUR_NAMES, Colour, clip_straight_through, colour_matrix
from invppl.transforms.discrete import CyclicRotation, Flip, rotate90
from invppl.transforms.family import AffineColour, TransformFamily, move, transform_family
from invppl.transforms.graph_frames import fit_graph_templates, spectral_clusters, synchronise
from invppl.transforms.interpolation import FILL_MODES, METHODS, resample
from invppl.transforms.invariant import (
    NeighbourGraph,
    invariant_distances,
    invariant_neighbours,
    vote,
)
from invppl.transforms.support import Discrete, Interval, Parameter, Periodic, Real, Support

__all__ = [
    "AFFINE_NAMES",
    "COLOUR_NAMES",
    "FILL_MODES",
    "GENERATORS",
    "METHODS",
    "Affine",
    "AffineColour",
    "AffineMap",
    "Colour",
    "CyclicRotation",
    "Discrete",
    "Flip",
    "FrameTemplates",
    "Interval",
    "NeighbourGraph",
    "Parameter",
    "Periodic",
    "PosePrior",
    "Real",
    "Support",
    "TransformFamily",
    "affine_matrix",
    "align_poses",
    "align_to_own",
    "clip_straight_through",
    "colour_matrix",
    "fit_graph_templates",
    "fit_templates",
    "gaussian_blur",
    "invariant_distances",
    "invariant_neighbours",
    "move",
    "resample",
    "rotate90",
    "sampling_grid",
    "search_widths",
    "spectral_clusters",
    "synchronise",
    "transform_family",
    "vote",
    "warp",
]
