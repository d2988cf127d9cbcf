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
# # 08 · Invariance by weight sharing, measured by the Lie derivative
#
# A network can be made invariant to a finite group $G$ by construction:
# average (or pool) it over the group's orbit, $f_G(x) = \operatorname{mean}_{g \in G}
# f(T_g x)$, or build it from group convolutions whose filters are shared
# across all turned (and mirrored) poses, as in the P4 / P4M networks of Cohen &
# Welling (2016). How invariant a *trained* network is to a continuous
# transformation can be measured by the Lie derivative of its predictions
# along the transformation's generator, Gruver et al.'s (2023) local
# equivariance error (LEE). And the invariance can be learned instead: Augerino
# (Benton et al. 2020) learns how wide a law of rotations to average over.
#
# This notebook builds group CNNs and checks their invariance, then trains a
# plain CNN, a C4 group CNN and Augerino on digits whose rotation law depends
# on the class, where building in the full symmetry breaks the labels (a 6
# turned half a turn is a 9), and measures each trained network's LEE. Set
# `INVPPL_SMALL=1` for the small-size mode (`make tutorials` does, and the
# documentation shows that run).

# %% [markdown]
# > **Small mode.** With `INVPPL_SMALL=1` each classifier trains for 150
# > steps on 800 digits: enough to show every step, too little for the
# > numbers. The benchmark `benchmarks/symmetry_sample_efficiency.py` (table
# > and plot in [Invariance](../../invariance.md)) is the comparison, over
# > training-set sizes and seeds, with more arms (an MLP, D4, a group-pooled
# > CNN and a CNN trained on SGM-resampled digits).

# %% tags=["remove-stderr"]
import math
import os
import time

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import optax
from flax import nnx

from invppl.datasets import load_mnist, rotated_mnist
from invppl.datasets.laws import DeltaLaw, UniformLaw
from invppl.infer import fit
from invppl.metrics import local_equivariance_error
from invppl.models import learned_widths, make_augerino, make_classifier, predict_logits
from invppl.nn import ConvEncoder, GroupCNN, GroupPooled
from invppl.transforms import Affine, CyclicRotation, rotate90

SMALL = os.environ.get("INVPPL_SMALL") == "1"
SEED = 0
NUM_TRAIN, STEPS = (800, 150) if SMALL else (3000, 1500)
started = time.perf_counter()

# %% [markdown]
# ## A group CNN is invariant to its group, exactly
#
# `GroupCNN(..., group="C4")` lifts the image to a feature map with one
# channel block per quarter turn (the filter correlated in each of its four
# poses), convolves over the group, averages over pixels and pools over the
# group. Turning the input by a quarter turn turns every feature map and
# permutes its group axis, so the pooled logits do not change, to float
# rounding. A C4 network still tells a digit from its mirror image;
# `group="D4"` (quarter turns and mirror images) would not.

# %%
shape = (14, 14, 1)
c4 = GroupCNN(shape, 10, group="C4", channels=(8, 16), rngs=nnx.Rngs(SEED))
x = jax.random.uniform(jax.random.key(SEED), (4, *shape))
# x, its three quarter turns and its mirror image, through each network as one batch
variants = jnp.concatenate([x, *(rotate90(x, k) for k in (1, 2, 3)), jnp.flip(x, axis=2)])
logits = jax.jit(lambda images: c4(images))(variants).reshape(5, 4, 10)
change = jnp.abs(logits - logits[0]).max(axis=(1, 2))
print(
    f"C4 group CNN: largest logit change, quarter turns {float(change[1:4].max()):.1e}, "
    f"mirror image {float(change[4]):.1e}"
)

# %% [markdown]
# ## Digits whose symmetry depends on the class
#
# Digits 0, 1 and 8 are turned by any angle, 6 and 9 by at most 0.3 rad,
# the others not at all (the laws of `invppl.datasets.rotated_mnist`). A
# network invariant to half turns sees an upright 9 as (nearly) an upright 6,
# turned: it must tell them apart by their handwriting alone.

# %%
laws = {digit: DeltaLaw(0.0) for digit in range(10)}
laws |= {digit: UniformLaw(-math.pi, math.pi) for digit in (0, 1, 8)}
laws |= {digit: UniformLaw(-0.3, 0.3) for digit in (6, 9)}
mnist = load_mnist()
chosen = np.random.default_rng(SEED).permutation(len(mnist.labels))[: NUM_TRAIN + 500]
data = rotated_mnist(mnist.images[chosen], mnist.labels[chosen], seed=SEED, law=laws)
images = data.images.reshape(-1, 14, 2, 14, 2, 1).mean((2, 4))  # 28 × 28 → 14 × 14
train, test = np.arange(NUM_TRAIN), np.arange(NUM_TRAIN, NUM_TRAIN + 500)
fig, axes = plt.subplots(1, 10, figsize=(8, 1))
for digit, axis in enumerate(axes):
    axis.imshow(images[train][data.labels[train] == digit][0, ..., 0], cmap="gray_r")
    axis.set_axis_off()

