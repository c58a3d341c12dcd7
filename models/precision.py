"""Whether bfloat16 autocast can train on a device: a CUDA device's own answer, or a tiny probe of the CPU.

CPUs differ: oneDNN runs bfloat16 LSTMs only on some of them (AVX512-BF16, AMX, ...), and elsewhere fails
with "could not create a primitive descriptor". Rather than guess from CPU flags, the CPU is asked to do it:
one step of a one-unit LSTM under autocast, forward and backward, once per process.

STACKTUNE_CPU_BF16=0 makes this process treat its CPU as fp32-only (bf16 is then refused before training),
and STACKTUNE_CPU_BF16=1 skips the probe and trusts the CPU; any other value, or none, runs the probe.
"""

from __future__ import annotations

import functools
import os

import torch

CPU_BF16_ENV = "STACKTUNE_CPU_BF16"


def bf16_supported(device: str | torch.device = "cpu") -> bool:
    """True when forward passes under bfloat16 autocast can train an LSTM on `device`."""
    device = torch.device(device)
    if device.type == "cuda":
        return _cuda_bf16()
    if device.type == "cpu":
        forced = os.environ.get(CPU_BF16_ENV, "").strip()
        if forced in ("0", "1"):
            return forced == "1"
    return _probe(device.type)


def check_precision(precision: str, device: str | torch.device = "cpu") -> None:
    """Raises ValueError, with a one-line message, when `precision` cannot train on `device`."""
    if precision != "bf16" or bf16_supported(device):
        return
    kind = torch.device(device).type
    if kind == "cpu":
        forced = " (STACKTUNE_CPU_BF16=0 is set)" if os.environ.get(CPU_BF16_ENV, "").strip() == "0" else ""
        what = f"this CPU lacks bfloat16 support{forced}, which needs e.g. AVX512-BF16 or AMX"
    elif kind == "cuda":
        what = "this GPU lacks bfloat16 support, which needs compute capability 8.0 (Ampere) or newer"
    else:
        what = f"bfloat16 autocast does not run on {kind} here"
    raise ValueError(f"precision bf16: {what}; use `precision: fp32`")


def _cuda_bf16() -> bool:
    if not torch.cuda.is_available():
        return False
    try:
        # Emulated bf16 (older GPUs) runs, but far slower than fp32: not what `precision: bf16` asks for.
        return bool(torch.cuda.is_bf16_supported(including_emulation=False))
    except TypeError:  # PyTorch before 2.3 has no including_emulation
        return bool(torch.cuda.is_bf16_supported())


@functools.cache
def _probe(device_type: str) -> bool:
    """One training step of a tiny LSTM under bfloat16 autocast, and one inference step; False if either fails."""
    # The probe's weights come from its own RNG state: it must not shift the seeded runs that follow it.
    with torch.random.fork_rng(devices=[]):
        try:
            lstm = torch.nn.LSTM(1, 1, batch_first=True).to(device_type)
            x = torch.zeros(1, 1, 1, device=device_type)
            with torch.autocast(device_type=device_type, dtype=torch.bfloat16):
                out, _ = lstm(x)
            out.float().sum().backward()
            with torch.inference_mode(), torch.autocast(device_type=device_type, dtype=torch.bfloat16):
                lstm.eval()(x)
        except RuntimeError:
            return False
    return True
