"""Data with ground truth where known, all available offline.

Images are float32 NumPy arrays in [0, 1] with layout ``(n, height, width,
channels)``; every loader returns a frozen dataclass with documented fields.
Randomness comes from explicit seeds (``numpy.random.default_rng(seed)``).

- :func:`load_mnist`, :func:`load_digits8`: real digits (bundled, or MNIST IDX files);
  :func:`train_test_mnist` draws a training and a test set from them.
- :func:`rotated_mnist`, :func:`colour_mnist`: digits moved by known per-class laws.
- :func:`make_dsprites`: procedural squares, ellipses and hearts with known factor laws.
- :func:`make_paired_shapes`, :func:`shapes_with_fixed_factor`: pairs of those shapes sharing
  all factors but k, and groups sharing one factor (paired weak supervision, metrics).
- :func:`make_tree_data`: tree-correlated latents and observations (Tang et al. 2019).
- :func:`load_adult`, :func:`load_german`: UCI tabular data with sensitive attributes.
- :mod:`invppl.datasets.laws`: the laws (:class:`UniformLaw`, :class:`DeltaLaw`, ...).
"""

from invppl.datasets.colour_mnist import (
    DEFAULT_BASE_COLOUR,
    ColourMNIST,
    chroma_angle,
    colour_mnist,
)
from invppl.datasets.digits import Digits8, load_digits8
from invppl.datasets.dsprites import (
    BASE_RADIUS,
    DEFAULT_LAWS,
    FACTORS,
    SHAPE_AREAS,
    SHAPES,
    SYMMETRY_ORDER,
    DSprites,
    make_dsprites,
    render_sprites,
)
from invppl.datasets.laws import (
    DeltaLaw,
    Law,
    LawLike,
    MixtureLaw,
    NormalLaw,
    Sampler,
    UniformLaw,
    draw,
    laws_by_class,
    sample_by_class,
)
from invppl.datasets.mnist import MNIST, load_mnist, read_idx, train_test_mnist
from invppl.datasets.paired_shapes import (
    DEFAULT_LEVELS,
    DEFAULT_RANGES,
    PAIR_MODES,
    PairedShapes,
    ShapeFactorSpace,
    ShapeGroups,
    make_paired_shapes,
    shape_factor_space,
    shapes_with_fixed_factor,
)
from invppl.datasets.rotated_mnist import RotatedMNIST, rotate_images, rotated_mnist
from invppl.datasets.tree import TreeData, make_tree_data
from invppl.datasets.uci import (
    ChecksumError,
    DownloadError,
    TabularData,
    TabularSplit,
    default_cache_dir,
    fetch,
    load_adult,
    load_german,
    sha256_of,
)

__all__ = [
    "BASE_RADIUS",
    "DEFAULT_BASE_COLOUR",
    "DEFAULT_LAWS",
    "DEFAULT_LEVELS",
    "DEFAULT_RANGES",
    "FACTORS",
    "MNIST",
    "PAIR_MODES",
    "SHAPES",
    "SHAPE_AREAS",
    "SYMMETRY_ORDER",
    "ChecksumError",
    "ColourMNIST",
    "DSprites",
    "DeltaLaw",
    "Digits8",
    "DownloadError",
    "Law",
    "LawLike",
    "MixtureLaw",
    "NormalLaw",
    "PairedShapes",
    "RotatedMNIST",
    "Sampler",
    "ShapeFactorSpace",
    "ShapeGroups",
    "TabularData",
    "TabularSplit",
    "TreeData",
    "UniformLaw",
    "chroma_angle",
    "colour_mnist",
    "default_cache_dir",
    "draw",
    "fetch",
    "laws_by_class",
    "load_adult",
    "load_digits8",
    "load_german",
    "load_mnist",
    "make_dsprites",
    "make_paired_shapes",
    "make_tree_data",
    "read_idx",
    "render_sprites",
    "rotate_images",
    "rotated_mnist",
    "sample_by_class",
    "sha256_of",
    "shape_factor_space",
    "shapes_with_fixed_factor",
    "train_test_mnist",
]
