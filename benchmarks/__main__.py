"""`python -m benchmarks`: runs the selected benchmarks, writes latest.json and latest.md, prints the table."""

from __future__ import annotations

import argparse
import importlib
import json
import math
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Callable

from . import common

# Ray-using benchmarks first, grouped by the Ray they need, so each Ray starts once; then the verdict's simulations,
# and the GPU figures (rows saying why not, at once, on a machine without one).
BENCHMARKS = (
    "orchestration",
    "evaluation",
    "time_to_verdict",
    "pruning",
    "driver",
    "scale",
    "throughput",
    "seeds",
    "startup",
    "verdict",
    "gpu",
)
DEFAULT_OUT = Path(__file__).resolve().parent / "results"


def _names(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}"
        )
    return names


def _number(what: str, *, zero: bool) -> Callable[[str], float]:
    """An argparse type for a number above 0 (or, with `zero`, 0 or more), named `what` in its error."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not (value >= 0 if zero else value > 0):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value

    return parse


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description="Measure stacktune against plain baselines."
    )
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run of a few minutes")
    parser.add_argument(
        "--only",
        type=_names,
        default=list(BENCHMARKS),
        metavar="NAME[,NAME]",
        help=f"run only these ({', '.join(BENCHMARKS)})",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        help="folder for latest.json and latest.md (default: benchmarks/results)",
    )
    parser.add_argument(
        "--max-load",
        type=_number("a load per core above 0", zero=False),
        default=0.5,
        metavar="PER_CORE",
        help="start only once the 1-minute load average is at most this per core (default: 0.5)",
    )
    parser.add_argument(
        "--wait",
        type=_number("a number of seconds, 0 or more", zero=True),
        default=600.0,
        metavar="SECONDS",
        help="how long to wait for the load to fall before refusing to start (default: 600)",
    )
    parser.add_argument(
        "--ignore-load",
        action="store_true",
        help="measure even on a busy machine (the load is still recorded beside the figures)",
    )
    parser.add_argument(
        "--workdir", type=Path, help="scratch folder for searches and stores (default: a temporary folder, removed)"
    )
    return parser.parse_args(argv)


def markdown(report: dict) -> str:
    """latest.md: the machine, then the table."""
    m = report["machine"]
    versions = ", ".join(f"{k} {v}" for k, v in m["versions"].items() if v)
    head = [
        f"# stacktune benchmarks ({'quick' if m['quick'] else 'full'} run)",
        "",
        f"{m['date']} on {m['cpu']}, {m['cores']} cores, {m['memory_gb']} GB; Python {m['python']}; {versions}.",
        f"Whole run: {report['wall_seconds']:.0f} s. "
        "Ratios are measured side by side in the same run; see benchmarks/README.md.",
        "",
    ]
    errors = [f"- {name}: {b['error'].splitlines()[-1]}" for name, b in report["benchmarks"].items() if b.get("error")]
    tail = ["", "Failed:", *errors] if errors else []
    return "\n".join(head) + common.table(report["rows"]) + "\n" + "\n".join(tail) + ("\n" if tail else "")


def _json_default(value):
    if isinstance(value, Path):
        return str(value)
    return repr(value)


def write(report: dict, out: Path) -> None:
    """Writes latest.json and latest.md next to each other, each replaced whole."""
    common.write_whole(
        {
            out / "latest.json": json.dumps(common.json_clean(report), indent=2, default=_json_default) + "\n",
            out / "latest.md": markdown(report),
        }
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.ignore_load:
        gate = {"ignored": True, "load_per_core_at_start": common.load_per_core()}
    else:
        try:
            gate = common.wait_for_idle(args.max_load, args.wait)
        except common.BusyMachine as busy:
            print(f"python -m benchmarks: {busy}", file=sys.stderr)
            return 3
    started = time.perf_counter()
    machine = {**common.machine_info(quick=args.quick), "load_gate": gate}
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="stacktune-bench-"))
    results: dict[str, dict] = {}
    selected = [n for n in BENCHMARKS if n in args.only]
    try:
        for i, name in enumerate(selected):
            module = importlib.import_module(f".{name}", __package__)
            common.log(f"{name}: start")
            t0 = time.perf_counter()
            try:
                result = module.run(args.quick, workdir / name)
            except Exception:  # noqa: BLE001 - one failed benchmark must not lose the others' figures
                result = {"figures": {}, "rows": [], "error": traceback.format_exc()}
                print(result["error"], file=sys.stderr)
            result["seconds"] = time.perf_counter() - t0
            result["load_per_core_after"] = common.load_per_core()
            results[name] = result
            common.log(f"{name}: done in {result['seconds']:.0f} s")
            following = importlib.import_module(f".{selected[i + 1]}", __package__) if i + 1 < len(selected) else None
            if getattr(following, "RAY_CPUS", None) != getattr(module, "RAY_CPUS", None) and "ray" in sys.modules:
                common.stop_ray()
    finally:
        if "ray" in sys.modules:
            common.stop_ray()
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    report = {
        "machine": machine,
        "wall_seconds": time.perf_counter() - started,
        "rows": [row for r in results.values() for row in r["rows"]],
        "benchmarks": results,
    }
    write(report, args.out)
    print(common.table(report["rows"]))
    print(f"\nwrote {args.out / 'latest.json'} and {args.out / 'latest.md'} ({report['wall_seconds']:.0f} s)")
    return 1 if any(r.get("error") for r in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
