"""Runtime helpers of the library: the compute device, compilation, and a pool for
independent chunks of work and its size. Tuning the host process is not the library's:
see actinr_codec/process.py."""

from __future__ import annotations

import contextlib
import functools
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import torch


def resolve_device(name: str | None = None) -> torch.device:
    """The requested device, or CUDA when present and CPU otherwise."""
    if name in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("CUDA was requested but no CUDA device is available")
    return device


def compiled(fn: Callable) -> Callable:
    """fn compiled with torch.compile, or fn itself where compiling fails here.

    Inductor fuses the elementwise work between the matrix products into single loops (and
    its vectorised sine is about 3x faster than eager's on x86). It needs a C++ compiler on
    CPU; without one the first call fails, and from then on fn runs eagerly.
    """
    fast = torch.compile(fn)
    failed = False

    @functools.wraps(fn)
    def call(*args):
        nonlocal failed
        if not failed:
            try:
                return fast(*args)
            except Exception as exc:  # noqa: BLE001 - a genuine error recurs in the eager call
                failed = True
                warnings.warn(f"torch.compile failed ({type(exc).__name__}: {exc}); running eagerly",
                              stacklevel=2)
        return fn(*args)

    return call


def kernel_threads(threads: int | None) -> int:
    """The native kernel's pool size: ``threads`` as asked, else torch's thread count.

    The library never changes torch's own thread count; a process that owns its cores
    runs torch on one thread and gives them to the kernel (process.kernel_cores says why).
    """
    return max(1, torch.get_num_threads() if threads is None else threads)


@contextlib.contextmanager
def parallel_chunks(threads: int) -> Iterator[ThreadPoolExecutor]:
    """A pool of ``threads`` workers for independent chunks of work, each on one core."""
    with ThreadPoolExecutor(max(1, threads)) as pool:
        yield pool
