"""How the command fails: one line on stderr, exit 1, and never a partial output file."""

from __future__ import annotations

import functools
from pathlib import Path

import click

from actinr_codec.media.videoio import VideoIOError, existing_outputs
from bitstream.errors import BitstreamError

# Problems with the user's input or environment, reported without a traceback.
EXPECTED = (BitstreamError, VideoIOError, ValueError, OSError, RuntimeError)


def exits_cleanly(command):
    """Turn expected failures into 'Error: ...' and exit code 1; Ctrl-C into exit 130."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except click.ClickException:
            raise
        except KeyboardInterrupt:
            click.echo("Interrupted; no output was written.", err=True)
            raise SystemExit(130) from None
        except EXPECTED as exc:
            message = " ".join(str(exc).split()) or type(exc).__name__
            raise click.ClickException(message) from None

    return wrapper


def refuse_overwrite(path: Path, overwrite: bool) -> None:
    """Refuse to replace an existing output unless asked to, as ffmpeg does without -y.
    For a PNG pattern every file the sequence would replace counts."""
    if overwrite:
        return
    present = existing_outputs(path)
    if present:
        more = f" (and {len(present) - 1} more)" if len(present) > 1 else ""
        raise click.ClickException(f"{present[0]}{more} exists; pass -y/--overwrite to "
                                   f"replace it")
