"""Synthetic tree-correlated data, after Tang et al. (2019), "Correlated Variational Auto-Encoders".

The generative process, for ``n`` nodes:

1. a random recursive tree: node 0 is the root and node i > 0 attaches to a
   parent drawn uniformly from the nodes 0, ..., i − 1;
2. latents along the tree, z_0 ~ N(0, I_d) and
   z_i = τ z_parent(i) + √(1 − τ²) ε_i with ε_i ~ N(0, I_d), so every z_i is
   N(0, I_d) and each coordinate of a parent–child pair has correlation τ
   (τ^k for nodes k edges apart);
3. observations x_i ~ Bernoulli(sigmoid(MLP(z_i))) with a random MLP
   d → hidden (tanh) → D, drawn once from the seed and then fixed.

Labels split the first principal component of z at its median.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from invppl.datasets._checks import check_finite_scalar, check_int, check_seed

__all__ = ["TreeData", "make_tree_data"]


@dataclass(frozen=True)
class TreeData:
    """Tree-correlated latents and binary observations.

    Attributes
    ----------
    edges
        Shape ``(n - 1, 2)``, int64 (parent, child) pairs, child = 1, ..., n − 1.
    parents
        Shape ``(n,)``, int64 parent of each node; ``parents[0] == -1`` (root).
    z
        Shape ``(n, latent_dim)``, float32 latents.
    x
        Shape ``(n, observed_dim)``, float32 observations in {0, 1}.
    probabilities
        Shape ``(n, observed_dim)``, float32 Bernoulli means sigmoid(MLP(z)).
    labels
        Shape ``(n,)``, int32: 1 where the first principal component of z is
        above its median, else 0 (sign fixed so the component's largest
        loading is positive).
    tau
        The parent–child correlation τ.
    decoder
        The fixed MLP: ``w1`` ``(latent_dim, hidden)``, ``b1`` ``(hidden,)``,
        ``w2`` ``(hidden, observed_dim)``, ``b2`` ``(observed_dim,)``, float64.
    """

    edges: np.ndarray
    parents: np.ndarray
    z: np.ndarray
    x: np.ndarray
    probabilities: np.ndarray
    labels: np.ndarray
    tau: float
    decoder: Mapping[str, np.ndarray]


def _depths(parents: np.ndarray) -> np.ndarray:
    depth = np.zeros(parents.shape[0], dtype=np.int64)
    for child in range(1, parents.shape[0]):  # parents come first, so one pass suffices
        depth[child] = depth[parents[child]] + 1
    return depth


def _random_recursive_tree(n: int, rng: np.random.Generator) -> np.ndarray:
    """``(n,)`` int64 parents: node 0 is the root (-1), node i > 0 picks one of 0..i-1 uniformly."""
    parents = np.full(n, -1, dtype=np.int64)
    if n > 1:
        children = np.arange(1, n)
        parents[1:] = np.floor(rng.random(n - 1) * children).astype(np.int64)
    return parents


def _tree_latents(
    parents: np.ndarray, tau: float, latent_dim: int, rng: np.random.Generator
) -> np.ndarray:
    """``(n, latent_dim)`` float64, z_0 = ε_0 and z_i = τ z_parent(i) + √(1 − τ²) ε_i by level."""
    noise = rng.standard_normal((parents.shape[0], latent_dim))
    z = noise.copy()
    depth = _depths(parents)
    keep = math.sqrt(1.0 - tau * tau)
    for level in range(1, int(depth.max()) + 1):
        nodes = np.flatnonzero(depth == level)
        z[nodes] = tau * z[parents[nodes]] + keep * noise[nodes]
    return z


def _random_decoder(
    latent_dim: int, hidden: int, observed_dim: int, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """The fixed MLP's float64 weights ``w1``, ``b1``, ``w2``, ``b2`` (see :class:`TreeData`)."""
    return {
        "w1": rng.normal(0.0, 1.0 / math.sqrt(latent_dim), (latent_dim, hidden)),
        "b1": rng.normal(0.0, 0.1, hidden),
        "w2": rng.normal(0.0, 3.0 / math.sqrt(hidden), (hidden, observed_dim)),
        "b2": rng.normal(0.0, 0.1, observed_dim),
    }


def _principal_component_labels(z: np.ndarray) -> np.ndarray:
    """``(n,)`` int32: 1 where z's first principal component is above its median (0 if n = 1).

    The component's sign is fixed so that its largest loading is positive.
    """
    n = z.shape[0]
    labels = np.zeros(n, dtype=np.int32)
    if n > 1:
        centred = z - z.mean(axis=0)
        _, _, vt = np.linalg.svd(centred, full_matrices=False)
        direction = vt[0] * np.sign(vt[0][np.argmax(np.abs(vt[0]))])
        component = centred @ direction
        labels = (component > np.median(component)).astype(np.int32)
    return labels


def make_tree_data(
    n: int,
    *,
    seed: int,
    tau: float = 0.8,
    latent_dim: int = 4,
    observed_dim: int = 32,
    hidden: int = 64,
) -> TreeData:
    """Draws a random recursive tree with correlated latents and binary observations.

    Parameters
    ----------
    n
        Number of nodes, at least 1.
    seed
        Seed for everything; the tree, the latents, the MLP and the Bernoulli
        draws come from independent streams spawned from it, so e.g. the MLP
        does not change with ``n``.
    tau
        Parent–child correlation, −1 < τ < 1.
    latent_dim
        Dimension d of each z_i, at least 1.
    observed_dim
        Dimension D of each x_i, at least 1.
    hidden
        Width of the MLP's tanh layer, at least 1.

    Returns
    -------
    TreeData
        ``edges``, ``parents``, ``z``, ``x``, ``probabilities``, ``labels``,
        ``tau`` and the ``decoder`` weights.

    Raises
    ------
    ValueError
        If ``n < 1``, ``|tau| ≥ 1`` or a dimension is below 1.

    >>> data = make_tree_data(10, seed=0, tau=0.5)
    >>> data.edges.shape, data.z.shape, data.x.shape
    ((9, 2), (10, 4), (10, 32))
    """
    n = check_int(n, "n", minimum=1)
    seed = check_seed(seed)
    tau = check_finite_scalar(tau, "tau")
    if not abs(tau) < 1.0:
        raise ValueError(f"tau must satisfy |tau| < 1 (a correlation), got {tau}")
    latent_dim = check_int(latent_dim, "latent_dim", minimum=1)
    observed_dim = check_int(observed_dim, "observed_dim", minimum=1)
    hidden = check_int(hidden, "hidden", minimum=1)

    tree_rng, latent_rng, mlp_rng, bernoulli_rng = (
        np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(4)
    )
    parents = _random_recursive_tree(n, tree_rng)
    edges = np.stack([parents[1:], np.arange(1, n)], axis=1).astype(np.int64)
    z = _tree_latents(parents, tau, latent_dim, latent_rng)
    decoder = _random_decoder(latent_dim, hidden, observed_dim, mlp_rng)
    logits = np.tanh(z @ decoder["w1"] + decoder["b1"]) @ decoder["w2"] + decoder["b2"]
    probabilities = 1.0 / (1.0 + np.exp(-logits))
    x = (bernoulli_rng.random((n, observed_dim)) < probabilities).astype(np.float32)
    return TreeData(
        edges=edges,
        parents=parents,
        z=z.astype(np.float32),
        x=x,
        probabilities=probabilities.astype(np.float32),
        labels=_principal_component_labels(z),
        tau=tau,
        decoder=decoder,
    )
