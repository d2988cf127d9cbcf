"""Does the two-stage SGM recover each class's law of η? Random laws, several seeds.

For every seed, each class gets a law drawn at random from a family
(:func:`invppl.datasets.laws.random_law`): a point mass (no transformation), a
narrow uniform of random width and centre, two narrow modes, or the whole
range. The data are transformed by those laws, the SGM is fitted in two stages
with the library's defaults (or, with ``--method joint``, the SGM is fitted
by joint SVI, :func:`invppl.models.make_sgm`), and for each class and parameter the benchmark
prints (:func:`invppl.metrics.law_recovery`) the aligned W1 of the learned
p(η | x̂) to the truth, beside a uniform law and the best point mass, the
pose function's error (stage 1), its truth-free equivariance error on held-out
images (:func:`invppl.metrics.pose_equivariance_error`, median) and whether
the law counts as recovered.

Tasks:

- ``shapes-rotation``: dSprites-like squares, ellipses and hearts (scale
  U(0.6, 1) as a nuisance, centred), rotation; the heart is always upright (a
  point mass), square and ellipse take two different random kinds. A shape
  with k-fold symmetry is compared on the circle of period 2π/k.
- ``shapes-translation``: the same shapes upright, (tx, ty), a random kind per
  shape and axis within [−0.4, 0.4] (the image spans [−1, 1]).
- ``shapes-scale``: centred, upright, (log_scale_x, log_scale_y) with one
  random law of log scale in [log 0.55, 0] per shape (both axes the same).
- ``digits-rotation``: bundled MNIST digits 1, 2, 3, 4, 7, a random kind per
  digit (every kind at least once). Digits lean by their own angle, which an
  equivariant pose function cannot tell from a rotation, so a point-mass or
  narrow law comes out widened by it: each row also prints ``oracle``, the W1
  to the law of the applied angle plus the digit's own (congealed,
  :func:`invppl.metrics.congeal`) angle, what a pose frame consistent across
  the class would give, and ``natural``, the spread of the own angles.
- ``digits-aligned-rotation``: the same with every digit first turned by minus
  its congealed angle, so that the applied law is the whole truth (the
  oracle's floor is the test sample's own noise).

Tolerances (W1): rotation 0.10 rad (0.15 for two modes), translation 0.05
(0.075), log scale 0.05 (0.075).

    .venv/bin/python benchmarks/sgm_recovery.py [--tasks shapes-rotation ...] \
        [--seeds 0 1 2 3 4] [--pose-steps 1000] [--prior-steps 1500] [--frames K] \
        [--frame-method search|graph] [--prior-neighbours M] \
        [--method two-stage|joint|stage2-oracle] [--out results.json]

``--frames K --frame-method graph`` learns the frame templates from the
rotation-invariant neighbour graph (:mod:`invppl.transforms.graph_frames`,
one periodic parameter only); ``--prior-neighbours M`` fits stage 2 on each
example's M nearest prototypes' poses (``fit_two_stage(prior_neighbours=M)``,
also with ``--method stage2-oracle``).

``--method stage2-oracle`` fits stage 2 alone on the truth (η the applied
transformation, x̂ = T_η⁻¹(x)) with the same networks, steps and early
stopping: the W1 it leaves is stage 2's own error, apart from stage 1's.
Each row also prints the median pose error (``p.med``), the share of
held-out examples whose pose misses by more than three tolerances (``p.out``;
a few examples in a wrong frame move W1 as much as a small error in all) and
the share of held-out prototypes whose learned law is less than half as wide
as their class's (``narrow``): prototypes that p(η | x̂) took for another class.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from invppl._batching import in_batches
from invppl._machine import machine_info, record_results
from invppl.datasets import SHAPES, SYMMETRY_ORDER, load_mnist, make_dsprites, rotated_mnist
from invppl.datasets.laws import LAW_KINDS, DeltaLaw, Law, UniformLaw, random_law
from invppl.distributions import with_fitted_flow
from invppl.infer import fit, fit_eta_prior, fit_two_stage, neighbour_poses, stage_optimizer
from invppl.infer.two_stage import PRIOR_LEARNING_RATE
from invppl.metrics import congeal, law_recovery, pose_equivariance_error
from invppl.models import (
    FRAME_METHODS,
    LearnedSymmetry,
    TwoStageSGM,
    augmentation_bounds,
    make_sgm,
    make_two_stage_sgm,
)
from invppl.nn import with_fitted_params
from invppl.transforms import Affine

TASKS = (
    "shapes-rotation",
    "shapes-translation",
    "shapes-scale",
    "digits-rotation",
    "digits-aligned-rotation",
)
ROTATION = Affine(("rotation",))
DIGITS = (1, 2, 3, 4, 7)
TOLERANCE = {"rotation": 0.10, "translation": 0.05, "scale": 0.05}
TRANSLATION = (-0.4, 0.4)
LOG_SCALE = (math.log(0.55), 0.0)


@dataclass(frozen=True)
class Task:
    """One recovery problem: images, classes, the family and per-parameter truth."""

    images: np.ndarray  # (n, H, W, 1)
    labels: np.ndarray  # (n,)
    class_names: Mapping[int, str]
    transformations: tuple[str, ...]
    bounds: Mapping[str, tuple[float, float]]
    eta: np.ndarray  # (n, k) true η of every image
    laws: Mapping[int, tuple[Law, ...]]  # per class, one law per parameter (in η units)
    kinds: Mapping[int, tuple[str, ...]]
    periods: Mapping[int, tuple[float | None, ...]]
    quantity: str  # "rotation", "translation" or "scale"
    natural: np.ndarray | None = None  # (n, k) each image's own pose before η, if known


def _rotation_narrow(period: float) -> tuple[float, float]:
    """Half-widths 0.15–0.45 rad as fractions of a period (at most a quarter of it)."""
    return (min(0.15 / period, 0.2), min(0.45 / period, 0.24))


def _shapes(n: int, seed: int, factors: Mapping[str, Mapping[str, Any]]) -> Any:
    base = {"pos_x": DeltaLaw(0.0), "pos_y": DeltaLaw(0.0), "rotation": DeltaLaw(0.0)}
    laws = {shape: {**base, **factors[shape]} for shape in SHAPES}
    return make_dsprites(n, seed=seed, size=28, laws=laws)


def shapes_rotation(rng: np.random.Generator, n: int, seed: int) -> Task:
    kinds = dict(zip(("square", "ellipse"), rng.permutation(LAW_KINDS)[:2], strict=True))
    kinds["heart"] = "point"
    laws = {}
    for shape in SHAPES:
        period = 2 * math.pi / SYMMETRY_ORDER[shape]
        laws[shape] = random_law(
            rng,
            str(kinds[shape]),
            low=-period / 2,
            high=period / 2,
            periodic=True,
            narrow=_rotation_narrow(period),
        )
    data = _shapes(
        n, seed, {s: {"rotation": laws[s], "scale": UniformLaw(0.6, 1.0)} for s in SHAPES}
    )
    return Task(
        data.images.astype(np.float32),
        data.labels,
        dict(enumerate(SHAPES)),
        ("rotation",),
        {},
        np.asarray(data.factors["rotation"], np.float64)[:, None],
        {i: (laws[s],) for i, s in enumerate(SHAPES)},
        {i: (str(kinds[s]),) for i, s in enumerate(SHAPES)},
        {i: (2 * math.pi / SYMMETRY_ORDER[s],) for i, s in enumerate(SHAPES)},
        "rotation",
    )


def shapes_translation(rng: np.random.Generator, n: int, seed: int) -> Task:
    kinds = {s: tuple(str(k) for k in rng.choice(LAW_KINDS, 2)) for s in SHAPES}
    laws = {s: tuple(random_law(rng, k, low=-0.4, high=0.4) for k in kinds[s]) for s in SHAPES}
    factors = {
        s: {"pos_x": laws[s][0], "pos_y": laws[s][1], "scale": UniformLaw(0.6, 0.8)} for s in SHAPES
    }
    data = _shapes(n, seed, factors)
    eta = np.stack([data.factors["pos_x"], data.factors["pos_y"]], axis=-1).astype(np.float64)
    return Task(
        data.images.astype(np.float32),
        data.labels,
        dict(enumerate(SHAPES)),
        ("tx", "ty"),
        {"tx": (-0.4, 0.4), "ty": (-0.4, 0.4)},
        eta,
        {i: laws[s] for i, s in enumerate(SHAPES)},
        {i: kinds[s] for i, s in enumerate(SHAPES)},
        {i: (None, None) for i in range(len(SHAPES))},
        "translation",
    )


def shapes_scale(rng: np.random.Generator, n: int, seed: int) -> Task:
    kinds = {s: str(k) for s, k in zip(SHAPES, rng.choice(LAW_KINDS, len(SHAPES)), strict=True)}
    laws = {s: random_law(rng, kinds[s], low=LOG_SCALE[0], high=LOG_SCALE[1]) for s in SHAPES}

    def scale_law(law: Law) -> Callable[[np.random.Generator, int], np.ndarray]:
        return lambda generator, size: np.exp(law.sample(generator, size))

    data = _shapes(n, seed, {s: {"scale": scale_law(laws[s])} for s in SHAPES})
    log_scale = np.log(np.asarray(data.factors["scale"], np.float64))
    return Task(
        data.images.astype(np.float32),
        data.labels,
        dict(enumerate(SHAPES)),
        ("log_scale_x", "log_scale_y"),
        {"log_scale_x": (-0.3, 0.3), "log_scale_y": (-0.3, 0.3)},
        np.stack([log_scale, log_scale], axis=-1),
        {i: (laws[s], laws[s]) for i, s in enumerate(SHAPES)},
        {i: (kinds[s], kinds[s]) for i, s in enumerate(SHAPES)},
        {i: (None, None) for i in range(len(SHAPES))},
        "scale",
    )


@cache
def _natural_rotations() -> np.ndarray:
    """Each bundled digit's own rotation, by congealing its class (0 for other digits): ``(n,)``.

    :func:`invppl.metrics.congeal` aligns each digit class to its mean by a
    brute-force search, nothing learned: the spread of these angles is the
    rotation a pose frame consistent across examples has to attribute to η.
    """
    mnist = load_mnist()
    natural = np.zeros(len(mnist.labels))
    for d in DIGITS:
        mask = mnist.labels == d
        natural[mask] = congeal(
            mnist.images[mask], ROTATION, low=-1.2, high=1.2, num_grid=25, rounds=4
        ).poses
    return natural


def _digits_task(rng: np.random.Generator, n: int, seed: int, *, aligned: bool) -> Task:
    kinds = [*(str(k) for k in rng.permutation(LAW_KINDS)), str(rng.choice(LAW_KINDS))]
    laws = {
        d: random_law(
            rng,
            str(k),
            low=-math.pi,
            high=math.pi,
            periodic=True,
            narrow=_rotation_narrow(2 * math.pi),
        )
        for d, k in zip(DIGITS, kinds, strict=True)
    }
    mnist, natural = load_mnist(), _natural_rotations()
    images = mnist.images
    if aligned:  # each digit turned to its class's template first: no natural rotation left
        images = np.asarray(ROTATION.apply(jnp.asarray(images), -jnp.asarray(natural)[:, None]))
        natural = np.zeros_like(natural)
    rotated = rotated_mnist(images, mnist.labels, seed=seed, law=laws, classes=DIGITS)
    order = np.random.default_rng([seed, 2]).permutation(len(rotated.labels))[:n]
    labels = rotated.labels[order]
    index = {d: i for i, d in enumerate(DIGITS)}
    return Task(
        rotated.images[order].astype(np.float32),
        np.array([index[int(label)] for label in labels]),
        {i: f"digit {d}" for i, d in enumerate(DIGITS)},
        ("rotation",),
        {},
        np.asarray(rotated.angles[order], np.float64)[:, None],
        {index[d]: (laws[d],) for d in DIGITS},
        {index[d]: (str(k),) for d, k in zip(DIGITS, kinds, strict=True)},
        {i: (2 * math.pi,) for i in range(len(DIGITS))},
        "rotation",
        natural[rotated.indices[order]][:, None],
    )


def digits_rotation(rng: np.random.Generator, n: int, seed: int) -> Task:
    return _digits_task(rng, n, seed, aligned=False)


def digits_aligned_rotation(rng: np.random.Generator, n: int, seed: int) -> Task:
    return _digits_task(rng, n, seed, aligned=True)


BUILDERS: dict[str, Callable[[np.random.Generator, int, int], Task]] = {
    "shapes-rotation": shapes_rotation,
    "shapes-translation": shapes_translation,
    "shapes-scale": shapes_scale,
    "digits-rotation": digits_rotation,
    "digits-aligned-rotation": digits_aligned_rotation,
}


def _poses_and_prototypes(
    task: Task, symmetry: Any, test: np.ndarray, seed: int, known: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Poses of every image ``(n, k)``, held-out prototypes, held-out equivariance errors.

    ``known``: the poses are the true η (stage 2 measured alone), whose
    equivariance error is not defined (NaN).
    """
    if known:
        poses = task.eta.astype(np.float32)
        move_back = jax.jit(lambda x, eta: symmetry.family.apply(x, -eta))
        prototypes = np.asarray(move_back(jnp.asarray(task.images[test]), poses[test]))
        return poses, prototypes, np.full(len(test), np.nan)
    poses = in_batches(symmetry.pose, task.images, 500)
    prototypes = in_batches(symmetry.prototype, task.images[test], 500)
    low, high = augmentation_bounds(symmetry.family, task.bounds)
    eps = jax.random.uniform(jax.random.key(seed), (len(test), len(low)), minval=low, maxval=high)
    equivariance = pose_equivariance_error(
        jax.jit(symmetry.pose), symmetry.family, jnp.asarray(task.images[test]), eps
    )
    return poses, prototypes, equivariance


