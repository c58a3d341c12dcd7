"""A stop signal ends the search as interrupted even when it lands inside a library call that wraps every error."""

import os
import signal

import pytest

from stacktune.search.engine.signals import owned_signals
from stacktune.search.errors import SearchInterrupted, interruption


def _library_call_that_wraps_errors():
    # What MLflow's database sessions do: whatever is raised inside is re-raised as the library's own error.
    try:
        os.kill(os.getpid(), signal.SIGTERM)
    except BaseException as exc:
        raise RuntimeError(str(exc)) from exc


def test_a_signal_wrapped_by_a_library_still_ends_in_search_interrupted_with_its_exit_status():
    with pytest.raises(SearchInterrupted) as caught:
        with owned_signals():
            _library_call_that_wraps_errors()
    assert caught.value.exit_code == 143 and "SIGTERM" in str(caught.value)
    assert signal.getsignal(signal.SIGTERM) is not None  # the previous handler is back


def test_an_error_without_a_signal_behind_it_goes_through_as_it_is():
    with pytest.raises(ValueError):
        with owned_signals():
            raise ValueError("not a stop")


def test_interruption_is_found_through_causes_and_contexts():
    stop = SearchInterrupted.of(signal.SIGHUP)
    try:
        try:
            raise stop
        except SearchInterrupted:
            raise KeyError("during handling") from None  # its context is still the stop
    except KeyError as exc:
        wrapped = exc
    assert interruption(wrapped) is stop
    assert interruption(ValueError("no")) is None
    assert interruption(None) is None
