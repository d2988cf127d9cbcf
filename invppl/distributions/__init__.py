"""Distributions over transformation parameters η, to drop into NumPyro models.

- :func:`eta_flow` / :class:`EtaFlow`: a conditional rational-quadratic spline
  flow over η whose coordinates live in their parameters' declared supports
  (intervals, the real line, circles with a seam-continuous density).
- :class:`ConditionalEtaFlow`: its NumPyro ``Distribution`` face, reparameterised;
  :func:`sample_eta` registers the flow's weights and samples in one call.
- :class:`DiscreteRotationMixture` and :func:`categorical_eta`: for discrete
  symmetries (multiples of 2π/n, group-element indices).
- :class:`ForestPrior` and :func:`forest_structure`: the correlated prior of
  Tang et al. (2019) over the latent codes of a forest's nodes;
  :func:`spanning_tree_edge_weights`: the uniform-spanning-tree edge weights
  that extend its objective to cyclic graphs.
- :func:`gaussian_kl_standard`, :func:`bivariate_kl`, :func:`edge_kl_term`,
  :func:`independent_edge_kl_term` and :class:`PairCorrelation`: the closed-form
  KL terms and the symmetric pair-correlation network of the Correlated VAE ELBO;
  :class:`EdgeFactor`: an edge's factor p(z_i, z_j) / (p(z_i) p(z_j)) as a NumPyro
  site, whose registered KL is that ELBO's closed-form edge term.
- :func:`pairwise_gaussian_kl`, :func:`compression_bound`,
  :func:`compression_bound_per_example` and :func:`compression_factor`: the
  compression term E_x KL[q(z|x) ‖ q(z)] of the invariant conditional VAE
  (Moyer et al., 2018), bounded over a minibatch by the mean of all pairwise
  Gaussian KLs (the B × B matrix, or its row means in O(B d)).
- RealNVP (Dinh et al. 2017) as NumPyro transforms: :class:`AffineCoupling`,
  :func:`checkerboard_mask`, :func:`channel_mask`, :func:`alternating_mask`,
  :class:`Squeeze`, :class:`FactorOut`, :class:`ActNorm`, :class:`BatchNorm`
  (:mod:`invppl.distributions.realnvp`); :class:`RealNVP`, the whole
  multi-scale flow as an NNX module returning a ``TransformedDistribution``,
  with :func:`realnvp_sample` and :func:`initialize_actnorm`
  (:mod:`invppl.distributions.realnvp_flow`).
- :func:`lie_derivative_factor`: the mean squared Lie derivative of a network
  along a family's generators as a ``numpyro.factor`` penalty (a regulariser
  towards invariance).
- :func:`image_likelihood`, :func:`likelihood_distribution`,
  :class:`ContinuousBernoulli`: observation sites p(x | x̂, η).
"""

from invppl.distributions.compression import (
    compression_bound,
    compression_bound_per_example,
    compression_factor,
    pairwise_gaussian_kl,
)
from invppl.distributions.discrete_eta import (
    DiscreteRotationMixture,
    categorical_eta,
    group_angles,
)
from invppl.distributions.edge_factor import EdgeFactor
from invppl.distributions.eta_flow import (
    ConditionalEtaFlow,
    EtaFlow,
    EtaSupport,
    eta_flow,
    register_eta_flow,
    sample_eta,
    with_fitted_flow,
)
from invppl.distributions.forest_prior import (
    Forest,
    ForestPrior,
    TauLayout,
    forest_structure,
)
from invppl.distributions.lie_penalty import lie_derivative_factor
from invppl.distributions.likelihood import (
    KINDS,
    ContinuousBernoulli,
    image_likelihood,
    likelihood_distribution,
)
from invppl.distributions.pairwise_kl import (
    PairCorrelation,
    bivariate_kl,
    edge_kl_term,
    gaussian_kl_standard,
    independent_edge_kl_term,
)
from invppl.distributions.realnvp import (
    ActNorm,
    AffineCoupling,
    BatchNorm,
    FactorOut,
    Squeeze,
    alternating_mask,
    channel_mask,
    checkerboard_mask,
    inverse_and_log_det,
)
from invppl.distributions.realnvp_flow import RealNVP, initialize_actnorm, realnvp_sample
from invppl.distributions.spanning_tree import spanning_tree_edge_weights

__all__ = [
    "KINDS",
    "ActNorm",
    "AffineCoupling",
    "BatchNorm",
    "ConditionalEtaFlow",
    "ContinuousBernoulli",
    "DiscreteRotationMixture",
    "EdgeFactor",
    "EtaFlow",
    "EtaSupport",
    "FactorOut",
    "Forest",
    "ForestPrior",
    "PairCorrelation",
    "RealNVP",
    "Squeeze",
    "TauLayout",
    "alternating_mask",
    "bivariate_kl",
    "categorical_eta",
    "channel_mask",
    "checkerboard_mask",
    "compression_bound",
    "compression_bound_per_example",
    "compression_factor",
    "edge_kl_term",
    "eta_flow",
    "forest_structure",
    "gaussian_kl_standard",
    "group_angles",
    "image_likelihood",
    "independent_edge_kl_term",
    "initialize_actnorm",
    "inverse_and_log_det",
    "lie_derivative_factor",
    "likelihood_distribution",
    "pairwise_gaussian_kl",
    "realnvp_sample",
    "register_eta_flow",
    "sample_eta",
    "spanning_tree_edge_weights",
    "with_fitted_flow",
]
