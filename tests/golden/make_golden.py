"""Write a golden .anr and the frames it decodes to: tests/golden/vN/ for format version N.

    python tests/golden/make_golden.py 1

Run it only when the format changes on purpose, for the new version: earlier versions'
folders stay as they are, and test_golden.py keeps decoding every one of them. A folder
that exists is never overwritten. The encodes are tiny (seconds) but depend on this
machine's floating point, so the .anr files themselves are the goldens, not the encoder's
bytes.
"""

from __future__ import annotations

import hashlib
import json
import platform
import subprocess
import sys
import tempfile
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parents[1]))

from synthetic import moving_pattern, write_av_clip  # noqa: E402

import actinr_codec as actinr  # noqa: E402
from actinr_codec.fitting.config import FitConfig  # noqa: E402
from actinr_codec.model.config import ModelConfig  # noqa: E402
from actinr_codec.pipeline.options import EncodeOptions  # noqa: E402
from actinr_codec.pipeline.settings import EncodeSettings  # noqa: E402
from bitstream import FORMAT_VERSION  # noqa: E402


def _golden(size: tuple[int, int], frames: int, gop: int, keyint: int, cut: int | None = None,
            times: list[Fraction] | None = None, **model) -> dict:
    width, height = size
    return {"frames": frames, "height": height, "width": width, "cut": cut, "times": times,
            "settings": EncodeSettings(
                model=ModelConfig(width=8, depth=2, n_freqs=4, bias_hidden=8, latent_dim=4,
                                  **model),
                fit=FitConfig(iters=300, points=64, seed=5), gop_size=gop, noise_db=6.0,
                qat_iters=50, keyint=keyint, scenecut=cut is not None)}


# Between them: every activation, blended and hard tile edges, seeds other than 0, GOP
# boundaries, chains of predicted GOPs, keyframes, a scene cut, and renders between
# frames, at twice the size and at an odd size. (Version 1's files are all intra; from
# version 3 one moves its tiles, ModelConfig.motion; from version 4 one is encoded from an
# mkv with uneven frame times and an AAC track, so it carries both in its side section.)
UNEVEN = [Fraction(k, 30) for k in range(4)] + [Fraction(3, 30) + Fraction(k, 15)
                                                for k in range(1, 5)]
FILES = {
    "sine": _golden((40, 28), 8, 3, 250, tile=16, overlap=2, seed=5, motion=0),
    "gaussian": _golden((36, 20), 8, 3, 4, tile=16, overlap=0, activation="gaussian",
                        omega=10.0, gabor_scale=3.0, seed=-7, motion=1),
    "gabor": _golden((30, 26), 8, 4, 250, cut=4, tile=12, overlap=1, activation="gabor",
                     omega=8.0, gabor_scale=2.0, seed=123456789, motion=0),
    "timed": _golden((32, 24), 8, 4, 250, times=UNEVEN, tile=16, overlap=2, seed=11, motion=1),
    # From version 5: pictures (latent grids), three frames of an odd size with a level
    # of one row, rendered between pictures (blends) and at other sizes.
    "picture": {"frames": 3, "height": 17, "width": 26, "cut": None, "times": None,
                "options": EncodeOptions(representation="latent", iters=300, seed=3)},
}


def clip(golden: dict) -> np.ndarray:
    """The golden's source: a moving pattern, and after a cut a different one."""
    frames = moving_pattern(golden["frames"], golden["height"], golden["width"])
    if golden["cut"] is not None:
        other = moving_pattern(golden["frames"], golden["height"], golden["width"], speed=2)
        frames[golden["cut"]:] = other[golden["cut"]:, :, :, ::-1] // 2
    return frames


def renders(frames: int, width: int, height: int) -> dict:
    """name: (times, (width, height) or None for the source size)."""
    last = frames - 1
    return {
        "playback": ([float(t) for t in range(frames)], None),
        "between_2x": ([t + 0.5 for t in range(last)], (2 * width, 2 * height)),
        "odd_size": ([1.3, last - 0.1], (width + width // 2 - 3, height + 3)),
    }


def encoded(golden: dict) -> bytes:
    """The golden's .anr: from its frames, or from a media file at its uneven times with a
    tone beside them."""
    if "options" in golden:
        return actinr.encode(clip(golden), None, golden["options"], fps=Fraction(25)).data
    if golden["times"] is None:
        return actinr.encode(clip(golden), None, fps=Fraction(25),
                             settings=golden["settings"]).data
    with tempfile.TemporaryDirectory() as folder:
        source = write_av_clip(Path(folder) / "timed.mkv", clip(golden), golden["times"], "aac")
        return actinr.encode(source, None, settings=golden["settings"]).data


def side_entry(video) -> dict:
    """What the manifest holds of a file's side section: its timestamps and the SHA-256 of
    its carried streams, where it has them."""
    entry = {}
    if video.timestamps is not None:
        stamps = video.timestamps
        entry["timestamps"] = {"num": stamps.num, "den": stamps.den, "pts": list(stamps.pts)}
    if video.carried_size:
        entry["carried_sha256"] = sha256(video.carried())
    return entry


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def main(version: int) -> None:
    if version != FORMAT_VERSION:
        sys.exit(f"this tree writes format version {FORMAT_VERSION}, not {version}")
    out = HERE / f"v{version}"
    if out.exists():
        sys.exit(f"{out} exists: goldens of a released version are never rewritten")
    torch.set_num_threads(1)
    out.mkdir()
    files = {}
    for name, golden in FILES.items():
        data = encoded(golden)
        wanted = renders(golden["frames"], golden["width"], golden["height"])
        with actinr.open(data, "cpu") as video:
            rendered = {r: video.render(times, size=size) for r, (times, size) in wanted.items()}
            side = side_entry(video)
        (out / f"{name}.anr").write_bytes(data)
        np.savez_compressed(out / f"{name}.npz", **rendered)
        files[name] = {
            "anr_sha256": sha256(data),
            "renders": {r: {"times": times, "size": size,
                            "frame_sha256": [sha256(f.tobytes()) for f in rendered[r]]}
                        for r, (times, size) in wanted.items()}, **side}
        with actinr.open(data, "cpu") as video:
            kinds = video.kinds
        print(f"{name}.anr: {len(data)} bytes, GOP kinds {kinds}")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, cwd=HERE).stdout.strip()
    manifest = {
        "format_version": version, "files": files,
        "made_with": {"commit": commit, "torch": torch.__version__,
                      "machine": f"{platform.machine()} {platform.processor()}".strip()},
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main(int(sys.argv[1]))
