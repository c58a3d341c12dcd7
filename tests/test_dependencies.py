"""What the package declares against what it uses: its dependencies are exactly the third-party modules its code
imports, and `make demo` installs the package alone, without the test tools."""

from __future__ import annotations

import ast
import subprocess
import sys
from importlib import metadata

from conftest import REPO
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from stacktune.search.tracking.models import CODE_MODULE

PACKAGES = ["search", "models", "datasets", "stacktune"]


def _imported_modules() -> dict[str, str]:
    """Top-level module -> a file importing it, for every module outside the standard library and stacktune."""
    found = {}
    for folder in PACKAGES:
        for path in sorted((REPO / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    top = name.split(".")[0]
                    if top not in sys.stdlib_module_names and top not in ("stacktune", CODE_MODULE):
                        found.setdefault(top, str(path.relative_to(REPO)))
    return found


def _declared() -> set[str]:
    """The distributions stacktune depends on, its extras left out."""
    return {
        canonicalize_name(Requirement(line).name)
        for line in metadata.requires("stacktune")
        if Requirement(line).marker is None
    }


def test_the_declared_dependencies_are_exactly_what_the_code_imports():
    declared = _declared()
    providers = metadata.packages_distributions()
    used = set()
    for module, where in _imported_modules().items():
        candidates = {canonicalize_name(d) for d in providers.get(module, [])}
        assert candidates & declared, f"{where} imports {module}, which no declared dependency provides"
        used |= candidates & declared
    assert declared - used == set(), "declared but never imported"


def test_make_demo_installs_the_package_without_the_test_tools(tmp_path):
    def planned(target: str) -> str:
        done = subprocess.run(
            ["make", "-n", target, f"VENV={tmp_path / 'venv'}"], cwd=REPO, capture_output=True, text=True, check=True
        )
        return done.stdout

    demo = planned("demo")
    assert "pip install --quiet -e .\n" in demo and "[test]" not in demo
    assert "stacktune search examples/demo.yaml" in demo
    assert 'pip install --quiet -e ".[test]"' in planned("test")
