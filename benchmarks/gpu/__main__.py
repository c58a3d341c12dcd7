"""`python -m benchmarks.gpu`: measures the GPU figures on this machine and writes <machine-slug>.json and .md."""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

from .. import common

DEFAULT_OUT = Path(__file__).resolve().parent / "results"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.gpu",
        description="Trials per GPU-hour with shared GPUs, fit against a bare cuDNN loop, bf16 against fp32.",
    )
    parser.add_argument("--quick", action="store_true", help="smaller sizes: a few minutes on one GPU")
    parser.add_argument(
        "--device",
        choices=("cuda", "cpu"),
        default="cuda",
        help="cuda (default), or cpu: a smoke run of every code path on the CPU, tiny sizes, not a GPU figure",
    )
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help="folder for the result files (default: benchmarks/gpu/results)"
    )
    parser.add_argument(
        "--workdir", type=Path, help="scratch folder for searches and stores (default: a temporary folder, removed)"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from . import machine, report, suite

    if args.device == "cuda" and (reason := machine.no_cuda_reason()) is not None:
        print(f"no CUDA device on this machine: {reason} (--device cpu runs a CPU smoke test)", file=sys.stderr)
        return 1
    started = time.perf_counter()
    info = machine.machine_info(quick=args.quick, device=args.device)
    common.log(f"gpu: on {machine.label(info)}")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="stacktune-gpu-bench-"))
    try:
        result = suite.measure(args.quick, workdir, device=args.device)
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    results = {
        "machine": info,
        "wall_seconds": time.perf_counter() - started,
        "rows": result["rows"],
        "figures": result["figures"],
    }
    paths = report.write(results, args.out)
    print(common.table(results["rows"]))
    print(f"\nwrote {paths[0]} and {paths[1]} ({results['wall_seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
