"""Small probability laws for the true transformation parameters of synthetic data.

A *law* draws values with ``sample(rng, n)`` and reports its density with
``pdf(x)`` and its distribution function with ``cdf(x)``, so that a learned
marginal p(η) can be compared with the law that generated the data. Densities
are on the real line by default; ``pdf(x, period=2 * math.pi)`` gives the
density of the value wrapped onto a circle of that period, which is the right
comparison for angles.

Wherever a dataset accepts a law it also accepts a plain callable
``(rng, n) -> values`` (a *sampler*); only the law objects can report
densities.

>>> import numpy as np
>>> law = MixtureLaw((DeltaLaw(0.0), UniformLaw(-1.0, 1.0)), (0.25, 0.75))
>>> law.sample(np.random.default_rng(0), 4).shape
(4,)
>>> float(UniformLaw(-1.0, 1.0).pdf(0.5))
0.5
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
from numpy.typing import ArrayLike
from scipy import special

from invppl.datasets._checks import check_finite_scalar, check_int

__all__ = [
    "LAW_KINDS",
    "DeltaLaw",
    "Law",
    "LawLike",
    "MixtureLaw",
    "NormalLaw",
    "Sampler",
    "UniformLaw",
    "draw",
    "laws_by_class",
    "random_law",
    "sample_by_class",
]


@runtime_checkable
class Law(Protocol):
    """What every law offers: sampling, a density, a distribution function, a support."""

    @property
    def support(self) -> tuple[float, float]:
        """The smallest closed interval ``(low, high)`` holding all the mass."""
        ...

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` independent draws, shape ``(n,)``, dtype float64."""
        ...

    def pdf(self, x: ArrayLike, *, period: float | None = None) -> np.ndarray:
        """The density at ``x`` (wrapped onto a circle of ``period`` if given)."""
        ...

    def cdf(self, x: ArrayLike) -> np.ndarray:
        """P(value ≤ x) on the real line."""
        ...


Sampler = Callable[[np.random.Generator, int], ArrayLike]
"""A plain callable ``(rng, n) -> values`` with values of shape ``(n,)``."""

LawLike = Law | Sampler
"""A :class:`Law` object or a plain :data:`Sampler`."""


