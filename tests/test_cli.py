"""The command line: --help, the SGM demo's report folder, fit/evaluate, the gallery."""

import json

import pytest

from invppl.cli import main


def test_help_names_the_commands(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for command in ("demo", "fit", "evaluate", "diagnose", "gallery"):
        assert command in out


def test_demo_small_writes_the_report(tmp_path, capsys) -> None:
    assert main(["demo", "--small", "--quiet", "--out", str(tmp_path), "--seed", "1"]) == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["seed"] == 1
    for name in metrics["pictures"].values():
        assert (tmp_path / name).stat().st_size > 1000
    assert set(metrics["likelihood"]) == {"vae", "augvae"}
    for fitted in metrics["likelihood"].values():
        assert fitted["test_iwae_nats"] == fitted["test_iwae_nats"]  # finite, not NaN
    assert set(metrics["rotation_per_digit"]) == {"digit 0", "digit 1", "digit 7"}
    assert metrics["prototype_invariance"]["relative"] >= 0
    assert not list(tmp_path.glob(".tmp-*"))


def test_fit_then_evaluate_a_vae(tmp_path, capsys) -> None:
    run = tmp_path / "run"
    arguments = ["fit", "--model", "vae", "--out", str(run), "--steps", "5", "--batch-size", "8"]
    sizes = ["--hidden", "8", "--latent-dim", "2", "--max-examples", "60", "--quiet"]
    assert main(arguments + sizes) == 0
    assert json.loads((run / "fit.json").read_text())["fits"]["svi"]["steps_done"] == 5
    assert main(["evaluate", str(run), "--iwae-samples", "2"]) == 0
    evaluation = json.loads((run / "evaluation.json").read_text())
    assert abs(evaluation["test_iwae_nats"]) < 1e6
    with pytest.raises(ValueError, match="another configuration"):
        main([*arguments[:-1], "16", *sizes])
    with pytest.raises(ValueError, match="'vae' fit, which has no amortised η posterior"):
        main(["diagnose", str(run)])


def test_evaluate_needs_a_run_folder(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match=r"config\.json"):
        main(["evaluate", str(tmp_path)])
    with pytest.raises(FileNotFoundError, match=r"config\.json"):
        main(["diagnose", str(tmp_path)])


def test_fit_then_diagnose_an_sgm(tmp_path, capsys) -> None:
    run = tmp_path / "run"
    arguments = ["fit", "--model", "sgm", "--out", str(run), "--steps", "3", "--batch-size", "8"]
    sizes = ["--hidden", "4", "--latent-dim", "2", "--context-dim", "2", "--max-examples", "40"]
    assert main([*arguments, *sizes, "--quiet"]) == 0
    nuts = ["--chains", "2", "--warmup", "4", "--samples", "4", "--max-tree-depth", "2"]
    small = ["--examples", "2", "--guide-samples", "30", "--sbc-simulations", "4", *nuts]
    with pytest.raises(ValueError, match="examples=99 exceeds the 8 test examples"):
        main(["diagnose", str(run), *small[2:], "--examples", "99"])
    assert main(["diagnose", str(run), *small, "--out", str(tmp_path / "report")]) == 0
    digest = json.loads((tmp_path / "report" / "diagnostics.json").read_text())
    assert digest["examples"] == 2
    assert digest["parameters"] == ["rotation"]
    assert digest["nuts"]["chains"] == 2
    assert digest["config"]["model"] == "sgm"
    assert len(digest["summary"]) == 2
    assert digest["sbc"]["simulations"] == 4
    for name in ("summary.csv", "posteriors.png", "forest.png", "ranks.png"):
        assert (tmp_path / "report" / name).stat().st_size > 100
    assert not list((tmp_path / "report").glob(".tmp-*"))
    assert "2 examples checked" in capsys.readouterr().out


def test_gallery_writes_pictures_and_manifest(tmp_path, capsys) -> None:
    assert main(["gallery", "--out", str(tmp_path), "--seed", "1"]) == 0
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["seed"] == 1
    for name in manifest["pictures"].values():
        assert (tmp_path / name).stat().st_size > 1000
    assert manifest["round_trip_mean_abs_error"] < 0.05
    assert not list(tmp_path.glob(".tmp-*"))


def test_unknown_command_is_an_error(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["train"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'train'" in capsys.readouterr().err
