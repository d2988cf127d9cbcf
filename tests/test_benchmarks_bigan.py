"""The BiGAN benchmark stays runnable, prints its machine and seeds, and writes its results.

A smoke run with tiny arguments (the numbers are not asserted beyond their range).
"""

import json
import runpy
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def bigan_mnist() -> dict:
    return runpy.run_path(str(BENCHMARKS / "bigan_mnist.py"), run_name="bigan_mnist")


@pytest.mark.slow  # ~19 s; tutorial 07 fits a BiGAN in make test
def test_bigan_mnist_runs(bigan_mnist, tmp_path, capsys) -> None:
    out, figure = tmp_path / "bigan.json", tmp_path / "bigan.png"
    tiny = "--seeds 0 --steps 3 --batch-size 16 --latent-dim 4 --hidden 16 --architecture mlp"
    tiny += " --pool 4 --num-train 200 --num-test 100"
    results = bigan_mnist["main"]([*tiny.split(), "--out", str(out), "--figure", str(figure)])
    printed = capsys.readouterr().out
    assert "machine:" in printed
    assert "seed 0:" in printed
    written = json.loads(out.read_text())
    assert [row["seed"] for row in written["rows"]] == [0]
    for name in bigan_mnist["ENCODERS"]:
        assert 0.0 <= written["rows"][0][f"probe_{name}"] <= 1.0
    assert written["summary"]["bigan_beats_random"].endswith("of 1 seeds")
    assert results["machine"]["cpu_count"] >= 1
    assert figure.stat().st_size > 0


def test_the_summary_is_the_mean_and_sample_sd_over_seeds(bigan_mnist) -> None:
    rows = [
        {"seed": seed, **{f"probe_{n}": value for n in bigan_mnist["ENCODERS"]}}
        | {"reconstruction_mse": 0.1, "mean_image_mse": 0.2}
        for seed, value in ((0, 0.2), (1, 0.4), (2, 0.9))
    ]
    rows[0]["probe_bigan"] = 0.5  # beats the random encoder's 0.2 on seed 0 only
    summary = bigan_mnist["summarise"](rows)
    assert summary["seeds"] == [0, 1, 2]
    assert summary["probe_vae"]["mean"] == pytest.approx(0.5)
    assert summary["probe_vae"]["sd"] == pytest.approx(0.13**0.5)
    assert summary["bigan_beats_random"] == "1 of 3 seeds"
