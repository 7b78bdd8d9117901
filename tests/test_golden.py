"""End-to-end goldens: committed .anr files decode to the frames stored beside them.

tests/golden/vN/ holds tiny files of format version N (NAME.anr, one per activation),
what they decoded to when they were made (NAME.npz) and their checksums (manifest.json).
Every version's folder stays and must keep passing when the format moves on: a file
decodes the same forever.
tests/golden/make_golden.py writes the folder of a new version.

Tolerance: a decoded frame is expected to be bit-identical, and is on the machine that
made it. On another CPU, float32 matrix products can sum in another order (other SIMD
widths) and move a colour lying within a rounding error of a level boundary to the next
8-bit level, so a frame may differ by one level in at most 1 % of its samples; anything
more is a change of what the file means.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

import actinr_codec as actinr

GOLDEN = Path(__file__).parent / "golden"
VERSIONS = sorted(GOLDEN.glob("v*/manifest.json"))
MAX_LEVEL_DIFF = 1
MAX_DIFFERING_FRACTION = 0.01


def test_there_is_a_golden_for_the_current_format():
    from bitstream import FORMAT_VERSION

    assert GOLDEN / f"v{FORMAT_VERSION}" / "manifest.json" in VERSIONS


def assert_same_frames(got: np.ndarray, want: np.ndarray) -> None:
    assert got.shape == want.shape and got.dtype == np.uint8
    diff = np.abs(got.astype(np.int16) - want.astype(np.int16))
    assert diff.max() <= MAX_LEVEL_DIFF, f"frames differ by up to {diff.max()} levels"
    assert np.mean(diff > 0) <= MAX_DIFFERING_FRACTION


def goldens() -> list[tuple[Path, str, dict]]:
    """(folder, file name, its manifest entry) of every golden file of every version."""
    out = []
    for manifest_path in VERSIONS:
        manifest = json.loads(manifest_path.read_text())
        out += [(manifest_path.parent, name, entry) for name, entry in manifest["files"].items()]
    return out


@pytest.mark.parametrize(("folder", "name", "entry"), goldens(),
                         ids=[f"{folder.name}-{name}" for folder, name, _ in goldens()])
def test_golden_decodes_to_its_stored_frames(folder, name, entry):
    data = (folder / f"{name}.anr").read_bytes()
    assert hashlib.sha256(data).hexdigest() == entry["anr_sha256"], "the golden file changed"
    stored = np.load(folder / f"{name}.npz")
    with actinr.open(data, "cpu") as video:
        for render_name, render in entry["renders"].items():
            want = stored[render_name]
            # The stored frames are the ones the checksums describe.
            assert [hashlib.sha256(f.tobytes()).hexdigest() for f in want] == render["frame_sha256"]
            size = None if render["size"] is None else tuple(render["size"])
            assert_same_frames(video.render(render["times"], size=size), want)
        stamps = video.timestamps
        assert (None if stamps is None else {"num": stamps.num, "den": stamps.den,
                                             "pts": list(stamps.pts)}) == entry.get("timestamps")
        carried = hashlib.sha256(video.carried()).hexdigest() if video.carried_size else None
        assert carried == entry.get("carried_sha256")


def test_the_tolerance_catches_a_changed_decode():
    folder, name, entry = goldens()[0]
    want = np.load(folder / f"{name}.npz")["playback"]
    times = entry["renders"]["playback"]["times"]
    assert times == [float(t) for t in range(len(times))]
    with actinr.open(folder / f"{name}.anr", "cpu") as video:
        shifted = video.render([t + 0.1 if t < times[-1] else t - 0.1 for t in times])
    with pytest.raises(AssertionError):
        assert_same_frames(shifted, want)