def _pose_tail(
    poses: np.ndarray, eta: np.ndarray, offset: float, period: float | None, beyond: float
) -> dict[str, float]:
    """Median and 90th percentile of |f(x) − η − offset| and the share beyond ``beyond``.

    The law's W1 moves with the share of examples put in a wrong frame, which a
    mean error hides: frame templates, for one, align most of a class to within
    0.05 rad and a few examples by a quarter turn or more.
    """
    error = poses - eta - offset
    if period is not None:
        error = (error + period / 2) % period - period / 2
    error = np.abs(error)
    return {
        "pose_error_median": float(np.median(error)),
        "pose_error_p90": float(np.percentile(error, 90)),
        "pose_outliers": float(np.mean(error > beyond)),
    }


def _spread(draws: np.ndarray, period: float | None) -> np.ndarray:
    """Spread of ``(m, ...)`` draws along axis 0: 1 − resultant length on a circle, else sd."""
    if period is None:
        return draws.std(0)
    return 1.0 - np.abs(np.exp(2j * math.pi * draws / period).mean(0))


def _narrower_share(draws: np.ndarray, period: float | None) -> float:
    """The share of a class's prototypes whose learned law is less than half as wide as the class's.

    ``draws`` ``(m, n)``: m draws of p(η | x̂) for each of the class's n held-out
    prototypes. Every task's law is the same for all prototypes of a class, so
    a prototype whose own law is much narrower than the class's pooled draws is
    one that p(η | x̂) mistook for another class (e.g. a whole-circle 3 given
    the point mass of the 1s): a count of the confusions, which W1 only sums.
    """
    pooled = _spread(draws.reshape(-1), period)
    return float(np.mean(_spread(draws, period) < 0.5 * pooled))


