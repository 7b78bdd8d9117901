"""The ``actinr eval`` commands: rate-distortion, restoration, denoising and inpainting runs,
saved as JSON, CSV and PNG."""

from __future__ import annotations

import dataclasses
import functools
import re
from pathlib import Path

import click

from actinr_codec.pipeline.gop import MAX_GOP
from actinr_codec.pipeline.options import EncodeOptions
from actinr_codec.pipeline.presets import MAX_QUALITY, MIN_QUALITY, PRESETS

from .errors import exits_cleanly, refuse_overwrite
from .process import tune_process

# actinr encodes in an evaluation as `actinr encode` does unless told otherwise.
DEFAULTS = EncodeOptions()

QUALITY_OPTION = click.option("-q", "--quality", type=click.IntRange(MIN_QUALITY, MAX_QUALITY),
                              default=DEFAULTS.quality, show_default=True, help="actinr quality.")

EPILOG_RD = """\b
Examples:
  actinr eval rd clip.mkv --out results/rd
  actinr eval rd clip.mkv --out results/intra --intra 10     frame 10 alone, x264 keyint 1
  actinr eval rd a.mkv b.mkv --out r --qualities 2,5,8 --crfs 22,27,32,37 --frames 48
"""

EPILOG_RESTORE = """\b
Examples:
  actinr eval restore clip.mkv --out results/restore
  actinr eval restore clip.mkv --out r --steps 2,4 --scale 4 --combined --frames 33
"""

EPILOG_DENOISE = """\b
Examples:
  actinr eval denoise clip.mkv --out results/denoise --frames 16
  actinr eval denoise a.mkv b.mkv --out r --noise-seed 3 --no-plain
"""

EPILOG_INPAINT = """\b
Examples:
  actinr eval inpaint clip.mkv --out results/inpaint --frames 16
"""


def _ints(low: int, high: int):
    """A click callback reading a comma-separated list of integers in low..high."""

    def parse(ctx, param, value: str) -> list[int]:
        try:
            values = [int(v) for v in value.split(",") if v.strip()]
        except ValueError:
            message = f"{value!r} is not a comma-separated list of integers"
            raise click.BadParameter(message) from None
        if any(not low <= v <= high for v in values):
            raise click.BadParameter(f"values must lie in {low}..{high}")
        return values

    return parse


def _shared_options(command):
    """Options every eval command takes: where to write, which frames, how actinr encodes."""
    options = [
        click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
                     help="Folder for the results (created if missing)."),
        click.option("--start", type=click.IntRange(0), default=0, show_default=True,
                     help="First frame of each clip."),
        click.option("--frames", type=click.IntRange(1), default=None,
                     help="Frames per clip (default: all)."),
        click.option("--preset", type=click.Choice(list(PRESETS)),
                     default=DEFAULTS.preset, show_default=True, help="actinr preset."),
        click.option("--gop", type=click.IntRange(2, MAX_GOP), default=DEFAULTS.gop,
                     show_default=True, help="actinr GOP length."),
        click.option("--representation", type=click.Choice(["auto", "latent", "mlp"]),
                     default=DEFAULTS.representation, show_default=True,
                     help="actinr's representation (actinr encode --representation)."),
        click.option("--iters", type=click.IntRange(1), default=DEFAULTS.iters,
                     help="actinr fitting steps per GOP, overriding the preset's."),
        click.option("--seed", type=int, default=DEFAULTS.seed, show_default=True),
        click.option("--device", default=DEFAULTS.device, show_default=True),
        click.option("--jobs", type=click.IntRange(1, 64), default=DEFAULTS.jobs, show_default=True,
                     help="actinr GOP segments fitted in parallel processes."),
        click.option("-y", "--overwrite", is_flag=True, help="Replace earlier results in --out."),
    ]
    return functools.reduce(lambda fn, option: option(fn), reversed(options), command)


def _load(clips: tuple[str, ...], start: int, frames: int | None) -> list[tuple]:
    """(name, path, frames, info) of each clip, named by file stem, made unique."""
    from actinr_codec.media.videoio import read_video

    loaded, names = [], set()
    for path in clips:
        video, info = read_video(path, start=start, count=frames)
        name, k = Path(path).stem, 1
        while name in names:
            k += 1
            name = f"{Path(path).stem}-{k}"
        names.add(name)
        loaded.append((name, path, video, info))
    return loaded


