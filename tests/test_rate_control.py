"""Average-bitrate rate control: prices that spend a budget, on simulated and real fits."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner
from synthetic import moving_pattern

import actinr_codec as actinr
from actinr_codec.pipeline.ratecontrol import HEADROOM, MIN_WEIGHT, RETRIES, RateControl, quality_for
from bitstream.records import INTRA, PREDICTED
from cli.main import main

KINDS = [INTRA, PREDICTED, PREDICTED, INTRA, PREDICTED]
FRAMES = [25, 24, 24, 24, 10]


def simulate(alpha: float, predicted_share: float, fraction: float):
    """A file whose GOPs cost c x frames x price^-alpha bits, rate-controlled to
    ``fraction`` of what it costs at the starting price: the total spent against the
    budget, the fits made per GOP, and the prices kept."""
    cost = {INTRA: 2000.0, PREDICTED: 2000.0 * predicted_share}
    start = 16.0
    budget = fraction * sum(cost[kind] * n * start ** -alpha for n, kind in zip(FRAMES, KINDS))
    rate = RateControl(FRAMES, KINDS, budget, weight=start)
    fits, prices = [], []
    for k, (n, kind) in enumerate(zip(FRAMES, KINDS)):
        price, tries = rate.price(k), []
        while price is not None:
            tries.append((price, cost[kind] * n * price ** -alpha))
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
    # Only the first GOP of each kind and the last GOP are fitted again, at most RETRIES
    # times each.
    assert all(f == 1 for f in fits[2:-1]) and max(fits) <= RETRIES + 1


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