class _LineLaw:
    """Shared wrapping of a line density onto a circle."""

    @property
    def support(self) -> tuple[float, float]:
        raise NotImplementedError

    def _effective_support(self) -> tuple[float, float]:
        return self.support

    def _line_pdf(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def pdf(self, x: ArrayLike, *, period: float | None = None) -> np.ndarray:
        """The density at ``x``.

        Parameters
        ----------
        x
            Points of any shape.
        period
            If given, the density of the value wrapped onto a circle of this
            period (e.g. ``2 * math.pi`` for angles): the sum of the line
            density over ``x + k * period`` for all integers ``k``.

        Returns
        -------
        numpy.ndarray
            Same shape as ``x``, dtype float64.
        """
        points = np.asarray(x, dtype=np.float64)
        if period is None:
            return self._line_pdf(points)
        period = check_finite_scalar(period, "period")
        if period <= 0:
            raise ValueError(f"period must be positive, got {period}")
        if points.size == 0:
            return np.zeros_like(points)
        low, high = self._effective_support()
        first = math.floor((low - float(np.max(points))) / period) - 1
        last = math.ceil((high - float(np.min(points))) / period) + 1
        total = np.zeros_like(points)
        for k in range(first, last + 1):
            total = total + self._line_pdf(points + k * period)
        return total


@dataclass(frozen=True)
class UniformLaw(_LineLaw):
    """The uniform law on ``[low, high]``.

    Parameters
    ----------
    low, high
        Finite bounds with ``low < high``.
    """

    low: float
    high: float

    def __post_init__(self) -> None:
        low = check_finite_scalar(self.low, "UniformLaw low")
        high = check_finite_scalar(self.high, "UniformLaw high")
        if not low < high:
            raise ValueError(
                f"UniformLaw needs low < high, got low={low}, high={high} "
                "(use DeltaLaw for a single value)"
            )
        object.__setattr__(self, "low", low)
        object.__setattr__(self, "high", high)

    @property
    def support(self) -> tuple[float, float]:
        return (self.low, self.high)

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        n = check_int(n, "n", minimum=0)
        return rng.uniform(self.low, self.high, size=n)

    def _line_pdf(self, x: np.ndarray) -> np.ndarray:
        # half-open, so that wrapping onto a circle of period high - low does not count
        # the two ends twice
        inside = (x >= self.low) & (x < self.high)
        return np.where(inside, 1.0 / (self.high - self.low), 0.0)

    def cdf(self, x: ArrayLike) -> np.ndarray:
        points = np.asarray(x, dtype=np.float64)
        return np.clip((points - self.low) / (self.high - self.low), 0.0, 1.0)


@dataclass(frozen=True)
class DeltaLaw(_LineLaw):
    """The point mass at ``value``: every draw equals ``value`` exactly.

    Its density is a Dirac delta, reported as ``inf`` at the atom (exactly, or
    up to 1e-9 modulo ``period`` when wrapped) and ``0`` elsewhere.
    """

    value: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "value", check_finite_scalar(self.value, "DeltaLaw value"))

    @property
    def support(self) -> tuple[float, float]:
        return (self.value, self.value)

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        n = check_int(n, "n", minimum=0)
        return np.full(n, self.value, dtype=np.float64)

    def pdf(self, x: ArrayLike, *, period: float | None = None) -> np.ndarray:
        points = np.asarray(x, dtype=np.float64)
        if period is None:
            return np.where(points == self.value, np.inf, 0.0)
        period = check_finite_scalar(period, "period")
        if period <= 0:
            raise ValueError(f"period must be positive, got {period}")
        offset = np.remainder(points - self.value + period / 2, period) - period / 2
        return np.where(np.abs(offset) <= 1e-9, np.inf, 0.0)

    def cdf(self, x: ArrayLike) -> np.ndarray:
        points = np.asarray(x, dtype=np.float64)
        return np.where(points >= self.value, 1.0, 0.0)


@dataclass(frozen=True)
class NormalLaw(_LineLaw):
    """The normal law with mean ``loc`` and standard deviation ``scale > 0``."""

    loc: float
    scale: float

    def __post_init__(self) -> None:
        loc = check_finite_scalar(self.loc, "NormalLaw loc")
        scale = check_finite_scalar(self.scale, "NormalLaw scale")
        if scale <= 0:
            raise ValueError(f"NormalLaw scale must be positive, got {scale}")
        object.__setattr__(self, "loc", loc)
        object.__setattr__(self, "scale", scale)

    @property
    def support(self) -> tuple[float, float]:
        return (-math.inf, math.inf)

    def _effective_support(self) -> tuple[float, float]:
        return (self.loc - 12.0 * self.scale, self.loc + 12.0 * self.scale)

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        n = check_int(n, "n", minimum=0)
        return rng.normal(self.loc, self.scale, size=n)

    def _line_pdf(self, x: np.ndarray) -> np.ndarray:
        z = (x - self.loc) / self.scale
        return np.exp(-0.5 * z**2) / (self.scale * math.sqrt(2.0 * math.pi))

    def cdf(self, x: ArrayLike) -> np.ndarray:
        z = (np.asarray(x, dtype=np.float64) - self.loc) / self.scale
        return np.asarray(special.ndtr(z), dtype=np.float64)


