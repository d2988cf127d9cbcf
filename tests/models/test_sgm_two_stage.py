"""The two-stage SGM: its bounds and checks, stage 1's loss by hand, and an end-to-end fit."""

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx
from jax import Array
from numpyro.handlers import seed, substitute, trace
from scipy import ndimage

from invppl.infer import TwoStageFit, fit_two_stage
from invppl.metrics import prototype_invariance
from invppl.models import (
    LearnedSymmetry,
    TwoStageSGM,
    augmentation_bounds,
    eta_prior_model,
    make_two_stage_sgm,
    pose_model,
)
from invppl.transforms import (
    Affine,
    Interval,
    Periodic,
    Real,
    fit_templates,
    gaussian_blur,
    transform_family,
)
from tests.models.scipy_rotation import rotate

SIZE = 16
SMALL = {"hidden": 16, "context_dim": 4, "knots": 4, "flow_layers": 1}


def _l_shape() -> np.ndarray:
    """A smoothed L, well inside the inscribed circle: rotations keep it in the frame."""
    image = np.zeros((SIZE, SIZE))
    image[4:12, 5:8] = 1.0  # the upright
    image[9:12, 5:11] = 1.0  # the foot
    return ndimage.gaussian_filter(image, 0.8)


def _rotated_ls(angles: np.ndarray) -> np.ndarray:
    """``(n, SIZE, SIZE, 1)`` float32 copies of the L, rotated by ``angles``."""
    shape = _l_shape()
    return np.stack([rotate(shape, a) for a in angles])[..., None].astype(np.float32)


# ---------------------------------------------------------------------------
# augmentation_bounds and make_two_stage_sgm


def test_augmentation_bounds_default_to_the_supports() -> None:
    low, high = augmentation_bounds(Affine(("rotation", "tx", "log_scale_x")))
    np.testing.assert_allclose(low, [-math.pi, -1.0, -math.log(2.0)], rtol=1e-6)
    np.testing.assert_allclose(high, [math.pi, 1.0, math.log(2.0)], rtol=1e-6)
    family = transform_family(
        ["rotation", "hue"], supports={"rotation": Periodic(0.0, 1.0), "hue": Periodic(-1, 3)}
    )
    low, high = augmentation_bounds(family, {"hue": (-0.5, 0.25)})
    np.testing.assert_allclose(low, [0.0, -0.5])
    np.testing.assert_allclose(high, [1.0, 0.25])
    assert low.shape == high.shape == (2,)


def test_augmentation_bounds_errors_are_named() -> None:
    real = Affine(("rotation", "tx"), supports={"tx": Real()})
    with pytest.raises(ValueError, match=r"parameter 'tx' has support Real.*give its augmentation"):
        augmentation_bounds(real)
    _, high = augmentation_bounds(real, {"tx": (-0.25, 0.5)})
    np.testing.assert_allclose(high, [math.pi, 0.5])
    family = Affine(("rotation", "tx"))
    with pytest.raises(ValueError, match=r"bounds given for \['ty'\].*not parameters"):
        augmentation_bounds(family, {"ty": (0.0, 1.0)})
    for bad in [(0.5, 0.5), (0.5, -0.5), (-math.inf, 0.0), (0.0, math.nan)]:
        with pytest.raises(ValueError, match="'tx' must be finite with high > low"):
            augmentation_bounds(family, {"tx": bad})


def test_make_two_stage_sgm_errors_are_named() -> None:
    with pytest.raises(ValueError, match="image_shape must be"):
        make_two_stage_sgm((8, 8), seed=0, **SMALL)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="image_shape must be"):
        make_two_stage_sgm((8, 0, 1), seed=0, **SMALL)
    for blur in (-0.5, math.inf, math.nan):
        with pytest.raises(ValueError, match="blur must be a finite width >= 0"):
            make_two_stage_sgm((8, 8, 1), seed=0, blur=blur, **SMALL)
    for num_samples in (0, -1):
        with pytest.raises(ValueError, match="num_samples must be at least 1"):
            make_two_stage_sgm((8, 8, 1), seed=0, num_samples=num_samples, **SMALL)
    for num_samples in (1.5, True):
        with pytest.raises(TypeError, match="num_samples must be an integer"):
            make_two_stage_sgm((8, 8, 1), seed=0, num_samples=num_samples, **SMALL)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="blur_steps must be at least 1"):
        make_two_stage_sgm((8, 8, 1), seed=0, blur_steps=-5, **SMALL)
    with pytest.raises(ValueError, match="unknown transformation name"):
        make_two_stage_sgm((8, 8, 1), ("spin",), seed=0, **SMALL)
    with pytest.raises(ValueError, match="give its augmentation bounds"):
        make_two_stage_sgm((8, 8, 1), Affine(("tx",), supports={"tx": Real()}), seed=0, **SMALL)
    for consistency in (-1.0, math.nan):
        with pytest.raises(ValueError, match="consistency must be a finite weight >= 0"):
            make_two_stage_sgm((8, 8, 1), seed=0, consistency=consistency, **SMALL)
    with pytest.raises(ValueError, match="consistency_steps must be at least 0"):
        make_two_stage_sgm((8, 8, 1), seed=0, consistency_steps=-1, **SMALL)
    with pytest.raises(ValueError, match="augment_warmup must be at least 0"):
        make_two_stage_sgm((8, 8, 1), seed=0, augment_warmup=-2, **SMALL)


