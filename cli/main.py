"""The ``actinr`` command: encode, decode, info and demo."""

from __future__ import annotations

import contextlib
import json
import sys
from fractions import Fraction
from pathlib import Path

import click

from actinr_codec import __version__
from actinr_codec.media.spool import spooled_stdin
from actinr_codec.media.videoio import STDOUT
from actinr_codec.pipeline.decoder import DEFAULT_MAX_MEMORY
from actinr_codec.pipeline.gop import MAX_GOP
from actinr_codec.pipeline.options import EncodeOptions
from actinr_codec.pipeline.presets import MAX_QUALITY, MIN_QUALITY, PRESETS
from bitstream.limits import MAX_SIDE

from .errors import exits_cleanly, refuse_overwrite
from .evaluate import evaluate
from .process import tune_process

# What `actinr encode IN OUT` does: every encode option's default is read from here.
DEFAULTS = EncodeOptions()

EPILOG_ENCODE = """\b
Examples:
  actinr encode in.mp4 out.anr
  actinr encode in.mkv out.anr --quality 2 --preset slow --gop 16
  actinr encode in.y4m out.anr --start 100 --frames 48 --jobs 2
  actinr encode in.mp4 out.anr --bitrate 500k     average 500 kbit/s over the file
  actinr encode 'frames/%04d.png' out.anr --fps 24
  actinr encode in.mp4 out.anr --scheduler tcp://head:8786 --segment 2
  actinr encode noisy.mp4 out.anr --denoise        noise level estimated
  actinr encode noisy.mp4 out.anr --denoise 12     noise of 12 levels of 255
  actinr encode in.mp4 out.anr --mask logo.png     fill the white pixels of logo.png
  ffmpeg -i in.mov -f yuv4mpegpipe - | actinr encode - out.anr
"""

EPILOG_DECODE = """\b
Examples:
  actinr decode out.anr video.mp4                  normal playback
  actinr decode out.anr big.mp4 --scale 4          4x super-resolution
  actinr decode out.anr slow.mp4 --fps-scale 2     2x slow motion (same frame rate)
  actinr decode out.anr v.mkv --fps 60 --lossless  resample to 60 fps, lossless
  actinr decode out.anr 'png/%04d.png' --start 1 --end 2.5
  actinr decode out.anr - | ffplay -               y4m to standard output
  actinr decode out.anr - -f mkv | ffmpeg -i - ...
"""


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="actinr")
def main() -> None:
    """actinr: a video codec built on ActINR bias-modulated neural representations.

    Each group of pictures is stored as a small network; decoding evaluates it at any
    time and resolution, for playback, slow motion and super-resolution.
    """


def _positive_fraction(value: str | None) -> Fraction | None:
    if value is None:
        return None
    try:
        rate = Fraction(value)
    except (ValueError, ZeroDivisionError):
        raise click.BadParameter(f"{value!r} is not a number or a ratio like 30000/1001") from None
    if rate <= 0:
        raise click.BadParameter("must be greater than 0")
    return rate


def _noise_level(ctx, param, value: str | None) -> float | None:
    """--denoise: None when absent, 0 to estimate, else a level in 8-bit units."""
    if value is None or value == "auto":
        return None if value is None else 0.0
    try:
        level = float(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a number of 8-bit levels, e.g. 10") from None
    if not 0 < level < 255:
        raise click.BadParameter("the noise level lies in (0, 255), in 8-bit levels")
    return level


def _bytes(value: str | None, option: str = "--max-memory") -> int:
    """--max-memory, --target-size: a byte count, with an optional K, M or G (powers of
    1024)."""
    if value is None:
        return DEFAULT_MAX_MEMORY
    text = value.strip().upper().removesuffix("B")
    scale = 1 << (10 * ("KMG".index(text[-1]) + 1)) if text[-1:] in ("K", "M", "G") else 1
    try:
        size = float(text[:-1] if scale > 1 else text) * scale
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a size such as 2G or 512M",
                                 param_hint=f"'{option}'") from None
    if not 1 <= size < 2**63:
        raise click.BadParameter("must be at least one byte", param_hint=f"'{option}'")
    return int(size)


def _bitrate(ctx, param, value: str | None) -> float | None:
    """--bitrate: bits per second, with an optional k, M or G (powers of 1000) as in
    ffmpeg's -b:v."""
    if value is None:
        return None
    text = value.strip()
    scale = 1000 ** ("KMG".index(text[-1].upper()) + 1) if text[-1:].upper() in ("K", "M", "G") else 1
    try:
        rate = float(text[:-1] if scale > 1 else text) * scale
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a rate such as 500k or 2M (bits per "
                                 f"second)") from None
    if not 0 < rate < 2**63:
        raise click.BadParameter("must be more than 0 bits per second")
    return rate


