"""`stacktune init`: writes a starter search spec, one of the examples that ship inside the package, so that the
walkthrough needs no copy of the repository."""

from __future__ import annotations

import logging
import os
import re
from importlib.resources import files
from pathlib import Path

from ..errors import ConfigError, DiskUnusable, disk_error

EXAMPLES = "stacktune.examples"
DEFAULT_EXAMPLE = "demo"

log = logging.getLogger("stacktune")


def example_names() -> list[str]:
    """The examples shipped in the package, by name (`demo`, `sunspots-depths`, ...)."""
    return sorted(entry.name[: -len(".yaml")] for entry in files(EXAMPLES).iterdir() if entry.name.endswith(".yaml"))


def example_text(name: str = DEFAULT_EXAMPLE) -> str:
    """The YAML of the shipped example `name`; raises ConfigError naming the examples there are."""
    names = example_names()
    if name not in names:
        raise ConfigError(f"--example {name!r}: no such example; expected one of {', '.join(names)}")
    return (files(EXAMPLES) / f"{name}.yaml").read_text(encoding="utf-8")


def init_command(path: str | None, *, example: str = DEFAULT_EXAMPLE) -> int:
    """The CLI's `init`: writes the example to `path` (default NAME.yaml here; into a folder, as NAME.yaml there),
    never over an existing file, and prints the path written; returns 0."""
    text = example_text(example)
    target = Path(path if path is not None else f"{example}.yaml")
    if target.is_dir():
        target = target / f"{example}.yaml"
    if target.exists() or target.is_symlink():
        raise ConfigError(f"{target}: already exists; init never overwrites a file: name another path")
    try:
        # "x": created here or refused, also when another process made the file since the check above.
        with open(target, "x", encoding="utf-8") as file:
            try:
                file.write(text)
                file.flush()
            except BaseException:
                os.unlink(target)  # no half-written spec left behind
                raise
    except FileExistsError:
        raise ConfigError(f"{target}: already exists; init never overwrites a file: name another path") from None
    except OSError as exc:
        if disk_error(exc) is not None:
            raise DiskUnusable(f"{target}: cannot write ({exc.strerror}); nothing was written") from None
        if isinstance(exc, FileNotFoundError) and not target.parent.is_dir():
            raise ConfigError(f"{target}: its folder {target.parent} does not exist") from None
        raise ConfigError(f"{target}: cannot write ({exc.strerror or type(exc).__name__})") from None
    print(target)
    command = "search" if re.search(r"^depths:", text, re.MULTILINE) else "train"
    log.info("next: stacktune %s %s", command, target)
    return 0
