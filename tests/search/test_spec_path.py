"""Where a search's spec goes: during one real `run_search`, every call of stacktune's that receives the spec is
recorded in order, by module. Stages get what they need from the spec once (a TrialSpace, the seeds, the counts)
instead of handing the whole spec to small helpers per trial or per depth, so the spec's path through the code
stays short and seldom goes back to a module it already left."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
from conftest import _cli_env

pytestmark = pytest.mark.slow

SCRIPT = textwrap.dedent(
    """
    import json, sys, threading
    from stacktune.search.pipeline import run_search
    from stacktune.search.spec.schema import SearchSpec

    path = []

    def record(frame, event, arg):
        if event != "call" or not frame.f_globals.get("__name__", "").startswith("stacktune.search."):
            return
        code = frame.f_code
        names = code.co_varnames[: code.co_argcount + code.co_kwonlyargcount]
        if any(isinstance(frame.f_locals.get(name), SearchSpec) for name in names):
            path.append(frame.f_globals["__name__"].removeprefix("stacktune.search."))

    spec = json.loads(sys.argv[1])
    sys.setprofile(record)
    threading.setprofile(record)
    try:
        run_search(spec, out="runs", tracking_uri="sqlite:///mlflow.db")
    finally:
        sys.setprofile(None)
        threading.setprofile(None)
    print(json.dumps(path))
    """
)


def _stays(path: list[str]) -> list[str]:
    return [m for i, m in enumerate(path) if i == 0 or path[i - 1] != m]


def _returns(stays: list[str]) -> int:
    """How many times the path comes back to a module it had left."""
    left, count = set(), 0
    for i, module in enumerate(stays):
        count += module in left
        if i:
            left.add(stays[i - 1])
    return count


def test_the_spec_passes_through_each_stage_once_without_going_back_and_forth(tmp_path, shared_ray):
    spec = {
        "name": "path",
        "dataset": {"name": "sine", "length": 400, "window": 10},
        "depths": [1, 2],
        "trials_per_depth": 2,
        "space": {"units": [4, 8], "lr": [1e-3, 1e-2]},
        "train": {"epochs": 1, "batch_size": 64},
        "evaluation": {"seeds": 2},
        "seed": 0,
    }
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, json.dumps(spec)],
        cwd=tmp_path,
        env=_cli_env(shared_ray),  # a running Ray: its start-up, profiled, would cost tens of seconds
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    stays = _stays(json.loads(done.stdout.splitlines()[-1]))
    # Every stage is on the path, in the order the search runs them.
    order = ["preflight", "pipeline", "engine.tuning", "publishing.summary", "evaluation.stage", "verdict.checks"]
    assert [m for m in dict.fromkeys(stays) if m in order] == order, stays
    # Before the stages were handed what they need, this search's spec made 65 stays and came back 45 times to a
    # module it had left (the trial configs, seeds and replicate numbers were asked of the spec's helpers per
    # trial and per depth); now at most half as often.
    assert _returns(stays) <= 22, " > ".join(stays)
    assert len(stays) <= 45, " > ".join(stays)
