"""The cost of the compression term (Moyer et al., 2018): broadcast, matrix product, O(B d).

The term is the mean of the B × B matrix of pairwise KLs between a batch's
diagonal Gaussian posteriors. At each batch size B (latent dimension d,
default 32; μ ~ N(0, 1), σ ~ U(0.5, 1.5), drawn from ``--seed``) this times,
as in training, the jitted ``value_and_grad`` of the bound with respect to μ
and σ for

- ``naive``: the textbook broadcast, which forms (B, B, d) tensors of
  σ_i²/σ_j² and (μ_i − μ_j)/σ_j and sums over d;
- ``matrix``: the mean of :func:`invppl.distributions.pairwise_gaussian_kl`,
  one (B, 2d) @ (2d, B) matrix product, O(B² d) time and O(B² + B d) memory;
- ``separable``: :func:`invppl.distributions.compression_bound`, the same
  value from the matrix's row means in closed form, O(B d) time and memory.

Each is compiled ahead of time (``jit(f).lower(...).compile()``), run once to
warm up, then ``--repeats`` times, taking turns (the order reversed each
round, so a change of load hits all); the median is reported. Memory is XLA's
compiled memory analysis (argument + output + temp bytes). ``naive`` is
compiled at every size (compiling allocates nothing) but not run where XLA
plans more than ``--memory-cap-gb`` for it (where the backend reports no
analysis, B² d × 4 bytes, one float32 (B, B, d) tensor, is the estimate); the
row says "skipped" and why. The printed ratios are naive / matrix and
matrix / separable (time and memory); ``diff`` is the largest
|other − matrix| / matrix of the bound's value over the other two.

Then, "does it dominate a training step?": one jitted Adam step of a small
MLP VAE (encoder 784→256→(μ, σ) in d dimensions, decoder d→256→784 Bernoulli
logits, plain JAX and optax) on random binary data at batch ``--train-batch``
(512), without and with λ · B · bound (λ = 1) in the loss, the bound by
``matrix`` or by ``separable``, the three taking turns; the term's share of the
step is (with − without) / with, by median time and by XLA's count of
floating-point operations (which no load moves).

Prints the machine, the versions, the process's niceness and the seed; writes
everything as JSON to ``--out``.

    nice .venv/bin/python benchmarks/compression_term.py [--sizes 64 128 ... 4096] \
        [--latent-dim 32] [--repeats 5] [--memory-cap-gb 4] [--train-batch 512] \
        [--train-repeats 30] [--seed 0] [--out reports/compression_term.json]

``--quick`` (B in 64 and 128, two repeats, three training steps) is the smoke
run of ``tests/test_benchmarks.py``.
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import optax

from invppl._io import write_json
from invppl.distributions.compression import compression_bound, pairwise_gaussian_kl

IMPLEMENTATIONS = ("naive", "matrix", "separable")
DEFAULT_SIZES = (64, 128, 256, 512, 1024, 2048, 4096)
QUICK_SIZES = (64, 128)


# ---------------------------------------------------------------------------
# the two implementations


def matrix_bound(loc: jax.Array, scale: jax.Array) -> jax.Array:
    """The mean of invppl's pairwise KL matrix: a matrix product, no (B, B, d) tensor."""
    return jnp.mean(pairwise_gaussian_kl(loc, scale))


def separable_bound(loc: jax.Array, scale: jax.Array) -> jax.Array:
    """invppl's bound: the matrix's row means in closed form, no (B, B) matrix."""
    return compression_bound(loc, scale)


def naive_bound(loc: jax.Array, scale: jax.Array) -> jax.Array:
    """The same bound by broadcasting to (B, B, d): ½ Σ_d [r + Δ² − 1 − log r], averaged."""
    ratio = jnp.square(scale[:, None, :] / scale[None, :, :])  # σ_i² / σ_j²
    diff = (loc[:, None, :] - loc[None, :, :]) / scale[None, :, :]
    kl = 0.5 * jnp.sum(ratio + jnp.square(diff) - 1.0 - jnp.log(ratio), axis=-1)
    return jnp.mean(kl)


BOUNDS: dict[str, Callable[[jax.Array, jax.Array], jax.Array]] = {
    "naive": naive_bound,
    "matrix": matrix_bound,
    "separable": separable_bound,
}


# ---------------------------------------------------------------------------
# measuring


