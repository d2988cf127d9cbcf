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
# # 05 · Invariant representations without adversarial training
#
# A representation z of x is *invariant* to a nuisance c (a protected
# attribute, the digit class, the acquisition site...) when z carries no
# information about c. Moyer et al. (NeurIPS 2018) get there without an
# adversary: give the decoder c for free, p(x | z, c), so z need not encode it,
# and penalise the information z keeps about x:
#
# $$\max\; E_q[\log p(x \mid z, c)] - \beta\, \mathrm{KL}(q(z \mid x) \,\|\, p(z))
#  - \lambda\, E_x\, \mathrm{KL}(q(z \mid x) \,\|\, q(z)).$$
#
# The last term (the mutual information between x and z under q) has no closed
# form, but over a minibatch it is bounded by the mean of all pairwise KLs between
# the encoder's Gaussians, which is closed form. An adversary is used only
# *afterwards*, to check: classifiers trained on the frozen codes try to recover c.
#
# Set `INVPPL_SMALL=1` to run it in its small-size mode (`make tutorials` does,
# and the documentation shows that run).

# %% [markdown]
# > **Small mode.** With `INVPPL_SMALL=1` every model is fitted for a few
# > hundred steps on 2,000 Adult rows and on 600 MNIST digits, and only the
# > logistic-regression adversary is trained: every step runs,
# > but the numbers are not a comparison. `benchmarks/invariant_vae_uci.py` and
# > `benchmarks/invariant_vae_mnist.py` are (tables in
# > [Invariant representations](../../invariant_vae.md)).

# %% tags=["remove-stderr"]
import os
import time
from pathlib import Path

import numpy as np
import optax
import pandas as pd
from numpyro.infer import TraceMeanField_ELBO
from sklearn.model_selection import train_test_split

from invppl.datasets import load_mnist
from invppl.datasets.uci import load_adult
from invppl.distributions import compression_bound, pairwise_gaussian_kl
from invppl.infer import fit
from invppl.metrics.adversary import adversary_accuracy_split
from invppl.models import make_invariant_vae
from invppl.plots import image_grid

# %matplotlib inline

SMALL = os.environ.get("INVPPL_SMALL") == "1"
SEED = 0
STEPS = 200 if SMALL else 3000
ROWS = 2000 if SMALL else None  # Adult rows used for training and for testing
ADVERSARIES = ("logistic",) if SMALL else ("logistic", "mlp1", "mlp2", "mlp3")
UCI = Path("../../shared/data/uci")  # the data folder beside the repository
if not UCI.exists():  # the notebook may run from the repository root too
    UCI = Path("../shared/data/uci")
pd.set_option("display.precision", 3)
started = time.perf_counter()

# %% [markdown]
# ## The compression term
#
# For diagonal Gaussians q_i = N(μ_i, σ_i²), KL(q_i ‖ q_j) has a closed form, and
# the B × B matrix of all of them is a few matrix products (never a B × B × d
# tensor). Its mean is the bound; it is 0 exactly when every q_i is the same:

# %%
rng = np.random.default_rng(SEED)
loc, scale = rng.normal(size=(4, 3)), np.exp(0.3 * rng.normal(size=(4, 3)))
print(np.asarray(pairwise_gaussian_kl(loc, scale)).round(2))
print("bound:", float(compression_bound(loc, scale)))
print("all the same:", float(compression_bound(np.ones((4, 3)), np.ones((4, 3)))))

# %% [markdown]
# ## UCI Adult: forget sex, keep income
#
# x: census records (standardised numeric and one-hot categorical features,
# without the sex column), y: income above 50K, c: sex. Three models share
# networks, steps and seed: a VAE (no c), a conditional VAE (c to the decoder,
# λ = 0) and the invariant VAE (λ = 20). Each also predicts y from z (weight
# α = 20), so that z keeps what matters for y.

