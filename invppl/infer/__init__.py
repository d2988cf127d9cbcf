"""Fitting: one SVI loop for any NumPyro model/guide pair, bounds, checkpoints.

- :func:`fit` runs minibatch SVI with a compiled step, a progress bar,
  evaluations, NaN handling and resumable orbax checkpoints.
- :func:`fit_adversarial` trains a two-player game (a GAN, a BiGAN) with two
  optax optimisers, one compiled step, checkpoints and a NaN stop.
- :class:`GraphBatches` draws a graph's edges and non-edges for each step of a
  graph model's fit (``fit(..., extend_batch=...)``).
- :func:`fit_two_stage` fits the SGM's two stages (pose network, then p(η | x̂));
  :func:`fit_eta_prior` fits stage 2 alone (e.g. on known poses).
- :func:`iwae_bound` and :func:`elbo_per_example` bound log p(x) per example.
- :func:`save_checkpoint`, :func:`load_checkpoint` and
  :func:`latest_checkpoint` store fitting state with orbax;
  :func:`verify_checkpoint` finds a damaged one.
"""

import logging

from invppl.infer.adversarial import (
    AdversarialLoss,
    AdversarialResult,
    AdversarialState,
    fit_adversarial,
)
from invppl.infer.checkpoint import (
    checkpoint_path,
    is_complete_checkpoint,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    load_metadata,
    save_checkpoint,
    verify_checkpoint,
)
from invppl.infer.fit import ExtendBatch, FitInterrupted, FitResult, fit, minibatch_indices
from invppl.infer.graph_batches import GraphBatches
from invppl.infer.iwae import DATA_PLATE, elbo_per_example, iwae_bound, per_example_log_weight
from invppl.infer.two_stage import (
    TwoStageFit,
    fit_eta_prior,
    fit_two_stage,
    neighbour_poses,
    stage_optimizer,
)

# A library logs but never configures output: without a handler set up by the
# application, nothing is printed.
logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
    "DATA_PLATE",
    "AdversarialLoss",
    "AdversarialResult",
    "AdversarialState",
    "ExtendBatch",
    "FitInterrupted",
    "FitResult",
    "GraphBatches",
    "TwoStageFit",
    "checkpoint_path",
    "elbo_per_example",
    "fit",
    "fit_adversarial",
    "fit_eta_prior",
    "fit_two_stage",
    "is_complete_checkpoint",
    "iwae_bound",
    "latest_checkpoint",
    "list_checkpoints",
    "load_checkpoint",
    "load_metadata",
    "minibatch_indices",
    "neighbour_poses",
    "per_example_log_weight",
    "save_checkpoint",
    "stage_optimizer",
    "verify_checkpoint",
]
