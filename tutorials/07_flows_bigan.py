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
# # 07 · A RealNVP flow as a NumPyro distribution, and a BiGAN's encoder
#
# Two generative models with an exact or a learned inverse. A **RealNVP flow**
# (Dinh et al. 2017) is a stack of affine couplings
# $y = b \odot x + (1 - b) \odot (x\, e^{s(b \odot x)} + t(b \odot x))$,
# each invertible with a triangular Jacobian, so
# $\log p(x) = \log \mathcal N(f(x); 0, I) + \log |\det \partial f / \partial x|$
# exactly; invppl's flow is an ordinary NumPyro `TransformedDistribution`.
# A **BiGAN** (Donahue et al. 2017) has no density at all: a generator $G(z)$,
# an encoder $E(x)$ and a discriminator $D(x, z)$ play
#
# $$\min_{G, E} \max_D\; \mathbb E_x \log D(x, E(x)) + \mathbb E_z \log\big(1 - D(G(z), z)\big),$$
#
# whose optimum makes $E$ the inverse of $G$. Its claim: $E$'s codes are useful
# features for supervised tasks. Set `INVPPL_SMALL=1` to run it in its
# small-size mode (`make tutorials` does, and the documentation shows that run).

# %% [markdown]
# > **Small mode.** With `INVPPL_SMALL=1` the flow and the BiGAN each train for
# > a few hundred steps on CPU: enough to show every step, too little for the
# > numbers. The benchmark `benchmarks/bigan_mnist.py` (table in
# > [BiGAN](../../bigan.md)) is the comparison.

# %% tags=["remove-stderr"]
import os
import time

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import numpyro
import optax
from flax import nnx
from sklearn.datasets import make_moons

from invppl.datasets import load_mnist
from invppl.distributions import RealNVP, realnvp_sample
from invppl.infer import fit, fit_adversarial
from invppl.metrics.adversary import adversary_accuracy_split
from invppl.models import make_bigan
from invppl.models.bigan import encode, generate, reconstruct
from invppl.nn import with_fitted_params

SMALL = os.environ.get("INVPPL_SMALL") == "1"
SEED = 0
FLOW_STEPS, BIGAN_STEPS, HIDDEN = (300, 300, 128) if SMALL else (3000, 3000, 256)
started = time.perf_counter()

# %% [markdown]
# ## A RealNVP flow is a NumPyro distribution
#
# `RealNVP((2,), ...)` holds the coupling networks' weights (Flax NNX);
# called, it returns the distribution. Inside a model, `realnvp_sample`
# registers the weights with NumPyro and scores the observations, so
# `invppl.infer.fit` fits it by maximum likelihood like any model with one
# observed site (the guide is empty: there is no latent variable).

# %%
moons = make_moons(2000, noise=0.06, random_state=SEED)[0].astype(np.float32)
moons = (moons - moons.mean(0)) / moons.std(0)
flow = RealNVP((2,), couplings=6, width=64, rngs=nnx.Rngs(SEED))


def flow_model(x):
    with numpyro.plate("data", x.shape[0]):
        realnvp_sample("x", flow, obs=x)


def no_guide(x):
    pass


flow_fit = fit(
    flow_model,
    no_guide,
    {"x": moons},
    seed=SEED,
    num_steps=FLOW_STEPS,
    batch_size=256,
    optimizer=optax.adam(2e-3),
    progress=False,
)
density = with_fitted_params(flow, "x_flow", flow_fit.params)()
print(type(density).__name__, "event shape", density.event_shape)
print(f"mean log p(x) on the data: {float(density.log_prob(moons).mean()):.3f} nats")

# %% [markdown]
# The density is normalised: on a grid it integrates to about 1, and its
# samples lie where its density is high.

# %%
edges = np.linspace(-3.5, 3.5, 141)
xx, yy = np.meshgrid(edges, edges)
grid = jnp.asarray(np.stack([xx.ravel(), yy.ravel()], 1), jnp.float32)
p = np.exp(np.asarray(density.log_prob(grid))).reshape(xx.shape)
print(f"∫ p(x) dx on the grid ≈ {p.sum() * (edges[1] - edges[0]) ** 2:.3f}")
samples = np.asarray(density.sample(jax.random.key(SEED), (500,)))
fig, axes = plt.subplots(1, 2, figsize=(7, 3.2), sharex=True, sharey=True)
axes[0].contourf(xx, yy, p, levels=30)
axes[0].set_title("p(x), the fitted flow")
axes[1].scatter(moons[:500, 0], moons[:500, 1], s=3, label="data")
axes[1].scatter(samples[:, 0], samples[:, 1], s=3, label="flow samples")
axes[1].legend(fontsize=7)
plt.tight_layout()

