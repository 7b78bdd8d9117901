import pytest

from actinr_codec.parallel.segments import SegmentResults, plan_segments
from actinr_codec.pipeline.gop import GOPPlan, split_scene
from bitstream.records import INTRA, PREDICTED


def all_intra(gops: list[range]) -> GOPPlan:
    return GOPPlan(gops, [INTRA] * len(gops))


def test_segments_cover_the_chain_in_order():
    gops = split_scene(0, 22, 4)  # 7 GOPs
    plan = all_intra(gops)
    assert [len(s.gops) for s in plan_segments(plan, 3)] == [2, 3, 2]
    assert [len(s.gops) for s in plan_segments(plan, 3, length=3)] == [3, 3, 1]
    assert [s.gops for s in plan_segments(plan, 100)] == [[g] for g in gops]
    # GOPs of 8, 8 and 2 frames: balanced by frames, not by GOP count.
    uneven = all_intra([range(0, 8), range(7, 15), range(14, 16)])
    assert [len(s.gops) for s in plan_segments(uneven, 2)] == [1, 2]
    for frames, gop in [(2, 2), (16, 8), (40, 8), (23, 3), (9, 9)]:
        chain = split_scene(0, frames, gop)
        for parts in range(1, 8):
            segments = plan_segments(all_intra(chain), parts)
            assert len(segments) == min(parts, len(chain)) and all(s.gops for s in segments)
            assert [g for s in segments for g in s.gops] == chain
    for parts, length in [(1, None), (4, None), (1, 2), (9, 5)]:
        assert [g for s in plan_segments(plan, parts, length) for g in s.gops] == gops
    with pytest.raises(ValueError):
        plan_segments(plan, 1, length=0)


def test_segments_start_at_intra_gops():
    gops = split_scene(0, 22, 4)
    kinds = [INTRA, PREDICTED, PREDICTED, INTRA, PREDICTED, INTRA, PREDICTED]
    plan = GOPPlan(gops, kinds)
    for parts, length in [(2, None), (3, None), (100, None), (1, 1), (1, 3)]:
        segments = plan_segments(plan, parts, length)
        assert all(s.kinds[0] == INTRA for s in segments)
        assert [k for s in segments for k in s.kinds] == kinds
    assert [len(s.gops) for s in plan_segments(plan, 100)] == [3, 2, 2]
    assert [len(s.gops) for s in plan_segments(plan, 1, length=4)] == [5, 2]


def test_results_arrive_in_any_order_and_come_back_in_video_order():
    segments = plan_segments(all_intra(split_scene(0, 22, 4)), 1, length=3)
    seen = []
    results = SegmentResults(segments, lambda k, report: seen.append((k, report)))
    results.add(2, ["g6"])
    results.add(0, ["g0", "g1", "g2"])
    with pytest.raises(RuntimeError, match="2 of 3"):
        results.in_order()
    results.add(1, ["g3", "g4", "g5"])
    assert results.in_order() == [f"g{k}" for k in range(7)]
    assert sorted(seen) == [(k, f"g{k}") for k in range(7)]


def test_a_failing_segment_stops_the_others_and_is_reported_first():
    """Under --jobs the first failure ends the encode at once: the segment still fitting
    (here for 10**7 steps, hours) is stopped instead of waited for."""
    import dataclasses
    import multiprocessing
    import time

    from synthetic import FailingFrames, moving_pattern

    from actinr_codec.parallel.local import encode_gops
    from actinr_codec.pipeline.gop import plan_gops
    from actinr_codec.pipeline.options import EncodeOptions
    from actinr_codec.pipeline.presets import settings_for

    frames = FailingFrames(moving_pattern(8, 16, 16), broken=7)
    settings = settings_for(16 * 16, EncodeOptions(preset="fast", gop=4, iters=10**7, keyint=1))
    settings = dataclasses.replace(settings, fit=dataclasses.replace(settings.fit, seconds=3600))
    plan = plan_gops(8, 4, 1)
    begin = time.monotonic()
    with pytest.raises(ValueError, match="frame 7 cannot be read"):
        encode_gops(frames, plan, settings, jobs=2, device="cpu", segment=2)
    assert time.monotonic() - begin < 120
    # The segment still fitting was ended, not left running on its own.
    assert not [p for p in multiprocessing.active_children() if "Manager" not in p.name]
