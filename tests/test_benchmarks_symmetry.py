"""The symmetry sample-efficiency benchmark stays runnable; its pure helpers are right.

A ``--small`` smoke run (tiny networks, a few steps; the numbers are not
asserted beyond their range) and hand-computed checks of the 6-vs-9 split,
the summary statistics and the true laws.
"""

import json
import math
import runpy
from pathlib import Path

import numpy as np
import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def benchmark() -> dict:
    return runpy.run_path(str(BENCHMARKS / "symmetry_sample_efficiency.py"), run_name="symmetry")


@pytest.mark.slow  # ~90 s of CPU (2 min wall on a loaded 2-core machine), mostly compiling
def test_small_run_prints_and_writes_every_arm(benchmark, tmp_path, capsys) -> None:
    out, figure = tmp_path / "symmetry.json", tmp_path / "accuracy.png"
    arms = ["mlp", "c4", "augerino", "sgm_cnn"]
    results = benchmark["main"](
        ["--small", "--arms", *arms, "--out", str(out), "--figure", str(figure)]
    )
    printed = capsys.readouterr().out
    assert "machine:" in printed
    assert "seeds [0]" in printed
    assert "Augerino's learned rotation half-width" in printed
    written = json.loads(out.read_text())
    assert written["settings"]["small"] == "True"
    assert [row["arm"] for row in written["rows"]["arms"]] == arms
    for row in written["rows"]["arms"]:
        assert 0.0 <= row["accuracy"] <= 1.0
        assert 0.0 <= row["accuracy_69"] <= 1.0
        assert row["lee_rotation"] >= 0.0
        assert row["lee_translation"] >= 0.0
    c4 = next(row for row in written["rows"]["arms"] if row["arm"] == "c4")
    assert c4["lee_rotation"] < 0.01  # invariant to quarter turns: little left locally
    assert {law["digit"] for law in written["rows"]["laws"]} <= set(range(10))
    assert set(results["summary"]["sgm_laws"]["40"]) == {"full", "narrow", "none"}
    assert results["summary"]["augerino_width"]["40"]["mean"] > 0
    assert figure.stat().st_size > 0
    assert not list(tmp_path.glob(".tmp-*"))


def test_six_nine_by_hand(benchmark) -> None:
    labels = np.array([6, 6, 6, 9, 9, 0, 1])
    predicted = np.array([6, 9, 8, 6, 9, 6, 9])  # the 0 and 1 called 6 and 9 do not count
    result = benchmark["six_nine"](labels, predicted)
    assert result["accuracy_6"] == pytest.approx(1 / 3)
    assert result["accuracy_9"] == pytest.approx(1 / 2)
    assert result["accuracy_69"] == pytest.approx(2 / 5)
    assert result["swapped_69"] == pytest.approx(2 / 5)  # one 6 called 9, one 9 called 6
    with pytest.raises(ValueError, match="one 6 and one 9"):
        benchmark["six_nine"](np.array([6, 1]), np.array([6, 1]))


def test_mean_sd_is_the_sample_sd(benchmark) -> None:
    assert benchmark["mean_sd"]([0.2, 0.4, 0.9]) == pytest.approx(
        {"mean": 0.5, "sd": 0.13**0.5, "count": 3}
    )
    assert benchmark["mean_sd"]([0.7])["sd"] == 0.0


def test_true_laws_keep_six_and_nine_apart(benchmark) -> None:
    laws = benchmark["true_laws"]()
    assert sorted(laws) == list(range(10))
    assert [benchmark["law_kind"](d) for d in (0, 1, 8, 6, 9, 2)] == [
        "full",
        "full",
        "full",
        "narrow",
        "narrow",
        "none",
    ]
    for digit in (6, 9):  # never near half a turn, where a 6 becomes a 9
        assert laws[digit].support[1] < math.pi / 4
    assert benchmark["true_half_width"](0) == pytest.approx(math.pi)


def test_average_pool_is_the_block_mean(benchmark) -> None:
    images = np.arange(16, dtype=np.float32).reshape(1, 4, 4, 1)
    pooled = benchmark["average_pool"](images, 2)
    assert pooled[0, :, :, 0].tolist() == [[2.5, 4.5], [10.5, 12.5]]
    with pytest.raises(ValueError, match="must divide"):
        benchmark["average_pool"](images, 3)


def test_summary_averages_over_seeds(benchmark) -> None:
    metrics = benchmark["METRICS"]
    arms = [
        {"arm": "cnn", "size": 100, "seed": s, **dict.fromkeys(metrics, v)}
        for s, v in ((0, 0.2), (1, 0.4))
    ]
    laws = [
        {"size": 100, "seed": s, "kind": k, **dict.fromkeys(benchmark["LAW_METRICS"], v)}
        for s in (0, 1)
        for k, v in (("full", 0.1 + s), ("narrow", 1.0), ("none", 2.0), ("none", 4.0))
    ]
    summary = benchmark["summarise"](arms, laws)
    assert summary["arms"]["cnn"]["100"]["accuracy"]["mean"] == pytest.approx(0.3)
    assert summary["sgm_laws"]["100"]["full"]["w1"]["mean"] == pytest.approx(0.6)
    assert summary["sgm_laws"]["100"]["none"]["w1"] == pytest.approx(
        {"mean": 3.0, "sd": 0.0, "count": 2}
    )
