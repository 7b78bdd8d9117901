"""The command owns its process: before fitting it tunes the allocator and the garbage
collector for long fits (actinr_codec/process.py says why), which the library itself never
does."""

from __future__ import annotations


def tune_process() -> None:
    from actinr_codec.process import freeze_long_lived, tune_allocator

    tune_allocator()
    freeze_long_lived()