def test_make_two_stage_sgm_builds_networks_for_the_family() -> None:
    family = Affine(("rotation", "tx"), supports={"tx": Interval(-0.5, 0.5)})
    shape = (SIZE, SIZE, 1)
    sgm = make_two_stage_sgm(shape, family, seed=0, bounds={"tx": (-0.1, 0.1)}, **SMALL)
    assert isinstance(sgm, TwoStageSGM)
    assert sgm.family is family
    assert sgm.image_shape == shape
    assert sgm.pose_net.supports == (Periodic(), Interval(-0.5, 0.5))
    assert sgm.prior_flow.parameters == family.parameters
    assert sgm.prior_flow.context_dim == 4
    np.testing.assert_allclose(sgm.pose_model.keywords["low"], [-math.pi, -0.1], rtol=1e-6)
    np.testing.assert_allclose(sgm.pose_model.keywords["high"], [math.pi, 0.1], rtol=1e-6)


# ---------------------------------------------------------------------------
# stage 1's loss, by hand


@dataclass(frozen=True)
class _RecordingRotation(Affine):
    """The rotation family, recording the η of every ``apply`` (the random draws ε)."""

    names: tuple[str, ...] = ("rotation",)
    log: list[np.ndarray] = field(default_factory=list, compare=False, hash=False)

    def apply(self, images: Array, eta: Array) -> Array:
        self.log.append(np.asarray(eta))
        return super().apply(images, eta)


class _CentroidPose(nnx.Module):
    """An exactly equivariant pose: ``gain`` × the polar angle of the intensity centroid.

    Rotating an image (whose content stays in the frame) about the centre by ε rotates
    its centroid by ε, so with gain 1 this pose moves by ε too; gain 0 is "no pose".
    """

    def __init__(self, gain: float) -> None:
        self.gain = nnx.Param(jnp.asarray(gain))

    def __call__(self, images: Array) -> Array:
        _, height, width, _ = images.shape
        rows = jnp.arange(height, dtype=images.dtype)[:, None] - (height - 1) / 2
        cols = jnp.arange(width, dtype=images.dtype)[None, :] - (width - 1) / 2
        mass = images[..., 0].sum((1, 2))
        x = (images[..., 0] * cols).sum((1, 2)) / mass
        y = -(images[..., 0] * rows).sum((1, 2)) / mass
        return (self.gain[...] * jnp.arctan2(y, x))[:, None]


def _stage_one(
    x: np.ndarray, pose_net: nnx.Module, *, blur: float, step: int | None = None, **options: Any
) -> tuple[Array, Any, np.ndarray]:
    """Runs pose_model once (seeded): its loss, its trace and the ε it drew."""
    family = _RecordingRotation()
    low, high = augmentation_bounds(family)
    model = seed(pose_model, 0)
    if step is not None:
        model = substitute(model, data={"pose_model$step": {"step": jnp.asarray(step, jnp.int32)}})
    with trace() as traced:
        loss = model(
            jnp.asarray(x),
            pose_net=pose_net,
            family=family,
            low=low,
            high=high,
            blur=blur,
            blur_steps=10,
            **options,
        )
    eps = family.log[0]  # the first apply moves x by the random draws
    return loss, traced, eps[:, 0]


def _loss_by_hand(
    x: np.ndarray, pose: Any, eps: np.ndarray, num_samples: int, sigma: float, radius: int
) -> np.ndarray:
    """Stage 1's loss from its formula, with SciPy's rotations and blur."""
    batch = x.shape[0]
    repeated = np.tile(x[..., 0], (num_samples, 1, 1)).astype(np.float64)
    moved = np.stack([rotate(image, e) for image, e in zip(repeated, eps, strict=True)])
    poses = np.asarray(pose(jnp.asarray(np.concatenate([x[..., 0], moved])[..., None], x.dtype)))
    own, of_moved = poses[:batch, 0], poses[batch:, 0]
    # T_f(x) ∘ T_f(x_s)⁻¹ is a rotation by f(x) − f(x_s)
    back = np.stack([rotate(image, own[j % batch] - of_moved[j]) for j, image in enumerate(moved)])

    def blurred(images: np.ndarray) -> np.ndarray:
        if sigma == 0:
            return images
        return ndimage.gaussian_filter(
            images, (0, sigma, sigma), mode="constant", truncate=radius / sigma
        )

    squared = (blurred(back) - blurred(repeated)) ** 2
    return squared.reshape(num_samples, batch, -1).sum(-1).mean(0)


