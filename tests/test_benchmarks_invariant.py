"""The invariant-VAE benchmarks stay runnable.

Smoke runs with tiny arguments (timings are not asserted); split from
``test_benchmarks.py`` so that pytest-xdist spreads the benchmark modules over workers.
"""

import json
import runpy
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.mark.slow  # ~12 s; the compression term is tested in tests/distributions
def test_compression_term_runs(tmp_path, capsys) -> None:
    module = runpy.run_path(str(BENCHMARKS / "compression_term.py"), run_name="compression_term")
    out = tmp_path / "compression.json"
    arguments = ["--quick", "--latent-dim", "4", "--hidden", "16", "--input-dim", "32"]
    results = module["main"]([*arguments, "--train-batch", "64", "--out", str(out)])
    printed = capsys.readouterr().out
    assert "machine:" in printed
    assert "seed 0" in printed
    assert "the term's share" in printed
    sizes, implementations = module["QUICK_SIZES"], module["IMPLEMENTATIONS"]
    written = json.loads(out.read_text())
    assert written["sizes"] == list(sizes) == results["sizes"]
    rows = {(row["batch"], row["implementation"]): row for row in written["results"]}
    assert sorted(rows) == sorted((size, name) for size in sizes for name in implementations)
    for row in rows.values():
        assert row["skipped"] is None
        assert row["seconds"] > 0
        assert len(row["times"]) == 2
    for size in sizes:  # the implementations agree
        assert rows[(size, "matrix")]["value"] > 0
        assert rows[(size, "naive")]["relative_difference"] < 1e-4
        assert rows[(size, "separable")]["relative_difference"] < 1e-4
        # the matrix needs more memory than the separable form, the broadcast more still
        memory = [rows[(size, name)]["memory_bytes"] for name in implementations]
        assert memory == sorted(memory, reverse=True)
    training = written["training"]
    assert training["batch"] == 64
    for arm in ("without", "matrix", "separable"):
        assert training[f"{arm}_seconds"] > 0
    assert training["matrix_flops"] > training["separable_flops"] > training["without_flops"]
    assert not list(tmp_path.glob(".tmp-*"))


def test_compression_term_skips_naive_above_the_memory_cap() -> None:
    from argparse import Namespace

    module = runpy.run_path(str(BENCHMARKS / "compression_term.py"), run_name="compression_term")
    arguments = Namespace(seed=0, latent_dim=4, repeats=1, memory_cap_gb=1e-9)
    naive, matrix, separable = module["measure_size"](16, arguments)
    assert "--memory-cap-gb" in naive["skipped"]
    assert "seconds" not in naive
    for row in (matrix, separable):  # only the broadcast is capped
        assert row["skipped"] is None
        assert row["seconds"] > 0


@pytest.mark.slow  # ~25 s; tutorial 05 runs the same fits and adversaries in `make test`
def test_invariant_vae_uci_runs(tmp_path, capsys) -> None:
    module = runpy.run_path(str(BENCHMARKS / "invariant_vae_uci.py"), run_name="uci")
    out = tmp_path / "uci.json"
    arguments = ["--tasks", "german-age", "--seeds", "0", "--steps", "3", "--hidden", "8"]
    arguments += ["--latent-dim", "2", "--adversary-hidden", "4", "--adversaries", "logistic"]
    arguments += ["--compression", "5", "--out", str(out)]
    results = module["main"](arguments)
    assert "machine:" in capsys.readouterr().out
    methods = ["VAE", "cVAE", "invariant λ=5"]
    assert [row["method"] for row in results["rows"]] == methods
    for row in results["rows"]:
        for key in ("c_accuracy", "c_majority", "y_accuracy", "y_majority"):
            assert 0.0 <= row[key] <= 1.0
    assert json.loads(out.read_text())["summary"]["german-age"]["invariant λ=5"]["seeds"] == 1


@pytest.mark.slow  # ~30 s; tutorial 05 runs the same MNIST pieces in `make test`
def test_invariant_vae_mnist_runs(tmp_path, capsys) -> None:
    module = runpy.run_path(str(BENCHMARKS / "invariant_vae_mnist.py"), run_name="mnist")
    arguments = ["--seeds", "0", "--steps", "2", "--hidden", "8", "--latent-dim", "2"]
    arguments += ["--max-examples", "300", "--adversary-hidden", "4", "--adversaries", "logistic"]
    results = module["main"]([*arguments, "--figures", str(tmp_path / "figures")])
    assert "machine:" in capsys.readouterr().out
    assert {row["method"] for row in results["rows"]} == {"VAE", "cVAE", "invariant"}
    figures = sorted(path.name for path in (tmp_path / "figures").glob("*.png"))
    assert len(figures) == 5  # three reconstruction grids, two style-transfer grids