# %% [markdown]
# ## Three classifiers
#
# The same `invppl.infer.fit` loop trains each (`make_classifier` wraps a
# network as a NumPyro model of the labels): a plain CNN; the same CNN
# group-pooled over C4 (`GroupPooled`: its features averaged over the four
# quarter turns of the input, then a linear read-out, exactly invariant to
# quarter turns); and Augerino around the plain CNN, which averages the
# softmax over 4 copies turned by $\eta \sim U(-w, w)$ and learns the width
# $w$, rewarded by $0.01\,w$ per example. (The group CNN above is invariant
# too, but with few parameters it trains more slowly: the benchmark gives it
# 600 steps.)

# %%
rotation = Affine(("rotation",))
arms = {
    "CNN": make_classifier(
        ConvEncoder(shape, 10, channels=(16, 32), hidden=64, rngs=nnx.Rngs(SEED))
    ),
    "C4-pooled CNN": make_classifier(
        GroupPooled(
            ConvEncoder(shape, 64, channels=(16, 32), hidden=64, rngs=nnx.Rngs(SEED)),
            CyclicRotation(4),
            head=nnx.Linear(64, 10, rngs=nnx.Rngs(SEED)),
        )
    ),
    "Augerino CNN": make_augerino(
        ConvEncoder(shape, 10, channels=(16, 32), hidden=64, rngs=nnx.Rngs(SEED)), rotation
    ),
}
training = {"x": images[train], "y": data.labels[train]}
fitted = {}
for name, classifier in arms.items():
    result = fit(
        classifier.model,
        classifier.guide,
        training,
        seed=SEED,
        num_steps=STEPS,
        batch_size=64,
        optimizer=optax.adam(5e-3),
        progress=False,
    )
    fitted[name] = result.params
    print(f"{name}: final training loss {result.final_loss():.3f}")

# %% [markdown]
# ## Accuracy, where full invariance hurts, and the Lie derivative
#
# A network invariant to half turns cannot tell an upright 6 from an upright
# 9 *if* a 9 were exactly a turned 6; handwritten ones are not, so an
# invariant network may still keep some of them apart by their strokes. The
# local equivariance error (Gruver et al. 2023),
# $\mathrm{LEE}_k(x) = \frac1K \sum_c \big|\frac{d}{dt}\operatorname{softmax}
# f(T_{t e_k} x)_c\big|_{t=0}$, one Jacobian-vector product through a bicubic
# warp, measures how much each trained network's predicted probabilities move
# under a small rotation (per radian) and translation (per normalised unit).
# Quarter turns are only a finite subgroup of the rotations, so the C4-pooled
# network is not invariant to small rotations by construction; Augerino's prediction
# averages 4 turned copies (drawn with a fixed key).

# %%
x_test, y_test = jnp.asarray(images[test]), data.labels[test]
sixes_and_nines = (y_test == 6) | (y_test == 9)
family = Affine(("rotation", "tx"), method="bicubic")
for name, classifier in arms.items():

    @jax.jit
    def evaluate(x, x_lee, classifier=classifier, params=fitted[name]):
        def predict(images):
            return predict_logits(classifier, params, images, key=jax.random.key(SEED))

        return predict(x), local_equivariance_error(predict, x_lee, family).per_example

    test_logits, per_example = evaluate(x_test, x_test[:100])
    predicted = np.asarray(jnp.argmax(test_logits, axis=-1))
    accuracy = np.mean(predicted == y_test)
    six_nine = np.mean(predicted[sixes_and_nines] == y_test[sixes_and_nines])
    lee = np.asarray(per_example).mean(0)
    print(
        f"{name:>13}: test accuracy {accuracy:.3f}, on the 6s and 9s {six_nine:.3f}; "
        f"LEE rotation {lee[0]:.4f}, translation {lee[1]:.4f}"
    )

# %% [markdown]
# ## What Augerino learned
#
# One rotation width for all digits: the truth is π for 0, 1 and 8, 0.3 for
# 6 and 9 and 0 for the rest, so no single width is right. The 6s and 9s
# punish any width near half a turn, which the full-rotation digits would
# want (the benchmark reports the width over sizes and seeds).

# %%
width = learned_widths(arms["Augerino CNN"], fitted["Augerino CNN"])["rotation"]
print(f"learned rotation half-width {width:.3f} rad (initial 0.1)")
print(f"tutorial ran in {time.perf_counter() - started:.0f} s")
