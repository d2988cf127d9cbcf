"""How the Correlated-VAE forest prior scales with the number of edges |E|.

On random recursive trees (node i > 0 attaches to a parent drawn uniformly
from 0..i−1, as in :func:`invppl.datasets.make_tree_data`; the edges are drawn
here directly with NumPy from ``--seed``) with |E| edges and |E| + 1 nodes,
latent dimension d and τ = 0.8, this times, per size:

- ``construct``: ``ForestPrior(edges, num_nodes, tau=τ, latent_dim=d)`` on the
  host (the graph checks and the rooted structure, in NumPy and Python);
- ``log_prob``: the prior's ``log_prob(z)``, jitted (the prior passed as an
  argument, its graph static);
- ``sample``: the prior's reparameterised ancestral ``sample(key)``, jitted;
- ``edge_kl``: the whole-graph edge term of the CVAE_corr loss, the guide's
  per-node μ, σ ``(n, d)`` gathered at the edges' endpoints with per-edge
  ρ_q ``(|E|, d)`` and :func:`~invppl.distributions.pairwise_kl.edge_kl_term`
  summed over every edge, jitted (the edges passed as an argument);
- ``edge_kl+grad``: the same under ``jax.value_and_grad`` w.r.t. μ, σ and ρ_q;
- ``spanning_tree``: :func:`~invppl.distributions.spanning_tree.spanning_tree_edge_weights`
  on the tree (its forest fast path: every weight is 1), on the host.

Each op is run once to warm up (jitted ops are compiled ahead of time with
``jit(f).lower(...).compile()``; that executable is the one timed), then
``--repeats`` times (``--host-repeats`` for the host ops), blocking on the
result; the median is reported, with nanoseconds per edge. Memory per edge is
reported two ways: XLA's compiled memory analysis (argument + output + temp
bytes; none on backends without it, and not for the host ops; the graph of
``log_prob`` and ``sample`` is baked into the executable as constants, which
that analysis does not count), and the growth of the process's peak resident
set during the op (warm-up and compile included), read from Linux's VmHWM
after resetting it through ``/proc/self/clear_refs``, else from
``resource.getrusage`` (which only grows when an op sets a new process peak).
The last lines give, per op, the fitted slope of log(time) against log(|E|)
over all sizes and over the two largest (1 means linear; fixed per-call costs
pull the all-sizes slope below 1). Prints the machine, the JAX and NumPyro
versions and the seed; writes everything as JSON to ``--out``.

    .venv/bin/python benchmarks/forest_prior_scaling.py [--sizes 1e3 1e4 1e5 1e6] \
        [--latent-dim 8] [--repeats 5] [--host-repeats 3] [--seed 0] \
        [--out reports/forest_prior_scaling.json]

``--quick`` (sizes 100 and 1000, two repeats, one host repeat) is the smoke
run of ``tests/test_benchmarks.py``.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import numpyro

from invppl._io import write_json
from invppl.distributions.forest_prior import ForestPrior
from invppl.distributions.pairwise_kl import edge_kl_term
from invppl.distributions.spanning_tree import spanning_tree_edge_weights

OPS = ("construct", "log_prob", "sample", "edge_kl", "edge_kl+grad", "spanning_tree")
DEFAULT_SIZES = (1_000, 10_000, 100_000, 1_000_000)
QUICK_SIZES = (100, 1_000)


# ---------------------------------------------------------------------------
# the graph


def random_recursive_tree(num_edges: int, seed: int) -> np.ndarray:
    """``(num_edges, 2)`` int64 (parent, child) pairs: child i attaches to a uniform parent < i."""
    rng = np.random.default_rng(seed)
    children = np.arange(1, num_edges + 1, dtype=np.int64)
    parents = rng.integers(0, children)  # uniform in 0..i-1 for each child i
    return np.stack([parents, children], axis=1)


# ---------------------------------------------------------------------------
# memory


class PeakRss:
    """The growth of the process's peak resident set (bytes) across a block of work.

    On Linux the peak (VmHWM) is reset to the current resident set before the
    block by writing 5 to ``/proc/self/clear_refs``, so the growth is that of
    this block alone; elsewhere (or if that is refused) ``ru_maxrss`` is read
    before and after, which grows only when the block sets a new process peak.
    """

    def __init__(self) -> None:
        self.method = "getrusage"
        try:
            self._reset()
            if self._status("VmHWM") is not None:
                self.method = "vmhwm"
        except OSError:
            pass
        self._start = 0

    @staticmethod
    def _status(field: str) -> int | None:
        try:
            with open("/proc/self/status") as handle:
                for line in handle:
                    if line.startswith(field + ":"):
                        return int(line.split()[1]) * 1024  # kB
        except OSError:
            return None
        return None

    @staticmethod
    def _reset() -> None:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")

    @staticmethod
    def _maxrss() -> int:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024  # bytes on macOS, else KiB

    def start(self) -> None:
        if self.method == "vmhwm":
            self._reset()
            self._start = self._status("VmRSS") or 0
        else:
            self._start = self._maxrss()

    def growth(self) -> int:
        peak = self._status("VmHWM") if self.method == "vmhwm" else self._maxrss()
        return max(0, (peak or 0) - self._start)


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
    peak = getattr(stats, "peak_memory_in_bytes", None)
    if peak is not None:
        memory["peak"] = int(peak)
    memory["total"] = memory["argument"] + memory["output"] + memory["temp"]
    return memory


# ---------------------------------------------------------------------------
# timing


def time_calls(call: Callable[[], Any], repeats: int) -> tuple[float, list[float], Any]:
    """Seconds of one warm-up call, of each of ``repeats`` further calls, and the last result."""
    start = time.perf_counter()
    result = jax.block_until_ready(call())
    warmup = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = jax.block_until_ready(call())
        times.append(time.perf_counter() - start)
    return warmup, times, result


def edge_loss(
    mu: jax.Array, sigma: jax.Array, rho: jax.Array, edges: jax.Array, tau: float
) -> jax.Array:
    """Σ over every edge of :func:`edge_kl_term` at the endpoints' q parameters."""
    i, j = edges[:, 0], edges[:, 1]
    return edge_kl_term(mu[i], sigma[i], mu[j], sigma[j], rho, tau).sum()


