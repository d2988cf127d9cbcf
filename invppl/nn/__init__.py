"""Flax NNX networks for decoders and guides (registered with NumPyro by the models)."""

from invppl.nn.networks import MLP, ConvDecoder, ConvEncoder, GaussianHead

__all__ = ["MLP", "ConvDecoder", "ConvEncoder", "GaussianHead"]
