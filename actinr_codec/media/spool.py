"""Standard input as a file: what an encode reads twice (a planning pass, then a pass per
GOP) cannot come from a pipe, so a piped input is first copied to a temporary file."""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .videoio import VideoIOError

# Bytes copied at a time: what the spool holds in memory.
CHUNK = 1 << 20


@contextlib.contextmanager
def spooled_stdin(directory: str | os.PathLike | None = None) -> Iterator[Path]:
    """Copy standard input to a hidden temporary file in ``directory`` (default: the
    system's temporary folder, $TMPDIR) and yield its path; the file is deleted when the
    block ends, however it ends. Memory stays at one chunk; the disk holds the whole input.
    Raises VideoIOError when standard input is a terminal or holds nothing, or the disk
    fills."""
    source = sys.stdin.buffer
    if source.isatty():
        raise VideoIOError("SOURCE is '-' but standard input is a terminal: pipe a video "
                           "into it (for example ffmpeg -i IN -f yuv4mpegpipe - | actinr "
                           "encode - OUT.anr)")
    fd, name = tempfile.mkstemp(prefix=".actinr-stdin-", dir=directory)
    path = Path(name)
    try:
        with os.fdopen(fd, "wb") as spool:
            try:
                shutil.copyfileobj(source, spool, CHUNK)
            except OSError as exc:
                raise VideoIOError(f"cannot spool standard input to {path.parent}: "
                                   f"{exc.strerror}") from None
        if path.stat().st_size == 0:
            raise VideoIOError("standard input held no video")
        yield path
    finally:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
