"""Declared supports of transformation parameters.

Every transformation family names its parameters and says where each lives, so
that a distribution over η can respect it: a periodic angle, a bounded
interval, the whole real line, or a finite set of group elements.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import jax.numpy as jnp
from jax import Array

__all__ = [
    "Discrete",
    "Interval",
    "Parameter",
    "Periodic",
    "Real",
    "Support",
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
