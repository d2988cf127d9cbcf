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
# # 06 · Paired weak supervision: pairs that share all factors but a few
#
# An unsupervised VAE cannot, in general, recover the true factors of
# variation. Locatello et al. ("Weakly-Supervised Disentanglement Without
# Compromises", ICML 2020) show that *pairs* of images that share all but a
# few factors are enough: the two posteriors q(z | x1) and q(z | x2) should
# differ only in the dimensions of the changed factors. Ada-GVAE finds those
# dimensions per pair by an adaptive threshold on the per-dimension KL,
#
# $$\delta_j = \mathrm{KL}\big(q(z_j \mid x_1)\,\|\,q(z_j \mid x_2)\big), \qquad
#   \text{shared}_j \iff \delta_j < \tfrac12\big(\min_j \delta_j + \max_j \delta_j\big),$$
#
# and replaces both posteriors by their average on the shared dimensions
# (Ada-ML-VAE: by their product). The latent-transformation model of this
# project's research notes asks instead for a low-capacity map f_ψ that
# carries z1 to a code that decodes to x2, moving only a few units:
#
# $$\mathcal L = \mathbb E \log p(x_1 \mid z_1) + \mathbb E \log p(x_2 \mid z_2)
#   - \beta\,\big(\mathrm{KL}_1 + \mathrm{KL}_2\big)
#   + \gamma\, \mathbb E \log p\big(x_2 \mid f_\psi(z_1, z_2)\big),\qquad
#   f_\psi(z_1, z_2) = z_1 + m \odot s(z_1, z_2).$$
#
# Set `INVPPL_SMALL=1` to run it in its small-size mode (`make tutorials` does,
# and the documentation shows that run).

# %% [markdown]
# > **Small mode.** With `INVPPL_SMALL=1` the images are 16 × 16, there are
# > 300 training pairs and each model is fitted for 150 steps, with the metrics
# > on few points: enough to show every step, far too little to compare the
# > methods. The benchmark `benchmarks/paired_weak_supervision.py` (table in
# > [Paired weak supervision](../../paired.md)) is the comparison.

# %% tags=["remove-stderr"]
import os
import time

import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import optax
import pandas as pd

from invppl.datasets import make_paired_shapes, shapes_with_fixed_factor
from invppl.infer import fit
from invppl.metrics.disentanglement import (
    beta_vae_score,
    dci,
    factor_vae_score,
    modularity,
    mutual_information_gap,
    sap_score,
)
from invppl.models.paired_vae import (
    adaptive_shared,
    circular_code,
    encoder_means,
    latent_map,
    make_latent_map_vae,
    make_paired_vae,
    moved_units,
    moved_units_report,
    per_dimension_kl,
    readout_codes,
)

SMALL = os.environ.get("INVPPL_SMALL") == "1"
SEED = 0
SIZE, PAIRS, STEPS, POINTS = (16, 300, 150, 60) if SMALL else (16, 1000, 800, 200)
pd.set_option("display.precision", 3)
started = time.perf_counter()

# %% [markdown]
# ## The data: pairs that change k factors
#
# `make_paired_shapes` draws x1 with every factor (shape, scale, rotation,
# pos_x, pos_y) uniform on its grid and copies them into x2, changing k of
# them, each to another value. Each column below is a pair; the title names
# the changed factor.

# %%
options = {"k": 1, "size": SIZE, "supersample": 2}
train = make_paired_shapes(PAIRS, seed=SEED, **options)
held_out = make_paired_shapes(POINTS * 4, seed=SEED + 100, **options)
names = train.factor_names
fig, axes = plt.subplots(2, 6, figsize=(7, 2.6))
for column in range(6):
    axes[0, column].imshow(train.images1[column, ..., 0], cmap="gray")
    axes[1, column].imshow(train.images2[column, ..., 0], cmap="gray")
    axes[0, column].set_title(names[int(np.argmax(train.changed[column]))], fontsize=8)
for axis in axes.flat:
    axis.axis("off")
plt.tight_layout()

# %% [markdown]
# ## The pieces, by hand
#
# The adaptive threshold shares the dimensions of small KL; the latent map with
# a known mask moves exactly the masked units; a circular code pair is read by
# the decoder as (cos θ, sin θ), whatever its radius.

# %%
kl = jnp.array([[0.1, 5.0, 0.2, 3.0]])
print("shared:", adaptive_shared(kl).tolist(), " moved (capacity 1):", moved_units(kl, 1).tolist())
z1, z2 = jnp.zeros((1, 4)), jnp.arange(1.0, 5.0)[None]
print(
    "f(z1, z2), mask [0, 1, 0, 1]:", np.asarray(latent_map(z1, z2, jnp.array([[0, 1, 0, 1]]) > 0))
)
print("circular code of (3, 4, 7):", np.round(circular_code(jnp.array([[3.0, 4.0, 7.0]]), 1), 3))

# %% [markdown]
# ## Four models on the same pairs
#
# The β-VAE treats the images as singles; Ada-GVAE and Ada-ML-VAE aggregate
# the shared dimensions; the latent-map model moves the units above the
# adaptive threshold (``capacity="adaptive"``) by z2 − z1. Same networks,
# steps, β and seed. The likelihood is a Normal with σ = 0.1: at 16 × 16 the
# continuous Bernoulli let every code collapse to the prior.

