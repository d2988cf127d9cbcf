"""Samples of η (and z) per example as an ArviZ DataTree with named dimensions.

Every diagnostic in :mod:`invppl.diagnostics` works on the same layout: the
latent sites of an SGM-like model live inside the data plate, so a draw of a
site has a leading ``example`` axis; η's last axis is one coordinate per
transformation parameter, named by the parameters (``"rotation"``, ``"tx"``...).
In the DataTree that is

    posterior.eta   (chain, draw, example, parameter)    parameter = ("rotation", ...)
    posterior.z     (chain, draw, example, z_dim)
    observed_data.x (example, height, width, channels)    the data the draws condition on
    fit.loss        (step,)                               the fit's loss history, if given

A guide's draws are one chain; a reference posterior from NUTS has several.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import arviz_base
import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr
from jax import Array
from jax.typing import ArrayLike
from numpyro import handlers
from numpyro.infer import Predictive
from xarray import DataTree

from invppl._checks import check_int
from invppl.distributions.eta_flow import EtaSupport
from invppl.transforms.support import Discrete, Parameter

__all__ = [
    "eta_parameters",
    "from_guide",
    "from_mcmc",
    "guide_draws",
    "latent_sites",
    "to_datatree",
]


def latent_sites(model_or_guide: Any, params: Mapping[str, Any], x: Array) -> dict[str, dict]:
    """The latent ``sample`` sites of ``model_or_guide(x)`` with ``params`` fixed, by shape only.

    The function is traced abstractly (``jax.eval_shape``), so nothing is computed
    or compiled. Returns ``{name: site}`` in sampling order, observed sites and
    ``numpyro.factor`` sites left out; each site is a dict with ``"value"`` (a
    ``jax.ShapeDtypeStruct``), ``"support"`` (the distribution's support, a
    NumPyro constraint) and ``"distribution"`` (the distribution's class name).

    Raises:
        ValueError: the function fails on ``x`` (e.g. images of another shape than
            its networks take), with the shape of ``x`` and the original error.
    """
    found: dict[str, dict] = {}

    def run(params: Mapping[str, Any], x: Array) -> int:
        seeded = handlers.seed(handlers.substitute(model_or_guide, data=dict(params)), 0)
        trace = handlers.trace(seeded).get_trace(x)
        for name, site in trace.items():
            if (
                site["type"] == "sample"
                and not site["is_observed"]
                and not site.get("infer", {}).get("is_auxiliary", False)
            ):
                value = site["value"]
                found[name] = {
                    "value": jax.ShapeDtypeStruct(jnp.shape(value), jnp.result_type(value)),
                    "support": site["fn"].support,
                    "distribution": type(site["fn"]).__name__,
                }
        return 0

    try:
        jax.eval_shape(run, dict(params), x)
    except (TypeError, ValueError, IndexError) as error:
        name = getattr(model_or_guide, "__name__", None) or getattr(
            getattr(model_or_guide, "func", None), "__name__", type(model_or_guide).__name__
        )
        raise ValueError(
            f"{name}(x) cannot run on examples x of shape {jnp.shape(x)} (are they shaped as "
            f"the data it was fitted on?): {type(error).__name__}: {error}"
        ) from error
    return found


def eta_parameters(
    sites: Mapping[str, dict], eta_site: str, parameters: Sequence[Parameter] | None
) -> tuple[Parameter, ...]:
    """The transformation parameters of η's last axis: ``parameters``, or the site's own.

    Raises:
        KeyError: the model has no latent site ``eta_site``.
        ValueError: η is not ``(batch, k)``, or ``parameters`` does not have k entries.
        TypeError: ``parameters`` is None and the site's support does not name them
            (only invppl's η flows do; pass ``parameters=`` for other distributions).
    """
    if eta_site not in sites:
        raise KeyError(
            f"the model has no latent sample site {eta_site!r} for η; its latent sites are "
            f"{sorted(sites)} (pass eta_site= to name the right one)"
        )
    site = sites[eta_site]
    shape = site["value"].shape
    if len(shape) != 2:
        raise ValueError(
            f"site {eta_site!r} must be (batch, k), one row of transformation parameters per "
            f"example; got shape {shape}"
        )
    if parameters is None:
        support = site["support"]
        if not isinstance(support, EtaSupport):
            raise TypeError(
                f"site {eta_site!r} samples from {site['distribution']}, whose support "
                "does not name the transformation parameters; pass parameters=(Parameter(...),)"
            )
        parameters = support.parameters
    parameters = tuple(parameters)
    discrete = [p.name for p in parameters if isinstance(p.support, Discrete)]
    if discrete:
        raise TypeError(
            f"parameters {discrete} have Discrete supports; the diagnostics handle continuous "
            "η (Interval, Periodic, Real) only"
        )
    if len(parameters) != shape[1]:
        raise ValueError(
            f"site {eta_site!r} has {shape[1]} coordinates but {len(parameters)} parameters "
            f"were given ({[p.name for p in parameters]})"
        )
    return parameters


def _check_per_example(sites: Mapping[str, dict], batch: int) -> None:
    for name, site in sites.items():
        shape = site["value"].shape
        if not shape or shape[0] != batch:
            raise ValueError(
                f"latent site {name!r} has shape {shape}, not one row per example (batch "
                f"{batch}); the diagnostics need every latent site inside the data plate"
            )


def guide_draws(
    guide: Any,
    params: Mapping[str, Any],
    x: Array,
    *,
    num_samples: int,
    seed: int,
    sites: Sequence[str] | None = None,
) -> dict[str, np.ndarray]:
    """``num_samples`` draws of the guide's latent sites for every example of ``x``.

    Args:
        guide: a NumPyro guide called as ``guide(x)``.
        params: the fitted parameters (and mutable state), e.g. ``FitResult.params``.
        x: ``(batch, ...)`` the examples.
        num_samples: draws per example.
        seed: the PRNG seed.
        sites: the sites to return (default: every latent site of the guide).

    Returns:
        ``{site: (num_samples, batch, ...)}`` as NumPy arrays.
    """
    check_int(num_samples, "num_samples", minimum=1)
    present = latent_sites(guide, params, x)
    _check_per_example(present, np.shape(x)[0])
    names = list(present) if sites is None else list(sites)
    missing = sorted(set(names) - set(present))
    if missing:
        raise KeyError(f"the guide has no latent sites {missing}; it has {sorted(present)}")
    predictive = Predictive(
        guide, params=dict(params), num_samples=num_samples, return_sites=names, parallel=False
    )
    draws = predictive(jax.random.PRNGKey(seed), x)
    return {name: np.asarray(draws[name]) for name in names}


def _dims(draws: Mapping[str, np.ndarray], eta_site: str, sample_axes: int) -> dict[str, list[str]]:
    dims: dict[str, list[str]] = {}
    for name, value in draws.items():
        event = np.ndim(value) - sample_axes - 1
        if name == eta_site:
            dims[name] = ["example", "parameter"]
        else:
            dims[name] = ["example"] + [f"{name}_dim_{i}" for i in range(event)]
            if event == 1:
                dims[name] = ["example", f"{name}_dim"]
    return dims


def to_datatree(
    draws: Mapping[str, np.ndarray],
    parameters: Sequence[Parameter],
    *,
    eta_site: str = "eta",
    examples: Sequence[int] | None = None,
    observed: ArrayLike | None = None,
    loss: np.ndarray | None = None,
    sample_stats: Mapping[str, np.ndarray] | None = None,
    group: str = "posterior",
) -> DataTree:
    """Draws ``{site: (chain, draw, example, ...)}`` as an ArviZ DataTree (layout above).

    Args:
        draws: per site, ``(chain, draw, example, ...)``; η is ``(..., example, k)``.
        parameters: the k transformation parameters; their names label η's last axis.
        eta_site: the name of η's site.
        examples: labels of the examples (default ``0, 1, ...``), e.g. their indices
            in the data set.
        observed: ``(example, ...)`` the data, stored in ``observed_data.x``.
        loss: ``(steps,)`` the fit's loss history, stored in ``fit.loss``.
        sample_stats: per-draw statistics ``(chain, draw, example)`` such as ``diverging``.
        group: the group holding the draws (``"posterior"``; e.g. ``"reference"`` to keep
            a second set beside the first).
    """
    if eta_site not in draws:
        raise KeyError(f"no draws of η's site {eta_site!r}; got sites {sorted(draws)}")
    eta = np.asarray(draws[eta_site])
    if eta.ndim != 4 or eta.shape[-1] != len(parameters):
        raise ValueError(
            f"draws of {eta_site!r} must be (chain, draw, example, {len(parameters)}), "
            f"got {eta.shape}"
        )
    count = eta.shape[2]
    labels = list(range(count)) if examples is None else [int(e) for e in examples]
    if len(labels) != count:
        raise ValueError(f"{len(labels)} example labels for {count} examples")
    coords: dict[str, Any] = {"parameter": [p.name for p in parameters], "example": labels}
    dims = _dims(draws, eta_site, sample_axes=2)
    data: dict[str, dict[str, np.ndarray]] = {group: {k: np.asarray(v) for k, v in draws.items()}}
    if sample_stats:
        stats_group = "sample_stats" if group == "posterior" else f"{group}_sample_stats"
        data[stats_group] = {k: np.asarray(v) for k, v in sample_stats.items()}
        dims.update({k: ["example"] for k in sample_stats})
    tree = arviz_base.from_dict(data, dims=dims, coords=coords)
    if observed is not None:
        data_x = np.asarray(observed)
        if data_x.shape[0] != count:
            raise ValueError(f"observed has {data_x.shape[0]} examples, the draws {count}")
        axes = ["example"] + [f"x_dim_{i}" for i in range(data_x.ndim - 1)]
        if data_x.ndim == 4:
            axes = ["example", "height", "width", "channels"]
        tree["observed_data"] = xr.Dataset({"x": (axes, data_x)}, coords={"example": labels})
    if loss is not None:
        tree["fit"] = xr.Dataset({"loss": ("step", np.asarray(loss, dtype=float))})
    return tree


def from_guide(
    guide: Any,
    params: Mapping[str, Any],
    x: Array,
    *,
    parameters: Sequence[Parameter] | None = None,
    eta_site: str = "eta",
    num_samples: int = 1000,
    seed: int = 0,
    examples: Sequence[int] | None = None,
    loss: np.ndarray | None = None,
) -> DataTree:
    """The guide's draws of every latent site for the examples ``x`` as a DataTree.

    ``parameters`` defaults to the η site's own (invppl η flows name them). One
    chain of ``num_samples`` draws; ``observed_data.x`` holds ``x`` and
    ``fit.loss`` the loss history if given.

    >>> import jax.numpy as jnp, numpyro, numpyro.distributions as dist
    >>> from invppl.transforms.support import Parameter, Periodic
    >>> def guide(x):
    ...     with numpyro.plate("data", x.shape[0]):
    ...         numpyro.sample("eta", dist.VonMises(x[:, :1], 4.0).to_event(1))
    >>> tree = from_guide(guide, {}, jnp.zeros((3, 2)), num_samples=5,
    ...                   parameters=(Parameter("rotation", Periodic()),))
    >>> dict(tree.posterior["eta"].sizes)
    {'chain': 1, 'draw': 5, 'example': 3, 'parameter': 1}
    """
    present = latent_sites(guide, params, x)
    parameters = eta_parameters(present, eta_site, parameters)
    draws = guide_draws(guide, params, x, num_samples=num_samples, seed=seed)
    return to_datatree(
        {k: v[None] for k, v in draws.items()},
        parameters,
        eta_site=eta_site,
        examples=examples,
        observed=x,
        loss=loss,
    )


def from_mcmc(
    mcmc: Any,
    parameters: Sequence[Parameter],
    *,
    eta_site: str = "eta",
    examples: Sequence[int] | None = None,
    observed: ArrayLike | None = None,
    loss: np.ndarray | None = None,
) -> DataTree:
    """A NumPyro ``MCMC`` run over a batch of examples as a DataTree (layout above).

    The run's model must keep its latent sites inside the data plate (draws
    ``(chain, draw, example, ...)``). Divergences are per draw of the whole
    batch, so ``sample_stats.diverging`` is repeated for every example.
    """
    samples = mcmc.get_samples(group_by_chain=True)
    draws = {name: np.asarray(value) for name, value in samples.items()}
    extra = mcmc.get_extra_fields(group_by_chain=True)
    stats = {}
    if "diverging" in extra and eta_site in draws:
        diverging = np.asarray(extra["diverging"])
        stats["diverging"] = np.broadcast_to(
            diverging[..., None], (*diverging.shape, draws[eta_site].shape[2])
        ).copy()
    return to_datatree(
        draws,
        parameters,
        eta_site=eta_site,
        examples=examples,
        observed=observed,
        loss=loss,
        sample_stats=stats,
    )
