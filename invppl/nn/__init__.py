"""Flax NNX networks for decoders and guides (registered with NumPyro by the models)."""

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
    "GaussianEncoder",
    "GaussianHead",
    "MLPGaussianEncoder",
    "PoseNetwork",
    "with_fitted_params",
]
