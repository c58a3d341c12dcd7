"""The driver owns SIGINT, SIGTERM and SIGHUP for a whole search: tuning, evaluation and publishing alike.

Ray Tune's own SIGINT handler ends `Tuner.fit()` quietly, as if the run were done, which would let a cut-off
evaluation be published as the verdict. It is switched off (TUNE_DISABLE_SIGINT_HANDLER, see quiet_ray_tune), and
a signal instead raises SearchInterrupted: at once outside a Ray Tune run, and inside one at the run's next step
(StopOnSignal), where Ray Tune stops its trials before `fit()` raises it on.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from typing import Iterator

from ray.tune import Callback

from ..errors import SearchInterrupted, interruption

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class _State:
    received: int | None = None  # the first stop signal, once one came
    in_tune = False  # a Ray Tune run is in progress: its next step ends it


_state = _State()


def _stop(signum: int, frame) -> None:
    first = _state.received is None
    if first:
        _state.received = signum
    if first and _state.in_tune:
        return  # StopOnSignal ends the run at its next step, with its trials stopped in order
    raise SearchInterrupted.of(signum)


@contextlib.contextmanager
def owned_signals() -> Iterator[None]:
    """While the search runs, SIGINT, SIGTERM and SIGHUP stop it with SearchInterrupted (the caller closes its runs
    as KILLED); the previous handlers come back afterwards. Outside the main thread, signals are left as they are."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _state.received, _state.in_tune = None, False
    previous = {sig: signal.signal(sig, _stop) for sig in STOP_SIGNALS}
    try:
        yield
    except Exception as exc:
        # A signal that landed inside a library call may come out wrapped in that library's error (MLflow's
        # sessions re-raise anything as an MlflowException): it is still the stop the user asked for.
        stop = interruption(exc)
        if stop is not None:
            raise stop from exc
        raise
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        _state.received, _state.in_tune = None, False


class StopOnSignal(Callback):
    """Ends the Ray Tune run at its next step once a stop signal came: raising from a callback makes Ray Tune stop
    its trials and raise the error from `fit()`."""

    def on_step_begin(self, iteration, trials, **info):
        if _state.received is not None:
            raise SearchInterrupted.of(_state.received)


def fit(tuner) -> None:
    """`tuner.fit()`, with Ray's chatter on stderr (stdout is the command's answer); raises SearchInterrupted when
    a stop signal came while it ran, whatever state the run ended in."""
    _state.in_tune = True
    try:
        with contextlib.redirect_stdout(sys.stderr):
            tuner.fit()
    except Exception:
        if _state.received is None:
            raise
    finally:
        _state.in_tune = False
    if _state.received is not None:
        raise SearchInterrupted.of(_state.received)
