"""Benchmarks stay runnable and compare like with like.

Each benchmark is smoke-run with tiny arguments (timings are not asserted), and
the hand-written arms of ``ppl_overhead.py`` are checked against NumPyro: at the
same parameters and the same random draws, the hand-written negative ELBO and
its gradient equal ``Trace_ELBO``'s on invppl's model and guide.
"""

import json
import runpy
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx
from numpyro import handlers
from numpyro.infer import SVI, Trace_ELBO

from invppl.models import make_sgm, make_vae

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def ppl_overhead() -> dict:
    """The benchmark script's functions (its ``main`` not run)."""
    return runpy.run_path(str(BENCHMARKS / "ppl_overhead.py"), run_name="ppl_overhead")


def _numpyro_loss_and_noise(bundle, x, key):
    """Trace_ELBO's loss and gradient at the initial parameters, and the guide's site keys."""
    svi = SVI(bundle.model, bundle.guide, optax.adam(1e-3), Trace_ELBO())
    params = jax.jit(lambda x: svi.get_params(svi.init(jax.random.key(1), x)))(x)

    def loss(params):
        return Trace_ELBO().loss(key, params, bundle.model, bundle.guide, x)

    value, grads = jax.jit(jax.value_and_grad(loss))(params)

    # Trace_ELBO seeds the guide with the second half of split(key); the seed
    # handler hands each sample site its own key, recorded in the trace
    @jax.jit
    def site_keys(key):
        trace = handlers.trace(handlers.seed(bundle.guide, jax.random.split(key)[1])).get_trace(x)
        return {
            name: site["kwargs"]["rng_key"]
            for name, site in trace.items()
            if site["type"] == "sample"
        }

    return params, value, grads, site_keys(key)


def _assert_trees_close(ours, theirs) -> None:
    ours_leaves, ours_tree = jax.tree.flatten(ours)
    theirs_leaves, theirs_tree = jax.tree.flatten(theirs)
    assert ours_tree == theirs_tree
    for a, b in zip(ours_leaves, theirs_leaves, strict=True):
        scale = float(jnp.abs(b).max()) + 1e-3
        np.testing.assert_allclose(a / scale, b / scale, atol=1e-4)


def _images(shape) -> jax.Array:
    return jax.random.bernoulli(jax.random.key(7), 0.3, shape).astype(jnp.float32)


@pytest.mark.slow  # ~30 s of compiling; the VAE arm's oracle below stays in make test
def test_handwritten_sgm_elbo_equals_trace_elbo(ppl_overhead) -> None:
    sgm = make_sgm((8, 8, 1), 3, ("rotation",), seed=0, hidden=16, context_dim=4)
    x = _images((5, 8, 8, 1))
    key = jax.random.key(3)
    numpyro_params, numpyro_loss, numpyro_grads, keys = _numpyro_loss_and_noise(sgm, x, key)
    params, negative_elbo, draw_noise = ppl_overhead["sgm_negative_elbo"](sgm)
    pose_flow = sgm.guide.keywords["pose_flow"]
    # the draws of ConditionalEtaFlow.sample and of Normal.sample for those keys
    eta_noise = pose_flow.base_noise(keys["eta"], (5,))
    z_noise = jax.random.normal(keys["z"], (5, 3))

    loss, grads = jax.jit(jax.value_and_grad(negative_elbo))(params, x, eta_noise, z_noise)
    np.testing.assert_allclose(loss, numpyro_loss, rtol=1e-5)
    # the same parameters on both sides, and the same gradient
    networks = ["pose_embedding", "encoder", "decoder", "prior_embedding"]
    for name in networks:
        _assert_trees_close(
            nnx.to_pure_dict(params["networks"])[name], numpyro_params[f"{name}$params"]
        )
        _assert_trees_close(
            nnx.to_pure_dict(grads["networks"])[name], numpyro_grads[f"{name}$params"]
        )
    for name in ("pose_flow", "prior_flow"):
        _assert_trees_close(
            nnx.to_pure_dict(params["flows"])[name], numpyro_params[f"{name}$params"]
        )
        _assert_trees_close(nnx.to_pure_dict(grads["flows"])[name], numpyro_grads[f"{name}$params"])
    # a different draw gives a different loss: the noise is not ignored
    other = jax.jit(negative_elbo)(params, x, 1 - eta_noise, z_noise)
    assert abs(float(other) - float(loss)) > 1e-3
    # the benchmark's own draws have the shapes and supports of these
    drawn_eta, drawn_z = draw_noise(jax.random.key(4), 5)
    assert drawn_eta.shape == eta_noise.shape
    assert drawn_z.shape == z_noise.shape
    assert bool(((drawn_eta > 0) & (drawn_eta < 1)).all())


