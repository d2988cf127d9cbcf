"""What the PPL costs per SVI step: invppl's VAE vs a hand-written Flax NNX + optax step.

Both compute the same single-sample ELBO of the same networks on the same batch
and apply the same Adam update inside one ``jax.jit``; the ratio
invppl / hand-written is printed per batch size (target: at most 1.05), with the
machine, the JAX backend and the seed.

    .venv/bin/python benchmarks/ppl_overhead.py [--batch-sizes 64 256 1024] [--steps 50]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from numpyro.infer import SVI, Trace_ELBO

from invppl.datasets import load_mnist
from invppl.models import make_vae


def _timed(step, state, batch, steps: int) -> float:
    state = step(state, batch)  # compile and warm up
    jax.block_until_ready(state)
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        state = step(state, batch)
        jax.block_until_ready(state)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def invppl_step(vae, batch, seed: int):
    svi = SVI(vae.model, vae.guide, optax.adam(1e-3), Trace_ELBO())
    state = svi.init(jax.random.key(seed), batch)

    @jax.jit
    def step(state, x):
        return svi.update(state, x)[0]

    return step, state


def handwritten_step(vae, batch, seed: int):
    decoder = vae.model.keywords["decoder"]
    encoder = vae.guide.keywords["encoder"]
    graph, params = nnx.split((encoder, decoder), nnx.Param)
    optimizer = optax.adam(1e-3)

    def negative_elbo(params, x, key):
        encoder, decoder = nnx.merge(graph, params)
        loc, scale = encoder(x)
        z = loc + scale * jax.random.normal(key, loc.shape)
        probs = jnp.clip(jax.nn.sigmoid(decoder(z)), 1e-5, 1 - 1e-5)
        log_lik = (x * jnp.log(probs) + (1 - x) * jnp.log1p(-probs)).sum((1, 2, 3))
        log_prior = jax.scipy.stats.norm.logpdf(z).sum(1)
        log_q = jax.scipy.stats.norm.logpdf(z, loc, scale).sum(1)
        return -(log_lik + log_prior - log_q).sum()

    @jax.jit
    def step(state, x):
        params, opt_state, key = state
        key, sub = jax.random.split(key)
        grads = jax.grad(negative_elbo)(params, x, sub)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, key

    return step, (params, optimizer.init(params), jax.random.key(seed))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[64, 128, 256, 512, 1024])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    device = jax.devices()[0]
    print(
        f"machine: {platform.platform()}, {os.cpu_count()} CPUs; jax {jax.__version__} "
        f"on {device.platform} ({device.device_kind}); seed {args.seed}"
    )
    mnist = load_mnist()
    images = (mnist.images > 0.5).astype(np.float32)
    print("batch  invppl ms/step  hand-written ms/step  ratio  invppl examples/s")
    for batch_size in args.batch_sizes:
        batch = jnp.asarray(np.resize(images, (batch_size, 28, 28, 1)))
        vae = make_vae((28, 28, 1), 16, seed=args.seed)
        ours = _timed(*invppl_step(vae, batch, args.seed), batch, args.steps)
        theirs = _timed(*handwritten_step(vae, batch, args.seed), batch, args.steps)
        print(
            f"{batch_size:5d}  {1e3 * ours:14.2f}  {1e3 * theirs:20.2f}  {ours / theirs:5.3f}"
            f"  {batch_size / ours:17.0f}"
        )


if __name__ == "__main__":
    main()
