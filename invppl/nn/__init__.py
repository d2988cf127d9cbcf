"""Flax NNX networks for decoders and guides (registered with NumPyro by the models).

The package re-exports the public names of :mod:`invppl.nn.networks` and of
:mod:`invppl.nn.coupling` (the coupling layers of normalising flows: a mask, an
NNX conditioner and a transformer, which the η flow is built from), each listed
once in its module's ``__all__``, and of :mod:`invppl.nn.realnvp_nets` (RealNVP's
convolutional conditioners), and of :mod:`invppl.nn.group` (group-pooled
networks over finite invppl groups; C4/D4 lifting and group convolutions, the
P4/P4M classifier :class:`GroupCNN`).
"""

from invppl.nn import coupling, group, networks, realnvp_nets
from invppl.nn.coupling import *  # noqa: F403
from invppl.nn.group import *  # noqa: F403
from invppl.nn.networks import *  # noqa: F403
from invppl.nn.realnvp_nets import *  # noqa: F403

__all__ = [*networks.__all__, *coupling.__all__, *realnvp_nets.__all__, *group.__all__]
