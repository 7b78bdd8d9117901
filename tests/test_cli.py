import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from synthetic import moving_pattern, write_clip

from actinr_codec.media.videoio import read_video
from cli.main import main

FAST = ["--preset", "fast", "--iters", "150", "--gop", "4"]


def run(*args):
    result = CliRunner().invoke(main, [str(a) for a in args])
    return result


@pytest.fixture(scope="module")
def encoded(tmp_path_factory):
    """A 6-frame 48x32 mkv clip at 30000/1001 fps, encoded once."""
    tmp = tmp_path_factory.mktemp("enc")
    src = write_clip(tmp / "in.mkv", moving_pattern(6, 32, 48), "ffv1", "bgr0", Fraction(30000, 1001))
    out = tmp / "out.anr"
    result = run("encode", src, out, *FAST)
    assert result.exit_code == 0, result.output
    return src, out


@pytest.mark.parametrize("name,codec,pix_fmt", [
    ("in.mp4", "libx264", "yuv420p"), ("in.y4m", "rawvideo", "yuv420p"),
    ("in.avi", "mpeg4", "yuv420p"), ("odd.mkv", "ffv1", "bgr0"),
])
def test_encode_containers_and_decode_back(tmp_path, name, codec, pix_fmt):
    h, w = (17, 23) if name.startswith("odd") else (32, 48)
    if pix_fmt == "yuv420p":
        h, w = h + h % 2, w + w % 2
    src = write_clip(tmp_path / name, moving_pattern(5, h, w), codec, pix_fmt)
    anr = tmp_path / "x.anr"
    assert run("encode", src, anr, *FAST).exit_code == 0
    assert decoded_psnr(anr, src, tmp_path / "x.mkv") > 18  # 150 steps; broken is near 10


def decoded_psnr(anr: Path, src: Path, out: Path) -> float:
    """PSNR of ``anr`` decoded losslessly through the CLI against the source video."""
    result = run("decode", anr, out, "--lossless")
    assert result.exit_code == 0, result.output
    original, _ = read_video(src)
    decoded, _ = read_video(out)
    assert decoded.shape == original.shape
    err = np.mean((decoded.astype(float) - original.astype(float)) ** 2)
    return 10 * np.log10(255**2 / err)


def test_no_asm_fits_without_the_native_kernel(encoded, tmp_path, monkeypatch):
    from actinr_codec.fitting import fit

    def refuse(*args, **kwargs):
        raise AssertionError("the native kernel was used")

    monkeypatch.setattr(fit, "native_tile_loss", refuse)
    src, _ = encoded
    result = run("encode", src, tmp_path / "plain.anr", *FAST, "--no-asm")
    assert result.exit_code == 0, result.output
    assert decoded_psnr(tmp_path / "plain.anr", src, tmp_path / "plain.mkv") > 20
    assert run("encode", src, tmp_path / "native.anr", *FAST).exit_code != 0


def test_single_frame_input(tmp_path):
    src = write_clip(tmp_path / "one.mkv", moving_pattern(1, 24, 24), "ffv1", "bgr0")
    assert run("encode", src, tmp_path / "one.anr", *FAST).exit_code == 0
    result = run("decode", tmp_path / "one.anr", tmp_path / "one.y4m", "--fps-scale", "3")
    assert result.exit_code == 0, result.output
    frames, _ = read_video(tmp_path / "one.y4m")
    assert frames.shape == (1, 24, 24, 3)


@pytest.mark.parametrize("args,shape", [
    (["--scale", "0.5"], (6, 16, 24)), (["--scale", "2"], (6, 64, 96)),
    (["--scale", "4"], (6, 128, 192)), (["--size", "50x30"], (6, 30, 50)),
    (["--fps-scale", "2"], (11, 32, 48)), (["--fps-scale", "3"], (16, 32, 48)),
])
def test_decode_scales_and_slow_motion(encoded, tmp_path, args, shape):
    _, anr = encoded
    out = tmp_path / "out.mkv"
    result = run("decode", anr, out, *args)
    assert result.exit_code == 0, result.output
    frames, info = read_video(out)
    assert frames.shape[:3] == shape
    assert info.fps == Fraction(30000, 1001)  # slow motion keeps the rate


