"""The paired weak-supervision benchmark stays runnable and summarises over seeds correctly.

A smoke run with tiny arguments (timings are not asserted); split from
``test_benchmarks.py`` so that pytest-xdist spreads the benchmark modules over workers.
"""

import json
import runpy
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def paired() -> dict:
    return runpy.run_path(str(BENCHMARKS / "paired_weak_supervision.py"), run_name="paired")


@pytest.mark.slow  # ~15 s idle (two tiny fits and every metric); tutorial 06 runs the same path
def test_paired_weak_supervision_runs(paired, tmp_path, capsys) -> None:
    out = tmp_path / "paired.json"
    tiny = "--size 8 --pairs 16 --eval-pairs 60 --steps 2 --batch-size 8 --latent-dim 4"
    tiny += " --hidden 8 --channels 4 --metric-train 40 --metric-batch 8 --trees 3 --seeds 0"
    arguments = [*tiny.split(), "--settings", "krandom", "--methods", "latentmap", "--circular"]
    results = paired["main"]([*arguments, "--out", str(out)])
    printed = capsys.readouterr().out
    assert "machine:" in printed
    assert "seed 0" in printed
    written = json.loads(out.read_text())
    assert [(r["method"], r["seed"]) for r in written["rows"]] == [
        ("latentmap", 0),
        ("adagvae_circular", 0),
    ]
    for row in written["rows"]:
        for key in paired["METRICS"]:
            assert 0.0 <= row[key] <= 1.0, key
        assert 1.0 <= row["changed_per_pair"] <= 4.0  # k uniform on 1 … f − 1, f = 5
    assert sorted(results["summary"]) == ["krandom/adagvae_circular", "krandom/latentmap"]


def test_the_summary_is_the_mean_and_sample_sd_over_seeds(paired) -> None:
    keys = (*paired["METRICS"], "moved_per_pair", "changed_per_pair", "rotation_nmi")
    rows = [
        {"setting": "k1", "method": "adagvae", "seed": seed, **dict.fromkeys(keys, value)}
        for seed, value in ((0, 0.2), (1, 0.4), (2, 0.9))
    ]
    entry = paired["summarise"](rows)["k1/adagvae"]
    assert entry["seeds"] == [0, 1, 2]
    assert entry["mig"]["mean"] == pytest.approx(0.5)
    # sample sd by hand: deviations −0.3, −0.1, 0.4; (0.09 + 0.01 + 0.16) / 2 = 0.13
    assert entry["mig"]["sd"] == pytest.approx(0.13**0.5)
