"""Group pooling and group convolutions: exact invariance and equivariance, group tables, errors.

Quarter turns and flips of square images are pixel permutations, so the
checks hold to float rounding (atol 1e-5 on O(1) values).
"""

import itertools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from hypothesis import given, settings
from hypothesis import strategies as st
from jax import Array

from invppl.nn import (
    ConvEncoder,
    FiniteGroup,
    GroupCNN,
    GroupConv,
    GroupPooled,
    LiftingConv,
    PixelGroup,
    finite_group,
    group_pool,
)
from invppl.transforms import Affine, Colour, CyclicRotation, Flip, rotate90

SHAPE = (8, 8, 2)
GROUPS = {
    "C4": finite_group(CyclicRotation(4)),
    "C2": finite_group(CyclicRotation(2)),
    "D4": finite_group(CyclicRotation(4), Flip()),
    "Klein": finite_group(Flip("horizontal"), Flip("vertical")),
}
seeds = st.integers(0, 2**31 - 1)


def random_images(seed: int, batch: int = 3, shape: tuple[int, ...] = SHAPE) -> Array:
    return jax.random.uniform(jax.random.key(seed), (batch, *shape))


@pytest.fixture(scope="module")
def body() -> ConvEncoder:
    return ConvEncoder(SHAPE, 3, rngs=nnx.Rngs(1), channels=(4,), hidden=8)


@pytest.fixture(scope="module")
def pooled(body: ConvEncoder) -> dict[str, Callable[[Array], tuple[Array, Array]]]:
    """Per group, a jitted x ↦ (mean-pooled, max-pooled) body outputs."""

    def make(group: FiniteGroup) -> Callable[[Array], tuple[Array, Array]]:
        return jax.jit(lambda x: (group_pool(body, x, group), group_pool(body, x, group, "max")))

    return {name: make(group) for name, group in GROUPS.items()}


@pytest.mark.parametrize("name", sorted(GROUPS))
def test_group_pooled_network_is_invariant(name: str, body: ConvEncoder, pooled: dict) -> None:
    group = GROUPS[name]
    assert group.order == {"C4": 4, "C2": 2, "D4": 8, "Klein": 4}[name]

    @settings(max_examples=6)
    @given(seed=seeds)
    def check(seed: int) -> None:
        images = random_images(seed)
        mean, top = pooled[name](images)
        for element in group.elements:
            moved_mean, moved_top = pooled[name](group.apply(images, element))
            np.testing.assert_allclose(moved_mean, mean, atol=1e-5)
            np.testing.assert_allclose(moved_top, top, atol=1e-5)

    check()
    images = random_images(0)  # the body alone is not invariant: the pooling does it
    changes = [jnp.abs(body(group.apply(images, e)) - body(images)).max() for e in group.elements]
    assert max(float(change) for change in changes) > 1e-3


def test_group_pooled_module_with_head_is_invariant(body: ConvEncoder) -> None:
    head = nnx.Linear(3, 2, rngs=nnx.Rngs(2))
    net = GroupPooled(body, [CyclicRotation(4), Flip()], head=head, pool="max")
    images = random_images(3)
    poses = [
        rotate90(jnp.flip(images, axis=2) if flip else images, turns)
        for turns, flip in itertools.product(range(4), (False, True))
    ]
    outputs = jax.jit(lambda x: net(x))(jnp.concatenate(poses)).reshape(8, 3, 2)
    for moved in outputs:
        np.testing.assert_allclose(moved, outputs[0], atol=1e-5)
    mean_net = GroupPooled(body, CyclicRotation(4))  # no head: the group average
    expected = jnp.mean(jnp.stack([body(rotate90(images, k)) for k in range(4)]), axis=0)
    np.testing.assert_allclose(mean_net(images), expected, atol=1e-6)


def test_finite_group_elements_and_errors() -> None:
    d4 = GROUPS["D4"]
    assert d4.elements[:3] == ((0, 0), (0, 1), (1, 0))
    assert finite_group(d4, Flip("vertical")).order == 16  # D4 twice over, still a cover
    images = random_images(4)
    np.testing.assert_array_equal(d4.apply(images, (3, 1)), jnp.flip(rotate90(images, 3), 2))
    c3 = finite_group(CyclicRotation(3))  # resampled, not exact; still pooled
    assert group_pool(lambda x: x.sum((1, 2, 3)), images, c3).shape == (3,)
    with pytest.raises(ValueError, match=r"Affine with parameters \['rotation'\] is a continuous"):
        finite_group(Affine(("rotation",)))
    with pytest.raises(ValueError, match="continuous family"):
        group_pool(lambda x: x, images, Colour(("hue",)))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least one family"):
        finite_group()
    with pytest.raises(TypeError, match="expected CyclicRotation or Flip families, got str"):
        finite_group("C4")  # type: ignore[arg-type]
    with pytest.raises(
        ValueError, match=r"unknown pool 'median'; expected one of \('mean', 'max'\)"
    ):
        GroupPooled(lambda x: x, CyclicRotation(4), pool="median")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"has 2 indices, got \(1,\)"):
        d4.apply(images, (1,))


