"""Process-wide runtime settings: the compute device, the C allocator, the garbage
collector and compilation."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import gc
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import torch

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


@contextlib.contextmanager
def parallel_chunks(threads: int) -> Iterator[ThreadPoolExecutor]:
    """A pool of ``threads`` workers for independent chunks of work, each on one core.

    Small cache-sized chunks run faster whole on one core each than split op by op across
    cores, so torch's own intra-op threads drop to one until the pool closes.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with ThreadPoolExecutor(max(1, threads)) as pool:
            yield pool
    finally:
        torch.set_num_threads(before)