X_SMALL = _rotated_ls(np.array([0.0, 1.0, -2.5]))


@pytest.mark.parametrize(
    ("blur", "step", "sigma"),
    [(0.0, None, 0.0), (1.0, None, 1.0), (1.0, 5, 0.5), (1.0, 10, 0.0), (1.0, 20, 0.0)],
)
def test_pose_loss_equals_the_formula(blur: float, step: int | None, sigma: float) -> None:
    # A random pose network; σ = blur · max(0, 1 − step / blur_steps) with blur_steps = 10,
    # step 0 when no mutable state is given.
    net = make_two_stage_sgm((SIZE, SIZE, 1), seed=3, **SMALL).pose_net
    loss, traced, eps = _stage_one(X_SMALL, net, blur=blur, step=step, num_samples=2)
    assert loss.shape == (3,)
    assert eps.shape == (6,)
    assert np.all((eps >= -math.pi) & (eps <= math.pi))
    expected = _loss_by_hand(X_SMALL, net, eps, 2, sigma, math.ceil(3 * blur))
    np.testing.assert_allclose(loss, expected, rtol=1e-4, atol=1e-5)
    # the factor site carries −loss per example, inside the data plate
    site = traced["pose_loss"]
    np.testing.assert_allclose(site["fn"].log_prob(site["value"]), -loss, rtol=1e-6)
    assert site["cond_indep_stack"][0].name == "data"
    assert traced["pose_net$params"]["type"] == "param"
    # the step counter is mutable state, advanced once per call
    counter = traced["pose_model$step"]
    assert counter["type"] == "mutable"
    assert int(counter["value"]["step"]) == (0 if step is None else step) + 1


def test_pose_loss_vanishes_for_an_equivariant_pose() -> None:
    x = _rotated_ls(np.array([0.3, -1.2, 3.0]))  # X_SMALL's shapes: the ops are compiled
    exact, _, _ = _stage_one(x, _CentroidPose(1.0), blur=0.0, num_samples=2)
    none, _, _ = _stage_one(x, _CentroidPose(0.0), blur=0.0, num_samples=2)
    wrong_way, _, _ = _stage_one(x, _CentroidPose(-1.0), blur=0.0, num_samples=2)
    # with the true pose only interpolation is left (two resamplings of a smooth image)
    assert float(exact.max()) < 0.05 * float(none.min())
    assert float(exact.max()) < 0.05 * float(wrong_way.min())


def _huber_over_radius(r: np.ndarray, radius: float) -> np.ndarray:
    return np.where(np.abs(r) <= radius, 0.5 * r**2 / radius, np.abs(r) - 0.5 * radius)


@pytest.mark.parametrize(("step", "weight"), [(None, 2.0), (5, 1.0), (10, 0.0), (30, 0.0)])
def test_consistency_term_is_the_huber_distance_of_the_composed_map(
    step: int | None, weight: float
) -> None:
    # λ_t = 2 · max(0, 1 − step / 10); M_s = R(f(x) − f(x_s) + ε_s) for rotations, so
    # M_s − I has the entries (cos d − 1, −sin d, 0, sin d, cos d − 1, 0), d = f(x) − f(x_s) + ε
    net = make_two_stage_sgm((SIZE, SIZE, 1), seed=3, **SMALL).pose_net
    options = {"blur": 0.0, "step": step, "num_samples": 2}
    plain, _, eps = _stage_one(X_SMALL, net, **options)
    total, _, same_eps = _stage_one(
        X_SMALL, net, **options, consistency=2.0, consistency_steps=10, huber_radius=0.05
    )
    np.testing.assert_array_equal(eps, same_eps)
    moved = Affine(("rotation",)).apply(jnp.tile(jnp.asarray(X_SMALL), (2, 1, 1, 1)), eps[:, None])
    own = np.tile(np.asarray(net(jnp.asarray(X_SMALL)))[:, 0], 2)
    d = own - np.asarray(net(moved))[:, 0] + eps
    zero = np.zeros_like(d)
    residual = np.stack([np.cos(d) - 1, -np.sin(d), zero, np.sin(d), np.cos(d) - 1, zero], -1)
    expected = _huber_over_radius(residual, 0.05).sum(-1).reshape(2, 3).mean(0)
    np.testing.assert_allclose(total - plain, weight * expected, rtol=1e-4, atol=1e-6)


