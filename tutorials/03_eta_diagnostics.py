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
# # 03 · Can the learned η posterior be trusted?
#
# The jointly fitted SGM of tutorial 02 learns an amortised posterior q(η | x)
# over the pose of every image. The ELBO that fits it rewards a guide that is
# good *on average* over the training set; it does not say whether, for a given
# image, q(η | x) is the model's posterior. `invppl.diagnostics.check_eta`
# checks that three ways:
#
# 1. **a reference posterior**: NUTS on p(η, z | x, θ̂) for each chosen example,
#    with every network fixed at its fitted value θ̂, and the guide compared with
#    it (Wasserstein distance, coverage of the guide's intervals);
# 2. **Pareto k̂** of the importance weights p(x, z, η) / q(z, η | x) per
#    example (PSIS): a heavy right tail means the guide misses mass that the
#    posterior has;
# 3. **simulation-based calibration** (SBC): data simulated from the fitted
#    model, and the rank of the true η among draws of the guide, which is
#    uniform when the guide is the posterior.
#
# We run all three first where the answer is known in closed form, then on the
# SGM of rotated MNIST, and finally from the command line.
#
# Set `INVPPL_SMALL=1` to run it in its small-size mode (`make tutorials` does,
# and the documentation shows that run).

# %% [markdown]
# > **Small mode.** With `INVPPL_SMALL=1` (as in the rendered documentation)
# > the warm-up runs at its full size (it is cheap), but the SGM part is a
# > deliberately tiny run: small networks fitted for 100 steps, two test digits,
# > two short NUTS chains each and 40 SBC simulations. Its tables and pictures
# > show what the output looks like; **they say nothing about the SGM**. Run the
# > notebook without `INVPPL_SMALL` for a real check (about 7 minutes on a
# > 2-core CPU; [Checking η posteriors](../../diagnostics.md) discusses the
# > costs).

# %% tags=["remove-stderr"]
import os
import time

import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pandas as pd
from IPython.display import display

from invppl.diagnostics import check_eta
from invppl.diagnostics.plots import plot_eta_posteriors, plot_forest, plot_ranks
from invppl.infer import fit
from invppl.jobs import job_data
from invppl.models import make_sgm
from invppl.plots import image_grid
from invppl.transforms import Parameter, Periodic

# %matplotlib inline

SMALL = os.environ.get("INVPPL_SMALL") == "1"
SEED = 0
pd.set_option("display.precision", 3)
pd.set_option("display.width", 200)
if SMALL:
    # a deliberately tiny SGM run: it only shows that every step runs
    sgm_settings = {
        "max_examples": 240,
        "test_fraction": 0.25,
        "hidden": 16,
        "latent_dim": 4,
        "context_dim": 8,
        "batch_size": 16,
        "steps": 100,
    }
    num_checked = 2
    check_settings = {
        "num_chains": 2,
        "num_warmup": 50,
        "num_samples": 50,
        "max_tree_depth": 4,
        "guide_samples": 200,
        "sbc_simulations": 40,
        "sbc_samples": 19,
    }
else:
    # the data and networks of tutorial 02 (DemoSettings.full()); the steps of `invppl fit`
    sgm_settings = {
        "max_examples": 100_000,
        "test_fraction": 0.2,
        "hidden": 128,
        "latent_dim": 16,
        "context_dim": 16,
        "batch_size": 64,
        "steps": 1000,
    }
    # NUTS is the expensive part: these sizes keep the check under ten minutes on a
    # 2-core CPU; `invppl diagnose` defaults to 8 examples, 500 + 500 steps, depth 8
    num_checked = 4
    check_settings = {
        "num_chains": 4,
        "num_warmup": 200,
        "num_samples": 200,
        "max_tree_depth": 5,
        "guide_samples": 1000,
        "sbc_simulations": 200,
        "sbc_samples": 99,
    }
started = time.perf_counter()
print("small mode: the SGM part is a deliberately tiny run" if SMALL else "full size")

# %% [markdown]
# ## Warm-up: a rotation whose posterior is known
#
# A cloud of P fixed points $y_p$ in the plane (the prototype) is rotated by an
# angle η and blurred by Gaussian noise:
#
# $$
# \eta \sim \mathrm{VonMises}(\mu_0, \kappa_0), \qquad
# x_p \mid \eta \sim \mathcal N\big(R(\eta)\, y_p,\ \sigma^2 I_2\big), \quad p = 1, \dots, P.
# $$
#
# Expanding the square, $\log p(x \mid \eta) = \text{const} + (A \cos\eta + B
# \sin\eta) / \sigma^2$ with $A = \sum_p x_p \cdot y_p$ and $B = \sum_p (x_{p2}
# y_{p1} - x_{p1} y_{p2})$. That is the log-density of a von Mises law in η up
# to a constant, and so is the prior, so the posterior is von Mises too:
#
# $$
# p(\eta \mid x) = \mathrm{VonMises}(m, K), \qquad
# K e^{i m} = \kappa_0 e^{i \mu_0} + \frac{A + iB}{\sigma^2}.
# $$
#
# Two guides stand in for an amortised q(η | x): the **exact** posterior, and an
# **over-confident** one with the right mode and five times its concentration
# (a guide fitted by the ELBO's mode-seeking KL(q ‖ p) tends to err this way).
# Both are ordinary NumPyro guides whose η site, shaped `(batch, 1)`, lies in
# the data plate, as `check_eta` expects of any model/guide pair.