@dataclass(frozen=True)
class MixtureLaw(_LineLaw):
    """A finite mixture: component ``k`` is chosen with probability ``weights[k]``.

    Parameters
    ----------
    components
        Law objects (at least one).
    weights
        Non-negative finite weights, one per component, not all zero; they are
        normalised to sum to one.

    >>> law = MixtureLaw((DeltaLaw(-1.0), DeltaLaw(1.0)), (1.0, 3.0))
    >>> law.weights
    (0.25, 0.75)
    """

    components: tuple[Law, ...]
    weights: tuple[float, ...]

    def __post_init__(self) -> None:
        components = tuple(self.components)
        if not components:
            raise ValueError("MixtureLaw needs at least one component")
        for index, component in enumerate(components):
            if not isinstance(component, Law):
                raise TypeError(
                    f"MixtureLaw component {index} must be a law object (UniformLaw, DeltaLaw, "
                    f"NormalLaw, MixtureLaw), got {type(component).__name__}"
                )
        weights = np.asarray(self.weights, dtype=np.float64)
        if weights.shape != (len(components),):
            raise ValueError(
                f"MixtureLaw needs one weight per component: {len(components)} component(s), "
                f"weights of shape {weights.shape}"
            )
        if not np.all(np.isfinite(weights)) or np.any(weights < 0) or weights.sum() <= 0:
            raise ValueError(
                f"MixtureLaw weights must be finite, non-negative and not all zero, got {weights}"
            )
        weights = weights / weights.sum()
        object.__setattr__(self, "components", components)
        object.__setattr__(self, "weights", tuple(float(w) for w in weights))

    @property
    def support(self) -> tuple[float, float]:
        lows, highs = zip(*(c.support for c in self.components), strict=True)
        return (min(lows), max(highs))

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        n = check_int(n, "n", minimum=0)
        choice = rng.choice(len(self.components), size=n, p=np.asarray(self.weights))
        out = np.empty(n, dtype=np.float64)
        for index, component in enumerate(self.components):
            selected = choice == index
            out[selected] = component.sample(rng, int(selected.sum()))
        return out

    def pdf(self, x: ArrayLike, *, period: float | None = None) -> np.ndarray:
        points = np.asarray(x, dtype=np.float64)
        total = np.zeros_like(points)
        for weight, component in zip(self.weights, self.components, strict=True):
            if weight > 0:
                total = total + weight * component.pdf(points, period=period)
        return total

    def cdf(self, x: ArrayLike) -> np.ndarray:
        points = np.asarray(x, dtype=np.float64)
        total = np.zeros_like(points)
        for weight, component in zip(self.weights, self.components, strict=True):
            total = total + weight * component.cdf(points)
        return total


def draw(law: LawLike, rng: np.random.Generator, n: int, *, name: str = "law") -> np.ndarray:
    """Draws ``n`` values from a law object or a plain sampler and checks them.

    Parameters
    ----------
    law
        A :class:`Law` or a callable ``(rng, n) -> values``.
    rng
        The NumPy generator to draw from.
    n
        How many values.
    name
        What to call the law in error messages.

    Returns
    -------
    numpy.ndarray
        Shape ``(n,)``, dtype float64, all finite.

    Raises
    ------
    TypeError
        If ``law`` is neither a law object nor callable.
    ValueError
        If the sampler returns the wrong shape or non-finite values.
    """
    values: ArrayLike
    if isinstance(law, Law):
        values = law.sample(rng, n)
    elif callable(law):
        values = law(rng, n)
    else:
        raise TypeError(
            f"{name} must be a law object (e.g. UniformLaw) or a callable (rng, n) -> values, "
            f"got {type(law).__name__}"
        )
    array = np.asarray(values, dtype=np.float64)
    if array.shape != (n,):
        raise ValueError(f"{name} returned values of shape {array.shape}, expected ({n},)")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} returned NaN or infinite values")
    return array


def _check_law_like(law: LawLike, name: str) -> LawLike:
    if not (isinstance(law, Law) or callable(law)):
        raise TypeError(
            f"{name} must be a law object (e.g. UniformLaw) or a callable (rng, n) -> values, "
            f"got {type(law).__name__}"
        )
    return law


def laws_by_class(
    spec: LawLike | Mapping[int, LawLike], classes: Iterable[int], *, name: str = "law"
) -> dict[int, LawLike]:
    """Expands a law, or a mapping class → law, to one law per class.

    Parameters
    ----------
    spec
        One law used for every class, or a mapping from class label to law.
    classes
        The class labels that need a law.
    name
        What to call the law in error messages.

    Returns
    -------
    dict[int, LawLike]
        One entry per class in ``classes``, in increasing order of class.

    Raises
    ------
    ValueError
        If a mapping misses some of the classes.
    TypeError
        If an entry is neither a law object nor callable.
    """
    wanted = sorted({int(c) for c in classes})
    if isinstance(spec, Mapping):
        missing = [c for c in wanted if c not in spec]
        if missing:
            raise ValueError(
                f"{name} gives no law for class(es) {missing}; expected a law for every class "
                f"present, {wanted} (or pass a single law for all classes)"
            )
        return {c: _check_law_like(spec[c], f"{name}[{c}]") for c in wanted}
    law = _check_law_like(spec, name)
    return dict.fromkeys(wanted, law)


