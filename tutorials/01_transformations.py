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
# # 01 · Transformations
#
# invppl moves a batch of images `(batch, height, width, channels)` by parameters
# η `(batch, k)`. This tutorial shows each family on a real MNIST digit and on a
# procedurally rendered sprite: the affine family built from Lie-algebra
# generators, the colour family, and discrete groups; then sampled η,
# composition (one interpolation per chain) and inversion.
#
# Set `INVPPL_SMALL=1` to run it in its small-size mode (the test command does).

# %%
# %matplotlib inline
import math
import os

import jax
import jax.numpy as jnp
import numpy as np

from invppl.datasets import load_mnist, make_dsprites
from invppl.plots import image_grid, transformation_gallery
from invppl.transforms import Affine, Colour, CyclicRotation, Flip, Interval, transform_family

SMALL = os.environ.get("INVPPL_SMALL") == "1"
size = 28
mnist = load_mnist()
digit = mnist.images[np.flatnonzero(mnist.labels == 7)[:1]]
sprite = make_dsprites(1, seed=3, size=size).images
images = jnp.asarray(np.concatenate([digit, sprite]))
images.shape

# %% [markdown]
# ## Every family declares its parameters
#
# Each parameter has a name and a support (periodic, interval, real or discrete),
# so a distribution over η can respect it.

# %%
family = Affine(("tx", "ty", "rotation", "log_scale_x", "log_scale_y", "shear"))
for parameter in family.parameters:
    print(f"{parameter.name:12s} {parameter.support}")

# %% [markdown]
# ## Affine maps: A(η) = expm(Σ η_i G_i)
#
# A positive rotation turns the content counter-clockwise; `tx = 1` moves it half
# an image width to the right.

# %%
angles = np.linspace(-math.pi, math.pi, 9)[:-1]
transformation_gallery(
    images, Affine(("rotation",)), angles[:, None], labels=[f"{a:+.2f}" for a in angles]
)

# %%
shifts = np.array([[-0.3, 0.0], [0.3, 0.0], [0.0, -0.3], [0.0, 0.3]])
transformation_gallery(images, Affine(("tx", "ty")), shifts, labels=["left", "right", "down", "up"])

# %%
stretch = np.array([[0.4, 0.0, 0.0], [0.0, -0.4, 0.0], [0.0, 0.0, 0.4], [0.0, 0.0, -0.4]])
transformation_gallery(
    images,
    Affine(("log_scale_x", "log_scale_y", "shear")),
    stretch,
    labels=["wider", "shorter", "shear +", "shear -"],
)

# %% [markdown]
# Interpolation is bilinear by default; `"nearest"` and `"bicubic"` are options.
# Here a 20° turn of the digit, by each method:

# %%
turn = jnp.array([[math.radians(20.0)]])
image_grid(
    jnp.concatenate(
        [
            Affine(("rotation",), method=m).apply(images[:1], turn)
            for m in ("nearest", "bilinear", "bicubic")
        ]
    ),
    titles=["nearest", "bilinear", "bicubic"],
)

# %% [markdown]
# ## Colour: hue, saturation and value
#
# Hue turns the chroma plane about the grey axis (2π/3 sends red to green);
# saturation and value are log-factors.

# %%
red = images * jnp.array([1.0, 0.1, 0.1])
hues = np.linspace(0, 2 * math.pi, 7)[:-1]
transformation_gallery(red, Colour(("hue",)), hues[:, None], labels=[f"{h:.2f}" for h in hues])

# %%
sat_val = np.array([[-1.0, 0.0], [1.0, 0.0], [0.0, -0.7], [0.0, 0.5]])
transformation_gallery(
    red,
    Colour(("saturation", "value")),
    sat_val,
    labels=["less sat.", "more sat.", "darker", "brighter"],
)

# %% [markdown]
# ## Discrete groups
#
# A quarter turn of a square image is an exact permutation of pixels; four of
# them give back the original bit for bit.

# %%
c4 = CyclicRotation(4)
four = images
for _ in range(4):
    four = c4.apply(four, 1)
print("four quarter turns exact:", bool(jnp.all(four == images)))
transformation_gallery(images, c4, np.arange(4), labels=["0°", "90°", "180°", "270°"])

# %%
transformation_gallery(images, Flip("horizontal"), np.arange(2), labels=["id", "flip"])

# %% [markdown]
# ## Sampling η from each parameter's support
#
# Draw uniformly over each declared interval (and around the circle for the
# rotation), after narrowing the translation's support.

# %%
family = transform_family(
    ["rotation", "tx", "ty"], supports={"tx": Interval(-0.2, 0.2), "ty": Interval(-0.2, 0.2)}
)
key = jax.random.key(0)
n = 8 if SMALL else 16
lows = jnp.array([p.support.low for p in family.parameters])
highs = jnp.array([p.support.high for p in family.parameters])
eta = jax.random.uniform(key, (n, family.dim), minval=lows, maxval=highs)
image_grid(family.apply(jnp.repeat(images[:1], n, 0), eta), ncols=8)

# %% [markdown]
# ## Composition and inversion
#
# `b << a` is "a, then b": the matrices multiply and the image is interpolated
# once. `A(η)⁻¹ = A(−η)`, so `T_{−η}` undoes `T_η` up to interpolation error.

# %%
rigid = Affine(("rotation", "tx", "ty"), method="bicubic")
a = rigid(jnp.array([0.6, 0.1, 0.0]))
b = rigid(jnp.array([-0.3, 0.0, 0.15]))
in_turn = b.apply(a.apply(images, method="bicubic"), method="bicubic")
composed = (b << a).apply(images, method="bicubic")
undone = (b << a).inverse().apply(composed, method="bicubic")
print("max |composed - in turn| =", float(jnp.abs(composed - in_turn).max()))
print("max |undone - original|  =", float(jnp.abs(undone - images).max()))
image_grid(
    jnp.concatenate([images, in_turn, composed, undone]),
    ncols=2,
    row_labels=["x", "in turn", "composed", "undone"],
)

# %% [markdown]
# Both differences are interpolation error only, largest at sharp edges: on
# smooth images the test suite bounds them analytically.
