"""The command owns its process: it gives its cores to the native kernel, and before
fitting it tunes the allocator and the garbage collector for long fits
(actinr_codec/process.py says why), which the library itself never does."""

from __future__ import annotations


def tune_process(device: str = "auto", fitting: bool = True) -> int:
    """Tune the process for work on ``device``; returns the ``threads`` to give the library.

    Only fitting gets the allocator's tuning: it keeps freed buffers for the next step,
    which a decode has no use for (its peak would grow by them).
    """
    from actinr_codec.process import freeze_long_lived, kernel_cores, tune_allocator

    if fitting:
        tune_allocator()
        freeze_long_lived()
    return kernel_cores(device)
