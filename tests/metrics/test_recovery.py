"""law_recovery: alignment, baselines in closed form, the verdict, and bad input."""

import math

import numpy as np
import pytest

from invppl.metrics import law_recovery

TWO_PI = 2 * math.pi


def _report(learned: np.ndarray, truth: np.ndarray, eta: np.ndarray, poses: np.ndarray, **kw):
    return law_recovery(
        learned, truth, poses_train=poses, eta_train=eta, poses_test=poses, eta_test=eta, **kw
    )


def test_a_shifted_copy_of_the_truth_is_recovered_and_the_shift_found() -> None:
    rng = np.random.default_rng(0)
    eta = rng.uniform(-0.4, 0.4, 2000)
    # the pose function's frame is the truth turned by 2.5 rad, across the seam at ±π
    poses = np.angle(np.exp(1j * (eta + 2.5)))
    report = _report(poses, rng.uniform(-0.4, 0.4, 4000), eta, poses, tolerance=0.1, period=TWO_PI)
    assert report.recovered
    assert report.offset == pytest.approx(2.5, abs=1e-6)
    assert report.pose_error < 1e-9
    assert report.w1 < 0.02
    assert report.stage1_w1 == pytest.approx(report.w1)
    # the held-out values are a 2000-sample of the law: their own distance to it is small
    assert 0 < report.sampling_floor < 0.02
    assert "recovered" in report.verdict
    assert "NOT" not in report.verdict
    assert report.to_dict()["verdict"] == report.verdict


def test_baselines_have_their_closed_forms() -> None:
    rng = np.random.default_rng(1)
    eta = np.zeros(100)
    # a point mass on the circle: a uniform law is π/2 away, the best point mass 0
    point = _report(eta, np.zeros(10), eta, eta, tolerance=0.1, period=TWO_PI)
    assert point.uniform_baseline == pytest.approx(math.pi / 2, abs=2e-3)
    assert point.point_baseline == pytest.approx(0.0, abs=1e-9)
    assert point.recovered  # the point-mass baseline is the truth itself: not held against it
    # U(−w, w) on the line: the best point mass (the median) is w / 2 away and
    # U(−1, 1) is (1 − w) / 2 away (W1 = ∫|F − G|)
    half = 0.3
    truth = rng.uniform(-half, half, 20000)
    line = _report(eta, truth, eta, eta, tolerance=0.1, bounds=(-1.0, 1.0))
    assert line.point_baseline == pytest.approx(half / 2, rel=0.02)
    assert line.uniform_baseline == pytest.approx((1 - half) / 2, rel=0.02)
    # the learned point mass is the point baseline: worse than allowed (0.15 > 0.1)
    assert line.w1 == pytest.approx(half / 2, rel=0.02)
    assert not line.recovered
    assert "NOT recovered" in line.verdict


def test_a_smeared_law_is_not_recovered_even_within_tolerance() -> None:
    rng = np.random.default_rng(2)
    eta = rng.uniform(-0.4, 0.4, 3000)
    truth = rng.uniform(-0.4, 0.4, 4000)  # the best point mass is 0.2 away
    smeared = eta + rng.normal(0, 0.5, eta.size)
    report = _report(smeared, truth, eta, smeared, tolerance=0.3, period=TWO_PI)
    assert report.w1 < 0.3  # within tolerance ...
    assert report.w1 > report.point_baseline  # ... but worse than "no rotation"
    assert not report.recovered
    assert report.pose_error == pytest.approx(0.5 * math.sqrt(2 / math.pi), rel=0.1)


def test_a_shape_with_fourfold_symmetry_is_judged_on_its_own_circle() -> None:
    rng = np.random.default_rng(3)
    eta = rng.uniform(-0.2, 0.2, 1000)
    period = math.pi / 2
    poses = eta + period * rng.integers(-2, 2, eta.size)  # a quarter turn is invisible
    report = _report(poses, rng.uniform(-0.2, 0.2, 4000), eta, poses, tolerance=0.1, period=period)
    assert report.recovered
    assert report.w1 < 0.03
    assert report.uniform_baseline == pytest.approx(period / 4 - 0.1, abs=0.01)


def test_bad_input_is_named() -> None:
    eta = np.zeros(5)
    with pytest.raises(ValueError, match="training: poses and true values"):
        law_recovery(
            eta,
            eta,
            poses_train=eta[:3],
            eta_train=eta,
            poses_test=eta,
            eta_test=eta,
            tolerance=0.1,
        )
    with pytest.raises(ValueError, match="held-out: poses and true values"):
        law_recovery(
            eta,
            eta,
            poses_train=eta,
            eta_train=eta,
            poses_test=eta[:0],
            eta_test=eta[:0],
            tolerance=0.1,
        )
    with pytest.raises(ValueError, match="tolerance must be positive"):
        law_recovery(
            eta, eta, poses_train=eta, eta_train=eta, poses_test=eta, eta_test=eta, tolerance=0.0
        )
    with pytest.raises(ValueError, match="needs bounds for the uniform baseline"):
        law_recovery(
            eta, eta, poses_train=eta, eta_train=eta, poses_test=eta, eta_test=eta, tolerance=0.1
        )
