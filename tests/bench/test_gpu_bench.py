"""`python -m benchmarks.gpu`: a CPU smoke run writes every figure; without CUDA it refuses, and `run` says why."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
HEADER = "| benchmark | figure | stacktune | plain/baseline | ratio | goal | met? |"
NOT_MEASURED = "— not measured: no CUDA device on this machine"


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "MLFLOW_TRACKING_URI")}


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_cpu_smoke_run_writes_every_figure_beside_the_machine(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.gpu", "--quick", "--device", "cpu", "--out", str(tmp_path)],
        cwd=REPO,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=270,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert HEADER in proc.stdout

    (json_path,) = tmp_path.glob("*.json")
    md_path = json_path.with_suffix(".md")
    assert json_path.stem.startswith("cpu-") and md_path.exists()
    report = json.loads(json_path.read_text())
    machine = report["machine"]
    assert machine["device"] == "cpu" and machine["gpu"] is None
    assert machine["cpu"] and machine["cores"] >= 1 and machine["quick"] is True
    assert all(machine["versions"][name] for name in ("torch", "ray", "optuna", "mlflow"))
    md = md_path.read_text()
    assert f"Machine: no GPU: smoke run on the CPU; {machine['cpu']}, {machine['cores']} cores" in md
    assert HEADER in md and md.count("\n| ") - 1 == len(report["rows"])

    figures = {"trials per GPU-hour": 0, "fit vs bare loop": 0, "bf16 vs fp32": 0}
    for row in report["rows"]:
        assert row["benchmark"] == "gpu" and row["goal"] is not None, row
        kind = next(name for name in figures if row["figure"].startswith(name))
        figures[kind] += 1
        if kind == "bf16 vs fp32" and row["figure"].endswith("not supported on this device"):
            continue
        values = [row[key] for key in ("stacktune", "baseline", "ratio") if row[key] is not None]
        assert values and all(isinstance(v, (int, float)) and math.isfinite(v) and v > 0 for v in values), row
        assert row["figure"] in md
    # 1, 2, 4 and 8 trials per GPU and their summary; each trainer figure has cells and a summary
    assert figures["trials per GPU-hour"] == 5 and figures["fit vs bare loop"] >= 2, figures
    assert figures["bf16 vs fp32"] == figures["fit vs bare loop"], figures
    assert "smoke" in report["figures"]["sharing"] and "Smoke run on the CPU" in md


def test_without_cuda_it_exits_with_one_line():
    if _cuda():
        pytest.skip("this machine has a CUDA device")
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.gpu", "--quick"],
        cwd=REPO,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("no CUDA device on this machine: "), proc.stderr


def test_run_without_cuda_returns_not_measured_rows_with_goals(tmp_path, monkeypatch):
    if _cuda():
        pytest.skip("this machine has a CUDA device")
    import benchmarks.gpu
    from benchmarks import common
    from benchmarks.gpu import suite

    def measure(*args, **kwargs):
        raise AssertionError("nothing is measured, and no Ray started, without a CUDA device")

    monkeypatch.setattr(suite, "measure", measure)
    result = benchmarks.gpu.run(True, tmp_path)
    assert len(result["rows"]) == 3
    for row in result["rows"]:
        assert set(row) == set(common.row("gpu", "", None, None))
        assert row["benchmark"] == "gpu" and row["figure"].endswith(NOT_MEASURED), row
        assert row["stacktune"] is None and row["baseline"] is None and row["ratio"] is None and row["met"] is None
        assert row["goal"]
