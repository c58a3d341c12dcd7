"""Locked down: credentials stay out of what a search records, and a spec cannot reach outside its folder."""

from __future__ import annotations

import secrets
from pathlib import Path

import optuna
import pytest
import yaml
from conftest import EXAMPLES, MlflowServer, postgres_database, run_cli, write_spec
from mlflow.tracking import MlflowClient

pytestmark = pytest.mark.slow

NAME = "locked"


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory):
    """`mlflow server --app-name basic-auth`, its admin's password from the environment, as compose starts it; one
    for the module (the tests that use it refuse or run searches of one name, once)."""
    tmp_path = tmp_path_factory.mktemp("auth")
    password = secrets.token_hex(12)
    ini = tmp_path / "basic_auth.ini"
    ini.write_text(
        "[mlflow]\ndefault_permission = READ\n"
        f"database_uri = sqlite:///{tmp_path}/basic_auth.db\nadmin_username = admin\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        # Checks each password hash once a minute, not on every request.
        "auth_cache_ttl_seconds = 60\n"
    )
    server = MlflowServer(
        tmp_path,
        args=("--app-name", "basic-auth"),
        env={
            "MLFLOW_AUTH_CONFIG_PATH": str(ini),
            "MLFLOW_AUTH_ADMIN_USERNAME": "admin",
            "MLFLOW_AUTH_ADMIN_PASSWORD": password,
            "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_hex(16),
        },
    )
    try:
        server.start()
        yield server, password
    finally:
        server.stop()


def _spec(tmp_path, **changes) -> str:
    return write_spec(
        tmp_path,
        **{
            "name": NAME,
            "depths": [1, 2],
            "trials_per_depth": 2,
            "train": {"epochs": 2, "batch_size": 32},
            "evaluation": {"seeds": 1},
            **changes,
        },
    )


def _texts_under(folder: Path):
    for path in folder.rglob("*"):
        if path.is_file():
            yield path, path.read_bytes().decode(errors="replace")


def test_credentials_from_the_environment_appear_in_no_param_tag_artifact_export_or_output(
    tmp_path, auth_server, monkeypatch, shared_ray
):
    server, password = auth_server
    db_password = secrets.token_hex(12)
    with postgres_database() as optuna_url:
        # PostgreSQL here trusts local users, so any password works, and one is given to see where it goes.
        storage = optuna_url.replace("postgres@", f"postgres:{db_password}@")
        env = {
            "MLFLOW_TRACKING_USERNAME": "admin",
            "MLFLOW_TRACKING_PASSWORD": password,
            "STACKTUNE_OPTUNA_STORAGE": storage,
        }
        spec = _spec(tmp_path)
        searched = run_cli(
            "search", str(spec), "--out", "out", "--tracking-uri", server.uri, cwd=tmp_path, env={**env, **shared_ray}
        )
        assert searched.returncode == 0, searched.stderr[-3000:]
        exported = run_cli("export", NAME, "--out", "exported", "--tracking-uri", server.uri, cwd=tmp_path, env=env)
        assert exported.returncode == 0, exported.stderr[-3000:]

        # The studies went to the database the environment named.
        study = optuna.load_study(study_name=f"{NAME}.depth-1", storage=optuna_url)
        assert len(study.get_trials()) == 2
        attrs = [
            study.user_attrs,
            *(t.user_attrs for t in study.get_trials()),
            *(t.system_attrs for t in study.get_trials()),
        ]

    secrets_ = {password, db_password}
    # This process reads the runs back as the admin.
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "admin")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", password)
    client = MlflowClient(tracking_uri=server.uri)
    experiment = client.get_experiment_by_name(NAME)
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    assert len([r for r in runs if r.data.tags.get("stacktune.role") == "trial"]) == 4
    recorded = [str(r.data.params) + str(r.data.tags) for r in runs]
    downloaded = tmp_path / "artifacts"
    for run in runs:
        if client.list_artifacts(run.info.run_id):
            client.download_artifacts(run.info.run_id, "", str(downloaded / run.info.run_id))
    files = [*_texts_under(downloaded), *_texts_under(tmp_path / "out"), *_texts_under(tmp_path / "exported")]
    assert any(p.name == "report.md" for p, _ in files) and any(p.name.endswith(".yaml") for p, _ in files)
    outputs = [searched.stdout, searched.stderr, exported.stdout, exported.stderr]
    for secret in secrets_:
        assert not [text for text in recorded if secret in text], "a credential was logged as a param or tag"
        assert not [p for p, text in files if secret in text], "a credential was written to an artifact or export"
        assert not [text for text in outputs if secret in text], "a credential was printed"
        assert not [a for a in attrs if secret in str(a)], "a credential was stored in the study"


