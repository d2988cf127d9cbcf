"""The Lie-derivative cost benchmark stays runnable (a smoke run; timings are not asserted)."""

import json
import runpy
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.mark.slow  # ~10 s; the LEE itself is tested in tests/metrics/test_lie_derivative.py
def test_lie_derivative_cost_runs(tmp_path, capsys) -> None:
    module = runpy.run_path(str(BENCHMARKS / "lie_derivative_cost.py"), run_name="lie_cost")
    out = tmp_path / "lie.json"
    results = module["main"](["--quick", "--out", str(out)])
    printed = capsys.readouterr().out
    assert "machine:" in printed
    assert "seed 0" in printed
    assert "lee_rotation: median" in printed
    assert "ratio to forward" in printed
    written = json.loads(out.read_text())
    assert written["settings"]["quick"] == "True"
    assert [row["arm"] for row in written["rows"]] == list(module["ARMS"])
    for row in written["rows"]:
        assert len(row["seconds"]) == 3
        assert all(seconds > 0 for seconds in row["seconds"])
    summary = results["summary"]
    for arm in ("lee_rotation", "lee_affine"):
        assert summary[f"{arm}_ratio"] > 0
        assert summary[f"{arm}_paired_ratio"] > 0
    if "lee_rotation_flops_ratio" in summary:  # the metric does more work than the forward pass
        assert summary["lee_affine_flops_ratio"] > summary["lee_rotation_flops_ratio"] > 1
    assert not list(tmp_path.glob(".tmp-*"))
