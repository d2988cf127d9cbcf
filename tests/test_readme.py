"""The README's example runs and does what it says."""

import re
from pathlib import Path

import numpy as np

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_example_recovers_the_angles(capsys) -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)
    assert blocks, "README.md has no python example"
    namespace: dict = {}
    exec(compile(blocks[0], "README.md", "exec"), namespace)
    angles = np.asarray(namespace["mcmc"].get_samples()["angle"]).mean(0)
    np.testing.assert_allclose(angles, [-0.6, 0.0, 0.9], atol=0.1)
    assert "[" in capsys.readouterr().out
