import pytest

from evaluation.bdrate import bd_delta, bd_table, overlap

RATES = [0.05, 0.1, 0.2, 0.4]
PSNRS = [29.0, 31.5, 34.0, 36.0]


def test_curve_against_itself_is_zero():
    result = bd_delta(RATES, PSNRS, RATES, PSNRS)
    assert result["bd_rate"] == pytest.approx(0.0, abs=1e-6)
    assert result["bd_psnr"] == pytest.approx(0.0, abs=1e-6)
    assert result["warning"] is None


@pytest.mark.parametrize("factor,expected", [(0.5, -50.0), (2.0, 100.0)])
def test_scaled_rate_gives_known_bd_rate(factor, expected):
    result = bd_delta(RATES, PSNRS, [r * factor for r in RATES], PSNRS)
    assert result["bd_rate"] == pytest.approx(expected, abs=0.5)


def test_order_of_points_does_not_matter():
    shuffled = [2, 0, 3, 1]
    result = bd_delta(RATES, PSNRS, [RATES[i] / 2 for i in shuffled], [PSNRS[i] for i in shuffled])
    assert result["bd_rate"] == pytest.approx(-50.0, abs=0.5)


def test_uniform_psnr_gain_gives_known_bd_psnr():
    result = bd_delta(RATES, PSNRS, RATES, [p + 1.5 for p in PSNRS])
    assert result["bd_psnr"] == pytest.approx(1.5, abs=1e-6)
    assert result["bd_rate"] < 0


def test_disjoint_curves_warn_and_give_no_bd_rate():
    result = bd_delta(RATES, PSNRS, RATES, [p + 10 for p in PSNRS])
    assert result["bd_rate"] is None and result["psnr_overlap"] == 0
    assert "no PSNR range" in result["warning"]


def test_small_overlap_warns_but_still_computes():
    result = bd_delta(RATES, PSNRS, RATES, [p + 5 for p in PSNRS])
    assert result["psnr_overlap"] == pytest.approx(2 / 7)
    assert "unreliable" in result["warning"] and result["bd_rate"] < 0


def test_bad_curves_are_reported():
    assert "two rate-distortion points" in bd_delta(RATES[:1], PSNRS[:1], RATES, PSNRS)["warning"]
    bumpy = bd_delta(RATES, PSNRS, RATES, [29.0, 33.0, 32.0, 36.0])
    assert "does not rise" in bumpy["warning"] and bumpy["bd_rate"] is not None


def test_overlap_of_ranges():
    assert overlap([0, 10], [5, 6]) == 1.0
    assert overlap([0, 10], [8, 12]) == pytest.approx(0.5)
    assert overlap([0, 1], [2, 3]) == 0.0


def test_table_averages_per_clip_deltas():
    points = []
    for clip, factor in (("a", 0.5), ("b", 1.0)):
        for codec, scale in (("x264", 1.0), ("actinr", factor)):
            points += [{"clip": clip, "codec": codec, "bpp": r * scale, "psnr_rgb": p,
                        "psnr_yuv": p + 2} for r, p in zip(RATES, PSNRS)]
    rows = bd_table(points, metrics=("psnr_rgb", "psnr_yuv"))
    by = {(r["clip"], r["metric"]): r for r in rows}
    assert len(rows) == 6
    assert by["a", "psnr_rgb"]["bd_rate"] == pytest.approx(-50.0, abs=0.5)
    assert by["b", "psnr_yuv"]["bd_rate"] == pytest.approx(0.0, abs=1e-6)
    assert by["mean", "psnr_rgb"]["bd_rate"] == pytest.approx(-25.0, abs=0.5)
    assert by["mean", "psnr_rgb"]["warning"] is None
