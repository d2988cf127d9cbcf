"""random_law: each kind is what it says, inside its range, reproducible; bad input named."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from invppl.datasets.laws import LAW_KINDS, DeltaLaw, MixtureLaw, UniformLaw, random_law


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**31),
    kind=st.sampled_from(LAW_KINDS),
    low=st.floats(-5, 5),
    span=st.floats(0.1, 10),
)
def test_laws_on_the_line_stay_in_range_and_have_their_shape(
    seed: int, kind: str, low: float, span: float
) -> None:
    high = low + span
    law = random_law(np.random.default_rng(seed), kind, low=low, high=high)
    values = law.sample(np.random.default_rng(seed + 1), 2000)
    assert np.all((values >= low - 1e-9) & (values <= high + 1e-9))
    spread = float(np.ptp(values))
    if kind == "point":
        assert isinstance(law, DeltaLaw)
        assert spread == 0.0
    elif kind == "narrow":
        assert isinstance(law, UniformLaw)
        assert 0.1 * span - 1e-9 <= law.high - law.low <= 0.24 * span + 1e-9
    elif kind == "multimodal":
        assert isinstance(law, MixtureLaw)
        assert len(law.components) == 2
        first, second = (c.low + c.high for c in law.components)
        assert 0.3 * span - 1e-9 <= abs(second - first) / 2 <= 0.45 * span + 1e-9
        # no mass between the modes
        middle = (first + second) / 4
        assert np.mean(np.abs(values - middle) < 0.1 * span) == 0.0
    else:
        assert law == UniformLaw(low, high)


def test_laws_on_the_circle_may_sit_anywhere_and_are_reproducible() -> None:
    centres = [
        random_law(
            np.random.default_rng(s), "point", low=-math.pi, high=math.pi, periodic=True
        ).value
        for s in range(200)
    ]
    assert min(centres) < -2.9
    assert max(centres) > 2.9
    first = random_law(np.random.default_rng(7), "multimodal", low=0.0, high=1.0)
    assert first == random_law(np.random.default_rng(7), "multimodal", low=0.0, high=1.0)


def test_bad_input_is_named() -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match=r"unknown law kind 'spike'.*expected one of"):
        random_law(rng, "spike", low=0.0, high=1.0)
    with pytest.raises(ValueError, match="needs high > low"):
        random_law(rng, "wide", low=1.0, high=1.0)
    with pytest.raises(ValueError, match="narrow half-widths"):
        random_law(rng, "narrow", low=0.0, high=1.0, narrow=(0.3, 0.6))