# %%
Y = np.array([[1.0, 0.0], [0.0, 0.5], [-0.7, 0.3]], dtype=np.float32)  # the prototype
SIGMA, MU0, KAPPA0 = 0.3, 0.5, 1.0


def rotation_matrix(eta):
    cos, sin = jnp.cos(eta), jnp.sin(eta)
    return jnp.stack([jnp.stack([cos, -sin], -1), jnp.stack([sin, cos], -1)], -2)


def cloud_model(x):
    # x: (batch, P, 2)
    with numpyro.plate("data", x.shape[0]):
        eta = numpyro.sample("eta", dist.VonMises(MU0, KAPPA0).expand([1]).to_event(1))
        mean = jnp.einsum("bij,pj->bpi", rotation_matrix(eta[:, 0]), Y)
        numpyro.sample("x", dist.Normal(mean, SIGMA).to_event(2), obs=x)


def exact_posterior(x):
    # (m, K) per example: p(η | x) = VonMises(m, K)
    a = jnp.einsum("bpi,pi->b", x, Y)
    b = jnp.sum(x[..., 1] * Y[:, 0] - x[..., 0] * Y[:, 1], axis=-1)
    natural = KAPPA0 * jnp.exp(1j * MU0) + (a + 1j * b) / SIGMA**2
    return jnp.angle(natural), jnp.abs(natural)


def make_guide(sharpen):
    # q(η | x) = VonMises(m(x), sharpen · K(x)): sharpen = 1 is the exact posterior
    def guide(x):
        m, concentration = exact_posterior(x)
        with numpyro.plate("data", x.shape[0]):
            numpyro.sample(
                "eta", dist.VonMises(m[:, None], sharpen * concentration[:, None]).to_event(1)
            )

    return guide


# four clouds: one near the seam at ±π, and one shrunk towards 0, whose posterior is wide
true_eta = np.array([3.1, -0.8, 1.9, 0.0])
shrink = np.array([1.0, 1.0, 1.0, 0.1])
noise = np.random.default_rng(SEED).normal(size=(4, len(Y), 2))
clouds = np.einsum("bij,pj->bpi", np.asarray(rotation_matrix(true_eta)), Y) + SIGMA * noise
clouds = (clouds * shrink[:, None, None]).astype(np.float32)
m, concentration = (np.asarray(v) for v in exact_posterior(jnp.asarray(clouds)))
pd.DataFrame(
    {
        "true η": true_eta,
        "posterior mode m": m,
        "K": concentration,
        "≈ sd 1/√K": concentration**-0.5,
    }
).rename_axis("example")

# %% [markdown]
# `check_eta(model, guide, params, x, ...)` runs every check on the examples
# `x`. The point-cloud model has no fitted parameters (`params={}`), and its von
# Mises η does not name its transformation parameter, so we declare it: one
# periodic coordinate called `rotation` (invppl's η flows name theirs). The
# NUTS reference uses four chains of 1000 draws per example; SBC simulates 200
# clouds from the model. The guide's 90% interval must hold at least 80% of the
# reference's mass for an example to pass (`min_coverage`, default 0.8).

# %%
rotation = Parameter("rotation", Periodic())
warmup_options = {
    "parameters": (rotation,),
    "num_chains": 4,
    "num_warmup": 500,
    "num_samples": 1000,
    "guide_samples": 1000,
    "sbc_simulations": 200,
    "seed": SEED,
}
exact = check_eta(cloud_model, make_guide(1.0), {}, clouds, **warmup_options)
exact_reference = exact.reference  # the NUTS run, reusable for other guides
exact.summary

