"""The Python API as a notebook uses it: `run_search` takes a spec as a mapping, a file or a SearchSpec, loads the
data itself, prints nothing, returns the typed comparison, and leaves no Ray of its own running (a Ray the caller
started stays up)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml
from conftest import EXAMPLES, _cli_env

from stacktune.search import ConfigError, run_search

SCRIPT = """
import json, os, sys
import ray
from stacktune.search import ConfigError, run_search

def ray_processes():
    # Every process of this script's Ray names the folder $RAY_TMPDIR on its command line.
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            command = open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\\0", b" ").decode()
        except OSError:
            continue
        if os.environ["RAY_TMPDIR"] in command and int(pid) != os.getpid():
            found.append(command[:200])
    return found

spec = json.loads(sys.argv[1])
comparison = run_search(spec, out="runs", tracking_uri="sqlite:///mlflow.db")
units = {d.depth: d.best_config["model"]["units"] for d in comparison.depths}
auth = [os.environ.get(name) for name in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN")]
after = {"initialized": ray.is_initialized(), "processes": ray_processes(), "auth": auth}
# A Ray the caller started is used and left running, also when the search is refused once Ray is up.
ray.init(
    num_cpus=1, include_dashboard=False, _node_ip_address="127.0.0.1", logging_level="ERROR", ignore_reinit_error=True
)
try:
    run_search({**spec, "resources": {"cpus_per_trial": 64}}, out="runs", tracking_uri="sqlite:///mlflow.db")
except ConfigError as exc:
    refused = str(exc)
callers = {"initialized": ray.is_initialized(), "processes": bool(ray_processes()), "refused": refused}
ray.shutdown()
print(json.dumps({"best_depth": comparison.best_depth, "depths": [d.depth for d in comparison.depths], "units": units,
                  "after": after, "callers": callers}))
"""


@pytest.mark.slow
def test_run_search_takes_a_mapping_loads_its_data_fills_widths_prints_nothing_and_stops_its_ray(tmp_path):
    spec = yaml.safe_load((EXAMPLES / "demo.yaml").read_text())
    # units: {params: N} needs the data's sizes: run_search fills the widths in itself.
    spec.update(
        name="api",
        depths=[1, 2],
        trials_per_depth=1,
        train={"epochs": 1, "batch_size": 32},
        space={"units": {"params": 2000}, "lr": [1.0e-3, 3.0e-2]},
        evaluation={"seeds": 0},
    )
    # A short folder of the search's own for Ray's sessions (Ray's socket paths must stay short), so that its
    # processes are told apart from any other Ray on the machine.
    ray_tmp = Path(tempfile.mkdtemp(prefix="st-api-", dir="/tmp"))
    try:
        done = subprocess.run(
            [sys.executable, "-c", SCRIPT, json.dumps(spec)],
            cwd=tmp_path,
            env=_cli_env({"RAY_TMPDIR": str(ray_tmp)}),
            capture_output=True,
            text=True,
            timeout=600,
        )
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
    assert done.returncode == 0, done.stderr[-4000:]
    # Nothing on stderr: not MLflow's lines as it creates its database tables, not Ray's token warning.
    assert done.stderr == ""
    (line,) = done.stdout.splitlines()  # the script's own line and nothing else on stdout
    answer = json.loads(line)
    assert answer["depths"] == [1, 2] and answer["best_depth"] in (1, 2)
    # Equal widths per depth, matched to about 2,000 weights: the deeper stack is narrower.
    (one,), (two, two_again) = answer["units"]["1"], answer["units"]["2"]
    assert two == two_again and one > two
    assert (tmp_path / "runs" / "api" / "comparison.json").is_file()
    # The Ray run_search started is shut down, its processes gone, and its token settings with it, before it returns.
    assert answer["after"] == {"initialized": False, "processes": [], "auth": [None, None]}
    # The caller's own Ray, seen by the same check, is left running after a refusal made once Ray was up.
    assert answer["callers"]["initialized"] and answer["callers"]["processes"]
    assert "resources.cpus_per_trial" in answer["callers"]["refused"]


def test_run_search_refuses_a_bad_mapping_or_file_in_one_line_before_starting_anything(tmp_path):
    with pytest.raises(ConfigError, match=r"space\.unit") as refused:
        run_search({"name": "bad", "dataset": {"name": "sunspots"}, "depths": [1], "space": {"unit": [8]}})
    assert "\n" not in str(refused.value)
    with pytest.raises(ConfigError, match="missing.yaml"):
        run_search(tmp_path / "missing.yaml")
    assert not list(tmp_path.iterdir())
