"""A whole video as a chain of fitted GOP models: fitting it, and rendering any time and size."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from ..fitting.config import FitConfig
from ..fitting.fit import FitResult, fit_gop, warm_start_config
from ..model.config import ModelConfig
from ..model.network import GOPModel
from ..model.render import render_gop, to_uint8
from ..model.schema import model_tensors
from .gop import locate, split_scene


@dataclass
class VideoModel:
    """Fitted GOP models of a video of ``frames`` frames of ``height`` x ``width`` pixels."""

    height: int
    width: int
    frames: int
    gops: list[range]
    models: list[GOPModel]

    def locate(self, t: float) -> tuple[int, float]:
        """The GOP serving global time t, and t relative to that GOP's first frame."""
        return locate(self.gops, t)


def fit_video(
    frames: np.ndarray | torch.Tensor,
    gop_size: int,
    model_cfg: ModelConfig = ModelConfig(),
    fit_cfg: FitConfig = FitConfig(),
    device: str | torch.device | None = None,
    on_gop: Callable[[int, FitResult], None] | None = None,
) -> VideoModel:
    """Fit every GOP of a (N, H, W, 3) uint8 video, warm-starting each from its predecessor."""
    frames = torch.as_tensor(frames)
    n, height, width, _ = frames.shape
    gops = split_scene(0, n, gop_size)
    models: list[GOPModel] = []
    for k, gop in enumerate(gops):
        clip = frames[gop.start : gop.stop].float() / 255.0
        if fit_cfg.warm_start and models:
            result = fit_gop(clip, model_cfg, warm_start_config(fit_cfg),
                             init=model_tensors(models[-1]), device=device)
        else:
            result = fit_gop(clip, model_cfg, fit_cfg, device=device)
        models.append(result.model)
        if on_gop is not None:
            on_gop(k, result)
    return VideoModel(height, width, n, gops, models)


def render(
    video: VideoModel, t: float, height: int | None = None, width: int | None = None,
    as_uint8: bool = True,
) -> torch.Tensor:
    """The frame at global time t (any real inside the video) on a height x width grid.

    Returns (H, W, 3) uint8 RGB, or float RGB in [0, 1] when as_uint8 is False.
    """
    height = height or video.height
    width = width or video.width
    k, local = video.locate(t)
    frame = render_gop(video.models[k], torch.tensor([local]), height, width)[0]
    return to_uint8(frame) if as_uint8 else frame.clamp(0, 1).cpu()
