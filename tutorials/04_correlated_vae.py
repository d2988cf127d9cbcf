# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 04 · Correlated VAEs: codes that follow a graph
#
# A VAE treats its data points as independent. When we know that some of them
# are related (linked pages, a family tree, frames of one video), the
# Correlated VAE of Tang et al. (ICML 2019) puts that graph G = (V, E) into the
# prior over the codes:
#
# $$p(Z) = \prod_i p(z_i) \prod_{(i,j)\in E} \frac{p(z_i, z_j)}{p(z_i)\,p(z_j)},$$
#
# with p(z_i) = N(0, I) and, per latent dimension, p(z_i, z_j) a bivariate
# normal of correlation τ. On a tree (a forest) this is an exact Gaussian, with
# correlation τ^k between nodes k edges apart; a graph with cycles is handled as
# the average over its spanning trees, which weights each edge by its
# probability of lying in a uniform spanning tree.
#
# Two guides: **CVAE_ind** (q(z_i | x_i) independent per node) and
# **CVAE_corr**, whose pairwise q(z_i, z_j | x_i, x_j) has a correlation from a
# symmetric network g(x_i, x_j) = g(x_j, x_i). We fit both, and a plain VAE, on
# synthetic tree data, and score them on links held out of training.
#
# Set `INVPPL_SMALL=1` to run it in its small-size mode (`make tutorials` does,
# and the documentation shows that run).

# %% [markdown]
# > **Small mode.** With `INVPPL_SMALL=1` the tree has 300 nodes and each
# > model is fitted for 400 steps: enough to show every step, too little to
# > compare the methods (the scores below then mostly reflect noise). The
# > benchmark `benchmarks/cvae_tree.py` (1000 nodes, 3000 steps, 3 seeds; table in
# > [Correlated VAEs](../../correlated_vae.md)) is the comparison.

# %% tags=["remove-stderr"]
import os
import time

import jax
import numpy as np
import optax
import pandas as pd
from numpyro.infer import TraceMeanField_ELBO

from invppl.datasets import make_tree_data
from invppl.distributions import ForestPrior, spanning_tree_edge_weights
from invppl.infer import GraphBatches, fit
from invppl.metrics import (
    expected_distance_rows,
    link_prediction_ncrr,
    spectral_clustering_accuracy,
)
from invppl.models import correlation_rows, encode_codes, make_correlated_vae

SMALL = os.environ.get("INVPPL_SMALL") == "1"
SEED = 0
NODES, STEPS = (300, 400) if SMALL else (1000, 3000)
TAU, LATENT, OBSERVED = 0.8, 4, 32
pd.set_option("display.precision", 4)
started = time.perf_counter()

# %% [markdown]
# ## The prior on a small tree
#
# `ForestPrior` is a NumPyro distribution over the codes of *all* nodes at once,
# event shape `(num_nodes, latent_dim)`, with an exact `log_prob` (linear in the
# number of edges) and exact, reparameterised sampling. On the path 0 – 1 – 2 – 3
# the correlation of nodes k edges apart should be τ^k:

# %%
path = [[0, 1], [1, 2], [2, 3]]
prior = ForestPrior(path, 4, tau=TAU, latent_dim=1)
draws = np.asarray(prior.sample(jax.random.key(SEED), (20_000,)))[..., 0]  # (draws, nodes)
pd.DataFrame(
    {
        "empirical correlation": [np.corrcoef(draws[:, 0], draws[:, k])[0, 1] for k in (1, 2, 3)],
        "tau ** k": [TAU**k for k in (1, 2, 3)],
    },
    index=pd.Index([1, 2, 3], name="k edges apart"),
)

# %% [markdown]
# ## Synthetic tree data
#
# `make_tree_data` grows a random recursive tree, draws codes along it
# (z_i = τ z_parent + √(1 − τ²) ε) and observes each node through a fixed random
# MLP as 32 binary values. We hold out 15% of the edges: the models see the
# rest (a forest), and must rank each held-out neighbour above the other nodes.

# %%
shape = {"latent_dim": LATENT, "observed_dim": OBSERVED}
data = make_tree_data(NODES, seed=SEED, tau=TAU, **shape)
order = np.random.default_rng(SEED).permutation(len(data.edges))
num_test = round(0.15 * len(data.edges))
test_edges, train_edges = data.edges[order[:num_test]], data.edges[order[num_test:]]
print(f"{NODES} nodes, {len(train_edges)} training edges, {len(test_edges)} held out")
print("x:", data.x.shape, "true codes:", data.z.shape)


# %% [markdown]
# ## Fitting
#
# Each model is an ordinary NumPyro model/guide pair fitted by
# `invppl.infer.fit`. A step sees B nodes (the usual minibatch) and, drawn by
# `GraphBatches` through `fit`'s `extend_batch` hook, B training edges and (for
# CVAE_corr) B random non-edges, weighted so that the step's objective is an
# unbiased estimate of the whole graph's ELBO. Every edge contributes an
# `EdgeFactor` site over the pair (z_i, z_j); with `TraceMeanField_ELBO` its
# KL term is exact:
#
# $$\mathrm{KL}(q_{ij} \| p_{ij}) - \mathrm{KL}(q_i \| p_0) - \mathrm{KL}(q_j \| p_0).$$
#
# The non-edges teach CVAE_corr's network to predict *no* correlation for
# unrelated pairs: their term is the guide's mutual information KL(q_ij ‖ q_i q_j).


