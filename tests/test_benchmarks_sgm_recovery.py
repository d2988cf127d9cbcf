"""benchmarks/sgm_recovery.py: the stage-2 oracle's evaluation and the pose-error tail."""

from __future__ import annotations

import math
import runpy
from pathlib import Path

import numpy as np
import pytest

from invppl.models import LearnedSymmetry, make_two_stage_sgm

BENCHMARK = Path(__file__).resolve().parents[1] / "benchmarks" / "sgm_recovery.py"


@pytest.fixture(scope="module")
def recovery() -> dict:
    return runpy.run_path(str(BENCHMARK), run_name="sgm_recovery")


def test_pose_tail_by_hand(recovery) -> None:
    eta = np.zeros(5)
    # errors after the offset 0.1: 0, -0.2, 0.4, wrapped -3.0 (a near half turn), 0.35
    poses = np.array([0.1, -0.1, 0.5, 0.1 + 2 * math.pi - 3.0, 0.45])
    tail = recovery["_pose_tail"](poses, eta, 0.1, 2 * math.pi, 0.3)
    errors = np.array([0.0, 0.2, 0.4, 3.0, 0.35])
    assert tail["pose_error_median"] == pytest.approx(np.median(errors), abs=1e-9)
    assert tail["pose_error_p90"] == pytest.approx(np.percentile(errors, 90), abs=1e-9)
    assert tail["pose_outliers"] == pytest.approx(3 / 5)
    on_the_line = recovery["_pose_tail"](np.array([0.0, 1.0]), np.zeros(2), 0.0, None, 0.5)
    assert on_the_line["pose_outliers"] == pytest.approx(0.5)


def test_known_poses_are_the_truth(recovery) -> None:
    """With known poses the pose error is 0 and stage 1's W1 is the test set's own floor."""
    task = recovery["shapes_rotation"](np.random.default_rng([3, 17]), 150, 3)
    sgm = make_two_stage_sgm(task.images.shape[1:], ("rotation",), seed=0, hidden=8, context_dim=4)
    symmetry = LearnedSymmetry(sgm.family, sgm.pose_net, sgm.prior_embedding, sgm.prior_flow)
    order = np.random.default_rng(0).permutation(len(task.labels))
    test, train = np.sort(order[:60]), np.sort(order[60:])
    rows = recovery["evaluate"](task, symmetry, train, test, 0, known_poses=True)
    assert len(rows) == 3
    for row in rows:
        assert row["pose_error"] < 1e-5
        assert row["pose_outliers"] == 0.0
        assert row["stage1_w1"] == pytest.approx(row["sampling_floor"], abs=1e-5)
        assert math.isnan(row["equivariance_error"])
        assert 0.0 <= row["narrower_share"] <= 1.0


def test_narrower_share_counts_the_prototypes_given_a_narrow_law(recovery) -> None:
    rng = np.random.default_rng(0)
    draws = rng.uniform(-math.pi, math.pi, (64, 10))  # ten prototypes, each a flat law
    draws[:, 3] = rng.normal(1.0, 0.05, 64)  # one given a point mass
    assert recovery["_narrower_share"](draws, 2 * math.pi) == pytest.approx(0.1)
    # the same law for all prototypes: none is narrower, on the circle or the line
    same = rng.normal(0.0, 0.1, (64, 10))
    assert recovery["_narrower_share"](same, 2 * math.pi) == 0.0
    assert recovery["_narrower_share"](same, None) == 0.0
    line = rng.normal(0.0, 1.0, (64, 10))
    line[:, 7] = rng.normal(3.0, 0.02, 64)  # one prototype narrow and elsewhere
    assert recovery["_narrower_share"](line, None) == pytest.approx(0.1)