# %% [markdown]
# One row per example and transformation parameter. `w1` is the Wasserstein-1
# distance on the circle between the guide's and the reference's draws (in
# radians), `w1_relative` the same over the reference's circular standard
# deviation `ref_sd`; `coverage_50` and `coverage_90` the share of reference
# draws inside the guide's central 50% and 90% intervals; `khat` and `psis_ess`
# the PSIS tail shape and importance-sampling effective sample size; `rhat`,
# `ess_bulk`, `ess_tail` and `divergences` describe the NUTS chains (on cos η
# and sin η, which do not see the seam).
#
# For the exact guide every row is `trusted`: the W1 distances are the noise of
# two finite samples, the coverages sit at 0.5 and 0.9, and k̂ is −∞. That is
# not a failure: when q *is* the posterior, log p(x, η) − log q(η | x) = log p(x)
# for every draw, the log-weights are constant up to rounding, and there is no
# tail to fit. Now the over-confident guide on the same clouds. The NUTS
# reference depends on the model and the data, not on the guide, so we hand
# the first check's reference to the second (`reference=`) instead of running
# NUTS again:

# %%
over = check_eta(
    cloud_model, make_guide(5.0), {}, clouds, reference=exact_reference, **warmup_options
)
columns = ["w1_relative", "coverage_50", "coverage_90", "khat", "reference_converged", "trusted"]
pd.concat(
    {"exact": exact.summary[columns], "over-confident": over.summary[columns]}, names=["guide"]
)

# %% [markdown]
# The over-confident guide's 90% interval holds only about half of the
# posterior's mass, and its k̂ exceeds 0.7 on most clouds: its tails are lighter
# than the posterior's, so the importance weights p/q have a heavy tail (for a
# Gaussian posterior and a guide with a fifth of its variance, the tail shape is
# k = 1 − 1/5 = 0.8). Every cloud is flagged by its coverage; k̂ alone, a noisy
# estimate close to the 0.7 threshold here, would not have caught them all.
#
# SBC needs no reference at all. It draws (η*, x) from the model, L = 99 guide
# draws for each x, and counts how many fall below η* (the circle is cut
# opposite the circular mean of further guide draws for the same x, so the cut
# never looks at η*). Under a calibrated guide the rank is uniform on 0..L:

# %%
tables = {"exact": exact.sbc.table, "over-confident": over.sbc.table}
pd.concat(tables, names=["guide"])

# %%
for name, checked in (("exact guide", exact), ("over-confident guide (×5)", over)):
    figure = plot_ranks(checked)
    figure.suptitle(name, fontsize=10)
    figure.tight_layout()
    display(figure)  # the plots return matplotlib Figures (no pyplot state)

# %% [markdown]
# The grey band is where 99% of each bin's count falls under calibration. The
# exact guide's ranks are flat; the over-confident guide's pile up at both ends
# (a ∪): the true η lands outside the guide's narrow cloud of draws far too
# often. A ∩ shape would mean an under-confident guide (draws too spread, the
# truth too often in the middle), a slope a biased one. The uniformity test's
# p-value says the same in one number.
#
# ## The SGM on rotated MNIST
#
# The data and the model are those of the jointly fitted SGM at the end of
# tutorial 02: digits 0, 1 and 7 turned by a known rotation law per digit
# (`invppl.jobs.job_data("rotated-mnist", ...)`), a continuous-Bernoulli
# likelihood, and the amortised guide q(η | x) q(z | T_η⁻¹ x), fitted by SVI.

# %%
data = job_data(
    "rotated-mnist",
    seed=SEED,
    max_examples=sgm_settings["max_examples"],
    test_fraction=sgm_settings["test_fraction"],
)
image_shape = tuple(int(s) for s in data.x_train.shape[1:])
sgm = make_sgm(
    image_shape,
    sgm_settings["latent_dim"],
    ("rotation",),
    seed=SEED,
    hidden=sgm_settings["hidden"],
    context_dim=sgm_settings["context_dim"],
    kind="continuous_bernoulli",
)
result = fit(
    sgm.model,
    sgm.guide,
    {"x": data.x_train},
    seed=SEED,
    num_steps=sgm_settings["steps"],
    batch_size=sgm_settings["batch_size"],
    progress=False,
)
print(f"{len(data.x_train)} training images; joint SGM: {result.message} in {result.seconds:.0f} s")
first, last = result.losses[0], result.losses[-1]
print(f"−ELBO per image: {first:.1f} at the first step, {last:.1f} at the last")

# %% [markdown]
# For a test image x the check's reference is the model's posterior with the
# decoder, the prior's flow and embedding fixed at their fitted values θ̂,
#
# $$
# p(\eta, z \mid x, \hat\theta) \;\propto\; p(z)\, p_{\hat\theta}\big(\eta \mid \hat x(z)\big)\,
# p\big(x \mid \hat x(z), \eta\big),
# $$
#
# the distribution that the guide q(η | x) q(z | x, η) approximates. NUTS
# samples η and z jointly, η as an unwrapped angle so the chains cross ±π
# freely; the guide's η draws are compared with the reference's η marginal.
# The true angles of the test images play no part: the prototype's orientation
# is not identifiable (tutorial 02), and the question is whether the guide
# agrees with *its own model*, not with the data's generator.
#
# `params` must hold the fitted parameters and the networks' mutable state;
# `loss` keeps the fit's loss history in the result, beside the draws.

