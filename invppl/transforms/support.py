"""Declared supports of transformation parameters.

Every transformation family names its parameters and says where each lives, so
that a distribution over η can respect it: a periodic angle, a bounded
interval, the whole real line, or a finite set of group elements.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar, Literal

import jax.numpy as jnp
from jax import Array

__all__ = [
    "Discrete",
    "Interval",
    "NamedParameters",
    "Parameter",
    "Periodic",
    "Real",
    "Support",
    "check_names",
    "declared_parameters",
]


@dataclass(frozen=True)
class Periodic:
    """A circle: values in ``[low, low + period)``, with ``low`` and ``low + period`` identified."""

    low: float = -math.pi
    period: float = 2 * math.pi
    kind: Literal["periodic"] = "periodic"

    def __post_init__(self) -> None:
        if not self.period > 0:
            raise ValueError(f"Periodic support needs a positive period, got {self.period}")

    @property
    def high(self) -> float:
        return self.low + self.period

    def wrap(self, value: Array) -> Array:
        """Maps any real value onto ``[low, high)``."""
        return self.low + jnp.mod(value - self.low, self.period)


@dataclass(frozen=True)
class Interval:
    """A bounded interval ``[low, high]``."""

    low: float
    high: float
    kind: Literal["interval"] = "interval"

    def __post_init__(self) -> None:
        if not (math.isfinite(self.low) and math.isfinite(self.high)):
            raise ValueError(f"Interval bounds must be finite, got [{self.low}, {self.high}]")
        if not self.high > self.low:
            raise ValueError(
                f"Interval is empty: high must exceed low, got [{self.low}, {self.high}]"
            )


@dataclass(frozen=True)
class Real:
    """The whole real line."""

    kind: Literal["real"] = "real"


@dataclass(frozen=True)
class Discrete:
    """The integers ``0, 1, ..., size - 1`` (elements of a finite group)."""

    size: int
    kind: Literal["discrete"] = "discrete"

    def __post_init__(self) -> None:
        if int(self.size) != self.size or self.size < 1:
            raise ValueError(f"Discrete support needs a positive integer size, got {self.size}")


Support = Periodic | Interval | Real | Discrete


@dataclass(frozen=True)
class Parameter:
    """One named transformation parameter and its support."""

    name: str
    support: Support


def declared_parameters(
    names: Sequence[str], supports: Mapping[str, Support], defaults: Mapping[str, Support]
) -> tuple[Parameter, ...]:
    """Each name's :class:`Parameter`: its override from ``supports``, else its default.

    Raises ``ValueError`` for an override whose name is not among ``names``.
    """
    extra = set(supports) - set(names)
    if extra:
        raise ValueError(f"supports given for names not in the family: {sorted(extra)}")
    return tuple(Parameter(name, supports.get(name, defaults[name])) for name in names)


def check_names(names: Sequence[str], known: Sequence[str], family: str) -> tuple[str, ...]:
    """Validates a selection of parameter names against a family's known names."""
    if isinstance(names, str):
        raise TypeError(f"{family} names must be a sequence of strings, e.g. ({names!r},)")
    names = tuple(names)
    if not names:
        raise ValueError(f"{family} needs at least one parameter name; choose from {known}")
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"unknown {family} name(s) {unknown}; expected names from {known}")
    if len(set(names)) != len(names):
        raise ValueError(f"{family} names must not repeat, got {names}")
    return names


class NamedParameters:
    """What the families whose η lists chosen named parameters share.

    A subclass is a frozen dataclass with the fields ``names`` (the chosen
    parameters, in η's order) and ``supports`` (overrides by name), and sets
    ``FAMILY`` (its name in messages) and ``DEFAULT_SUPPORTS`` (every known
    name's support, in the family's order); its ``__post_init__`` calls
    :meth:`_check_declaration`.
    """

    names: tuple[str, ...]
    supports: Mapping[str, Support]
    FAMILY: ClassVar[str]
    DEFAULT_SUPPORTS: ClassVar[Mapping[str, Support]]

    def _check_declaration(self) -> None:
        """Checks ``names`` (stored as a tuple) and ``supports`` against the family's names."""
        known = tuple(self.DEFAULT_SUPPORTS)
        object.__setattr__(self, "names", check_names(self.names, known, self.FAMILY))
        declared_parameters(self.names, self.supports, self.DEFAULT_SUPPORTS)

    @property
    def parameters(self) -> tuple[Parameter, ...]:
        """Each chosen name's :class:`Parameter`, in η's order."""
        return declared_parameters(self.names, self.supports, self.DEFAULT_SUPPORTS)

    @property
    def dim(self) -> int:
        """k, the length of η."""
        return len(self.names)
