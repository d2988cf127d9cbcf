"""The ``invppl`` command as a process: signals save the run, user errors exit with 2."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from invppl.cli import main

ROOT = Path(__file__).resolve().parents[1]
# The child takes SIGINT as Python's default does, even if this test runs where it is ignored
# (a background job without job control).
CLI = (
    "import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "from invppl.cli import main; sys.exit(main(sys.argv[1:]))"
)
SMALL = [
    "--data",
    "dsprites",
    "--batch-size",
    "8",
    "--hidden",
    "8",
    "--latent-dim",
    "2",
    "--max-examples",
    "60",
]


def _start(*argv: str) -> subprocess.Popen[bytes]:
    environment = {**os.environ, "PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu"}
    return subprocess.Popen(
        [sys.executable, "-c", CLI, *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=environment,
        cwd=ROOT,
    )


class _Reader(threading.Thread):
    """Collects a pipe's bytes as they come (the progress bar rewrites one line with \\r)."""

    def __init__(self, pipe: object) -> None:
        super().__init__(daemon=True)
        self.pipe, self.text = pipe, ""

    def run(self) -> None:
        for chunk in iter(lambda: self.pipe.read1(4096), b""):  # type: ignore[attr-defined]
            self.text += chunk.decode(errors="replace")


@pytest.mark.parametrize(
    "number",  # ~20 s each (a process, its compile, a resumed fit): SIGTERM's is slow
    [signal.SIGINT, pytest.param(signal.SIGTERM, marks=pytest.mark.slow)],
)
def test_a_signal_stops_invppl_fit_with_a_checkpoint_and_the_run_continues(
    tmp_path: Path, number: int
) -> None:
    run = tmp_path / "run"
    process = _start("fit", "--model", "vae", "--out", str(run), "--steps", "100000", *SMALL)
    err = _Reader(process.stderr)
    err.start()
    deadline = time.monotonic() + 240
    while not re.search(r"\b[1-9]\d*/100000\b", err.text):  # some steps are done
        assert process.poll() is None, err.text
        assert time.monotonic() < deadline, err.text
        time.sleep(0.1)
    process.send_signal(number)
    # wait, not communicate(): communicate would read stderr too, racing the reader for
    # the last message (seen once in a clean-clone CI run under load)
    process.wait(timeout=120)
    err.join(timeout=10)
    assert process.returncode == 128 + number, err.text
    assert process.stdout is not None
    assert process.stderr is not None
    out = process.stdout.read()
    process.stdout.close()
    process.stderr.close()
    assert out == b""
    name = signal.Signals(number).name
    found = re.search(
        rf"interrupted by {name} after step (\d+) of 100000; saved the checkpoint", err.text
    )
    assert found, err.text
    assert "Traceback" not in err.text
    step = int(found.group(1))
    assert (run / "checkpoints" / f"step_{step:09d}").is_dir()
    # the same command with a nearer end continues from there
    argv = ["fit", "--model", "vae", "--out", str(run), "--steps", str(step + 3), *SMALL]
    assert main([*argv, "--quiet"]) == 0
    fitted = json.loads((run / "fit.json").read_text())["fits"]["svi"]
    assert fitted["steps_done"] == step + 3
    assert f"resumed from {run / 'checkpoints' / f'step_{step:09d}'}" in fitted["message"]


def test_user_errors_exit_with_2_on_one_line_and_bad_options_too(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    process = _start("fit", "--model", "vae", "--out", str(blocker / "run"))
    _, err = process.communicate(timeout=120)
    assert process.returncode == 2
    assert err.decode().splitlines() == [
        f"invppl fit: error: the run folder {blocker / 'run'} cannot be a folder: {blocker} "
        "exists and is not a folder"
    ]
    process = _start("fit", "--model", "gan", "--out", str(tmp_path))
    _, err = process.communicate(timeout=120)
    assert process.returncode == 2
    assert "invalid choice: 'gan'" in err.decode()
