"""Invariant distances, synchronisation, spectral clusters and graph frame templates."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from invppl.transforms import Affine, PosePrior, align_poses, gaussian_blur
from invppl.transforms.graph_frames import fit_graph_templates, spectral_clusters, synchronise
from invppl.transforms.invariant import (
    NeighbourGraph,
    invariant_distances,
    invariant_neighbours,
    vote,
)
from tests.transforms.shapes import ROTATION, SIZE, spread, turned


def _wrap(values: np.ndarray) -> np.ndarray:
    return np.angle(np.exp(1j * values))


# ---------------------------------------------------------------------------
# invariant distances and neighbours


def test_invariant_distances_are_the_brute_force_minimum() -> None:
    """Against a plain loop over the same grid of rotations."""
    rng = np.random.default_rng(0)
    a = jnp.asarray(rng.uniform(size=(3, 8, 8, 1)), jnp.float32)
    b = jnp.asarray(rng.uniform(size=(4, 8, 8, 1)), jnp.float32)
    distance, shift = invariant_distances(ROTATION, a, b, num_grid=12)
    grid = np.arange(12) * (2 * math.pi / 12)
    grid = np.where(grid >= math.pi, grid - 2 * math.pi, grid)
    for i in range(3):
        moved = np.asarray(
            ROTATION.apply(jnp.repeat(a[i : i + 1], 12, 0), jnp.asarray(grid)[:, None])
        )
        for j in range(4):
            costs = [float(np.square(m - np.asarray(b[j])).sum()) for m in moved]
            assert distance[i, j] == pytest.approx(min(costs), rel=1e-4, abs=1e-4)
            assert float(shift[i, j]) == pytest.approx(grid[int(np.argmin(costs))], abs=1e-6)


def test_neighbours_are_the_nearest_others_and_their_shifts_the_rotation() -> None:
    angles = np.array([0.0, 1.0, 2.0, -1.5, -2.5, 0.5])
    images = gaussian_blur(
        jnp.concatenate([turned("L", angles), turned("T", angles)]), 1.0, radius=3
    )
    graph = invariant_neighbours(ROTATION, images, count=3, num_grid=96, batch=4)
    assert graph.index.shape == graph.distance.shape == graph.shift.shape == (12, 3)
    assert not np.any(graph.index == np.arange(12)[:, None])  # never itself
    assert np.all(np.diff(graph.distance, axis=1) >= 0)
    same = (graph.index < 6) == (np.arange(12)[:, None] < 6)
    assert same.all()  # an L's nearest are Ls, a T's are Ts
    truth = np.concatenate([angles, angles])
    error = _wrap(graph.shift - (truth[graph.index] - truth[:, None]))
    assert np.abs(error).max() < 2 * math.pi / 96, error


def test_vote_takes_the_most_common_label_of_the_nearest() -> None:
    distances = jnp.array([[0.1, 0.2, 0.3, 5.0, 6.0], [9.0, 0.5, 8.0, 0.1, 0.2]])
    labels = jnp.array([2, 2, 0, 1, 1])
    assert vote(distances, labels, 3, 3).tolist() == [2, 1]
    assert vote(distances, labels, 3, 1).tolist() == [2, 1]


# ---------------------------------------------------------------------------
# synchronisation and clusters


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**16), n=st.integers(5, 40), period=st.sampled_from([2 * math.pi, 1.0]))
def test_synchronise_recovers_frames_up_to_one_offset(seed: int, n: int, period: float) -> None:
    rng = np.random.default_rng(seed)
    theta = rng.uniform(0, period, n)
    index = np.stack([rng.permutation(np.delete(np.arange(n), i))[:4] for i in range(n)])
    index[:, 0] = (np.arange(n) + 1) % n  # a ring: one connected graph
    shift = theta[index] - theta[:, None]
    graph = NeighbourGraph(index, np.ones(index.shape), shift)
    found = synchronise(graph, period)
    turn = 2 * math.pi / period
    offset = _wrap(turn * (found - theta))
    assert spread(offset) < 1e-4


def test_synchronise_outvotes_wrong_edges() -> None:
    """A fifth of the edges say something random: the frames still agree with the truth.

    Each frame is a circular mean of ~20 votes, 4 of them random: an error of
    about 2/16 rad by the votes' resultant, nowhere near the random edges' own.
    """
    rng = np.random.default_rng(1)
    n, k = 200, 10
    theta = rng.uniform(-math.pi, math.pi, n)
    index = np.stack([rng.permutation(np.delete(np.arange(n), i))[:k] for i in range(n)])
    shift = theta[index] - theta[:, None] + rng.normal(0, 0.05, (n, k))
    wrong = rng.uniform(size=(n, k)) < 0.2
    shift[wrong] = rng.uniform(-math.pi, math.pi, wrong.sum())
    found = synchronise(NeighbourGraph(index, np.ones((n, k)), shift), 2 * math.pi)
    error = np.abs(_wrap(found - theta - np.angle(np.mean(np.exp(1j * (found - theta))))))
    assert np.median(error) < 0.1, np.median(error)
    assert np.mean(error > 0.3) < 0.02, np.sort(error)[-10:]


def test_spectral_clusters_split_two_groups() -> None:
    rng = np.random.default_rng(2)
    n, k = 60, 5
    group = np.arange(n) // 30
    index = np.stack(
        [
            rng.choice(np.flatnonzero((group == group[i]) & (np.arange(n) != i)), k, False)
            for i in range(n)
        ]
    )
    index[0, 0], index[30, 0] = 31, 1  # one weak bridge between the groups
    distance = np.sort(rng.uniform(0.5, 1.0, (n, k)), axis=1)
    labels = spectral_clusters(NeighbourGraph(index, distance, np.zeros((n, k))), 2, seed=0)
    assert len(set(labels[:30])) == 1
    assert len(set(labels[30:])) == 1
    assert labels[0] != labels[30]


# ---------------------------------------------------------------------------
# pose priors in the search


def test_pose_prior_is_looked_up_on_its_grid() -> None:
    table = jnp.log(jnp.arange(1.0, 5.0))[None]  # 4 bins on [-π, π)
    prior = PosePrior(table, jnp.ones(1), -math.pi, 2 * math.pi)
    poses = jnp.array([[-3.0], [-0.1], [0.1], [3.0], [3.0 + 2 * math.pi]])
    expected = -np.log([1.0, 2.0, 3.0, 4.0, 4.0])
    np.testing.assert_allclose(np.asarray(prior.penalty(poses))[:, 0], expected, rtol=1e-6)


def test_a_pose_prior_breaks_the_tie_of_a_symmetric_shape() -> None:
    """A bar looks the same half a turn round: the prior picks the frame near its mode."""
    bar = np.zeros((1, SIZE, SIZE, 1), np.float32)
    bar[0, 3:13, 7:9] = 1.0
    image = ROTATION.apply(jnp.asarray(bar), jnp.array([[2.9]]))
    template = gaussian_blur(jnp.asarray(bar), 1.0, radius=3)
    grid = -math.pi + 2 * math.pi * (np.arange(180) + 0.5) / 180
    search = jax.jit(
        lambda prior: align_poses(
            ROTATION, image, jnp.zeros((1, 1)), template, half_widths=(math.pi,), prior=prior
        )[0]
    )
    for mode in (2.9, 2.9 - math.pi):
        density = np.exp(8.0 * (np.cos(grid - mode) - 1))
        prior = PosePrior(
            jnp.log(jnp.asarray(density / density.sum()))[None], jnp.ones(1), -math.pi, 2 * math.pi
        )
        poses = search(prior)
        assert abs(_wrap(float(poses[0, 0]) - mode)) < 0.1


# ---------------------------------------------------------------------------
# fit_graph_templates


def test_graph_templates_put_each_shape_in_one_frame() -> None:
    """No starting poses at all: the frames of each shape agree and new images follow them."""
    rng = np.random.default_rng(3)
    angles = {kind: rng.uniform(-math.pi, math.pi, 20) for kind in ("L", "T")}
    images = jnp.concatenate([turned(kind, angles[kind]) for kind in ("L", "T")])
    truth = np.concatenate([angles["L"], angles["T"]])
    frames = fit_graph_templates(ROTATION, images, count=2, seed=0, neighbours=4, rounds=2)
    assert frames.templates.shape == (2, SIZE, SIZE, 1)
    assert sorted(frames.sizes.tolist()) == [20, 20]
    new_angles = rng.uniform(-math.pi, math.pi, 6)
    new = jnp.concatenate([turned("L", new_angles), turned("T", new_angles)])
    every = jnp.concatenate([images, new])
    poses = np.asarray(jax.jit(lambda x: frames.align(ROTATION, x, jnp.zeros((32 + 20, 1))))(every))
    labels = np.asarray(frames.assign(ROTATION, every, jnp.zeros((52, 1))))
    truth = np.concatenate([truth, new_angles, new_angles])
    for part in (np.r_[0:20, 40:46], np.r_[20:40, 46:52]):
        assert len(set(labels[part])) == 1
        assert spread(poses[part, 0] - truth[part]) < 0.03, spread(poses[part, 0] - truth[part])


def test_graph_templates_reject_bad_input_before_work() -> None:
    images = turned("L", np.linspace(-3, 3, 8))
    with pytest.raises(ValueError, match="one periodic parameter"):
        fit_graph_templates(Affine(("tx", "ty")), images, count=2, seed=0)
    with pytest.raises(ValueError, match="one periodic parameter"):
        fit_graph_templates(Affine(("rotation", "tx")), images, count=2, seed=0)
    with pytest.raises(ValueError, match="need more than count=2 and neighbours=10 images"):
        fit_graph_templates(ROTATION, images, count=2, seed=0)
    with pytest.raises(ValueError, match="must be finite"):
        fit_graph_templates(
            ROTATION, images.at[0, 0, 0, 0].set(jnp.nan), count=2, seed=0, neighbours=3
        )
    with pytest.raises(ValueError, match="blur must be a positive width"):
        fit_graph_templates(ROTATION, images, count=2, seed=0, neighbours=3, blur=0.0)
    with pytest.raises(ValueError, match="count must be at least 1"):
        fit_graph_templates(ROTATION, images, count=0, seed=0, neighbours=3)