def xla_memory(compiled: Any) -> dict[str, int] | None:
    """XLA's memory analysis of a compiled executable (bytes); None where the backend lacks it."""
    try:
        stats = compiled.memory_analysis()
    except (AttributeError, NotImplementedError, RuntimeError):
        return None
    if stats is None:
        return None
    fields = ("argument", "output", "temp", "alias", "generated_code")
    memory = {name: int(getattr(stats, f"{name}_size_in_bytes", 0) or 0) for name in fields}
    memory["total"] = memory["argument"] + memory["output"] + memory["temp"]
    return memory


def xla_flops(compiled: Any) -> float:
    """XLA's count of floating-point operations of a compiled executable (nan if none)."""
    try:
        cost = compiled.cost_analysis()
    except (AttributeError, NotImplementedError, RuntimeError):
        return math.nan
    if isinstance(cost, list | tuple):  # one entry per device in older JAX
        cost = cost[0] if cost else None
    return float(cost.get("flops", math.nan)) if cost else math.nan


def alternate(calls: list[Callable[[], Any]], repeats: int) -> list[list[float]]:
    """Seconds of each of ``repeats`` calls of each callable, after one warm-up call each.

    The callables take turns, the order reversed every other round.
    """
    for call in calls:
        jax.block_until_ready(call())
    times: list[list[float]] = [[] for _ in calls]
    for done in range(repeats):
        order = range(len(calls)) if done % 2 == 0 else reversed(range(len(calls)))
        for index in order:
            start = time.perf_counter()
            jax.block_until_ready(calls[index]())
            times[index].append(time.perf_counter() - start)
    return times


def measure_size(batch: int, args: argparse.Namespace) -> list[dict[str, Any]]:
    """Every implementation at one batch size: a row each."""
    rng = np.random.default_rng([args.seed, batch])
    loc = jnp.asarray(rng.standard_normal((batch, args.latent_dim), dtype=np.float32))
    scale = jnp.asarray(rng.uniform(0.5, 1.5, (batch, args.latent_dim)).astype(np.float32))
    cap = args.memory_cap_gb * 1e9

    compiled: dict[str, Any] = {}
    rows: dict[str, dict[str, Any]] = {}
    for name, bound in BOUNDS.items():
        start = time.perf_counter()
        executable = jax.jit(jax.value_and_grad(bound, argnums=(0, 1))).lower(loc, scale).compile()
        memory = xla_memory(executable)
        planned = memory["total"] if memory is not None else 4 * batch * batch * args.latent_dim
        row: dict[str, Any] = {
            "batch": batch,
            "implementation": name,
            "latent_dim": args.latent_dim,
            "compile_seconds": time.perf_counter() - start,
            "xla_memory": memory,
            "memory_bytes": None if memory is None else memory["total"],
            "flops": xla_flops(executable),
            "skipped": None,
        }
        if name == "naive" and planned > cap:
            how = "XLA plans" if memory is not None else "one (B, B, d) float32 tensor is"
            row["skipped"] = (
                f"{how} {planned / 1e9:.2f} GB > the --memory-cap-gb of {args.memory_cap_gb:g} GB"
            )
        else:
            compiled[name] = executable
        rows[name] = row

    names = list(compiled)
    times = alternate(
        [lambda name=name: compiled[name](loc, scale) for name in names], args.repeats
    )
    values = {}
    for name, name_times in zip(names, times, strict=True):
        rows[name]["times"] = name_times
        rows[name]["seconds"] = statistics.median(name_times)
        values[name] = float(compiled[name](loc, scale)[0])
        rows[name]["value"] = values[name]
    for name in values:  # against the matrix (every bound here is > 0)
        rows[name]["relative_difference"] = abs(values[name] - values["matrix"]) / values["matrix"]
    return [rows[name] for name in IMPLEMENTATIONS]


# ---------------------------------------------------------------------------
# a training step


def init_vae(key: jax.Array, input_dim: int, hidden: int, latent_dim: int) -> dict[str, Any]:
    """Weights of an MLP VAE: encoder input→hidden→2·latent, decoder latent→hidden→input."""
    shapes = {
        "enc1": (input_dim, hidden),
        "enc2": (hidden, 2 * latent_dim),
        "dec1": (latent_dim, hidden),
        "dec2": (hidden, input_dim),
    }
    keys = jax.random.split(key, len(shapes))
    return {
        name: {
            "w": jax.random.normal(k, shape) / np.sqrt(shape[0]),
            "b": jnp.zeros(shape[1]),
        }
        for k, (name, shape) in zip(keys, shapes.items(), strict=True)
    }


