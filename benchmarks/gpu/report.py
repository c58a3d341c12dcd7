"""The GPU benchmark's result files: <machine-slug>.json with every figure, and .md with the table."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .. import common
from .machine import label, slug


def markdown(report: dict[str, Any]) -> str:
    """The machine, named in full, then the table as the CPU benchmarks render it."""
    m = report["machine"]
    kind = "quick" if m["quick"] else "full"
    smoke = report["figures"].get("sharing", {}).get("smoke")
    lines = [
        f"# stacktune GPU benchmark ({kind} run on {m['device']})",
        "",
        f"Machine: {label(m)}.",
        "",
        f"{m['date']}; whole run {report['wall_seconds']:.0f} s. "
        "Ratios are measured side by side in the same run; see benchmarks/gpu/README.md.",
        *([f"Smoke run on the CPU, not a GPU figure. {smoke}."] if smoke else []),
        "",
        common.table(report["rows"]),
    ]
    return "\n".join(lines) + "\n"


def write(report: dict[str, Any], out: Path) -> list[Path]:
    """Writes <slug>.json and <slug>.md into `out`, each replaced whole; returns their paths."""
    name = slug(report["machine"])
    files = {
        out / f"{name}.json": json.dumps(common.json_clean(report), indent=2, default=str) + "\n",
        out / f"{name}.md": markdown(report),
    }
    common.write_whole(files)
    return list(files)
