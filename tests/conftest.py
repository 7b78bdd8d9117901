import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))

from synthetic import moving_pattern  # noqa: E402

from actinr_codec.fitting.config import FitConfig  # noqa: E402
from actinr_codec.fitting.fit import fit_gop  # noqa: E402
from actinr_codec.model.config import ModelConfig  # noqa: E402

TINY_MODEL = ModelConfig(tile=16, overlap=2, width=24, depth=3)
TINY_FIT = FitConfig(iters=600, points=64)


@pytest.fixture(scope="session")
def clip() -> torch.Tensor:
    """64x64, 8 frames of a moving pattern, float in [0, 1]."""
    return torch.tensor(moving_pattern(8, 64, 64)).float() / 255


@pytest.fixture(scope="session")
def fitted(clip):
    """The tiny model fitted once to the clip, shared by the tests that only read it."""
    return fit_gop(clip, TINY_MODEL, TINY_FIT)


@pytest.fixture
def one_thread():
    """Tiny clips gain nothing from threads, and spinning ones stall on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
