"""The BiGAN benchmark stays runnable, prints its machine and seeds, and writes its results.

A smoke run with tiny arguments (the numbers are not asserted beyond their range).
"""

import json
import runpy
from pathlib import Path

import numpy as np
import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def bigan_mnist() -> dict:
    return runpy.run_path(str(BENCHMARKS / "bigan_mnist.py"), run_name="bigan_mnist")


@pytest.mark.slow  # 160 s at load 11 (2 CPUs); tutorial 07 fits a BiGAN in make test
def test_bigan_mnist_runs(bigan_mnist, tmp_path, capsys) -> None:
    out, figure = tmp_path / "bigan.json", tmp_path / "bigan.png"
    tiny = "--seeds 0 --steps 3 --batch-size 16 --latent-dim 4 --hidden 16 --architecture mlp"
    tiny += " --pool 4 --num-train 200 --num-test 100 --trace-every 2"
    results = bigan_mnist["main"]([*tiny.split(), "--out", str(out), "--figure", str(figure)])
    printed = capsys.readouterr().out
    assert "machine:" in printed
    assert "seed 0:" in printed
    written = json.loads(out.read_text())
    assert [row["seed"] for row in written["rows"]] == [0]
    for name in bigan_mnist["ENCODERS"]:
        assert 0.0 <= written["rows"][0][f"probe_{name}"] <= 1.0
    assert written["summary"]["bigan_beats_random"].endswith("of 1 seeds")
    row = written["rows"][0]
    assert row["sample_diversity"] >= 0.0
    assert [entry["step"] for entry in row["trace"]] == [2, 3]  # every 2 steps, and the last
    assert row["trace"][-1]["reconstruction_mse"] == pytest.approx(row["reconstruction_mse"])
    assert 0.0 <= row["d_accuracy_real"] <= 1.0
    assert results["machine"]["cpu_count"] >= 1
    assert figure.stat().st_size > 0


def test_the_summary_is_the_mean_and_sample_sd_over_seeds(bigan_mnist) -> None:
    rows = [
        {"seed": seed, **{f"probe_{n}": value for n in bigan_mnist["ENCODERS"]}}
        | {"reconstruction_mse": 0.1, "mean_image_mse": 0.2}
        | {"sample_diversity": 0.15, "data_diversity": 0.17}
        for seed, value in ((0, 0.2), (1, 0.4), (2, 0.9))
    ]
    rows[0]["probe_bigan"] = 0.5  # beats the random encoder's 0.2 on seed 0 only
    summary = bigan_mnist["summarise"](rows)
    assert summary["seeds"] == [0, 1, 2]
    assert summary["probe_vae"]["mean"] == pytest.approx(0.5)
    assert summary["probe_vae"]["sd"] == pytest.approx(0.13**0.5)
    assert summary["bigan_beats_random"] == "1 of 3 seeds"


def test_full_mnist_trains_on_the_train_split_and_tests_on_t10k(bigan_mnist, tmp_path) -> None:
    """--mnist-dir: tiny valid IDX files stand in for full MNIST (none exist offline)."""
    from tests.datasets.test_mnist import write_mnist

    arrays = write_mnist(tmp_path, n_train=12, n_test=5)
    split = bigan_mnist["digits"](4, 8, 0, 3, tmp_path)  # 0: the whole t10k split
    assert split["x_train"].shape == (8, 7, 7, 1)
    assert split["x_test"].shape == (5, 7, 7, 1)
    assert sorted(split["y_test"]) == sorted(arrays["t10k-labels-idx1-ubyte"])
    t10k = arrays["t10k-images-idx3-ubyte"].reshape(5, 7, 4, 7, 4).mean((2, 4)) / 255
    for image, label in zip(split["x_test"], split["y_test"], strict=True):
        (row,) = np.flatnonzero(np.abs(t10k - image[..., 0]).max((1, 2)) < 1e-5)
        assert arrays["t10k-labels-idx1-ubyte"][row] == label  # labels follow their images
    again = bigan_mnist["digits"](4, 8, 0, 3, tmp_path)
    np.testing.assert_array_equal(again["y_train"], split["y_train"])  # seeded
    with pytest.raises(ValueError, match="num_train: 13 digits asked, the train split holds 12"):
        bigan_mnist["digits"](4, 13, 1, 0, tmp_path)
    with pytest.raises(ValueError, match="needs the full MNIST IDX files"):
        bigan_mnist["digits"](4, 0, 10, 0, None)


def test_mnist_dir_defaults_to_the_environment_variable(bigan_mnist, tmp_path, monkeypatch):
    monkeypatch.setenv("INVPPL_MNIST_DIR", str(tmp_path))
    assert bigan_mnist["parse"]([]).mnist_dir == str(tmp_path)
    monkeypatch.delenv("INVPPL_MNIST_DIR")
    assert bigan_mnist["parse"]([]).mnist_dir is None  # the bundled digits