def sample_by_class(
    laws: Mapping[int, LawLike],
    labels: np.ndarray,
    rng: np.random.Generator,
    *,
    name: str = "law",
) -> np.ndarray:
    """Draws one value per item from its class's law.

    Classes are visited in increasing order, each drawing all its items at
    once, so the result depends only on ``rng``'s state, the labels and the laws.

    Parameters
    ----------
    laws
        Mapping class → law covering every label.
    labels
        Shape ``(n,)`` integer class labels.
    rng
        The NumPy generator to draw from.
    name
        What to call the laws in error messages.

    Returns
    -------
    numpy.ndarray
        Shape ``(n,)``, dtype float64.
    """
    labels = np.asarray(labels)
    values = np.empty(labels.shape[0], dtype=np.float64)
    for cls in sorted(laws):
        selected = labels == cls
        values[selected] = draw(laws[cls], rng, int(selected.sum()), name=f"{name}[{cls}]")
    return values


LAW_KINDS: tuple[str, ...] = ("point", "narrow", "multimodal", "wide")
"""The kinds of law :func:`random_law` draws, from no transformation to all of them."""


def random_law(
    rng: np.random.Generator,
    kind: str,
    *,
    low: float,
    high: float,
    periodic: bool = False,
    narrow: tuple[float, float] = (0.05, 0.12),
) -> Law:
    """A law of the given kind drawn at random within ``[low, high]``.

    - ``"point"``: a point mass (no transformation), at a random place;
    - ``"narrow"``: a uniform law of half-width ``narrow[0]·span`` to
      ``narrow[1]·span`` (``span = high − low``) at a random centre;
    - ``"multimodal"``: two uniform modes of half-width 0.03·span whose centres
      are 0.3–0.45·span apart;
    - ``"wide"``: uniform on all of ``[low, high]`` (for a periodic parameter
      whose period is ``span``, the whole circle).

    On a circle (``periodic``) centres may lie anywhere; on the line the law
    stays inside ``[low, high]``.

    >>> law = random_law(np.random.default_rng(0), "narrow", low=-math.pi, high=math.pi,
    ...                  periodic=True)
    >>> isinstance(law, UniformLaw), 0.3 < law.high - law.low < 1.6
    (True, True)
    """
    if kind not in LAW_KINDS:
        raise ValueError(f"unknown law kind {kind!r}; expected one of {LAW_KINDS}")
    low = check_finite_scalar(low, "low")
    high = check_finite_scalar(high, "high")
    if not high > low:
        raise ValueError(f"random_law needs high > low, got [{low}, {high}]")
    if not 0 < narrow[0] <= narrow[1] < 0.5:
        raise ValueError(f"narrow half-widths must satisfy 0 < a <= b < 0.5, got {narrow}")
    span = high - low
    if kind == "wide":
        return UniformLaw(low, high)

    def centre(margin: float) -> float:
        if periodic:
            return float(rng.uniform(low, high))
        return float(rng.uniform(low + margin, high - margin))

    if kind == "point":
        return DeltaLaw(centre(0.1 * span))
    if kind == "narrow":
        half = float(rng.uniform(*narrow)) * span
        middle = centre(half)
        return UniformLaw(middle - half, middle + half)
    half, gap = 0.03 * span, float(rng.uniform(0.3, 0.45)) * span
    middle = centre(gap / 2 + half)
    modes = tuple(UniformLaw(c - half, c + half) for c in (middle - gap / 2, middle + gap / 2))
    return MixtureLaw(modes, (0.5, 0.5))