# %%
shape = (SIZE, SIZE, 1)
common = {"seed": SEED, "beta": 2.0, "hidden": 64, "channels": (16, 32), "kind": "normal"}
models = {
    "β-VAE": make_paired_vae(shape, 8, aggregation="none", **common),
    "Ada-GVAE": make_paired_vae(shape, 8, aggregation="gvae", **common),
    "Ada-ML-VAE": make_paired_vae(shape, 8, aggregation="mlvae", **common),
    "latent map": make_latent_map_vae(shape, 8, capacity="adaptive", **common),
}
if SMALL:  # in small mode, one paired model of each kind
    del models["Ada-ML-VAE"]
fitted = {}
for name, bundle in models.items():
    fitted[name] = fit(
        bundle.model,
        bundle.guide,
        {"x1": train.images1, "x2": train.images2},
        seed=SEED,
        num_steps=STEPS,
        batch_size=64,
        optimizer=optax.adam(1e-3),
        progress=False,
    ).params

# %% [markdown]
# ## Every metric, and the shared dimensions found
#
# Codes are the encoder's means on held-out images. BetaVAE and FactorVAE
# classify which factor a batch held fixed (drawn by `shapes_with_fixed_factor`);
# MIG and modularity come from histogram mutual information; DCI and SAP from
# predictors of each factor. "shared ok" is the share of held-out pairs whose
# not-shared units (adaptive threshold; the latent map's own rule) are exactly
# the units of the changed factors, a unit's factor being its largest DCI importance.

# %%
rows = {}
for name, bundle in models.items():
    encode = encoder_means(bundle, fitted[name])  # one compiled encoder for every call

    def sampler(draw_seed, factor, groups, size, encode=encode):
        images = shapes_with_fixed_factor(
            groups, size, factor, seed=draw_seed, size=SIZE, supersample=2
        ).images.reshape(groups * size, *shape)
        return encode(images)[0].reshape(groups, size, -1)

    z = encode(held_out.images1)[0]
    counts = {"seed": SEED, "batch_size": 16, "num_train": POINTS, "num_eval": POINTS // 2}
    result = dci(z, held_out.classes1, seed=SEED, num_trees=10 if SMALL else 50)
    kl = per_dimension_kl(*encode(held_out.images1), *encode(held_out.images2))
    moved = moved_units(kl, "adaptive")
    report = moved_units_report(moved, held_out.changed, result.importance)
    rows[name] = {
        "BetaVAE": beta_vae_score(sampler, len(names), **counts).eval_accuracy,
        "FactorVAE": factor_vae_score(
            sampler, len(names), num_variance_estimate=POINTS, **counts
        ).eval_accuracy,
        "MIG": mutual_information_gap(z, held_out.classes1).score,
        "DCI": result.disentanglement,
        "SAP": sap_score(z, held_out.classes1, seed=SEED).score,
        "modularity": modularity(z, held_out.classes1).score,
        "shared ok": report.fraction_exact,
        "units moved": report.num_moved.mean(),
    }
pd.DataFrame(rows).T

# %% [markdown]
# Every pair changed one factor, so a perfect model moves one unit per pair
# ("units moved" = 1) and gets "shared ok" = 1.
#
# ## Periodic factors: a circular code
#
# Rotation is periodic, for the square with period 90°: its grid in
# [−45°, 45°) ends where it starts. A Euclidean code must cut that circle
# somewhere; `num_circular=1` makes the first two latent units a pair that
# the decoder reads as an angle. On squares alone, we compare how much of the
# rotation one code unit (for the circular model: the pair's angle, from
# `readout_codes`) holds, I(code; rotation) / H(rotation), with Ada-GVAE's
# Euclidean codes.

# %%
from invppl.datasets import shape_factor_space  # noqa: E402

squares = shape_factor_space(shapes=("square",))
square_options = {"k": 1, "space": squares, "size": SIZE, "supersample": 2}
square_train = make_paired_shapes(PAIRS, seed=SEED, **square_options)
square_test = make_paired_shapes(POINTS * 4, seed=SEED + 100, **square_options)
rotation = squares.names.index("rotation")
shares = {}
for label, circular in (("Euclidean", 0), ("circular", 1)):
    bundle = make_paired_vae(shape, 8, num_circular=circular, **common)
    params = fit(
        bundle.model,
        bundle.guide,
        {"x1": square_train.images1, "x2": square_train.images2},
        seed=SEED,
        num_steps=STEPS,
        batch_size=64,
        optimizer=optax.adam(1e-3),
        progress=False,
    ).params
    codes = readout_codes(encoder_means(bundle, params)(square_test.images1)[0], circular)
    mig = mutual_information_gap(codes, square_test.classes1)
    shares[label] = mig.mutual_information[:, rotation].max() / mig.entropy[rotation]
pd.Series(shares, name="I(best unit; rotation) / H(rotation)")

# %%
print(f"ran in {time.perf_counter() - started:.0f} s")
