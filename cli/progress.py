"""Encoding progress: a live line per GOP on a terminal, plain log lines otherwise."""

from __future__ import annotations

import sys
import time
from typing import TextIO

import click

from actinr_codec.api import Progress


class GOPProgress:
    """Shows an encode's Progress events: the plan, then each GOP's running PSNR, elapsed
    time and ETA (live, terminals only) and its final line."""

    def __init__(self, scheduler: str | None = None, jobs: int = 1,
                 stream: TextIO | None = None):
        self.scheduler, self.jobs = scheduler, jobs
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty()
        self.started = time.perf_counter()
        self.done = 0

    def __call__(self, event: Progress) -> None:
        getattr(self, f"_{event.kind}")(event)

    def _start(self, event: Progress) -> None:
        plan = event.plan
        if plan.noise_level is not None:
            click.echo(f"actinr: estimated noise {plan.noise_level:.2f} (8-bit levels); "
                       f"--denoise {plan.noise_level:.2f} gives the same", err=True)
        where = (f"device {plan.device}, {self.jobs} job(s)" if self.scheduler is None
                 else f"device {plan.device} on the Dask cluster at {self.scheduler}")
        click.echo(f"actinr: {plan.width}x{plan.height}, {plan.frames} frames at {plan.fps} fps, "
                   f"{len(plan.gops)} GOPs, {where}", err=True)
        self.started = time.perf_counter()

    def _fraction(self, event: Progress) -> float:
        fit = event.plan.settings.fit
        done = event.step / fit.iters
        if fit.seconds:
            done = max(done, event.seconds / fit.seconds)
        return min(1.0, done)

    def _step(self, event: Progress) -> None:
        """Redraws the live line (terminals only)."""
        if not self.live:
            return
        frac = self._fraction(event)
        eta = event.seconds * (1 - frac) / frac if frac > 0 else 0.0
        bar = "#" * int(20 * frac)
        self.stream.write(f"\rGOP {event.gop + 1}/{len(event.plan.gops)} [{bar:<20}] "
                          f"{event.psnr:5.2f} dB {event.seconds:5.0f}s ETA {eta:4.0f}s ")
        self.stream.flush()

    def _gop(self, event: Progress) -> None:
        """Final line for a GOP: replaces the live line, or is logged as it is."""
        r, total = event.report, len(event.plan.gops)
        self.done += 1
        elapsed = time.perf_counter() - self.started
        left = elapsed / self.done * (total - self.done)
        line = (f"GOP {event.gop + 1}/{total}: frames {r.frames.start}-{r.frames.stop - 1}, "
                f"{r.psnr:.2f} dB (float {r.psnr_float:.2f}), {r.iters} steps in "
                f"{r.seconds:.1f}s (total {elapsed:.0f}s, ETA {left:.0f}s)")
        # On a terminal, overwrite the live line and clear what is left of it.
        self.stream.write(f"\r{line}\x1b[K\n" if self.live else f"{line}\n")
        self.stream.flush()
