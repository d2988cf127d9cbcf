"""The Correlated-VAE benchmarks stay runnable.

Smoke runs with tiny arguments (timings are not asserted); split from
``test_benchmarks.py`` so that pytest-xdist spreads the benchmark modules over workers.
"""

import json
import runpy
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.mark.slow  # ~8 s; the forest prior is tested in tests/distributions
def test_forest_prior_scaling_runs(tmp_path, capsys) -> None:
    module = runpy.run_path(
        str(BENCHMARKS / "forest_prior_scaling.py"), run_name="forest_prior_scaling"
    )
    out = tmp_path / "scaling.json"
    results = module["main"](["--quick", "--out", str(out)])
    printed = capsys.readouterr().out
    assert "machine:" in printed
    assert "seed 0" in printed
    ops, sizes = module["OPS"], module["QUICK_SIZES"]
    written = json.loads(out.read_text())
    assert written["sizes"] == list(sizes) == results["sizes"]
    rows = {(row["num_edges"], row["op"]): row for row in written["results"]}
    assert sorted(rows) == sorted((size, op) for size in sizes for op in ops)
    for (size, _), row in rows.items():
        assert row["num_nodes"] == size + 1
        assert row["seconds"] > 0
        assert all(t > 0 for t in row["times"])
        assert row["ns_per_edge"] == pytest.approx(1e9 * row["seconds"] / size)
        assert row["rss_growth_bytes"] >= 0
    for op in ops:  # one slope line per op, and the slope in the JSON
        assert f"log(|E|), {op}:" in printed
        assert isinstance(written["slopes"][op]["all_sizes"], float)
    assert not list(tmp_path.glob(".tmp-*"))


@pytest.mark.slow  # ~20 s; tutorial 04 runs the same fit, NCRR and clustering in `make test`
def test_cvae_tree_runs(tmp_path, capsys) -> None:
    module = runpy.run_path(str(BENCHMARKS / "cvae_tree.py"), run_name="cvae_tree")
    out = tmp_path / "cvae.json"
    arguments = ["--nodes", "30", "--seeds", "0", "--steps", "3", "--batch-size", "8"]
    results = module["main"]([*arguments, "--hidden", "8", "--out", str(out)])
    printed = capsys.readouterr().out
    assert "machine:" in printed
    assert {row["method"] for row in results["rows"]} == {"CVAE_corr", "CVAE_ind", "VAE"}
    for row in results["rows"]:
        assert 0.0 < row["test_ncrr"] <= 1.0
        assert 0.0 < row["random_ncrr"] < 1.0
        assert 0.5 <= row["cluster_accuracy"] <= 1.0
    assert json.loads(out.read_text())["summary"]["VAE"]["seeds"] == 1
    assert not list(tmp_path.glob(".tmp-*"))