def evaluate(
    task: Task,
    symmetry: Any,
    train: np.ndarray,
    test: np.ndarray,
    seed: int,
    *,
    known_poses: bool = False,
) -> list[dict[str, Any]]:
    """One row per class and parameter (see :func:`invppl.metrics.law_recovery`).

    ``known_poses``: stage 2 was fitted on the true η (``--method stage2-oracle``), so
    the poses and prototypes are the true ones too.
    """
    poses, prototypes, equivariance = _poses_and_prototypes(task, symmetry, test, seed, known_poses)
    samples = np.asarray(symmetry.sample_eta(jax.random.key(seed), jnp.asarray(prototypes), (8,)))
    many = np.asarray(symmetry.sample_eta(jax.random.key(seed + 1), jnp.asarray(prototypes), (64,)))
    rng = np.random.default_rng([seed, 3])
    rows = []  # tolerance below: the class's; pose outliers are beyond three times it
    for label, name in task.class_names.items():
        in_train = train[task.labels[train] == label]
        in_test_mask = task.labels[test] == label
        in_test = test[in_test_mask]
        for j, parameter in enumerate(task.transformations):
            law, kind, period = task.laws[label][j], task.kinds[label][j], task.periods[label][j]
            tolerance = TOLERANCE[task.quantity] * (1.5 if kind == "multimodal" else 1.0)
            truth = law.sample(rng, 4000)
            report = law_recovery(
                samples[:, in_test_mask, j].ravel(),
                truth,
                poses_train=poses[in_train, j],
                eta_train=task.eta[in_train, j],
                poses_test=poses[in_test, j],
                eta_test=task.eta[in_test, j],
                tolerance=tolerance,
                period=period,
                bounds=TRANSLATION if task.quantity == "translation" else LOG_SCALE,
            )
            row = {
                "equivariance_error": float(np.median(equivariance[in_test_mask])),
                **_pose_tail(
                    poses[in_test, j], task.eta[in_test, j], report.offset, period, 3 * tolerance
                ),
                "narrower_share": _narrower_share(many[:, in_test_mask, j], period),
                "class": name,
                "parameter": parameter,
                "kind": kind,
                "law": repr(law),
                **report.to_dict(),
            }
            if task.natural is not None:
                row.update(_oracle(task, truth, (in_train, in_test), j, tolerance, period))
            rows.append(row)
    return rows