def test_consistency_term_vanishes_for_an_equivariant_pose() -> None:
    x = _rotated_ls(np.array([0.3, -1.2, 3.0]))
    options = {"blur": 0.0, "num_samples": 2, "consistency": 1.0, "huber_radius": 0.01}
    exact, _, _ = _stage_one(x, _CentroidPose(1.0), **options)
    plain, _, _ = _stage_one(x, _CentroidPose(1.0), blur=0.0, num_samples=2)
    wrong_way, _, _ = _stage_one(x, _CentroidPose(-1.0), **options)
    # the centroid angle is exactly equivariant up to interpolation: the term adds little
    assert float((exact - plain).max()) < 0.05 * float((wrong_way - plain).min())


def _blurred_prototypes(x: np.ndarray, pose_net: nnx.Module, sigma: float) -> np.ndarray:
    """x̂ = T_f(x)⁻¹ x by SciPy's rotation, blurred by SciPy: ``(batch, H, W)``."""
    poses = np.asarray(pose_net(jnp.asarray(x)))[:, 0]
    back = np.stack([rotate(image, -p) for image, p in zip(x[..., 0], poses, strict=True)])
    return ndimage.gaussian_filter(
        back.astype(np.float64), (0, sigma, sigma), mode="constant", truncate=3.0
    )


def test_template_term_is_the_distance_to_the_nearest_template() -> None:
    net = make_two_stage_sgm((SIZE, SIZE, 1), seed=3, **SMALL).pose_net
    bank = np.random.default_rng(0).uniform(0, 0.3, (2, SIZE, SIZE, 1)).astype(np.float32)
    plain, _, eps = _stage_one(X_SMALL, net, blur=0.0, num_samples=2)
    options = {"templates": 2, "template_weight": 0.7, "template_blur": 1.0}
    with substitute(data={"pose_templates": jnp.asarray(bank)}):
        total, _, same_eps = _stage_one(X_SMALL, net, blur=0.0, num_samples=2, **options)
    np.testing.assert_array_equal(eps, same_eps)
    prototypes = _blurred_prototypes(X_SMALL, net, 1.0)
    distances = ((prototypes[:, None] - bank[None, ..., 0]) ** 2).sum((2, 3))  # (batch, K)
    np.testing.assert_allclose(total - plain, 0.7 * distances.min(1), rtol=1e-3, atol=1e-4)


def test_templates_start_as_the_first_batchs_prototypes() -> None:
    net = make_two_stage_sgm((SIZE, SIZE, 1), seed=3, **SMALL).pose_net
    _, traced, _ = _stage_one(X_SMALL, net, blur=0.0, num_samples=1, templates=2)
    site = traced["pose_templates"]
    assert site["type"] == "param"
    expected = _blurred_prototypes(X_SMALL, net, 1.0)[:2, ..., None]
    np.testing.assert_allclose(site["value"], expected, atol=1e-4)
    with pytest.raises(ValueError, match=r"at least as many examples as templates \(4\)"):
        _stage_one(X_SMALL, net, blur=0.0, num_samples=1, templates=4)
    for name, value in (("template_weight", 0.0), ("template_blur", math.nan)):
        with pytest.raises(ValueError, match=f"{name} must be a finite number > 0"):
            make_two_stage_sgm((8, 8, 1), seed=0, templates=2, **{name: value}, **SMALL)
    with pytest.raises(ValueError, match="templates must be at least 0"):
        make_two_stage_sgm((8, 8, 1), seed=0, templates=-1, **SMALL)


@pytest.mark.parametrize(("step", "half_width"), [(None, 0.0), (5, math.pi / 2), (10, math.pi)])
def test_augmentation_widens_over_the_warm_up(step: int | None, half_width: float) -> None:
    net = make_two_stage_sgm((SIZE, SIZE, 1), seed=3, **SMALL).pose_net
    _, _, eps = _stage_one(X_SMALL, net, blur=0.0, step=step, num_samples=8, augment_warmup=10)
    assert np.all(np.abs(eps) <= half_width + 1e-6)
    if half_width > 0:  # 24 uniform draws reach beyond half the current width
        assert np.abs(eps).max() > half_width / 2


def test_pose_residual_is_zero_for_equivariant_poses_and_matches_expm() -> None:
    from scipy.linalg import expm

    from invppl.models.sgm_two_stage import pose_residual
    from invppl.transforms import GENERATORS, Colour

    rng = np.random.default_rng(0)
    names = ("rotation", "tx", "log_scale_x")
    family = Affine(names)
    own, of_moved, eps = (jnp.asarray(rng.normal(0, 0.4, (4, 3)), jnp.float32) for _ in range(3))
    residual = np.asarray(pose_residual(family, own, of_moved, eps))

    def matrix(eta: np.ndarray) -> np.ndarray:
        return expm(sum(e * GENERATORS[n] for e, n in zip(eta, names, strict=True)))

    for row in range(4):
        composed = matrix(own[row]) @ np.linalg.inv(matrix(of_moved[row])) @ matrix(eps[row])
        np.testing.assert_allclose(residual[row], (composed - np.eye(3))[:2].ravel(), atol=1e-5)
    # colour maps commute: f(x_s) = f(x) + ε is exactly equivariant
    colour = Colour(("hue", "saturation"))
    both = transform_family(["rotation", "hue"])
    a, e = (jnp.asarray(rng.normal(0, 0.3, (4, 2)), jnp.float32) for _ in range(2))
    assert np.abs(np.asarray(pose_residual(colour, a, a + e, e))).max() < 1e-5
    assert pose_residual(both, a, a + e, e).shape == (4, 6 + 9)
    with pytest.raises(TypeError, match="needs a family with matrices"):
        pose_residual(object(), a, a, e)  # type: ignore[arg-type]


