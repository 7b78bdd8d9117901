"""Inputs the fuzzing campaign (bench/fuzz.py) found, and a short deterministic slice of it:
every input decodes or raises BitstreamError, never another exception."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from actinr_codec.pipeline.decoder import AnrDecoder  # noqa: E402
from bench import fuzz  # noqa: E402
from bitstream import BitstreamError  # noqa: E402

FOUND = sorted(p for p in fuzz.REGRESSIONS.iterdir() if p.suffix in fuzz.SUFFIX.values())
# Executions per layer (the seeds included): a few seconds in all on one core.
RUNS = {"container": 300, "chunk": 500, "entropy": 500}


def test_regressions_are_saved():
    assert FOUND, f"no saved inputs in {fuzz.REGRESSIONS}"


@pytest.mark.parametrize("path", FOUND, ids=[p.name for p in FOUND])
def test_found_input_raises_bitstream_error(path, one_thread):
    begin = time.perf_counter()
    # The layer's harness: any exception but BitstreamError escapes it and fails the test.
    outcome = fuzz.replay(path)
    assert outcome.split(" | ")[-1] != "ok"
    if path.suffix == ".anr":
        with pytest.raises(BitstreamError), AnrDecoder(path.read_bytes()) as decoder:
            for k in range(len(decoder.gops)):
                decoder.model(k)
    assert time.perf_counter() - begin < 1.0


@pytest.mark.parametrize("layer", fuzz.LAYERS)
def test_campaign_slice(layer, one_thread):
    campaign = fuzz.fuzz_random(layer, runs=RUNS[layer], seconds=None, seed=2024)
    assert campaign.executions == RUNS[layer]
    assert not campaign.crashes(), [(f.signature, f.message) for f in campaign.crashes()]
