"""MLflow writes that survive a tracking server which stops answering for a while.

`BufferedWriter` sits between the driver-side callbacks (trials, evaluation retrainings) and an
MlflowClient; publishing the report goes through it too. Every write (run creation, a batch of
metrics/params/tags, an artifact, a run's end) is queued and the queue is written right away
while the store answers. When a write fails because the store does not answer (refused
connection, timeout, 5xx, a locked database), the failed write and everything queued after it
are kept, in order, and retried on a later event once a short back-off has passed; in between,
events only append to the queue, so the Tune loop (and with it the trials, which wait for the
driver to take their results) never waits on a dead server.

A run is created lazily: `create_run` hands back a local key at once, and the MLflow run id
becomes known when the creation is written. The run carries the key as a tag, so a creation
whose answer was lost (the server applied it, then stopped) is found again, not repeated. A run
that exists already (the search run, a depth run) is written to after `adopt`.

With `background=True`, the writes are made by a thread of the writer's own: a caller (Ray Tune's
event loop, which runs the callbacks) only hands its write over and goes on, even while the store
is slow, and the thread writes what gathered since its last write as one batch per run. `close`
stops the thread once it has written what it holds; after that the writer writes in the caller's
thread again, as without it.

`close` makes a last attempt over a bounded wait and prints what could not be written;
a write the store refuses outright (a 4xx: invalid value, missing run) is reported the same
way. Nothing is dropped silently.
"""

from __future__ import annotations

import collections
import logging
import math
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from .answers import is_transient, root_reason, short_reason
from .store import asking_once, redact
from .tags import RUN_KEY

log = logging.getLogger("stacktune")

# MLflow's limits for one log_batch call.
MAX_METRICS, MAX_PARAMS, MAX_TAGS, MAX_ENTITIES = 1000, 100, 100, 1000


@dataclass
class _Op:
    kind: str  # "create" | "batch" | "terminate" | "call" (an artifact, a tag read and rewritten)
    ref: str
    metrics: list = field(default_factory=list)
    params: list = field(default_factory=list)
    tags: list = field(default_factory=list)
    args: dict[str, Any] = field(default_factory=dict)

    @property
    def size(self) -> tuple[int, int, int]:
        return len(self.metrics), len(self.params), len(self.tags)


class Unanswered(Exception):
    """The store did not answer; the write is kept for later."""


def _urgent(ops: list[_Op]) -> bool:
    """Whether `ops` go out at once rather than after the gathering interval: a run's creation, params, tags, a call
    or its end do; metric values alone wait."""
    return any(op.kind != "batch" or op.params or op.tags for op in ops)


def _chunks(items: list, size: int) -> list[list]:
    return [items[i : i + size] for i in range(0, len(items), size)]


