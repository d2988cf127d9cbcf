"""docs/runs.md's example: a shipped model and guide under NumPyro's Predictive and SVI."""

import re
from pathlib import Path

import numpy as np

PAGE = Path(__file__).resolve().parents[1] / "docs" / "runs.md"


def test_predictive_and_plain_svi_take_the_shipped_vae(capsys) -> None:
    blocks = re.findall(r"```python\n(.*?)```", PAGE.read_text(), flags=re.DOTALL)
    assert len(blocks) == 1, "docs/runs.md should hold one python example"
    namespace: dict = {}
    exec(compile(blocks[0], "docs/runs.md", "exec"), namespace)
    codes, decoded, result, more = (namespace[k] for k in ("codes", "decoded", "result", "more"))
    assert codes.shape == (4, 5, 2)
    assert float(np.std(np.asarray(codes), axis=0).min()) > 0  # draws, not a point
    assert decoded.shape == (20, 8, 8, 1)
    assert float(decoded.min()) >= 0
    assert float(decoded.max()) <= 1
    # SVI started from fit's state: its first loss is near fit's last ones, far from its first
    first = float(more.losses[0]) / 32
    assert abs(first - result.final_loss()) < abs(first - float(result.losses[0])) / 3
    assert "(4, 5, 2) (20, 8, 8, 1)" in capsys.readouterr().out
