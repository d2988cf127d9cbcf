"""The flows benchmark stays runnable and summarises over seeds correctly.

A smoke run with tiny arguments (4×4 digits, two fit steps; numbers not
asserted beyond their range), split from ``test_benchmarks.py`` so that
pytest-xdist spreads the benchmark modules over workers.
"""

import json
import runpy
from pathlib import Path

import numpy as np
import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def flows() -> dict:
    return runpy.run_path(str(BENCHMARKS / "flows_mnist.py"), run_name="flows")


TINY = "--pool 7 --num-train 48 --num-test 16 --steps 2 --batch-size 16 --width 4 --scales 1"
TINY += " --couplings 1 --latent-dim 2 --hidden 8 --iwae 2 --seeds 0"


def _run(flows, models: list[str], out: Path, capsys) -> tuple[dict, dict]:
    results = flows["main"]([*TINY.split(), "--models", *models, "--out", str(out)])
    printed = capsys.readouterr().out
    assert "machine:" in printed
    assert "seed 0:" in printed
    (row,) = json.loads(out.read_text())["rows"]
    assert row["seed"] == 0
    return row, results["summary"]


@pytest.mark.slow  # ~15 s; densities and bits/dim: tests/models/test_flow_density.py
def test_flows_mnist_runs_the_densities(flows, tmp_path, capsys) -> None:
    row, summary = _run(flows, ["flow"], tmp_path / "flows.json", capsys)
    for key in ("flow_bpd", "gaussian_full_bpd", "gaussian_diag_bpd"):
        assert 0.0 < row[key] < 16.0, key
    assert "vae_bpd" not in row
    assert sorted(summary) == ["flow_bpd", "gaussian_diag_bpd", "gaussian_full_bpd"]


@pytest.mark.slow  # ~30 s idle: three more tiny fits and their IWAE bounds
def test_flows_mnist_runs_every_model(flows, tmp_path, capsys) -> None:
    row, summary = _run(flows, list(flows["MODELS"]), tmp_path / "flows.json", capsys)
    for name in ("vae", "vae_flow_prior", "vae_flow_guide"):
        assert 0.0 < row[f"{name}_bpd"] < 16.0, name
        assert f"{name}_iwae" in summary


def test_the_summary_is_the_mean_and_sample_sd_over_seeds(flows) -> None:
    rows = [{"seed": s, "flow_bpd": v, "vae_iwae": -v} for s, v in ((0, 1.0), (1, 2.0), (2, 4.5))]
    entry = flows["summarise"](rows)["flow_bpd"]
    # by hand: mean 2.5, deviations −1.5, −0.5, 2; (2.25 + 0.25 + 4) / 2 = 3.25
    assert entry == {"mean": pytest.approx(2.5), "sd": pytest.approx(3.25**0.5), "seeds": 3}
    assert flows["summarise"](rows)["vae_iwae"]["mean"] == pytest.approx(-2.5)


def test_full_mnist_trains_on_the_train_split_and_tests_on_t10k(flows, tmp_path) -> None:
    """--mnist-dir: tiny valid IDX files stand in for full MNIST (none exist offline)."""
    from tests.datasets.test_mnist import write_mnist

    arrays = write_mnist(tmp_path, n_train=12, n_test=5)
    train, test = flows["digits"](7, 10, 0, tmp_path)  # 0: the whole t10k split
    assert train.shape == (10, 4, 4, 1)
    assert test.shape == (5, 4, 4, 1)
    t10k = arrays["t10k-images-idx3-ubyte"].reshape(5, 4, 7, 4, 7).mean((2, 4)) / 255
    rng = np.random.default_rng(0)  # one seeded generator: the train split's permutation first
    rng.permutation(12)
    order = rng.permutation(5)
    np.testing.assert_allclose(test[..., 0], np.round(t10k[order] * 255) / 255, atol=1e-6)
    train_pool = arrays["train-images-idx3-ubyte"].reshape(12, 4, 7, 4, 7).mean((2, 4)) / 255
    rows = [int(np.argmin(np.abs(train_pool - image[..., 0]).sum((1, 2)))) for image in train]
    assert len(set(rows)) == 10  # ten distinct training digits, none from t10k
    with pytest.raises(ValueError, match="num_test: 6 digits asked, the test split holds 5"):
        flows["digits"](7, 10, 6, tmp_path)
    with pytest.raises(ValueError, match="needs the full MNIST IDX files"):
        flows["digits"](7, 4000, 0, None)  # the bundled digits have no t10k split


def test_mnist_dir_defaults_to_the_environment_variable(flows, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("INVPPL_MNIST_DIR", str(tmp_path))
    assert flows["parse"]([]).mnist_dir == str(tmp_path)
    assert flows["parse"](["--mnist-dir", "elsewhere"]).mnist_dir == "elsewhere"
    monkeypatch.delenv("INVPPL_MNIST_DIR")
    assert flows["parse"]([]).mnist_dir is None  # the bundled digits