def test_stage_optimizer_follows_its_schedule() -> None:
    from invppl.infer import stage_optimizer

    # a linear loss with gradient 1: clipped AdamW (no decay) moves by the learning rate
    optimizer = stage_optimizer(200, 1e-2, weight_decay=0.0, clip_norm=1e9)
    params = {"w": jnp.zeros(())}
    state = optimizer.init(params)
    steps = []
    for _ in range(200):
        updates, state = optimizer.update({"w": jnp.ones(())}, state, params)
        steps.append(-float(updates["w"]))
    warmup, peak, final = 10, 1e-2, 1e-2 / 30
    np.testing.assert_allclose(steps[0], peak / 10, rtol=1e-3)
    np.testing.assert_allclose(steps[warmup], peak, rtol=1e-3)
    middle = warmup + (200 - warmup) // 2
    np.testing.assert_allclose(steps[middle], final + (peak - final) / 2, rtol=2e-2)
    assert steps[-1] < 1.05 * final + 1e-4
    with pytest.raises(ValueError, match="num_steps must be an integer >= 1"):
        stage_optimizer(0, 1e-3)
    with pytest.raises(ValueError, match="peak_learning_rate must be positive"):
        stage_optimizer(10, -1.0)


# ---------------------------------------------------------------------------
# end to end: one shape, rotated


N = 64
POSE_STEPS = 150
ANGLES = np.random.default_rng(0).uniform(-math.pi, math.pi, N)
X = _rotated_ls(ANGLES)


@dataclass(frozen=True)
class _Fitted:
    sgm: TwoStageSGM
    result: TwoStageFit
    poses: np.ndarray  # (N,) the fitted f(x) of X
    prototype: Callable[[Array], Array]  # x ↦ x̂, compiled


@pytest.fixture(scope="module")
def fitted() -> _Fitted:
    sgm = make_two_stage_sgm(
        (SIZE, SIZE, 1), ("rotation",), seed=0, blur=1.0, blur_steps=75, **SMALL
    )
    result = fit_two_stage(
        sgm,
        {"x": X},
        seed=0,
        pose_steps=POSE_STEPS,
        prior_steps=20,
        batch_size=32,
        pose_optimizer=optax.adam(5e-3),
        progress=False,
    )
    poses = np.asarray(jax.jit(result.symmetry.pose)(jnp.asarray(X)))[:, 0]
    return _Fitted(sgm, result, poses, jax.jit(result.symmetry.prototype))


def test_learned_pose_is_the_true_angle_up_to_a_constant(fitted: _Fitted) -> None:
    result = fitted.result
    assert result.pose.steps_done == POSE_STEPS
    assert not result.pose.stopped_early
    assert np.all(np.isfinite(result.pose.losses))
    assert np.mean(result.pose.losses[-20:]) < 0.2 * np.mean(result.pose.losses[:5])
    assert np.all((fitted.poses >= -math.pi) & (fitted.poses < math.pi))
    # f(T_a x₀) = f(x₀) + a for an equivariant pose: pose − angle is constant on the circle
    resultant = abs(np.mean(np.exp(1j * (fitted.poses - ANGLES))))
    assert resultant > 0.9, resultant


def test_prototypes_are_much_more_alike_than_the_inputs(fitted: _Fitted) -> None:
    symmetry = fitted.result.symmetry
    eta = jnp.asarray(np.random.default_rng(1).uniform(-math.pi, math.pi, (N, 1)), jnp.float32)
    report = prototype_invariance(fitted.prototype, jnp.asarray(X), symmetry.family, eta)
    assert report.identity_baseline > 0.3
    assert report.relative < 0.05 * report.identity_baseline, report.to_dict()
    # x̂ = T_f(x)⁻¹(x): each input rotated back by its pose (SciPy's rotation)
    prototypes = np.asarray(fitted.prototype(jnp.asarray(X)))
    for index in range(0, N, 9):
        expected = rotate(X[index, ..., 0], -fitted.poses[index])
        np.testing.assert_allclose(prototypes[index, ..., 0], expected, atol=1e-4)


def test_step_counter_advances_once_per_svi_step(fitted: _Fitted) -> None:
    result = fitted.result
    # one call in SVI.init, then one per step
    assert jax.tree.map(int, result.pose.state.mutable_state) == {
        "pose_model$step": {"step": POSE_STEPS + 1}
    }
    assert result.prior.state.mutable_state is None


