"""actinr: a video codec built on ActINR bias-modulated neural representations.

    import actinr_codec as actinr

    report = actinr.encode("in.mp4", "out.anr", actinr.EncodeOptions(quality=4))
    with actinr.open("out.anr") as video:
        frame = video.frame(3.5, scale=4)      # between frames 3 and 4, 4x the size

The pipeline, one stage a package: model/ (the network, its tiling, rendering and the
format's model layer), fitting/ (the fit and its sampler), native/ (the C kernel both
use), quantization/, pipeline/ (presets, GOPs, the GOP encoder and decoder), parallel/
(segments on local processes or a Dask cluster), restoration/ (denoising, masks), media/
(video files via PyAV). bitstream/, beside this package, is the container and entropy
coding.
"""

__version__ = "0.1.0"

_API = ("AnrVideo", "DecodeReport", "EncodeOptions", "EncodePlan", "EncodeReport", "Progress",
        "decode", "encode", "open")


def __getattr__(name: str):
    # The API imports torch (a second or two); `actinr --version` and bitstream users
    # should not pay for it.
    if name in _API:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'actinr_codec' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_API])