# %% [markdown]
# ## A BiGAN on digits
#
# `make_bigan` builds the three networks and the pure loss functions;
# `fit_adversarial` trains the discriminator and the generator/encoder pair
# with two optax optimisers in one compiled step. The settings are the
# benchmark's: Adam(2e-4, β1 = 0.5) for both players as in the BiGAN paper,
# dropout 0.2 in the discriminator, and the R1 gradient penalty of Mescheder
# et al. (2018) added to the discriminator's loss, on its logit $d$ at the
# real pairs,
#
# $$\frac{\gamma}{2} \mathbb E_x \lVert \nabla_{(x, z)} d(x, z) \rVert^2 \,\big|_{z = E(x)},$$
#
# with $\gamma = 1$ (`make_bigan`'s default, `gradient_penalty=1.0`).
# Without the penalty the generator collapses on these digits,
# every sample $G(z)$ nearly the same image, whether the discriminator wins
# outright (these rates) or is held back (a lower rate for $D$, dropout 0.5);
# the penalty keeps $D$ from growing steep around the data, and the samples
# stay diverse ([BiGAN](../../bigan.md) has the traces).

# %% tags=["remove-stderr"]
mnist = load_mnist()
images = mnist.images.reshape(-1, 14, 2, 14, 2, 1).mean(axis=(2, 4))  # 14 × 14
order = np.random.default_rng(SEED).permutation(len(images))
train, test = order[:4000], order[4000:]
bigan = make_bigan(
    (14, 14, 1), 32, seed=SEED, architecture="mlp", hidden=HIDDEN, dropout=0.2, gradient_penalty=1.0
)
result = fit_adversarial(
    bigan.discriminator_loss,
    bigan.generator_loss,
    bigan.init_params(),
    {"x": images[train]},
    seed=SEED,
    num_steps=BIGAN_STEPS,
    batch_size=64,
    discriminator_optimizer=optax.adam(2e-4, b1=0.5),
    generator_optimizer=optax.adam(2e-4, b1=0.5),
    check=bigan.check_data,
    progress=False,
)
print(result.message)
print("mean losses of the last 100 steps (D, G/E):", result.losses[-100:].mean(0).round(3))

# %% [markdown]
# ## The linear probe
#
# A logistic regression reads the digit's label off the codes of the
# training digits and is scored on the held-out ones: E(x) of the fitted
# BiGAN, E(x) of the same network untrained (a random encoder), and the raw
# pixels for reference.

# %%
players, initial = result.generator_params, bigan.init_params()[1]


def probe(train_codes, test_codes):
    return adversary_accuracy_split(
        train_codes.reshape(len(train_codes), -1),
        mnist.labels[train],
        test_codes.reshape(len(test_codes), -1),
        mnist.labels[test],
        seed=SEED,
        models=("logistic",),
    ).accuracy["logistic"]


accuracy = {
    "BiGAN E(x)": probe(*(np.asarray(encode(bigan, players, images[i])) for i in (train, test))),
    "random encoder": probe(
        *(np.asarray(encode(bigan, initial, images[i])) for i in (train, test))
    ),
    "pixels": probe(images[train], images[test]),
}
for name, value in accuracy.items():
    print(f"{name:>15}: {value:.3f}")

# %% [markdown]
# ## Reconstructions and samples
#
# G(E(x)) only resembles x as far as the game has made E invert G: a BiGAN
# never sees a reconstruction loss. A collapsed generator would show in the
# samples' diversity, the per-pixel standard deviation over many $G(z)$
# (0 for one repeated image), beside the held-out digits' own. The small
# mode's few hundred steps leave it well below the digits'; the benchmark's
# 2,000 steps with wider networks reach about 80 % of their spread (0.135
# against 0.169, [BiGAN](../../bigan.md)), where without the penalty it
# stays under 0.07.

# %%
x = images[test[:8]]
rows = [x, np.asarray(reconstruct(bigan, players, x))]
rows.append(np.asarray(generate(bigan, players, jax.random.normal(jax.random.key(1), (8, 32)))))
many = np.asarray(generate(bigan, players, jax.random.normal(jax.random.key(2), (1000, 32))))
print(f"sample sd {many.std(0).mean():.3f}, held-out digits' sd {images[test].std(0).mean():.3f}")
fig, axes = plt.subplots(3, 8, figsize=(7, 2.8))
for r, (label, row) in enumerate(zip(["x", "G(E(x))", "G(z)"], rows, strict=True)):
    for c in range(8):
        axes[r, c].imshow(row[c, ..., 0], cmap="gray_r", vmin=0, vmax=1)
        axes[r, c].set_xticks([])
        axes[r, c].set_yticks([])
    axes[r, 0].set_ylabel(label, fontsize=8)
plt.tight_layout()
print(f"tutorial ran in {time.perf_counter() - started:.0f} s")
