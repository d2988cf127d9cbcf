"""What the Lie-derivative metric costs against one forward pass of the same network.

For a classifier f (a CNN: :class:`invppl.nn.ConvEncoder` with ten logits, or
the P4 group CNN :class:`invppl.nn.GroupCNN`) with random weights from
``--seed`` on a batch of random images, this times, each compiled ahead of
time (``jax.jit(...).lower(...).compile()``):

- ``forward``: the logits f(x), one forward pass;
- ``lee_rotation``: :func:`invppl.metrics.local_equivariance_error` along
  ``rotation`` (bicubic warp): one resampling, the forward pass and its
  tangent (``jax.linearize``), the softmax, |·| and the mean;
- ``lee_affine``: the same along all six affine generators at once (one
  forward pass, six tangents, batched by ``vmap``).

The arms take turns, the order reversed every round, so a change of load
hits all; each is run once to warm up, then ``--repeats`` times. Printed and
written (``--out``): the median time of each, the ratio of each metric's
median to the forward pass's, the paired ratio (the median over rounds of
metric time / forward time in the same round, less moved by changing load),
and the ratio of XLA's floating-point operation counts (moved by no load).
The machine (``invppl._machine.machine_info``), the settings and the seed are
printed first.

    taskset -c 0 .venv/bin/python benchmarks/lie_derivative_cost.py [--network cnn|p4] \\
        [--batch 64] [--image-size 28] [--repeats 20] [--seed 0] [--out results.json]

``--quick`` (batch 4, 12 × 12 images, small networks, 3 repeats) is the smoke
run of ``tests/test_benchmarks_lie.py``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jax
from flax import nnx

from invppl._machine import machine_info, record_results
from invppl.metrics import local_equivariance_error
from invppl.nn import ConvEncoder, GroupCNN
from invppl.transforms import AFFINE_NAMES, Affine

ARMS = ("forward", "lee_rotation", "lee_affine")


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--network", choices=("cnn", "p4"), default="cnn")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--image-size", type=int, default=28)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="tiny sizes: the smoke test")
    parser.add_argument("--out", type=Path, default=None)
    arguments = parser.parse_args(argv)
    if arguments.quick:
        arguments.batch, arguments.image_size, arguments.repeats = 4, 12, 3
    if arguments.batch < 1 or arguments.image_size < 4 or arguments.repeats < 1:
        parser.error("--batch and --repeats must be >= 1 and --image-size >= 4")
    return arguments


def make_network(arguments: argparse.Namespace) -> Callable[[jax.Array], jax.Array]:
    """The classifier under test, ``(batch, size, size, 1)`` → ten logits."""
    shape = (arguments.image_size, arguments.image_size, 1)
    rngs = nnx.Rngs(arguments.seed)
    if arguments.network == "p4":
        channels = (4, 8) if arguments.quick else (8, 16, 16)
        return GroupCNN(shape, 10, group="C4", channels=channels, rngs=rngs)
    channels, hidden = ((8, 16), 32) if arguments.quick else ((32, 64), 256)
    return ConvEncoder(shape, 10, rngs=rngs, channels=channels, hidden=hidden)


def compiled_arms(network: Callable, images: jax.Array) -> dict[str, Any]:
    """Each arm compiled ahead of time for these images."""
    rotation = Affine(("rotation",), method="bicubic")
    affine = Affine(AFFINE_NAMES, method="bicubic")
    functions = {
        "forward": lambda x: network(x),
        "lee_rotation": lambda x: local_equivariance_error(network, x, rotation).per_example,
        "lee_affine": lambda x: local_equivariance_error(network, x, affine).per_example,
    }
    return {name: jax.jit(function).lower(images).compile() for name, function in functions.items()}


def flops(compiled: Any) -> float | None:
    """XLA's count of floating-point operations, where the backend reports one."""
    analysis = compiled.cost_analysis()
    if isinstance(analysis, list):
        analysis = analysis[0] if analysis else None
    value = (analysis or {}).get("flops")
    return float(value) if value is not None else None


def time_arms(compiled: dict[str, Any], images: jax.Array, repeats: int) -> dict[str, list[float]]:
    """Seconds per call of each arm, the arms taking turns (order reversed every round)."""
    for function in compiled.values():
        jax.block_until_ready(function(images))  # warm-up
    times: dict[str, list[float]] = {name: [] for name in compiled}
    for round_index in range(repeats):
        order = list(compiled) if round_index % 2 == 0 else list(reversed(compiled))
        for name in order:
            start = time.perf_counter()
            jax.block_until_ready(compiled[name](images))
            times[name].append(time.perf_counter() - start)
    return times


def summarise(times: dict[str, list[float]], counts: dict[str, float | None]) -> dict[str, Any]:
    forward = times["forward"]
    summary: dict[str, Any] = {
        "median_seconds": {k: statistics.median(v) for k, v in times.items()}
    }
    for name in ARMS[1:]:
        summary[f"{name}_ratio"] = statistics.median(times[name]) / statistics.median(forward)
        paired = [a / b for a, b in zip(times[name], forward, strict=True)]
        summary[f"{name}_paired_ratio"] = statistics.median(paired)
        if counts[name] and counts["forward"]:
            summary[f"{name}_flops_ratio"] = counts[name] / counts["forward"]  # type: ignore[operator]
    return summary


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    arguments = parse(argv)
    machine = machine_info()
    print(f"machine: {machine}")
    print(f"settings: {vars(arguments)} (seed {arguments.seed})")
    shape = (arguments.batch, arguments.image_size, arguments.image_size, 1)
    images = jax.random.uniform(jax.random.key(arguments.seed), shape)
    network = make_network(arguments)
    compiled = compiled_arms(network, images)
    counts = {name: flops(function) for name, function in compiled.items()}
    times = time_arms(compiled, images, arguments.repeats)
    summary = summarise(times, counts)
    for name in ARMS:
        median = summary["median_seconds"][name]
        line = f"{name:>13}: median {1e3 * median:8.3f} ms"
        if name != "forward":
            line += (
                f"  ratio to forward {summary[f'{name}_ratio']:.2f}"
                f" (paired {summary[f'{name}_paired_ratio']:.2f}"
                f", flops {summary.get(f'{name}_flops_ratio', float('nan')):.2f})"
            )
        print(line)
    rows = [{"arm": name, "seconds": times[name], "flops": counts[name]} for name in ARMS]
    return record_results(machine, arguments, rows, summary, arguments.out)


if __name__ == "__main__":
    main()
