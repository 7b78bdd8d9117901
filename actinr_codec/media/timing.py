"""Frame times: telling a variable-frame-rate source from a constant one, and the clock a
model is fitted on.

A model's time is counted in frame periods of the file's rate (frame k of a constant-rate
video at time k). A variable-rate source keeps its frames' own timestamps in the file
(bitstream.side.Timestamps) and its rate is the average over the clip, so that the model's
time stays proportional to seconds: frame k sits at (F - 1) x its share of the clip's
duration, the first at 0 and the last at F - 1, and an instant s seconds in is model time
s x fps, whichever kind the source is.
"""

from __future__ import annotations

from fractions import Fraction

from bitstream.side import Timestamps

# Timestamps within this of an even grid are a constant rate written in a coarse clock
# (29.97 fps in Matroska's milliseconds alternates 33 and 34 ms): seconds.
GRID_TOLERANCE = Fraction(1, 1000)


def variable_timestamps(pts: list[int | None], time_base: Fraction | None
                        ) -> Timestamps | None:
    """The frames' timestamps if they are unevenly spaced (a variable frame rate), else
    None; None too when some are missing or they do not rise."""
    if len(pts) < 3 or time_base is None or None in pts:
        return None
    if any(b <= a for a, b in zip(pts, pts[1:])):
        return None
    first, last, n = pts[0], pts[-1], len(pts) - 1
    slack = max(1, GRID_TOLERANCE / time_base)
    if all(abs((p - first) - (last - first) * k / n) <= slack for k, p in enumerate(pts)):
        return None
    return Timestamps(time_base.numerator, time_base.denominator, tuple(pts))


def average_rate(stamps: Timestamps) -> Fraction:
    """Frames per second over the clip: intervals over the first-to-last duration."""
    duration = Fraction((stamps.pts[-1] - stamps.pts[0]) * stamps.num, stamps.den)
    return (len(stamps.pts) - 1) / duration


def model_clock(stamps: Timestamps) -> tuple[float, ...]:
    """Each frame's model time: 0 for the first, F - 1 for the last, in proportion to its
    timestamp between."""
    first, span, n = stamps.pts[0], stamps.pts[-1] - stamps.pts[0], len(stamps.pts) - 1
    return tuple(float(Fraction((p - first) * n, span)) for p in stamps.pts)
