"""GPU benchmark: trials per GPU-hour with shared GPUs, fit against a bare cuDNN loop, and bf16 against fp32.

`python -m benchmarks.gpu` measures them on this machine's CUDA device (see README.md);
`run` is the entry point `python -m benchmarks` uses.
"""

from .suite import run

__all__ = ["run"]
