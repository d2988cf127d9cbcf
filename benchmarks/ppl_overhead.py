"""What the PPL costs per SVI step: invppl's VAE and SGM vs hand-written Flax NNX + optax steps.

For each model, both arms compute the same single-sample ELBO of the same
networks on the same batch and apply the same Adam update inside one
``jax.jit``: the invppl arm is ``numpyro.infer.SVI`` with ``Trace_ELBO`` on the
model and guide of :func:`invppl.models.make_vae` / :func:`invppl.models.make_sgm`,
the hand-written arm splits the same networks (the SGM's η flows among them)
with ``nnx.split`` and writes the ELBO out by hand. The two arms
step alternately (one step of each in turn, the order swapped every other
time), so a change of load on the machine hits both; the median step time of
each, their ratio invppl / hand-written (target: at most 1.05) and invppl's
examples per second are printed per model and batch size, with the machine,
the JAX backend and the seed; so are the steps timed and the *paired ratio*,
the median over steps of (invppl step / the hand-written step beside it),
which is less moved than the ratio of medians by load that changes while a
size is timed, and the ratio of the two steps' floating-point operations as
XLA counts them, which no load moves. ``--out results.json`` also writes them as JSON,
with every step's time.

    .venv/bin/python benchmarks/ppl_overhead.py [--models vae sgm] \
        [--batch-sizes 64 256 1024] [--steps 30] [--max-seconds 60] [--out results.json]

``tests/test_benchmarks.py`` checks that each hand-written loss equals
NumPyro's ``Trace_ELBO`` loss (and its gradient) at the same parameters and
the same random draws.
"""

from __future__ import annotations

import argparse
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
import optax
from flax import nnx
from jax.scipy.stats import norm
from numpyro.infer import SVI, Trace_ELBO

from invppl._io import write_json
from invppl.datasets import load_mnist
from invppl.models import make_sgm, make_vae

MODELS = ("vae", "sgm")
_EPS = 1e-5  # the Bernoulli likelihood's clipping of probabilities (as in image_likelihood)

Step = Callable[[Any, jax.Array], Any]


# ---------------------------------------------------------------------------
# timing


def _timed(
    arms: list[tuple[Step, Any]], batch: jax.Array, steps: int, max_seconds: float | None
) -> list[list[float]]:
    """Seconds per step of each arm, stepping the arms alternately.

    Each arm is compiled and warmed up first; then one step of each in turn
    (first one order, then the other), ``steps`` times, or fewer (at least 3)
    once ``max_seconds`` have passed.
    """
    states = []
    for step, state in arms:
        state = step(state, batch)  # compile and warm up
        jax.block_until_ready(state)
        states.append(state)
    times: list[list[float]] = [[] for _ in arms]
    began = time.perf_counter()
    for done in range(steps):
        if max_seconds is not None and done >= 3 and time.perf_counter() - began > max_seconds:
            break
        order = range(len(arms)) if done % 2 == 0 else reversed(range(len(arms)))
        for index in order:  # which arm goes first alternates too
            step = arms[index][0]
            start = time.perf_counter()
            states[index] = step(states[index], batch)
            jax.block_until_ready(states[index])
            times[index].append(time.perf_counter() - start)
    return times


def _flops(step: Step, state: Any, batch: jax.Array) -> float:
    """XLA's count of floating-point operations in one step, before optimisation (nan if none).

    Independent of the load on the machine; lowering here is reused by the first call.
    """
    cost = step.lower(state, batch).cost_analysis()  # type: ignore[attr-defined]
    if isinstance(cost, list | tuple):  # one entry per device in older JAX
        cost = cost[0] if cost else None
    return float(cost.get("flops", math.nan)) if cost else math.nan


def invppl_step(bundle: Any, batch: jax.Array, seed: int) -> tuple[Step, Any]:
    """One jitted ``SVI.update`` (``Trace_ELBO``, Adam 1e-3) of a VAE or SGM and its state."""
    svi = SVI(bundle.model, bundle.guide, optax.adam(1e-3), Trace_ELBO())
    state = jax.jit(svi.init)(jax.random.key(seed), batch)  # jitted: eager init is slower

    @jax.jit
    def step(state, x):
        return svi.update(state, x)[0]

    return step, state


def _adam_step(
    negative_elbo: Callable[..., jax.Array],
    draw_noise: Callable[[jax.Array, int], tuple[jax.Array, ...]],
    params: Any,
    seed: int,
) -> tuple[Step, Any]:
    """A jitted Adam (1e-3) step on ``negative_elbo(params, x, *draw_noise(key, batch))``."""
    optimizer = optax.adam(1e-3)

    @jax.jit
    def step(state, x):
        params, opt_state, key = state
        key, sub = jax.random.split(key)
        grads = jax.grad(negative_elbo)(params, x, *draw_noise(sub, x.shape[0]))
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, key

    return step, (params, optimizer.init(params), jax.random.key(seed))


