"""Flax NNX networks for decoders and guides (registered with NumPyro by the models).

:mod:`invppl.nn.coupling` has the coupling layers of normalising flows (a mask,
an NNX conditioner and a transformer), which the η flow is built from.
"""

from invppl.nn.coupling import (
    Coupling,
    CouplingStack,
    MLPConditioner,
    affine_transformer,
    alternating_masks,
)
from invppl.nn.networks import (
    MLP,
    ConvDecoder,
    ConvEncoder,
    GaussianEncoder,
    GaussianHead,
    MLPGaussianEncoder,
    PoseNetwork,
    with_fitted_params,
)

__all__ = [
    "MLP",
    "ConvDecoder",
    "ConvEncoder",
    "Coupling",
    "CouplingStack",
    "GaussianEncoder",
    "GaussianHead",
    "MLPConditioner",
    "MLPGaussianEncoder",
    "PoseNetwork",
    "affine_transformer",
    "alternating_masks",
    "with_fitted_params",
]
