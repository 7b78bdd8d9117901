import numpy as np
import pytest
import torch
from conftest import TINY_FIT, TINY_MODEL

from actinr_codec.fit import fit_gop, reconstruction_psnr
from actinr_codec.model import GOPModel
from actinr_codec.quantize import dequantize, quant_steps, quantize, straight_through


def test_symbols_stay_on_the_signed_grid_and_round_trip():
    state = {"a": torch.linspace(-3, 2, 101), "zero": torch.zeros(4, 2)}
    steps = quant_steps(state, bits=6)
    assert steps["a"] == pytest.approx(3 / 31) and steps["zero"] == 1.0
    assert np.float32(steps["a"]) == steps["a"]  # storable exactly as float32
    sym = quantize(state, steps)
    assert sym["a"].dtype == np.int32 and sym["a"].min() == -31 and sym["a"].max() <= 31
    back = dequantize(sym, steps)
    assert torch.max(torch.abs(back["a"] - state["a"])) <= steps["a"] / 2 + 1e-6
    assert np.array_equal(quantize(back, steps)["a"], sym["a"])  # idempotent


def test_straight_through_rounds_forward_and_passes_gradients():
    x = torch.tensor([0.26, -0.74], requires_grad=True)
    y = straight_through(x, 0.5)
    assert torch.equal(y.detach(), torch.tensor([0.5, -0.5]))
    y.sum().backward()
    assert torch.equal(x.grad, torch.ones(2))


def test_quantization_aware_fitting_recovers_rounding_loss(clip, fitted):
    state = fitted.model.state_dict()
    steps = quant_steps(state, bits=5)
    plain = GOPModel(TINY_MODEL, 64, 64)
    plain.load_state_dict(dequantize(quantize(state, steps), steps))
    plain_psnr = reconstruction_psnr(plain, clip)
    assert plain_psnr < fitted.psnr - 1.0  # 5 bits costs quality: the test can fail
    qat = fit_gop(clip, TINY_MODEL, TINY_FIT.__class__(iters=200, points=64, lr=5e-4),
                  init=state, quant_steps=steps)
    assert qat.psnr > plain_psnr + 0.5
    # The returned model holds parameters exactly on the grid.
    for name, x in qat.model.state_dict().items():
        assert torch.equal(x, dequantize(quantize({name: x}, steps), steps)[name])