def _bernoulli_log_lik(x: jax.Array, mean: jax.Array) -> jax.Array:
    probs = jnp.clip(mean, _EPS, 1 - _EPS)
    return (x * jnp.log(probs) + (1 - x) * jnp.log1p(-probs)).sum((1, 2, 3))


def _check_bernoulli(bundle: Any) -> None:
    kind = bundle.model.keywords.get("kind", "bernoulli")
    if kind != "bernoulli":
        raise ValueError(f"the hand-written steps score a Bernoulli likelihood, got {kind!r}")


# ---------------------------------------------------------------------------
# the VAE by hand


def vae_negative_elbo(vae: Any) -> tuple[Any, Callable[..., jax.Array], Callable]:
    """The VAE's initial parameters, its negative ELBO and its noise, written by hand.

    Returns ``(params, negative_elbo, draw_noise)``: ``params`` is
    ``{"encoder": State, "decoder": State}`` of the networks' ``nnx.Param`` s,
    ``negative_elbo(params, x, z_noise)`` is ``-(log p(x | z) + log p(z) -
    log q(z | x))`` summed over the batch with ``z = loc + scale * z_noise``,
    and ``draw_noise(key, batch_size)`` draws ``(z_noise,)``.
    """
    _check_bernoulli(vae)
    networks = {"encoder": vae.guide.keywords["encoder"], "decoder": vae.model.keywords["decoder"]}
    graph, params = nnx.split(networks, nnx.Param)

    def negative_elbo(params, x, z_noise):
        networks = nnx.merge(graph, params)
        loc, scale = networks["encoder"](x)
        z = loc + scale * z_noise
        log_lik = _bernoulli_log_lik(x, jax.nn.sigmoid(networks["decoder"](z)))
        log_prior = norm.logpdf(z).sum(1)
        log_q = norm.logpdf(z, loc, scale).sum(1)
        return -(log_lik + log_prior - log_q).sum()

    def draw_noise(key, batch_size):
        return (jax.random.normal(key, (batch_size, vae.latent_dim)),)

    return params, negative_elbo, draw_noise


def vae_handwritten_step(vae: Any, batch: jax.Array, seed: int) -> tuple[Step, Any]:
    params, negative_elbo, draw_noise = vae_negative_elbo(vae)
    return _adam_step(negative_elbo, draw_noise, params, seed)


# ---------------------------------------------------------------------------
# the SGM by hand

_SGM_NETWORKS = ("pose_embedding", "encoder", "decoder", "prior_embedding")
_SGM_FLOWS = ("pose_flow", "prior_flow")


def sgm_negative_elbo(sgm: Any) -> tuple[Any, Callable[..., jax.Array], Callable]:
    """The SGM's initial parameters, its negative ELBO and its noise, written by hand.

    Returns ``(params, negative_elbo, draw_noise)``:

    - ``params = {"networks": State, "flows": State}``, the ``nnx.Param`` s of
      the four networks and of the two η flows (which ``nnx_module`` registers
      as ``f"{name}$params"``);
    - ``negative_elbo(params, x, eta_noise, z_noise)``, summed over the batch:
      η from the pose flow's base noise (``transform_noise``, which also gives
      log q(η | x)), x moved back by η, z = loc + scale * z_noise from the
      encoder of the moved-back x, the prototype sigmoid(decoder(z)), then
      ``-(log p(x | T_η x̂) + log p(z) + log p(η | x̂) - log q(η | x) - log q(z | T_η⁻¹ x))``;
    - ``draw_noise(key, batch_size)`` draws ``(eta_noise, z_noise)``.
    """
    _check_bernoulli(sgm)
    bound = sgm.model.keywords | sgm.guide.keywords
    family, latent_dim = sgm.family, sgm.latent_dim
    graph, networks = nnx.split({name: bound[name] for name in _SGM_NETWORKS}, nnx.Param)
    flow_graph, flow_weights = nnx.split({name: bound[name] for name in _SGM_FLOWS}, nnx.Param)
    params = {"networks": networks, "flows": flow_weights}

    def negative_elbo(params, x, eta_noise, z_noise):
        nets = nnx.merge(graph, params["networks"])
        flows = nnx.merge(flow_graph, params["flows"])
        pose_flow, prior_flow = flows["pose_flow"], flows["prior_flow"]
        # guide: η ~ q(η | x), z ~ q(z | T_η⁻¹ x)
        eta, log_q_eta = jax.vmap(pose_flow.transform_noise)(eta_noise, nets["pose_embedding"](x))
        loc, scale = nets["encoder"](family.apply(x, -eta))
        z = loc + scale * z_noise
        log_q_z = norm.logpdf(z, loc, scale).sum(1)
        # model: p(z) p(η | x̂) p(x | T_η x̂)
        prototype = jax.nn.sigmoid(nets["decoder"](z))
        log_p_z = norm.logpdf(z).sum(1)
        log_p_eta = prior_flow.log_prob(eta, nets["prior_embedding"](prototype))
        log_lik = _bernoulli_log_lik(x, family.apply(prototype, eta))
        return -(log_lik + log_p_z + log_p_eta - log_q_eta - log_q_z).sum()

    def draw_noise(key, batch_size):
        eta_key, z_key = jax.random.split(key)
        eta_noise = bound["pose_flow"].base_noise(eta_key, (batch_size,))
        return eta_noise, jax.random.normal(z_key, (batch_size, latent_dim))

    return params, negative_elbo, draw_noise


