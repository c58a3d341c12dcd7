"""A study database that stops answering mid-search is waited out, not fatal.

Optuna's RDBStorage fails a call while its database is down. The driver's calls go through
`WaitingStorage`, which retries a call that failed for want of a connection, with a growing pause, until the
database answers again or `give_up_after` seconds have passed; it says on stderr when the database stops and
starts answering. Trials keep training meanwhile; only their asks and tells wait.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable

import optuna
from optuna.storages import BaseStorage

from ..errors import UnreachableError
from ..tracking import store

log = logging.getLogger("stacktune")

GIVE_UP_AFTER = 600.0


def _lost_connection(exc: BaseException | None) -> bool:
    """Whether `exc` (or what caused it: Optuna wraps database errors) is a connection the database dropped."""
    import sqlalchemy.exc

    while exc is not None:
        lost = (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError, sqlalchemy.exc.PendingRollbackError)
        if isinstance(exc, lost) or (isinstance(exc, sqlalchemy.exc.DBAPIError) and exc.connection_invalidated):
            return True
        exc = exc.__cause__
    return False


class WaitingStorage(BaseStorage):
    """Optuna storage `inner` whose calls wait out an outage of its database (see the module's text)."""

    def __init__(
        self,
        inner: BaseStorage,
        url: str,
        *,
        reset: Callable[[], None] | None = None,
        give_up_after: float = GIVE_UP_AFTER,
    ):
        """`reset`, called after a lost connection, drops the database session that connection left unusable."""
        self._inner, self._url, self._reset, self._give_up_after = inner, url, reset, give_up_after
        self._down_since: float | None = None
        self._lock = threading.Lock()

    def _call(self, name: str, args: tuple, kwargs: dict) -> Any:
        pause = 0.5
        while True:
            try:
                result = getattr(self._inner, name)(*args, **kwargs)
            except Exception as exc:
                if not _lost_connection(exc):
                    raise
                if self._reset is not None:
                    self._reset()
                self._wait(exc, pause)
                pause = min(pause * 2, 5.0)
                continue
            self._answered()
            return result

    def _wait(self, exc: BaseException, pause: float) -> None:
        with self._lock:
            now = time.monotonic()
            if self._down_since is None:
                self._down_since = now
                log.warning("the study database stopped answering (%s); waiting for it", self._reason(exc))
            down = now - self._down_since
        if down > self._give_up_after:
            raise UnreachableError(
                f"the study database has not answered for {down:.0f} s ({self._reason(exc)}); finished trials are "
                "kept in it: once it is back, resume the search with --resume"
            ) from None
        time.sleep(pause)

    def _answered(self) -> None:
        if self._down_since is None:
            return
        with self._lock:
            if self._down_since is not None:
                log.warning("the study database answers again after %.0f s", time.monotonic() - self._down_since)
                self._down_since = None

    def _reason(self, exc: BaseException) -> str:
        while exc.__cause__ is not None and not hasattr(exc, "orig"):
            exc = exc.__cause__
        return store.reason_without_password(getattr(exc, "orig", None) or exc, self._url, limit=200)

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "_lock"}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state, _lock=threading.Lock())


def _delegate(name: str):
    def call(self: WaitingStorage, *args, **kwargs):
        return self._call(name, args, kwargs)

    call.__name__ = name
    return call


for _name, _member in vars(BaseStorage).items():
    if not _name.startswith("_") and callable(_member):
        setattr(WaitingStorage, _name, _delegate(_name))
WaitingStorage.__abstractmethods__ = frozenset()


def waiting_rdb_storage(url: str) -> WaitingStorage:
    """The study database at `url`, through Optuna's cache, with its calls waiting out outages."""
    rdb = optuna.storages.RDBStorage(url, engine_kwargs={"pool_pre_ping": True})
    return WaitingStorage(optuna.storages.get_storage(rdb), url, reset=rdb.scoped_session.remove)