# %%
def fit_one(variant):
    cvae = make_correlated_vae(OBSERVED, LATENT, variant=variant, seed=SEED, tau=TAU, hidden=(64,))
    batches = None
    if variant != "vae":
        non_edges = 128 if variant == "corr" else 0
        batches = GraphBatches(train_edges, NODES, edges_per_step=128, non_edges_per_step=non_edges)
    result = fit(
        cvae.model,
        cvae.guide,
        {"x": data.x},
        seed=SEED,
        num_steps=STEPS,
        batch_size=128,
        optimizer=optax.adam(3e-3),
        loss=TraceMeanField_ELBO(),
        extend_batch=batches,
        progress=False,
    )
    return cvae, result


variants = {"CVAE_corr": "corr", "CVAE_ind": "ind", "VAE": "vae"}
fits = {name: fit_one(variant) for name, variant in variants.items()}
for name, (_, result) in fits.items():
    print(f"{name:>10}: -ELBO per node, last 100 steps: {result.losses[-100:].mean():.2f}")

# %% [markdown]
# ## Held-out links and clusters
#
# Candidates are ranked by the guide's expected squared distance
# E‖z_i − z_j‖² = ‖μ_i − μ_j‖² + Σ(σ_i² + σ_j² − 2ρ σ_i σ_j), with CVAE_corr's
# learned ρ; NCRR is 1 for a perfect ranking, and the exact score of a random
# ranking is shown beside it. Spectral clustering of the means is scored
# against the data's two classes (the sign of the true codes' first principal
# component).

# %%
rows = {}
for name, (cvae, result) in fits.items():
    loc, scale = encode_codes(cvae, result.params, data.x)
    distances = expected_distance_rows(loc, scale, correlation_rows(cvae, result.params, data.x))
    ncrr = link_prediction_ncrr(distances, train_edges, test_edges, NODES)
    rows[name] = {
        "held-out NCRR": ncrr.score,
        "random ranking": ncrr.random_baseline,
        "cluster accuracy": spectral_clustering_accuracy(np.asarray(loc), data.labels, seed=SEED),
    }
pd.DataFrame(rows).T

# %% [markdown]
# ## What CVAE_corr's network learned
#
# The pair network is trained to give training edges the correlation that the
# edge term prefers and non-edges none. That preferred correlation is small
# when each node's own posterior is narrow: per dimension the edge term is
# minimised over ρ where ρ / (1 − ρ²) = τ σ_i σ_j / (1 − τ²), so with σ ≈ 0.3
# and τ = 0.8 it is about 0.2. Held-out edges get more correlation than random
# pairs when the network generalises:

# %%
cvae, result = fits["CVAE_corr"]
rows_of = correlation_rows(cvae, result.params, data.x)
rng = np.random.default_rng(SEED)
random_pairs = rng.integers(0, NODES, (500, 2))
random_pairs = random_pairs[random_pairs[:, 0] != random_pairs[:, 1]]


def mean_correlation(pairs):
    return float(np.mean([np.asarray(rows_of(np.array([i])))[0, j].mean() for i, j in pairs[:200]]))


_, scale = encode_codes(cvae, result.params, data.x)
print(f"mean posterior sd: {float(scale.mean()):.2f}")
pd.Series(
    {
        "training edges": mean_correlation(train_edges),
        "held-out edges": mean_correlation(test_edges),
        "random pairs": mean_correlation(random_pairs),
    },
    name="mean learned correlation",
)

# %% [markdown]
# ## Graphs with cycles
#
# On a graph with cycles each edge term is weighted by the edge's probability of
# lying in a uniform spanning tree (its effective resistance; bridges get 1).
# `GraphBatches` computes these weights by default; here a triangle with a tail:

# %%
triangle_with_tail = [[0, 1], [1, 2], [2, 0], [2, 3]]
weights = spanning_tree_edge_weights(triangle_with_tail, num_nodes=4)
print(dict(zip(map(tuple, triangle_with_tail), weights.round(3), strict=True)))
print("sum:", weights.sum(), "= nodes - components = 3")

# %% [markdown]
# ## Where next
#
# - `benchmarks/cvae_tree.py`: the three methods over several seeds;
#   `benchmarks/forest_prior_scaling.py`: time and memory per edge of the prior's
#   `log_prob`, sampling and the edge terms from 10³ to 10⁶ edges.
# - The prior is an ordinary NumPyro distribution, so any model family can use
#   it as p(z): [Correlated VAEs](../../correlated_vae.md) shows an SGM whose
#   prototypes are correlated along a graph.

# %%
print(f"the whole notebook ran in {time.perf_counter() - started:.0f} s")