def _oracle(
    task: Task,
    truth: np.ndarray,
    split: tuple[np.ndarray, np.ndarray],
    j: int,
    tolerance: float,
    period: float | None,
) -> dict[str, float]:
    """What a pose frame consistent across examples gives: poses η + the congealed own pose.

    ``oracle_w1`` is the W1 of those poses to the law (a floor for any pose
    function whose frames agree across a class), ``natural_spread`` the mean
    absolute deviation of the class's own poses on held-out examples.
    """
    assert task.natural is not None
    (train, test), natural = split, task.natural[:, j]
    oracle = task.eta[:, j] + natural
    report = law_recovery(
        oracle[test],
        truth,
        poses_train=oracle[train],
        eta_train=task.eta[train, j],
        poses_test=oracle[test],
        eta_test=task.eta[test, j],
        tolerance=tolerance,
        period=period,
    )
    own = natural[test] - np.median(natural[test])
    return {"oracle_w1": report.stage1_w1, "natural_spread": float(np.mean(np.abs(own)))}


def _prior_optimizer(args: argparse.Namespace) -> Any:
    """Stage 2's optimiser: the library's default schedule, ``--prior-weight-decay``."""
    return stage_optimizer(
        args.prior_steps, PRIOR_LEARNING_RATE, weight_decay=args.prior_weight_decay
    )