def test_decode_time_range_and_resampling(encoded, tmp_path):
    _, anr = encoded
    out = tmp_path / "cut.mkv"
    # Frames at 1/29.97 s: 0.05 s .. 0.12 s holds frames 2 and 3.
    assert run("decode", anr, out, "--start", "0.05", "--end", "0.12").exit_code == 0
    assert read_video(out)[0].shape[0] == 2
    out60 = tmp_path / "fps.mkv"
    assert run("decode", anr, out60, "--fps", "60000/1001").exit_code == 0
    frames, info = read_video(out60)
    assert info.fps == Fraction(60000, 1001) and frames.shape[0] == 11
    pngs = tmp_path / "png"
    pngs.mkdir()
    assert run("decode", anr, pngs / "%03d.png").exit_code == 0
    assert len(list(pngs.glob("*.png"))) == 6


def test_info_reports_header_and_gops(encoded):
    _, anr = encoded
    result = run("info", anr, "--json")
    assert result.exit_code == 0
    report = json.loads(result.output)
    assert report["video"]["frames"] == 6 and report["video"]["fps"] == "30000/1001"
    assert [g["frames"] for g in report["gops"]] == [[0, 2], [2, 5]]
    assert [(g["kind"], g["reference"]) for g in report["gops"]] == [("intra", None),
                                                                    ("predicted", 0)]
    assert report["bytes"] == anr.stat().st_size and report["format_version"] == 5
    text = run("info", anr)
    assert text.exit_code == 0 and "48x32" in text.output and "predicted" in text.output


def test_overwrite_is_refused_without_y(encoded, tmp_path):
    src, anr = encoded
    before = anr.read_bytes()
    result = run("encode", src, anr, *FAST)
    assert result.exit_code == 1 and "exists" in result.output
    assert anr.read_bytes() == before


@pytest.mark.parametrize("make,needle", [
    (lambda d: d / "missing.mp4", "missing.mp4"),
    (lambda d: (d / "text.mp4").write_text("not a video") and d / "text.mp4", "text.mp4"),
])
def test_bad_inputs_give_one_line_errors(tmp_path, make, needle):
    result = run("encode", make(tmp_path), tmp_path / "o.anr", *FAST)
    assert result.exit_code == 1
    assert needle in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "o.anr").exists()


