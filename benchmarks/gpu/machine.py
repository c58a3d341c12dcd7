"""The machine a GPU figure was measured on: common.machine_info plus the GPUs, a one-line label and a file slug."""

from __future__ import annotations

import re
import subprocess
from typing import Any

from .. import common


def no_cuda_reason() -> str | None:
    """Why PyTorch cannot train on a CUDA device here, or None when it can."""
    import torch

    if torch.cuda.is_available():
        return None
    if torch.version.cuda is None:
        return f"torch {torch.__version__} is a build without CUDA"
    return f"torch {torch.__version__} (CUDA {torch.version.cuda}) finds no usable GPU"


def _driver_version() -> str | None:
    """The NVIDIA driver's version as nvidia-smi reports it; PyTorch itself does not expose it."""
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        )
        return out.stdout.splitlines()[0].strip() or None
    except (OSError, subprocess.SubprocessError, IndexError):
        return None


def gpu_info() -> dict[str, Any] | None:
    """The visible CUDA devices: model, count, memory, compute capability, driver, CUDA and cuDNN; None without."""
    import torch

    from stacktune.models.precision import bf16_supported

    if not torch.cuda.is_available():
        return None
    props = torch.cuda.get_device_properties(0)
    return {
        "name": torch.cuda.get_device_name(0),
        "count": torch.cuda.device_count(),
        "names": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())],
        "memory_gb": round(props.total_memory / 1024**3, 1),
        "compute_capability": f"{props.major}.{props.minor}",
        "driver": _driver_version(),
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version(),
        "bf16": bf16_supported("cuda"),
    }


def machine_info(*, quick: bool, device: str) -> dict[str, Any]:
    """common.machine_info with the device the figures trained on and, on a GPU run, the GPUs."""
    return {**common.machine_info(quick=quick), "device": device, "gpu": gpu_info() if device == "cuda" else None}


def label(machine: dict[str, Any]) -> str:
    """One line naming the machine: the GPUs (or the CPU smoke run), then CPU, cores, memory and versions."""
    gpu = machine.get("gpu")
    if gpu:
        head = (
            f"{gpu['count']}x {gpu['name']} ({gpu['memory_gb']} GB, compute {gpu['compute_capability']}, "
            f"driver {gpu['driver'] or 'unknown'}, CUDA {gpu['cuda']}, cuDNN {gpu['cudnn']})"
        )
    else:
        head = "no GPU: smoke run on the CPU"
    versions = ", ".join(f"{k} {v}" for k, v in machine["versions"].items() if v)
    return (
        f"{head}; {machine['cpu']}, {machine['cores']} cores, {machine['memory_gb']} GB; "
        f"Python {machine['python']}; {versions}"
    )


def slug(machine: dict[str, Any]) -> str:
    """The results' file name: the GPU count and model, or "cpu-" and the CPU model for a smoke run."""
    gpu = machine.get("gpu")
    name = f"{gpu['count']}x-{gpu['name']}" if gpu else f"cpu-{machine['cpu']}"
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "unknown"
