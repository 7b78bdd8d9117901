"""The quality scale is monotonic: every level is smaller than the one before, and better
than the level three after it.

The levels' widths and prices (presets.QUALITY) are chosen from measurements on real
clips; this checks on a tiny clip that their order holds whatever the table is edited to.
"""

import dataclasses

from synthetic import moving_pattern

import actinr_codec as actinr
from actinr_codec.pipeline.options import EncodeOptions
from actinr_codec.pipeline.presets import MAX_QUALITY, MIN_QUALITY, settings_for


def test_each_level_is_smaller_and_no_better_than_the_last():
    # Four tiles of the default 40 pixels, as a real frame's tiles; the medium schedule's
    # frame groups and learning rates, with an eighth of its steps and two thirds of its
    # points.
    frames = moving_pattern(6, 80, 80)
    sizes, psnrs = [], []
    for quality in range(MIN_QUALITY, MAX_QUALITY + 1):
        settings = settings_for(80 * 80, EncodeOptions(quality=quality, preset="fast", gop=6, iters=1000))
        settings = dataclasses.replace(settings, fit=dataclasses.replace(settings.fit, points=64))
        report = actinr.encode(frames, None, settings=settings)
        sizes.append(report.size)
        psnrs.append(report.psnr)
    assert all(a > b for a, b in zip(sizes, sizes[1:])), sizes
    # A fit this small varies by up to about a dB with the learning rate and the steps, so
    # neighbouring levels may trade places in PSNR by that much; three apart they may not.
    assert all(a >= b - 1.0 for a, b in zip(psnrs, psnrs[1:])), psnrs
    assert all(a > b for a, b in zip(psnrs, psnrs[3:])), psnrs
