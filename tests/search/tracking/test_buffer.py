"""Trial writes survive a tracking server that stops answering: kept in order, written when it returns."""

from __future__ import annotations

import socket
import threading
import time

import pytest
from conftest import MlflowServer, free_port
from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient

from stacktune.search.tracking.buffer import BufferedWriter
from stacktune.search.tracking.tags import RUN_KEY


@pytest.fixture
def server(tmp_path):
    srv = MlflowServer(tmp_path)
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


def _epoch(step: int, value: float) -> list:
    stamp = int(time.time() * 1000)
    return [Metric("val_loss", value, stamp, step), Metric("train_loss", value * 2, stamp, step)]


@pytest.mark.slow
def test_writes_made_while_the_server_is_down_arrive_in_order_once_it_is_back(server, warned):
    client = MlflowClient(tracking_uri=server.uri)
    experiment = client.create_experiment("buffered")
    writer = BufferedWriter(client, retry_after=0.2, max_retry_after=1.0)

    first = writer.create_run(experiment, run_name="d1-t00", tags={"stacktune.role": "trial"})
    writer.log_batch(first, params=[Param("units", "16"), Param("lr", "0.01")])
    for step in (1, 2):
        writer.log_batch(first, metrics=_epoch(step, 1.0 / step))
    assert writer.pending == 0 and writer.run_id(first)

    server.stop()
    started = time.monotonic()
    for step in (3, 4, 5):
        writer.log_batch(first, metrics=_epoch(step, 1.0 / step), tags=[RunTag("stacktune.node_id", f"n{step}")])
    second = writer.create_run(experiment, run_name="d2-t00", tags={"stacktune.role": "trial"})
    writer.log_batch(second, params=[Param("units", "8")], metrics=_epoch(1, 0.5))
    writer.log_batch(first, tags=[RunTag("stacktune.state", "completed")])
    writer.set_terminated(first, "FINISHED")
    writer.set_terminated(second, "FAILED")
    assert time.monotonic() - started < 10, "writes waited for the stopped server"
    assert writer.pending > 0 and not writer.answering
    assert writer.run_id(second) is None  # created once the server answers
    assert "does not answer" in warned()

    ended_before = int(time.time() * 1000)
    server.start()
    assert writer.close(wait=60)
    assert "answers again" in warned()

    runs = {r.info.run_name: r for r in client.search_runs([experiment])}
    assert sorted(runs) == ["d1-t00", "d2-t00"], "a run was created twice"
    one, two = runs["d1-t00"], runs["d2-t00"]
    assert one.info.run_id == writer.run_id(first) and two.info.run_id == writer.run_id(second)
    history = client.get_metric_history(one.info.run_id, "val_loss")
    assert [(m.step, m.value) for m in sorted(history, key=lambda m: (m.step, m.timestamp))] == [
        (step, 1.0 / step) for step in range(1, 6)
    ]
    assert len(client.get_metric_history(one.info.run_id, "train_loss")) == 5
    assert one.data.params == {"units": "16", "lr": "0.01"}
    assert one.data.tags["stacktune.node_id"] == "n5" and one.data.tags["stacktune.state"] == "completed"
    assert one.info.status == "FINISHED" and two.info.status == "FAILED"
    assert one.info.end_time <= ended_before  # stamped when the run ended, not when it was written
    assert two.data.params == {"units": "8"} and two.data.tags[RUN_KEY] == second
    assert [m.value for m in client.get_metric_history(two.info.run_id, "val_loss")] == [0.5]


def test_what_never_reaches_the_store_is_listed_on_stderr_not_dropped(warned):
    # Nothing listens on this port: every write fails at once.
    client = MlflowClient(tracking_uri=f"http://127.0.0.1:{free_port()}")
    writer = BufferedWriter(client, retry_after=0.1, max_retry_after=0.2)
    started = time.monotonic()
    ref = writer.create_run("1", run_name="d3-t04", tags={})
    for step in (1, 2, 3):
        writer.log_batch(ref, metrics=_epoch(step, 0.1))
    writer.set_terminated(ref, "FINISHED")
    assert time.monotonic() - started < 10
    assert writer.close(wait=1) is False
    err = warned()
    assert "did not answer within 1 s" in err
    assert "run d3-t04 (not created): the run itself; 6 metric value(s) of train_loss, val_loss (steps 1-3)" in err
    assert "its end (FINISHED)" in err
    assert writer.pending == 5


