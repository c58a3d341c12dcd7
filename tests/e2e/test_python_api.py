"""The Python API as a notebook uses it: `run_search` takes a spec as a mapping, a file or a SearchSpec, loads the
data itself, prints nothing, and returns the typed comparison."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml
from conftest import EXAMPLES, _cli_env

from stacktune.search import ConfigError, run_search

SCRIPT = """
import json, sys
from stacktune.search import run_search

spec = json.loads(sys.argv[1])
comparison = run_search(spec, out="runs", tracking_uri="sqlite:///mlflow.db")
units = {d.depth: d.best_config["model"]["units"] for d in comparison.depths}
print(json.dumps({"best_depth": comparison.best_depth, "depths": [d.depth for d in comparison.depths], "units": units}))
"""


@pytest.mark.slow
def test_run_search_takes_a_mapping_loads_its_data_fills_widths_and_prints_nothing(tmp_path):
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
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, json.dumps(spec)],
        cwd=tmp_path,
        env=_cli_env(None),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    (line,) = done.stdout.splitlines()  # the script's own line and nothing else on stdout
    answer = json.loads(line)
    assert answer["depths"] == [1, 2] and answer["best_depth"] in (1, 2)
    # Equal widths per depth, matched to about 2,000 weights: the deeper stack is narrower.
    (one,), (two, two_again) = answer["units"]["1"], answer["units"]["2"]
    assert two == two_again and one > two
    assert (tmp_path / "runs" / "api" / "comparison.json").is_file()


def test_run_search_refuses_a_bad_mapping_or_file_in_one_line_before_starting_anything(tmp_path):
    with pytest.raises(ConfigError, match=r"space\.unit") as refused:
        run_search({"name": "bad", "dataset": {"name": "sunspots"}, "depths": [1], "space": {"unit": [8]}})
    assert "\n" not in str(refused.value)
    with pytest.raises(ConfigError, match="missing.yaml"):
        run_search(tmp_path / "missing.yaml")
    assert not list(tmp_path.iterdir())