@pytest.mark.parametrize("name", ["C4", "D4"])
def test_pixel_group_tables_form_a_group(name: str) -> None:
    group = PixelGroup(name)  # type: ignore[arg-type]
    table, n = group.cayley, group.order
    np.testing.assert_array_equal(table[0], np.arange(n))  # identity
    np.testing.assert_array_equal(table[:, 0], np.arange(n))
    for row in (*table, *table.T):  # a Latin square
        assert sorted(row) == list(range(n))
    for a, b, c in itertools.product(range(n), repeat=3):  # associative
        assert table[table[a, b], c] == table[a, table[b, c]]
    assert all(table[g, group.inverse[g]] == 0 for g in range(n))
    images = random_images(5, shape=(6, 6, 1))
    for g, h in itertools.product(range(n), repeat=2):  # the table is the images' composition
        both = group.transform_images(group.transform_images(images, h), g)
        np.testing.assert_array_equal(both, group.transform_images(images, int(table[g, h])))
    np.testing.assert_array_equal(group.transform_images(images, 1), rotate90(images, 1))
    np.testing.assert_array_equal(PixelGroup("D4").cayley[:4, :4], PixelGroup("C4").cayley)


@pytest.mark.parametrize("name", ["C4", "D4"])
def test_lifting_and_group_convolutions_are_equivariant(name: str) -> None:
    group = PixelGroup(name)  # type: ignore[arg-type]
    lift = LiftingConv(2, 3, group, rngs=nnx.Rngs(0))
    conv = GroupConv(3, 4, group, rngs=nnx.Rngs(1), kernel_size=5)
    lift_fn, conv_fn = jax.jit(lambda x: lift(x)), jax.jit(lambda f: conv(f))

    @settings(max_examples=4)
    @given(seed=seeds)
    def check(seed: int) -> None:
        images = random_images(seed, batch=2, shape=(7, 7, 2))
        features = jax.random.normal(jax.random.key(seed), (2, 7, 7, group.order, 3))
        lifted, convolved = lift_fn(images), conv_fn(features)
        assert lifted.shape == (2, 7, 7, group.order, 3)
        assert convolved.shape == (2, 7, 7, group.order, 4)
        for g in range(group.order):
            # rotating the input rotates the map and permutes its group axis
            np.testing.assert_allclose(
                lift_fn(group.transform_images(images, g)),
                group.transform_features(lifted, g),
                atol=1e-5,
            )
            np.testing.assert_allclose(
                conv_fn(group.transform_features(features, g)),
                group.transform_features(convolved, g),
                atol=1e-4,
            )

    check()
    turned = group.transform_features(lift_fn(random_images(0, 2, (7, 7, 2))), 1)
    assert float(jnp.abs(turned - lift_fn(random_images(0, 2, (7, 7, 2)))).max()) > 1e-2


@pytest.mark.parametrize("name", ["C4", "D4"])
def test_group_cnn_features_equivariant_and_logits_invariant(name: str) -> None:
    net = GroupCNN((8, 8, 1), 5, group=name, channels=(4, 6), rngs=nnx.Rngs(0))  # type: ignore[arg-type]
    group = net.group
    images = random_images(6, batch=2, shape=(8, 8, 1))
    moved = [group.transform_images(images, g) for g in range(group.order)]
    if name == "C4":  # a mirror image is not in C4: the P4 network tells it apart
        moved.append(jnp.flip(images, axis=2))
    every = jnp.concatenate(moved)  # one call for every pose
    features, logits = jax.jit(lambda x: (net.features(x), net(x)))(every)
    assert features.shape == (len(moved) * 2, 4, 4, group.order, 6)  # pooled 8 → 4
    assert logits.shape == (len(moved) * 2, 5)
    for g in range(group.order):
        rows = slice(2 * g, 2 * g + 2)
        np.testing.assert_allclose(
            features[rows], group.transform_features(features[:2], g), atol=1e-5
        )
        np.testing.assert_allclose(logits[rows], logits[:2], atol=1e-5)
    assert float(jnp.abs(logits[0] - logits[1]).max()) > 1e-4  # not constant
    if name == "C4":
        assert float(jnp.abs(logits[-2:] - logits[:2]).max()) > 1e-4
        return
    graph, state = nnx.split(net)
    loss = lambda weights: jnp.sum(nnx.merge(graph, weights)(images) ** 2)
    leaves = jax.tree.leaves(jax.jit(jax.grad(loss))(state))
    assert all(bool(jnp.all(jnp.isfinite(leaf))) for leaf in leaves)
    assert all(float(jnp.abs(leaf).max()) > 0 for leaf in leaves)


def test_group_cnn_errors() -> None:
    rngs = nnx.Rngs(0)
    with pytest.raises(ValueError, match=r"needs square images, got image_shape \(8, 6, 1\)"):
        GroupCNN((8, 6, 1), 3, rngs=rngs)
    with pytest.raises(ValueError, match="kernel_size must be odd"):
        GroupCNN((8, 8, 1), 3, rngs=rngs, kernel_size=4)
    with pytest.raises(
        ValueError, match=r"unknown pixel group 'C8'; expected one of \('C4', 'D4'\)"
    ):
        GroupCNN((8, 8, 1), 3, rngs=rngs, group="C8")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown pool 'sum'"):
        GroupCNN((8, 8, 1), 3, rngs=rngs, group_pool="sum")  # type: ignore[arg-type]
    net = GroupCNN((8, 8, 1), 3, rngs=rngs, channels=(2,))
    with pytest.raises(
        ValueError, match=r"expects images \(batch, 8, 8, 1\), got shape \(2, 9, 9, 1\)"
    ):
        net(jnp.ones((2, 9, 9, 1)))
    conv = GroupConv(3, 2, PixelGroup("D4"), rngs=rngs)
    with pytest.raises(ValueError, match=r"expects features \(batch, height, width, 8, 3\)"):
        conv(jnp.ones((1, 5, 5, 4, 3)))
    with pytest.raises(ValueError, match="expects 2 input channels"):
        LiftingConv(2, 3, PixelGroup("C4"), rngs=rngs)(jnp.ones((1, 5, 5, 3)))
