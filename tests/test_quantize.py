import math

import numpy as np
import pytest
import torch
from conftest import TINY_FIT, TINY_MODEL

from actinr_codec.fitting.fit import fit_gop, reconstruction_psnr
from actinr_codec.model.network import GOPModel
from actinr_codec.quantization.quantize import (
    allocate_steps,
    dequantize,
    quantize,
    straight_through,
)
from actinr_codec.quantization.sensitivity import output_sensitivity


def rounded_psnr(state, steps, clip):
    model = GOPModel(TINY_MODEL, 64, 64)
    model.load_state_dict(dequantize(quantize(state, steps), steps))
    return reconstruction_psnr(model, clip)


def test_symbols_round_trip_on_the_grid():
    state = {"a": torch.linspace(-3, 2, 101), "zero": torch.zeros(4, 2)}
    steps = {"a": float(np.float32(3 / 31)), "zero": 1.0}
    sym = quantize(state, steps)
    assert sym["a"].dtype == np.int32 and sym["a"].min() == -31 and sym["a"].max() <= 31
    back = dequantize(sym, steps)
    assert torch.max(torch.abs(back["a"] - state["a"])) <= steps["a"] / 2 + 1e-6
    assert np.array_equal(quantize(back, steps)["a"], sym["a"])  # idempotent


def test_steps_follow_sensitivity_and_stay_storable():
    state = {"a": torch.full((100,), 2.0), "b": torch.full((300,), 2.0), "z": torch.zeros(3)}
    steps = allocate_steps(state, {"a": 4e-2, "b": 1e-2, "z": 1.0}, noise_mse=1e-4)
    assert steps["b"] == pytest.approx(2 * steps["a"], rel=1e-6)  # step ~ 1 / sqrt(G)
    # Rounding noise G * step^2 / 12 per parameter adds up to the requested MSE.
    added = (100 * 4e-2 * steps["a"] ** 2 + 300 * 1e-2 * steps["b"] ** 2) / 12
    assert added == pytest.approx(1e-4 * 400 / 403, rel=1e-5)
    assert steps["z"] == 1.0 and all(np.float32(s) == s for s in steps.values())
    # A parameter that barely matters is capped at its peak, not rounded away entirely.
    assert allocate_steps(state, {"a": 1e-12, "b": 1e-2, "z": 1.0}, 1e-4)["a"] == 2.0


def test_predicted_rounding_loss_matches_the_measured_one(clip, fitted):
    state = fitted.model.state_dict()
    sensitivity = output_sensitivity(fitted.model, clip)
    fit_mse = 10 ** (-fitted.psnr / 10)
    results = []
    for noise_db in (9.0, 3.0):
        steps = allocate_steps(state, sensitivity, fit_mse * 10 ** (-noise_db / 10))
        predicted = fitted.psnr - 10 * math.log10(1 + 10 ** (-noise_db / 10))
        measured = rounded_psnr(state, steps, clip)
        assert measured == pytest.approx(predicted, abs=0.6)
        results.append((measured, sum(int(np.abs(s).sum()) for s in quantize(state, steps).values())))
    # More noise: worse pictures from smaller symbols.
    assert results[1][0] < results[0][0] - 1.0 and results[1][1] < results[0][1]


def test_straight_through_rounds_forward_and_passes_gradients():
    x = torch.tensor([0.26, -0.74], requires_grad=True)
    y = straight_through(x, 0.5)
    assert torch.equal(y.detach(), torch.tensor([0.5, -0.5]))
    y.sum().backward()
    assert torch.equal(x.grad, torch.ones(2))


def test_quantization_aware_fitting_recovers_rounding_loss(clip, fitted):
    state = fitted.model.state_dict()
    noise_mse = 10 ** (-fitted.psnr / 10)  # as much noise as fit error: about 3 dB lost
    steps = allocate_steps(state, output_sensitivity(fitted.model, clip), noise_mse)
    plain_psnr = rounded_psnr(state, steps, clip)
    assert plain_psnr < fitted.psnr - 1.0  # coarse steps cost quality: the test can fail
    qat = fit_gop(clip, TINY_MODEL, TINY_FIT.__class__(iters=200, points=64, lr=5e-4),
                  init=state, quant_steps=steps)
    assert qat.psnr > plain_psnr + 0.5
    # The returned model holds parameters exactly on the grid.
    for name, x in qat.model.state_dict().items():
        assert torch.equal(x, dequantize(quantize({name: x}, steps), steps)[name])


def test_large_gops_are_measured_in_groups_of_frames(clip, fitted, monkeypatch):
    """The grouped sensitivity and PSNR (for GOPs too large to hold at once) agree with
    the one-pass ones."""
    import actinr_codec.fitting.fit as fit_module
    import actinr_codec.quantization.sensitivity as sensitivity_module

    whole_psnr = reconstruction_psnr(fitted.model, clip)
    whole = output_sensitivity(fitted.model, clip)
    monkeypatch.setattr(fit_module, "PSNR_GROUP_BYTES", 64 * 64 * 12 * 3)  # 3 frames a group
    monkeypatch.setattr(sensitivity_module, "MAX_EVALUATIONS", 16 * 64 * 3)  # 3 frames too
    assert reconstruction_psnr(fitted.model, clip) == pytest.approx(whole_psnr, abs=1e-4)
    weight = torch.ones(clip.shape[:3])
    weight[:, :8] = 0
    grouped_weighted = reconstruction_psnr(fitted.model, clip, weight)
    monkeypatch.setattr(fit_module, "PSNR_GROUP_BYTES", 1 << 40)
    assert grouped_weighted == pytest.approx(reconstruction_psnr(fitted.model, clip, weight),
                                             abs=1e-4)
    grouped = output_sensitivity(fitted.model, clip)
    for name, value in whole.items():
        # Random-sign estimates from 16 draws: the same quantity within sampling noise.
        assert grouped[name] == pytest.approx(value, rel=0.5), name


def test_values_that_cannot_be_coded_are_refused_not_rounded():
    state = {"a": torch.tensor([0.5, math.nan]), "b": torch.tensor([1.0, -2.0])}
    with pytest.raises(ValueError, match="tensor a has values that are not finite"):
        quantize(state, {"a": 0.25, "b": 0.25})
    with pytest.raises(ValueError, match="tensor b has a symbol beyond"):
        quantize({"b": torch.tensor([1e9])}, {"b": 1e-3})
