"""How stacktune installs and starts: `--version`, `python -m stacktune`, and what the wheel ships."""

import re
import shutil
import subprocess
import sys
import zipfile
from importlib.metadata import version
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
SCRIPT = Path(sys.executable).with_name("stacktune")
# What the wheel is built from: pyproject.toml's package-dir folders and the readme it names.
SOURCES = ["pyproject.toml", "README.md", "stacktune", "search", "models", "datasets"]


def _run(*command: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=120)


@pytest.fixture(params=["elsewhere", "repo"])
def cwd(request, tmp_path) -> Path:
    """A folder to start the command in; the repository root holds a `stacktune/` folder that must not shadow."""
    return tmp_path if request.param == "elsewhere" else REPO


def test_version_prints_the_installed_version(cwd):
    expected = f"stacktune {version('stacktune')}\n"
    assert re.fullmatch(r"stacktune \d+\.\d+\.\d+\S*\n", expected)
    for command in ([sys.executable, "-m", "stacktune", "--version"], [str(SCRIPT), "--version"]):
        result = _run(*command, cwd=cwd)
        assert (result.returncode, result.stdout, result.stderr) == (0, expected, ""), command


def test_python_m_stacktune_is_the_stacktune_command(cwd):
    for args in (["--help"], ["datasets"], ["no-such-command"]):
        module = _run(sys.executable, "-m", "stacktune", *args, cwd=cwd)
        script = _run(str(SCRIPT), *args, cwd=cwd)
        assert (module.returncode, module.stdout, module.stderr) == (script.returncode, script.stdout, script.stderr)
    help_text = _run(sys.executable, "-m", "stacktune", "--help", cwd=cwd).stdout
    assert help_text.startswith("usage: stacktune ") and "--version" in help_text and "datasets" in help_text
    assert module.returncode == 2 and "invalid choice: 'no-such-command'" in module.stderr


@pytest.mark.slow
def test_the_wheel_ships_data_files_and_type_markers_and_needs_no_statsmodels_or_sktime(tmp_path):
    pytest.importorskip("setuptools", reason="builds the wheel without network, with this environment's setuptools")
    source = tmp_path / "src"
    source.mkdir()
    for name in SOURCES:
        path = REPO / name
        if path.is_dir():
            shutil.copytree(path, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(path, source / name)
    pip_wheel = [sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation", "-q"]
    build = _run(*pip_wheel, "-w", "out", cwd=tmp_path)
    assert build.returncode == 0, build.stderr
    (wheel,) = (tmp_path / "out").glob("stacktune-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        metadata = archive.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    data = REPO / "datasets" / "data"
    for path in data.rglob("*"):
        if path.is_file():
            assert f"stacktune/datasets/data/{path.relative_to(data).as_posix()}" in names
    assert {"stacktune/__main__.py", "stacktune/search/cli.py"} <= names
    assert {f"stacktune/{package}/py.typed" for package in ("search", "models", "datasets")} <= names
    requires = [line for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    assert requires and not [line for line in requires if re.search(r"\b(statsmodels|sktime)\b", line)]
