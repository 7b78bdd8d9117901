import pytest
from hypothesis import given
from hypothesis import strategies as st

from actinr_codec.pipeline.gop import gop_for_time, split_gops


@given(n=st.integers(1, 300), size=st.integers(2, 40))
def test_gops_share_boundaries_and_cover_every_frame(n, size):
    gops = split_gops(n, size)
    assert gops[0].start == 0 and gops[-1].stop == n
    assert all(1 <= len(g) <= size for g in gops)
    for a, b in zip(gops, gops[1:]):
        assert b.start == a.stop - 1  # boundary frame shared
        assert len(a) == size  # only the last GOP may be short
    # Every frame is served by exactly one GOP.
    owners = [gop_for_time(gops, float(f)) for f in range(n)]
    for f, k in enumerate(owners):
        assert f in gops[k]
        assert sum(gops[j].start <= f < (gops[j + 1].start if j + 1 < len(gops) else n)
                   for j in range(len(gops))) == 1


def test_short_videos():
    assert split_gops(1, 8) == [range(0, 1)]
    assert split_gops(2, 8) == [range(0, 2)]
    assert split_gops(9, 8) == [range(0, 8), range(7, 9)]
    assert split_gops(3, 2) == [range(0, 2), range(1, 3)]


def test_time_between_frames_is_served_by_the_gop_holding_both_neighbours():
    gops = split_gops(20, 8)  # [0,8) [7,15) [14,20)
    assert gop_for_time(gops, 6.5) == 0
    assert gop_for_time(gops, 7.0) == 1
    assert gop_for_time(gops, 14.75) == 2
    assert gop_for_time(gops, 19.0) == 2


@pytest.mark.parametrize("t", [-0.01, 19.01])
def test_time_outside_video_is_rejected(t):
    with pytest.raises(ValueError, match="outside"):
        gop_for_time(split_gops(20, 8), t)


@pytest.mark.parametrize("n,size", [(0, 8), (5, 1)])
def test_bad_arguments(n, size):
    with pytest.raises(ValueError):
        split_gops(n, size)