class BufferedWriter:
    """Queues MLflow writes, writes them in order while the store answers, keeps them while it does not."""

    def __init__(
        self,
        client,
        *,
        http_timeout: float = 5.0,
        retry_after: float = 2.0,
        max_retry_after: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        interval: float = 0.0,
        holding: str = "trial logs are kept and written when it answers again",
        background: bool = False,
    ):
        """`interval`: metric values are gathered for this many seconds and then written together (0: at once).

        A run's creation, its params and tags and its end go out at once, with whatever is gathered
        before them: a driver killed meanwhile loses at most the last second of metric values.
        `holding` ends the line printed when the store stops answering: what happens to the writes meanwhile
        (an attribute, so a later stage of the search can say it in its own words). `background`: the writes are
        made by a thread of the writer's own, started with the first write and stopped by `close`.
        """
        self.holding = holding
        self._client = client
        self._interval = interval
        self._last_drain = -math.inf
        self._http_timeout = http_timeout
        self._retry_after = retry_after
        self._max_retry_after = max_retry_after
        self._clock = clock
        self._sleep = sleep
        self._queue: list[_Op] = []
        self._ids: dict[str, str] = {}  # local key -> MLflow run id
        self._names: dict[str, str] = {}  # local key -> run name, for messages
        self._maybe_created: set[str] = set()  # creations whose answer never came
        self._failed_runs: set[str] = set()  # creations the store refused
        self._delay = retry_after
        self._next_try = 0.0
        self._down_since: float | None = None
        self.refused: list[str] = []  # writes the store refused, as reported on stderr
        self._background = background
        self._thread: threading.Thread | None = None
        self._inbox: collections.deque[_Op] = collections.deque()  # handed over, not yet taken by the thread
        self._wake = threading.Event()
        self._stopping = False
        self._thread_error: BaseException | None = None

    # ---- what callers queue -------------------------------------------------------------

    def create_run(
        self, experiment_id: str, *, run_name: str, tags: dict[str, str], start_time: int | None = None
    ) -> str:
        """Queues a run's creation and returns its local key (usable in every later call).

        `start_time` (ms since the epoch): when the run began, if not now.
        """
        ref = f"local-{uuid.uuid4().hex}"
        self._names[ref] = run_name
        args = {
            "experiment_id": experiment_id,
            "run_name": run_name,
            "tags": {**tags, RUN_KEY: ref},
            "start_time": int(time.time() * 1000) if start_time is None else start_time,
        }
        self._put([_Op("create", ref, args=args)])
        return ref

    def log_batch(self, ref: str, *, metrics: Iterable = (), params: Iterable = (), tags: Iterable = ()) -> None:
        """Queues metrics, params and tags of run `ref` (timestamps are the metrics' own)."""
        metrics, params, tags = list(metrics), list(params), list(tags)
        if not (metrics or params or tags):
            return
        ops = [_Op("batch", ref, metrics=part) for part in _chunks(metrics, MAX_METRICS)]
        ops += [_Op("batch", ref, params=part) for part in _chunks(params, MAX_PARAMS)]
        ops += [_Op("batch", ref, tags=part) for part in _chunks(tags, MAX_TAGS)]
        self._put(ops)

    def set_terminated(self, ref: str, status: str = "FINISHED") -> None:
        """Queues the end of run `ref`, stamped now (not when it is finally written)."""
        self._put([_Op("terminate", ref, args={"status": status, "end_time": int(time.time() * 1000)})])

    def adopt(self, run_id: str, *, run_name: str | None = None) -> str:
        """The key to use for a run that exists in MLflow already (created elsewhere): its id."""
        self._ids[run_id] = run_id
        self._names.setdefault(run_id, run_name or run_id)
        return run_id

    def log_artifact(self, ref: str, path: str | Path, *, artifact_path: str | None = None) -> None:
        """Queues the upload of local file `path` to run `ref` (the file is read when the upload is made)."""

        def upload(client, run_id: str) -> None:
            client.log_artifact(run_id, str(path), artifact_path=artifact_path)

        where = f"{artifact_path}/{Path(path).name}" if artifact_path else Path(path).name
        self._put([_Op("call", ref, args={"what": f"artifact {where}", "fn": upload})])

    def append_to_tag(self, ref: str, key: str, text: str) -> None:
        """Queues `text` added to the end of tag `key` of run `ref`, as the tag is when the write is made."""

        def append(client, run_id: str) -> None:
            value = client.get_run(run_id).data.tags.get(key, "")
            if not value.endswith(text):  # else made already, and only its answer was lost
                client.set_tag(run_id, key, value + text)

        self._put([_Op("call", ref, args={"what": f"tag {key}", "fn": append})])

    # ---- state ----------------------------------------------------------------------------

    def run_id(self, ref: str) -> str | None:
        """The MLflow run id behind a local key, once its creation has been written."""
        return self._ids.get(ref)

    @property
    def pending(self) -> int:
        """Writes still queued."""
        return len(self._queue) + len(self._inbox)

    @property
    def answering(self) -> bool:
        """False from a write the store did not answer until one it answers."""
        return self._down_since is None

    @property
    def store_uri(self) -> str:
        """The tracking URI written to, as messages may show it (no password)."""
        return self._uri()

    # ---- the writing thread ------------------------------------------------------------------

    # How often the thread looks again without being woken: to retry after a back-off, or to write what gathered
    # over the interval.
    TICK = 0.2

    def _put(self, ops: list[_Op]) -> None:
        """Queues `ops`: hands them to the writing thread, or writes them here, as `flush` would."""
        if self._thread_error is not None:
            raise self._thread_error
        if not self._background:
            self._queue.extend(ops)
            self.flush(at_once=_urgent(ops))
            return
        self._inbox.extend(ops)
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="mlflow-writer", daemon=True)
            self._thread.start()
        self._wake.set()

    def _work(self) -> None:
        """The writing thread: writes what it is handed, as `flush` does, until `close` stops it."""
        while True:
            self._wake.wait(self.TICK)
            self._wake.clear()
            # Read before taking the inbox: once stopping, this pass writes all it holds without waiting out the
            # gathering interval, so `close` finds nothing left for the caller's thread (unless the store is down).
            stopping = self._stopping
            taken = []
            while self._inbox:
                taken.append(self._inbox.popleft())
            self._queue.extend(taken)
            try:
                self._flush_now(at_once=stopping or _urgent(taken))
            except BaseException as exc:  # noqa: BLE001 - handed to the caller at its next write or at close
                self._thread_error = exc
                return
            if stopping:
                return

    def _stop_thread(self) -> None:
        """Stops the writing thread once it has made its current attempt; from here on writes are made here. Raises
        what the thread failed with."""
        thread, self._background = self._thread, False
        if thread is not None:
            self._stopping = True
            self._wake.set()
            thread.join()
            self._thread = None
        while self._inbox:
            self._queue.append(self._inbox.popleft())
        if self._thread_error is not None:
            error, self._thread_error = self._thread_error, None
            raise error

    # ---- writing --------------------------------------------------------------------------

    def flush(self, *, force: bool = False, at_once: bool = False) -> bool:
        """Writes what is queued; True when nothing is left.

        Without `force`, waits out the back-off of an unanswering store; without `at_once` or `force`,
        also the gathering interval. With a writing thread, it only wakes the thread (`force` stops it first).
        """
        if self._thread is not None:
            if not force:
                self._wake.set()
                return not self.pending
            self._stop_thread()
        return self._flush_now(force=force, at_once=at_once)

    def _flush_now(self, *, force: bool = False, at_once: bool = False) -> bool:
        if not self._queue:
            return True
        now = self._clock()
        if not force and (now < self._next_try or (not at_once and now - self._last_drain < self._interval)):
            return False
        self._last_drain = now
        try:
            # One HTTP attempt with a short timeout: the buffer does the retrying, later, not MLflow now.
            with asking_once(self._http_timeout):
                written = self._drain()
        except Unanswered as exc:
            now = self._clock()
            if self._down_since is None:
                self._down_since = now
                self._delay = self._retry_after
                log.warning(f"MLflow ({self._uri()}) does not answer ({exc}); {self.holding}")
            else:
                self._delay = min(self._delay * 2, self._max_retry_after)
            self._next_try = now + self._delay
            return False
        if self._down_since is not None:
            log.warning(
                f"MLflow answers again after {self._clock() - self._down_since:.0f} s; "
                f"the {written} write(s) kept meanwhile are made"
            )
            self._down_since = None
        self._delay = self._retry_after
        self._next_try = 0.0
        return True

    def close(self, wait: float = 60.0, *, quiet: bool = False) -> bool:
        """Writes everything, retrying for up to `wait` seconds; prints what is left (unless `quiet`: the caller
        says it). True if all went."""
        self._stop_thread()
        deadline = self._clock() + wait
        while not self.flush(force=True):
            left = deadline - self._clock()
            if left <= 0:
                break
            self._sleep(min(self._delay, left))
        if not self._queue:
            return True
        if quiet:
            return False
        log.warning(
            f"MLflow ({self._uri()}) did not answer within {wait:.0f} s; these writes could not be made:\n"
            + "\n".join(f"  {line}" for line in self.describe_pending())
        )
        return False

    def describe_pending(self) -> list[str]:
        """One line per run with writes still queued: what they hold."""
        lines = []
        for ref in dict.fromkeys(op.ref for op in self._queue):
            ops = [op for op in self._queue if op.ref == ref]
            parts = []
            if any(op.kind == "create" for op in ops):
                parts.append("the run itself")
            metrics = [m for op in ops for m in op.metrics]
            if metrics:
                steps = sorted({m.step for m in metrics})
                keys = sorted({m.key for m in metrics})
                parts.append(f"{len(metrics)} metric value(s) of {', '.join(keys)} (steps {steps[0]}-{steps[-1]})")
            if params := [p for op in ops for p in op.params]:
                parts.append(f"{len(params)} param(s)")
            if tags := [t for op in ops for t in op.tags]:
                parts.append("tags " + ", ".join(f"{t.key}={str(t.value)[:60]}" for t in tags))
            parts += [op.args["what"] for op in ops if op.kind == "call"]
            ends = [op.args["status"] for op in ops if op.kind == "terminate"]
            if ends:
                parts.append(f"its end ({ends[-1]})")
            run = self._ids.get(ref, "not created")
            lines.append(f"run {self._names.get(ref, ref)} ({run}): " + "; ".join(parts))
        return lines

    def _drain(self) -> int:
        """Writes the queue front to back; per run, order is kept. Raises Unanswered, keeping the rest."""
        written = 0
        while self._queue:
            head = self._queue[0]
            if head.ref in self._failed_runs:
                self._queue.pop(0)
                continue
            if head.kind == "create":
                self._call(head, self._create, head)
                self._queue.pop(0)
            elif head.kind == "terminate":
                run_id = self._ids[head.ref]
                self._call(
                    head,
                    self._client.set_terminated,
                    run_id,
                    status=head.args["status"],
                    end_time=head.args["end_time"],
                )
                self._queue.pop(0)
            elif head.kind == "call":
                self._call(head, head.args["fn"], self._client, self._ids[head.ref])
                self._queue.pop(0)
            else:
                batch = self._gather(head.ref)
                metrics = [m for op in batch for m in op.metrics]
                params = [p for op in batch for p in op.params]
                tags = list({t.key: t for op in batch for t in op.tags}.values())  # a later value wins
                try:
                    self._call(
                        head, self._client.log_batch, self._ids[head.ref], metrics=metrics, params=params, tags=tags
                    )
                except _Refused:
                    if len(batch) > 1:  # write them one by one, so only the refused one is reported
                        for op in batch:
                            op.args["alone"] = True
                        continue
                    self._refuse(head, self._last_refusal)
                ids = {id(op) for op in batch}
                self._queue = [op for op in self._queue if id(op) not in ids]
                written += len(batch)
                continue
            written += 1
        return written

    def _gather(self, ref: str) -> list[_Op]:
        """Consecutive metric/param/tag writes of one run (others' writes may sit between), within MLflow's limits."""
        batch: list[_Op] = []
        totals = [0, 0, 0]
        for op in self._queue:
            if op.ref != ref:
                continue
            if op.kind != "batch":
                break
            size = op.size
            grown = [a + b for a, b in zip(totals, size, strict=False)]
            if batch and (
                op.args.get("alone")
                or batch[0].args.get("alone")
                or grown[0] > MAX_METRICS
                or grown[1] > MAX_PARAMS
                or grown[2] > MAX_TAGS
                or sum(grown) > MAX_ENTITIES
                or {p.key for p in op.params} & {p.key for b in batch for p in b.params}
            ):
                break
            batch.append(op)
            totals = grown
        return batch

    def _create(self, op: _Op) -> None:
        if op.ref in self._maybe_created:
            found = self._client.search_runs(
                [op.args["experiment_id"]], filter_string=f"tags.`{RUN_KEY}` = '{op.ref}'", max_results=1
            )
            if found:
                self._ids[op.ref] = found[0].info.run_id
                return
        self._maybe_created.add(op.ref)
        run = self._client.create_run(
            op.args["experiment_id"],
            run_name=op.args["run_name"],
            tags=op.args["tags"],
            start_time=op.args["start_time"],
        )
        self._ids[op.ref] = run.info.run_id

    _last_refusal: BaseException | None = None

    def _call(self, op: _Op, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            if is_transient(exc):
                raise Unanswered(root_reason(exc)) from exc
            from mlflow.exceptions import MlflowException

            if not isinstance(exc, MlflowException):
                raise
            if op.kind == "batch":
                self._last_refusal = exc
                raise _Refused() from exc
            self._refuse(op, exc)
            if op.kind == "create":
                self._failed_runs.add(op.ref)

    def _refuse(self, op: _Op, exc: BaseException | None) -> None:
        what = {"create": "the creation of", "terminate": "the end of"}.get(op.kind, "a write to")
        reason = short_reason(exc) if exc else "unknown error"
        line = f"MLflow refused {what} run {self._names.get(op.ref, op.ref)}: {reason}"
        if op.kind == "create":
            line += " (its metrics cannot be written)"
        self.refused.append(line)
        log.warning(line)

    def _uri(self) -> str:
        return redact(str(getattr(self._client, "tracking_uri", "") or "the tracking store"))


class _Refused(Exception):
    """A batch the store refused (a 4xx answer)."""
