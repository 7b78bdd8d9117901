"""Tuning of a whole process, for the process's owner only: the ``actinr`` command
(cli/), the task that fits a segment in a worker process (parallel/segments.fit_segment)
and the benchmarks call these; library code never does, so a program that imports
actinr_codec keeps its allocator, garbage collector and torch threads as they were."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import gc

import torch

from .native.build import can_build
from .runtime import resolve_device

_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_M_ARENA_MAX = -8


@functools.cache
def tune_allocator() -> bool:
    """Stop glibc from returning big tensor buffers to the OS after every step, and keep
    them all in one arena.

    Eager training frees and re-allocates the same large activations each step; with
    glibc's defaults each one is a fresh mmap and page-faulted again, which costs up to
    3x on a small CPU. Kept in the heap instead, they would by default be spread over one
    arena per thread that ever allocated, each grown to its own high-water mark and
    fragmented differently by every GOP, so a long encode's peak kept creeping up. One
    shared arena reuses the same buffers whatever thread asks (docs/performance.md has
    the numbers); encodes stay as fast and byte-identical. Threads that already have an
    arena keep it, so this is called before an encode starts any.
    Returns False where the C library is not glibc.
    """
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    return (bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, 1 << 30))
            and bool(mallopt(_M_ARENA_MAX, 1)))


@functools.cache
def freeze_long_lived() -> None:
    """Take what is alive at the first fit (mostly imported modules) out of the garbage
    collector's full passes.

    A fitting step allocates a few hundred small Python objects, enough for a full pass
    every few hundred steps, and each pass re-walked torch's hundreds of thousands of
    module objects: 0.3 ms of every 10 ms city step (measured), 0.06 ms once frozen.
    """
    gc.freeze()


def kernel_cores(device: str | None = "auto", cores: int | None = None) -> int:
    """Give a process's cores to the native kernel: on a CPU where the kernel builds,
    torch's own ops run on one thread from now on, and the ``cores`` (default torch's
    thread count) are the kernel's pool. Elsewhere torch keeps them (``cores`` of them,
    when given). Returns the pool size, the ``threads`` to pass the library.

    Idle torch workers spin for work after each small op and take the cores the kernel's
    chunks run on: carphone's 48-frame encode took 121.0 s with torch on two threads
    beside the kernel's two, 92.7 s with torch on one (same bytes).
    """
    cores = torch.get_num_threads() if cores is None else max(1, cores)
    native = resolve_device(device).type == "cpu" and can_build()
    torch.set_num_threads(1 if native else cores)
    return cores
