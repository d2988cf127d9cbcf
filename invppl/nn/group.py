"""Invariance by weight sharing: group-pooled networks and group convolutions (C4, D4).

**Group pooling** over a finite invppl transformation group G (products of
:class:`~invppl.transforms.CyclicRotation` and :class:`~invppl.transforms.Flip`)::

    f_G(x) = pool_{g ∈ G} f(T_g x),        pool = mean or max,

is invariant, f_G(T_h x) = f_G(x), whenever T_h permutes the set {T_g}: exactly
(to float rounding) for quarter turns and flips of square images, which are
pixel permutations. With a head after the pooling, head(pool_g body(T_g x)) is
invariant too. Rotations by other angles resample, so C_n with n ∤ 4 is
only approximately invariant.

**Group convolutions** on the pixel grid for C4 (quarter turns) and D4 (quarter
turns and mirror images; Cohen & Welling 2016, P4 and P4M). A feature map
F(h, u) has a value per group element h and pixel u, stored as
``(batch, height, width, group, channels)``; a group element g acts on it by
(g · F)(h, u) = F(g⁻¹h, g⁻¹u). The lifting convolution correlates the image
with every transformed filter, and the group convolution with filters moved
the same way::

    [x ⋆ ψ](g, u) = Σ_v x(v) ψ(g⁻¹(v − u)),
    [F ⋆ ψ](g, u) = Σ_h Σ_v F(h, v) ψ(g⁻¹h, g⁻¹(v − u)),

so both are equivariant: (g · x) ⋆ ψ = g · (x ⋆ ψ). Filters turned by
``jnp.rot90`` and "same" padding with odd kernels make this exact on square
images; 2 × 2 average pooling of even-sized maps keeps it. Averaging over the
pixels and pooling over the group at the end gives an invariant classifier
(:class:`GroupCNN`).
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax import Array

from invppl.transforms.discrete import CyclicRotation, Flip
from invppl.transforms.interpolation import check_images

__all__ = [
    "PIXEL_GROUPS",
    "POOLS",
    "FiniteGroup",
    "GroupCNN",
    "GroupConv",
    "GroupPooled",
    "LiftingConv",
    "PixelGroup",
    "finite_group",
    "group_pool",
]

Pool = Literal["mean", "max"]
POOLS: tuple[str, ...] = ("mean", "max")
PIXEL_GROUPS: tuple[str, ...] = ("C4", "D4")
GroupFactor = CyclicRotation | Flip


def _check_pool(pool: str) -> None:
    if pool not in POOLS:
        raise ValueError(f"unknown pool {pool!r}; expected one of {POOLS}")


def _pool(values: Array, pool: str, axis: int) -> Array:
    return jnp.mean(values, axis=axis) if pool == "mean" else jnp.max(values, axis=axis)


# ---------------------------------------------------------------------------
# finite groups of invppl transformations and pooling over them


@dataclass(frozen=True)
class FiniteGroup:
    """The transformations T_g = T_{g_m} ∘ … ∘ T_{g_1}, one element g_i of each factor.

    Build it with :func:`finite_group`. The elements are all index tuples
    ``(g_1, ..., g_m)``, the first factor applied first; ``CyclicRotation(4)``
    and ``Flip()`` together give the dihedral group D4 (8 elements).

    Attributes:
        factors: the finite families, each with one discrete parameter.
    """

    factors: tuple[GroupFactor, ...]

    @property
    def elements(self) -> tuple[tuple[int, ...], ...]:
        """Every element as a tuple of indices, one per factor."""
        sizes = [factor.parameters[0].support.size for factor in self.factors]  # type: ignore[union-attr]
        return tuple(itertools.product(*(range(size) for size in sizes)))

    @property
    def order(self) -> int:
        """The number of elements (index tuples)."""
        return len(self.elements)

    def apply(self, images: Array, element: Sequence[int]) -> Array:
        """T_g of ``(batch, height, width, channels)`` images, for one static element g."""
        images = check_images(images)
        if len(element) != len(self.factors):
            raise ValueError(
                f"an element of this group has {len(self.factors)} indices, got {tuple(element)}"
            )
        square = images.shape[1] == images.shape[2]
        for factor, index in zip(self.factors, element, strict=True):
            if isinstance(factor, Flip):
                axis = 2 if factor.axis == "horizontal" else 1
                images = jnp.flip(images, axis=axis) if index % 2 else images
            elif square and 4 % factor.order == 0:  # exact: a pixel permutation
                images = jnp.rot90(images, (index % factor.order) * (4 // factor.order), (1, 2))
            else:
                indices = jnp.full((images.shape[0],), index, dtype=jnp.int32)
                images = factor.apply(images, indices)
        return images

    def orbit(self, images: Array) -> Array:
        """``(order, batch, height, width, channels)``: T_g x for every element g."""
        return jnp.stack([self.apply(images, element) for element in self.elements])


def finite_group(*families: GroupFactor | FiniteGroup) -> FiniteGroup:
    """The finite group generated as products of discrete invppl families.

    Args:
        families: :class:`~invppl.transforms.CyclicRotation` and
            :class:`~invppl.transforms.Flip` instances (or a :class:`FiniteGroup`,
            whose factors are taken), applied in the order given.

    Raises:
        ValueError: no family, or a continuous family (e.g.
            ``Affine(("rotation",))``): pooling needs finitely many elements.
        TypeError: anything else.

    >>> from invppl.transforms import CyclicRotation, Flip
    >>> finite_group(CyclicRotation(4), Flip()).order  # the dihedral group D4
    8
    """
    factors: list[GroupFactor] = []
    for family in families:
        if isinstance(family, FiniteGroup):
            factors.extend(family.factors)
        elif isinstance(family, CyclicRotation | Flip):
            factors.append(family)
        elif hasattr(family, "parameters"):
            names = [p.name for p in family.parameters]
            raise ValueError(
                f"{type(family).__name__} with parameters {names} is a continuous family: a "
                "group-pooled network needs a finite group; use CyclicRotation(n), Flip(axis), "
                "or several of them"
            )
        else:
            raise TypeError(
                f"expected CyclicRotation or Flip families, got {type(family).__name__}"
            )
    if not factors:
        raise ValueError("finite_group needs at least one family, e.g. CyclicRotation(4)")
    return FiniteGroup(tuple(factors))


def group_pool(
    function: Callable[[Array], Array],
    images: Array,
    group: FiniteGroup | GroupFactor | Sequence[GroupFactor],
    pool: Pool = "mean",
) -> Array:
    """pool_{g ∈ G} f(T_g x): ``function`` evaluated once on the whole orbit, then pooled.

    Args:
        function: ``(batch, height, width, channels)`` → ``(batch, ...)``, row by row.
        images: ``(batch, height, width, channels)``.
        group: a :class:`FiniteGroup`, one discrete family or a sequence of them.
        pool: ``"mean"`` (the group average) or ``"max"``.

    Returns:
        ``(batch, ...)``, the shape of ``function(images)``.

    >>> import jax, jax.numpy as jnp
    >>> from invppl.transforms import CyclicRotation, rotate90
    >>> images = jax.random.uniform(jax.random.key(0), (2, 5, 5, 1))
    >>> corner = lambda im: im[:, 0, 0, 0]  # not invariant; its C4 average is
    >>> a = group_pool(corner, images, CyclicRotation(4))
    >>> b = group_pool(corner, rotate90(images, 1), CyclicRotation(4))
    >>> bool(jnp.allclose(a, b, atol=1e-6))
    True
    """
    _check_pool(pool)
    images = check_images(images)
    if not isinstance(group, FiniteGroup):
        group = finite_group(*(group if isinstance(group, Sequence) else [group]))
    orbit = group.orbit(images)
    values = function(orbit.reshape((-1, *images.shape[1:])))
    return _pool(values.reshape((group.order, images.shape[0], *values.shape[1:])), pool, 0)


class GroupPooled(nnx.Module):
    """head(pool_{g ∈ G} body(T_g x)): an invariant network from any body.

    Without a head and with ``pool="mean"`` it is the group-averaged network
    f_G(x) = mean_g f(T_g x); with a head, the body's features are pooled over
    the group first (group pooling), then read out.

    Args:
        body: ``(batch, height, width, channels)`` → ``(batch, features)``.
        group: a :class:`FiniteGroup`, one discrete family or a sequence of them.
        head: optional ``(batch, features)`` → outputs.
        pool: ``"mean"`` or ``"max"``.

    >>> import jax.numpy as jnp
    >>> from flax import nnx
    >>> from invppl.nn import ConvEncoder
    >>> from invppl.transforms import CyclicRotation, Flip
    >>> body = ConvEncoder((8, 8, 1), 4, rngs=nnx.Rngs(0), channels=(4,), hidden=8)
    >>> net = GroupPooled(body, (CyclicRotation(4), Flip()), pool="max")
    >>> net(jnp.ones((3, 8, 8, 1))).shape
    (3, 4)
    """

    def __init__(
        self,
        body: Callable[[Array], Array],
        group: FiniteGroup | GroupFactor | Sequence[GroupFactor],
        *,
        head: Callable[[Array], Array] | None = None,
        pool: Pool = "mean",
    ) -> None:
        _check_pool(pool)
        if not isinstance(group, FiniteGroup):
            group = finite_group(*(group if isinstance(group, Sequence) else [group]))
        self.body = body
        self.head = head
        self.group = group
        self.pool = pool

    def __call__(self, images: Array) -> Array:
        pooled = group_pool(self.body, images, self.group, self.pool)
        return pooled if self.head is None else self.head(pooled)


# ---------------------------------------------------------------------------
# the pixel-grid groups C4 and D4 and their convolutions


def _transform_grid(array: Array, element: int, axes: tuple[int, int]) -> Array:
    """Element g = 4m + k of D4 (C4: m = 0) on two axes: mirror the columns m times, turn k."""
    if element >= 4:
        array = jnp.flip(array, axis=axes[1])
    return jnp.rot90(array, element % 4, axes=axes)


def _transform_grid_numpy(array: np.ndarray, element: int) -> np.ndarray:
    """:func:`_transform_grid` on the first two axes of a NumPy array (safe inside a trace)."""
    if element >= 4:
        array = np.flip(array, axis=1)
    return np.rot90(array, element % 4, axes=(0, 1))


@functools.cache
def _tables(order: int) -> tuple[np.ndarray, np.ndarray]:
    """The Cayley table (g ∘ h) and inverses, read off the action on a 3 × 3 probe."""
    probe = np.arange(9).reshape(3, 3)
    images = [_transform_grid_numpy(probe, g) for g in range(order)]
    keys = [image.tobytes() for image in images]
    cayley = np.zeros((order, order), dtype=np.int32)
    for g, h in itertools.product(range(order), range(order)):
        cayley[g, h] = keys.index(_transform_grid_numpy(images[h], g).tobytes())
    inverse = np.argmax(cayley == 0, axis=1).astype(np.int32)
    return cayley, inverse


@dataclass(frozen=True)
class PixelGroup:
    """C4 (quarter turns) or D4 (quarter turns and mirror images) acting on the pixel grid.

    Element g = 4m + k is "mirror the columns m times, then turn k quarter turns
    counter-clockwise" (as :func:`~invppl.transforms.rotate90` turns images).

    >>> group = PixelGroup("D4")
    >>> group.order, int(group.cayley[1, 3]), int(group.inverse[1])  # r ∘ r³ = e, r⁻¹ = r³
    (8, 0, 3)
    """

    name: Literal["C4", "D4"]

    def __post_init__(self) -> None:
        if self.name not in PIXEL_GROUPS:
            raise ValueError(f"unknown pixel group {self.name!r}; expected one of {PIXEL_GROUPS}")

    @property
    def order(self) -> int:
        return 4 if self.name == "C4" else 8

    @property
    def cayley(self) -> np.ndarray:
        """``(order, order)``: ``cayley[g, h]`` is the element g ∘ h (h first)."""
        return _tables(self.order)[0]

    @property
    def inverse(self) -> np.ndarray:
        """``(order,)``: the inverse of each element."""
        return _tables(self.order)[1]

    def transform_images(self, images: Array, element: int) -> Array:
        """T_g of ``(batch, height, width, channels)`` square images, exactly."""
        return _transform_grid(check_images(images), element, (1, 2))

    def transform_features(self, features: Array, element: int) -> Array:
        """(g · F)(h, u) = F(g⁻¹h, g⁻¹u) of ``(batch, height, width, group, channels)`` maps."""
        permutation = self.cayley[self.inverse[element]]
        return _transform_grid(features[:, :, :, permutation], element, (1, 2))


def _check_kernel(kernel_size: int) -> None:
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(
            f"kernel_size must be odd (a centred filter turns onto itself), got {kernel_size}"
        )


def _correlate(inputs: Array, kernel: Array) -> Array:
    """'Same' cross-correlation of ``(batch, h, w, in)`` with ``(k, k, in, out)``."""
    return jax.lax.conv_general_dilated(
        inputs, kernel, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
    )


class _GroupCorrelation(nnx.Module):
    """The parameters of a lifting or group convolution: a He-normal filter bank
    ``(k, k, [group,] in, out)`` and one bias per output channel, shared over the group.

    ``_group_axis`` says whether the inputs, and so the filters, have a group axis.
    """

    _group_axis: bool

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        group: PixelGroup,
        *,
        rngs: nnx.Rngs,
        kernel_size: int = 3,
    ) -> None:
        _check_kernel(kernel_size)
        self.group = group
        self.in_channels = in_channels
        group_axis = (group.order,) if self._group_axis else ()
        shape = (kernel_size, kernel_size, *group_axis, in_channels, out_channels)
        fan_in = tuple(range(len(shape) - 1))  # every axis but the output channels
        self.kernel = nnx.Param(nnx.initializers.he_normal(in_axis=fan_in)(rngs.params(), shape))
        self.bias = nnx.Param(jnp.zeros((out_channels,)))


class LiftingConv(_GroupCorrelation):
    """Images ``(batch, h, w, in)`` → group features ``(batch, h, w, group, out)``: [x ⋆ ψ](g, u).

    One filter bank, correlated in every turned (and mirrored) pose; one bias
    per output channel, shared over the group.
    """

    _group_axis = False

    def __call__(self, images: Array) -> Array:
        images = check_images(images)
        if images.shape[-1] != self.in_channels:
            raise ValueError(
                f"LiftingConv expects {self.in_channels} input channels, got shape {images.shape}"
            )
        kernel = self.kernel[...]
        turned = [_transform_grid(kernel, g, (0, 1)) for g in range(self.group.order)]
        stacked = jnp.stack(turned, axis=3).reshape((*kernel.shape[:3], -1))
        out = _correlate(images, stacked)
        return out.reshape((*out.shape[:3], self.group.order, -1)) + self.bias[...]


class GroupConv(_GroupCorrelation):
    """Group features ``(batch, h, w, group, in)`` → ``(batch, h, w, group, out)``: [F ⋆ ψ](g, u).

    The filter ψ(h, v) for output element g is g · ψ: turned in space and with
    its group axis permuted, ψ_g(h, v) = ψ(g⁻¹h, g⁻¹v).
    """

    _group_axis = True

    def __call__(self, features: Array) -> Array:
        expected = (self.group.order, self.in_channels)
        if features.ndim != 5 or tuple(features.shape[3:]) != expected:
            raise ValueError(
                f"GroupConv expects features (batch, height, width, {expected[0]}, "
                f"{expected[1]}), got shape {tuple(features.shape)}"
            )
        kernel = self.kernel[...]
        order = self.group.order
        moved = [
            _transform_grid(kernel[:, :, self.group.cayley[self.group.inverse[g]]], g, (0, 1))
            for g in range(order)
        ]
        stacked = jnp.stack(moved, axis=4)  # (k, k, group_in, in, group_out, out)
        k = kernel.shape[0]
        stacked = stacked.reshape((k, k, order * self.in_channels, -1))
        out = _correlate(features.reshape((*features.shape[:3], -1)), stacked)
        return out.reshape((*out.shape[:3], order, -1)) + self.bias[...]


def _average_pool(features: Array) -> Array:
    """2 × 2 average pooling of ``(batch, h, w, group, channels)`` with even h and w."""
    batch, height, width, *rest = features.shape
    blocks = features.reshape((batch, height // 2, 2, width // 2, 2, *rest))
    return blocks.mean(axis=(2, 4))


class GroupCNN(nnx.Module):
    """A P4 (C4) or P4M (D4) group-convolutional classifier, invariant to its group.

    A lifting convolution, then group convolutions, each followed by GELU; 2 × 2
    average pooling after every layer but the last while the map's size is
    even; then the mean over pixels, ``group_pool`` over the group axis and a
    linear head. Every step is exactly equivariant on square images, so the
    logits are invariant (to float rounding) to quarter turns (C4) and also
    mirror images (D4) of the input.

    Args:
        image_shape: ``(size, size, channels)``, square.
        num_classes: the number of logits.
        group: ``"C4"`` or ``"D4"``.
        channels: output channels per group element of each layer (the first
            is the lifting convolution's).
        kernel_size: odd.
        group_pool: ``"mean"`` or ``"max"`` over the group axis at the end.

    >>> import jax.numpy as jnp
    >>> from flax import nnx
    >>> from invppl.transforms import rotate90
    >>> net = GroupCNN((8, 8, 1), 3, group="D4", channels=(4, 4), rngs=nnx.Rngs(0))
    >>> x = jnp.linspace(0, 1, 64).reshape(1, 8, 8, 1)
    >>> bool(jnp.allclose(net(x), net(rotate90(x, 1)), atol=1e-5))
    True
    """

    def __init__(
        self,
        image_shape: tuple[int, int, int],
        num_classes: int,
        *,
        rngs: nnx.Rngs,
        group: Literal["C4", "D4"] = "C4",
        channels: Sequence[int] = (8, 16),
        kernel_size: int = 3,
        group_pool: Pool = "mean",
    ) -> None:
        height, width, depth = image_shape
        if height != width:
            raise ValueError(f"a group CNN needs square images, got image_shape {image_shape}")
        if not channels:
            raise ValueError("a group CNN needs at least one layer of channels")
        _check_pool(group_pool)
        self.group = PixelGroup(group)
        self.image_shape = (height, width, depth)
        self.lift = LiftingConv(depth, channels[0], self.group, rngs=rngs, kernel_size=kernel_size)
        self.convs = nnx.List(
            [
                GroupConv(a, b, self.group, rngs=rngs, kernel_size=kernel_size)
                for a, b in itertools.pairwise(channels)
            ]
        )
        self.group_pool = group_pool
        self.head = nnx.Linear(channels[-1], num_classes, rngs=rngs)

    def features(self, images: Array) -> Array:
        """The last equivariant map, ``(batch, h', w', group, channels[-1])``."""
        images = check_images(images)
        if tuple(images.shape[1:]) != self.image_shape:
            raise ValueError(
                f"GroupCNN expects images (batch, {', '.join(map(str, self.image_shape))}), "
                f"got shape {tuple(images.shape)}"
            )
        layers = [self.lift, *self.convs]
        x = images
        for index, layer in enumerate(layers):
            x = nnx.gelu(layer(x))
            if index < len(layers) - 1 and x.shape[1] % 2 == 0:
                x = _average_pool(x)
        return x

    def __call__(self, images: Array) -> Array:
        """``(batch, size, size, channels)`` → logits ``(batch, num_classes)``."""
        pooled = _pool(jnp.mean(self.features(images), axis=(1, 2)), self.group_pool, 1)
        return self.head(pooled)