# %%
adult = load_adult(UCI)
train, test = adult.train, adult.test
x_train, y_train, c_train = train.x[:ROWS], train.y[:ROWS], train.sensitive["sex"][:ROWS]
x_test, y_test, c_test = test.x[:ROWS], test.y[:ROWS], test.sensitive["sex"][:ROWS]
settings = {"seed": SEED, "num_classes": 2, "supervision": 20.0, "hidden": (64, 64)}
methods = {
    "VAE": {"num_categories": None, "compression": 0.0},
    "cVAE": {"num_categories": 2, "compression": 0.0},
    "invariant": {"num_categories": 2, "compression": 20.0},
}
rows = {}
for name, extra in methods.items():
    ivae = make_invariant_vae((x_train.shape[1],), 8, **settings, **extra)
    c = c_train if extra["num_categories"] else None
    result = fit(
        ivae.model,
        ivae.guide,
        ivae.data(x_train, c, y_train),
        seed=SEED,
        num_steps=STEPS,
        batch_size=128,
        optimizer=optax.adam(1e-3),
        loss=TraceMeanField_ELBO(),
        progress=False,
    )
    codes_train = np.asarray(ivae.encode(result.params, x_train)[0])
    codes_test = np.asarray(ivae.encode(result.params, x_test)[0])
    check = {"seed": SEED, "models": ADVERSARIES}
    on_c = adversary_accuracy_split(codes_train, c_train, codes_test, c_test, **check)
    on_y = adversary_accuracy_split(codes_train, y_train, codes_test, y_test, **check)
    rows[name] = {
        "c from z": on_c.best_accuracy,
        "c majority": on_c.majority_rate,
        "y from z": on_y.best_accuracy,
        "y majority": on_y.majority_rate,
    }
pd.DataFrame(rows).T

# %% [markdown]
# "c from z" is the best of the adversaries (logistic regression and MLPs
# with 1–3 hidden layers; only the first in small mode) on the held-out records;
# invariance means it falls towards the majority rate, while "y from z" should stay where it was.
#
# ## MNIST with c = the digit: style transfer
#
# With c the digit's class, the code z of an invariant model holds the *style*
# (slant, width, stroke) and the decoder writes any digit in that style. Each row
# below decodes one test digit's code under c = 0, …, 9:

# %%
digits = load_mnist()
size = 600 if SMALL else 5000
images, _, labels, _ = train_test_split(
    digits.images, digits.labels, train_size=size - 1, random_state=SEED, stratify=digits.labels
)
x_train, x_test, c_train, c_test = train_test_split(
    images, labels, test_size=0.2, random_state=SEED, stratify=labels
)
ivae = make_invariant_vae(
    (28, 28, 1),
    8,
    seed=SEED,
    num_categories=10,
    compression=1.0,
    kind="continuous_bernoulli",
    hidden=(128, 128) if SMALL else (256, 256),
)
result = fit(
    ivae.model,
    ivae.guide,
    ivae.data(x_train, c_train),
    seed=SEED,
    num_steps=STEPS,
    batch_size=128,
    optimizer=optax.adam(1e-3),
    loss=TraceMeanField_ELBO(),
    progress=False,
)
shown = [int(np.flatnonzero(c_test == digit)[0]) for digit in range(0, 10, 2)]
codes_test = np.asarray(ivae.encode(result.params, x_test)[0])
every_c = np.tile(np.arange(10), 5)
grid = ivae.decode(result.params, np.repeat(codes_test[shown], 10, axis=0), every_c)
image_grid(np.asarray(grid), ncols=10, cell_size=0.7)

# %%
codes_train = np.asarray(ivae.encode(result.params, x_train)[0])
digit = adversary_accuracy_split(
    codes_train, c_train, codes_test, c_test, seed=SEED, models=ADVERSARIES
)
print(f"digit from z: {digit.best_accuracy:.3f} (majority {digit.majority_rate:.3f})")
print(f"the whole notebook ran in {time.perf_counter() - started:.0f} s")