def measure_size(
    num_edges: int, args: argparse.Namespace, rss: PeakRss
) -> tuple[list[dict[str, Any]], int]:
    """Every op at one size: a row per op, and the tree's depth."""
    num_nodes, d, tau = num_edges + 1, args.latent_dim, args.tau
    edges = random_recursive_tree(num_edges, args.seed)
    rng = np.random.default_rng(args.seed + 1)
    z = jnp.asarray(rng.standard_normal((num_nodes, d), dtype=np.float32))
    mu = jnp.asarray(rng.standard_normal((num_nodes, d), dtype=np.float32))
    sigma = jnp.asarray(rng.uniform(0.5, 1.5, (num_nodes, d)).astype(np.float32))
    rho = jnp.asarray(rng.uniform(-0.5, 0.5, (num_edges, d)).astype(np.float32))
    device_edges = jnp.asarray(edges.astype(np.int32))
    key = jax.random.key(args.seed)

    rows: list[dict[str, Any]] = []

    def record(op: str, warmup: float, times: list[float], **extra: Any) -> None:
        seconds = statistics.median(times)
        growth = rss.growth()
        memory = extra.pop("xla_memory", None)
        rows.append(
            {
                "num_edges": num_edges,
                "num_nodes": num_nodes,
                "op": op,
                "seconds": seconds,
                "ns_per_edge": 1e9 * seconds / num_edges,
                "times": times,
                "warmup_seconds": warmup,
                "xla_memory": memory,
                "xla_bytes_per_edge": None if memory is None else memory["total"] / num_edges,
                "rss_growth_bytes": growth,
                "rss_bytes_per_edge": growth / num_edges,
                **extra,
            }
        )

    # (a) the distribution on the host, then its jitted log_prob
    rss.start()
    warmup, times, prior = time_calls(
        lambda: ForestPrior(edges, num_nodes, tau=tau, latent_dim=d), args.host_repeats
    )
    record("construct", warmup, times)

    jitted_ops: list[tuple[str, Callable[..., Any], tuple[Any, ...]]] = [
        ("log_prob", lambda prior, z: prior.log_prob(z), (prior, z)),
        ("sample", lambda prior, key: prior.sample(key), (prior, key)),
        ("edge_kl", partial(edge_loss, tau=tau), (mu, sigma, rho, device_edges)),
        (
            "edge_kl+grad",
            jax.value_and_grad(partial(edge_loss, tau=tau), argnums=(0, 1, 2)),
            (mu, sigma, rho, device_edges),
        ),
    ]
    for op, function, arguments in jitted_ops:
        rss.start()
        start = time.perf_counter()
        compiled = jax.jit(function).lower(*arguments).compile()
        compile_seconds = time.perf_counter() - start
        warmup, times, _ = time_calls(partial(compiled, *arguments), args.repeats)
        record(op, warmup, times, compile_seconds=compile_seconds, xla_memory=xla_memory(compiled))
        del compiled

    # (d) the uniform-spanning-tree weights (all 1 on a tree)
    rss.start()
    warmup, times, weights = time_calls(
        lambda: spanning_tree_edge_weights(edges, num_nodes), args.host_repeats
    )
    if not np.all(weights == 1.0):
        raise AssertionError("spanning_tree_edge_weights of a tree should be all ones")
    record("spanning_tree", warmup, times)
    return rows, prior.forest.max_depth