# %%
params = result.params_and_state  # params with the NNX mutable state
x_checked = jnp.asarray(data.x_test[:num_checked])
clock = time.perf_counter()
check = check_eta(
    sgm.model,
    sgm.guide,
    params,
    x_checked,
    examples=range(num_checked),
    loss=result.losses,
    seed=SEED,
    **check_settings,
)
print(f"check_eta on {num_checked} test digits: {time.perf_counter() - clock:.0f} s")
if SMALL:
    print("These numbers come from a deliberately tiny run: they show the output, not the SGM.")
check.summary

# %% [markdown]
# The checked test digits, with their true angle θ for reference (the check
# never uses it):

# %%
image_grid(
    data.x_test[:num_checked],
    titles=[
        f"ex. {i}: {data.class_names[int(label)]}, θ = {angle:+.2f}"
        for i, (label, angle) in enumerate(
            zip(data.labels_test[:num_checked], data.angles_test[:num_checked], strict=True)
        )
    ],
)

# %% [markdown]
# `check.worst(n)` sorts the rows by `w1_relative` (or any column, `by=`): the
# examples to look at first.

# %%
check.worst(3)

# %% [markdown]
# The guide's draws (blue outline) over the reference's (grey), one panel per
# example, with the example's W1 and k̂ in the title:

# %%
plot_eta_posteriors(check)

# %% [markdown]
# The same as central intervals (thick: 50%, thin: 90%), guide above
# reference, drawn relative to the reference's circular mean so the seam at ±π
# does not cut the reference's bars:

# %%
plot_forest(check)

# %% [markdown]
# And the calibration of q(η | x) over images simulated from the fitted model:

# %%
print(check.sbc.table)
plot_ranks(check)

# %% [markdown]
# ### Reading the flags
#
# - **`reference_converged` is False**: R-hat above 1.01, bulk or tail ESS below
#   100 per chain, or a divergence. The reference then cannot judge the guide,
#   and that example's `w1` and coverages mean nothing. Run longer chains; if
#   the chains stay apart, the posterior may have several modes (an image read
#   as one prototype at one angle or another at another), which a unimodal
#   guide cannot match either.
# - **`khat` above 0.7**: the importance weights have (nearly) infinite variance.
#   The guide misses mass the posterior has, and reweighting its draws cannot
#   repair it. From 0.5 to 0.7 the guide is usable with care; below 0.5 it is
#   close to the posterior. k̂ needs no reference, but a few hundred draws at
#   least.
# - **coverage**: `coverage_90` far below 0.9 means an over-confident guide,
#   far above it an under-confident one. An example is `trusted` when its
#   reference converged, k̂ ≤ 0.7 and `coverage_90` ≥ `min_coverage`.
# - **SBC**: a ∪-shaped rank histogram means over-confidence, a ∩ shape
#   under-confidence, a slope bias, on average over data *simulated from the
#   fitted model*. It complements the per-example checks: it covers many x
#   cheaply but says nothing about real images unlike the model's simulations.
#
# Everything lives in one ArviZ DataTree, `check.tree`: the guide's draws
# (`posterior`), the reference and its sampler statistics, the data, PSIS,
# the SBC ranks and the loss history. `check.to_dict()` is a JSON-ready digest.

# %%
for name, node in check.tree.children.items():
    print(f"{name:24s} {dict(node.sizes)}")
digest = check.to_dict()
print({key: digest[key] for key in digest if key.endswith("examples")})

# %% [markdown]
# ## From the command line
#
# A run folder of `invppl fit --model sgm` holds everything needed to rebuild
# the data split, the model and its fitted parameters, so `invppl diagnose`
# runs the same check on its first test images (defaults: 8 examples, 4 chains
# of 500 warm-up steps and 500 draws, 1000 guide draws, 200 SBC simulations):
#
# ```bash
# invppl fit --model sgm --out runs/sgm --steps 1000
# invppl diagnose runs/sgm --examples 8 --chains 4 --warmup 500 --samples 500
# ```
#
# It writes `runs/sgm/diagnostics/` (or `--out`): `summary.csv` (the summary
# table), `diagnostics.json` (`check.to_dict()`, the run's configuration, the
# NUTS settings and the classes and true angles of the checked images),
# `posteriors.png`, `forest.png` and `ranks.png` (the three figures above), and
# prints which examples are not trusted. Only the jointly fitted SGM can be
# diagnosed: the two-stage SGM's pose network gives a point estimate f(x), not
# a posterior.

# %%
print(f"the whole notebook ran in {time.perf_counter() - started:.0f} s")