class _Counting:
    """Wraps a client, counting calls; `down` makes every call fail as an unreachable server does."""

    def __init__(self, client):
        self._client = client
        self.calls = 0
        self.down = False
        self.lose_answer_of_next_create = False

    def _maybe_fail(self):
        self.calls += 1
        if self.down:
            from mlflow.exceptions import MlflowException

            raise MlflowException("API request to http://127.0.0.1:1/api failed with exception Connection refused")

    def create_run(self, *args, **kwargs):
        self._maybe_fail()
        run = self._client.create_run(*args, **kwargs)
        if self.lose_answer_of_next_create:
            self.lose_answer_of_next_create = False
            raise TimeoutError("the answer was lost")
        return run

    def log_batch(self, *args, **kwargs):
        self._maybe_fail()
        return self._client.log_batch(*args, **kwargs)

    def set_terminated(self, *args, **kwargs):
        self._maybe_fail()
        return self._client.set_terminated(*args, **kwargs)

    def search_runs(self, *args, **kwargs):
        self._maybe_fail()
        return self._client.search_runs(*args, **kwargs)


@pytest.fixture(scope="module")
def shared_client(tmp_path_factory):
    """One MLflow store for the module (creating its tables takes seconds); each test has its own experiment."""
    return MlflowClient(tracking_uri=f"sqlite:///{tmp_path_factory.mktemp('mlflow')}/mlflow.db")


@pytest.fixture
def store(shared_client, request):
    return shared_client, shared_client.create_experiment(request.node.name)


def test_while_the_store_is_down_events_only_queue_until_the_back_off_has_passed(store):
    client, experiment = store
    now = [0.0]
    wrapped = _Counting(client)
    writer = BufferedWriter(
        wrapped, retry_after=5.0, clock=lambda: now[0], sleep=lambda s: now.__setitem__(0, now[0] + s)
    )
    ref = writer.create_run(experiment, run_name="d1-t00", tags={})
    wrapped.down = True
    writer.log_batch(ref, metrics=_epoch(1, 1.0))
    assert wrapped.calls == 2
    for step in range(2, 20):
        writer.log_batch(ref, metrics=_epoch(step, 1.0))
    assert wrapped.calls == 2, "a write was tried during the back-off"
    now[0] += 5.0
    writer.flush()
    assert wrapped.calls == 3  # one try, still down: the back-off doubles
    wrapped.down = False
    now[0] += 5.0
    assert writer.flush() is False
    now[0] += 5.0
    assert writer.flush() is True
    # The 19 queued epochs went out as one batch.
    assert wrapped.calls == 4
    assert len(client.get_metric_history(writer.run_id(ref), "val_loss")) == 19


def test_a_creation_whose_answer_was_lost_is_found_again_not_repeated(store):
    client, experiment = store
    wrapped = _Counting(client)
    wrapped.lose_answer_of_next_create = True
    writer = BufferedWriter(wrapped, retry_after=0.0)
    ref = writer.create_run(experiment, run_name="d1-t00", tags={"stacktune.role": "trial"})
    assert writer.run_id(ref) is None
    writer.log_batch(ref, metrics=_epoch(1, 1.0))
    assert writer.close(wait=5)
    runs = client.search_runs([experiment])
    assert len(runs) == 1 and runs[0].info.run_id == writer.run_id(ref)
    assert len(client.get_metric_history(runs[0].info.run_id, "val_loss")) == 1


def test_a_write_the_store_refuses_is_reported_and_the_others_still_go(store, warned):
    client, experiment = store
    wrapped = _Counting(client)
    writer = BufferedWriter(wrapped, retry_after=0.0)
    ref = writer.create_run(experiment, run_name="d1-t00", tags={})
    writer.log_batch(ref, params=[Param("units", "16")])
    wrapped.down = True  # queue several writes, so they are sent together once it answers
    writer.log_batch(ref, metrics=_epoch(1, 1.0))
    writer.log_batch(ref, params=[Param("units", "32")])  # MLflow params cannot change
    writer.log_batch(ref, metrics=_epoch(2, 0.5), tags=[RunTag("stacktune.state", "completed")])
    wrapped.down = False
    assert writer.close(wait=5)
    assert len(writer.refused) == 1 and "d1-t00" in writer.refused[0]
    assert "MLflow refused a write to run d1-t00" in warned()
    run = client.get_run(writer.run_id(ref))
    assert run.data.params == {"units": "16"} and run.data.tags["stacktune.state"] == "completed"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "val_loss")] == [1, 2]


def test_large_writes_are_split_within_mlflow_batch_limits(store):
    client, experiment = store
    writer = BufferedWriter(client)
    ref = writer.create_run(experiment, run_name="big", tags={})
    stamp = int(time.time() * 1000)
    writer.log_batch(
        ref,
        metrics=[Metric("m", float(i), stamp, i) for i in range(2500)],
        params=[Param(f"p{i}", str(i)) for i in range(150)],
    )
    assert writer.pending == 0
    run_id = writer.run_id(ref)
    assert len(client.get_metric_history(run_id, "m")) == 2500
    assert len(client.get_run(run_id).data.params) == 150