def test_a_basic_auth_server_without_credentials_is_a_one_line_error_before_any_training(tmp_path, auth_server):
    server, password = auth_server
    spec = _spec(tmp_path)
    refused = run_cli("search", str(spec), "--tracking-uri", server.uri, cwd=tmp_path)
    assert refused.returncode == 3
    assert refused.stderr.strip().splitlines() == [
        f"error: MLflow tracking server {server.uri} needs credentials: "
        "set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD"
    ]
    wrong = run_cli(
        "search",
        str(spec),
        "--tracking-uri",
        server.uri,
        cwd=tmp_path,
        env={"MLFLOW_TRACKING_USERNAME": "admin", "MLFLOW_TRACKING_PASSWORD": "not-" + password},
    )
    assert wrong.returncode == 3 and "refused the credentials" in wrong.stderr and password not in wrong.stderr
    in_uri = run_cli(
        "search", str(spec), "--tracking-uri", server.uri.replace("//", f"//admin:{password}@"), cwd=tmp_path
    )
    assert in_uri.returncode == 2 and password not in in_uri.stderr
    assert "not in the tracking URI" in in_uri.stderr


@pytest.mark.parametrize(
    "changes, field",
    [
        ({"dataset": {"csv": "../outside.csv", "target": "y", "window": 4}}, "dataset.csv"),
        ({"dataset": {"csv": "/etc/hostname", "target": "y", "window": 4}}, "dataset.csv"),
        ({"storage": "sqlite:////tmp/elsewhere.db"}, "storage"),
    ],
)
def test_a_submitted_spec_cannot_name_a_file_outside_its_job_folder(tmp_path, changes, field):
    job = tmp_path / "job"
    job.mkdir()
    (tmp_path / "outside.csv").write_text("y\n" + "\n".join(str(i) for i in range(100)))
    spec = yaml.safe_load((EXAMPLES / "demo.yaml").read_text())
    spec.update(changes)
    (job / "spec.yaml").write_text(yaml.safe_dump(spec))
    result = run_cli("search", "spec.yaml", "--confine", ".", cwd=job)
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"error: spec.yaml: {field}: ") and "lies outside the job's folder" in line
    assert not (job / "stacktune-runs").exists()


def test_a_spec_cannot_make_yaml_run_code(tmp_path):
    marker = tmp_path / "ran"
    spec = tmp_path / "spec.yaml"
    spec.write_text(f"name: !!python/object/apply:os.system ['touch {marker}']\n")
    result = run_cli("search", str(spec), cwd=tmp_path)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert not marker.exists()


def test_a_password_in_a_database_tracking_uri_is_in_no_output_file_or_saved_state(tmp_path, shared_ray):
    db_password = secrets.token_hex(12)
    with postgres_database() as url:
        # PostgreSQL here trusts local users: the password is accepted, and followed to where it ends up.
        uri = url.replace("postgresql://postgres@", f"postgresql+psycopg://postgres:{db_password}@")
        spec = _spec(tmp_path)
        searched = run_cli("search", str(spec), "--out", "out", "--tracking-uri", uri, cwd=tmp_path, env=shared_ray)
        assert searched.returncode == 0, searched.stderr[-3000:]
        shown = uri.replace(db_password, "***")
        assert f"--tracking-uri {shown}" in searched.stdout  # the hint to browse the trials, without the password
    files = list(_texts_under(tmp_path / "out"))
    assert any(p.name == "tuner.pkl" for p, _ in files)  # Ray Tune's saved state is among the files scanned
    assert not [p for p, text in files if db_password in text], "the password was written under the output folder"
    assert db_password not in searched.stdout + searched.stderr
