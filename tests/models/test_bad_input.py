"""Bad input to the SGM family fails before any training step, naming the problem."""

import math

import numpy as np
import pytest

from invppl.distributions.likelihood import KINDS
from invppl.infer import fit
from invppl.models import make_invariant_vae, make_sgm, make_two_stage_sgm, make_vae
from invppl.transforms import Interval, transform_family

SMALL = {"hidden": 8, "context_dim": 4, "knots": 4, "flow_layers": 1}


def _images(n: int, size: int) -> np.ndarray:
    return np.random.default_rng(0).uniform(size=(n, size, size, 1)).astype(np.float32)


def test_images_that_do_not_fit_the_networks() -> None:
    sgm = make_sgm((8, 8, 1), 2, ("rotation",), seed=0, **SMALL)
    # the model is traced first (for its observed site's support): its likelihood names it
    said = r"observed images have shape \(8, 10, 10, 1\) but the prototype has shape \(8, 8, 8, 1\)"
    with pytest.raises(ValueError, match=said):
        fit(
            sgm.model,
            sgm.guide,
            {"x": _images(16, 10)},
            seed=0,
            num_steps=5,
            batch_size=8,
            progress=False,
        )


def test_unknown_transformation_name() -> None:
    with pytest.raises(ValueError, match="unknown transformation name"):
        make_sgm((8, 8, 1), 2, ("rotation", "twist"), seed=0, **SMALL)
    with pytest.raises(ValueError, match="unknown transformation name"):
        make_two_stage_sgm((8, 8, 1), ("twist",), seed=0, hidden=8)


def test_empty_eta_bounds() -> None:
    with pytest.raises(ValueError, match="Interval is empty"):
        transform_family(["tx"], supports={"tx": Interval(0.3, 0.3)})
    with pytest.raises(ValueError, match="high > low"):
        make_two_stage_sgm((8, 8, 1), ("rotation",), seed=0, bounds={"rotation": (1.0, -1.0)})


def test_nan_in_the_data() -> None:
    sgm = make_sgm((8, 8, 1), 2, ("rotation",), seed=0, **SMALL)
    images = _images(16, 8)
    images[3, 2, 2, 0] = math.nan
    with pytest.raises(ValueError, match="NaN"):
        fit(sgm.model, sgm.guide, {"x": images}, seed=0, num_steps=5, batch_size=8, progress=False)


@pytest.mark.parametrize(
    "build",
    [
        lambda kind: make_vae((8, 8, 1), 2, seed=0, hidden=8, kind=kind),
        lambda kind: make_sgm((8, 8, 1), 2, ("rotation",), seed=0, kind=kind, **SMALL),
        lambda kind: make_invariant_vae((4,), 2, seed=0, num_categories=2, kind=kind),
    ],
    ids=["make_vae", "make_sgm", "make_invariant_vae"],
)
def test_every_make_refuses_an_unknown_likelihood_listing_the_valid_ones(build) -> None:
    with pytest.raises(ValueError, match="unknown likelihood kind 'gaussian'") as error:
        build("gaussian")
    for kind in KINDS:
        assert repr(kind) in str(error.value)


def test_images_in_0_to_255_are_refused_by_a_continuous_bernoulli_sgm() -> None:
    sgm = make_sgm((8, 8, 1), 2, ("rotation",), seed=0, kind="continuous_bernoulli", **SMALL)
    images = 255 * _images(16, 8)
    with pytest.raises(ValueError, match=r"ContinuousBernoulli, support \[0, 1\]\): 16 of 16") as e:
        fit(sgm.model, sgm.guide, {"x": images}, seed=0, num_steps=1, batch_size=4, progress=False)
    assert "x / 255" in str(e.value)
    with pytest.raises(
        ValueError, match=r"takes the data keys \['x'\] \(required\) and \['node'\]"
    ):
        fit(sgm.model, sgm.guide, {"images": images / 255}, seed=0, num_steps=1, batch_size=4)
