"""Encoding progress: a live line per GOP on a terminal, plain log lines otherwise."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class GOPProgress:
    """Reports fitting progress of GOP k of n: running PSNR, elapsed time and an ETA."""

    def __init__(self, total_gops: int, iters: int, seconds: float | None,
                 stream: TextIO | None = None):
        self.total, self.iters, self.seconds = total_gops, iters, seconds
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty()
        self.started = time.perf_counter()
        self.gop = 0

    def start_gop(self, k: int) -> None:
        self.gop = k

    def _fraction(self, it: int, seconds: float) -> float:
        done = it / self.iters
        if self.seconds:
            done = max(done, seconds / self.seconds)
        return min(1.0, done)

    def check(self, it: int, seconds: float, psnr: float) -> None:
        """Fitting callback; redraws the live line (terminals only)."""
        if not self.live:
            return
        frac = self._fraction(it, seconds)
        eta = seconds * (1 - frac) / frac if frac > 0 else 0.0
        bar = "#" * int(20 * frac)
        self.stream.write(f"\rGOP {self.gop + 1}/{self.total} [{bar:<20}] {psnr:5.2f} dB "
                          f"{seconds:5.0f}s ETA {eta:4.0f}s ")
        self.stream.flush()

    def done_gop(self, message: str) -> None:
        """Final line for a GOP: replaces the live line, or is logged as it is."""
        elapsed = time.perf_counter() - self.started
        left = elapsed / (self.gop + 1) * (self.total - self.gop - 1)
        line = (f"GOP {self.gop + 1}/{self.total}: {message} "
                f"(total {elapsed:.0f}s, ETA {left:.0f}s)")
        # On a terminal, overwrite the live line and clear what is left of it.
        self.stream.write(f"\r{line}\x1b[K\n" if self.live else f"{line}\n")
        self.stream.flush()
