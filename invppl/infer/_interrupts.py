"""Stopping a fit cleanly on SIGINT (Ctrl-C) or SIGTERM: finish the chunk, save, then raise.

While :func:`invppl.infer.fit` runs its steps, :class:`Interrupts` holds back
the first SIGINT or SIGTERM (only where the signal still has Python's default
handling, in the main thread): the loop notices it at the end of the current
chunk of steps (a fraction of a second), saves a checkpoint when the fit has a
``checkpoint_dir``, and raises :class:`FitInterrupted`. A second signal
interrupts at once.
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

__all__ = ["FitInterrupted", "Interrupts"]

_DEFAULT_HANDLERS = {signal.SIGINT: signal.default_int_handler, signal.SIGTERM: signal.SIG_DFL}


class FitInterrupted(KeyboardInterrupt):
    """Raised by :func:`invppl.infer.fit` after a SIGINT or SIGTERM, once the run is saved.

    A ``KeyboardInterrupt``, so code that handles Ctrl-C keeps working.

    Attributes:
        signal_name: ``"SIGINT"`` or ``"SIGTERM"``.
        signal_number: the signal's number (a shell reports exit code 128 + it).
        step: the steps done when the fit stopped.
        checkpoint: the checkpoint saved at ``step``, or None (no ``checkpoint_dir``).
    """

    def __init__(
        self, message: str, signal_number: int, step: int, checkpoint: Path | None
    ) -> None:
        super().__init__(message)
        self.signal_number = signal_number
        self.signal_name = signal.Signals(signal_number).name
        self.step = step
        self.checkpoint = checkpoint

    def __str__(self) -> str:
        return str(self.args[0])


class Interrupts:
    """A context manager that records SIGINT and SIGTERM instead of acting on them.

    ``received`` is the first signal's number, or None. Signals whose handler is
    not Python's default (an application's own) are left alone, as is every
    signal outside the main thread, where handlers cannot be installed.
    """

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> Interrupts:
        if threading.current_thread() is threading.main_thread():
            for number, default in _DEFAULT_HANDLERS.items():
                if signal.getsignal(number) is default:
                    self._previous[number] = signal.signal(number, self._record)
        return self

    def _record(self, number: int, frame: FrameType | None) -> None:
        if self.received is not None:  # a second signal: stop now
            self._restore()
            raise KeyboardInterrupt
        self.received = number

    def _restore(self) -> None:
        for number, previous in self._previous.items():
            signal.signal(number, previous)
        self._previous = {}

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._restore()
