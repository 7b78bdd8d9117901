"""What a decoder allocates is bounded by what the file holds and by an explicit limit:
hostile headers, NaN configuration values and huge output sizes (subprocesses, so that
peak memory is the decoder's own)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import actinr_codec as actinr
from actinr_codec.model.config import ModelConfig
from actinr_codec.model.schema import stream_config, tensor_layout, tile_count
from bitstream import VideoInfo, encode_file
from bitstream.records import GOPRecord, TensorRecord

# Runs a decode in a fresh interpreter, optionally under an address-space limit, and
# reports its exit code, its last line on stderr and its peak resident memory.
PROBE = textwrap.dedent("""
    import json, resource, sys
    limit = int(sys.argv[1])
    if limit:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    from click.testing import CliRunner
    from cli.main import main
    result = CliRunner().invoke(main, sys.argv[2:])
    # The image's own high-water mark: ru_maxrss would carry the parent's over exec.
    status = open("/proc/self/status").read()
    peak = int(status.split("VmHWM:")[1].split()[0]) * 1024
    print(json.dumps({"code": result.exit_code, "output": result.output,
                      "error": repr(result.exception), "peak": peak}))
""")


def probe(*args, address_space: int = 0) -> dict:
    done = subprocess.run([sys.executable, "-c", PROBE, str(address_space), *map(str, args)],
                          capture_output=True, text=True, timeout=300, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def crafted(width: int, height: int, config: dict | None = None, consistent: bool = False,
            frames: int = 2) -> bytes:
    """A file whose header says width x height. Its one GOP holds the tensors that size
    implies (all zero symbols, so a few hundred bytes) when consistent, else one tiny
    tensor."""
    config = config or stream_config(ModelConfig(), 32)
    if consistent:
        cfg = ModelConfig(**{k: v for k, v in config.items() if k != "gop_size"})
        layout = tensor_layout(cfg, tile_count(cfg, height, width))
    else:
        layout = [("latents", (1, 8))]
    tensors = [TensorRecord(name, shape, 0.5, np.zeros(shape, np.int32)) for name, shape in layout]
    return encode_file(VideoInfo(width, height, frames, 25, 1), config,
                       [GOPRecord(0, frames, tensors)])


def test_nan_in_the_configuration_names_the_key(tmp_path):
    config = {**stream_config(ModelConfig(), 32), "omega": math.nan}
    path = tmp_path / "nan.anr"
    path.write_bytes(crafted(48, 32, config))
    out = tmp_path / "out.y4m"
    result = probe("decode", path, out)
    assert result["code"] == 1
    lines = result["output"].strip().splitlines()
    assert len(lines) == 1 and "omega must be a finite number" in lines[0], result
    assert not out.exists() and list(tmp_path.iterdir()) == [path]


def test_a_header_whose_size_the_tensors_do_not_match_is_refused_in_little_memory(tmp_path):
    """10000x6000 is refused at once (its model exceeds the format's parameter limit), and
    a 4000x3000 header whose GOP holds one tiny tensor is refused before a model, a
    frame or a video encoder is allocated for that size."""
    baseline = probe("--version")["peak"]
    for (w, h), message in [((10000, 6000), "parameters per GOP"),
                            ((4000, 3000), "tensors do not match the model")]:
        path = tmp_path / f"{w}x{h}.anr"
        path.write_bytes(crafted(w, h))
        assert path.stat().st_size < 1000
        result = probe("decode", path, tmp_path / "out.mkv")
        assert result["code"] == 1 and message in result["output"], result
        assert result["peak"] < 400 << 20 and result["peak"] - baseline < 60 << 20, result
    assert sorted(p.suffix for p in tmp_path.iterdir()) == [".anr", ".anr"]


def test_a_model_over_the_memory_limit_is_refused_before_allocating(tmp_path):
    """A consistent file of constant tensors can declare 60 million parameters in a few
    hundred bytes; under an address space the decode could not hold, it fails with the
    limit's one line, not a MemoryError, and --max-memory lifts the limit."""
    path = tmp_path / "wide.anr"
    path.write_bytes(crafted(8000, 5000, consistent=True))
    assert path.stat().st_size < 4000
    result = probe("decode", path, tmp_path / "out.y4m", address_space=1800 << 20)
    assert result["code"] == 1, result
    assert "over the limit of 2048 MiB (--max-memory)" in result["output"], result
    assert "MemoryError" not in result["output"] + result["error"]
    result = probe("decode", path, tmp_path / "out.y4m", "--max-memory", "1G")
    assert "limit of 1024 MiB" in result["output"]
    with pytest.raises(ValueError, match="over the limit"):
        actinr.open(path.read_bytes(), "cpu", max_memory=1 << 30)


def test_an_output_size_over_the_memory_limit_is_refused_before_rendering(tmp_path):
    path = tmp_path / "small.anr"
    path.write_bytes(crafted(48, 32, consistent=True, frames=1))
    with actinr.open(path.read_bytes(), "cpu", max_memory=384 << 20) as video:
        assert video.frame(0, size=(1024, 1024)).shape == (1024, 1024, 3)
        with pytest.raises(ValueError, match="4000x4000 frames, over the limit of 384 MiB"):
            video.frame(0, size=(4000, 4000))
    result = probe("decode", path, tmp_path / "big.y4m", "--size", "16384x16384",
                   address_space=1500 << 20)
    assert result["code"] == 1 and "over the limit" in result["output"], result
    assert not (tmp_path / "big.y4m").exists()


def test_one_8192_square_frame_decodes_in_bounded_memory(tmp_path):
    """Frames larger than a render batch render in bands of rows: only the uint8 frame is
    whole (192 MiB here), and libx264 takes about 400 MiB of its own at this size."""
    path = tmp_path / "one.anr"
    rng = np.random.default_rng(0)
    # GOP models: a picture renders whole and is refused at this size (--max-memory).
    report = actinr.encode((rng.random((1, 32, 48, 3)) * 255).astype(np.uint8), None,
                           actinr.EncodeOptions(preset="fast", iters=10, representation="mlp"))
    path.write_bytes(report.data)
    out = tmp_path / "big.mkv"
    result = probe("decode", path, out, "--size", "8192x8192")
    assert result["code"] == 0, result
    assert result["peak"] < 1536 << 20, result["peak"] >> 20
    assert out.stat().st_size > 0
