"""Complete model + guide pairs, written with invppl's blocks the way a user would.

- :mod:`invppl.models.vae`: the VAE baseline.
- :mod:`invppl.models.sgm`: the symmetry-aware generative model (Allingham et al. 2024).
"""

from invppl.models.sgm import SGM, make_sgm, sgm_guide, sgm_model
from invppl.models.vae import VAE, make_vae, vae_guide, vae_model

__all__ = ["SGM", "VAE", "make_sgm", "make_vae", "sgm_guide", "sgm_model", "vae_guide", "vae_model"]
