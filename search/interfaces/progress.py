"""What a running search shows on stderr, so that stdout stays the command's answer alone: progress bars on a
terminal (trials or training seconds done, ETA, best so far; then the retrainings), one line per event elsewhere
(a log file, a CI job, `stacktune logs`)."""

from __future__ import annotations

import math
import sys

from ..progress import DepthTally, Progress


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _loss(value) -> str:
    return f"{value:.5f}" if isinstance(value, (int, float)) and math.isfinite(value) else "failed"


class StderrProgress(Progress):
    """One line when the trials start, one per finished trial, restart and retraining, one when evaluation starts.
    After a resume, the counts go on from the trials the earlier attempt finished."""

    def __init__(self) -> None:
        self._kept: dict[int, DepthTally] = {}

    def trials_kept(self, tallies: dict[int, DepthTally]) -> None:
        self._kept = dict(tallies)

    def _with_kept(self, depth: int, tally: DepthTally) -> DepthTally:
        return self._kept[depth] + tally if depth in self._kept else tally

    def search_started(
        self, *, name: str, depths: list[int], budget: str, resume: bool, owed: int = 0, seconds: float | None = None
    ) -> None:
        _say(f"{'resuming' if resume else 'searching'} {name}: depths {depths}, {budget}")

    def trial_finished(self, depth: int, tally: DepthTally, *, trials: int, seconds: float | None) -> None:
        tally = self._with_kept(depth, tally)
        best = f"{tally.best:.5f}" if tally.best < float("inf") else "-"
        done = (
            f"{tally.done}/{trials} trials"
            if seconds is None
            else f"{tally.done} trials, {tally.seconds:.0f}/{seconds:g} s"
        )
        _say(
            f"  depth {depth}: {done} "
            f"({tally.completed} completed, {tally.pruned} pruned, {tally.failed} failed), best val_loss {best}"
        )

    def trial_restarted(self, name: str, reason: str) -> None:
        self._write(f"  {name}: restarting after a failure ({reason})")

    def _write(self, line: str) -> None:
        _say(line)

    def evaluation_started(self, *, jobs: int, seeds: int, round: int | None = None, origins: int = 1) -> None:
        which = "" if round is None else f", round {round}"
        at = f" at {origins} origins" if origins > 1 else ""
        _say(f"evaluating on the test split{which}: {jobs} retrainings ({seeds} seeds each{at})")

    def retraining_finished(self, *, done: int, jobs: int, depth: int, kind: str, seed: int, test_loss) -> None:
        _say(f"  retraining {done}/{jobs}: depth {depth} {kind}, seed {seed}, test loss {_loss(test_loss)}")


class BarProgress(StderrProgress):
    """tqdm bars on a terminal: the trials of every depth in one bar (training seconds with a seconds budget),
    with the best validation loss of each depth so far, then one bar per round of retrainings. Restarts and the
    start of each phase are still lines, printed above the bar."""

    def __init__(self) -> None:
        super().__init__()
        self._bar = None
        self._tallies: dict[int, DepthTally] = {}

    def trials_kept(self, tallies: dict[int, DepthTally]) -> None:
        super().trials_kept(tallies)
        self._tallies = dict(tallies)

    def _trials_done(self, seconds: float | None) -> int:
        """What the bar counts: the trials of every depth, or their training seconds, each depth's capped at its
        budget."""
        if seconds is None:
            return sum(t.done for t in self._tallies.values())
        return round(sum(min(t.seconds, seconds) for t in self._tallies.values()))

    def _open(self, total: float, desc: str, unit: str, initial: int = 0) -> None:
        from tqdm import tqdm

        self.close()
        self._bar = tqdm(
            total=total, desc=desc, unit=unit, initial=initial, file=sys.stderr, dynamic_ncols=True, mininterval=0.5
        )

    def _write(self, line: str) -> None:
        if self._bar is None:
            _say(line)
        else:
            self._bar.write(line, file=sys.stderr)

    def search_started(
        self, *, name: str, depths: list[int], budget: str, resume: bool, owed: int = 0, seconds: float | None = None
    ) -> None:
        super().search_started(name=name, depths=depths, budget=budget, resume=resume, owed=owed, seconds=seconds)
        kept = self._trials_done(seconds)  # a resumed search's bar starts where the earlier attempt stopped
        if seconds is None:
            self._open(kept + owed, "trials", "trial", initial=kept)
        else:
            self._open(round(seconds * len(depths)), "training", "s", initial=kept)
        self._show_bests()

    def trial_finished(self, depth: int, tally: DepthTally, *, trials: int, seconds: float | None) -> None:
        if self._bar is None:
            return super().trial_finished(depth, tally, trials=trials, seconds=seconds)
        self._tallies[depth] = self._with_kept(depth, tally)
        self._bar.update(self._trials_done(seconds) - self._bar.n)
        self._show_bests()

    def _show_bests(self) -> None:
        bests = {d: t.best for d, t in sorted(self._tallies.items()) if t.best < float("inf")}
        if bests and self._bar is not None:
            self._bar.set_postfix_str("best val_loss " + ", ".join(f"d{d} {b:.4g}" for d, b in bests.items()))

    def evaluation_started(self, *, jobs: int, seeds: int, round: int | None = None, origins: int = 1) -> None:
        self.close()
        super().evaluation_started(jobs=jobs, seeds=seeds, round=round, origins=origins)
        self._open(jobs, "retrainings" if round is None else f"round {round}", "run")

    def retraining_finished(self, *, done: int, jobs: int, depth: int, kind: str, seed: int, test_loss) -> None:
        if self._bar is None:
            return super().retraining_finished(
                done=done, jobs=jobs, depth=depth, kind=kind, seed=seed, test_loss=test_loss
            )
        self._bar.update(done - self._bar.n)
        self._bar.set_postfix_str(f"last: depth {depth} {kind} seed {seed}, test loss {_loss(test_loss)}")

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def for_terminal(*, quiet: bool, as_json: bool) -> Progress | None:
    """What a command shows while a search runs: nothing with -q or --json, bars on a terminal, lines elsewhere."""
    if quiet or as_json:
        return None
    return BarProgress() if sys.stderr.isatty() else StderrProgress()
