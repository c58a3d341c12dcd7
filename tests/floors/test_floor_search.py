"""A real search on the oldest versions pyproject.toml allows: `make test-floors` installs constraints/floors.txt
in .venv-floors and runs these tests there (they are left out of the default run)."""

from __future__ import annotations

import json
from importlib import metadata

import optuna
import pytest
from conftest import EXAMPLES, REPO, postgres_database, run_cli
from mlflow.tracking import MlflowClient
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

pytestmark = pytest.mark.floors
FLOORS = REPO / "constraints" / "floors.txt"
NAME = "floors"
DEPTHS = [1, 2, 3]
TRIALS = 2
SEEDS = 2
# Nothing here may phone home: MLflow's and Ray's usage reports stay off.
QUIET_ENV = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true", "RAY_USAGE_STATS_ENABLED": "0"}


def _pins() -> dict[str, str]:
    """package -> pinned version, from constraints/floors.txt."""
    pins = {}
    for line in FLOORS.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, version = line.split("==")
            pins[name.strip()] = version.strip()
    return pins


def test_the_installed_versions_are_the_floors():
    """The search below proves something only if pip installed the pins, not newer releases."""
    pins = _pins()
    assert pins, f"no pins in {FLOORS}"
    # A local build tag (torch's +cpu) is the same release.
    installed = {name: Version(metadata.version(name)).base_version for name in pins}
    assert installed == {name: Version(version).base_version for name, version in pins.items()}


def test_floors_match_pyproject():
    """Every pin is the floor stacktune declares, in its dependencies or its postgres extra."""
    declared = {}
    for line in metadata.requires("stacktune"):
        requirement = Requirement(line)
        if requirement.marker is None or requirement.marker.evaluate({"extra": "postgres"}):
            (floor,) = [s.version for s in requirement.specifier if s.operator == ">="]
            declared[canonicalize_name(requirement.name)] = Version(floor)
    pins = {canonicalize_name(name): Version(version) for name, version in _pins().items()}
    pins.pop("psycopg-binary")  # psycopg[binary]'s other half, pinned with it
    torch = pins.pop("torch")  # pinned above its floor: see the comment in floors.txt
    assert torch >= declared.pop("torch")
    assert pins == declared


def test_a_search_runs_on_the_floors_with_its_studies_in_postgresql(tmp_path):
    with postgres_database() as storage:
        proc = run_cli(
            "search",
            str(EXAMPLES / "demo.yaml"),
            "--name",
            NAME,
            "--trials-per-depth",
            str(TRIALS),
            "--epochs",
            "2",
            "--seeds",
            str(SEEDS),
            "--out",
            str(tmp_path / "out"),
            "--tracking-uri",
            f"sqlite:///{tmp_path}/mlflow.db",
            cwd=tmp_path,
            # A plain postgresql:// URL: SQLAlchemy's default driver for it, psycopg2 before 2.1, psycopg 3 after.
            env={**QUIET_ENV, "STACKTUNE_OPTUNA_STORAGE": storage},
            timeout=300,
        )
        assert proc.returncode == 0, proc.stderr[-4000:]

        comparison = json.loads((tmp_path / "out" / NAME / "comparison.json").read_text())
        assert [d["depth"] for d in comparison["depths"]] == DEPTHS
        verdict = comparison["verdict"]
        assert verdict is not None and len(verdict["pairs"]) == len(DEPTHS) * (len(DEPTHS) - 1) // 2
        assert comparison["conclusion"]
        for entry in comparison["depths"]:
            assert len(entry["test_losses"]) == SEEDS
        assert not (tmp_path / "out" / NAME / "optuna.journal").exists()

        # The studies are in PostgreSQL, read back through psycopg 3 by name.
        psycopg3 = storage.replace("postgresql://", "postgresql+psycopg://", 1)
        for depth in DEPTHS:
            study = optuna.load_study(study_name=f"{NAME}.depth-{depth}", storage=psycopg3)
            assert len(study.get_trials(states=[optuna.trial.TrialState.COMPLETE])) == TRIALS

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db")
    search_run = client.get_run(comparison["mlflow_run_id"])
    assert search_run.info.status == "FINISHED"
    assert search_run.data.tags["stacktune.verdict"] == comparison["conclusion"]
