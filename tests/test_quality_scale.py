"""The quality scale is monotonic: every level is smaller than the one before and no better.

The levels' widths and prices (presets.QUALITY) are chosen from measurements on real
clips; this checks on a tiny clip that their order holds whatever the table is edited to.
"""

import dataclasses

from synthetic import moving_pattern

import actinr_codec as actinr
from actinr_codec.model.config import ModelConfig
from actinr_codec.pipeline.presets import MAX_QUALITY, MIN_QUALITY, settings_for


def test_each_level_is_smaller_and_no_better_than_the_last():
    frames = moving_pattern(6, 48, 48)
    sizes, psnrs = [], []
    for quality in range(MIN_QUALITY, MAX_QUALITY + 1):
        # Tiles of 16 give the tiny clip nine networks, as a real frame has hundreds.
        settings = settings_for(48 * 48, quality, "fast", gop_size=6, iters=400,
                                model=ModelConfig(tile=16))
        # Every frame in every step: six frames in interleaved groups would be one or two
        # each, and this checks the table's order, not the fit's schedule.
        settings = dataclasses.replace(settings, fit=dataclasses.replace(
            settings.fit, points=64, frame_groups=1))
        report = actinr.encode(frames, None, settings=settings)
        sizes.append(report.size)
        psnrs.append(report.psnr)
    assert all(a > b for a, b in zip(sizes, sizes[1:])), sizes
    # Neighbouring levels may trade a little PSNR for a lot of rate; levels two apart may not.
    assert all(a >= b - 0.3 for a, b in zip(psnrs, psnrs[1:])), psnrs
    assert all(a > b for a, b in zip(psnrs, psnrs[2:])), psnrs