def _size(value: str | None) -> tuple[int, int] | None:
    if value is None:
        return None
    try:
        w, h = (int(v) for v in value.lower().split("x"))
    except ValueError:
        raise click.BadParameter(f"{value!r} is not WIDTHxHEIGHT, e.g. 1280x720") from None
    if not (1 <= w <= MAX_SIDE and 1 <= h <= MAX_SIDE):
        raise click.BadParameter(f"width and height must lie in 1..{MAX_SIDE}")
    return w, h


@main.command(epilog=EPILOG_ENCODE)
@click.argument("source")
@click.argument("output", type=click.Path(dir_okay=False, path_type=Path))
@click.option("-q", "--quality", type=click.IntRange(MIN_QUALITY, MAX_QUALITY),
              default=DEFAULTS.quality, show_default=True,
              help=f"{MIN_QUALITY} (best, biggest) .. {MAX_QUALITY} (smallest), like crf.")
@click.option("-b", "--bitrate", default=None, callback=_bitrate, metavar="RATE",
              help="Average bitrate over the file, in bits per second (500k, 2M: k, M, G "
                   "are powers of 1000, as in ffmpeg's -b:v); replaces --quality.")
@click.option("--target-size", default=None, metavar="SIZE",
              help="File size to aim for (bytes, or with K, M, G: powers of 1024); "
                   "replaces --quality.")
@click.option("--preset", type=click.Choice(list(PRESETS)), default=DEFAULTS.preset,
              show_default=True, help="Time/quality trade-off (see README).")
@click.option("--representation", type=click.Choice(["auto", "latent", "mlp"]),
              default=DEFAULTS.representation, show_default=True,
              help="latent: every frame on its own as latent grids (a picture, like x264 "
                   "--keyint 1); mlp: GOP models with prediction; auto: latent for a "
                   "single frame, mlp for video.")
@click.option("--gop", type=click.IntRange(2, MAX_GOP), default=DEFAULTS.gop, show_default=True,
              help="Frames per GOP, boundary frame shared.")
@click.option("--keyint", type=click.IntRange(1), default=DEFAULTS.keyint, show_default=True,
              help="Intra GOPs start at most this many frames apart; the GOPs between "
                   "predict from the one before (1: all intra).")
@click.option("--scenecut/--no-scenecut", default=DEFAULTS.scenecut, show_default=True,
              help="Start an intra GOP at each scene cut.")
@click.option("--start", type=click.IntRange(0), default=0, show_default=True,
              help="First frame to encode.")
@click.option("--frames", type=click.IntRange(1), default=None, help="Number of frames to encode.")
@click.option("--iters", type=click.IntRange(1), default=DEFAULTS.iters,
              help="Fitting steps per GOP, overriding the preset's.")
@click.option("--fps", "fps", default=None,
              help="Frame rate to store, overriding the source's (image sequences read at 25).")
@click.option("--device", default=DEFAULTS.device, show_default=True,
              help="cpu, cuda, cuda:N or auto.")
# No default of its own: given, it excludes --scheduler.
@click.option("--jobs", type=click.IntRange(1, 64), default=None,
              help=f"Local processes fitting GOP segments in parallel.  [default: {DEFAULTS.jobs}]")
@click.option("--segment", type=click.IntRange(1), default=DEFAULTS.segment,
              help="GOPs per segment, cut at the next intra GOP; segments are fitted "
                   "independently.  "
                   "[default: the GOPs split evenly over the jobs or cluster threads]")
@click.option("--scheduler", default=DEFAULTS.scheduler, metavar="tcp://HOST:PORT",
              help="Fit the segments on this Dask cluster (pip install 'actinr[dask]').")
@click.option("--shared-input", is_flag=True,
              help="With --scheduler: workers read SOURCE themselves (same path everywhere) "
                   "instead of receiving its frames.")
@click.option("--denoise", is_flag=False, flag_value="auto", default=None, metavar="[LEVEL]",
              callback=_noise_level,
              help="Store the signal without its noise. LEVEL is the noise's standard "
                   "deviation in 8-bit levels (of 255, e.g. 10); estimated from the video "
                   "when left out. Give it after SOURCE and OUTPUT, or as --denoise=LEVEL.")