def _two_stage_sgm(task: Task, seed: int, args: argparse.Namespace) -> TwoStageSGM:
    """The networks of both stages, seeded with ``seed``, and stage 1's settings."""
    return make_two_stage_sgm(
        task.images.shape[1:],
        task.transformations,
        seed=seed,
        bounds=task.bounds,
        hidden=args.hidden,
        context_dim=args.context_dim,
        blur_steps=max(args.pose_steps // 4, 1),
        consistency_steps=max(3 * args.pose_steps // 4, 1),
        templates=args.templates,
        template_weight=args.template_weight,
        frame_templates=args.frames,
        frame_method=args.frame_method,
    )


def fit_two(task: Task, train: np.ndarray, seed: int, args: argparse.Namespace) -> tuple:
    """The two-stage fit with the library's defaults: the learned symmetry, stage 1's losses."""
    sgm = _two_stage_sgm(task, seed, args)
    fitted = fit_two_stage(
        sgm,
        {"x": task.images[train]},
        seed=seed,
        pose_steps=args.pose_steps,
        prior_steps=args.prior_steps,
        batch_size=args.batch_size,
        prior_optimizer=_prior_optimizer(args),
        prior_neighbours=args.prior_neighbours,
        progress=False,
    )
    return fitted.symmetry, np.asarray(fitted.pose.losses)


def fit_stage2_oracle(task: Task, train: np.ndarray, seed: int, args: argparse.Namespace) -> tuple:
    """Stage 2 alone, fed the truth: η the applied transformation, x̂ = T_η⁻¹(x).

    The same networks, steps, hold-out and early stopping as :func:`fit_two`'s
    stage 2; what it misses is stage 2's own error, apart from stage 1's.
    """
    sgm = _two_stage_sgm(task, seed, args)  # its pose network is not trained
    data = {"x": task.images[train], "eta": task.eta[train].astype(np.float32)}
    if args.prior_neighbours > 1:
        data["neighbour_eta"] = neighbour_poses(
            sgm.family,
            data["x"],
            data["eta"],
            args.prior_neighbours,
            holdout=0.1,
            batch_size=args.batch_size,
            seed=seed,
        )
    prior = fit_eta_prior(
        sgm.eta_prior_model(None),
        data,
        seed=seed,
        num_steps=args.prior_steps,
        batch_size=args.batch_size,
        optimizer=_prior_optimizer(args),
        progress=False,
    )
    symmetry = LearnedSymmetry(
        sgm.family,
        sgm.pose_net,  # not used: evaluate() takes the true poses
        with_fitted_params(sgm.prior_embedding, "prior_embedding", prior.params),
        with_fitted_flow(sgm.prior_flow, "prior_flow", prior.params),
    )
    return symmetry, np.asarray(prior.losses)


def fit_joint(task: Task, train: np.ndarray, seed: int, args: argparse.Namespace) -> tuple:
    """The joint SVI fit of the SGM (continuous Bernoulli): its learned symmetry and losses."""
    sgm = make_sgm(
        task.images.shape[1:],
        args.latent_dim,
        task.transformations,
        seed=seed,
        kind="continuous_bernoulli",
        hidden=args.hidden,
        context_dim=args.context_dim,
    )
    result = fit(
        sgm.model,
        sgm.guide,
        {"x": task.images[train]},
        seed=seed,
        num_steps=args.joint_steps,
        batch_size=args.batch_size,
        optimizer=stage_optimizer(args.joint_steps, 1e-3),
        progress=False,
    )
    return sgm.learned(result.params), np.asarray(result.losses)


def one_run(task_name: str, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    """Draws the laws and data of one task and seed, fits, evaluates."""
    task = BUILDERS[task_name](np.random.default_rng([seed, 17]), args.examples, seed)
    order = np.random.default_rng([seed, 1]).permutation(len(task.labels))
    num_test = len(order) // 5
    test, train = np.sort(order[:num_test]), np.sort(order[num_test:])
    started = time.perf_counter()
    fitter = {"joint": fit_joint, "two-stage": fit_two, "stage2-oracle": fit_stage2_oracle}
    symmetry, losses = fitter[args.method](task, train, seed, args)
    seconds = time.perf_counter() - started
    rows = evaluate(task, symmetry, train, test, seed, known_poses=args.method == "stage2-oracle")
    return {
        "task": task_name,
        "method": args.method,
        "seed": seed,
        "seconds": seconds,
        "loss_first_last": [float(losses[:20].mean()), float(losses[-50:].mean())],
        "rows": rows,
    }


_COLUMNS = (
    ("W1", "w1"),
    ("unif", "uniform_baseline"),
    ("point", "point_baseline"),
    ("pose", "pose_error"),
    ("p.med", "pose_error_median"),
    ("p.out", "pose_outliers"),
    ("stage1", "stage1_w1"),
    ("equiv", "equivariance_error"),
    ("narrow", "narrower_share"),
)


def print_run(run: dict[str, Any]) -> None:
    """One line per class and parameter; ``p.med`` and ``p.out``: see :func:`_pose_tail`."""
    title = f"{run['task']}  {run['method']}  seed {run['seed']}"
    print(f"\n{title}  ({run['seconds']:.0f} s)", flush=True)
    header = " ".join(f"{name:>6}" for name, _ in _COLUMNS)
    print(f"{'class':>9} {'param':>11} {'kind':>10} {header}  ok")
    for row in run["rows"]:
        values = " ".join(f"{row[key]:6.3f}" for _, key in _COLUMNS)
        oracle = (
            f"  oracle {row['oracle_w1']:.3f} natural {row['natural_spread']:.3f}"
            if "oracle_w1" in row
            else ""
        )
        verdict = "yes" if row["recovered"] else "NO"
        label = f"{row['class']:>9} {row['parameter']:>11} {row['kind']:>10}"
        print(f"{label} {values}  {verdict}{oracle}", flush=True)


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per task: the fraction of (class, parameter) laws recovered per seed, and W1 by kind."""
    summary: dict[str, Any] = {}
    for task in sorted({r["task"] for r in runs}):
        mine = [r for r in runs if r["task"] == task]
        per_seed = [float(np.mean([row["recovered"] for row in r["rows"]])) for r in mine]
        by_kind: dict[str, list[float]] = {}
        for r in mine:
            for row in r["rows"]:
                by_kind.setdefault(row["kind"], []).append(row["w1"])
        summary[task] = {
            "recovered_fraction_per_seed": per_seed,
            "all_recovered_seeds": int(sum(f == 1.0 for f in per_seed)),
            "seeds": len(mine),
            "w1_by_kind": {
                k: {"mean": float(np.mean(v)), "sd": float(np.std(v)), "n": len(v)}
                for k, v in by_kind.items()
            },
        }
    return summary


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The benchmark's settings; ``parse_args([])`` gives the defaults."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=TASKS)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--examples", type=int, default=3000)
    parser.add_argument("--pose-steps", type=int, default=1000)
    parser.add_argument("--prior-steps", type=int, default=1500)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--context-dim", type=int, default=16, help="p(η | x̂)'s context size")
    parser.add_argument(
        "--prior-weight-decay", type=float, default=1e-4, help="stage 2's AdamW weight decay"
    )
    parser.add_argument(
        "--prior-neighbours",
        type=int,
        default=0,
        help="stage 2 fits each example's m nearest prototypes' poses (0: its own)",
    )
    parser.add_argument(
        "--templates", type=int, default=0, help="stage 1's prototype templates (0: off)"
    )
    parser.add_argument("--template-weight", type=float, default=0.5)
    parser.add_argument(
        "--frames", type=int, default=0, help="frame templates learned between the stages (0: off)"
    )
    parser.add_argument(
        "--frame-method",
        choices=FRAME_METHODS,
        default="search",
        help="how --frames templates are learned (graph: invariant neighbours, rotation only)",
    )
    parser.add_argument(
        "--method",
        choices=("two-stage", "joint", "stage2-oracle"),
        default="two-stage",
        help="stage2-oracle: stage 2 alone, fitted on the true η and prototypes",
    )
    parser.add_argument("--joint-steps", type=int, default=3000, help="SVI steps of --method joint")
    parser.add_argument("--latent-dim", type=int, default=8, help="z's size for --method joint")
    parser.add_argument("--out", type=Path)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    machine = machine_info()
    print(f"machine: {machine}\nsettings: {vars(args)}", flush=True)
    runs = []
    for task in args.tasks:
        for seed in args.seeds:
            runs.append(one_run(task, seed, args))
            print_run(runs[-1])
    summary = summarise(runs)
    for task, row in summary.items():
        kinds = ", ".join(
            f"{k} {v['mean']:.3f} ± {v['sd']:.3f}" for k, v in row["w1_by_kind"].items()
        )
        recovered = f"{row['all_recovered_seeds']}/{row['seeds']}"
        print(f"{task}: every law recovered in {recovered} seeds; W1 by kind: {kinds}")
    return record_results(machine, args, runs, summary, args.out)


if __name__ == "__main__":
    main()
