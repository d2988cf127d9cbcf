"""Benchmarks stay runnable: each is smoke-run with tiny arguments (timings are not asserted)."""

import runpy
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def test_ppl_overhead_runs(monkeypatch, capsys) -> None:
    argv = ["ppl_overhead.py", "--batch-sizes", "8", "--steps", "2"]
    monkeypatch.setattr(sys, "argv", argv)
    runpy.run_path(str(BENCHMARKS / "ppl_overhead.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert "seed 0" in out
    rows = [line.split() for line in out.splitlines() if line.strip().startswith("8 ")]
    assert len(rows) == 1
    assert float(rows[0][3]) > 0  # the ratio was measured
