"""The picture fit's distortion: planes' squared errors summed 6:1:1, or their geometric
mean, whose log is PSNR-YUV420's mean of plane PSNRs."""

import math

import torch

from actinr_codec.fitting.latents import PLANE_WEIGHTS, YCBCR, distortion


def plane_mses(rgb: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Each of Y, Cb and Cr's mean squared error at full resolution, from first principles."""
    err = torch.einsum("pc,hwc->phw", YCBCR, rgb - target)
    return (err ** 2).mean(dim=(1, 2))


def test_the_sum_and_the_geometric_mean_of_the_planes_errors():
    gen = torch.Generator().manual_seed(0)
    target = torch.rand(6, 8, 3, generator=gen)
    rgb = target + 0.05 * torch.randn(6, 8, 3, generator=gen)
    mse = plane_mses(rgb, target)
    assert torch.allclose(distortion(rgb, target), (mse * PLANE_WEIGHTS).sum())
    geometric = distortion(rgb, target, planes="geometric")
    # -10 log10 of it is the 6:1:1 mean of the planes' PSNRs (peak 1).
    psnrs = -10 * torch.log10(mse)
    assert math.isclose(-10 * math.log10(float(geometric)), float((psnrs * PLANE_WEIGHTS).sum()),
                        rel_tol=1e-5)
    # Never above the sum (the weighted geometric mean is at most the arithmetic one) ...
    assert float(geometric) <= float(distortion(rgb, target))
    # ... and a plane's error counts in proportion to how small it already is: halving
    # Cb's error gains as much as halving Y's does, six times weaker.
    def scaled(plane: int) -> float:
        err = torch.einsum("pc,hwc->phw", YCBCR, rgb - target)
        err[plane] *= 0.5 ** 0.5
        back = torch.einsum("cp,phw->hwc", torch.linalg.inv(YCBCR), err)
        return float(distortion(target + back, target, planes="geometric"))
    assert math.isclose(math.log(float(geometric) / scaled(0)),
                        6 * math.log(float(geometric) / scaled(1)), rel_tol=1e-4)


def test_a_perfect_plane_keeps_the_geometric_mean_finite():
    target = torch.rand(4, 4, 3)
    rgb = target.clone().requires_grad_()
    d = distortion(rgb, target, planes="geometric")
    d.backward()
    assert float(d.detach()) < 1e-10 and torch.isfinite(rgb.grad).all()
