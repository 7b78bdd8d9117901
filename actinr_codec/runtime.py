"""Process-wide runtime settings: the compute device and the C allocator."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

import torch

_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4


@functools.cache
def tune_allocator() -> bool:
    """Stop glibc from returning big tensor buffers to the OS after every step.

    Eager training frees and re-allocates the same large activations each step; with
    glibc's defaults each one is a fresh mmap and page-faulted again, which costs up to
    3x on a small CPU. Returns False where the C library is not glibc.
    """
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, 1 << 30))


def resolve_device(name: str | None = None) -> torch.device:
    """The requested device, or CUDA when present and CPU otherwise."""
    if name in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("CUDA was requested but no CUDA device is available")
    return device
