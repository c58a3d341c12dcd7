"""Start-up: how long the `stacktune` command takes before it does something useful.

`stacktune --help` and `stacktune datasets` run as fresh processes, alternated; the median of
several runs is reported against a bare `python -c pass` of the same interpreter. A tiny
`stacktune search` is launched too, and the time until its first trial's first epoch reaches
the MLflow store is read from that metric's own timestamp (the driver stamps it on arrival).
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from . import common

GOAL = 0.5
SEARCHES = 2  # each starts Ray and a worker: about 25 s
TINY_SPEC = {
    "name": "bench-startup",
    "dataset": {"name": "sine", "window": 8, "length": 600},
    "depths": [1],
    "trials_per_depth": 2,
    "space": {"units": [8], "lr": 1e-2},
    "train": {"epochs": 3, "batch_size": 32},
    "evaluation": {"seeds": 0},
}


def _command() -> str:
    """The `stacktune` entry point next to the running interpreter (the project's virtualenv)."""
    return str(Path(sys.executable).with_name("stacktune"))


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "MLFLOW_TRACKING_URI")}
    return {**env, "PYTHONUNBUFFERED": "1"}


def _seconds(args: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run(
        args, cwd=cwd, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, timeout=120
    )
    return time.perf_counter() - start


def _first_epoch(db: Path) -> float | None:
    """Wall-clock time (s) of the first val_loss in the MLflow store, or None before there is one."""
    if not db.exists():
        return None
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as con:
            (stamp,) = con.execute("SELECT MIN(timestamp) FROM metrics WHERE key = 'val_loss'").fetchone()
    except sqlite3.Error:  # not created yet, or locked by the writer for a moment
        return None
    return stamp / 1000 if stamp is not None else None


def _search(workdir: Path, rep: int) -> dict[str, float]:
    """Launches a tiny search; seconds until its first epoch is logged and until it exits."""
    folder = workdir / f"search-{rep}"
    folder.mkdir(parents=True, exist_ok=True)
    spec = folder / "spec.yaml"
    spec.write_text(yaml.safe_dump(TINY_SPEC))
    db = folder / "mlflow.db"
    args = [_command(), "search", str(spec), "--out", str(folder / "runs"), "--tracking-uri", f"sqlite:///{db}"]
    with open(folder / "search.log", "wb") as log_file:
        launched, start = time.time(), time.perf_counter()
        proc = subprocess.Popen(
            args, cwd=folder, env=_env(), stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True
        )
        first = None
        try:
            while proc.poll() is None and first is None:
                time.sleep(0.1)
                first = _first_epoch(db)
            proc.wait(timeout=300)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        total = time.perf_counter() - start
    first = first if first is not None else _first_epoch(db)
    if proc.returncode != 0 or first is None:
        tail = (folder / "search.log").read_text(errors="replace")[-2000:]
        raise RuntimeError(f"the tiny search failed (exit {proc.returncode}):\n{tail}")
    return {"first_epoch_seconds": first - launched, "total_seconds": total}


def run(quick: bool, workdir: Path) -> dict[str, Any]:
    """Median start-up times of `--help`, `datasets` and a tiny search's first epoch."""
    workdir.mkdir(parents=True, exist_ok=True)
    repeats = 5 if quick else 7
    command = _command()
    timed = common.interleaved(
        {
            "python": lambda: _seconds([sys.executable, "-c", "pass"], workdir),
            "help": lambda: _seconds([command, "--help"], workdir),
            "datasets": lambda: _seconds([command, "datasets"], workdir),
        },
        repeats,
    )
    figures: dict[str, Any] = {name: common.summary(values) for name, values in timed.items()}
    python = figures["python"]["median"]
    rows = []
    for name in ("help", "datasets"):
        median = figures[name]["median"]
        rows.append(
            common.row(
                "startup",
                f"`stacktune {'--help' if name == 'help' else name}` s (vs `python -c pass`)",
                median,
                python,
                goal=f"< {GOAL} s",
                met=median < GOAL,
                unit="s",
            )
        )
    if not quick:  # a search starts Ray and a worker: tens of seconds, too slow for the quick run
        searches = []
        for rep in range(SEARCHES):
            common.log(f"startup: tiny search {rep + 1}/{SEARCHES}")
            searches.append(_search(workdir, rep))
        figures["search_first_epoch"] = common.summary([s["first_epoch_seconds"] for s in searches])
        figures["search_total"] = common.summary([s["total_seconds"] for s in searches])
        rows.append(
            common.row(
                "startup",
                "`stacktune search` launch to first epoch logged, s",
                figures["search_first_epoch"]["median"],
                None,
                unit="s",
            )
        )
        rows.append(
            common.row(
                "startup",
                "`stacktune search` tiny search, launch to exit, s",
                figures["search_total"]["median"],
                None,
                unit="s",
            )
        )
    return {"figures": figures, "rows": rows}
