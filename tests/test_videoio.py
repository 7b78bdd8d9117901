from fractions import Fraction

import av
import numpy as np
import pytest
from click.testing import CliRunner

from actinr_codec.media.videoio import SUPPORTED_OUTPUTS, VideoIOError, VideoWriter, read_video

NTSC = Fraction(30000, 1001)


def smooth_clip(frames: int, height: int, width: int) -> np.ndarray:
    """(frames, H, W, 3) uint8: gradients and a drifting blob, mild enough for 4:2:0 at 30 dB."""
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    out = []
    for t in range(frames):
        blob = np.exp(-((x - 0.2 - 0.05 * t) ** 2 + (y - 0.4) ** 2) / 0.05)
        out.append(np.stack([0.2 + 0.6 * x, 0.3 + 0.5 * blob, 0.8 - 0.5 * y * (1 - blob)], -1))
    return (np.stack(out) * 255).round().astype(np.uint8)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255**2 / mse)


def encode(path, clip, fps, codec, pix_fmt, fmt=None, options=None):
    """Write ``clip`` with plain PyAV, so reading is tested apart from VideoWriter."""
    with av.open(str(path), "w", format=fmt) as container:
        stream = container.add_stream(codec, rate=fps, options=options or {})
        stream.height, stream.width = clip.shape[1:3]
        stream.pix_fmt = pix_fmt
        for frame in clip:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())


def write(path, clip, fps=Fraction(25), **kwargs):
    with VideoWriter(path, clip.shape[2], clip.shape[1], fps, **kwargs) as writer:
        for frame in clip:
            writer.write(frame)


@pytest.mark.parametrize("name, codec, pix_fmt, fps, size, options", [
    ("a.mp4", "libx264", "yuv420p", NTSC, (32, 48), {"crf": "10"}),
    ("a.mov", "libx264", "yuv444p", Fraction(24), (17, 33), {"crf": "10"}),
    ("a.mkv", "libx264", "yuv444p", NTSC, (17, 33), {"crf": "10"}),
    ("a.avi", "mpeg4", "yuv420p", Fraction(25), (32, 48), {"b": "4M"}),
    ("a.y4m", "rawvideo", "yuv444p", NTSC, (17, 33), None),
    ("a.webm", "libvpx-vp9", "yuv420p", Fraction(24), (17, 33), {"crf": "10", "b": "0"}),
    ("a.mpg", "mpeg2video", "yuv420p", NTSC, (32, 48), {"b": "4M"}),
])
def test_reads_each_container_with_exact_rate(tmp_path, name, codec, pix_fmt, fps, size, options):
    clip = smooth_clip(9, *size)
    path = tmp_path / name
    encode(path, clip, fps, codec, pix_fmt, options=options)
    video, info = read_video(path)
    assert video.shape == clip.shape and video.dtype == np.uint8
    assert (info.height, info.width, info.frames) == (*size, 9)
    assert info.fps == fps and isinstance(info.fps, Fraction)
    assert psnr(video, clip) > 30


def test_reads_a_png_sequence(tmp_path):
    clip = smooth_clip(6, 17, 33)
    encode(tmp_path / "%03d.png", clip, Fraction(25), "png", "rgb24", fmt="image2")
    assert (tmp_path / "001.png").is_file()
    video, info = read_video(str(tmp_path / "%03d.png"), start=2)
    assert np.array_equal(video, clip[2:])
    assert info.fps == 25 and info.frames == 4


def test_chroma_is_interpolated_not_repeated(tmp_path):
    clip = smooth_clip(2, 32, 48)
    encode(tmp_path / "c.y4m", clip, Fraction(25), "rawvideo", "yuv420p")
    assert psnr(read_video(tmp_path / "c.y4m")[0], clip) > 47  # PyAV's default: 41 dB


def test_frame_ranges(tmp_path):
    clip = smooth_clip(12, 32, 48)
    path = tmp_path / "b.mp4"
    encode(path, clip, Fraction(25), "libx264", "yuv420p")  # B-frames: decode order != pts
    full, _ = read_video(path)
    part, info = read_video(path, start=3, count=4)
    assert info.frames == 4 and np.array_equal(part, full[3:7])
    tail, info = read_video(path, start=10, count=100)
    assert info.frames == 2 and np.array_equal(tail, full[10:])
    last, _ = read_video(path, start=11)
    assert np.array_equal(last, full[11:])
    with pytest.raises(VideoIOError, match=r"b\.mp4.*start frame 12"):
        read_video(path, start=12)
    with pytest.raises(ValueError):
        read_video(path, count=0)


def test_single_frame_video(tmp_path):
    clip = smooth_clip(1, 17, 33)
    encode(tmp_path / "one.mkv", clip, Fraction(25), "ffv1", "bgr0")
    video, info = read_video(tmp_path / "one.mkv")
    assert np.array_equal(video, clip) and info.frames == 1


