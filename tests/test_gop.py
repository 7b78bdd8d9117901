import pytest
from hypothesis import given
from hypothesis import strategies as st

from actinr_codec.pipeline.gop import gop_for_time, plan_gops, split_scene
from bitstream.records import INTRA


@given(n=st.integers(1, 300), size=st.integers(2, 40))
def test_gops_share_boundaries_and_cover_every_frame(n, size):
    gops = split_scene(0, n, size)
    assert gops[0].start == 0 and gops[-1].stop == n
    assert all(1 <= len(g) <= size for g in gops)
    assert max(map(len, gops)) - min(map(len, gops)) <= 1  # as equal as whole frames allow
    for a, b in zip(gops, gops[1:]):
        assert b.start == a.stop - 1  # boundary frame shared
    # No fewer GOPs would do.
    assert len(gops) == 1 or (len(gops) - 1) * (size - 1) < n - 1
    # Every frame is served by exactly one GOP.
    owners = [gop_for_time(gops, float(f)) for f in range(n)]
    for f, k in enumerate(owners):
        assert f in gops[k]
        assert sum(gops[j].start <= f < (gops[j + 1].start if j + 1 < len(gops) else n)
                   for j in range(len(gops))) == 1


def test_short_videos():
    assert split_scene(0, 1, 8) == [range(0, 1)]
    assert split_scene(0, 2, 8) == [range(0, 2)]
    assert split_scene(0, 9, 8) == [range(0, 5), range(4, 9)]
    assert split_scene(0, 3, 2) == [range(0, 2), range(1, 3)]
    assert split_scene(5, 9, 8) == [range(5, 9)]


def test_time_between_frames_is_served_by_the_gop_holding_both_neighbours():
    gops = split_scene(0, 20, 8)  # [0,7) [6,14) [13,20)
    assert gop_for_time(gops, 5.5) == 0
    assert gop_for_time(gops, 6.0) == 1
    assert gop_for_time(gops, 13.75) == 2
    assert gop_for_time(gops, 19.0) == 2


@pytest.mark.parametrize("t", [-0.01, 19.01])
def test_time_outside_video_is_rejected(t):
    with pytest.raises(ValueError, match="outside"):
        gop_for_time(split_scene(0, 20, 8), t)


@pytest.mark.parametrize("n,size", [(0, 8), (5, 1)])
def test_bad_arguments(n, size):
    with pytest.raises(ValueError):
        split_scene(0, n, size)


@pytest.mark.parametrize("cuts", [[], [37, 140, 141, 290]])
@pytest.mark.parametrize("gop_size,keyint", [(32, 50), (32, 250), (8, 50), (8, 13), (4, 1)])
def test_keyint_is_the_longest_distance_between_intra_gops(gop_size, keyint, cuts):
    """x264's keyint is a maximum: on a 300-frame clip intra GOPs start at most keyint
    frames apart and the last within keyint of the end, or every GOP is intra where
    keyint is shorter than a GOP."""
    plan = plan_gops(300, gop_size, keyint, cuts)
    starts = [g.start for g, kind in zip(plan.gops, plan.kinds) if kind == INTRA]
    longest = max(len(g) - 1 for g in plan.gops)
    bound = keyint if keyint >= longest else 0
    if bound:
        assert all(b - a <= keyint for a, b in zip(starts, starts[1:])), starts
        assert 299 - starts[-1] <= keyint
    else:
        assert plan.kinds == [INTRA] * len(plan.gops)
    assert set(cuts) <= set(starts)
    # A predicted GOP is never placed where an intra one was not needed.
    for g, kind in zip(plan.gops, plan.kinds):
        if kind == INTRA and g.start not in cuts and g.start:
            before = max(s for s in starts if s < g.start)
            assert g.stop - 1 - before > keyint