@click.option("--mask", "mask_path", default=None, metavar="MASK",
              help="Inpaint: white pixels (luma >= 128) of MASK are unknown and filled. An "
                   "image masks every frame; a video masks its frame k onto source frame k.")
@click.option("--seed", type=int, default=DEFAULTS.seed, show_default=True,
              help="Seeds initialisation and sampling; same seed, same file on one machine.")
@click.option("--no-asm", "no_asm", is_flag=True,
              help="Fit with PyTorch alone, without the native C kernel that otherwise "
                   "fits on CPU (built with the system's C compiler on first use).")
@click.option("--compile/--no-compile", "compile_", default=DEFAULTS.compile,
              help="Where the native kernel does not apply (CUDA, --no-asm, activations "
                   "other than sine): fit through torch.compile.  "
                   "[default: when the fit is long enough to repay the compile time]")
@click.option("-an", "--no-audio", "no_audio", is_flag=True,
              help="Leave the source's audio out (by default its packets are carried "
                   "as they are).")
@click.option("-sn", "--no-subtitles", "no_subtitles", is_flag=True,
              help="Leave the source's subtitles out.")
@click.option("--resume", is_flag=True,
              help="Carry on from the GOPs an interrupted encode to OUTPUT finished, kept in "
                   "OUTPUT.journal; the same command and input give the same file as an "
                   "uninterrupted encode.")
@click.option("-y", "--overwrite", is_flag=True,
              help="Replace OUTPUT if it exists (and, without --resume, any journal of an "
                   "interrupted encode to it).")
@exits_cleanly
def encode(source, output, quality, bitrate, target_size, preset, representation, gop, keyint,
           scenecut, start,
           frames, iters, fps, device, jobs, segment, scheduler, shared_input, denoise,
           mask_path, seed, no_asm, compile_, no_audio, no_subtitles, resume, overwrite):
    """Encode SOURCE (any video PyAV reads, a %d image pattern, or - for standard input)
    into OUTPUT.anr."""
    from actinr_codec.api import encode as encode_video
    from actinr_codec.pipeline.journal import journal_path

    from .progress import EncodeProgress

    if scheduler is not None and jobs is not None:
        raise click.UsageError("--jobs and --scheduler are exclusive")
    given_quality = (click.get_current_context().get_parameter_source("quality")
                     != click.core.ParameterSource.DEFAULT)
    if given_quality + (bitrate is not None) + (target_size is not None) > 1:
        raise click.UsageError("--quality, --bitrate and --target-size are exclusive")
    if shared_input and scheduler is None:
        raise click.UsageError("--shared-input needs --scheduler")
    refuse_overwrite(output, overwrite)
    journal = journal_path(output)
    if journal.exists() and not (resume or overwrite):
        raise click.ClickException(f"{journal} holds an interrupted encode: --resume carries "
                                   f"on from it, -y starts over")
    options = EncodeOptions(
        quality=quality, bitrate=bitrate,
        target_size=None if target_size is None else _bytes(target_size, "--target-size"),
        preset=preset, representation=representation, gop=gop, iters=iters, seed=seed, device=device,
        keyint=keyint, scenecut=scenecut, jobs=jobs or DEFAULTS.jobs, segment=segment,
        scheduler=scheduler, shared_input=shared_input, denoise=denoise, native=not no_asm,
        compile=compile_, resume=resume, threads=tune_process(device), audio=not no_audio,
        subtitles=not no_subtitles)
    if source == STDOUT and shared_input:
        raise click.UsageError("--shared-input needs a SOURCE path the workers can read, not -")
    progress = EncodeProgress(scheduler, options.jobs)
    try:
        with contextlib.ExitStack() as stack:
            # Read twice (planning, then fitting), standard input goes to a file first.
            path = stack.enter_context(spooled_stdin()) if source == STDOUT else source
            report = encode_video(path, output, options, start=start, frames=frames,
                                  fps=_positive_fraction(fps), mask=mask_path,
                                  progress=progress)
    except KeyboardInterrupt:
        progress.finish()
        if journal.exists():
            click.echo(f"Finished GOPs are kept in {journal}; the same command with --resume "
                       f"carries on.", err=True)
        raise
    progress.finish()
    for note in report.notes:
        click.echo(f"note: {note}", err=True)
    aim = ""
    if options.bitrate is not None:
        aim = f" (target {options.bitrate / 1000:.1f}, {report.bitrate / options.bitrate - 1:+.1%})"
    elif options.target_size is not None:
        aim = f" (target {options.target_size} bytes, {report.size / options.target_size - 1:+.1%})"
    click.echo(f"wrote {output}: {report.size} bytes, {report.bpp:.4f} bpp, "
               f"{report.bitrate / 1000:.1f} kbit/s{aim}, mean GOP PSNR {report.psnr:.2f} dB",
               err=True)


