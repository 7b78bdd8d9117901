"""Encoding through --scheduler on a local two-worker Dask cluster."""

import json
import os
import signal
import socket
import sys

import numpy as np
import pytest
from click.testing import CliRunner
from synthetic import moving_pattern, write_clip

distributed = pytest.importorskip(
    "distributed",
    reason="the cluster tests need the optional dependency: pip install 'actinr[dask]'")

import actinr_codec.parallel.cluster  # noqa: E402
from actinr_codec.media.videoio import read_video  # noqa: E402
from cli.main import main  # noqa: E402

# 7 frames in GOPs of 3 give three GOPs: [0, 3), [2, 5), [4, 7); --segment 2 makes two tasks.
FAST = ["--preset", "fast", "--iters", "60", "--gop", "3", "--segment", "2"]
GOP_TABLE = [[0, 2], [2, 4], [4, 6]]
TEST_SECONDS = 120


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(autouse=True)
def bounded():
    """Fail a test that runs too long rather than let a stuck cluster hang the suite."""
    def expire(signum, frame):
        pytest.fail(f"took more than {TEST_SECONDS}s", pytrace=False)

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(TEST_SECONDS)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                                  host="127.0.0.1", dashboard_address=None) as local:
        yield local


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("clip")
    return write_clip(tmp / "in.mkv", moving_pattern(7, 32, 32), "ffv1", "bgr0")


@pytest.fixture(scope="module")
def cluster_anr(cluster, clip):
    out = clip.parent / "cluster.anr"
    result = run("encode", clip, out, *FAST, "--scheduler", cluster.scheduler_address)
    assert result.exit_code == 0, result.output
    return out


def gop_table(anr):
    result = run("info", anr, "--json")
    assert result.exit_code == 0, result.output
    return [g["frames"] for g in json.loads(result.output)["gops"]]


def decoded_psnr(anr, src, out):
    result = run("decode", anr, out, "--lossless")
    assert result.exit_code == 0, result.output
    original, decoded = read_video(src)[0], read_video(out)[0]
    assert decoded.shape == original.shape
    return 10 * np.log10(255**2 / np.mean((decoded.astype(float) - original.astype(float)) ** 2))


def test_cluster_encode_matches_a_local_encode(cluster_anr, clip, tmp_path, monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 2)  # one torch thread per local task too
    local = tmp_path / "local.anr"
    result = run("encode", clip, local, *FAST, "--jobs", "2")
    assert result.exit_code == 0, result.output
    assert gop_table(cluster_anr) == gop_table(local) == GOP_TABLE
    cluster_psnr = decoded_psnr(cluster_anr, clip, tmp_path / "c.mkv")
    assert cluster_psnr > 16  # 150 steps of a tiny clip; a broken decode is near 10
    assert abs(cluster_psnr - decoded_psnr(local, clip, tmp_path / "l.mkv")) < 0.5
    # Same segments, same seed and one torch thread per task on both sides: same bits.
    assert cluster_anr.read_bytes() == local.read_bytes()


def test_shared_input_workers_read_the_source_themselves(cluster, cluster_anr, clip, tmp_path):
    out = tmp_path / "shared.anr"
    result = run("encode", clip, out, *FAST, "--scheduler", cluster.scheduler_address,
                 "--shared-input")
    assert result.exit_code == 0, result.output
    assert out.read_bytes() == cluster_anr.read_bytes()


def test_a_worker_dying_mid_task_is_retried_elsewhere(cluster, clip, tmp_path, monkeypatch):
    marker = tmp_path / "crashed"

    def crash_first_attempt(*args, **kwargs):
        import os

        from actinr_codec.parallel.segments import fit_segment

        if not marker.exists():
            marker.touch()
            os._exit(1)  # the worker process dies with the task in hand
        return fit_segment(*args, **kwargs)

    monkeypatch.setattr(actinr_codec.parallel.cluster, "fit_segment", crash_first_attempt)
    out = tmp_path / "retried.anr"
    result = run("encode", clip, out, *FAST, "--scheduler", cluster.scheduler_address)
    assert result.exit_code == 0, result.output
    assert marker.exists()
    assert gop_table(out) == GOP_TABLE
    assert decoded_psnr(out, clip, tmp_path / "r.mkv") > 16
    cluster.wait_for_workers(2, timeout=60)  # the nanny restarts it for the next tests


def assert_failed_cleanly(result, out, needle):
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("Error:") and needle in last, result.output
    assert not out.exists() and list(out.parent.iterdir()) == []


def test_a_persistent_failure_ends_the_encode_without_output(cluster, clip, tmp_path, monkeypatch):
    def always_fails(*args, **kwargs):
        raise ValueError("no luck\non this worker")

    monkeypatch.setattr(actinr_codec.parallel.cluster, "fit_segment", always_fails)
    out = tmp_path / "failed.anr"
    result = run("encode", clip, out, *FAST, "--scheduler", cluster.scheduler_address)
    assert_failed_cleanly(result, out, "failed 3 times on the cluster: no luck on this worker")


def test_an_unreachable_scheduler_is_a_clear_error(clip, tmp_path, monkeypatch):
    monkeypatch.setattr(actinr_codec.parallel.cluster, "CONNECT_SECONDS", 2.0)
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "none.anr"
    result = run("encode", clip, out, *FAST, "--scheduler", f"tcp://127.0.0.1:{port}")
    assert_failed_cleanly(result, out, "cannot reach the Dask scheduler")


def test_missing_dependency_and_option_misuse(clip, tmp_path, monkeypatch):
    out = tmp_path / "x.anr"
    assert run("encode", clip, out, "--jobs", "2", "--scheduler", "tcp://h:1").exit_code == 2
    assert run("encode", clip, out, "--shared-input").exit_code == 2
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed now fails
    result = run("encode", clip, out, *FAST, "--scheduler", "tcp://127.0.0.1:1")
    assert_failed_cleanly(result, out, "pip install 'actinr[dask]'")
