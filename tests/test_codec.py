import dataclasses
from fractions import Fraction

import numpy as np
import pytest
import torch
from conftest import TINY_MODEL
from synthetic import moving_pattern

import actinr_codec as actinr
from actinr_codec.fitting.config import FitConfig
from actinr_codec.model.render import render_gop
from actinr_codec.model.schema import model_tensors
from actinr_codec.pipeline.decoder import AnrDecoder
from actinr_codec.pipeline.settings import EncodeSettings
from bitstream.container import AnrReader, write_anr
from bitstream.errors import BitstreamError

SETTINGS = EncodeSettings(model=TINY_MODEL, fit=FitConfig(iters=300, points=128), gop_size=6,
                          keyint=1, scenecut=False, noise_db=6.0, qat_iters=100)


@pytest.fixture(scope="module")
def encoded(tmp_path_factory):
    frames = moving_pattern(11, 48, 40)
    path = tmp_path_factory.mktemp("codec") / "v.anr"
    report = actinr.encode(frames, path, fps=Fraction(30000, 1001), settings=SETTINGS)
    return frames, report.gops, path, report.size


def test_stream_decodes_to_the_quantized_models(encoded):
    frames, reports, path, size = encoded
    assert path.stat().st_size == size
    video = AnrDecoder(path)
    info = video.info
    assert (info.width, info.height, info.frames, info.fps_num, info.fps_den) == (40, 48, 11, 30000, 1001)
    assert video.gops == [range(0, 6), range(5, 11)]
    for k, report in enumerate(reports):
        model = video.model(k)
        state = model_tensors(model)
        for t in report.coded.record().tensors:
            # Identical symbols: the stored parameters are exactly symbol * step.
            assert np.array_equal(np.round(state[t.name].numpy() / np.float32(t.step)), t.symbols)
        times = torch.arange(float(len(report.frames)))
        clip = torch.from_numpy(frames[report.frames.start:report.frames.stop]).float() / 255
        recon = render_gop(model, times, 48, 40).clamp(0, 1)
        mse = float(((recon - clip) ** 2).mean())
        # The decoder reproduces the PSNR the encoder measured on its in-memory model.
        assert 10 * np.log10(1 / mse) == pytest.approx(report.stats.psnr, abs=1e-4)


def test_quantization_reports_and_qat(encoded):
    _, reports, _, _ = encoded
    for r in reports:
        assert r.stats.psnr >= r.stats.psnr_quantized  # fine-tuning is kept only when it helps
        assert r.stats.psnr_float > 30 and r.stats.psnr > 30


def test_more_quantization_noise_makes_smaller_files(tmp_path):
    frames = moving_pattern(4, 32, 32)
    sizes = []
    for noise_db in (12.0, 0.0):
        # Without the intra fit's rate price, whose steps follow noise_db too.
        s = dataclasses.replace(SETTINGS, noise_db=noise_db, qat_iters=0, intra_rate_weight=0.0,
                                fit=FitConfig(iters=100, points=32))
        sizes.append(actinr.encode(frames, tmp_path / f"{noise_db}.anr", settings=s).size)
    assert sizes[1] < 0.8 * sizes[0]


def test_partial_load_reads_only_requested_gops(encoded):
    _, _, path, _ = encoded
    with AnrReader(path) as reader:
        assert reader.gops_for_range(6.5, 7.5) == [1]
    with AnrDecoder(path) as video:
        list(video.frames([6.5, 7.5], 48, 40))
        assert video.decoded == [1]


def test_stream_whose_tensors_do_not_match_its_config_is_rejected(encoded, tmp_path):
    _, reports, path, _ = encoded
    with AnrReader(path) as reader:
        info, config = reader.info, dict(reader.config)
    config["width"] = 16  # tensors were stored for width 24
    bad = tmp_path / "bad.anr"
    write_anr(bad, info, config, [r.coded.record() for r in reports])
    with pytest.raises(BitstreamError, match="shape"):
        AnrDecoder(bad).model(0)
    config["depth"] = 99
    write_anr(bad, info, config, [r.coded.record() for r in reports])
    with pytest.raises(BitstreamError, match="depth"):
        AnrDecoder(bad).model(0)


@pytest.mark.parametrize("native", [True, False])
def test_pricing_the_intra_fit_for_rate_makes_smaller_files(tmp_path, native, one_thread):
    """Priced from a fifth of the fit on, parameters that do not pay for themselves
    shrink into the zero symbol, in the native kernel's fit and in PyTorch's. A network
    this large for 32x32 pixels is mostly parameters that do not (4 bpp unpriced)."""
    frames = moving_pattern(4, 32, 32)
    reports = []
    for weight in (0.0, 8.0):
        s = dataclasses.replace(SETTINGS, intra_rate_weight=weight, qat_iters=0,
                                fit=FitConfig(iters=300, points=32, native=native))
        reports.append(actinr.encode(frames, None, settings=s))
    plain, priced = reports
    assert priced.size < 0.5 * plain.size
    zeros = [np.mean(np.concatenate([t.symbols.ravel() for t in r.gops[0].coded.record().tensors])
                     == 0) for r in reports]
    assert zeros[1] > zeros[0]
    assert priced.psnr > 27
