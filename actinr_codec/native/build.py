"""Building the native C libraries for this CPU with the system's compiler, and caching them.

A library is keyed on its sources, the headers it reads, its flags, the compiler and this
CPU, so a cache shared between machines never hands one a build for another's instruction
set, and a changed source or flag builds anew.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import warnings
from pathlib import Path

_lock = threading.Lock()


class BuildError(Exception):
    """A library could not be built or loaded here; the message says why."""


def cache_dir() -> Path:
    """Where built libraries are kept: $ACTINR_CACHE, else the user's cache directory."""
    if "ACTINR_CACHE" in os.environ:
        return Path(os.environ["ACTINR_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "actinr"


def _cpu_identity() -> str:
    # -march=native code can crash on another CPU, so a cache shared between machines
    # (a network home directory) keys its builds on the CPU's model and feature flags.
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        return "\n".join(sorted({ln for ln in lines if ln.startswith(("model name", "flags"))}))
    except OSError:
        return platform.processor() + platform.machine()


def _compiler() -> str:
    return os.environ.get("CC", "cc")


def can_build() -> bool:
    """Whether this machine has what building a library takes (a C compiler, not Windows)."""
    return sys.platform != "win32" and shutil.which(_compiler().split()[0]) is not None


def load(name: str, sources: list[Path], headers: list[Path], flags: list[str]) -> ctypes.CDLL:
    """The library ``name`` built from ``sources`` with ``flags`` (``headers``: files the
    sources include, part of the cache key), built on first use; BuildError if it cannot be."""
    if sys.platform == "win32":
        raise BuildError("no native build on Windows")
    parts = [f.read_bytes() for f in [*sources, *headers]]
    parts += [s.encode() for s in (" ".join(flags), _compiler(), _cpu_identity())]
    key = hashlib.sha256(b"\0".join(parts)).hexdigest()[:16]
    target = cache_dir() / f"{name}_{key}.so"
    with _lock:
        try:
            if not target.exists():
                _build(sources, flags, target)
            return ctypes.CDLL(str(target))
        except (OSError, subprocess.SubprocessError) as exc:
            detail = getattr(exc, "stderr", None) or exc
            raise BuildError(str(detail).strip()[:200]) from None


def _build(sources: list[Path], flags: list[str], target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    # Build beside the target and rename, so that concurrent processes never load half a file.
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=target.parent)
    os.close(fd)
    try:
        subprocess.run([_compiler(), *flags, *map(str, sources), "-o", tmp],
                       check=True, capture_output=True, text=True, timeout=120)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def optional(name: str, sources: list[Path], headers: list[Path], flags: list[str],
             what: str, fallback: str) -> ctypes.CDLL | None:
    """load(), or None with a warning saying that ``what`` is unavailable and that the
    caller goes on with ``fallback``."""
    try:
        return load(name, sources, headers, flags)
    except BuildError as exc:
        warnings.warn(f"{what} unavailable ({exc}); {fallback}", stacklevel=4)
        return None
