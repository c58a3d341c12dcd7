"""The package's imports point one way: interfaces -> pipeline -> analysis -> engine -> tracking -> spec.

A module may import its own layer and the layers below it, never one above: a stage never reaches
into a later stage of the pipeline, and models/ and datasets/ never import Ray, Optuna or MLflow.
"""

from __future__ import annotations

import ast
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
    {"analysis"},
    {"pipeline", "preflight"},
    {"interfaces"},
    {"cli", "__init__"},
]


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


MODULES = sorted(SEARCH.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(SEARCH)))
def test_no_module_imports_a_later_stage(path):
    own = _rank(_layer_of(path))
    later = sorted(layer for layer in _imported_layers(path) if _rank(layer) > own)
    assert not later, f"{path.relative_to(ROOT)} imports {later}, a later stage than its own ({_layer_of(path)})"


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
        "from ..analysis import stats\n",
        "def f():\n    from ..analysis.stats import compare\n",
        "from stacktune.search.analysis import stats\n",
        "import stacktune.search.analysis.stats\n",
    ],
)
def test_the_checker_sees_a_backward_import(source):
    # The check above must be able to fail: an engine module importing analysis, in any spelling, is caught.
    module = SEARCH / "engine" / "probe.py"
    assert _imported_layers(module, source) == {"analysis"}
    assert _rank("analysis") > _rank(_layer_of(module))
