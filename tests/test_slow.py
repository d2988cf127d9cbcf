"""Slow checks (``make test-slow``): full-size data and many more Hypothesis examples."""

import math
import os
import subprocess
import sys
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from invppl.datasets import load_mnist, make_dsprites, rotated_mnist
from invppl.transforms import Affine
from tests.transforms.smooth import bilinear_error_bound, gaussian_blobs

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]


def test_every_bundled_digit_rotates_back() -> None:
    mnist = load_mnist()
    data = rotated_mnist(mnist.images, mnist.labels, seed=0, max_angle=math.pi)
    back = np.asarray(
        Affine(("rotation",), method="bicubic").apply(
            jnp.asarray(data.images), -jnp.asarray(data.angles)[:, None]
        )
    )
    rows, cols = np.meshgrid(np.arange(28) - 13.5, np.arange(28) - 13.5, indexing="ij")
    disc = (rows**2 + cols**2) < 12**2
    original = mnist.images[data.indices][:, disc, 0]
    recovered = back[:, disc, 0]
    centred = [a - a.mean(1, keepdims=True) for a in (original, recovered)]
    corr = (centred[0] * centred[1]).sum(1) / np.sqrt(
        (centred[0] ** 2).sum(1) * (centred[1] ** 2).sum(1)
    )
    assert np.quantile(corr, 0.01) > 0.85
    assert np.median(corr) > 0.95


def test_full_size_sprites_have_the_analytic_area() -> None:
    from invppl.datasets import BASE_RADIUS, SHAPE_AREAS, SHAPES

    data = make_dsprites(1500, seed=1, size=64)
    pixel_area = (2 / 64) ** 2
    for label, shape in enumerate(SHAPES):
        chosen = data.labels == label
        measured = data.images[chosen].sum((1, 2, 3)) * pixel_area
        expected = SHAPE_AREAS[shape] * (BASE_RADIUS * data.factors["scale"][chosen]) ** 2
        np.testing.assert_allclose(np.median(measured / expected), 1.0, atol=0.03)


WIDTH = 3.0
BLOBS = gaussian_blobs(32, np.array([[15.5, 15.5]]), WIDTH)


@settings(max_examples=400)
@given(st.floats(-math.pi, math.pi), st.floats(-0.15, 0.15), st.floats(-0.15, 0.15))
def test_round_trip_bound_many_examples(theta: float, tx: float, ty: float) -> None:
    family = Affine(("rotation", "tx", "ty"))
    eta = jnp.array([[theta, tx, ty]])
    back = family.apply(family.apply(BLOBS, eta), -eta)
    assert float(jnp.abs(back - BLOBS).max()) <= 2 * bilinear_error_bound(WIDTH)


def test_tutorials_run_at_full_size(tmp_path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "INVPPL_SMALL"}
    env["INVPPL_SMALL"] = "0"
    subprocess.run(
        [sys.executable, str(ROOT / "tools" / "run_tutorials.py"), "--out", str(tmp_path)],
        check=True,
        env=env,
    )
    # one executed notebook per text notebook tutorials/NN_name.py
    assert sorted(p.name for p in tmp_path.glob("*.ipynb")) == sorted(
        p.with_suffix(".ipynb").name for p in (ROOT / "tutorials").glob("*.py")
    )
