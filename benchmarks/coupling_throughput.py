"""Coupling-flow throughput: invppl's affine coupling flow against flowjax's, in one run.

The same flow in three implementations: ``--layers`` affine coupling layers
(RealNVP, ``y = x · exp(s) + t`` on half the coordinates, ``(s, t)`` from an
MLP of the other half: ``--depth`` hidden layers of ``--width`` SiLU units)
over ``--dim`` coordinates, with a standard normal base:

- ``invppl_stack``: :class:`invppl.nn.CouplingStack` (the conditioners'
  weights stacked, the layers run by ``jax.lax.scan``) with
  :class:`invppl.nn.MLPConditioner` and :func:`invppl.nn.affine_transformer`,
  even and odd coordinates moved in turn;
- ``invppl_numpyro``: the same conditioners (the same weights) as
  :class:`invppl.distributions.AffineCoupling` NumPyro transforms in a
  ``TransformedDistribution`` (the user-facing RealNVP path: NumPyro inverts
  each transform and adds its log-determinant); its log-densities are checked
  equal to ``invppl_stack``'s before anything is timed;
- ``flowjax``: ``flowjax.flows.coupling_flow`` (an ``eqx.nn.MLP`` conditioner
  of the same width, depth and activation, a random permutation after each
  layer, the layers run by ``Scan``), its affine scale set to ``exp`` (the
  RealNVP parameterisation, as invppl's; flowjax's default is
  ``softplus(·) + 0.01``).

invppl's conditioners see every coordinate (the moved ones zeroed) and output
``(s, t)`` for every coordinate (the kept ones discarded), flowjax's only the
kept half and the moved half's parameters: the same width and depth, about
twice the first and last layers' weights (the parameter counts are printed).

Timed: the compiled (``jit(value_and_grad(...)).lower(...).compile()``)
value and gradient, with respect to the flow's weights, of the mean
log-density of ``--batch`` standard-normal points. After a warm-up the arms
take turns (the order rotated every repetition, so a change of load hits all
of them), each timing ``--inner`` calls; printed are the machine, the seed,
the compile times, the median examples per second of each arm and the ratios
to flowjax's.

    nice .venv/bin/python benchmarks/coupling_throughput.py [--dim 64] [--layers 8] \
        [--width 128] [--depth 2] [--batch 256] [--repeats 21] [--inner 10] [--seed 0] \
        [--out coupling_throughput.json]

Needs flowjax (in invppl's ``dev`` extra only, see docs/install.md).
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
import flowjax.distributions
import flowjax.flows
import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import paramax
from flax import nnx
from flowjax.bijections import Affine

from invppl._machine import machine_info, record_results
from invppl.distributions import AffineCoupling
from invppl.nn import CouplingStack, MLPConditioner, affine_transformer, alternating_masks

ARMS = ("invppl_stack", "invppl_numpyro", "flowjax")
"""The implementations timed, in the table's order."""


# ---------------------------------------------------------------- the three flows


def invppl_conditioners(args: argparse.Namespace) -> list[MLPConditioner]:
    """One :class:`MLPConditioner` ``(batch, dim) → (batch, dim, 2)`` per layer."""
    rngs = nnx.Rngs(args.seed)
    return [
        MLPConditioner((args.dim,), (args.dim, 2), 0, width=args.width, depth=args.depth, rngs=rngs)
        for _ in range(args.layers)
    ]


def stack_log_prob(stack: CouplingStack, x: jax.Array) -> jax.Array:
    """log p(x) ``(batch,)`` of ``x`` ``(batch, dim)``: the stack maps z to x, inverted here."""
    z, log_det = stack(x, inverse=True)
    return jax.scipy.stats.norm.logpdf(z).sum(-1) + log_det


