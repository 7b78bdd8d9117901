"""Average-bitrate rate control: prices that spend a budget, on simulated and real fits."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner
from synthetic import moving_pattern

import actinr_codec as actinr
from actinr_codec.pipeline.ratecontrol import (
    HEADROOM,
    LAST_RETRIES,
    MAX_WEIGHT,
    MAX_WIDTH,
    MIN_WEIGHT,
    RETRIES,
    RateControl,
    quality_for,
    reach_note,
    width_for,
)
from bitstream.records import INTRA, PREDICTED
from cli.main import main

KINDS = [INTRA, PREDICTED, PREDICTED, INTRA, PREDICTED]
FRAMES = [25, 24, 24, 24, 10]


def simulate(alpha: float, predicted_share: float, fraction: float, frames=FRAMES,
             kinds=KINDS, predicted_alpha: float | None = None):
    """A file whose GOPs cost c x frames x price^-alpha bits (predicted ones at their own
    exponent if given), rate-controlled to ``fraction`` of what it costs at the starting
    price: the total spent against the budget, the fits made per GOP, and the prices
    kept."""
    cost = {INTRA: 2000.0, PREDICTED: 2000.0 * predicted_share}
    exponent = {INTRA: alpha, PREDICTED: alpha if predicted_alpha is None else predicted_alpha}
    start = 16.0
    budget = fraction * sum(cost[kind] * n * start ** -exponent[kind]
                            for n, kind in zip(frames, kinds))
    rate = RateControl(list(frames), list(kinds), budget, weight=start)
    fits, prices = [], []
    for k, (n, kind) in enumerate(zip(frames, kinds)):
        price, tries = rate.price(k), []
        while price is not None:
            tries.append((price, cost[kind] * n * price ** -exponent[kind]))
            price = rate.retry(k, tries)
        keep = rate.best(k, tries)
        rate.observe(k, *tries[keep])
        fits.append(len(tries))
        prices.append(tries[keep][0])
    return rate.spent / budget, fits, prices


@pytest.mark.parametrize("alpha", [0.3, 0.4, 0.5])
@pytest.mark.parametrize("predicted_share", [0.1, 0.35, 0.8])
@pytest.mark.parametrize("fraction", [0.25, 0.5, 1.0, 2.0])
def test_the_budget_is_spent_whatever_the_content(alpha, predicted_share, fraction):
    spent, fits, _ = simulate(alpha, predicted_share, fraction)
    assert spent == pytest.approx(1.0, rel=0.05)
    # A GOP is fitted again at most RETRIES times, the last LAST_RETRIES.
    assert max(fits[:-1]) <= RETRIES + 1 and fits[-1] <= LAST_RETRIES + 1


@pytest.mark.parametrize("predicted_share", [0.3, 1.0])
@pytest.mark.parametrize("fraction", [0.5, 1.0])
def test_a_two_gop_clip_lands_whatever_its_predicted_gop_costs(predicted_share, fraction):
    # The last GOP has nothing after it to absorb the first one's misjudged share.
    spent, _, _ = simulate(0.4, predicted_share, fraction, frames=[24, 25],
                           kinds=[INTRA, PREDICTED])
    assert spent == pytest.approx(1.0, rel=0.05)


def test_a_budget_out_of_reach_spends_what_the_cheapest_price_gives():
    spent, _, prices = simulate(0.4, 0.35, 100.0)
    assert spent < 0.1 and set(prices[1:]) == {MIN_WEIGHT}


def test_one_price_where_the_model_holds_and_replay_gives_the_same_prices():
    _, _, prices = simulate(0.4, 0.35, 0.5)
    assert max(prices[1:]) == pytest.approx(min(prices[1:]), rel=1e-6)
    assert simulate(0.4, 0.35, 0.5)[2] == prices


def test_the_starting_quality_follows_the_rate():
    rates = [2.0, 0.6, 0.3, 0.19, 0.1, 0.05, 0.03, 0.01]
    levels = [quality_for(r) for r in rates]
    assert levels == sorted(levels) and levels[0] == 0 and levels[-1] == 10
    assert quality_for(0.189 / HEADROOM) == 4


def test_past_quality_0_the_network_widens():
    assert width_for(0.2, 24) == 24 and width_for(0.577 / HEADROOM, 40) == 40
    assert 40 < width_for(0.684, 40) <= MAX_WIDTH
    assert width_for(0.684, 40) % 8 == 0 and width_for(50.0, 40) == MAX_WIDTH


def test_a_missed_target_says_why():
    assert reach_note(1000, 1080, [3.0], 24) is None
    assert "above what this clip takes" in reach_note(1000, 740, [2.0, MIN_WEIGHT], 40)
    assert "below what this clip needs" in reach_note(1000, 1300, [MAX_WEIGHT], 8)
    assert reach_note(1000, 800, [5.0], 24) == "rate control missed the target by -20.0%"


def test_an_encode_lands_near_its_target_size():
    video = moving_pattern(9, 40, 48)
    plain = actinr.encode(video, None, actinr.EncodeOptions(iters=80, gop=5))
    # A clip this small is mostly fixed costs (the networks' smallest tensors): a target
    # above the plain size is one its rate control can steer to.
    target = plain.size * 3 // 2
    report = actinr.encode(video, None, actinr.EncodeOptions(iters=80, gop=5,
                                                              target_size=target))
    assert report.size == pytest.approx(target, rel=0.1)
    assert report.gops[1].stats.rate_weight != report.plan.settings.rate_weight


@pytest.mark.parametrize("args,message", [
    (["-q", "3", "--bitrate", "500k"], "exclusive"),
    (["--bitrate", "fast"], "not a rate"),
    (["--bitrate", "0"], "more than 0"),
    (["--target-size", "big"], "not a size"),
])
def test_bad_rate_options_are_one_line(tmp_path, args, message):
    source = tmp_path / "in.npy"
    np.save(source, np.zeros(1))
    result = CliRunner().invoke(main, ["encode", str(source), str(tmp_path / "o.anr"), *args])
    assert result.exit_code == 2 and message in result.output
    assert not (tmp_path / "o.anr").exists()
