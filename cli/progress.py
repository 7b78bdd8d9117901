"""Encoding progress in ffmpeg's manner: frames done, fitting speed, size and bitrate so far,
and the time left for the whole video, on one live line on a terminal and as one line per
GOP otherwise (logs, pipes, CI)."""

from __future__ import annotations

import math
import sys
import time
from typing import TextIO

import click

from actinr_codec.api import EncodePlan, Progress
from bitstream.records import GOP_KINDS


def _clock(seconds: float, centiseconds: bool = False) -> str:
    """HH:MM:SS (or HH:MM:SS.cc, as ffmpeg's time=); --:--:-- when unknown."""
    if not math.isfinite(seconds):
        return "--:--:--"
    hundredths = int(round(seconds * 100)) if centiseconds else int(round(seconds)) * 100
    whole = hundredths // 100
    text = f"{whole // 3600:02d}:{whole // 60 % 60:02d}:{whole % 60:02d}"
    return f"{text}.{hundredths % 100:02d}" if centiseconds else text


def own_frames(plan: EncodePlan) -> list[int]:
    """Frames each GOP adds to the count done: a frame two GOPs share counts once."""
    starts = [g.start for g in plan.gops[1:]] + [plan.frames]
    return [b - g.start for g, b in zip(plan.gops, starts)]


class EncodeProgress:
    """Shows an encode's Progress events: the plan, each finished GOP, and a status of
    the whole encode (``frame= fps= size= time= bitrate= psnr= speed= eta=``)."""

    def __init__(self, scheduler: str | None = None, jobs: int = 1,
                 stream: TextIO | None = None):
        self.scheduler, self.jobs = scheduler, jobs
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty()
        self.started = time.perf_counter()
        self.plan: EncodePlan | None = None
        self.frames_done = self.frames_resumed = self.gops_resumed = self.bytes = 0
        self.announced = False
        self.psnrs: list[float] = []

    def __call__(self, event: Progress) -> None:
        getattr(self, f"_{event.kind}")(event)

    def _start(self, event: Progress) -> None:
        plan = self.plan = event.plan
        self.own = own_frames(plan)
        if plan.noise_level is not None:
            click.echo(f"actinr: estimated noise {plan.noise_level:.2f} (8-bit levels); "
                       f"--denoise {plan.noise_level:.2f} gives the same", err=True)
        where = (f"device {plan.device}, {self.jobs} job(s)" if self.scheduler is None
                 else f"device {plan.device} on the Dask cluster at {self.scheduler}")
        click.echo(f"actinr: {plan.width}x{plan.height}, {plan.frames} frames at {plan.fps} fps, "
                   f"{len(plan.gops)} GOPs, {where}", err=True)
        self.started = time.perf_counter()

    def _resume(self, event: Progress) -> None:
        self._count(event)
        self.frames_resumed += self.own[event.gop]
        self.gops_resumed += 1

    def _announce(self) -> None:
        """Once, before the first line of fitting: what an interrupted encode left."""
        if self.gops_resumed and not self.announced:
            click.echo(f"actinr: resuming with {self.gops_resumed} of {len(self.plan.gops)} "
                       f"GOPs ({self.frames_resumed} frames) from the journal", err=True)
        self.announced = True

    def _count(self, event: Progress) -> None:
        self.frames_done += self.own[event.gop]
        self.bytes += len(event.report.coded.chunk)
        self.psnrs.append(event.report.stats.psnr)

    def status(self, partial: float = 0.0) -> str:
        """The whole encode's state; ``partial``: frames of unfinished GOPs fitted so far.
        fps, speed and eta count only what this run fitted, not GOPs resumed from a journal."""
        plan = self.plan
        elapsed = time.perf_counter() - self.started
        done = self.frames_done + partial
        fitted = done - self.frames_resumed
        fps = fitted / elapsed if elapsed > 0 else 0.0
        media = self.frames_done / float(plan.fps)
        bitrate = (f"{self.bytes * 8 / media / 1000:7.1f}kbits/s" if media > 0
                   else "    N/A")
        eta = (plan.frames - done) / fps if fps > 0 else math.inf
        psnr = f"{sum(self.psnrs) / len(self.psnrs):5.2f}" if self.psnrs else "  N/A"
        return (f"frame={int(done):5d}/{plan.frames} fps={fps:5.2f} "
                f"size={self.bytes / 1024:7.0f}KiB time={_clock(media, True)} bitrate={bitrate} "
                f"psnr={psnr} speed={fitted / float(plan.fps) / elapsed if elapsed > 0 else 0:.3g}x "
                f"elapsed={_clock(elapsed)} eta={_clock(eta)}")

    def _step(self, event: Progress) -> None:
        """Redraws the live line (terminals only) within a GOP's fit."""
        if not self.live:
            return
        self._announce()
        fit = event.plan.settings.fit
        share = event.step / fit.iters
        # A picture's fit (fitting.latents.LatentFitConfig) has no time cap.
        if getattr(fit, "seconds", None):
            share = max(share, event.seconds / fit.seconds)
        partial = min(1.0, share) * self.own[event.gop]
        self.stream.write(f"\r{self.status(partial)} gop={event.gop + 1}\x1b[K")
        self.stream.flush()

    def _gop(self, event: Progress) -> None:
        """A finished GOP: its own line, then the status (live on a terminal, else on the
        same line)."""
        self._announce()
        self._count(event)
        gop, total = event.report, len(event.plan.gops)
        r = gop.stats
        line = (f"GOP {event.gop + 1}/{total} {GOP_KINDS[gop.kind]}: frames "
                f"{gop.frames.start}-{gop.frames.stop - 1}, {len(gop.coded.chunk)} bytes, "
                f"{r.psnr:.2f} dB (float {r.psnr_float:.2f}), {r.iters} steps in "
                f"{r.seconds:.1f}s")
        if self.live:
            self.stream.write(f"\r{line}\x1b[K\n{self.status()}\x1b[K")
        else:
            self.stream.write(f"{line} | {self.status()}\n")
        self.stream.flush()

    def finish(self) -> None:
        """Ends the live line before the closing message."""
        if self.live:
            self.stream.write("\n")
            self.stream.flush()
