"""The command line: --help, and the demo writes its pictures and manifest."""

import json

import pytest

from invppl.cli import main


def test_help_names_the_commands(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    assert "demo" in capsys.readouterr().out


def test_demo_writes_pictures_and_manifest(tmp_path, capsys) -> None:
    assert main(["demo", "--out", str(tmp_path), "--seed", "1"]) == 0
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
