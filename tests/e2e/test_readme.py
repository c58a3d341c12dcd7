"""The README's examples run as written, in a folder of their own with no copy of the repository: every `stacktune`
command line of its fenced blocks parses, the quick ones run (init, datasets, schema, then train on what the Python
example made), and every Python block that imports stacktune runs, printing nothing on stderr. One tiny search: the
walkthrough's demo.yaml, written by `stacktune init`, is cut down through its own keys before the Python example
runs it."""

from __future__ import annotations

import ast
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import REPO, _cli_env, run_cli

from stacktune.search.cli import build_parser
from stacktune.search.spec.loading import parse
from stacktune.search.spec.schema import SearchSpec

README = REPO / "README.md"
# Commands that run in seconds, once the files they name exist: run for real. Any other is only parsed.
QUICK = {"init", "datasets", "schema", "train"}
# What the tiny search keeps of the demo: one depth, one trial of one epoch, two seeds of retraining.
TINY = {"depths": [1], "trials_per_depth": 1, "train": {"epochs": 1, "batch_size": 32}, "evaluation": {"seeds": 2}}

pytestmark = pytest.mark.slow


def fenced_blocks(text: str) -> list[tuple[str, str]]:
    """(language, body) of every fenced block, in order."""
    return [(m.group(1), m.group(2)) for m in re.finditer(r"^```(\w*)\n(.*?)^```$", text, re.MULTILINE | re.DOTALL)]


# A shell line that runs stacktune, maybe after environment assignments (`RAY_AUTH_TOKEN=... stacktune submit`).
_COMMAND = re.compile(r"^(?:[A-Z_][A-Z0-9_]*=\S+\s+)*stacktune\s")


def _argv(line: str) -> list[str] | None:
    """The arguments after `stacktune` in a shell line (environment assignments before it skipped), or None."""
    line = re.sub(r"<[^<>]*>", "VALUE", line)  # a placeholder such as <from .env>
    if not _COMMAND.match(line):
        return None
    words = shlex.split(line, comments=True)
    while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", words[0]):
        words.pop(0)
    if not words or words[0] != "stacktune":
        return None
    return words[1:]


def shell_commands(text: str) -> list[tuple[list[str], list[str]]]:
    """Every `stacktune` command of the shell blocks, as (arguments, the output lines the README shows after it).
    In a block with `$ ` prompts only those lines are commands; otherwise each line is one."""
    found = []
    for language, body in fenced_blocks(text):
        if language not in ("", "sh", "bash", "console"):
            continue
        lines = body.replace("\\\n", " ").splitlines()
        prompted = any(line.startswith("$ ") for line in lines)
        for number, line in enumerate(lines):
            if prompted and not line.startswith("$ "):
                continue
            argv = _argv(line.removeprefix("$ ") if prompted else line)
            if argv is None:
                continue
            shown = []
            if prompted:
                for after in lines[number + 1 :]:
                    if after.startswith("$ "):
                        break
                    shown.append(after)
            found.append((argv, shown))
    return found


def python_blocks(text: str) -> list[str]:
    return [body for language, body in fenced_blocks(text) if language == "python" and "stacktune" in body]


def test_the_readme_has_the_examples_this_test_runs():
    text = README.read_text()
    commands = {argv[0] for argv, _ in shell_commands(text)}
    assert {"init", "datasets", "search", "train", "submit"} <= commands
    blocks = python_blocks(text)
    assert any("run_search(" in b for b in blocks) and any("from stacktune.models import" in b for b in blocks)


def test_every_stacktune_command_in_the_readme_parses():
    parser = build_parser()
    for argv, _ in shell_commands(README.read_text()):
        try:
            parser.parse_args(argv)
        except SystemExit:
            pytest.fail(f"the README's `stacktune {shlex.join(argv)}` does not parse")


def test_the_mapping_the_readme_offers_run_search_is_a_valid_spec():
    (block,) = [b for b in python_blocks(README.read_text()) if "run_search(" in b]
    (line,) = [line for line in block.splitlines() if line.startswith("# or: run_search(")]
    mapping = ast.literal_eval(line.removeprefix("# or: run_search(").removesuffix(")"))
    assert parse(SearchSpec, mapping, source="spec").name == "mine"


def _runs_now(argv: list[str], folder: Path) -> bool:
    """Whether a quick command can run here: every file it names (a .yaml argument before any flag) exists, or
    it writes it (init)."""
    if argv[0] not in QUICK:
        return False
    if argv[0] == "init":
        return True
    named = [a for a in argv[1:] if a.endswith(".yaml") and not a.startswith("-")]
    return all((folder / a).is_file() for a in named)


def test_the_readme_runs_as_written_from_a_folder_without_the_repository(tmp_path):
    text = README.read_text()
    commands = shell_commands(text)
    ran = []

    def run_quick(pending):
        left = []
        for argv, shown in pending:
            if not _runs_now(argv, tmp_path):
                left.append((argv, shown))
                continue
            if argv[0] == "init" and (tmp_path / argv[-1]).exists():
                continue  # written once already
            done = run_cli(*argv, cwd=tmp_path, timeout=300)
            assert done.returncode == 0, f"stacktune {shlex.join(argv)}:\n{done.stderr[-3000:]}"
            if argv[0] in ("init", "datasets") and shown and "..." not in shown:
                # What the README shows after the command is what it prints (stdout, then stderr's lines).
                assert (done.stdout + done.stderr).splitlines() == shown, f"stacktune {shlex.join(argv)}"
            ran.append(argv[0])
        return left

    later = run_quick(commands)
    assert (tmp_path / "demo.yaml").read_bytes() == (REPO / "examples" / "demo.yaml").read_bytes()
    spec = yaml.safe_load((tmp_path / "demo.yaml").read_text())
    spec.update(TINY)
    (tmp_path / "demo.yaml").write_text(yaml.safe_dump(spec))

    for block in python_blocks(text):
        done = subprocess.run(
            [sys.executable, "-c", block],
            cwd=tmp_path,
            env=_cli_env(None),
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, f"{block}\n{done.stderr[-3000:]}"
        assert done.stderr == "", f"{block}\n{done.stderr[-3000:]}"
        # `print(...)   # depth 1 wins (...)`: what the comment says is printed, up to its parenthesis.
        for said in re.findall(r"^print\(.*\)\s+# ([^(\n]+)", block, re.MULTILINE):
            assert said.strip() in done.stdout, f"{block}\nprinted:\n{done.stdout}"
    assert (tmp_path / "stacktune-runs" / "demo-sunspots" / "best" / "overall.yaml").is_file()

    # The walkthrough's retraining of the best config the search exported. (Its `stacktune search demo.yaml` is
    # parsed above, not run: the search it would run is the one the Python example just ran.)
    run_quick(later)
    assert {"init", "datasets", "train"} <= set(ran)