def _weights(module: nnx.Module) -> Any:
    return nnx.to_pure_dict(nnx.state(module, nnx.Param))


def _assert_trees_equal(left: Any, right: Any) -> None:
    assert jax.tree.structure(left) == jax.tree.structure(right)
    for a, b in zip(jax.tree.leaves(left), jax.tree.leaves(right), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_the_learned_symmetry_holds_the_fitted_networks(fitted: _Fitted) -> None:
    sgm, result = fitted.sgm, fitted.result
    symmetry = result.symmetry
    assert isinstance(symmetry, LearnedSymmetry)
    assert symmetry.family is sgm.family
    assert result.prior.steps_done == 20
    assert np.all(np.isfinite(result.prior.losses))
    # stage 2's loss is −log p(f(x) | x̂) in nats per example; the poses of one shape turned
    # uniformly are spread evenly on the circle, whose uniform density gives log 2π
    assert abs(np.mean(result.prior.losses[-5:]) - math.log(2 * math.pi)) < 0.1
    # early stopping: the held-out tenth is evaluated every step (20 times in all) and the
    # parameters of the best held-out log-density are kept
    assert [record["step"] for record in result.prior.eval] == list(range(1, 21))
    best = max(result.prior.eval, key=lambda record: record["elbo"])
    assert result.prior.best_step == best["step"]
    assert set(result.pose.params) == {"pose_net$params"}
    assert set(result.prior.params) == {"prior_embedding$params", "prior_flow$params"}
    _assert_trees_equal(_weights(symmetry.pose_net), result.pose.params["pose_net$params"])
    _assert_trees_equal(
        _weights(symmetry.prior_embedding), result.prior.params["prior_embedding$params"]
    )
    _assert_trees_equal(_weights(symmetry.prior_flow), result.prior.params["prior_flow$params"])
    # the networks the SGM was built with keep their initial weights
    initial, final = _weights(sgm.pose_net), result.pose.params["pose_net$params"]
    kernel = ("body", "head", "out", "kernel")
    first, last = initial, final
    for name in kernel:
        first, last = first[name], last[name]
    assert not np.allclose(np.asarray(first), np.asarray(last))


def test_the_equivariance_check_flags_an_untrained_pose_and_passes_a_fitted_one(
    fitted: _Fitted,
) -> None:
    from invppl.metrics import pose_equivariance_error

    family = Affine(("rotation",))
    eta = jnp.asarray(np.random.default_rng(4).uniform(-math.pi, math.pi, (N, 1)), jnp.float32)
    x = jnp.asarray(X)
    trained = pose_equivariance_error(fitted.result.symmetry.pose, family, x, eta)
    untrained = pose_equivariance_error(fitted.sgm.pose_net, family, x, eta)
    exact = pose_equivariance_error(_CentroidPose(1.0), family, x, eta)
    assert trained.shape == (N,)
    assert float(np.median(exact)) < 0.02
    assert float(np.median(trained)) < 0.1
    assert float(np.median(untrained)) > 0.4
    with pytest.raises(ValueError, match=r"eta must have shape \(batch, 1\)"):
        pose_equivariance_error(_CentroidPose(1.0), family, x, eta[:3])


def test_stage_two_holds_out_a_seeded_disjoint_part() -> None:
    from invppl.infer.two_stage import _holdout_split

    x = np.arange(50, dtype=np.float32).reshape(50, 1, 1, 1)
    kept, held = _holdout_split({"x": x}, 0.1, 8, seed=3)
    assert held is not None
    assert held["x"].shape == (5, 1, 1, 1)
    assert kept["x"].shape == (45, 1, 1, 1)
    together = np.sort(np.concatenate([kept["x"], held["x"]]).ravel())
    np.testing.assert_array_equal(together, x.ravel())  # a partition of the examples
    again = _holdout_split({"x": x}, 0.1, 8, seed=3)[1]
    assert again is not None
    np.testing.assert_array_equal(again["x"], held["x"])
    other = _holdout_split({"x": x}, 0.1, 8, seed=4)[1]
    assert other is not None
    assert not np.array_equal(other["x"], held["x"])
    everything, none = _holdout_split({"x": x}, 0, 8, seed=3)
    assert none is None
    np.testing.assert_array_equal(everything["x"], x)
    # known poses travel with their images (stage 2 on known poses)
    eta = 10 * x.reshape(50, 1)
    kept, held = _holdout_split({"x": x, "eta": eta}, 0.1, 8, seed=3)
    assert held is not None
    np.testing.assert_array_equal(held["x"], again["x"])
    np.testing.assert_array_equal(held["eta"], 10 * held["x"].reshape(-1, 1))
    np.testing.assert_array_equal(kept["eta"], 10 * kept["x"].reshape(-1, 1))


def test_stage_two_on_known_poses_is_stage_two_of_a_pose_function_giving_them() -> None:
    """``eta_prior_model(x, eta)`` scores what the model of a pose f with f(x) = eta does."""
    x = _rotated_ls(np.array([-2.0, -0.7, 0.1, 0.9, 2.5]))
    sgm = make_two_stage_sgm(x.shape[1:], ("rotation",), seed=0, hidden=8, context_dim=3)
    pose = _CentroidPose(1.0)
    eta = pose(jnp.asarray(x))
    options = {"prior_embedding": sgm.prior_embedding, "prior_flow": sgm.prior_flow}

    def log_density(model: Callable[..., Any], *args: Any) -> np.ndarray:
        site = trace(seed(model, 0)).get_trace(jnp.asarray(x), *args)["eta"]
        return np.asarray(site["fn"].log_prob(site["value"]))

    from_pose = log_density(partial(eta_prior_model, pose=pose, family=sgm.family, **options))
    np.testing.assert_allclose(log_density(sgm.eta_prior_model(None), eta), from_pose, rtol=1e-6)
    # the known poses are used, not ignored
    moved = log_density(sgm.eta_prior_model(None), eta + 0.5)
    assert np.abs(moved - from_pose).max() > 1e-3
    with pytest.raises(ValueError, match="exactly one of pose"):
        eta_prior_model(jnp.asarray(x), eta, pose=pose, family=sgm.family, **options)
    with pytest.raises(ValueError, match="exactly one of pose"):
        eta_prior_model(jnp.asarray(x), family=sgm.family, **options)


def test_neighbour_poses_average_the_log_density_over_them() -> None:
    """m copies of its own pose score as the pose alone; two poses score their mean."""
    x = _rotated_ls(np.array([-2.0, -0.7, 0.1, 0.9, 2.5]))
    sgm = make_two_stage_sgm(x.shape[1:], ("rotation",), seed=0, hidden=8, context_dim=3)
    eta = jnp.asarray([[-2.0], [-0.7], [0.1], [0.9], [2.5]])
    model = sgm.eta_prior_model(None)

    def score(*args: Any) -> np.ndarray:
        site = trace(seed(model, 0)).get_trace(jnp.asarray(x), eta, *args)["eta"]
        return np.asarray(site["fn"].log_prob(site["value"]))  # a factor's too

    own = score()
    copies = score(jnp.repeat(eta[:, None], 3, axis=1))
    np.testing.assert_allclose(copies, own, rtol=1e-5, atol=1e-5)
    other = eta[::-1]
    both = score(jnp.stack([eta, other], axis=1))
    mean = 0.5 * (own + score(jnp.repeat(other[:, None], 2, axis=1)))
    np.testing.assert_allclose(both, mean, rtol=1e-5, atol=1e-5)
    assert np.abs(both - own).max() > 1e-3
    with pytest.raises(ValueError, match="neighbour_eta needs the known poses"):
        eta_prior_model(
            jnp.asarray(x),
            neighbour_eta=eta[:, None],
            pose=_CentroidPose(1.0),
            prior_embedding=sgm.prior_embedding,
            prior_flow=sgm.prior_flow,
            family=sgm.family,
        )


def test_neighbour_poses_come_from_the_nearest_kept_prototypes() -> None:
    """Against a brute-force count: the kept examples' nearest prototypes, itself first."""
    from invppl.infer.two_stage import _neighbour_poses

    rng = np.random.default_rng(0)
    x = rng.uniform(size=(12, 8, 8, 1)).astype(np.float32)
    family = make_two_stage_sgm((8, 8, 1), ("tx",), seed=0, **SMALL).family
    poses = np.zeros((12, 1), np.float32)  # prototypes are the images themselves
    poses[:, 0] = np.arange(12) / 100
    kept = np.array([0, 1, 2, 3, 5, 6, 8, 9, 10, 11])
    out = _neighbour_poses(family, x, poses, 3, kept, batch=4)
    prototypes = np.asarray(
        gaussian_blur(family.apply(jnp.asarray(x), -jnp.asarray(poses)), 1.0, radius=3)
    ).reshape(12, -1)
    for i in range(12):
        if i not in kept:
            np.testing.assert_array_equal(out[i, :, 0], poses[i, 0])
            continue
        distance = np.square(prototypes[kept] - prototypes[i]).sum(1)
        nearest = kept[np.argsort(distance)[:3]]
        assert nearest[0] == i
        assert sorted(out[i, :, 0].tolist()) == sorted(poses[nearest, 0].tolist())
    # the public form holds out the rows that fit_eta_prior holds out
    from invppl.infer import neighbour_poses
    from invppl.infer.two_stage import _holdout_split

    many = rng.uniform(size=(40, 8, 8, 1)).astype(np.float32)
    eta = (np.arange(40, dtype=np.float32) / 100)[:, None]
    out = neighbour_poses(family, many, eta, 3, holdout=0.1, batch_size=8, seed=3)
    _, held = _holdout_split({"x": many, "eta": eta}, 0.1, 8, seed=3)
    assert held is not None
    alone = np.flatnonzero(np.all(out[:, :, 0] == eta, axis=1))
    np.testing.assert_array_equal(np.sort(eta[alone, 0]), np.sort(held["eta"][:, 0]))


@pytest.mark.parametrize(
    ("fraction", "batch_size", "message"),
    [
        (0.5, 8, r"prior_holdout must be a fraction in \[0, 0.5\), got 0.5"),
        (-0.1, 8, r"prior_holdout must be a fraction"),
        (0.4, 40, r"leaves 30 of 50 examples for stage 2, fewer than batch_size=40"),
    ],
)
def test_bad_holdout_raises_before_any_work(fraction: float, batch_size: int, message: str) -> None:
    sgm = make_two_stage_sgm((SIZE, SIZE, 1), ("rotation",), seed=0, **SMALL)
    x = np.zeros((50, SIZE, SIZE, 1), np.float32)
    with pytest.raises(ValueError, match=message):
        fit_two_stage(
            sgm,
            {"x": x},
            seed=0,
            pose_steps=1,
            prior_steps=1,
            batch_size=batch_size,
            prior_holdout=fraction,
            progress=False,
        )


# ---------------------------------------------------------------------------
# frame templates between the stages


def test_frame_templates_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="frame_templates must be at least 0"):
        make_two_stage_sgm((8, 8, 1), seed=0, frame_templates=-1, **SMALL)
    with pytest.raises(ValueError, match="frame_blur must be a positive width"):
        make_two_stage_sgm((8, 8, 1), seed=0, frame_templates=2, frame_blur=0.0, **SMALL)
    with pytest.raises(ValueError, match="frame_method must be one of"):
        make_two_stage_sgm((8, 8, 1), seed=0, frame_templates=2, frame_method="knn", **SMALL)
    with pytest.raises(ValueError, match="one periodic parameter"):
        make_two_stage_sgm(
            (8, 8, 1), ("tx", "ty"), seed=0, frame_templates=2, frame_method="graph", **SMALL
        )


