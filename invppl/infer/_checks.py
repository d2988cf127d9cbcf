"""Input validation shared by :mod:`invppl.infer`.

Every check raises before any work starts and names what was wrong and what
was expected, so a bad argument never surfaces as a shape error inside a
jitted step.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
from numpyro import handlers
from numpyro.distributions import constraints

from invppl._checks import check_int

__all__ = [
    "check_data",
    "check_data_keys",
    "check_observed_support",
    "check_positive_int",
    "check_seed",
    "model_name",
    "num_examples",
]


def check_positive_int(value: object, name: str) -> int:
    """Returns ``value`` as an ``int`` if it is an integer ≥ 1, else raises.

    >>> check_positive_int(3, "num_steps")
    3
    """
    return check_int(value, name, minimum=1, description="a positive integer (≥ 1)")


def check_seed(value: object) -> int:
    """Returns the seed as an ``int`` if it is an integer in [0, 2**32), else raises.

    >>> check_seed(0)
    0
    """
    return check_int(
        value, "seed", minimum=0, maximum=2**32 - 1, description="an integer in [0, 2**32)"
    )


def check_data(data: object, name: str = "data") -> dict[str, np.ndarray]:
    """Checks a mapping of arrays that share their leading (example) axis.

    Parameters
    ----------
    data
        A mapping ``{keyword: array}``; every array has shape ``(n, ...)`` with
        the same ``n ≥ 1``; floating-point arrays hold only finite values.
    name
        What to call the argument in error messages.

    Returns
    -------
    dict[str, numpy.ndarray]
        The same arrays as NumPy arrays, keys in the given order.

    Raises
    ------
    TypeError
        If ``data`` is not a mapping with string keys.
    ValueError
        If it is empty, an array is a scalar or has no examples, the leading
        axes differ (the message lists every key with its size), or a
        floating-point array holds NaN or infinite values (the message names
        the key).

    >>> arrays = check_data({"x": np.zeros((4, 2)), "y": np.ones(4)})
    >>> {key: value.shape for key, value in arrays.items()}
    {'x': (4, 2), 'y': (4,)}
    """
    if not isinstance(data, Mapping):
        raise TypeError(
            f"{name} must be a mapping {{keyword: array}} passed to the model as model(**batch), "
            f"got {type(data).__name__}"
        )
    if not data:
        raise ValueError(
            f"{name} is empty: expected at least one array, e.g. {{'x': images}} for model(x=...)"
        )
    arrays: dict[str, np.ndarray] = {}
    for key, value in data.items():
        if not isinstance(key, str):
            raise TypeError(f"{name} keys must be strings (model keywords), got {key!r}")
        array = np.asarray(value)
        if array.ndim == 0:
            raise ValueError(
                f"{name}[{key!r}] is a scalar; expected an array with a leading example axis "
                "(n, ...); pass constants to the model through a closure or functools.partial"
            )
        arrays[key] = array
    sizes = {key: array.shape[0] for key, array in arrays.items()}
    if len(set(sizes.values())) > 1:
        listing = ", ".join(f"{key!r}: {size}" for key, size in sizes.items())
        raise ValueError(
            f"{name} arrays must share their leading (example) axis, got sizes {{{listing}}}"
        )
    n = next(iter(sizes.values()))
    if n == 0:
        raise ValueError(f"{name} holds no examples: every array has leading axis 0")
    for key, array in arrays.items():
        if np.issubdtype(array.dtype, np.inexact) and not np.all(np.isfinite(array)):
            bad = int(array.size - np.count_nonzero(np.isfinite(array)))
            raise ValueError(
                f"{name}[{key!r}] contains {bad} NaN or infinite value(s); expected finite values"
            )
    return arrays


def num_examples(arrays: Mapping[str, np.ndarray]) -> int:
    """The shared leading-axis size of checked arrays."""
    return int(next(iter(arrays.values())).shape[0])


def model_name(function: object) -> str:
    """A model's or guide's name for messages and checkpoint metadata.

    A ``functools.partial`` (how invppl binds a model's networks) is named after
    the function it wraps.

    >>> def model(x, *, decoder): ...
    >>> model_name(model), model_name(functools.partial(model, decoder=None))
    ('model', 'model')
    """
    while isinstance(function, functools.partial):
        function = function.func
    name = getattr(function, "__name__", None)
    return name if isinstance(name, str) else type(function).__name__


def _data_keywords(function: Callable[..., Any]) -> tuple[list[str], list[str]] | None:
    """The keywords ``function`` needs and those it may take, or None if it takes any.

    Keywords bound by a ``functools.partial`` are neither.
    """
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):  # a builtin or callable object without a signature
        return None
    bound = set(function.keywords) if isinstance(function, functools.partial) else set()
    required, optional = [], []
    for name, parameter in signature.parameters.items():
        if parameter.kind is inspect.Parameter.VAR_KEYWORD:
            continue
        if parameter.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.POSITIONAL_ONLY):
            continue
        if name in bound:
            continue
        if parameter.default is inspect.Parameter.empty:
            required.append(name)
        elif parameter.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD:
            optional.append(name)  # keyword-only options are settings, not data
    return required, optional


def check_data_keys(function: Callable[..., Any], keys: list[str], role: str, name: str) -> None:
    """Raises ``ValueError`` unless ``function(**batch)`` accepts a batch with ``keys``.

    ``role`` is ``"model"`` or ``"guide"``, ``name`` what the data is called
    (``"data"``); the message lists the keys the function expects.

    E.g. ``{"images": ...}`` for ``model(x, node=None)``: "data has the keys
    ['images'], but the model model(...) takes the data keys ['x'] (required)
    and ['node'] (optional): missing a required argument: 'x'".
    """
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):
        return
    try:
        signature.bind(**dict.fromkeys(keys))
    except TypeError as error:
        wanted = _data_keywords(function)
        expected = "" if wanted is None else f" takes the data keys {wanted[0]} (required)"
        if wanted is not None and wanted[1]:
            expected += f" and {wanted[1]} (optional)"
        raise ValueError(
            f"{name} has the keys {list(keys)}, but the {role} {model_name(function)}(...)"
            f"{expected}: {error}"
        ) from None


def _describe_support(support: constraints.Constraint) -> str:
    """A support in words, e.g. ``"[0, 1]"``, ``"{0, 1}"`` or the constraint's name."""
    while isinstance(support, constraints.independent):
        support = support.base_constraint
    if support is constraints.unit_interval:
        return "[0, 1]"
    if support is constraints.boolean:
        return "{0, 1}"
    if isinstance(support, constraints.interval):
        return f"[{support.lower_bound}, {support.upper_bound}]"
    return type(support).__name__.strip("_")


def _observed_sites(
    model: Callable[..., Any], batch: Mapping[str, Any]
) -> dict[str, tuple[str, str, constraints.Constraint]]:
    """``{data key: (site name, distribution name, support)}`` of the sites observing it.

    ``model(**batch)`` is traced abstractly (nothing is computed); a site counts
    when its observed value is the batch's array itself.
    """
    found: dict[str, tuple[str, str, constraints.Constraint]] = {}

    def probe(batch: dict[str, Any]) -> int:
        trace = handlers.trace(handlers.seed(model, 0)).get_trace(**batch)
        for site_name, site in trace.items():
            if site["type"] != "sample" or not site["is_observed"]:
                continue
            for key, value in batch.items():
                if site["value"] is value:
                    fn = site["fn"]
                    while isinstance(
                        fn, dist.Independent | dist.MaskedDistribution | dist.ExpandedDistribution
                    ):
                        fn = fn.base_dist
                    found[key] = (site_name, type(fn).__name__, site["fn"].support)
        return 0

    jax.eval_shape(probe, dict(batch))
    return found


def check_observed_support(
    model: Callable[..., Any], batch: Mapping[str, Any], arrays: Mapping[str, np.ndarray]
) -> None:
    """Raises ``ValueError`` unless every data array the model observes lies in the site's support.

    ``batch`` ``{key: (b, ...)}`` is one minibatch, with which the model is traced
    abstractly to find the observed sites; ``arrays`` ``{key: (n, ...)}`` is all
    the data, checked whole. E.g. images in 0..255 under a continuous Bernoulli
    (support [0, 1]) are refused, naming the key, the site, the support and the
    data's range.
    """
    for key, (site, distribution, support) in _observed_sites(model, batch).items():
        if key not in arrays:
            continue
        try:
            inside = np.asarray(support(jnp.asarray(arrays[key])))
        except jax.errors.UnexpectedTracerError:  # the support depends on the model's values
            continue
        if inside.all():
            continue
        values = np.asarray(arrays[key])
        outside = int(inside.size - np.count_nonzero(inside))
        unit = "examples" if inside.ndim == 1 and values.ndim > 1 else "values"
        raise ValueError(
            f"data[{key!r}] lies outside the support of the model's observed site {site!r} "
            f"({distribution}, support {_describe_support(support)}): {outside} of "
            f"{inside.size} {unit} are outside; the data range from {values.min():.4g} to "
            f"{values.max():.4g}. Rescale the data (8-bit images: x / 255) or choose a "
            "likelihood whose support holds them (invppl's models: kind='normal' for any "
            "real values, 'continuous_bernoulli' for [0, 1], 'bernoulli' for {0, 1})"
        )
