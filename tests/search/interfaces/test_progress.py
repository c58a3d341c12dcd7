"""What the commands show on stderr: progress bars on a terminal, lines elsewhere, nothing with -q or --json; log
messages through the `stacktune` logger, with -q and -v; the UI's addresses as JSON."""

from __future__ import annotations

import json
import logging
import sys

import pytest

from stacktune.search.cli import _log_to_stderr, build_parser
from stacktune.search.interfaces import progress as shown
from stacktune.search.interfaces.ui import _print_addresses
from stacktune.search.progress import DepthTally


def _tally(completed: int, best: float, seconds: float = 0.0) -> DepthTally:
    return DepthTally(completed=completed, best=best, seconds=seconds)


def test_lines_say_each_finished_trial_and_retraining(capsys):
    lines = shown.StderrProgress()
    lines.search_started(name="s", depths=[1, 2], budget="2 trials each (4 to run)", resume=False, owed=4)
    lines.trial_finished(1, _tally(1, 0.5), trials=2, seconds=None)
    lines.evaluation_started(jobs=4, seeds=2)
    lines.retraining_finished(done=1, jobs=4, depth=2, kind="fixed", seed=1, test_loss=0.25)
    lines.retraining_finished(done=2, jobs=4, depth=1, kind="tuned", seed=2, test_loss=None)
    lines.evaluation_started(jobs=24, seeds=2, round=2, origins=3)
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "searching s: depths [1, 2], 2 trials each (4 to run)",
        "  depth 1: 1/2 trials (1 completed, 0 pruned, 0 failed), best val_loss 0.50000",
        "evaluating on the test split: 4 retrainings (2 seeds each)",
        "  retraining 1/4: depth 2 fixed, seed 1, test loss 0.25000",
        "  retraining 2/4: depth 1 tuned, seed 2, test loss failed",
        "evaluating on the test split, round 2: 24 retrainings (2 seeds each at 3 origins)",
    ]


def test_bars_count_trials_with_each_depths_best_then_the_retrainings(capsys):
    bars = shown.BarProgress()
    bars.search_started(name="s", depths=[1, 2], budget="3 trials each", resume=False, owed=6)
    bars.trial_finished(1, _tally(1, 0.9), trials=3, seconds=None)
    bars.trial_finished(2, _tally(2, 0.4), trials=3, seconds=None)
    bars.trial_restarted("d2-t02", "node died")
    bars.evaluation_started(jobs=2, seeds=1)
    bars.retraining_finished(done=2, jobs=2, depth=1, kind="tuned", seed=1, test_loss=0.3)
    bars.close()
    err = capsys.readouterr().err
    assert "trials:  50%" in err and "3/6" in err and "best val_loss d1 0.9, d2 0.4" in err
    assert "  d2-t02: restarting after a failure (node died)" in err
    assert "retrainings: 100%" in err and "2/2" in err and "last: depth 1 tuned seed 1, test loss 0.30000" in err


def test_a_seconds_budget_fills_the_bar_with_training_seconds_capped_per_depth(capsys):
    bars = shown.BarProgress()
    bars.search_started(name="s", depths=[1, 2], budget="10 s each", resume=False, owed=8, seconds=10.0)
    bars.trial_finished(1, _tally(3, 0.5, seconds=14.0), trials=8, seconds=10.0)  # the last trial overshot
    bars.trial_finished(2, _tally(1, 0.7, seconds=4.0), trials=8, seconds=10.0)
    assert bars._bar.n == 14 and bars._bar.total == 20
    bars.close()
    assert "14/20" in capsys.readouterr().err


