"""One search per name at a time: a lock beside its output folder and, when its studies live in a shared database,
one in the study storage. A second search of the name, or a `--resume` of a live one, is refused with who holds it.

The folder lock is the operating system's file lock (flock, or LockFileEx on Windows, through filelock): the system
releases it when its process ends, however it ends. The storage lock is a
study of its own (`NAME.lock`) whose holder writes a heartbeat; it is taken over once its process is gone (same
host) or its heartbeat is older than STALE_AFTER seconds (any host).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import threading
import time
from pathlib import Path
from typing import Iterator

import optuna
from filelock import FileLock, Timeout

from ..errors import ConfigError, DiskUnusable, StacktuneError, first_line
from ..spec.schema import SearchSpec

HEARTBEAT_EVERY = 10.0
STALE_AFTER = 60.0


def holder() -> dict:
    """Who takes a lock: this process, its host and when."""
    return {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%d %H:%M:%S")}


def describe(who: dict) -> str:
    """`pid 123 on host, since 2026-12-01 10:00:00`, from whatever of it is known."""
    parts = [f"pid {who['pid']}" if who.get("pid") else "a process", f"on {who['host']}" if who.get("host") else ""]
    since = f", since {who['since']}" if who.get("since") else ""
    return " ".join(p for p in parts if p) + since


def _held(name: str, who: dict, where: str) -> ConfigError:
    return ConfigError(
        f"search {name!r} is already running ({describe(who)}; lock {where}): wait for it to end or stop it, "
        "then try again"
    )


@contextlib.contextmanager
def folder_lock(out: str | Path, name: str) -> Iterator[Path]:
    """Holds OUT/.NAME.lock for the search's whole life, or raises ConfigError naming the search that holds it."""
    path = Path(out).resolve() / f".{name}.lock"
    lock = os_file_lock(path, timeout=0, on_acquired=_introduce)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock.acquire()
    except Timeout:
        raise _held(name, _read_holder(path), str(path)) from None
    except OSError as exc:
        raise _unusable(out, path, exc) from None
    try:
        yield path
    finally:
        lock.release()


def os_file_lock(path: Path, **options) -> FileLock:
    """The operating system's lock on the file `path`, held by this process until released or until the process
    ends: never filelock's soft fallback (a marker file that a killed process would leave behind, blocking every
    later search), and the file stays on release, so a waiting process never locks an orphan."""
    return FileLock(path, thread_local=False, fallback_to_soft=False, preserve_lock_file=True, **options)


def _introduce(fd: int) -> None:
    """Writes who holds the lock into its file, once it is held."""
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, json.dumps(holder()).encode())


def _unusable(out: str | Path, path: Path, exc: OSError) -> StacktuneError:
    """The one-line error for a lock file that cannot be made or written: DiskUnusable (exit 4) for a full or
    read-only disk, else ConfigError."""
    reason = f"cannot use --out {out}: {exc.strerror or first_line(exc)} ({path})"
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS):
        return DiskUnusable(f"{reason}; nothing was run: free some space (or choose another --out), then run it again")
    return ConfigError(reason)


def _read_holder(path: Path) -> dict:
    try:
        with open(path, "rb") as file:
            who = json.loads(file.read(4096) or b"{}")
    except (OSError, ValueError):  # gone, or (on Windows) its locked first byte cannot be read: the holder is unknown
        return {}
    return who if isinstance(who, dict) else {}


def _alive(who: dict) -> bool:
    """False only when the holder is known to be gone: same host, no such process."""
    if who.get("host") != socket.gethostname() or not isinstance(who.get("pid"), int):
        return True
    try:
        os.kill(who["pid"], 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_stale(who: dict, now: float | None = None) -> bool:
    """Whether a storage lock's holder is gone: its process ended (same host) or its heartbeat stopped."""
    beat = who.get("heartbeat")
    if not isinstance(beat, (int, float)):
        return True
    return not _alive(who) or (now or time.time()) - beat > STALE_AFTER


class StorageLock:
    """The lock study `NAME.lock` in an Optuna storage, kept fresh by a heartbeat thread while held."""

    def __init__(self, storage, name: str):
        self._storage, self._name, self._study = storage, name, f"{name}.lock"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._study_id: int | None = None

    def acquire(self) -> None:
        for _ in range(3):
            try:
                self._study_id = self._storage.create_new_study([optuna.study.StudyDirection.MINIMIZE], self._study)
            except optuna.exceptions.DuplicatedStudyError:
                self._take_over_if_stale()
                continue
            self._introduce()
            self._thread = threading.Thread(target=self._beating, name=f"lock {self._study}", daemon=True)
            self._thread.start()
            return
        raise ConfigError(f"search {self._name!r}: could not take its lock in the study storage; try again")

    def _take_over_if_stale(self) -> None:
        try:
            study_id = self._storage.get_study_id_from_name(self._study)
            who = self._storage.get_study_user_attrs(study_id)
        except KeyError:
            return  # released meanwhile: try again
        if not who.get("heartbeat"):
            time.sleep(2.0)  # just created: give its holder a moment to write who it is
            who = self._storage.get_study_user_attrs(study_id)
        if not is_stale(who):
            raise _held(self._name, who, f"study {self._study!r} in the study storage")
        with contextlib.suppress(KeyError):
            self._storage.delete_study(study_id)

    def _introduce(self) -> None:
        for key, value in {**holder(), "heartbeat": time.time()}.items():
            self._storage.set_study_user_attr(self._study_id, key, value)

    def _beating(self) -> None:
        while not self._stop.wait(HEARTBEAT_EVERY):
            with contextlib.suppress(Exception):  # a database blip: the next beat tries again
                self._storage.set_study_user_attr(self._study_id, "heartbeat", time.time())

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._study_id is not None:
            with contextlib.suppress(Exception):
                self._storage.delete_study(self._study_id)


@contextlib.contextmanager
def storage_lock(storage, name: str) -> Iterator[None]:
    """Holds search `name`'s lock in a shared study storage, or raises ConfigError naming its holder."""
    lock = StorageLock(storage, name)
    lock.acquire()
    try:
        yield
    finally:
        lock.release()


# The searches whose locks this process holds, by output folder and name: taking one again is a no-op.
_held_here: set[tuple[Path, str]] = set()


@contextlib.contextmanager
def search_lock(spec: SearchSpec, out: str | Path) -> Iterator[None]:
    """Holds every lock of search `spec.name`: beside its output folder, and in its study database if it has one.
    Within one process the lock may be taken again while held (the CLI takes it before Ray, the search again)."""
    key = (Path(out).resolve(), spec.name)
    if key in _held_here:
        yield
        return
    with folder_lock(out, spec.name):
        _held_here.add(key)
        try:
            if not spec.storage:  # the studies are a journal inside the locked folder
                yield
                return
            with storage_lock(optuna.storages.RDBStorage(spec.storage), spec.name):
                yield
        finally:
            _held_here.discard(key)
