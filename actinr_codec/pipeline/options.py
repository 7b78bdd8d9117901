"""What an encode is asked for: the one source of the product's defaults."""

from __future__ import annotations

from dataclasses import dataclass

from ..model.config import ModelConfig


@dataclass(frozen=True, kw_only=True)
class EncodeOptions:
    """What ``actinr encode`` asks for. ``EncodeOptions()`` is exactly what ``actinr encode
    IN OUT`` does: the command's option defaults, the evaluation commands and bench/ are
    read from this class, and presets.settings_for turns it into encoder settings.

    denoise: None to keep the noise, 0 to estimate its level, else the noise's standard
    deviation in 8-bit levels. keyint: an intra GOP at least every this many frames, the
    GOPs between predicted from the one before (1: all intra); scenecut: an intra GOP at
    each scene cut, as in x264. scheduler: a Dask scheduler address to fit on instead of
    ``jobs`` local processes; shared_input: there, workers read the source path themselves.
    native: fit with the C kernel where it applies; compile: torch.compile elsewhere
    (None: when the fit is long enough to repay it). model: the architecture, whose width
    the quality level then sets. resume: carry on from the journal an interrupted encode
    to the same output left (av1an's --resume); without one, start from the beginning.
    bitrate: average bits per second over the file, as x264's --bitrate means it
    (ratecontrol.py); target_size: the file's size in bytes instead. Either replaces
    ``quality``, which rate control picks to start from.
    threads: the cores the native kernel's pool uses (None: torch's thread count), and
    torch's own during a picture's fit, which leaves the kernel idle; the library changes
    torch's thread count for nothing else (actinr_codec/process.py).
    representation: "latent" codes every frame on its own as latent grids under a context
    model (a picture, format version 5; pipeline/pictures.py), "mlp" fits GOP models, and
    "auto" takes pictures for a one-frame source, where they measured 6.6-9.7 % under x264
    intra's bits against GOP models' 2.4-3.3 times them, unless the encode asks for what
    only GOP models do (a mask, denoising, rate control, a scheduler, jobs) or
    the frame's fit would need more than pipeline/pictures.MAX_FIT_BYTES, and GOP models
    for video, whose prediction between frames pictures do not have yet.
    """

    representation: str = "auto"

    quality: int = 4
    preset: str = "medium"
    # Frames per GOP. With prediction between GOPs (keyint) longer GOPs cost less: on the
    # 48-frame reference clips at quality 4, GOPs of 8, 16, 24, 32 and 48 frames measured
    # docs/design.md's table; 32 was best on both clips.
    gop: int = 32
    # x264's default: seeking decodes at most this many frames' worth of GOP parameters.
    keyint: int = 250
    scenecut: bool = True
    iters: int | None = None
    seed: int = 0
    device: str = "auto"
    jobs: int = 1
    segment: int | None = None
    scheduler: str | None = None
    shared_input: bool = False
    denoise: float | None = None
    native: bool = True
    compile: bool | None = None
    model: ModelConfig = ModelConfig()
    resume: bool = False
    threads: int | None = None
    bitrate: float | None = None
    target_size: int | None = None
    # Carry the source's audio and subtitle streams (copied packets, media.carry).
    audio: bool = True
    subtitles: bool = True