def test_after_a_resume_lines_count_on_from_the_trials_kept(capsys):
    lines = shown.StderrProgress()
    lines.trials_kept({1: DepthTally(completed=2, failed=1, best=0.4), 2: DepthTally()})
    lines.search_started(name="s", depths=[1, 2], budget="4 trials each (5 to run)", resume=True, owed=5)
    # The search's own tallies count only the trials run since the resume.
    lines.trial_finished(1, _tally(1, 0.6), trials=4, seconds=None)
    lines.trial_finished(2, _tally(1, 0.3), trials=4, seconds=None)
    assert capsys.readouterr().err.splitlines() == [
        "resuming s: depths [1, 2], 4 trials each (5 to run)",
        "  depth 1: 4/4 trials (3 completed, 0 pruned, 1 failed), best val_loss 0.40000",
        "  depth 2: 1/4 trials (1 completed, 0 pruned, 0 failed), best val_loss 0.30000",
    ]


def test_after_a_resume_the_bar_starts_at_the_trials_kept_with_their_bests(capsys):
    bars = shown.BarProgress()
    bars.trials_kept({1: DepthTally(completed=3, best=0.5), 2: DepthTally(completed=1, pruned=1, best=0.8)})
    bars.search_started(name="s", depths=[1, 2], budget="4 trials each (3 to run)", resume=True, owed=3)
    assert (bars._bar.n, bars._bar.total) == (5, 8)
    bars.trial_finished(2, _tally(1, 0.7), trials=4, seconds=None)
    assert bars._bar.n == 6
    bars.close()
    err = capsys.readouterr().err
    assert "6/8" in err and "best val_loss d1 0.5, d2 0.7" in err


def test_after_a_resume_a_seconds_bar_starts_at_the_seconds_kept(capsys):
    bars = shown.BarProgress()
    bars.trials_kept({1: DepthTally(completed=2, best=0.5, seconds=12.0), 2: DepthTally(completed=1, seconds=3.0)})
    bars.search_started(name="s", depths=[1, 2], budget="10 s each", resume=True, owed=8, seconds=10.0)
    assert (bars._bar.n, bars._bar.total) == (13, 20)  # depth 1's overshoot counts only up to its 10 s
    bars.trial_finished(2, _tally(1, 0.6, seconds=4.0), trials=8, seconds=10.0)
    assert bars._bar.n == 17
    bars.close()


def test_bars_on_a_terminal_lines_elsewhere_nothing_when_quiet_or_json(monkeypatch):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    assert type(shown.for_terminal(quiet=False, as_json=False)) is shown.BarProgress
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False, raising=False)
    assert type(shown.for_terminal(quiet=False, as_json=False)) is shown.StderrProgress
    assert shown.for_terminal(quiet=True, as_json=False) is None
    assert shown.for_terminal(quiet=False, as_json=True) is None


@pytest.mark.parametrize(
    ("flags", "seen"),
    [
        ([], ["searching", "warning: disk is slow", "error: gone"]),
        (["-q"], ["warning: disk is slow", "error: gone"]),
        (["-v"], ["detail", "searching", "warning: disk is slow", "error: gone"]),
    ],
)
def test_the_stacktune_logger_follows_q_and_v_and_prefixes_warnings_and_errors(capsys, flags, seen):
    args = build_parser().parse_args([*flags, "datasets"])
    logger = logging.getLogger("stacktune")
    try:
        _log_to_stderr(args)
        logger.debug("detail")
        logger.info("searching")
        logger.warning("disk is slow")
        logger.error("gone")
    finally:
        logger.handlers.clear()
        logger.propagate = True
    assert capsys.readouterr().err.splitlines() == seen


def test_quiet_and_verbose_cannot_be_given_together(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["-q", "-v", "datasets"])
    assert "not allowed with argument" in capsys.readouterr().err


def test_ui_addresses_as_one_json_line(capsys):
    _print_addresses("http://127.0.0.1:5000/", {"demo": "1", "other": "2"}, as_json=True, served=True)
    (line,) = capsys.readouterr().out.splitlines()
    answer = json.loads(line)
    assert answer["url"] == "http://127.0.0.1:5000/" and answer["served"] is True
    assert [(s["search"], s["experiment_id"]) for s in answer["searches"]] == [("demo", "1"), ("other", "2")]
    assert all(s["url"].startswith("http://127.0.0.1:5000/#/experiments/") for s in answer["searches"])
