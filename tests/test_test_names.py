"""The test files have names of their own: the test folders are not packages, so pytest imports each test file by
its bare name, and two files of one name make the whole collection fail."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def test_no_two_test_files_share_a_name():
    found: dict[str, list[str]] = defaultdict(list)
    for path in TESTS.rglob("*.py"):
        if path.name != "conftest.py" and "__pycache__" not in path.parts:
            found[path.name].append(str(path.relative_to(TESTS)))
    assert len(found) > 50  # the suite itself was found
    assert {name: paths for name, paths in found.items() if len(paths) > 1} == {}