@main.command(epilog=EPILOG_DECODE)
@click.argument("source", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("output")
@click.option("--scale", type=click.FloatRange(min=0, min_open=True, max=64), default=None,
              help="Resolution factor (0.5, 2, 4, ...).")
@click.option("--size", default=None, help="Output size WIDTHxHEIGHT.")
@click.option("--fps-scale", type=click.FloatRange(min=1, max=1000), default=None,
              help="Slow motion: F times as many frames, same frame rate.")
@click.option("--fps", default=None, help="Resample to this frame rate (e.g. 60 or 30000/1001).")
@click.option("--start", type=click.FloatRange(min=0), default=None, help="Start time, seconds.")
@click.option("--end", type=click.FloatRange(min=0), default=None, help="End time, seconds.")
@click.option("--lossless", is_flag=True, help="Lossless output (mp4/mkv).")
@click.option("-f", "--format", "format_", type=click.Choice(["y4m", "mkv", "mp4", "mov"]),
              default=None, help="Output format, overriding OUTPUT's extension.  "
                                 "[default: y4m when OUTPUT is - (standard output)]")
@click.option("--device", default="auto", show_default=True)
@click.option("--max-memory", default=None, metavar="SIZE",
              help="Refuse files and output sizes that would need more memory than this "
                   f"(bytes, or with K, M, G).  [default: {DEFAULT_MAX_MEMORY >> 30}G]")
@click.option("-an", "--no-audio", "no_audio", is_flag=True,
              help="Leave the carried audio out.")
@click.option("-sn", "--no-subtitles", "no_subtitles", is_flag=True,
              help="Leave the carried subtitles out.")
@click.option("-y", "--overwrite", is_flag=True, help="Replace OUTPUT if it exists.")
@exits_cleanly
def decode(source, output, scale, size, fps_scale, fps, start, end, lossless, format_, device,
           max_memory, no_audio, no_subtitles, overwrite):
    """Decode SOURCE.anr into OUTPUT (mp4, mkv, mov, y4m, a %d PNG pattern, or - for
    standard output)."""
    from actinr_codec.api import decode as decode_video

    if scale is not None and size is not None:
        raise click.UsageError("--scale and --size are exclusive")
    if fps_scale is not None and fps is not None:
        raise click.UsageError("--fps-scale and --fps are exclusive")
    if start is not None and end is not None and end < start:
        raise click.UsageError("--end lies before --start")
    refuse_overwrite(Path(output), overwrite)
    threads = tune_process(device, fitting=False)
    report = decode_video(source, output, scale=scale, size=_size(size), fps_scale=fps_scale,
                          fps=_positive_fraction(fps), start=start, end=end, lossless=lossless,
                          device=device, max_memory=_bytes(max_memory), threads=threads,
                          format=format_, audio=not no_audio, subtitles=not no_subtitles)
    for note in report.notes:
        click.echo(f"note: {note}", err=True)
    rate = report.frames / report.seconds
    where = "standard output" if output == STDOUT else output
    click.echo(f"wrote {where}: {report.frames} frames, {report.width}x{report.height} at "
               f"{report.fps} fps in {report.seconds:.2f}s ({rate:.1f} frames/s)", err=True)


@main.command()
@click.argument("source", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@exits_cleanly
def info(source, as_json):
    """Show the header, GOP table, sizes and model configuration of SOURCE.anr."""
    from .inspect import describe, format_text

    report = describe(source)
    click.echo(json.dumps(report, indent=2) if as_json else format_text(report))


@main.command()
@click.option("--outdir", type=click.Path(file_okay=False, path_type=Path), default=Path("actinr-demo"),
              show_default=True, help="Where the demo writes its files.")
@click.option("--preset", type=click.Choice(list(PRESETS)), default="fast", show_default=True)
@click.option("--iters", type=click.IntRange(1), default=None,
              help="Fitting steps per GOP, overriding the preset's (a quicker demo).")
@click.option("-y", "--overwrite", is_flag=True, help="Replace the demo's files in OUTDIR.")
@exits_cleanly
def demo(outdir, preset, iters, overwrite):
    """Generate a test clip, encode it, decode it at 2x scale and 2x slow motion."""
    from .demo import run_demo

    run_demo(outdir, preset, iters, overwrite)


main.add_command(evaluate)

if __name__ == "__main__":
    sys.exit(main())
