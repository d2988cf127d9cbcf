"""The η flow's speed: the NNX coupling flow against the equinox flow it replaced (issue 13).

Both arms are the same conditional rational-quadratic spline flow over η
(:mod:`invppl.distributions.eta_flow`): the same masks, the same spline
transformer (invppl's ``_transform_coordinates``, shared), the same SiLU
conditioner. ``old`` is a frozen copy of the equinox implementation (its
conditioner an ``eqx.Module`` whose layers are stacked and run by
``jax.lax.scan``), kept here only; ``new`` is :class:`invppl.distributions.EtaFlow`,
Flax NNX coupling layers (a :class:`~invppl.nn.coupling.CouplingStack`: the
conditioners' weights stored stacked, run by ``jax.lax.scan``).
The new flow is given the old flow's weights (the first layer's inputs
permuted to its feature layout), and the two log-densities are checked equal
before anything is timed.

Timed: the compiled (``jit(...).lower(...).compile()``) value and gradient,
with respect to the flow's weights, of the mean log-density of a batch of
``--batch`` η given contexts of ``--context-dim`` (``--layers`` coupling
layers, ``--knots`` knots, width 32, depth 2), for k = 1 (a rotation) and k = 3
(rotation, log-scale interval, real shift) parameters. The arms take turns
(the order swapped every repetition), each timing ``--inner`` calls, so a
change of load hits both; printed are the machine, the seed, the compile
times, the median per-call times and new / old.

    nice .venv/bin/python benchmarks/eta_flow_speed.py [--batch 256] [--dims 1 3] \
        [--context-dim 16] [--layers 4] [--knots 8] [--repeats 21] [--inner 20] \
        [--seed 0] [--out reports/eta_flow_speed.json]

Needs equinox (the old arm's library; in invppl's ``dev`` extra).
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from invppl._machine import machine_info, record_results
from invppl.distributions.eta_flow import (
    EtaFlow,
    _Kinds,
    _transform_coordinates,
    check_parameters,
    eta_flow,
)
from invppl.transforms.support import Interval, Parameter, Periodic, Real

PARAMETERS = (
    Parameter("rotation", Periodic()),
    Parameter("log_scale", Interval(-0.5, 0.5)),
    Parameter("shift", Real()),
)
_LOG_2PI = math.log(2 * math.pi)


# ---------------------------------------------------------------------------
# the old implementation, frozen (invppl/distributions/eta_flow.py before issue 13,
# less its flowjax base class: only the log-density path is timed)


class _OldMLP(eqx.Module):
    layers: tuple[eqx.nn.Linear, ...]

    def __init__(self, key: jax.Array, in_size: int, out_size: int, width: int, depth: int):
        sizes = [in_size, *([width] * depth), out_size]
        keys = jax.random.split(key, len(sizes) - 1)
        self.layers = tuple(
            eqx.nn.Linear(n_in, n_out, key=k)
            for n_in, n_out, k in zip(sizes[:-1], sizes[1:], keys, strict=True)
        )

    def __call__(self, x: jax.Array) -> jax.Array:
        for layer in self.layers[:-1]:
            x = jax.nn.silu(layer(x))
        return self.layers[-1](x)


def _old_features(kinds: _Kinds, values: jax.Array) -> jax.Array:
    angle = 2 * math.pi * values
    first = jnp.where(
        kinds.periodic, jnp.cos(angle), jnp.where(kinds.interval, 2 * values - 1, values)
    )
    second = jnp.where(kinds.periodic, jnp.sin(angle), 0.0)
    return jnp.concatenate([first, second])


class OldEtaFlow(eqx.Module):
    """The equinox η flow: stacked conditioners run by ``jax.lax.scan``."""

    parameters: tuple[Parameter, ...] = eqx.field(static=True)
    knots: int = eqx.field(static=True)
    masks: tuple[tuple[bool, ...], ...] = eqx.field(static=True)
    conditioner: _OldMLP

    def __init__(self, key, parameters, context_dim, *, knots=8, layers=4, width=32, depth=2):
        parameters = check_parameters(parameters)
        dim = len(parameters)
        self.parameters = parameters
        self.knots = int(knots)
        self.masks = tuple(
            tuple(dim == 1 or (i + layer) % 2 == 0 for i in range(dim)) for layer in range(layers)
        )
        in_size = int(context_dim) + 2 * dim
        out_size = dim * (3 * self.knots + 1)
        networks = [
            _OldMLP(layer_key, in_size, out_size, width, depth)
            for layer_key in jax.random.split(key, layers)
        ]
        self.conditioner = jax.tree.map(lambda *leaves: jnp.stack(leaves), *networks)

    def _layer(self, network, mask, working, context, *, inverse):
        kinds = _Kinds.of(self.parameters)
        features = _old_features(kinds, working) * jnp.tile(1.0 - mask, 2)
        raw = network(jnp.concatenate([features, context]))
        moved, log_det = _transform_coordinates(
            kinds,
            working,
            raw.reshape(len(self.parameters), 3 * self.knots + 1),
            bins=self.knots,
            min_bin=1e-3,
            min_derivative=1e-3,
            tail_bound=5.0,
            inverse=inverse,
        )
        return jnp.where(mask, moved, working), jnp.sum(jnp.where(mask, log_det, 0.0))

    def _layers(self, working, context, *, inverse):
        networks, static = eqx.partition(self.conditioner, eqx.is_array)
        masks = jnp.asarray(np.array(self.masks, dtype=np.float32))

        def step(carry, layer):
            current, total = carry
            network, mask = layer
            current, log_det = self._layer(
                eqx.combine(network, static), mask, current, context, inverse=inverse
            )
            return (current, total + log_det), None

        (working, log_det), _ = jax.lax.scan(
            step, (working, jnp.zeros(())), (networks, masks), reverse=inverse
        )
        return working, log_det

    def _log_prob(self, eta, condition):
        working, log_det, inside = [], jnp.zeros(()), jnp.array(True)
        for i, parameter in enumerate(self.parameters):
            support, value = parameter.support, eta[i]
            if isinstance(support, Interval):
                span = support.high - support.low
                u = (value - support.low) / span
                inside = inside & (u >= 0) & (u <= 1)
                working.append(jnp.clip(u, 0.0, 1.0))
                log_det = log_det + math.log(span)
            elif isinstance(support, Periodic):
                working.append(jnp.mod(value - support.low, support.period) / support.period)
                log_det = log_det + math.log(support.period)
            else:
                inside = inside & jnp.isfinite(value)
                working.append(value)
        base, inverse_log_det = self._layers(jnp.stack(working), condition, inverse=True)
        base_log_prob = jnp.zeros(())
        for i, parameter in enumerate(self.parameters):
            if isinstance(parameter.support, Real):
                base_log_prob = base_log_prob - 0.5 * (base[i] ** 2 + _LOG_2PI)
        return jnp.where(inside, base_log_prob + inverse_log_det - log_det, -jnp.inf)

    def log_prob(self, eta, context):
        return jnp.vectorize(self._log_prob, signature="(k),(c)->()")(eta, context)


# ---------------------------------------------------------------------------
# the same weights in both


def ported(old: OldEtaFlow, context_dim: int, width: int, depth: int) -> EtaFlow:
    """The NNX flow holding ``old``'s weights.

    Old inputs are ``[first features (k), second features (k), context]``; new
    ones ``[(first, second) per coordinate (k × 2), context]``; old weights are
    ``(out, in)``, NNX kernels ``(in, out)``.
    """
    dim = len(old.parameters)
    new = eta_flow(
        jax.random.key(0),
        old.parameters,
        context_dim,
        knots=old.knots,
        layers=len(old.masks),
        width=width,
        depth=depth,
    )
    order = [feature * dim + i for i in range(dim) for feature in range(2)]
    order += list(range(2 * dim, 2 * dim + context_dim))
    state = nnx.to_pure_dict(nnx.state(new, nnx.Param))
    for index, linear in state["couplings"]["conditioners"]["layers"].items():
        weight = np.asarray(old.conditioner.layers[index].weight)  # (layers, out, in)
        if index == 0:
            weight = weight[:, :, order]
        linear["kernel"] = jnp.asarray(np.swapaxes(weight, 1, 2))  # (layers, in, out)
        linear["bias"] = old.conditioner.layers[index].bias
    params = nnx.state(new, nnx.Param)
    nnx.replace_by_pure_dict(params, state)
    nnx.update(new, params)
    return new


# ---------------------------------------------------------------------------
# timing


def _compiled(
    arm: str, flow: Any, eta: jax.Array, context: jax.Array
) -> tuple[Callable[[Any], Any], Any, float]:
    """The compiled value-and-gradient of the mean log-density, its weights, compile seconds."""
    if arm == "old":
        weights, static = eqx.partition(flow, eqx.is_inexact_array)

        def loss(weights: Any) -> jax.Array:
            return eqx.combine(weights, static).log_prob(eta, context).mean()

    else:
        graph, weights = nnx.split(flow, nnx.Param)

        def loss(weights: Any) -> jax.Array:
            return nnx.merge(graph, weights).log_prob(eta, context).mean()

    start = time.perf_counter()
    compiled = jax.jit(jax.value_and_grad(loss)).lower(weights).compile()
    return compiled, weights, time.perf_counter() - start


def _time(function: Callable[[Any], Any], weights: Any, inner: int) -> float:
    """Milliseconds per call over ``inner`` calls."""
    start = time.perf_counter()
    for _ in range(inner):
        out = function(weights)
    jax.block_until_ready(out)
    return 1e3 * (time.perf_counter() - start) / inner


def measure(dim: int, args: argparse.Namespace) -> dict[str, Any]:
    """One row: both arms at ``dim`` parameters, checked equal, compiled, timed in turn."""
    parameters = PARAMETERS[:dim] if dim <= len(PARAMETERS) else None
    if parameters is None:
        parameters = tuple(Parameter(f"p{i}", PARAMETERS[i % 3].support) for i in range(dim))
    key, eta_key, context_key = jax.random.split(jax.random.key(args.seed), 3)
    old = OldEtaFlow(key, parameters, args.context_dim, knots=args.knots, layers=args.layers)
    new = ported(old, args.context_dim, width=32, depth=2)
    context = jax.random.normal(context_key, (args.batch, args.context_dim))
    eta = new(context).sample(eta_key)
    old_log_prob = jax.jit(lambda e, c: old.log_prob(e, c))(eta, context)
    new_log_prob = jax.jit(lambda e, c: new.log_prob(e, c))(eta, context)
    difference = float(jnp.max(jnp.abs(old_log_prob - new_log_prob)))
    if not difference < 1e-3:
        raise AssertionError(f"the two flows disagree by {difference} at k = {dim}")
    arms = {"old": _compiled("old", old, eta, context), "new": _compiled("new", new, eta, context)}
    times: dict[str, list[float]] = {"old": [], "new": []}
    for function, weights, _ in arms.values():
        _time(function, weights, 2)  # warm up
    for repeat in range(args.repeats):
        order = ("old", "new") if repeat % 2 == 0 else ("new", "old")
        for name in order:
            function, weights, _ = arms[name]
            times[name].append(_time(function, weights, args.inner))
    medians = {name: statistics.median(values) for name, values in times.items()}
    return {
        "dim": dim,
        "max_abs_log_prob_difference": difference,
        "compile_s": {name: arm[2] for name, arm in arms.items()},
        "median_ms": medians,
        "ratio_new_over_old": medians["new"] / medians["old"],
        "times_ms": times,
    }


def _arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--dims", type=int, nargs="+", default=[1, 3])
    parser.add_argument("--context-dim", type=int, default=16)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--knots", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=21)
    parser.add_argument("--inner", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Runs the benchmark, prints a table, returns (and with ``--out`` writes) the record."""
    args = _arguments(argv)
    machine = machine_info()
    print(f"machine: {machine}")
    print(
        f"seed {args.seed}; batch {args.batch}, context {args.context_dim}, "
        f"{args.layers} layers, {args.knots} knots; {args.repeats} × {args.inner} calls per arm"
    )
    print(" k  |Δ log p|   compile old/new (s)   median old/new (ms)   new/old")
    rows = []
    for dim in args.dims:
        row = measure(dim, args)
        rows.append(row)
        compile_s, median = row["compile_s"], row["median_ms"]
        print(
            f"{dim:2d}  {row['max_abs_log_prob_difference']:.1e}   "
            f"{compile_s['old']:6.2f} / {compile_s['new']:6.2f}        "
            f"{median['old']:7.3f} / {median['new']:7.3f}      "
            f"{row['ratio_new_over_old']:.3f}"
        )
    summary = {str(row["dim"]): row["ratio_new_over_old"] for row in rows}
    return record_results(machine, args, rows, summary, args.out)


if __name__ == "__main__":
    main()