def numpyro_flow(conditioners: Sequence[MLPConditioner], dim: int) -> Any:
    """The same couplings as NumPyro transforms: a ``TransformedDistribution`` over ``(dim,)``."""
    moved = np.asarray(alternating_masks(dim, len(conditioners)), dtype=bool)
    transforms = [
        AffineCoupling(~mask, conditioner)  # AffineCoupling's mask: the kept coordinates
        for mask, conditioner in zip(moved, conditioners, strict=True)
    ]
    base = dist.Normal(jnp.zeros(dim), 1.0).to_event(1)
    return dist.TransformedDistribution(base, transforms)


def flowjax_flow(args: argparse.Namespace) -> Any:
    """flowjax's coupling flow of the same size, its affine scale ``exp(·)`` as RealNVP's."""
    transformer = eqx.tree_at(
        lambda affine: affine.scale, Affine(), replace=paramax.Parameterize(jnp.exp, jnp.zeros(()))
    )
    return flowjax.flows.coupling_flow(
        jax.random.key(args.seed),
        base_dist=flowjax.distributions.Normal(jnp.zeros(args.dim)),
        transformer=transformer,
        flow_layers=args.layers,
        nn_width=args.width,
        nn_depth=args.depth,
        nn_activation=jax.nn.silu,
    )


# ---------------------------------------------------------------- losses and timing

Loss = Callable[[Any, jax.Array], jax.Array]
"""``loss(weights, x (batch, dim)) -> mean log-density``."""


def losses(args: argparse.Namespace, x: jax.Array) -> tuple[dict[str, tuple[Loss, Any]], float]:
    """Per arm, ``(mean log-density of a batch, as a function of the weights and x; weights)``.

    Also returns the largest ``|log p|`` difference of the two invppl arms on ``x``.
    """
    conditioners = invppl_conditioners(args)
    masks = alternating_masks(args.dim, args.layers)
    stack = CouplingStack(masks, conditioners, affine_transformer)
    stack_graph, stack_weights = nnx.split(stack, nnx.Param)
    graphs, weights = zip(*(nnx.split(c, nnx.Param) for c in conditioners), strict=True)
    flow = flowjax_flow(args)
    flow_weights, flow_static = eqx.partition(
        flow, eqx.is_inexact_array, is_leaf=lambda leaf: isinstance(leaf, paramax.NonTrainable)
    )

    def stack_loss(w: Any, x: jax.Array) -> jax.Array:
        return stack_log_prob(nnx.merge(stack_graph, w), x).mean()

    def numpyro_log_prob(w: Any, x: jax.Array) -> jax.Array:
        nets = [nnx.merge(g, p) for g, p in zip(graphs, w, strict=True)]
        return numpyro_flow(nets, args.dim).log_prob(x)

    def numpyro_loss(w: Any, x: jax.Array) -> jax.Array:
        return numpyro_log_prob(w, x).mean()

    def flowjax_loss(w: Any, x: jax.Array) -> jax.Array:
        return paramax.unwrap(eqx.combine(w, flow_static)).log_prob(x).mean()

    arms = {
        "invppl_stack": (stack_loss, stack_weights),
        "invppl_numpyro": (numpyro_loss, list(weights)),
        "flowjax": (flowjax_loss, flow_weights),
    }
    stack_lp = jax.jit(stack_log_prob)(stack, x)
    numpyro_lp = jax.jit(numpyro_log_prob)(list(weights), x)
    return arms, float(jnp.max(jnp.abs(stack_lp - numpyro_lp)))


def parameter_count(weights: Any) -> int:
    """The number of scalars in a pytree of arrays."""
    return sum(math.prod(np.shape(leaf)) for leaf in jax.tree.leaves(weights))


def compiled(loss: Loss, weights: Any, x: jax.Array) -> tuple[Callable[..., Any], float]:
    """``jit(value_and_grad(loss))`` (in the weights) compiled for ``(weights, x)``; seconds."""
    start = time.perf_counter()
    function = jax.jit(jax.value_and_grad(loss)).lower(weights, x).compile()
    return function, time.perf_counter() - start


