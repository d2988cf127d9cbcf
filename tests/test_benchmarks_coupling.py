"""The coupling-flow throughput benchmark stays runnable (a smoke run; timings not asserted).

Skipped when flowjax (the benchmark's reference arm, in the ``dev`` extra only) is absent.
"""

import json
import runpy
from pathlib import Path

import pytest

pytest.importorskip("flowjax")

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"

TINY = "--dim 6 --layers 2 --width 8 --depth 1 --batch 8 --repeats 2 --inner 1 --seed 3"


@pytest.fixture(scope="module")
def throughput() -> dict:
    return runpy.run_path(str(BENCHMARKS / "coupling_throughput.py"), run_name="throughput")


@pytest.mark.slow  # ~45 s under load: three flows' gradients compiled; the layers are in make test
def test_coupling_throughput_runs(throughput, tmp_path, capsys) -> None:
    out = tmp_path / "throughput.json"
    results = throughput["main"]([*TINY.split(), "--out", str(out)])
    printed = capsys.readouterr().out
    assert "machine:" in printed
    assert "seed 3" in printed
    for arm in throughput["ARMS"]:
        assert arm in printed
    (row,) = json.loads(out.read_text())["rows"]
    assert row["max_abs_log_prob_difference_invppl"] < 1e-3  # the same flow, two invppl paths
    for arm in throughput["ARMS"]:
        assert row["examples_per_s"][arm] > 0
        assert len(row["times_ms"][arm]) == 2
    # invppl's conditioners read all 6 coordinates and write (s, t) for all 6: 6·8+8 + 8·12+12
    assert row["parameters"]["invppl_stack"] == 2 * (6 * 8 + 8 + 8 * 12 + 12)
    assert row["parameters"]["invppl_numpyro"] == row["parameters"]["invppl_stack"]
    # flowjax's read the 3 kept and write (s, t) for the 3 moved: 3·8+8 + 8·6+6; and
    # flowjax's base Normal has a trainable loc and scale (6 + 6)
    assert row["parameters"]["flowjax"] == 2 * (3 * 8 + 8 + 8 * 6 + 6) + 2 * 6
    assert results["summary"]["invppl_stack_over_flowjax"] > 0


def test_bad_sizes_are_refused_before_any_work(throughput, capsys) -> None:
    with pytest.raises(SystemExit):
        throughput["main"](["--dim", "5"])
    assert "--dim must be even" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        throughput["main"](["--layers", "0"])
    assert "--layers must be a positive integer" in capsys.readouterr().err


@pytest.mark.slow  # ~25 s under load (a Jacobian of flowjax's flow compiled)
def test_the_flowjax_arm_is_the_realnvp_affine_coupling(throughput) -> None:
    """flowjax's log-density is its base's at the inverse plus log |det| of jax.jacobian."""
    import argparse

    import jax
    import jax.numpy as jnp
    import paramax

    args = argparse.Namespace(dim=4, layers=3, width=8, depth=1, seed=0)
    flow = paramax.unwrap(throughput["flowjax_flow"](args))
    x = jax.random.normal(jax.random.key(3), (4,))
    z = flow.bijection.inverse(x)
    log_det = jnp.linalg.slogdet(jax.jacobian(flow.bijection.inverse)(x))[1]
    expected = jax.scipy.stats.norm.logpdf(z).sum() + log_det
    assert float(flow.log_prob(x)) == pytest.approx(float(expected), abs=1e-4)