def test_a_server_that_accepts_but_never_answers_costs_one_short_wait_not_minutes(warned):
    with socket.socket() as silent:  # accepts connections (the kernel does) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        client = MlflowClient(tracking_uri=f"http://127.0.0.1:{silent.getsockname()[1]}")
        writer = BufferedWriter(client, http_timeout=1, retry_after=30)
        started = time.monotonic()
        ref = writer.create_run("1", run_name="d1-t00", tags={})
        for step in range(1, 6):
            writer.log_batch(ref, metrics=_epoch(step, 1.0))
        assert time.monotonic() - started < 5
    assert not writer.answering and writer.pending == 6
    assert "does not answer" in warned()


def test_writes_within_the_interval_go_out_together_as_one_batch_per_run(store):
    client, experiment = store
    now = [0.0]
    calls = []

    class Counting:
        """The real client, with its log_batch calls counted."""

        def __getattr__(self, name):
            return getattr(client, name)

        def log_batch(self, *args, **kwargs):
            calls.append(kwargs)
            return client.log_batch(*args, **kwargs)

    writer = BufferedWriter(Counting(), clock=lambda: now[0], interval=1.0)
    run = writer.create_run(experiment, run_name="d1-t00", tags={"stacktune.role": "trial"})
    assert writer.run_id(run)  # the first write goes out at once
    for step in range(1, 11):
        now[0] += 0.05
        writer.log_batch(run, metrics=_epoch(step, 1.0 / step))
    assert not calls and writer.pending == 10  # ten epochs within the second: nothing written yet
    now[0] += 1.0
    assert writer.flush()
    assert len(calls) == 1 and len(calls[0]["metrics"]) == 20
    now[0] += 0.1
    writer.log_batch(run, metrics=_epoch(11, 0.05))
    writer.log_batch(run, tags=[RunTag("stacktune.state", "completed")])
    # A tag (like a run's end) goes out at once, with the metric values gathered before it.
    assert writer.pending == 0 and len(calls) == 2
    writer.set_terminated(run)
    assert writer.pending == 0
    history = client.get_metric_history(writer.run_id(run), "val_loss")
    assert [m.step for m in history] == list(range(1, 12))
    assert client.get_run(writer.run_id(run)).info.status == "FINISHED"


def test_with_a_writing_thread_the_caller_never_waits_for_a_slow_store_and_nothing_is_lost(store):
    client, experiment = store
    callers: set[str] = set()

    class Slow:
        """The real client, each write a quarter of a second late, noting the thread that makes it."""

        def __getattr__(self, name):
            return getattr(client, name)

        def _late(self, name, *args, **kwargs):
            callers.add(threading.current_thread().name)
            time.sleep(0.25)
            return getattr(client, name)(*args, **kwargs)

        def create_run(self, *args, **kwargs):
            return self._late("create_run", *args, **kwargs)

        def log_batch(self, *args, **kwargs):
            return self._late("log_batch", *args, **kwargs)

        def set_terminated(self, *args, **kwargs):
            return self._late("set_terminated", *args, **kwargs)

    writer = BufferedWriter(Slow(), interval=1.0, background=True)
    started = time.monotonic()
    refs = []
    for number in range(5):
        ref = writer.create_run(experiment, run_name=f"d1-t{number:02d}", tags={"stacktune.role": "trial"})
        while number == 0 and not callers:
            # The thread is inside its first write when the rest arrive and when `close` comes: it must still write
            # all it is handed, not leave it to the caller.
            time.sleep(0.005)
        writer.log_batch(ref, params=[Param("units", "16")])
        for step in range(1, 21):
            writer.log_batch(ref, metrics=_epoch(step, 1.0 / step))
        writer.set_terminated(ref, "FINISHED")
        refs.append(ref)
    handed_over = time.monotonic() - started
    # 5 runs of 3 or more writes at 0.25 s each would take seconds; handing them over takes next to nothing.
    assert handed_over < 0.5, handed_over
    assert writer.close(wait=60)
    assert callers == {"mlflow-writer"}  # every write made by the writer's thread, none by the caller
    for ref in refs:
        run = client.get_run(writer.run_id(ref))
        assert run.info.status == "FINISHED" and run.data.params == {"units": "16"}
        assert [m.step for m in client.get_metric_history(run.info.run_id, "val_loss")] == list(range(1, 21))
    # Closed, the writer writes in the caller's thread again.
    late = writer.create_run(experiment, run_name="after", tags={})
    assert writer.run_id(late) and callers == {"mlflow-writer", threading.current_thread().name}


def test_a_failure_inside_the_writing_thread_reaches_the_caller(store):
    client, experiment = store

    class Broken:
        """The real client, whose reads fail as a bug would (not as a store that does not answer)."""

        def __getattr__(self, name):
            return getattr(client, name)

        def get_run(self, run_id):
            raise RuntimeError("a bug in a queued call")

    writer = BufferedWriter(Broken(), background=True)
    ref = writer.create_run(experiment, run_name="d1-t00", tags={})
    writer.append_to_tag(ref, "mlflow.note.content", "more")  # reads the tag first: the read fails
    with pytest.raises(RuntimeError, match="a bug in a queued call"):
        writer.close(wait=5)