def seconds_per_call(function: Callable[..., Any], weights: Any, x: jax.Array, inner: int) -> float:
    """Wall-clock seconds per call over ``inner`` calls (the last result waited for)."""
    start = time.perf_counter()
    for _ in range(inner):
        out = function(weights, x)
    jax.block_until_ready(out)
    return (time.perf_counter() - start) / inner


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Compiles every arm, checks its value is finite, times the arms in turn."""
    x = jax.random.normal(jax.random.key(args.seed + 1), (args.batch, args.dim))
    arms, difference = losses(args, x)
    if not difference < 1e-3:
        raise AssertionError(f"the two invppl flows disagree: max |Δ log p| = {difference}")
    functions, compile_s = {}, {}
    for name, (loss, weights) in arms.items():
        functions[name], compile_s[name] = compiled(loss, weights, x)
        value, _ = functions[name](weights, x)
        if not np.isfinite(float(value)):
            raise FloatingPointError(f"{name}: the mean log-density is {float(value)}")
        seconds_per_call(functions[name], weights, x, max(1, args.inner // 2))  # warm up
    times: dict[str, list[float]] = {name: [] for name in ARMS}
    for repeat in range(args.repeats):
        shift = repeat % len(ARMS)
        for name in ARMS[shift:] + ARMS[:shift]:
            times[name].append(seconds_per_call(functions[name], arms[name][1], x, args.inner))
    median = {name: statistics.median(values) for name, values in times.items()}
    return {
        "max_abs_log_prob_difference_invppl": difference,
        "parameters": {name: parameter_count(arm[1]) for name, arm in arms.items()},
        "compile_s": compile_s,
        "median_ms": {name: 1e3 * value for name, value in median.items()},
        "examples_per_s": {name: args.batch / value for name, value in median.items()},
        "times_ms": {name: [1e3 * v for v in values] for name, values in times.items()},
    }


# ---------------------------------------------------------------- command line


def _arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dim", type=int, default=64, help="event size (even)")
    parser.add_argument("--layers", type=int, default=8, help="coupling layers")
    parser.add_argument("--width", type=int, default=128, help="conditioner hidden width")
    parser.add_argument("--depth", type=int, default=2, help="conditioner hidden layers")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=21)
    parser.add_argument("--inner", type=int, default=10, help="calls per timing")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    for name in ("dim", "layers", "width", "depth", "batch", "repeats", "inner"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be a positive integer, got {getattr(args, name)}")
    if args.dim < 2 or args.dim % 2:
        parser.error(f"--dim must be even and at least 2 (half moved per layer), got {args.dim}")
    return args


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Runs the benchmark, prints a table, returns (and with ``--out`` writes) the record."""
    args = _arguments(argv)
    machine = machine_info()
    print(f"machine: {machine}")
    print(
        f"seed {args.seed}; dim {args.dim}, {args.layers} layers, conditioner width "
        f"{args.width} × depth {args.depth}, batch {args.batch}; "
        f"{args.repeats} × {args.inner} calls per arm"
    )
    row = measure(args)
    reference = row["examples_per_s"]["flowjax"]
    print(f"max |Δ log p| between the invppl arms: {row['max_abs_log_prob_difference_invppl']:.1e}")
    print(
        f"{'arm':<16}{'parameters':>11}{'compile s':>11}{'median ms':>11}{'examples/s':>12}"
        f"{'/ flowjax':>10}"
    )
    for name in ARMS:
        print(
            f"{name:<16}{row['parameters'][name]:>11}{row['compile_s'][name]:>11.2f}"
            f"{row['median_ms'][name]:>11.3f}{row['examples_per_s'][name]:>12.0f}"
            f"{row['examples_per_s'][name] / reference:>10.3f}"
        )
    summary = {
        "examples_per_s": row["examples_per_s"],
        **{f"{name}_over_flowjax": row["examples_per_s"][name] / reference for name in ARMS[:2]},
    }
    return record_results(machine, args, [row], summary, args.out)


if __name__ == "__main__":
    main()