def _dense(layer: dict[str, jax.Array], x: jax.Array) -> jax.Array:
    return x @ layer["w"] + layer["b"]


def vae_loss(params: dict[str, Any], x: jax.Array, noise: jax.Array, term: str | None) -> jax.Array:
    """The negative single-sample ELBO summed over the batch, plus B · bound by ``term``."""
    hidden = jax.nn.gelu(_dense(params["enc1"], x))
    loc, raw_scale = jnp.split(_dense(params["enc2"], hidden), 2, axis=-1)
    scale = jax.nn.softplus(raw_scale) + 1e-4
    z = loc + scale * noise
    logits = _dense(params["dec2"], jax.nn.gelu(_dense(params["dec1"], z)))
    log_lik = -optax.sigmoid_binary_cross_entropy(logits, x).sum(-1)
    kl_prior = (0.5 * (jnp.square(scale) + jnp.square(loc) - 1.0) - jnp.log(scale)).sum(-1)
    loss = -(log_lik - kl_prior).sum()
    if term is not None:
        loss = loss + x.shape[0] * BOUNDS[term](loc, scale)
    return loss


def training_step(term: str | None, args: argparse.Namespace) -> tuple[Any, Any]:
    """An ahead-of-time compiled Adam step on :func:`vae_loss`, and its initial state."""
    optimizer = optax.adam(1e-3)
    params = init_vae(jax.random.key(args.seed), args.input_dim, args.hidden, args.latent_dim)
    state = (params, optimizer.init(params), jax.random.key(args.seed + 1))

    def step(state, x):
        params, opt_state, key = state
        key, sub = jax.random.split(key)
        noise = jax.random.normal(sub, (x.shape[0], args.latent_dim))
        loss, grads = jax.value_and_grad(vae_loss)(params, x, noise, term)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state, key), loss

    data = jnp.zeros((args.train_batch, args.input_dim))
    return jax.jit(step).lower(state, data).compile(), state


def measure_training(args: argparse.Namespace) -> dict[str, Any]:
    """Median step time and flops without the compression term and with it, by two forms."""
    rng = np.random.default_rng(args.seed + 2)
    x = jnp.asarray((rng.uniform(size=(args.train_batch, args.input_dim)) < 0.3).astype(np.float32))
    arms = {
        "without": training_step(None, args),
        "matrix": training_step("matrix", args),
        "separable": training_step("separable", args),
    }
    states = {name: state for name, (_, state) in arms.items()}

    def call(name: str) -> Callable[[], Any]:
        def run() -> Any:
            states[name], loss = arms[name][0](states[name], x)
            return loss

        return run

    names = list(arms)
    times = alternate([call(name) for name in names], args.train_repeats)
    result: dict[str, Any] = {"batch": args.train_batch, "weight": 1.0}
    for name, name_times in zip(names, times, strict=True):
        result[f"{name}_times"] = name_times
        result[f"{name}_seconds"] = statistics.median(name_times)
        result[f"{name}_flops"] = xla_flops(arms[name][0])
    for name in ("matrix", "separable"):
        result[f"{name}_time_share"] = 1.0 - result["without_seconds"] / result[f"{name}_seconds"]
        result[f"{name}_flops_share"] = 1.0 - result["without_flops"] / result[f"{name}_flops"]
    return result


# ---------------------------------------------------------------------------
# the command line


def _size(text: str) -> int:
    value = float(text)
    if not value.is_integer() or value < 1:
        raise argparse.ArgumentTypeError(f"a batch size must be a positive integer, got {text!r}")
    return int(value)


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{1e3 * seconds:.3f}"


def _mb(value: float | None) -> str:
    return "-" if value is None else f"{value / 1e6:.2f}"


