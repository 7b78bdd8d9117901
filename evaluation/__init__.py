"""Rate-distortion and restoration evaluation of actinr against FFmpeg baselines."""

from __future__ import annotations

import importlib
from types import ModuleType

# Import name -> distribution name, for the optional libraries of the `eval` extra.
OPTIONAL = {"pytorch_msssim": "pytorch-msssim", "bjontegaard": "bjontegaard",
            "matplotlib": "matplotlib"}


def require(name: str) -> ModuleType:
    """Import an optional library of the `eval` extra, or fail with a one-line hint.

    RuntimeError, not ImportError, so that the CLI reports it as a plain error.
    """
    try:
        return importlib.import_module(name)
    except ImportError:
        raise RuntimeError(f"{OPTIONAL.get(name.partition('.')[0], name)} is not installed; "
                           "pip install 'actinr[eval]'") from None
