"""Shared helpers: robust timing statistics, machine info, table rows, and a small search spec."""

from __future__ import annotations

import contextlib
import datetime as _dt
import logging
import math
import os
import platform
import statistics
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Iterator

PACKAGES = ("stacktune", "torch", "ray", "optuna", "mlflow", "numpy")


def summary(values: list[float]) -> dict[str, Any]:
    """Median, min, max and interquartile range of repeated measurements."""
    values = sorted(float(v) for v in values)
    if not values:
        return {"median": math.nan, "min": math.nan, "max": math.nan, "iqr": [math.nan, math.nan], "n": 0}
    if len(values) >= 2:
        q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
    else:
        q1 = q3 = values[0]
    return {"median": statistics.median(values), "min": values[0], "max": values[-1], "iqr": [q1, q3], "n": len(values)}


def interleaved(variants: dict[str, Callable[[], float]], repeats: int) -> dict[str, list[float]]:
    """Runs each variant `repeats` times in the order A,B,A,B,... so drift in machine load hits all alike."""
    out: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(repeats):
        for name, measure in variants.items():
            out[name].append(measure())
    return out


def cpu_model() -> str:
    """The CPU's model name as the kernel reports it."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def usable_cores() -> int:
    """The cores this process may run on (its affinity where the OS has one, else the machine's)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def machine_info(*, quick: bool) -> dict[str, Any]:
    """Where and with what the figures were measured."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "quick": quick,
        "cpu": cpu_model(),
        "cores": usable_cores(),
        "memory_gb": _memory_gb(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": versions,
        "load_average_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }


class BusyMachine(Exception):
    """The machine stayed busier than the gate allows for the whole wait."""


def load_per_core() -> float | None:
    """The 1-minute load average divided by the cores this process may use (None where the OS has none)."""
    if not hasattr(os, "getloadavg"):  # pragma: no cover - not Unix
        return None
    return os.getloadavg()[0] / usable_cores()


def wait_for_idle(
    max_per_core: float, wait_s: float, *, poll_s: float = 10.0, sleep: Callable[[float], None] = time.sleep
) -> dict[str, Any]:
    """Waits until the 1-minute load average is at most `max_per_core` per core, for at most `wait_s` seconds, and
    returns what it saw; raises BusyMachine if the load stayed above the gate. A figure taken beside other work
    measures that work too, so a full run does not start on a busy machine."""
    started = time.monotonic()
    first = load = load_per_core()
    while load is not None and load > max_per_core:
        waited = time.monotonic() - started
        if waited >= wait_s:
            raise BusyMachine(
                f"the load average is {load:.2f} per core after waiting {waited:.0f} s, above the gate of "
                f"{max_per_core} per core: stop the other work, or pass --ignore-load to measure anyway "
                "(the load is recorded)"
            )
        if waited == 0 or int(waited) % 60 < poll_s:
            log(f"waiting for the machine to be idle: load {load:.2f} per core, gate {max_per_core}")
        sleep(min(poll_s, max(wait_s - waited, 0.0)))
        load = load_per_core()
    return {
        "gate_per_core": max_per_core,
        "load_per_core_first_seen": first,
        "load_per_core_at_start": load,
        "waited_s": round(time.monotonic() - started, 1),
    }


def _memory_gb() -> float | None:
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024**2, 1)
    return None


def row(
    benchmark: str,
    figure: str,
    stacktune: float | None,
    baseline: float | None,
    *,
    goal: str = "",
    met: bool | None = None,
    ratio: float | None = None,
    unit: str = "",
) -> dict[str, Any]:
    """One line of the results table; `ratio` defaults to stacktune / baseline."""
    if ratio is None and stacktune is not None and baseline:
        ratio = stacktune / baseline
    return {
        "benchmark": benchmark,
        "figure": figure,
        "unit": unit,
        "stacktune": stacktune,
        "baseline": baseline,
        "ratio": ratio,
        "goal": goal,
        "met": met,
    }


def log(message: str) -> None:
    """Progress on stderr, so a long run shows where it is."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def search_spec(
    name: str,
    *,
    length: int,
    window: int = 16,
    depths: list[int],
    trials_per_depth: int,
    epochs: int,
    params: int | None = None,
    units: list[int] | None = None,
    lr: tuple[float, float] = (3e-3, 3e-2),
    batch_size: int = 32,
    pruning: dict | None = None,
    seed: int = 0,
    dataset: str = "sine",
    **extra: Any,
):
    """A stacktune SearchSpec on a univariate synthetic set, evaluation off, widths matched per depth if `params`."""
    from stacktune.search.spec.convert import match_widths
    from stacktune.search.spec.schema import SearchSpec

    raw = {
        "name": name,
        "dataset": {"name": dataset, "window": window, "length": length},
        "depths": depths,
        "trials_per_depth": trials_per_depth,
        "space": {"units": {"params": params} if params else (units or [32]), "lr": list(lr)},
        "train": {"epochs": epochs, "batch_size": batch_size},
        "sampler": {"n_startup_trials": 4},
        "evaluation": {"seeds": 0},
        "pruning": pruning or {"kind": "none"},
        "seed": seed,
        **extra,
    }
    spec = SearchSpec.model_validate(raw)
    # the synthetic sets used here are univariate, one-step regression
    return match_widths(spec, input_size=1, output_size=1, task="regression")