def _begin(out: Path, protocol: str, overwrite: bool, clips, start, frames,
           actinr: EncodeOptions) -> tuple[list[tuple], EncodeOptions]:
    """Check the optional libraries and the output folder, read the clips and tune the
    process: the clips, and actinr's options with the cores the process gives it."""
    from evaluation import OPTIONAL, require

    for name in OPTIONAL:
        require(name)
    refuse_overwrite(out / f"{protocol}.json", overwrite)
    loaded = _load(clips, start, frames)
    (out / "anr").mkdir(parents=True, exist_ok=True)
    return loaded, dataclasses.replace(actinr, threads=tune_process(actinr.device))


def _save(out: Path, protocol: str, options: dict, loaded: list[tuple], rows: list[dict],
          **extra) -> dict:
    """Write <protocol>.json (everything) and <protocol>.csv (one line per row)."""
    from evaluation.report import provenance, write_csv, write_json

    origin = provenance()
    clips = [{"name": name, "path": str(path), "width": info.width, "height": info.height,
              "frames": info.frames, "fps": str(info.fps)} for name, path, _, info in loaded]
    write_json(out / f"{protocol}.json", {"protocol": protocol, "provenance": origin,
                                          "options": options, "clips": clips, "rows": rows,
                                          **extra})
    write_csv(out / f"{protocol}.csv", rows, {"git_commit": origin["git_commit"],
                                              "actinr_version": origin["actinr_version"]})
    return origin


def _actinr_options(kwargs: dict):
    """actinr's encoding options, checked before any work starts."""
    from actinr_codec.runtime import resolve_device

    resolve_device(kwargs["device"])
    return EncodeOptions(**{k: kwargs[k] for k in ("preset", "gop", "seed", "iters",
                                                     "device", "jobs", "representation")})


