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

    A process that owns its cores runs torch on one thread and gives them to the kernel
    (process.kernel_cores says why); the library changes torch's own thread count only
    for work that leaves the kernel idle (torch_threads).
    """
    return max(1, torch.get_num_threads() if threads is None else threads)


@contextlib.contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """torch's own ops on ``threads`` threads for the duration, then as they were: for
    work that runs in torch alone, such as a picture's fit, the cores the kernel would
    have had (carphone's frame: 38 ms a step on one thread, 26-29 on two; tree's 94 and
    60, docs/performance.md)."""
    before = torch.get_num_threads()
    torch.set_num_threads(max(1, threads))
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextlib.contextmanager
def parallel_chunks(threads: int) -> Iterator[ThreadPoolExecutor]:
    """A pool of ``threads`` workers for independent chunks of work, each on one core."""
    with ThreadPoolExecutor(max(1, threads)) as pool:
        yield pool
