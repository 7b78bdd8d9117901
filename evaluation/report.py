"""Where results go: provenance of a run, and JSON and CSV files written atomically."""

from __future__ import annotations

import csv
import datetime
import io
import json
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import av
import numpy as np
import torch

from actinr_codec import __version__
from bitstream.container import write_atomically

REPO = Path(__file__).resolve().parent.parent


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(["git", "-C", str(REPO), *args], capture_output=True,
                              text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip()


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def provenance() -> dict:
    """What produced a result: code, libraries, machine, time and command line."""
    status = _git("status", "--porcelain", "--untracked-files=no")
    return {
        "actinr_version": __version__,
        "git_commit": _git("rev-parse", "HEAD"),
        # Uncommitted edits to tracked files mean the commit alone does not reproduce it.
        "git_dirty": None if status is None else bool(status),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "pyav": av.__version__,
        "ffmpeg": av.ffmpeg_version_info,
        "libavcodec": ".".join(map(str, av.library_versions["libavcodec"])),
        **{name: _version(name) for name in ("pytorch-msssim", "bjontegaard", "matplotlib")},
        "machine": {"cpu": _cpu_model(), "cores": os.cpu_count(),
                    "torch_threads": torch.get_num_threads(), "arch": platform.machine(),
                    "os": platform.platform(),
                    "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None},
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": sys.argv,
    }


def atomic_write(path: Path, data: bytes | str) -> None:
    """Write text or bytes to a file that appears only once complete."""
    write_atomically(path, data.encode() if isinstance(data, str) else data)


def write_json(path: Path, document: dict) -> None:
    atomic_write(path, json.dumps(document, indent=1) + "\n")


def write_csv(path: Path, rows: list[dict], extra: dict) -> None:
    """One line per row, each with the ``extra`` columns too; dict values as compact JSON,
    list values (per-frame series) left to the JSON file."""
    table = [{**extra, **{k: json.dumps(v, separators=(",", ":")) if isinstance(v, dict) else v
                          for k, v in row.items() if not isinstance(v, list)}}
             for row in rows]
    columns = list(dict.fromkeys(key for row in table for key in row))
    text = io.StringIO()
    writer = csv.DictWriter(text, columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(table)
    atomic_write(path, text.getvalue())