def _ratio(numerator: float | None, denominator: float | None) -> str:
    if numerator is None or denominator is None or denominator == 0:
        return "-"
    return f"{numerator / denominator:.1f}"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=_size, nargs="+", default=None, help="batch sizes B")
    parser.add_argument("--latent-dim", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per implementation")
    parser.add_argument(
        "--memory-cap-gb", type=float, default=4.0, help="do not run naive above this (XLA plan)"
    )
    parser.add_argument("--train-batch", type=_size, default=512)
    parser.add_argument("--train-repeats", type=int, default=30, help="timed steps per arm")
    parser.add_argument("--input-dim", type=int, default=784)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="B in 64, 128; few repeats")
    parser.add_argument("--out", type=Path, default=Path("reports/compression_term.json"))
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes = args.sizes or list(QUICK_SIZES)
        args.repeats, args.train_repeats = 2, 3
    sizes = sorted(set(args.sizes or DEFAULT_SIZES))
    for name in ("latent_dim", "repeats", "train_repeats", "input_dim", "hidden"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if not args.memory_cap_gb > 0:
        parser.error(f"--memory-cap-gb must be positive, got {args.memory_cap_gb}")

    devices = [str(device) for device in jax.devices()]
    machine = {
        "platform": platform.platform(),
        "processor": platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "jax": jax.__version__,
        "numpyro": numpyro.__version__,
        "optax": optax.__version__,
        "backend": jax.default_backend(),
        "devices": devices,
        "niceness": os.nice(0),
    }
    print(
        f"machine: {machine['platform']} ({machine['processor']}), {machine['cpu_count']} CPUs; "
        f"jax {jax.__version__} on {', '.join(devices)}; numpyro {numpyro.__version__}; "
        f"optax {optax.__version__}; nice {machine['niceness']}; seed {args.seed}"
    )
    print(
        f"compression bound, jitted value_and_grad w.r.t. (loc, scale), B in {sizes}, "
        f"latent_dim {args.latent_dim}; median of {args.repeats} calls after a warm-up; "
        f"memory = XLA argument + output + temp; naive not run above {args.memory_cap_gb:g} GB",
        flush=True,
    )
    header = (
        f"{'B':>6}  {'naive ms':>9}  {'matrix ms':>9}  {'O(Bd) ms':>9}  {'n/m':>6}  {'m/O(Bd)':>7}"
        f"  {'naive MB':>9}  {'matrix MB':>9}  {'O(Bd) MB':>8}  {'n/m':>6}  {'m/O(Bd)':>7}"
        f"  {'diff':>7}"
    )
    print(header)
    began = time.perf_counter()
    rows: list[dict[str, Any]] = []
    for batch in sizes:
        naive, matrix, separable = measure_size(batch, args)
        naive_seconds = None if naive["skipped"] else naive["seconds"]
        differences = [row.get("relative_difference") for row in (naive, separable)]
        difference = max((d for d in differences if d is not None), default=None)
        line = (
            f"{batch:>6d}  {_ms(naive_seconds):>9}  {_ms(matrix['seconds']):>9}"
            f"  {_ms(separable['seconds']):>9}  {_ratio(naive_seconds, matrix['seconds']):>6}"
            f"  {_ratio(matrix['seconds'], separable['seconds']):>7}"
            f"  {_mb(naive['memory_bytes']):>9}  {_mb(matrix['memory_bytes']):>9}"
            f"  {_mb(separable['memory_bytes']):>8}"
            f"  {_ratio(naive['memory_bytes'], matrix['memory_bytes']):>6}"
            f"  {_ratio(matrix['memory_bytes'], separable['memory_bytes']):>7}"
            f"  {'-' if difference is None else f'{difference:.0e}':>7}"
        )
        if naive["skipped"]:
            line += f"  naive skipped: {naive['skipped']}"
        print(line, flush=True)
        rows.extend([naive, matrix, separable])
        jax.clear_caches()
        gc.collect()

    print(
        f"training step: MLP VAE {args.input_dim}->{args.hidden}->{args.latent_dim} (and back), "
        f"Adam, batch {args.train_batch}, median of {args.train_repeats} steps after a warm-up",
        flush=True,
    )
    training = measure_training(args)
    print(
        f"  without the term {_ms(training['without_seconds'])} ms "
        f"({training['without_flops']:.3g} flops)"
    )
    for name in ("matrix", "separable"):
        print(
            f"  with it by {name + ':':<10} {_ms(training[f'{name}_seconds'])} ms "
            f"({training[f'{name}_flops']:.3g} flops): the term's share "
            f"{100 * training[f'{name}_time_share']:.1f}% of the time, "
            f"{100 * training[f'{name}_flops_share']:.1f}% of the flops"
        )
    total = time.perf_counter() - began
    print(f"total {total:.1f} s")

    results: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine,
        "seed": args.seed,
        "arguments": {
            key: str(value) if isinstance(value, Path) else value
            for key, value in vars(args).items()
        },
        "sizes": sizes,
        "implementations": list(IMPLEMENTATIONS),
        "total_seconds": total,
        "results": rows,
        "training": training,
    }
    write_json(results, args.out)
    print(f"wrote {args.out}")
    return results


if __name__ == "__main__":
    main()
