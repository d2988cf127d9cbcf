"""Flax NNX networks for decoders and guides (registered with NumPyro by the models).

The package re-exports :mod:`invppl.nn.networks`' public names, listed once in
its ``__all__``.
"""

from invppl.nn import networks
from invppl.nn.networks import *  # noqa: F403

__all__ = networks.__all__
