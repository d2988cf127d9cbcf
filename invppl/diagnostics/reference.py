"""A reference posterior for η (and z) by NUTS, holding the fitted networks fixed.

For each chosen example x_n the target is the model's exact posterior with
every network and flow at its fitted value θ̂:

    p(η, z | x_n, θ̂) ∝ p(z) p(η | x̂(z)) p(x_n | x̂(z), η)

The examples are independent given θ̂, so each gets its own NUTS chains (own
step size, mass matrix and trajectory lengths); the chains of all examples run
together under ``jax.vmap`` through NumPyro's functional HMC interface
(``numpyro.infer.hmc.hmc``), in one compiled program.

Sampling coordinates: a periodic η coordinate is sampled as an unbounded real
u with η = wrap(u), a periodic potential, so chains cross the seam at ±π
freely (NumPyro's ``CircularReparam`` does the same for von Mises sites); an
interval coordinate through a scaled sigmoid; every other latent site through
``biject_to`` of its support. Chains start over-dispersed: periodic
coordinates uniform on the circle, the others uniform in (−2, 2) in sampling
coordinates (NumPyro's ``init_to_uniform``).

:func:`convergence` summarises the chains per example with ArviZ: rank-
normalised R-hat, bulk and tail ESS (for a periodic coordinate, the worse of
those of cos η and sin η, which do not see the seam) and the number of
divergent transitions, and flags examples whose reference is itself not
converged: they cannot judge the guide.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any

import arviz_stats
import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import xarray as xr
from jax import Array
from numpyro import handlers
from numpyro.distributions.transforms import biject_to
from numpyro.infer.hmc import hmc
from numpyro.infer.util import log_density
from xarray import DataTree

from invppl.diagnostics._checks import check_counts
from invppl.diagnostics.convert import (
    _check_per_example,
    eta_parameters,
    latent_sites,
    to_datatree,
)
from invppl.transforms.support import Interval, Parameter, Periodic

__all__ = ["convergence", "reference_posterior"]


class _Coordinates:
    """Sampling coordinates u ↔ site values, with ``log |d value / d u|``."""

    def __init__(self, sites: Mapping[str, dict], eta_site: str, parameters: Sequence[Parameter]):
        self.names = list(sites)
        self.eta_site = eta_site
        self.parameters = tuple(parameters)
        self.transforms = {
            name: biject_to(site["support"]) for name, site in sites.items() if name != eta_site
        }
        # a single example: every site is (1, ...)
        self.shapes = {name: (1, *site["value"].shape[1:]) for name, site in sites.items()}

    def _eta(self, u: Array) -> tuple[Array, Array]:
        values, log_det = [], jnp.zeros(())
        for i, parameter in enumerate(self.parameters):
            support, ui = parameter.support, u[..., i]
            if isinstance(support, Periodic):
                values.append(support.wrap(ui))
            elif isinstance(support, Interval):
                span = support.high - support.low
                values.append(support.low + span * jax.nn.sigmoid(ui))
                log_det = log_det + jnp.sum(
                    jnp.log(span) - jax.nn.softplus(-ui) - jax.nn.softplus(ui)
                )
            else:
                values.append(ui)
        return jnp.stack(values, axis=-1), log_det

    def constrain(self, u: Mapping[str, Array]) -> tuple[dict[str, Array], Array]:
        values, log_det = {}, jnp.zeros(())
        for name in self.names:
            if name == self.eta_site:
                values[name], extra = self._eta(u[name])
            else:
                transform = self.transforms[name]
                values[name] = transform(u[name])
                extra = jnp.sum(transform.log_abs_det_jacobian(u[name], values[name]))
            log_det = log_det + extra
        return values, log_det

    def initial(self, key: Array) -> dict[str, Array]:
        keys = jax.random.split(key, len(self.names))
        start = {}
        for key_i, name in zip(keys, self.names, strict=True):
            u = jax.random.uniform(key_i, self.shapes[name], minval=-2.0, maxval=2.0)
            if name == self.eta_site:
                for i, parameter in enumerate(self.parameters):
                    if isinstance(parameter.support, Periodic):
                        support = parameter.support
                        u = u.at[..., i].set(support.low + support.period * (u[..., i] + 2) / 4)
            start[name] = u
        return start


def _potential(
    model: Any, params: Mapping[str, Any], coordinates: _Coordinates
) -> Callable[[Array], Callable[[dict[str, Array]], Array]]:
    fixed = handlers.substitute(model, data=dict(params))

    def generator(x1: Array) -> Callable[[dict[str, Array]], Array]:
        def potential(u: dict[str, Array]) -> Array:
            values, log_det = coordinates.constrain(u)
            log_joint, _ = log_density(fixed, (x1,), {}, values)
            return -(log_joint + log_det)

        return potential

    return generator


_Run = Callable[[Array, Array], tuple[dict[str, Array], Array, Array, Array]]
"""``run(key, x1)``: one NUTS chain on one example ``x1`` ``(1, ...)``; see :func:`_nuts_run`."""


def _nuts_run(
    model: Any,
    params: Mapping[str, Any],
    coordinates: _Coordinates,
    *,
    num_warmup: int,
    num_samples: int,
    max_tree_depth: int,
    target_accept_prob: float,
) -> _Run:
    """One NUTS chain as a function ``run(key, x1)`` of a PRNG key and one example ``x1``.

    ``run`` starts over-dispersed (:meth:`_Coordinates.initial`), adapts the step
    size and a diagonal mass matrix over ``num_warmup`` discarded steps, then
    returns ``num_samples`` draws: ``({site: (num_samples, 1, ...)}, diverging,
    num_steps, accept_prob)``, the last three ``(num_samples,)``.
    """
    init_kernel, sample_kernel = hmc(
        potential_fn_gen=_potential(model, params, coordinates), algo="NUTS"
    )

    def run(key: Array, x1: Array) -> tuple[dict[str, Array], Array, Array, Array]:
        start_key, run_key = jax.random.split(key)
        state = init_kernel(
            coordinates.initial(start_key),
            num_warmup,
            model_args=(x1,),
            rng_key=run_key,
            max_tree_depth=max_tree_depth,
            target_accept_prob=target_accept_prob,
        )
        step = partial(sample_kernel, model_args=(x1,))
        state = jax.lax.fori_loop(0, num_warmup, lambda _, s: step(s), state)

        def draw(s: Any, _: None) -> tuple[Any, tuple]:
            s = step(s)
            values, _log_det = coordinates.constrain(s.z)
            return s, (values, s.diverging, s.num_steps, s.accept_prob)

        _, (values, diverging, steps, accept) = jax.lax.scan(draw, state, None, length=num_samples)
        return values, diverging, steps, accept

    return run


def _layout(a: Array, batch: int, num_chains: int) -> np.ndarray:
    """``(batch · num_chains, draw, ...)``, example-major, → ``(chain, draw, example, ...)``."""
    flat = np.asarray(a)
    return np.moveaxis(flat.reshape((batch, num_chains, *flat.shape[1:])), 0, 2)


def _every_chain(
    run: _Run, x: Array, num_chains: int, seed: int
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """``num_chains`` runs of ``run`` on every example of ``x`` ``(batch, ...)``, in one program.

    Returns ``({site: (chain, draw, example, ...)}, sample_stats)``, the stats
    ``diverging``, ``tree_depth`` (log2 of the leapfrog steps + 1) and
    ``accept_prob``, each ``(chain, draw, example)``.
    """
    batch = x.shape[0]
    keys = jax.random.split(jax.random.PRNGKey(seed), batch * num_chains)
    # one flat vmap over (example, chain) pairs traces faster than a nested one
    repeated = jnp.repeat(x, num_chains, axis=0)[:, None]
    values, diverging, steps, accept = jax.jit(jax.vmap(run))(keys, repeated)
    draws = {k: _layout(v[:, :, 0], batch, num_chains) for k, v in values.items()}
    stats = {
        "diverging": _layout(diverging, batch, num_chains),
        "tree_depth": np.log2(_layout(steps, batch, num_chains) + 1.0),
        "accept_prob": _layout(accept, batch, num_chains),
    }
    return draws, stats


def reference_posterior(
    model: Any,
    params: Mapping[str, Any],
    x: Array,
    *,
    parameters: Sequence[Parameter] | None = None,
    eta_site: str = "eta",
    num_chains: int = 4,
    num_warmup: int = 500,
    num_samples: int = 500,
    max_tree_depth: int = 8,
    target_accept_prob: float = 0.9,
    seed: int = 0,
    examples: Sequence[int] | None = None,
) -> DataTree:
    """NUTS draws of every latent site of ``model(x)`` per example, networks fixed.

    Args:
        model: a NumPyro model called as ``model(x)`` whose latent sites lie in the
            data plate (one row per example), among them η at ``eta_site``.
        params: the fitted parameters (and mutable state) of the model's networks.
        x: ``(batch, ...)`` the examples to condition on, e.g. ``(batch, H, W, C)``.
        parameters: η's transformation parameters (default: the η site's own).
        num_chains, num_warmup, num_samples: per example; warm-up adapts the step
            size and a diagonal mass matrix and is discarded.
        max_tree_depth, target_accept_prob: NUTS settings.
        seed: the PRNG seed.
        examples: labels of the examples for the DataTree (default ``0, 1, ...``).

    Returns:
        A DataTree: ``posterior`` ``(chain, draw, example, ...)`` per latent site,
        ``sample_stats`` with ``diverging``, ``tree_depth`` (log2 of the leapfrog
        steps + 1) and ``accept_prob``, ``observed_data.x``.

    Raises:
        KeyError, ValueError, TypeError: see :func:`~invppl.diagnostics.eta_parameters`;
        ``ValueError`` for a latent site outside the data plate or bad counts.
    """
    check_counts(
        num_chains=(num_chains, 1),
        num_warmup=(num_warmup, 1),
        num_samples=(num_samples, 2),
        max_tree_depth=(max_tree_depth, 1),
    )
    if not 0 < target_accept_prob < 1:
        raise ValueError(f"target_accept_prob must be in (0, 1), got {target_accept_prob}")
    x = jnp.asarray(x)
    sites = latent_sites(model, params, x)
    _check_per_example(sites, x.shape[0])
    parameters = eta_parameters(sites, eta_site, parameters)
    coordinates = _Coordinates(sites, eta_site, parameters)
    run = _nuts_run(
        model,
        params,
        coordinates,
        num_warmup=num_warmup,
        num_samples=num_samples,
        max_tree_depth=max_tree_depth,
        target_accept_prob=target_accept_prob,
    )
    draws, stats = _every_chain(run, x, num_chains, seed)
    return to_datatree(
        draws,
        parameters,
        eta_site=eta_site,
        examples=examples,
        observed=np.asarray(x),
        sample_stats=stats,
    )


def _diagnosed_draws(posterior: xr.Dataset, periodic: Sequence[str], eta_site: str) -> xr.Dataset:
    """Each site flattened to ``(chain, draw, example, coordinate)``, periodic η as cos and sin."""
    columns = []
    for name, value in posterior.data_vars.items():
        if name == eta_site:
            for parameter in value.coords["parameter"].values:
                v = value.sel(parameter=parameter)
                if parameter in periodic:
                    columns += [np.cos(v.values), np.sin(v.values)]
                else:
                    columns.append(v.values)
        else:
            flat = value.values.reshape((*value.shape[:3], -1))
            columns += [flat[..., j] for j in range(flat.shape[-1])]
    stacked = np.stack(columns, axis=-1)
    return xr.Dataset({"c": (("chain", "draw", "example", "coordinate"), stacked)})


def convergence(
    reference: DataTree,
    parameters: Sequence[Parameter],
    *,
    eta_site: str = "eta",
    rhat_max: float = 1.01,
    ess_min: float | None = None,
) -> pd.DataFrame:
    """Per example: worst R-hat, bulk and tail ESS over all coordinates, and divergences.

    Args:
        reference: a DataTree from :func:`reference_posterior` (or
            :func:`~invppl.diagnostics.from_mcmc`) with at least 2 chains.
        parameters: η's transformation parameters (periodic ones are diagnosed
            through cos η and sin η).
        rhat_max: the largest R-hat taken as converged (Vehtari et al. 2021: 1.01).
        ess_min: the smallest bulk and tail ESS taken as converged
            (default 100 per chain).

    Returns:
        A DataFrame indexed by example with columns ``rhat``, ``ess_bulk``,
        ``ess_tail``, ``divergences`` and ``converged`` (all four criteria met).
    """
    posterior = reference["posterior"].to_dataset()
    chains = posterior.sizes["chain"]
    if chains < 2:
        raise ValueError(f"convergence needs at least 2 chains per example, got {chains}")
    ess_min = 100.0 * chains if ess_min is None else float(ess_min)
    periodic = [p.name for p in parameters if isinstance(p.support, Periodic)]
    draws = _diagnosed_draws(posterior, periodic, eta_site)
    rhat = arviz_stats.rhat(draws)["c"].max("coordinate").values
    bulk = arviz_stats.ess(draws, method="bulk")["c"].min("coordinate").values
    tail = arviz_stats.ess(draws, method="tail")["c"].min("coordinate").values
    if "sample_stats" in reference.children and "diverging" in reference["sample_stats"]:
        divergences = np.asarray(reference["sample_stats"]["diverging"].sum(("chain", "draw")))
    else:
        divergences = np.zeros(posterior.sizes["example"], dtype=int)
    table = pd.DataFrame(
        {
            "rhat": rhat,
            "ess_bulk": bulk,
            "ess_tail": tail,
            "divergences": divergences.astype(int),
        },
        index=pd.Index(posterior.coords["example"].values, name="example"),
    )
    table["converged"] = (
        (table.rhat <= rhat_max)
        & (table.ess_bulk >= ess_min)
        & (table.ess_tail >= ess_min)
        & (table.divergences == 0)
    )
    return table