def load_dataset(spec) -> Any:
    """The prepared dataset of a spec made by `search_spec`."""
    from stacktune.search.spec.loading import load_data

    return load_data(spec.dataset, base_dir=None)


def start_ray(num_cpus: int) -> None:
    """A local Ray with `num_cpus` logical CPUs on 127.0.0.1 (as `stacktune search` starts one); kept if already so."""
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    import ray

    if ray.is_initialized():
        if ray.cluster_resources().get("CPU") == num_cpus:
            return
        ray.shutdown()
    ray.init(
        num_cpus=num_cpus,
        include_dashboard=False,
        _node_ip_address="127.0.0.1",
        logging_level=logging.WARNING,
        log_to_driver=False,
    )


def stop_ray() -> None:
    """Shuts down the Ray this process started, if any."""
    import ray

    if ray.is_initialized():
        ray.shutdown()


@contextlib.contextmanager
def mlflow_server(folder: Path) -> Iterator[str]:
    """A real `mlflow server` on 127.0.0.1 (stacktune's own, as `stacktune ui` starts it: one worker), its SQLite store
    and served artifacts in `folder`, for the block: yields its URI; stopped on the way out, also on failure."""
    import socket

    from stacktune.search.interfaces.ui import UIServer

    folder.mkdir(parents=True, exist_ok=True)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = UIServer(f"sqlite:///{folder}/server.db", port)
    try:
        with contextlib.chdir(folder):  # the server keeps the artifacts it serves under its working folder
            server.launch()
        server.wait_until_healthy()
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@contextlib.contextmanager
def saved_environ() -> Iterator[None]:
    """Restores os.environ afterwards: run_search sets Tune switches (setdefault) that would leak into the baseline."""
    before = dict(os.environ)
    try:
        yield
    finally:
        for key in set(os.environ) - set(before):
            del os.environ[key]
        os.environ.update(before)


@contextlib.contextmanager
def timed_tuner_fit() -> Iterator[list[dict[str, float]]]:
    """Records every Tuner.fit() call made inside the block: its seconds and its wall-clock start (time.time)."""
    from ray.tune import Tuner

    spans: list[dict[str, float]] = []
    original = Tuner.fit

    def fit(self, *args, **kwargs):
        wall, start = time.time(), time.perf_counter()
        try:
            return original(self, *args, **kwargs)
        finally:
            spans.append({"seconds": time.perf_counter() - start, "wall_start": wall})

    Tuner.fit = fit
    try:
        yield spans
    finally:
        Tuner.fit = original


@contextlib.contextmanager
def quiet_output() -> Iterator[None]:
    """Sends whatever a search prints to stdout over to stderr, keeping stdout for the table."""
    with contextlib.redirect_stdout(sys.stderr):
        yield


def _number(value) -> str:
    if value is None:
        return "—"
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    value = float(value)
    if value == 0:
        return "0"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def table(rows: list[dict]) -> str:
    """The results as a markdown table."""
    lines = [
        "| benchmark | figure | stacktune | plain/baseline | ratio | goal | met? |",
        "|---|---|---:|---:|---:|---|---|",
    ]
    for r in rows:
        met = {True: "yes", False: "**no**", None: ""}[r["met"]]
        ratio = _number(r["ratio"]) if r["ratio"] is not None else "—"
        lines.append(
            f"| {r['benchmark']} | {r['figure']} | {_number(r['stacktune'])} | {_number(r['baseline'])} "
            f"| {ratio} | {r['goal']} | {met} |"
        )
    return "\n".join(lines)


def json_clean(value):
    """JSON without NaN or infinity: they become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): json_clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_clean(v) for v in value]
    return value


def write_whole(files: dict[Path, str]) -> None:
    """Writes each file through a temporary file next to it, so that a file is either the old one or the new one."""
    for path in files:
        path.parent.mkdir(parents=True, exist_ok=True)
    for path, text in files.items():
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(text)
        os.replace(tmp, path)
