"""The info command's content: header, GOP table, sizes and model configuration of a file."""

from __future__ import annotations

from pathlib import Path

from actinr_codec.media.carry import describe_streams
from bitstream.container import AnrReader
from bitstream.records import GOP_KINDS


def describe(path: Path) -> dict:
    """Everything ``actinr info`` shows, as plain JSON-ready values."""
    size = path.stat().st_size
    with AnrReader(path) as reader:
        info, config, index, version = (reader.info, dict(reader.config), reader.index,
                                        reader.version)
        stamps = reader.timestamps
        streams = describe_streams(reader.read_streams()) if reader.streams_size else []
        carried = reader.streams_size
    pixels = info.width * info.height * info.frames
    duration = info.frames * info.fps_den / info.fps_num
    if stamps is not None:
        # The last frame lasts an average period, as the constant-rate duration counts it.
        duration = stamps.seconds()[-1] + info.fps_den / info.fps_num
    return {
        "file": str(path),
        "bytes": size,
        "bpp": size * 8 / pixels,
        "format_version": version,
        "video": {
            "width": info.width, "height": info.height, "frames": info.frames,
            "fps": f"{info.fps_num}/{info.fps_den}", "colour": info.colour,
            "duration_s": duration, "variable_frame_rate": stamps is not None,
        },
        "carried_streams": {
            "bytes": carried,
            "streams": [{"kind": s.kind, "codec": s.codec, "language": s.language,
                         "duration_s": s.seconds} for s in streams],
        },
        "model": config,
        "gops": [
            {"index": k, "kind": GOP_KINDS[e.kind], "reference": e.reference,
             "frames": [e.start, e.stop - 1], "offset": e.offset, "bytes": e.length,
             "bpp": e.length * 8 / (info.width * info.height * (e.stop - e.start))}
            for k, e in enumerate(index)
        ],
    }


def format_text(report: dict) -> str:
    """The human-readable form of ``describe``."""
    v = report["video"]
    lines = [
        f"{report['file']}: {report['bytes']} bytes, {report['bpp']:.4f} bpp, "
        f"format version {report['format_version']}",
        f"video: {v['width']}x{v['height']}, {v['frames']} frames at "
        f"{'an average ' if v['variable_frame_rate'] else ''}{v['fps']} fps "
        f"({v['duration_s']:.3f}s{', variable frame rate' if v['variable_frame_rate'] else ''}), "
        f"colour {v['colour']}",
        *[f"carried: {s['kind']} {s['codec']}"
          + (f" [{s['language']}]" if s["language"] else "")
          + ("" if s["duration_s"] is None else f" {s['duration_s']:.3f}s")
          for s in report["carried_streams"]["streams"]],
        "model: " + ", ".join(f"{k}={val}" for k, val in report["model"].items()),
        f"{'GOP':>4} {'kind':<9} {'frames':>13} {'offset':>10} {'bytes':>9} {'bpp':>8}",
    ]
    for g in report["gops"]:
        lines.append(f"{g['index']:>4} {g['kind']:<9} {g['frames'][0]:>6}-{g['frames'][1]:<6} "
                     f"{g['offset']:>10} {g['bytes']:>9} {g['bpp']:>8.4f}")
    return "\n".join(lines)
