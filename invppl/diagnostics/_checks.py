"""Argument checks shared by the η diagnostics.

Used by :func:`~invppl.diagnostics.check_eta`,
:func:`~invppl.diagnostics.reference_posterior` and :func:`~invppl.diagnostics.sbc`;
each raises before any sampling starts and names the argument, what it got and
what was expected.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jax import Array

from invppl._checks import check_int
from invppl.diagnostics.convert import latent_sites

__all__ = ["check_counts", "check_guide_has_eta"]


def check_counts(**counts: tuple[object, int]) -> None:
    """Checks each ``name=(value, minimum)``: an integer (not a bool) of at least ``minimum``.

    The counts are checked in the order given, so the first bad one is the one
    reported, with :func:`~invppl._checks.check_int`'s ``TypeError`` or ``ValueError``.

    >>> check_counts(num_chains=(4, 2), num_samples=(500, 2))
    >>> check_counts(num_chains=(1, 2))
    Traceback (most recent call last):
    ...
    ValueError: num_chains must be at least 2, got 1
    """
    for name, (value, minimum) in counts.items():
        check_int(value, name, minimum=minimum)


def check_guide_has_eta(guide: Any, params: Mapping[str, Any], x: Array, eta_site: str) -> None:
    """``KeyError`` unless ``guide(x)`` (``x``: ``(batch, ...)``) has a latent site ``eta_site``."""
    if eta_site not in latent_sites(guide, params, x):
        raise KeyError(f"the guide has no latent site {eta_site!r} for η")
