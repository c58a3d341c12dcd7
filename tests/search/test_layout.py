"""The package's imports point one way, down the floors:

    interfaces -> pipeline -> (evaluation | publishing) -> verdict -> engine -> tracking -> spec

A module may import its own floor and the floors below it, never one above: a stage never reaches into a later
stage of the pipeline. The evaluation stage and publishing share a floor and never import each other. The verdict
is pure functions: it imports only itself, the spec and the lowest floor, and never MLflow, Ray, Optuna or a file.
models/ and datasets/ never import Ray, Optuna or MLflow.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SEARCH = ROOT / "search"

# Lowest first. A module's layer is its subpackage, or its own name for the top-level modules.
LAYERS = [
    {"errors", "contracts", "progress"},
    {"spec"},
    {"tracking"},
    {"engine", "folders"},
    {"verdict"},
    {"evaluation", "publishing"},
    {"pipeline", "preflight"},
    {"interfaces"},
    {"cli", "__init__"},
]


# Separate stages on one floor: none of them imports another.
APART = {"evaluation", "publishing"}
# The verdict's whole reach inside stacktune.search, and what it must never import from outside.
VERDICT_MAY_IMPORT = {"verdict", "spec", "errors", "contracts", "progress"}
NOT_IN_VERDICT = {"mlflow", "ray", "optuna", "matplotlib", "torch", "os", "pathlib", "shutil", "tempfile", "io"}


def _rank(part: str) -> int:
    return next(i for i, names in enumerate(LAYERS) if part in names)


def _layer_of(path: Path) -> str:
    rel = path.relative_to(SEARCH)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def _imported_layers(path: Path, source: str | None = None) -> set[str]:
    """The stacktune.search layers a module imports, absolute or relative, at any depth of the file."""
    rel = path.relative_to(SEARCH)
    package = list(rel.parts[:-1])
    found: set[str] = set()
    for node in ast.walk(ast.parse(source if source is not None else path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                target = base + (node.module.split(".") if node.module else [])
                names = [target + [a.name] for a in node.names] if not node.module else [target]
            elif node.module and node.module.startswith("stacktune.search"):
                target = node.module.split(".")[2:]
                names = [target + [a.name] for a in node.names] if not target else [target]
            else:
                continue
            for name in names:
                if name:
                    found.add(name[0])
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[:2] == ["stacktune", "search"] and len(parts) > 2:
                    found.add(parts[2])
    return {f for f in found if any(f in names for names in LAYERS)}


def _outside_imports(source: str) -> set[str]:
    """The top-level names of the packages outside stacktune that a module imports, at any depth of the file."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            found.add(node.module.split(".")[0])
    return found - {"stacktune"}


def _opens_files(source: str) -> bool:
    return any(
        isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "open"
        for n in ast.walk(ast.parse(source))
    )


MODULES = sorted(SEARCH.rglob("*.py"))
VERDICT = sorted((SEARCH / "verdict").glob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(SEARCH)))
def test_no_module_imports_a_later_stage(path):
    own = _rank(_layer_of(path))
    later = sorted(layer for layer in _imported_layers(path) if _rank(layer) > own)
    assert not later, f"{path.relative_to(ROOT)} imports {later}, a later stage than its own ({_layer_of(path)})"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(SEARCH)))
def test_the_stages_on_one_floor_keep_apart(path):
    own = _layer_of(path)
    beside = sorted(layer for layer in _imported_layers(path) if own in APART and layer in APART - {own})
    assert not beside, f"{path.relative_to(ROOT)} imports {beside}, a stage beside its own ({own})"


def test_the_verdict_package_exists():
    # The purity checks below walk verdict/: an empty walk would pass them all.
    assert {p.stem for p in VERDICT} >= {"stats", "comparison", "checks", "baselines", "diagnostics"}


@pytest.mark.parametrize("path", VERDICT, ids=lambda p: p.name)
def test_the_verdict_is_pure_functions(path):
    source = path.read_text()
    inside = sorted(_imported_layers(path, source) - VERDICT_MAY_IMPORT)
    outside = sorted(_outside_imports(source) & NOT_IN_VERDICT)
    assert not inside, (
        f"{path.relative_to(ROOT)} imports {inside}: the verdict reaches only {sorted(VERDICT_MAY_IMPORT)}"
    )
    assert not outside, f"{path.relative_to(ROOT)} imports {outside}: the verdict touches no MLflow, Ray or files"
    assert not _opens_files(source), f"{path.relative_to(ROOT)} opens a file: the verdict touches no files"


def test_importing_the_verdict_loads_no_mlflow_ray_or_optuna():
    # What the module-by-module check cannot see: a dependency pulled in through the spec or the datasets.
    names = ", ".join(f"stacktune.search.verdict.{p.stem}" for p in VERDICT if p.stem != "__init__")
    heavy = ("mlflow", "ray", "optuna", "matplotlib", "torch")
    code = f"import sys, {names}; print(sorted(m for m in {heavy!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("folder", ["models", "datasets"])
def test_models_and_datasets_are_plain_pytorch_and_numpy(folder):
    for path in (ROOT / folder).rglob("*.py"):
        tree = ast.parse(path.read_text())
        imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        assert not imported & {"ray", "optuna", "mlflow"}, (
            f"{path.relative_to(ROOT)} imports {imported & {'ray', 'optuna', 'mlflow'}}"
        )


@pytest.mark.parametrize(
    "source",
    [
        "from ..verdict import stats\n",
        "def f():\n    from ..verdict.stats import compare\n",
        "from stacktune.search.verdict import stats\n",
        "import stacktune.search.verdict.stats\n",
    ],
)
def test_the_checker_sees_a_backward_import(source):
    # The check above must be able to fail: an engine module importing the verdict, in any spelling, is caught.
    module = SEARCH / "engine" / "probe.py"
    assert _imported_layers(module, source) == {"verdict"}
    assert _rank("verdict") > _rank(_layer_of(module))


@pytest.mark.parametrize(
    "source",
    [
        "from ..publishing import report\n",
        "def f():\n    from ..publishing.plots import draw_plots\n",
        "from stacktune.search.publishing.exports import publish\n",
        "import stacktune.search.evaluation\n",
        "from ..engine.studies import by_cell\n",
        "from ..tracking import tags\n",
    ],
)
def test_the_checker_sees_the_verdict_reach_out_of_its_floor(source):
    module = SEARCH / "verdict" / "probe.py"
    assert _imported_layers(module, source) - VERDICT_MAY_IMPORT


@pytest.mark.parametrize(
    "source",
    [
        "import mlflow\n",
        "from ray import tune\n",
        "def f():\n    import optuna.trial\n",
        "from pathlib import Path\n",
    ],
)
def test_the_checker_sees_the_verdict_import_mlflow_ray_optuna_or_files(source):
    assert _outside_imports(source) & NOT_IN_VERDICT


def test_the_checker_sees_the_verdict_open_a_file():
    assert _opens_files("def f(p):\n    with open(p) as fh:\n        return fh.read()\n")
    assert not _opens_files("def f(x):\n    return x.open\n")


@pytest.mark.parametrize(
    ("module", "source"),
    [
        ("evaluation/stage.py", "from ..publishing.report import write_report\n"),
        ("publishing/summary.py", "from ..evaluation import aggregate\n"),
    ],
)
def test_the_checker_sees_a_stage_import_the_one_beside_it(module, source):
    path = SEARCH / module
    own = _layer_of(path)
    assert own in APART and (_imported_layers(path, source) & (APART - {own}))