def test_frames_sorted_when_timestamps_run_backwards(tmp_path):
    shown_at = [3, 0, 4, 1, 2]  # display slot of each packet, in file order
    path = tmp_path / "shuffled.mkv"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("ffv1", rate=25)
        stream.width, stream.height, stream.pix_fmt = 16, 8, "bgr0"
        for i, slot in enumerate(shown_at):
            frame = av.VideoFrame.from_ndarray(np.full((8, 16, 3), 40 * slot, np.uint8), "rgb24")
            for packet in stream.encode(frame):
                packet.dts, packet.pts = i, len(shown_at) + slot
                container.mux(packet)
    video, _ = read_video(path)
    assert list(video[:, 0, 0, 0]) == [0, 40, 80, 120, 160]
    window, _ = read_video(path, start=1, count=2)
    assert list(window[:, 0, 0, 0]) == [40, 80]


def test_unreadable_inputs(tmp_path):
    with pytest.raises(VideoIOError, match="nothere.mp4"):
        read_video(tmp_path / "nothere.mp4")
    fake = tmp_path / "notes.mp4"
    fake.write_text("not a video\n" * 50)
    with pytest.raises(VideoIOError, match="notes.mp4"):
        read_video(fake)
    sound = tmp_path / "tone.wav"
    with av.open(str(sound), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), "s16", "mono")
        frame.sample_rate = 8000
        container.mux(stream.encode(frame))
    with pytest.raises(VideoIOError, match="tone.wav: no video stream"):
        read_video(sound)
    empty = tmp_path / "empty.y4m"
    empty.write_bytes(b"YUV4MPEG2 W16 H8 F25:1 Ip A1:1 C420jpeg\n")
    with pytest.raises(VideoIOError, match="empty.y4m: no frames"):
        read_video(empty)
    with pytest.raises(VideoIOError, match="missing"):
        read_video(str(tmp_path / "missing" / "%04d.png"))


@pytest.mark.parametrize("name, lossless", [
    ("o.mp4", False), ("o.mov", False), ("o.mkv", False), ("o.y4m", False),
    ("o.mp4", True), ("o.mov", True), ("o.mkv", True), ("%04d.png", False),
])
@pytest.mark.parametrize("size", [(32, 48), (17, 33)])
def test_writer_round_trip(tmp_path, name, lossless, size):
    clip = smooth_clip(5, *size)
    path = tmp_path / name
    write(path, clip, NTSC, lossless=lossless)
    video, info = read_video(path)
    assert video.shape == clip.shape
    assert info.fps == (NTSC if "%" not in name else 25)
    if lossless or name.endswith(".png"):
        assert np.array_equal(video, clip)
    else:
        assert psnr(video, clip) > 30
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_h264_output_says_which_matrix_it_used(tmp_path):
    write(tmp_path / "tagged.mp4", smooth_clip(2, 16, 16))
    with av.open(str(tmp_path / "tagged.mp4")) as container:
        frame = next(container.decode(video=0))
    assert (frame.colorspace, frame.color_range) == (6, 1)  # BT.601 (SMPTE 170M), limited


@pytest.mark.parametrize("fps", [NTSC, Fraction(60000, 1001), Fraction(24000, 1001),
                                 Fraction(25, 2), Fraction(7, 3)])
@pytest.mark.parametrize("ext", [".mp4", ".mkv", ".mov", ".y4m"])
def test_writer_keeps_rational_rates(tmp_path, fps, ext):
    write(tmp_path / f"r{ext}", smooth_clip(3, 16, 16), fps)
    assert read_video(tmp_path / f"r{ext}")[1].fps == fps


@pytest.mark.parametrize("name", ["v.mp4", "v.mkv", "v.y4m", "%02d.png"])
@pytest.mark.parametrize("interrupt", [RuntimeError, KeyboardInterrupt])
def test_failed_write_leaves_target_untouched(tmp_path, name, interrupt):
    clip = smooth_clip(4, 16, 16)
    write(tmp_path / name, clip[:2])
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    with pytest.raises(interrupt), VideoWriter(tmp_path / name, 16, 16, Fraction(25)) as writer:
        writer.write(clip[2])
        writer.write(clip[3])
        raise interrupt()
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_failed_write_leaves_nothing(tmp_path):
    with (pytest.raises(ValueError, match="uint8"),
          VideoWriter(tmp_path / "x.mp4", 16, 16, Fraction(25)) as writer):
        writer.write(np.zeros((16, 16, 3), np.float32))
    with (pytest.raises(VideoIOError, match="no frames"),
          VideoWriter(tmp_path / "%d.png", 16, 16, Fraction(25))):
        pass
    assert list(tmp_path.iterdir()) == []


def test_png_sequence_replaces_an_older_longer_one(tmp_path):
    clip = smooth_clip(5, 16, 16)
    (tmp_path / "frame_0000.png").write_bytes(b"stale, numbered from 0")
    (tmp_path / "frame_12345.png").write_bytes(b"stale, far along")
    keep = ["frame_00009.png", "frame_1.png", "keep.png"]  # not names %04d would produce
    for name in keep:
        (tmp_path / name).write_bytes(b"not part of the sequence")
    write(tmp_path / "frame_%04d.png", clip)
    write(tmp_path / "frame_%04d.png", clip[:3])
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted(["frame_0001.png", "frame_0002.png", "frame_0003.png", *keep])
    assert np.array_equal(read_video(str(tmp_path / "frame_%04d.png"))[0], clip[:3])


