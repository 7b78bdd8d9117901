"""Distortion of decoded RGB frames against the originals: PSNR-RGB, PSNR-YUV420,
PSNR-YUV, MS-SSIM.

Every metric is computed per frame and averaged over frames. PSNR-RGB is the PSNR over the
three RGB channels (``actinr_codec.metrics``). PSNR-YUV420, the headline metric as JVET and
Cool-chic report it, compares 8-bit yuv420p pictures made the way x264's input is made
(``media.videoio.yuv_frame``: BT.601, limited range, filtered chroma): the source's, and the
decode's (a codec that decodes to yuv420p itself, as x264 does, gives its own planes); each
of Y, Cb and Cr is scored on its own grid at peak 255, and the plane PSNRs are weighted
6:1:1. PSNR-YUV converts both RGB frames to full-range BT.601 YCbCr in float, without
chroma subsampling, and weights the channel PSNRs 6:1:1.
MS-SSIM is pytorch_msssim's on RGB at data range 255, averaged over the channels; frames
too small for its five scales use fewer (see ``ms_ssim_scales``).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from actinr_codec.media.videoio import yuv_frame
from actinr_codec.metrics import frame_psnrs, mse_to_psnr

from . import require

# Full-range BT.601 (JFIF) RGB -> Y, Cb, Cr; the +128 chroma offsets cancel in differences.
BT601 = torch.tensor([[0.299, 0.587, 0.114],
                      [-0.168736, -0.331264, 0.5],
                      [0.5, -0.418688, -0.081312]], dtype=torch.float64)
YUV_WEIGHTS = (6, 1, 1)
# Wang, Simoncelli and Bovik's five scale exponents, finest scale first.
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
WINDOW, SIGMA = 11, 1.5
# Frames compared per step, bounding the float copies held at once.
CHUNK_PIXELS = 1 << 21


def ms_ssim_scales(height: int, width: int) -> int:
    """Scales of MS-SSIM a frame supports: the Gaussian window must fit the coarsest one.

    pytorch_msssim requires a short side above (WINDOW - 1) * 2**4 = 160 px for all five;
    the same rule for L scales is a short side above (WINDOW - 1) * 2**(L - 1).
    """
    side = min(height, width)
    return sum(side > (WINDOW - 1) * 2 ** level for level in range(len(MS_SSIM_WEIGHTS)))


def _ms_ssim(x: torch.Tensor, y: torch.Tensor, scales: int) -> torch.Tensor:
    """Per-image MS-SSIM of (N, 3, H, W) float batches over ``scales`` scales.

    Follows pytorch_msssim.ms_ssim, whose size check is fixed at five scales, with the
    first ``scales`` exponents renormalised to sum to one; at five scales it is the same.
    """
    ssim = require("pytorch_msssim.ssim")  # the module, which the package name shadows
    win = ssim._fspecial_gauss_1d(WINDOW, SIGMA).repeat(x.shape[1], 1, 1, 1)
    weights = torch.tensor(MS_SSIM_WEIGHTS[:scales], dtype=x.dtype)
    weights = weights / weights.sum()
    levels = []
    for level in range(scales):
        full, contrast = ssim._ssim(x, y, data_range=255, win=win, size_average=False,
                                    K=(0.01, 0.03))
        if level < scales - 1:
            levels.append(torch.relu(contrast))
            pad = [s % 2 for s in x.shape[2:]]
            x, y = F.avg_pool2d(x, 2, padding=pad), F.avg_pool2d(y, 2, padding=pad)
    levels.append(torch.relu(full))
    per_channel = torch.prod(torch.stack(levels) ** weights[:, None, None], dim=0)
    return per_channel.mean(dim=1)


def _psnr_yuv(ref: torch.Tensor, test: torch.Tensor) -> list[float]:
    """6:1:1-weighted PSNR-YUV of (N, H, W, 3) float64 RGB batches in 0..255."""
    err = (test - ref) @ BT601.T
    mse = (err ** 2).flatten(1, 2).mean(dim=1)  # (N, 3): Y, Cb, Cr
    total = sum(YUV_WEIGHTS)
    return [sum(w * mse_to_psnr(m, peak=255.0) for w, m in zip(YUV_WEIGHTS, row)) / total
            for row in mse.tolist()]


Planes = tuple[np.ndarray, np.ndarray, np.ndarray]


def yuv420_planes(rgb: np.ndarray) -> Planes:
    """An (H, W, 3) uint8 RGB frame as x264's input has it: yuv420p planes Y, Cb, Cr."""
    return frame_planes(yuv_frame(rgb, "yuv420p"))


