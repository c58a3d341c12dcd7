"""Folders a command writes in, checked before anything is touched or started."""

from __future__ import annotations

import os
from pathlib import Path

from .errors import ConfigError, DiskUnusable
from .spec.schema import SearchSpec

# The least free space a search starts with: below it not even the studies' first records and the runs' folders fit.
MIN_FREE_BYTES = 64 << 10


def check_folder(flag: str, path: Path) -> None:
    """`path` is, or can be made as, a folder this process can write in, on a disk with room: ConfigError (exit 2)
    when it is not a folder or not writable, DiskUnusable (exit 4) when its disk is read-only or full."""
    existing = path.absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(f"{flag} {path}: {existing} is not a folder")
    try:
        disk = os.statvfs(existing)
    except OSError:
        disk = None
    if disk is not None and disk.f_flag & os.ST_RDONLY:
        raise DiskUnusable(
            f"{flag} {path}: {existing} is on a read-only disk; nothing was written: choose another folder"
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"{flag} {path}: {existing} is not writable")
    if disk is not None and disk.f_bavail * disk.f_frsize < MIN_FREE_BYTES:
        free = disk.f_bavail * disk.f_frsize
        raise DiskUnusable(
            f"{flag} {path}: the disk under {existing} is full ({free} bytes free); nothing was written: free some "
            "space, then run it again"
        )


# A file in every output folder stacktune makes, naming its search: a folder counts as a search only through it,
# never through the names of the files it holds, and a folder without it (unless empty) is never deleted.
MARKER = ".stacktune-search"


def marked_search(folder: Path) -> str | None:
    """The name of the search whose output folder `folder` is, from its marker; None when it has none."""
    try:
        text = (folder / MARKER).read_text()
    except OSError:
        return None
    words = text.split()
    return words[1] if len(words) == 2 and words[0] == "search" else ""


def check_paths(spec: SearchSpec, out: str | Path, shared_storage: str | None) -> None:
    """Raises ConfigError when the output folder or the checkpoint path cannot be used, before anything is touched:
    a path under a file, a folder that cannot be written, or an output folder inside another search's folder."""
    check_folder("--out", Path(out))
    if shared_storage and "://" not in shared_storage:
        check_folder("--storage-path", Path(shared_storage))
    out_path = Path(out).resolve()
    for folder in (out_path, *out_path.parents):
        if (name := marked_search(folder)) is not None:
            raise ConfigError(
                f"--out {out}: {folder} is the output folder of search {name!r}; a search's folder cannot hold "
                "another search: choose an --out outside it"
            )
    check_output_folder(out_path / spec.name, spec.name)


def check_output_folder(out_dir: Path, name: str) -> None:
    """Raises ConfigError unless `out_dir` is new, empty, or the output folder of search `name` (its marker says so):
    a folder of other files, or another search's (a link to it), is left alone."""
    if not out_dir.exists():
        return
    marked = marked_search(out_dir) if out_dir.is_dir() else None
    if marked is None and not (out_dir.is_dir() and not any(out_dir.iterdir())):
        raise ConfigError(
            f"{out_dir} exists and holds no stacktune search, so it is left alone: choose another --out or --name"
        )
    if marked and marked != name:
        raise ConfigError(
            f"{out_dir} is the output folder of search {marked!r}, not {name!r}, so it is left alone: "
            "choose another --out or --name"
        )