def test_aligned_poses_are_the_search_around_the_network(fitted: _Fitted) -> None:
    """With frames, f(x) is the network's pose searched against the templates."""
    sgm, result = fitted.sgm, fitted.result
    frames = fit_templates(sgm.family, X, fitted.poses[:, None], count=1, seed=0, num_grid=32)
    symmetry = sgm.learned(result.pose.params, result.prior.params, frames)
    aligned = np.asarray(jax.jit(symmetry.pose)(jnp.asarray(X)))
    expected = frames.align(sgm.family, jnp.asarray(X), jnp.asarray(fitted.poses[:, None]))
    np.testing.assert_allclose(aligned, np.asarray(expected), atol=1e-5)
    # one shape: after the search, pose − angle is the same for every example
    resultant = abs(np.mean(np.exp(1j * (aligned[:, 0] - ANGLES))))
    assert resultant > 0.995, resultant


@pytest.mark.slow  # ~38 s each (the searches compile); the parts are tested in make test
@pytest.mark.parametrize("method", ["search", "graph"])
def test_fit_two_stage_learns_the_frames_it_is_asked_for(method: str) -> None:
    sgm = make_two_stage_sgm(
        (SIZE, SIZE, 1), seed=0, frame_templates=2, frame_method=method, **SMALL
    )
    result = fit_two_stage(
        sgm, {"x": X}, seed=0, pose_steps=2, prior_steps=2, batch_size=16, progress=False
    )
    assert result.frames is not None
    assert result.symmetry.frames is result.frames
    assert result.frames.templates.shape == (2, SIZE, SIZE, 1)
    assert int(result.frames.sizes.sum()) == N


def test_fit_eta_prior_rejects_bad_settings_before_work() -> None:
    from invppl.infer import fit_eta_prior

    x = _rotated_ls(np.zeros(20))
    sgm = make_two_stage_sgm(x.shape[1:], ("rotation",), seed=0, hidden=8, context_dim=3)
    model, eta = sgm.eta_prior_model(None), np.zeros((20, 1), np.float32)
    with pytest.raises(ValueError, match="images under 'x'"):
        fit_eta_prior(model, {"eta": eta}, seed=0, num_steps=5, batch_size=4)
    with pytest.raises(ValueError, match="eval_every"):
        fit_eta_prior(model, {"x": x, "eta": eta}, seed=0, num_steps=5, batch_size=4, eval_every=0)
    with pytest.raises(ValueError, match="prior_holdout must be a fraction"):
        fit_eta_prior(model, {"x": x, "eta": eta}, seed=0, num_steps=5, batch_size=4, holdout=0.6)