def test_writer_rejects_bad_outputs(tmp_path):
    with pytest.raises(VideoIOError) as err:
        VideoWriter(tmp_path / "out.xyz", 16, 16, Fraction(25))
    assert str(err.value) == ("unsupported output format '.xyz' (use mp4, mkv, mov, y4m or a "
                              "%d PNG pattern)")
    for bad in ["out.png", "%s_%d.png", "%d_%d.png"]:
        with pytest.raises(VideoIOError, match="pattern"):
            VideoWriter(tmp_path / bad, 16, 16, Fraction(25))
    with pytest.raises(VideoIOError, match="lossless"):
        VideoWriter(tmp_path / "out.y4m", 16, 16, Fraction(25), lossless=True)
    with pytest.raises(VideoIOError, match="does not exist"):
        VideoWriter(tmp_path / "no" / "out.mp4", 16, 16, Fraction(25))
    for rate in [Fraction(0), 29.97]:  # the float is 2**-n exact, beyond FFmpeg's int32 ratio
        with pytest.raises(ValueError):
            VideoWriter(tmp_path / "out.mp4", 16, 16, rate)
    assert list(tmp_path.iterdir()) == []
    assert set(SUPPORTED_OUTPUTS) == {".mp4", ".mkv", ".mov", ".y4m", ".png"}


def _tagged_clip(path, primaries: int, transfer: int, space: int, full_range: bool = False):
    """Three flat-coloured 64x48 frames as H.264 yuv420p with these colour tags, converted
    from RGB with the matching matrix and range; returns the RGB frames."""
    import av
    from av.video.reformatter import ColorRange

    rgb = np.zeros((3, 48, 64, 3), np.uint8)
    rgb[..., 0], rgb[..., 2], rgb[:, :, :32, 1] = 200, 40, 180
    value_range = ColorRange.JPEG if full_range else ColorRange.MPEG
    sws = {1: 1, 6: 5, 9: 9}[space]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25, options={"qp": "0"})
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        context = stream.codec_context
        context.color_primaries, context.color_trc, context.colorspace = primaries, transfer, space
        context.color_range = value_range
        for i, frame in enumerate(rgb):
            out = av.VideoFrame.from_ndarray(frame, format="rgb24").reformat(
                format="yuv420p", dst_colorspace=sws, dst_color_range=value_range)
            out.pts = i
            container.mux(stream.encode(out))
        container.mux(stream.encode())
    return rgb


@pytest.mark.parametrize("full_range", [False, True])
def test_sources_are_read_with_their_own_matrix_and_range(tmp_path, full_range):
    original = _tagged_clip(tmp_path / "c.mp4", 1, 1, 1, full_range)
    video, _ = read_video(tmp_path / "c.mp4")
    away = np.r_[0:28, 36:64]  # from the edge, where 4:2:0 chroma blurs
    assert np.abs(video.astype(int) - original)[:, :, away].max() <= 3


def test_colour_description_travels_from_source_to_file_to_output(tmp_path):
    """A BT.709 source is stored as bt709 and decodes to H.264 tagged BT.709 (primaries,
    transfer and matrix), its YUV made with that matrix."""
    import av

    from bitstream import AnrReader
    from cli.main import main

    _tagged_clip(tmp_path / "c.mp4", 1, 1, 1)
    anr, out = tmp_path / "c.anr", tmp_path / "d.mkv"
    runner = CliRunner()
    result = runner.invoke(main, ["encode", str(tmp_path / "c.mp4"), str(anr), "--iters", "30",
                                  "--preset", "fast"])
    assert result.exit_code == 0, result.output
    with AnrReader(anr) as reader:
        assert reader.info.colour == "bt709"
    assert runner.invoke(main, ["decode", str(anr), str(out)]).exit_code == 0
    with av.open(str(out)) as container:
        context = container.streams.video[0].codec_context
        assert (context.color_primaries, context.color_trc, context.colorspace) == (1, 1, 1)
    flat = np.full((1, 48, 64, 3), (200, 180, 40), np.uint8)
    with VideoWriter(tmp_path / "w.mkv", 64, 48, Fraction(25), colour="bt709") as writer:
        writer.write(flat[0])
    back, _ = read_video(tmp_path / "w.mkv")
    assert np.abs(back.astype(int) - flat).max() <= 3


def test_hdr_sources_are_refused_before_fitting(tmp_path):
    from cli.main import main

    _tagged_clip(tmp_path / "hdr.mp4", 9, 16, 9)
    result = CliRunner().invoke(main, ["encode", str(tmp_path / "hdr.mp4"),
                                       str(tmp_path / "x.anr")])
    assert result.exit_code == 1 and "HDR video (PQ (SMPTE 2084) transfer)" in result.output
    assert len(result.output.splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hdr.mp4"]
