import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from synthetic import moving_pattern, write_clip

from cli.main import main

TINY = ["--preset", "fast", "--iters", "30", "--gop", "4"]
PNG = b"\x89PNG\r\n\x1a\n"


pytestmark = pytest.mark.usefixtures("one_thread")


def run(*args):
    return CliRunner().invoke(main, ["eval", *map(str, args)])


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory) -> Path:
    return write_clip(tmp_path_factory.mktemp("eval") / "tiny.mkv", moving_pattern(9, 32, 32),
                      "ffv1", "bgr0")


def test_rd_writes_points_bd_rates_and_plots(tiny_clip, tmp_path):
    out = tmp_path / "rd"
    result = run("rd", tiny_clip, "--out", out, "--frames", 5, "--qualities", "6,3",
                 "--crfs", "20,35", *TINY)
    assert result.exit_code == 0, result.output
    document = json.loads((out / "rd.json").read_text())
    points = document["rows"]
    assert sorted((p["codec"], p["setting"]) for p in points) == [
        ("actinr", 3), ("actinr", 6), ("x264", 20), ("x264", 35), ("x265", 20), ("x265", 35)]
    for p in points:
        assert p["frames"] == 5 and 10 < p["psnr_rgb"] < 60 and 0 < p["ms_ssim"] <= 1
        if p["codec"] == "actinr":
            size = (out / "anr" / p["settings"]["file"]).stat().st_size
            assert p["bytes"] == size and p["bpp"] == pytest.approx(size * 8 / (32 * 32 * 5))
    high, low = sorted((p for p in points if p["codec"] == "actinr"), key=lambda p: p["setting"])
    assert high["bytes"] > low["bytes"]
    assert {(r["anchor"], r["metric"]) for r in document["bd"]} == {
        (a, m) for a in ("x264", "x265") for m in ("psnr_yuv420", "psnr_rgb", "psnr_yuv")}
    for p in points:
        assert 10 < p["psnr_yuv420"] < 70
    assert document["provenance"]["actinr_version"] and document["provenance"]["machine"]["cores"]
    assert (out / "rd.csv").read_text().count("\n") == 1 + len(points)
    assert (out / "bd.csv").read_text().startswith("git_commit,clip,anchor")
    assert (out / "rd_tiny.png").read_bytes().startswith(PNG)
    assert "BD actinr vs x264" in result.output
    assert not list(out.glob(".*.tmp"))


def test_restore_scores_actinr_and_baselines(tiny_clip, tmp_path):
    out = tmp_path / "restore"
    result = run("restore", tiny_clip, "--out", out, "--steps", "2", "--scale", "4", *TINY)
    assert result.exit_code == 0, result.output
    rows = json.loads((out / "restore.json").read_text())["rows"]
    methods = {(r["task"], r["method"]): r for r in rows}
    filters = {"slowmo": ("repeat", "blend", "minterpolate"), "superres": ("bicubic", "lanczos")}
    # Each filter runs three times: on the degraded frames, on actinr's 1x decode of them,
    # and on x264's decode of them in no more bytes than actinr's file.
    assert set(methods) == {(task, m) for task, names in filters.items()
                            for m in ("actinr", *names, *(f"actinr 1x+{n}" for n in names),
                                      *(f"x264 same bytes+{n}" for n in names))}
    for task, names in filters.items():
        same = methods[task, f"x264 same bytes+{names[0]}"]
        assert same["bytes"] <= methods[task, "actinr"]["bytes"] and 0 <= same["crf"] <= 51
    for task, names in filters.items():
        for name in names:
            assert methods[task, f"actinr 1x+{name}"]["psnr_rgb"] != methods[task, name]["psnr_rgb"]
    assert methods["slowmo", "actinr"]["frames_scored"] == 4  # frames 1, 3, 5, 7 of 9
    assert methods["superres", "lanczos"]["frames_scored"] == 9
    assert all(10 < r["psnr_rgb"] < 60 for r in rows)
    assert methods["slowmo", "blend"]["psnr_rgb"] > methods["slowmo", "repeat"]["psnr_rgb"]
    # actinr's decode of the frames it coded (kept frames; the small frames) is scored too.
    for task in ("slowmo", "superres"):
        assert 10 < methods[task, "actinr"]["coded_psnr_rgb"] < 60
        assert "coded_psnr_rgb" not in methods[task, "lanczos" if task == "superres" else "blend"]
    assert (out / "restore.csv").exists()
    assert (out / "restore_tiny.png").read_bytes().startswith(PNG)
    for picture in ("frame_tiny_slowmo_s1_k2.png", "frame_tiny_superres_s4_k1.png"):
        assert (out / picture).read_bytes().startswith(PNG)


def test_bad_input_fails_in_one_line(tiny_clip, tmp_path):
    missing = run("rd", tmp_path / "nope.mkv", "--out", tmp_path / "x")
    assert missing.exit_code == 1 and "no such file" in missing.output
    assert len(missing.output.strip().splitlines()) == 1 and not (tmp_path / "x").exists()
    assert run("rd", tiny_clip, "--out", tmp_path / "x", "--qualities", "11").exit_code == 2
    assert run("rd", tiny_clip, "--out", tmp_path / "x", "--codecs", "vp9").exit_code == 2
    device = run("rd", tiny_clip, "--out", tmp_path / "x", "--device", "abacus")
    assert device.exit_code == 1 and not (tmp_path / "x").exists()
    nothing = run("restore", tiny_clip, "--out", tmp_path / "x", "--steps", "", "--scale", "1")
    assert nothing.exit_code == 2
    (tmp_path / "done").mkdir()
    (tmp_path / "done" / "rd.json").write_text("{}")
    again = run("rd", tiny_clip, "--out", tmp_path / "done")
    assert again.exit_code == 1 and "--overwrite" in again.output


def test_rd_intra_codes_one_frame_against_intra_baselines(tiny_clip, tmp_path):
    """--intra 6: frame 6 alone for every codec, the baselines at keyint 1."""
    out = tmp_path / "intra"
    result = run("rd", tiny_clip, "--out", out, "--intra", 6, "--qualities", "6,3",
                 "--crfs", "20,35", "--codecs", "x264", *TINY)
    assert result.exit_code == 0, result.output
    document = json.loads((out / "rd.json").read_text())
    assert all(p["frames"] == 1 for p in document["rows"])
    assert all(p["settings"]["keyint"] == 1 for p in document["rows"] if p["codec"] == "x264")
    assert {r["metric"] for r in document["bd"]} >= {"psnr_yuv420"}
    result = run("rd", tiny_clip, "--out", tmp_path / "x", "--intra", 6, "--frames", 2)
    assert result.exit_code == 2 and "--intra excludes" in result.output