def test_handwritten_vae_elbo_equals_trace_elbo(ppl_overhead) -> None:
    vae = make_vae((8, 8, 1), 3, seed=0, hidden=16)
    x = _images((5, 8, 8, 1))
    key = jax.random.key(3)
    numpyro_params, numpyro_loss, numpyro_grads, keys = _numpyro_loss_and_noise(vae, x, key)
    params, negative_elbo, _ = ppl_overhead["vae_negative_elbo"](vae)
    z_noise = jax.random.normal(keys["z"], (5, 3))

    loss, grads = jax.jit(jax.value_and_grad(negative_elbo))(params, x, z_noise)
    np.testing.assert_allclose(loss, numpyro_loss, rtol=1e-5)
    for name in ("encoder", "decoder"):
        _assert_trees_close(nnx.to_pure_dict(params)[name], numpyro_params[f"{name}$params"])
        _assert_trees_close(nnx.to_pure_dict(grads)[name], numpyro_grads[f"{name}$params"])


def _run_ppl_overhead(monkeypatch, capsys, *arguments: str) -> str:
    argv = ["ppl_overhead.py", "--batch-sizes", "8", "--steps", "2", *arguments]
    argv += ["--vae-hidden", "16", "--sgm-hidden", "16", "--context-dim", "4"]
    monkeypatch.setattr(sys, "argv", argv)
    runpy.run_path(str(BENCHMARKS / "ppl_overhead.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert "seed 0" in out
    return out


def _rows(out: str) -> list[list[str]]:
    return [line.split() for line in out.splitlines() if line.strip().startswith("8 ")]


def test_ppl_overhead_runs(monkeypatch, capsys, tmp_path) -> None:
    out_file = tmp_path / "results" / "overhead.json"
    out = _run_ppl_overhead(monkeypatch, capsys, "--models", "vae", "--out", str(out_file))
    rows = _rows(out)
    assert len(rows) == 1
    assert float(rows[0][3]) > 0  # the ratio was measured
    assert rows[0][5] == "2"  # steps timed
    assert float(rows[0][6]) > 0  # the paired ratio
    assert float(rows[0][7]) == pytest.approx(1, abs=0.05)  # the same work in both arms
    results = json.loads(out_file.read_text())
    assert results["seed"] == 0
    assert [(r["model"], r["batch_size"], r["steps"]) for r in results["results"]] == [
        ("vae", 8, 2)
    ]
    (result,) = results["results"]
    assert result["ratio"] == pytest.approx(float(rows[0][3]), abs=1e-3)
    assert len(result["invppl_step_ms"]) == len(result["handwritten_step_ms"]) == 2
    assert result["invppl_flops"] > 0
    assert list(out_file.parent.iterdir()) == [out_file]  # no temporary file left behind


@pytest.mark.slow
def test_ppl_overhead_runs_every_model(monkeypatch, capsys) -> None:
    rows = _rows(_run_ppl_overhead(monkeypatch, capsys))
    assert len(rows) == 2  # by default the VAE and the SGM
    assert all(float(row[3]) > 0 for row in rows)


@pytest.mark.slow  # ~30 s; AugVAE runs in make test through the demo test and tutorial 02
def test_augvae_vs_vae_runs(tmp_path, capsys) -> None:
    module = runpy.run_path(str(BENCHMARKS / "augvae_vs_vae.py"), run_name="augvae_vs_vae")
    out = tmp_path / "augvae.json"
    arguments = ["--sizes", "16", "--seeds", "0", "--steps", "2", "--pose-steps", "2"]
    arguments += ["--prior-steps", "2", "--batch-size", "8", "--hidden", "8"]
    arguments += ["--latent-dim", "2", "--iwae-samples", "2", "--num-test", "8"]
    results = module["main"]([*arguments, "--out", str(out)])
    printed = capsys.readouterr().out
    assert "machine:" in printed
    assert "AugVAE - VAE" in printed
    (row,) = results["rows"]
    assert row["augvae_minus_vae"] == row["augvae_test_iwae"] - row["vae_test_iwae"]
    assert json.loads(out.read_text())["summary"]["16"]["seeds"] == 1
    assert not list(tmp_path.glob(".tmp-*"))


@pytest.mark.slow  # ~10 s; the frozen old flow is only this benchmark's baseline
def test_eta_flow_speed_runs_and_the_two_flows_agree(capsys) -> None:
    """The NNX η flow, given the frozen equinox flow's weights, has its log-density."""
    pytest.importorskip("equinox")
    module = runpy.run_path(str(BENCHMARKS / "eta_flow_speed.py"), run_name="eta_flow_speed")
    arguments = ["--batch", "8", "--dims", "3", "--context-dim", "2", "--layers", "2"]
    results = module["main"]([*arguments, "--knots", "3", "--repeats", "2", "--inner", "1"])
    assert "machine:" in capsys.readouterr().out
    (row,) = results["rows"]
    assert row["max_abs_log_prob_difference"] < 1e-4  # checked inside the benchmark as well
    assert row["ratio_new_over_old"] > 0
    assert len(row["times_ms"]["old"]) == len(row["times_ms"]["new"]) == 2