def frame_planes(frame) -> Planes:
    """The Y, Cb and Cr planes of a decoded yuv420p PyAV frame, without line padding."""
    return tuple(np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)[:, :plane.width]
                 .copy() for plane in frame.planes)


def plane_psnrs(reference: Planes, decoded: Planes) -> list[float]:
    """The PSNRs of Y, Cb and Cr of two yuv420p pictures, each plane on its own grid."""
    return [mse_to_psnr(float(np.mean((d.astype(np.float64) - r) ** 2)), peak=255.0)
            for r, d in zip(reference, decoded, strict=True)]


def psnr_yuv420(reference: Planes, decoded: Planes) -> float:
    """6:1:1-weighted PSNR of two yuv420p pictures, each plane on its own grid."""
    values = plane_psnrs(reference, decoded)
    return sum(w * v for w, v in zip(YUV_WEIGHTS, values)) / sum(YUV_WEIGHTS)


def frame_metrics(reference: np.ndarray, decoded: np.ndarray,
                  decoded_yuv420: list[Planes] | None = None) -> dict[str, list]:
    """Per-frame PSNR-RGB, PSNR-YUV420, PSNR-YUV and MS-SSIM (None where too small) of two
    videos.

    Both are (N, H, W, 3) uint8 RGB of the same shape; decoded_yuv420: the decode's own
    yuv420p planes per frame, for a codec that decodes to yuv420p (else made from its RGB).
    """
    if reference.shape != decoded.shape or reference.ndim != 4 or reference.shape[3] != 3:
        raise ValueError(f"cannot compare videos of shapes {reference.shape} and {decoded.shape}")
    n, h, w, _ = reference.shape
    scales = ms_ssim_scales(h, w)
    step = max(1, CHUNK_PIXELS // (h * w))
    out: dict[str, list] = {"psnr_rgb": [], "psnr_yuv420": [], "psnr_yuv": [], "ms_ssim": []}
    for k, (ref, test) in enumerate(zip(reference, decoded)):
        planes = yuv420_planes(test) if decoded_yuv420 is None else decoded_yuv420[k]
        out["psnr_yuv420"].append(psnr_yuv420(yuv420_planes(ref), planes))
    for lo in range(0, n, step):
        ref = torch.from_numpy(reference[lo:lo + step]).double()
        test = torch.from_numpy(decoded[lo:lo + step]).double()
        out["psnr_rgb"] += frame_psnrs(ref / 255, test / 255)
        out["psnr_yuv"] += _psnr_yuv(ref, test)
        if scales:
            nchw = ref.permute(0, 3, 1, 2).float(), test.permute(0, 3, 1, 2).float()
            out["ms_ssim"] += _ms_ssim(*nchw, scales).tolist()
        else:
            out["ms_ssim"] += [None] * len(ref)
    return out


def summarize(reference: np.ndarray, decoded: np.ndarray,
              decoded_yuv420: list[Planes] | None = None) -> dict:
    """Frame-mean metrics of two videos, with the MS-SSIM scale count and a note if reduced
    (decoded_yuv420 as in frame_metrics)."""
    per_frame = frame_metrics(reference, decoded, decoded_yuv420)
    h, w = reference.shape[1:3]
    scales = ms_ssim_scales(h, w)
    note = None
    if scales < len(MS_SSIM_WEIGHTS):
        note = (f"{min(h, w)} px short side: MS-SSIM over {scales} of 5 scales" if scales
                else f"{min(h, w)} px short side is too small for MS-SSIM")
    return {
        "psnr_rgb": float(np.mean(per_frame["psnr_rgb"])),
        "psnr_yuv420": float(np.mean(per_frame["psnr_yuv420"])),
        "psnr_yuv": float(np.mean(per_frame["psnr_yuv"])),
        "ms_ssim": float(np.mean(per_frame["ms_ssim"])) if scales else None,
        "ms_ssim_scales": scales,
        "ms_ssim_note": note,
        "frame_psnr_rgb": per_frame["psnr_rgb"],
    }


def region_psnr(reference: np.ndarray, decoded: np.ndarray, region: np.ndarray) -> float:
    """Frame-mean PSNR-RGB over the pixels of ``region`` ((N, H, W) bool) of two videos.

    Frames whose region is empty are left out.
    """
    err = (decoded.astype(np.float64) - reference.astype(np.float64)) / 255
    values = [mse_to_psnr(float(np.mean(e[r] ** 2))) for e, r in zip(err, region) if r.any()]
    if not values:
        raise ValueError("the region holds no pixel")
    return float(np.mean(values))