def sgm_handwritten_step(sgm: Any, batch: jax.Array, seed: int) -> tuple[Step, Any]:
    params, negative_elbo, draw_noise = sgm_negative_elbo(sgm)
    return _adam_step(negative_elbo, draw_noise, params, seed)


# ---------------------------------------------------------------------------
# the command line


def _build(model: str, args: argparse.Namespace) -> Any:
    """The model's bundle, with freshly initialised networks."""
    if model == "vae":
        return make_vae((28, 28, 1), args.latent_dim, seed=args.seed, hidden=args.vae_hidden)
    return make_sgm(
        (28, 28, 1),
        args.latent_dim,
        tuple(args.transformations),
        seed=args.seed,
        hidden=args.sgm_hidden,
        context_dim=args.context_dim,
    )


def _describe(model: str, args: argparse.Namespace) -> str:
    if model == "vae":
        return f"make_vae((28, 28, 1), {args.latent_dim}, hidden={args.vae_hidden})"
    return (
        f"make_sgm((28, 28, 1), {args.latent_dim}, {tuple(args.transformations)}, "
        f"hidden={args.sgm_hidden}, context_dim={args.context_dim})"
    )


HANDWRITTEN = {"vae": vae_handwritten_step, "sgm": sgm_handwritten_step}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[64, 128, 256, 512, 1024])
    parser.add_argument("--steps", type=int, default=30, help="timed steps per arm")
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=None,
        help="stop timing a model and batch size after this long (at least 3 steps per arm)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--latent-dim", type=int, default=16)
    parser.add_argument("--vae-hidden", type=int, default=256)
    parser.add_argument("--sgm-hidden", type=int, default=128)
    parser.add_argument("--context-dim", type=int, default=16, help="the SGM's flow context")
    parser.add_argument("--transformations", nargs="+", default=["rotation"], help="the SGM's η")
    parser.add_argument("--out", type=Path, default=None, help="also write the results as JSON")
    args = parser.parse_args()
    if args.steps < 1:
        parser.error(f"--steps must be at least 1, got {args.steps}")
    device = jax.devices()[0]
    print(
        f"machine: {platform.platform()}, {os.cpu_count()} CPUs; jax {jax.__version__} "
        f"on {device.platform} ({device.device_kind}); seed {args.seed}"
    )
    images = (load_mnist().images > 0.5).astype(np.float32)
    results: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": platform.platform(),
        "cpus": os.cpu_count(),
        "jax": jax.__version__,
        "backend": device.platform,
        "device": device.device_kind,
        "seed": args.seed,
        "arguments": {
            key: str(value) if isinstance(value, Path) else value
            for key, value in vars(args).items()
        },
        "results": [],
    }
    for model in args.models:
        description = _describe(model, args)
        print(f"\n{model}: {description}")
        print(
            "batch  invppl ms/step  hand-written ms/step  ratio  invppl examples/s  steps"
            "  paired ratio  flops ratio"
        )
        for batch_size in args.batch_sizes:
            batch = jnp.asarray(np.resize(images, (batch_size, 28, 28, 1)))
            bundle = _build(model, args)
            arms = [
                invppl_step(bundle, batch, args.seed),
                HANDWRITTEN[model](bundle, batch, args.seed),
            ]
            our_flops, their_flops = (_flops(step, state, batch) for step, state in arms)
            our_times, their_times = _timed(arms, batch, args.steps, args.max_seconds)
            ours, theirs = statistics.median(our_times), statistics.median(their_times)
            steps = len(our_times)
            # the median of step-by-step ratios: load that drifts between steps cancels
            paired = statistics.median(a / b for a, b in zip(our_times, their_times, strict=True))
            print(
                f"{batch_size:5d}  {1e3 * ours:14.2f}  {1e3 * theirs:20.2f}  {ours / theirs:5.3f}"
                f"  {batch_size / ours:17.0f}  {steps:5d}  {paired:12.3f}"
                f"  {our_flops / their_flops:11.4f}",
                flush=True,
            )
            results["results"].append(
                {
                    "model": model,
                    "description": description,
                    "batch_size": batch_size,
                    "invppl_ms": 1e3 * ours,
                    "handwritten_ms": 1e3 * theirs,
                    "ratio": ours / theirs,
                    "invppl_examples_per_s": batch_size / ours,
                    "steps": steps,
                    "median_paired_ratio": paired,
                    "invppl_flops": our_flops,
                    "handwritten_flops": their_flops,
                    "flops_ratio": our_flops / their_flops,
                    "invppl_step_ms": [1e3 * t for t in our_times],
                    "handwritten_step_ms": [1e3 * t for t in their_times],
                }
            )
    if args.out is not None:
        write_json(results, args.out)
        print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