def _fmt(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _echo_table(rows: list[dict], columns: list[tuple[str, str, str]]) -> None:
    """A header line, then one line per row; columns are (title, key, format spec), the
    spec's number is the column width, and a missing or None value prints as '-'."""
    widths = [int(re.search(r"\d+", spec).group()) for _, _, spec in columns]
    click.echo(" ".join(title.ljust(w) if spec.startswith("<") else title.rjust(w)
                        for (title, _, spec), w in zip(columns, widths)))
    for row in rows:
        click.echo(" ".join(_fmt(row.get(key), spec).rjust(w)
                            for (_, key, spec), w in zip(columns, widths)))


@click.group("eval")
def evaluate() -> None:
    """Rate-distortion, restoration, denoising and inpainting against baselines.

    Needs the eval extra: pip install 'actinr[eval]'. See docs/evaluation.md.
    """


@evaluate.command(epilog=EPILOG_RD)
@click.argument("clips", nargs=-1, required=True)
@click.option("--qualities", default="2,4,6,8", show_default=True, callback=_ints(0, 10),
              help="actinr qualities, comma-separated.")
@click.option("--crfs", default="22,27,32,37", show_default=True, callback=_ints(0, 51),
              help="x264/x265 CRFs, comma-separated.")
@click.option("--codecs", default="x264,x265", show_default=True,
              help="Baselines, comma-separated (x264, x265, x264-444: x264 in yuv444p, the "
                   "PSNR-RGB anchor); empty for none.")
@click.option("--keyint", type=click.IntRange(1), default=None,
              help="The baselines' fixed GOP length, scene cuts off.  "
                   "[default: their own, 250 with scene cuts]")
@click.option("--intra", type=click.IntRange(0), default=None, metavar="FRAME",
              help="Single-frame protocol: frame FRAME of each clip alone, the baselines "
                   "at keyint 1 (intra); excludes --start, --frames and --keyint.")
@_shared_options
@exits_cleanly
def rd(clips, qualities, crfs, codecs, keyint, intra, out, overwrite, start, frames, **kwargs):
    """Rate-distortion curves of actinr and x264/x265 on each CLIP, with BD-rates."""
    from evaluation.baselines import CODECS
    from evaluation.bdrate import bd_table
    from evaluation.plots import plot_rd
    from evaluation.protocols import rd_clip
    from evaluation.report import write_csv

    codecs = [c.strip() for c in codecs.split(",") if c.strip()]
    if unknown := set(codecs) - set(CODECS):
        raise click.BadParameter(f"unknown baseline {sorted(unknown)[0]!r}", param_hint="--codecs")
    if not qualities:
        raise click.BadParameter("no quality given", param_hint="--qualities")
    if intra is not None:
        if start or frames is not None or keyint is not None:
            raise click.UsageError("--intra excludes --start, --frames and --keyint")
        start, frames, keyint = intra, 1, 1
    actinr = _actinr_options(kwargs)
    loaded, actinr = _begin(out, "rd", overwrite, clips, start, frames, actinr)
    options = {"qualities": qualities, "crfs": crfs, "codecs": codecs, "keyint": keyint,
               "start": start, "frames": frames, "intra": intra, **kwargs}
    points = []
    for name, _, video, info in loaded:
        clip_points = rd_clip(name, video, info.fps, qualities, crfs, codecs, actinr,
                              out / "anr", keyint)
        plot_rd(out / f"rd_{name}.png", name, clip_points)
        points += clip_points
    bd = bd_table(points)
    origin = _save(out, "rd", options, loaded, points, bd=bd)
    write_csv(out / "bd.csv", bd, {"git_commit": origin["git_commit"]})
    click.echo(f"{'clip':<16} {'codec':<7} {'set':>3} {'bpp':>8} {'YUV420':>8} {'PSNR-RGB':>8} "
               f"{'PSNR-YUV':>8} {'MS-SSIM':>7} {'enc s':>7} {'dec s':>6}")
    for p in points:
        click.echo(f"{p['clip']:<16} {p['codec']:<7} {p['setting']:>3} {p['bpp']:8.4f} "
                   f"{p['psnr_yuv420']:8.2f} {p['psnr_rgb']:8.2f} {p['psnr_yuv']:8.2f} "
                   f"{_fmt(p['ms_ssim'], '7.4f')} "
                   f"{p['encode_s']:7.2f} {p['decode_s']:6.2f}")
    for row in bd:
        click.echo(f"BD {row['test']} vs {row['anchor']} ({row['metric']}, {row['clip']}): "
                   f"rate {_fmt(row['bd_rate'], '+.2f')}%, PSNR {_fmt(row['bd_psnr'], '+.3f')} dB")
        if row["warning"]:
            click.echo(f"warning: {row['clip']}, {row['anchor']}, {row['metric']}: "
                       f"{row['warning']}", err=True)
    click.echo(f"wrote {out}/rd.json, rd.csv, bd.csv and {len(loaded)} plot(s)", err=True)


@evaluate.command(epilog=EPILOG_RESTORE)
@click.argument("clips", nargs=-1, required=True)
@click.option("--steps", default="2,4,8", show_default=True, callback=_ints(2, 64),
              help="Slow motion: keep every k-th frame, for each k; empty for none.")
@click.option("--scale", type=click.IntRange(1, 16), default=4, show_default=True,
              help="Super-resolution factor; 1 for none.")
@click.option("--combined", is_flag=True, help="Also SCALE x smaller and every 2nd frame.")
@QUALITY_OPTION
@_shared_options
@exits_cleanly
def restore(clips, steps, scale, combined, quality, out, overwrite, start, frames, **kwargs):
    """Slow motion and super-resolution from actinr against interpolation baselines."""
    from evaluation.baselines import MINTERPOLATE, UPSCALERS
    from evaluation.plots import plot_pictures, plot_restore
    from evaluation.protocols import restore_clip

    tasks = [(1, k) for k in steps] + [(scale, 1)] * (scale > 1) + [(scale, 2)] * combined
    if not tasks or combined and scale == 1:
        raise click.UsageError("nothing to do: give --steps, a --scale above 1, or both "
                               "with --combined")
    actinr = _actinr_options(kwargs)
    loaded, actinr = _begin(out, "restore", overwrite, clips, start, frames, actinr)
    options = {"steps": steps, "scale": scale, "combined": combined, "quality": quality,
               "start": start, "frames": frames, **kwargs}
    rows = []
    for name, _, video, info in loaded:
        clip_rows = []
        for s, k in tasks:
            task_rows, shown = restore_clip(name, video, info.fps, s, k, quality, actinr,
                                            out / "anr")
            task = task_rows[0]["task"]
            plot_pictures(out / f"frame_{name}_{task}_s{s}_k{k}.png",
                          f"{name}, {task} ({s}x size, {k}x frames): frame {shown.frame}",
                          shown.pictures)
            clip_rows += task_rows
        plot_restore(out / f"restore_{name}.png", name, clip_rows)
        rows += clip_rows
    _save(out, "restore", options, loaded, rows,
          baselines={"minterpolate": MINTERPOLATE, "upscalers": list(UPSCALERS),
                     "downscale": "area (mean of each block)"})
    click.echo(f"{'clip':<16} {'task':<9} {'size':>4} {'rate':>4} {'method':<30} "
               f"{'PSNR-RGB':>8} {'PSNR-YUV':>8} {'MS-SSIM':>7} {'coded':>6}")
    for r in rows:
        click.echo(f"{r['clip']:<16} {r['task']:<9} {r['scale']:>3}x {r['step']:>3}x "
                   f"{r['method']:<30} {r['psnr_rgb']:8.2f} {r['psnr_yuv']:8.2f} "
                   f"{_fmt(r['ms_ssim'], '7.4f')} {_fmt(r.get('coded_psnr_rgb'), '6.2f')}")
    click.echo(f"wrote {out}/restore.json, restore.csv, {len(loaded)} plot(s) and "
               f"{len(loaded) * len(tasks)} picture(s) of one frame per method", err=True)


@evaluate.command(epilog=EPILOG_DENOISE)
@click.argument("clips", nargs=-1, required=True)
@click.option("--noise-seed", type=int, default=0, show_default=True,
              help="Seed of the Poisson-Gaussian noise.")
@click.option("--plain/--no-plain", default=True, show_default=True,
              help="Also encode the noisy clip without --denoise.")
@QUALITY_OPTION
@_shared_options
@exits_cleanly
def denoise(clips, noise_seed, plain, quality, out, overwrite, start, frames, **kwargs):
    """Denoising: actinr --denoise on noisy clips against tuned FFmpeg denoisers."""
    from evaluation.denoise import DENOISERS, PHOTONS, READ_NOISE, denoise_clip

    actinr = _actinr_options(kwargs)
    loaded, actinr = _begin(out, "denoise", overwrite, clips, start, frames, actinr)
    options = {"noise_seed": noise_seed, "plain": plain, "quality": quality, "start": start,
               "frames": frames, **kwargs}
    rows = [row for name, _, video, info in loaded
            for row in denoise_clip(name, video, info.fps, quality, actinr, out / "anr",
                                    noise_seed, plain)]
    _save(out, "denoise", options, loaded, rows,
          noise=f"y = (Poisson({PHOTONS:g} x) + N(0, {READ_NOISE:g})) / {PHOTONS:g}, 8-bit",
          baselines={name: {"filter": spec, "strengths": list(grid)}
                     for name, (spec, grid) in DENOISERS.items()})
    _echo_table(rows, [("clip", "clip", "<16"), ("method", "method", "<17"),
                       ("PSNR-RGB", "psnr_rgb", "8.2f"), ("PSNR-YUV", "psnr_yuv", "8.2f"),
                       ("MS-SSIM", "ms_ssim", "7.4f"), ("bpp", "bpp", "7.3f"),
                       ("setting", "setting", "<1")])
    for name, _, _, _ in loaded:
        first = next(r for r in rows if r["clip"] == name)
        click.echo(f"{name}: noise RMS {first['noise_rms']:.2f}, estimated "
                   f"{first['noise_estimated']:.2f} (8-bit levels)")
    click.echo(f"wrote {out}/denoise.json and denoise.csv", err=True)


@evaluate.command(epilog=EPILOG_INPAINT)
@click.argument("clips", nargs=-1, required=True)
@QUALITY_OPTION
@_shared_options
@exits_cleanly
def inpaint(clips, quality, out, overwrite, start, frames, **kwargs):
    """Inpainting: actinr --mask on two fixed masks against simple fills."""
    from evaluation.inpaint import FILLS, inpaint_clip

    actinr = _actinr_options(kwargs)
    loaded, actinr = _begin(out, "inpaint", overwrite, clips, start, frames, actinr)
    options = {"quality": quality, "start": start, "frames": frames, **kwargs}
    rows = [row for name, _, video, info in loaded
            for row in inpaint_clip(name, video, info.fps, quality, actinr, out / "anr")]
    _save(out, "inpaint", options, loaded, rows, baselines=[*FILLS, "removelogo"],
          masks={"squares": "five squares of side min(h, w) / 8 at (1/2, 1/2) and the "
                            "(1/4 or 3/4, 1/4 or 3/4) points",
                 "box": "one h/4 x w/4 box in the centre"})
    _echo_table(rows, [("clip", "clip", "<16"), ("mask", "mask", "<8"),
                       ("method", "method", "<14"), ("PSNR-RGB", "psnr_rgb", "8.2f"),
                       ("masked", "psnr_masked", "8.2f"), ("MS-SSIM", "ms_ssim", "7.4f"),
                       ("bpp", "bpp", "7.3f")])
    click.echo(f"wrote {out}/inpaint.json and inpaint.csv", err=True)