def test_corrupt_anr_is_a_clear_error(encoded, tmp_path):
    _, anr = encoded
    data = bytearray(anr.read_bytes())
    data[len(data) // 2] ^= 0xFF
    bad = tmp_path / "bad.anr"
    bad.write_bytes(bytes(data))
    result = run("decode", bad, tmp_path / "o.mkv")
    assert result.exit_code == 1 and "CRC" in result.output
    assert not (tmp_path / "o.mkv").exists()
    short = tmp_path / "short.anr"
    short.write_bytes(bytes(data[:20]))
    assert run("info", short).exit_code == 1


def test_usage_errors_exit_2(encoded, tmp_path):
    _, anr = encoded
    assert run("decode", anr, tmp_path / "o.mkv", "--scale", "2", "--size", "4x4").exit_code == 2
    assert run("decode", anr, tmp_path / "o.mkv", "--fps-scale", "0.5").exit_code == 2
    assert run("encode").exit_code == 2
    assert run("--version").output.startswith("actinr, version")


def test_parallel_jobs_give_a_complete_valid_file(encoded, tmp_path):
    src, _ = encoded
    out = tmp_path / "par.anr"
    # All intra, so that the two GOPs are two segments, one for each job.
    result = run("encode", src, out, *FAST, "--jobs", "2", "--keyint", "1")
    assert result.exit_code == 0, result.output
    report = json.loads(run("info", out, "--json").output)
    assert [g["frames"] for g in report["gops"]] == [[0, 2], [2, 5]]
    assert [g["kind"] for g in report["gops"]] == ["intra", "intra"]
    assert decoded_psnr(out, src, tmp_path / "par.mkv") > 20


def test_ctrl_c_exits_130_and_writes_nothing(encoded, tmp_path, monkeypatch):
    src, _ = encoded

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("actinr_codec.api.encode_gops", interrupted)
    result = run("encode", src, tmp_path / "x.anr", *FAST)
    assert result.exit_code == 130 and "no output" in result.output
    assert list(tmp_path.iterdir()) == []


def test_demo_compares_actinr_with_x264_at_the_same_bytes(tmp_path, monkeypatch):
    import cli.demo

    # The true picture at any time is the clip's own frame at whole times.
    assert np.array_equal(cli.demo.generated_clip([3.0]), cli.demo.generated_clip(range(5))[3:4])
    monkeypatch.setattr(cli.demo, "FRAMES", 5)
    result = run("demo", "--outdir", tmp_path, "--iters", "100")
    assert result.exit_code == 0, result.output
    assert "bpp" in result.output and "PSNR" in result.output and "x264 crf" in result.output
    big, _ = read_video(tmp_path / "scale2.mp4")
    slow, _ = read_video(tmp_path / "slowmo2.mp4")
    assert big.shape == (5, 192, 256, 3) and slow.shape == (9, 96, 128, 3)
    # Original | actinr | x264, each 128 wide, 4 white pixels apart.
    compare, _ = read_video(tmp_path / "compare.png")
    assert compare.shape == (1, 96, 3 * 128 + 2 * 4, 3)
    assert (compare[0, :, 128:132] == 255).all()
    original, actinr_frame, x264_frame = (compare[0, :, k * 132:k * 132 + 128] for k in range(3))
    assert not np.array_equal(original, x264_frame) and not np.array_equal(original, actinr_frame)
    zoom, _ = read_video(tmp_path / "zoom4x.png")
    assert zoom.shape == (1, 4 * 48, 2 * 4 * 64 + 4, 3)


def test_decode_to_a_pattern_keeps_existing_frames_without_overwrite(encoded, tmp_path):
    """Every file a PNG sequence would replace or delete is an output: without -y none of
    them is touched (they may be the encode's own source frames)."""
    _, anr = encoded
    folder = tmp_path / "png"
    folder.mkdir()
    kept = {name: bytes([k]) * 10 for k, name in enumerate(["0001.png", "0042.png"])}
    for name, data in kept.items():
        (folder / name).write_bytes(data)
    (folder / "notes.txt").write_text("not part of the sequence")
    result = run("decode", anr, folder / "%04d.png")
    assert result.exit_code == 1
    assert "0001.png (and 1 more) exists" in result.output and "-y" in result.output
    assert {p.name: p.read_bytes() for p in folder.glob("*.png")} == kept
    result = run("decode", anr, folder / "%04d.png", "-y")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in folder.glob("*.png")) == [f"{i:04d}.png" for i in range(1, 7)]
    assert (folder / "notes.txt").exists()


def test_demo_refuses_to_replace_its_files_without_overwrite(tmp_path):
    (tmp_path / "demo.anr").write_bytes(b"mine")
    result = run("demo", "--outdir", tmp_path, "--iters", "1")
    assert result.exit_code == 1 and "demo.anr exists" in result.output
    assert [p.name for p in tmp_path.iterdir()] == ["demo.anr"]
    assert (tmp_path / "demo.anr").read_bytes() == b"mine"


def test_the_commands_defaults_are_the_librarys():
    """`actinr encode IN OUT` is EncodeOptions(): every option that sets a field has that
    field's default (jobs has none of its own, so that --scheduler can exclude it), and the
    evaluation commands encode the same way."""
    import dataclasses

    from actinr_codec.pipeline.options import EncodeOptions
    from cli.evaluate import evaluate

    defaults = EncodeOptions()
    fields = {f.name for f in dataclasses.fields(EncodeOptions)}
    params = {p.name.rstrip("_"): p for p in main.commands["encode"].params}
    shared = sorted(fields & set(params) - {"jobs"})
    assert len(shared) >= 12, shared
    for name in shared:
        assert params[name].default == getattr(defaults, name), name
    assert params["no_asm"].default is (not defaults.native)
    assert params["jobs"].default is None
    for command in evaluate.commands.values():
        for param in command.params:
            # rd's --keyint is x264's and x265's, the baselines'.
            if param.name in fields - {"keyint"}:
                assert param.default == getattr(defaults, param.name), (command.name, param.name)