def fitted_slope(sizes: list[int], seconds: list[float]) -> float | None:
    """The least-squares slope of log(seconds) against log(sizes) (None for fewer than 2 sizes)."""
    if len(sizes) < 2:
        return None
    slope, _ = np.polyfit(np.log(sizes), np.log(seconds), 1)
    return float(slope)


def _size(text: str) -> int:
    value = float(text)  # accepts 1e6
    if not value.is_integer() or value < 1:
        raise argparse.ArgumentTypeError(f"a size must be a positive integer, got {text!r}")
    return int(value)


def _bytes(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _slope(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes", type=_size, nargs="+", default=None, help="numbers of edges (default 1e3..1e6)"
    )
    parser.add_argument("--latent-dim", type=int, default=8)
    parser.add_argument("--tau", type=float, default=0.8)
    parser.add_argument("--repeats", type=int, default=5, help="timed calls of each jitted op")
    parser.add_argument(
        "--host-repeats", type=int, default=3, help="timed calls of construct and spanning_tree"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"smoke run: sizes {' '.join(map(str, QUICK_SIZES))}, 2 repeats, 1 host repeat",
    )
    parser.add_argument("--out", type=Path, default=Path("reports/forest_prior_scaling.json"))
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes = args.sizes or list(QUICK_SIZES)
        args.repeats, args.host_repeats = 2, 1
    sizes = sorted(set(args.sizes or DEFAULT_SIZES))
    if args.repeats < 1 or args.host_repeats < 1:
        parser.error("--repeats and --host-repeats must be at least 1")
    if args.latent_dim < 1:
        parser.error(f"--latent-dim must be at least 1, got {args.latent_dim}")
    if not abs(args.tau) < 1:
        parser.error(f"--tau must lie inside (-1, 1), got {args.tau}")

    devices = [str(device) for device in jax.devices()]
    machine = {
        "platform": platform.platform(),
        "processor": platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "jax": jax.__version__,
        "numpyro": numpyro.__version__,
        "backend": jax.default_backend(),
        "devices": devices,
    }
    rss = PeakRss()
    print(
        f"machine: {machine['platform']} ({machine['processor']}), {machine['cpu_count']} CPUs; "
        f"jax {jax.__version__} on {', '.join(devices)}; numpyro {numpyro.__version__}; "
        f"seed {args.seed}"
    )
    print(
        f"random recursive trees, |E| in {sizes}, latent_dim {args.latent_dim}, tau {args.tau}; "
        f"median of {args.repeats} jitted / {args.host_repeats} host calls after a warm-up; "
        f"peak RSS by {rss.method}",
        flush=True,
    )
    header = (
        f"{'|E|':>9}  {'op':<13}  {'seconds':>10}  {'ns/edge':>9}  {'XLA B/edge':>10}"
        f"  {'RSS B/edge':>10}  {'depth':>5}"
    )
    print(header)
    began = time.perf_counter()
    rows: list[dict[str, Any]] = []
    for num_edges in sizes:
        size_rows, depth = measure_size(num_edges, args, rss)
        for row in size_rows:
            row["max_depth"] = depth
            print(
                f"{num_edges:>9d}  {row['op']:<13}  {row['seconds']:>10.6f}"
                f"  {row['ns_per_edge']:>9.1f}  {_bytes(row['xla_bytes_per_edge']):>10}"
                f"  {_bytes(row['rss_bytes_per_edge']):>10}  {depth:>5d}",
                flush=True,
            )
        rows.extend(size_rows)
        jax.clear_caches()  # the executables hold this size's graph as constants
        gc.collect()

    slopes: dict[str, dict[str, float | None]] = {}
    for op in OPS:
        op_rows = [row for row in rows if row["op"] == op]
        edges_list = [row["num_edges"] for row in op_rows]
        seconds = [row["seconds"] for row in op_rows]
        slopes[op] = {
            "all_sizes": fitted_slope(edges_list, seconds),
            "largest_two": fitted_slope(edges_list[-2:], seconds[-2:]),
        }
        print(
            f"slope of log(time) vs log(|E|), {op}: {_slope(slopes[op]['all_sizes'])} over "
            f"{len(edges_list)} sizes, {_slope(slopes[op]['largest_two'])} over the largest two"
            " (1 = linear)"
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
        "ops": list(OPS),
        "rss_method": rss.method,
        "total_seconds": total,
        "results": rows,
        "slopes": slopes,
    }
    write_json(results, args.out)
    print(f"wrote {args.out}")
    return results


if __name__ == "__main__":
    main()
