"""Complete model + guide pairs, written with invppl's blocks the way a user would.

- :mod:`invppl.models.vae`: the VAE baseline.
- :mod:`invppl.models.sgm`: the symmetry-aware generative model (Allingham et al.
  2024) fitted jointly by SVI.
- :mod:`invppl.models.sgm_two_stage`: the SGM's two-stage fit (self-supervised
  pose network, then p(η | x̂) by maximum likelihood) and the
  :class:`LearnedSymmetry` it yields.
- :mod:`invppl.models.symmetry_vaes`: AugVAE and InvVAE, VAEs that use a learned symmetry.
- :mod:`invppl.models.correlated_vae`: Correlated VAEs (Tang et al. 2019), CVAE_corr,
  CVAE_ind and the VAE baseline on graph data.
- :mod:`invppl.models.invariant_vae`: the invariant conditional VAE (Moyer et al. 2018).
- :mod:`invppl.models.paired_vae`: paired weak supervision (Locatello et al. 2020):
  Ada-GVAE, Ada-ML-VAE, their true-k variants, a β-VAE on pairs, the
  latent-transformation model (a low-capacity latent map f_ψ) and circular codes.
- :mod:`invppl.models.flow_density`: RealNVP image densities on dequantised 8-bit
  pixels (logit pre-processing), the Gaussian baseline, bits per dimension.
- :mod:`invppl.models.bigan`: BiGAN (Donahue et al. 2017): generator, encoder and a
  discriminator over (x, z) pairs, with the adversarial losses.
- :mod:`invppl.models.flow_vae`: the VAE with a RealNVP prior and a conditional
  coupling-flow guide.
- :mod:`invppl.models.classifiers`: classifiers with learned invariance: Augerino
  (learned augmentation widths) and training on SGM-augmented data.
"""

from invppl.models.bigan import BiGAN, make_bigan
from invppl.models.classifiers import (
    Augerino,
    Classifier,
    augerino_model,
    averaged_log_probs,
    classifier_model,
    learned_widths,
    make_augerino,
    make_classifier,
    predict_logits,
    sgm_augmented,
    uniform_warps,
    width_reward,
)
from invppl.models.correlated_vae import (
    CorrelatedVAE,
    correlated_vae_guide,
    correlated_vae_model,
    correlation_rows,
    encode_codes,
    make_correlated_vae,
)
from invppl.models.flow_density import (
    FlowDensity,
    bits_per_dim,
    evaluate_bits_per_dim,
    fit_gaussian_baseline,
    flow_density_guide,
    flow_density_model,
    iwae_bits_per_dim,
    make_flow_density,
)
from invppl.models.flow_vae import FlowVAE, flow_vae_guide, flow_vae_model, make_flow_vae
from invppl.models.invariant_vae import (
    InvariantVAE,
    invariant_vae_guide,
    invariant_vae_model,
    make_invariant_vae,
)
from invppl.models.paired_vae import (
    LatentMapVAE,
    PairedVAE,
    latent_map_guide,
    latent_map_model,
    make_latent_map_vae,
    make_paired_vae,
    paired_vae_guide,
    paired_vae_model,
)
from invppl.models.sgm import SGM, JointSymmetry, make_sgm, sgm_guide, sgm_model
from invppl.models.sgm_two_stage import (
    FRAME_METHODS,
    LearnedSymmetry,
    TwoStageSGM,
    augmentation_bounds,
    eta_prior_model,
    make_two_stage_sgm,
    no_guide,
    pose_model,
)
from invppl.models.symmetry_vaes import AugVAE, InvVAE, make_augvae, make_invvae
from invppl.models.vae import VAE, decode, make_vae, vae_guide, vae_model

__all__ = [
    "FRAME_METHODS",
    "SGM",
    "VAE",
    "AugVAE",
    "Augerino",
    "BiGAN",
    "Classifier",
    "CorrelatedVAE",
    "FlowDensity",
    "FlowVAE",
    "InvVAE",
    "InvariantVAE",
    "JointSymmetry",
    "LatentMapVAE",
    "LearnedSymmetry",
    "PairedVAE",
    "TwoStageSGM",
    "augerino_model",
    "augmentation_bounds",
    "averaged_log_probs",
    "bits_per_dim",
    "classifier_model",
    "correlated_vae_guide",
    "correlated_vae_model",
    "correlation_rows",
    "decode",
    "encode_codes",
    "eta_prior_model",
    "evaluate_bits_per_dim",
    "fit_gaussian_baseline",
    "flow_density_guide",
    "flow_density_model",
    "flow_vae_guide",
    "flow_vae_model",
    "invariant_vae_guide",
    "invariant_vae_model",
    "iwae_bits_per_dim",
    "latent_map_guide",
    "latent_map_model",
    "learned_widths",
    "make_augerino",
    "make_augvae",
    "make_bigan",
    "make_classifier",
    "make_correlated_vae",
    "make_flow_density",
    "make_flow_vae",
    "make_invariant_vae",
    "make_invvae",
    "make_latent_map_vae",
    "make_paired_vae",
    "make_sgm",
    "make_two_stage_sgm",
    "make_vae",
    "no_guide",
    "paired_vae_guide",
    "paired_vae_model",
    "pose_model",
    "predict_logits",
    "sgm_augmented",
    "sgm_guide",
    "sgm_model",
    "uniform_warps",
    "vae_guide",
    "vae_model",
    "width_reward",
]
