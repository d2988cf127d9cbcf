"""The command line: --help, the SGM demo's report folder, fit/evaluate, the gallery."""

import json

import pytest

from invppl.cli import USER_ERROR, main


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
    fitted = json.loads((run / "fit.json").read_text())["fits"]["svi"]
    assert "mean training loss of the last 50 steps" in fitted["final_loss_is"]
    capsys.readouterr()
    assert main(["evaluate", str(run), "--iwae-samples", "2"]) == 0
    evaluation = json.loads((run / "evaluation.json").read_text())
    assert abs(evaluation["test_iwae_nats"]) < 1e6
    assert evaluation["test_images"] == 12  # 20% of 60
    assert "higher is better" in evaluation["test_iwae_is"]
    out = capsys.readouterr().out
    assert "nats per image (a lower bound on the log likelihood, higher is better)" in out
    assert "over 12 test images with 2 importance samples each" in out
    # another width: refused, naming the key; a larger --steps: the run is extended
    assert main([*arguments, *sizes[:1], "16", *sizes[2:]]) == USER_ERROR
    assert "hidden is 8 there, 16 now" in capsys.readouterr().err

    def steps(n: int) -> list[str]:
        return [*arguments[:6], str(n), *arguments[7:], *sizes]

    assert main(steps(9)) == 0
    fitted = json.loads((run / "fit.json").read_text())["fits"]["svi"]
    assert fitted["steps_done"] == 9
    assert "resumed from" in fitted["message"]
    assert json.loads((run / "config.json").read_text())["steps"] == 9
    assert main(steps(7)) == USER_ERROR
    assert "has done 9 steps already; steps=7 would undo some" in capsys.readouterr().err
    assert main(["diagnose", str(run)]) == USER_ERROR
    assert "'vae' fit, which has no amortised η posterior" in capsys.readouterr().err


def test_evaluate_needs_a_run_folder(tmp_path, capsys) -> None:
    for command in ("evaluate", "diagnose"):
        assert main([command, str(tmp_path)]) == USER_ERROR
        err = capsys.readouterr().err
        assert err.startswith(f"invppl {command}: error: ")
        assert "config.json" in err
        assert len(err.splitlines()) == 1


@pytest.mark.slow  # ~55 s of compiling (an SGM fit, NUTS, SBC); check_eta on a fitted SGM runs in
# make test through tutorial 03, the diagnose command's argument errors through the VAE run above
def test_fit_then_diagnose_an_sgm(tmp_path, capsys) -> None:
    run = tmp_path / "run"
    arguments = ["fit", "--model", "sgm", "--out", str(run), "--steps", "3", "--batch-size", "8"]
    sizes = ["--hidden", "4", "--latent-dim", "2", "--context-dim", "2", "--max-examples", "40"]
    assert main([*arguments, *sizes, "--quiet"]) == 0
    nuts = ["--chains", "2", "--warmup", "4", "--samples", "4", "--max-tree-depth", "2"]
    small = ["--examples", "2", "--guide-samples", "30", "--sbc-simulations", "4", *nuts]
    capsys.readouterr()
    assert main(["diagnose", str(run), *small[2:], "--examples", "99"]) == USER_ERROR
    assert "examples=99 exceeds the 8 test examples" in capsys.readouterr().err
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
    out = capsys.readouterr().out
    assert "2 examples checked" in out
    for example in digest["untrusted_examples"]:  # each with its reasons
        assert f"  example {example}: " + digest["untrusted_why"][str(example)] in out


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


def test_help_shows_every_default(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["fit", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    for default in ("(default: 1000)", "(default: 64)", "(default: rotated-mnist)", "100000"):
        assert default in out
    assert "--checkpoint-every" in out


def test_an_unwritable_out_is_one_line_with_exit_code_2(tmp_path, capsys) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    argv = ["fit", "--model", "vae", "--out", str(blocker / "run"), "--quiet"]
    assert main(argv) == USER_ERROR
    err = capsys.readouterr().err
    assert err == (
        f"invppl fit: error: the run folder {blocker / 'run'} cannot be a folder: {blocker} "
        "exists and is not a folder\n"
    )
    for command in (["demo", "--small"], ["gallery"]):
        assert main([*command, "--out", str(blocker / "x")]) == USER_ERROR
        assert "--out" in capsys.readouterr().err


def test_a_bug_keeps_its_traceback_and_traceback_shows_a_users_too(monkeypatch, tmp_path) -> None:
    import invppl.jobs

    def broken(*args, **kwargs):
        return {}["missing"]  # a KeyError inside invppl: a bug, not the user's mistake

    monkeypatch.setattr(invppl.jobs, "run_fit", broken)
    with pytest.raises(KeyError):
        main(["fit", "--model", "vae", "--out", str(tmp_path / "run")])
    with pytest.raises(FileNotFoundError, match=r"config\.json"):
        main(["--traceback", "evaluate", str(tmp_path)])


def test_checkpoint_every_sets_the_checkpoint_steps(tmp_path, capsys) -> None:
    run = tmp_path / "run"
    arguments = ["fit", "--model", "vae", "--out", str(run), "--steps", "5", "--batch-size", "8"]
    sizes = ["--hidden", "8", "--latent-dim", "2", "--max-examples", "60", "--quiet"]
    assert main([*arguments, "--checkpoint-every", "2", *sizes]) == 0
    saved = sorted(p.name for p in (run / "checkpoints").glob("step_*"))
    assert saved == ["step_000000002", "step_000000004", "step_000000005"]
    assert main([*arguments, "--checkpoint-every", "0", *sizes]) == USER_ERROR
    assert "checkpoint_every must be at least 1" in capsys.readouterr().err
