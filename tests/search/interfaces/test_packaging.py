"""How stacktune installs and starts: `--version`, `python -m stacktune`, what the wheel ships, and `stacktune init`
from the installed wheel, where no copy of the repository's examples/ is at hand."""

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
SOURCES = ["pyproject.toml", "README.md", "stacktune", "search", "models", "datasets", "examples"]


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


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel `pip wheel` builds from a copy of the sources pyproject.toml names (nothing else of the repository)."""
    pytest.importorskip("setuptools", reason="builds the wheel without network, with this environment's setuptools")
    tmp_path = tmp_path_factory.mktemp("wheel")
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
    (built,) = (tmp_path / "out").glob("stacktune-*.whl")
    return built


@pytest.mark.slow
def test_the_wheel_ships_data_files_examples_and_type_markers_and_needs_no_statsmodels_or_sktime(wheel):
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        metadata = archive.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    data = REPO / "datasets" / "data"
    for path in data.rglob("*"):
        if path.is_file():
            assert f"stacktune/datasets/data/{path.relative_to(data).as_posix()}" in names
    examples = sorted((REPO / "examples").glob("*.yaml"))
    assert examples and {f"stacktune/examples/{path.name}" for path in examples} <= names
    assert {"stacktune/__main__.py", "stacktune/search/cli.py"} <= names
    assert {f"stacktune/{package}/py.typed" for package in ("search", "models", "datasets")} <= names
    requires = [line for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    assert requires and not [line for line in requires if re.search(r"\b(statsmodels|sktime)\b", line)]


@pytest.mark.slow
def test_init_from_the_installed_wheel_writes_the_demo_spec_and_never_overwrites(wheel, tmp_path):
    # A virtual environment of its own with the wheel alone (`init` needs none of the dependencies), run from a
    # folder without the repository: the spec comes from the installed package's data.
    venv = tmp_path / "venv"
    made = _run(sys.executable, "-m", "venv", "--without-pip", str(venv), cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    pip = [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "--no-deps", "-q"]
    installed = _run(*pip, str(wheel), cwd=tmp_path)
    assert installed.returncode == 0, installed.stderr
    work = tmp_path / "work"
    work.mkdir()
    command = str(venv / "bin" / "stacktune")

    first = _run(command, "init", cwd=work)
    assert (first.returncode, first.stdout, first.stderr) == (0, "demo.yaml\n", "next: stacktune search demo.yaml\n")
    assert (work / "demo.yaml").read_bytes() == (REPO / "examples" / "demo.yaml").read_bytes()
    from stacktune.search import load_spec

    assert load_spec(work / "demo.yaml").depths == [1, 2, 3]

    (work / "demo.yaml").write_text("# mine\n")
    again = _run(command, "init", cwd=work)
    assert again.returncode == 2 and again.stdout == ""
    assert again.stderr == "error: demo.yaml: already exists; init never overwrites a file: name another path\n"
    assert (work / "demo.yaml").read_text() == "# mine\n"

    missing = _run(command, "-q", "init", "missing/x.yaml", cwd=work)
    assert missing.returncode == 2 and missing.stderr == "error: missing/x.yaml: its folder missing does not exist\n"
    (work / "specs").mkdir()
    other = _run(command, "init", "specs", "--example", "sunspots-depths", "-q", cwd=work)
    assert (other.returncode, other.stdout, other.stderr) == (0, "specs/sunspots-depths.yaml\n", "")
    assert load_spec(work / "specs" / "sunspots-depths.yaml").depths == [2, 3, 6]
    unknown = _run(command, "init", "x.yaml", "--example", "nope", cwd=work)
    assert unknown.returncode == 2 and unknown.stderr.startswith("error: --example 'nope': no such example")
    assert "demo, " in unknown.stderr and "\n" not in unknown.stderr.rstrip("\n")
    assert not (work / "x.yaml").exists()


def test_the_image_and_this_test_build_from_every_folder_the_wheel_is_made_of():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    folders = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"].values())
    assert folders <= set(SOURCES)
    dockerfile = (REPO / "Dockerfile").read_text().splitlines()
    ignore = (REPO / ".dockerignore").read_text().splitlines()
    for folder in folders:
        assert f"COPY {folder} {folder}" in dockerfile and f"!{folder}" in ignore, folder
