"""Fuzzing campaign on the .anr reader: any bytes must decode or raise BitstreamError.

Three layers, each with its own harness, seeds (the golden files) and structure-aware
mutator:

- container: whole files through AnrReader (every GOP) and AnrDecoder (tensors(k) and
  model(k) for every GOP; no rendering);
- chunk: one GOP chunk through decode_chunk, with a span matching its head (the
  input is one version byte, then the chunk);
- entropy: decode_symbols on models read by read_model and a payload (the input is a
  count byte, then per tensor its element count and model as a chunk stores them, then
  the payload).

Mutations (bench/fuzz_inputs.py) edit parsed fields (video info, configuration, index, chunk head, tensor
table, models, payload) and serialise again with lengths and CRC32s recomputed, or edit
bytes and then repair the CRCs, so that they reach the parsers behind the checksums. One
mutation re-encodes a payload that is valid for the mutated models, another rebuilds
every GOP to the tensor layout of the mutated configuration, so that model building is
reached too.

Anything but BitstreamError is a crash, recorded by exception type and the innermost
project line it came from.
An input taking more than 1 s, or raising peak resident memory by more than
--memory-flag-mb (measured per input by resetting the kernel's peak mark), is flagged.
The process running the inputs has its address space limited (--memory-limit-mb), so a
huge allocation fails as a finding instead of exhausting the machine. Crashes are
minimised (same signature) and, with the flagged inputs, written to --out/findings; once
the reader is fixed, copy a minimised input to tests/fuzz_regressions/, which
tests/test_fuzz_regressions.py replays (tests/fuzz_regressions/pending/ holds inputs
still flagged).

Engines: "atheris" (coverage-guided libFuzzer over the bitstream and actinr_codec
modules; `pip install -e .[fuzz]`), each layer in a child process, with the mutator
above as its custom mutator (libFuzzer's own byte mutations get their CRCs repaired);
or "random": the same mutator with a seeded random.Random and the set of distinct error
messages as feedback, deterministic for a given --seed and --runs. "auto" picks atheris
when it is installed.

    python bench/fuzz.py --seconds 120                    # each layer 120 s, atheris if present
    python bench/fuzz.py --layer chunk --runs 3000 --engine random --seed 7
    python bench/fuzz.py --replay tests/fuzz_regressions  # the outcome of saved inputs

Prints one JSON object: executions, crashes and flags per layer, and peak memory.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import os
import random
import re
import resource
import signal
import struct
import subprocess
import sys
import tempfile
import time
import traceback
import types
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from actinr_codec.pipeline.decoder import AnrDecoder  # noqa: E402
from bench.fuzz_inputs import (  # noqa: E402
    ENTROPY_MAX_ELEMENTS,
    AnrFile,
    Chunk,
    EntropyInput,
    Entry,
    Tensor,
    chunk_version,
    fix_chunk_frame,
    fix_crcs,
    float32_bits,
    mutate_chunk_input,
    mutate_container,
    mutate_entropy,
    parse_chunk,
    parse_entropy,
    parse_file,
    raw_tables,
)
from bitstream.chunk import decode_chunk  # noqa: E402
from bitstream.container import AnrReader  # noqa: E402
from bitstream.entropy import decode_symbols  # noqa: E402
from bitstream.errors import BitstreamError  # noqa: E402
from bitstream.header import NO_REFERENCE  # noqa: E402
from bitstream.limits import MAX_GOP_ALPHABET, MAX_GOP_ELEMENTS  # noqa: E402
from bitstream.models import CONSTANT, read_model  # noqa: E402
from bitstream.records import INTRA, GopSpan  # noqa: E402
from bitstream.wire import Cursor  # noqa: E402

LAYERS = ("container", "chunk", "entropy")
GOLDEN = ROOT / "tests" / "golden"
REGRESSIONS = ROOT / "tests" / "fuzz_regressions"
SUFFIX = {"container": ".anr", "chunk": ".chunk", "entropy": ".entropy"}
SLOW_S = 1.0
def run_container(data: bytes) -> str:
    """Read every GOP, then build every GOP's tensors and model; the outcome as a string."""
    outcomes = []
    try:
        with AnrReader(data) as reader:
            for k in range(len(reader.index)):
                reader.read_gop(k)
            if reader.streams_size:
                reader.read_streams()
        outcomes.append("ok")
    except BitstreamError as exc:
        outcomes.append(str(exc))
    try:
        with AnrDecoder(data) as decoder:
            for k in range(len(decoder.gops)):
                # model(k) first, as a player asks for it: it builds the model and decodes
                # the GOP's tensors; tensors(k) then returns them from its cache.
                decoder.model(k)
                decoder.tensors(k)
        outcomes.append("ok")
    except BitstreamError as exc:
        outcomes.append(str(exc))
    return " | ".join(outcomes)


def run_chunk(data: bytes) -> str:
    """decode_chunk on the chunk, with the span its own head describes."""
    version, chunk = chunk_version(data), data[1:]
    fmt = "<III" if version == 1 else "<IIIBI"
    fields = (struct.unpack_from(fmt, chunk, 8) if len(chunk) >= 8 + struct.calcsize(fmt)
              else (0, 0, 1, INTRA, NO_REFERENCE))
    number, start, stop, kind, reference = (*fields, INTRA, NO_REFERENCE)[:5]
    span = GopSpan(start, stop, kind, None if reference == NO_REFERENCE else reference)
    try:
        record = decode_chunk(chunk, number, span, version)
    except BitstreamError as exc:
        return str(exc)
    for tensor in record.tensors:
        if tensor.symbols.shape != tuple(tensor.shape) or tensor.symbols.dtype != np.int32:
            raise AssertionError(f"tensor {tensor.name!r} decoded with the wrong shape or type")
    return "ok"


def run_entropy(data: bytes) -> str:
    """decode_symbols with the models read_model accepts, within the chunk's limits."""
    try:
        cursor = Cursor(data, "entropy input")
        items, elements, alphabet = [], 0, 0
        for i in range(1 + cursor.one("<B") % 4):
            count = cursor.one("<I") % (ENTROPY_MAX_ELEMENTS + 1)
            model = read_model(cursor, count, f"t{i}")
            elements += count
            alphabet += model.size if model.kind != CONSTANT else 0
            if elements > MAX_GOP_ELEMENTS or alphabet > MAX_GOP_ALPHABET:
                raise BitstreamError("over the GOP limits")
            items.append((model, count))
        flat = decode_symbols(bytes(cursor.take(cursor.remaining)), items)
    except BitstreamError as exc:
        return str(exc)
    if len(flat) != len(items):
        raise AssertionError("decode_symbols returned the wrong number of arrays")
    for (model, count), symbols in zip(items, flat, strict=True):
        if symbols.shape != (count,) or symbols.dtype != np.int32 or (
                count and not model.lo <= symbols.min() <= symbols.max() <= model.hi):
            raise AssertionError("decode_symbols returned symbols outside the model")
    return "ok"


TARGETS: dict[str, Callable[[bytes], str]] = {
    "container": run_container, "chunk": run_chunk, "entropy": run_entropy}
MUTATORS: dict[str, Callable[[bytes, random.Random], bytes]] = {
    "container": mutate_container, "chunk": mutate_chunk_input, "entropy": mutate_entropy}


def golden_files() -> list[bytes]:
    return [p.read_bytes() for p in sorted(GOLDEN.glob("v*/*.anr"))]


def seeds(layer: str) -> list[bytes]:
    """Valid inputs of the layer, from the golden files (and their raw-table twins)."""
    files = []
    for data in golden_files():
        anr = parse_file(data)
        files += [data, raw_tables(anr).pack()]
    if layer == "container":
        return files
    out = []
    for data in files:
        anr = parse_file(data)
        for chunk in anr.chunks:
            packed = chunk.pack(anr.version)
            if layer == "chunk":
                out.append(bytes([anr.version - 1]) + packed)
            elif chunk.tensors:
                items = [(t.elements, t.model) for t in chunk.tensors if t.elements <= ENTROPY_MAX_ELEMENTS]
                if items:
                    for start in range(0, len(items), 4):
                        group = items[start:start + 4]
                        out.append(EntropyInput(group, chunk.payload if start == 0 else b"").pack())
    return list(dict.fromkeys(out))


# -- Running and classifying -----------------------------------------------------------

class FuzzTimeout(BaseException):
    """Raised by the watchdog timer in an input that runs too long (not an Exception, so
    no handler in the reader swallows it)."""


def where(exc: BaseException) -> str:
    """The innermost line of the reader's own code in the traceback, and the innermost line
    overall when that lies elsewhere (numpy, torch...)."""
    frames = traceback.extract_tb(exc.__traceback__)
    ours = [f for f in frames if f.filename.startswith(str(ROOT)) and "/bench/" not in f.filename]
    def show(f: traceback.FrameSummary) -> str:
        path = Path(f.filename)
        with contextlib.suppress(ValueError):
            path = path.relative_to(ROOT)
        return f"{path}:{f.lineno} ({f.name})"
    if not ours:
        return show(frames[-1]) if frames else "?"
    inner = show(ours[-1])
    if frames and frames[-1] is not ours[-1]:
        inner += f" via {Path(frames[-1].filename).name}:{frames[-1].lineno}"
    return inner


def outcome_key(outcome: str) -> str:
    """An outcome with its numbers and quoted names blanked: distinct keys stand for
    distinct paths through the reader, the random engine's feedback."""
    return re.sub(r"-?\d+(\.\d+)?(e-?\d+)?", "#", re.sub(r"'[^']*'|\"[^\"]*\"", "'_'", outcome))


def current_rss_kb() -> tuple[int, int]:
    """(VmRSS, VmHWM) in KiB from /proc, or (0, maxrss) where /proc is unavailable."""
    try:
        with open("/proc/self/status") as handle:
            fields = dict(line.split(":", 1) for line in handle if line.startswith(("VmRSS", "VmHWM")))
        return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])
    except (OSError, KeyError, ValueError):
        return 0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def reset_peak() -> bool:
    """Reset the kernel's peak-RSS mark, so each input's own peak can be read (Linux)."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


@dataclass
class Finding:
    kind: str            # crash, slow, memory
    signature: str
    message: str
    data: bytes
    hits: int = 1
    seconds: float = 0.0
    peak_mb: float = 0.0


@dataclass
class Campaign:
    """Runs inputs of one layer, classifies what they do and keeps the findings."""

    layer: str
    timeout_s: float = 0.0          # 0: no watchdog (in tests)
    memory_flag_mb: float = 256.0
    executions: int = 0
    findings: dict[str, Finding] = field(default_factory=dict)
    outcomes: set[str] = field(default_factory=set)
    slowest_s: float = 0.0
    per_input_peak: bool = field(default_factory=reset_peak)

    def execute(self, data: bytes) -> tuple[str | None, bool]:
        """(outcome key, or None for a finding; whether the outcome is new)."""
        self.executions += 1
        target = TARGETS[self.layer]
        if self.per_input_peak:
            reset_peak()
        before, _ = current_rss_kb()
        if self.timeout_s:
            signal.setitimer(signal.ITIMER_REAL, self.timeout_s)
        begin = time.perf_counter()
        try:
            key, problem = outcome_key(target(data)), None
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:  # every other exception is the finding
            key, problem = None, exc
        finally:
            if self.timeout_s:
                signal.setitimer(signal.ITIMER_REAL, 0)
        seconds = time.perf_counter() - begin
        _, peak = current_rss_kb()
        grown_mb = (peak - before) / 1024 if self.per_input_peak else 0.0
        self.slowest_s = max(self.slowest_s, seconds)
        if problem is not None:
            text = str(problem).splitlines()
            message = f"{type(problem).__name__}: {text[0][:200] if text else ''}"
            kind = "crash"
            signature = f"{type(problem).__name__} at {where(problem)}"
            if isinstance(problem, FuzzTimeout):
                kind, signature = "slow", f"hang over {self.timeout_s:g} s at {where(problem)}"
            self.record(kind, signature, message, data, seconds, grown_mb)
        if seconds > SLOW_S and key is not None:
            self.record("slow", f"slow input ({self.layer}): {key[:80]}", f"{seconds:.2f} s",
                        data, seconds, grown_mb)
        if grown_mb > self.memory_flag_mb:
            self.record("memory", f"large allocation ({self.layer}): {(key or '')[:80]}",
                        f"peak RSS +{grown_mb:.0f} MB", data, seconds, grown_mb)
        new = key is not None and key not in self.outcomes
        if new:
            self.outcomes.add(key)
        return key, new

    def record(self, kind: str, signature: str, message: str, data: bytes, seconds: float,
               peak_mb: float) -> None:
        found = self.findings.get(signature)
        if found is None:
            self.findings[signature] = Finding(kind, signature, message, data, 1, seconds, peak_mb)
            return
        found.hits += 1
        if len(data) < len(found.data):
            found.data, found.message = data, message

    def crashes(self) -> list[Finding]:
        return [f for f in self.findings.values() if f.kind == "crash"]

    def summary(self) -> dict:
        return {
            "executions": self.executions, "distinct_outcomes": len(self.outcomes),
            "crashes": len(self.crashes()), "slowest_s": round(self.slowest_s, 3),
            "findings": [{"kind": f.kind, "signature": f.signature, "message": f.message,
                          "hits": f.hits, "bytes": len(f.data), "seconds": round(f.seconds, 3),
                          "peak_mb": round(f.peak_mb, 1)} for f in self.findings.values()]}


def alarm(signum, frame):
    raise FuzzTimeout("input ran past the watchdog")


def fuzz_random(layer: str, runs: int | None, seconds: float | None, seed: int,
                timeout_s: float = 0.0, memory_flag_mb: float = 256.0,
                corpus_limit: int = 2000) -> Campaign:
    """The seeded random engine: mutate a corpus member, keep inputs with a new outcome."""
    campaign = Campaign(layer, timeout_s=timeout_s, memory_flag_mb=memory_flag_mb)
    r = random.Random(seed)
    corpus = seeds(layer)
    for data in corpus:
        campaign.execute(data)
    mutate = MUTATORS[layer]
    deadline = time.monotonic() + seconds if seconds else math.inf
    while (runs is None or campaign.executions < runs) and time.monotonic() < deadline:
        data = r.choice(corpus)
        for _ in range(r.choice([1, 1, 1, 2, 4])):
            data = mutate(data, r)
        key, new = campaign.execute(data)
        if new and len(corpus) < corpus_limit:
            corpus.append(data)
    return campaign


# -- Minimising and saving -------------------------------------------------------------

def same(layer: str, signature: str) -> Callable[[bytes], bool]:
    def check(data: bytes) -> bool:
        probe = Campaign(layer, per_input_peak=False)
        probe.execute(data)
        return signature in probe.findings
    return check


def shrink_structure(layer: str, data: bytes, keeps: Callable[[bytes], bool]) -> bytes:
    """Drop GOPs, config entries, tensors and payload words while the finding stays."""
    if layer == "entropy":
        parsed = parse_entropy(data)
        if parsed is None:
            return data
        for i in reversed(range(len(parsed.items))):
            trial = EntropyInput(parsed.items[:i] + parsed.items[i + 1:], parsed.payload)
            if trial.items and keeps(trial.pack()):
                parsed = trial
        while parsed.payload:
            trial = EntropyInput(parsed.items, parsed.payload[:len(parsed.payload) // 2 // 4 * 4])
            if not keeps(trial.pack()):
                break
            parsed = trial
        return parsed.pack()
    if layer == "chunk":
        version = chunk_version(data)
        chunk = parse_chunk(data[1:], version)
        wrap = lambda c: data[:1] + c.pack(version)  # noqa: E731
        anr, pack = None, wrap
    else:
        anr = parse_file(data)
        if anr is None:
            return data
        pack = lambda a: a.pack()  # noqa: E731
        for i in reversed(range(len(anr.config))):
            trial = dataclasses.replace(anr, config=anr.config[:i] + anr.config[i + 1:])
            if keeps(trial.pack()):
                anr = trial
        if anr.index and anr.chunks:
            # GOP 0 alone, the video cut to its frames.
            info = [*anr.info[:2], anr.index[0].stop, *anr.info[3:]]
            trial = dataclasses.replace(anr, info=info, index=anr.index[:1], chunks=anr.chunks[:1])
            if keeps(trial.pack()):
                anr = trial
        for k in reversed(range(1, len(anr.chunks))):
            trial = dataclasses.replace(anr, chunks=anr.chunks[:k] + anr.chunks[k + 1:],
                                        index=anr.index[:k] + anr.index[k + 1:])
            if keeps(trial.pack()):
                anr = trial
        data = anr.pack()
    chunks = [chunk] if anr is None else anr.chunks
    for c in chunks:
        if c.opaque is not None or c.tensors is None:
            continue
        for i in reversed(range(len(c.tensors))):
            saved = c.tensors
            c.tensors = saved[:i] + saved[i + 1:]
            if not keeps(pack(anr if anr is not None else c)):
                c.tensors = saved
        while c.payload:
            saved = c.payload
            c.payload = saved[:len(saved) // 2 // 4 * 4]
            if not keeps(pack(anr if anr is not None else c)):
                c.payload = saved
                break
    return pack(anr if anr is not None else chunk)


def minimise(layer: str, finding: Finding, budget_s: float = 20.0) -> bytes:
    """A smaller input with the same signature (structure first, then trailing bytes)."""
    keeps = same(layer, finding.signature)
    if not keeps(finding.data):
        return finding.data  # flaky (timing or memory): keep as found
    deadline = time.monotonic() + budget_s
    def bounded(data: bytes) -> bool:
        return time.monotonic() < deadline and keeps(data)
    data = shrink_structure(layer, finding.data, bounded)
    return data if keeps(data) else finding.data


def as_file(layer: str, data: bytes) -> bytes | None:
    """A chunk- or entropy-layer input as a one-GOP .anr file, if its chunk can be GOP 0."""
    if layer == "entropy":
        parsed = parse_entropy(data)
        if parsed is None:
            return None
        tensors = [Tensor(f"t{i}".encode(), [n], float32_bits(1.0), m)
                   for i, (n, m) in enumerate(parsed.items)]
        version, chunk = 3, Chunk([0, 0, 1, INTRA, NO_REFERENCE, 0, 0, 0, 0], tensors,
                                  payload=parsed.payload)
    else:
        version = chunk_version(data)
        chunk = Chunk(parse_chunk(data[1:], version).head, None, opaque=data[1:])
    number, start, stop, kind = chunk.head[:4]
    if (number, start, kind) != (0, 0, INTRA) or not 1 <= stop <= 64:
        return None
    return AnrFile(version, [16, 16, stop, 25, 1, 0], [], [Entry(0, stop)], [chunk]).pack()


def save(layer: str, finding: Finding, out: Path) -> Path:
    """Write a finding under out: a crash minimised, and as a .anr file where it reproduces
    as one; a slow or large input as found (timing and memory do not minimise reliably)."""
    crash = finding.kind == "crash"
    data = minimise(layer, finding) if crash else finding.data
    name = re.sub(r"[^a-z0-9]+", "_", f"{finding.kind} {finding.signature}".lower()).strip("_")[:90]
    suffix = SUFFIX[layer]
    if layer != "container" and crash:
        wrapped = as_file(layer, data)
        if wrapped is not None and same("container", finding.signature)(wrapped):
            data, suffix = wrapped, ".anr"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{layer}_{name}{suffix}"
    path.write_bytes(data)
    return path


def replay(path: str | Path) -> str:
    """The target of a saved input's layer (by its suffix) on it: its outcome, or the
    exception it raises."""
    path = Path(path)
    layer = {v: k for k, v in SUFFIX.items()}[path.suffix]
    return TARGETS[layer](path.read_bytes())


# -- The atheris engine ----------------------------------------------------------------

def instrument_project() -> int:
    """Add atheris coverage to the functions of bitstream and actinr_codec already imported
    (instrument_imports would need them imported after atheris, and instrument_all would
    instrument torch as well)."""
    import gc

    import atheris

    count = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # touching some of torch's objects warns
        functions = [obj for obj in gc.get_objects() if isinstance(obj, types.FunctionType)]
    for function in functions:
        if (function.__module__ or "").startswith(("bitstream", "actinr_codec")):
            atheris.instrument_func(function)
            count += 1
    return count


def atheris_worker(layer: str, seconds: float, runs: int | None, seed: int, out: Path,
                   timeout_s: float, rss_limit_mb: int, memory_flag_mb: float) -> None:
    """One layer under libFuzzer; writes its stats and findings to out/<layer>.json."""
    import atheris

    instrument_project()
    campaign = Campaign(layer, memory_flag_mb=memory_flag_mb)
    corpus = out / f"corpus-{layer}"
    corpus.mkdir(parents=True, exist_ok=True)
    for i, data in enumerate(seeds(layer)):
        (corpus / f"seed{i:03d}").write_bytes(data)
    report = out / f"{layer}.json"
    last = [0.0]

    def dump() -> None:
        summary = campaign.summary()
        summary["inputs"] = {f.signature: f.data.hex() for f in campaign.findings.values()}
        summary["outcomes"] = sorted(campaign.outcomes)
        report.write_text(json.dumps(summary))

    def test_one_input(data: bytes) -> None:
        campaign.execute(bytes(data))
        if time.monotonic() - last[0] > 1.0 or campaign.executions % 500 == 0:
            last[0] = time.monotonic()
            dump()

    mutate = MUTATORS[layer]

    def custom_mutator(data: bytes, max_size: int, mutator_seed: int) -> bytes:
        r = random.Random(mutator_seed)
        if r.random() < 0.3:
            data = atheris.Mutate(data, max_size)
            if layer == "container":
                data = fix_crcs(data)
            elif layer == "chunk" and len(data) > 1:
                data = data[:1] + fix_chunk_frame(data[1:], r.random() < 0.8)
        else:
            data = mutate(bytes(data), r)
        return data[:max_size]

    args = [sys.argv[0], str(corpus), f"-seed={seed}", f"-timeout={int(max(1, timeout_s))}",
            f"-rss_limit_mb={rss_limit_mb}", "-max_len=65536", f"-artifact_prefix={out}/{layer}-",
            "-print_final_stats=1", "-print_pcs=0"]
    args.append(f"-runs={runs}" if runs else f"-max_total_time={int(seconds)}")
    atheris.Setup(args, test_one_input, custom_mutator=custom_mutator)
    try:
        atheris.Fuzz()
    finally:
        dump()


def fuzz_atheris(layer: str, seconds: float, runs: int | None, seed: int, out: Path,
                 timeout_s: float, rss_limit_mb: int, memory_limit_mb: int,
                 memory_flag_mb: float) -> Campaign:
    """Run one layer's atheris worker in a child process (libFuzzer exits the process when
    done, and stops at a hang or an out-of-memory), restarting it after such a stop until
    the time is spent; its findings come back through out/<layer>.json."""
    campaign = Campaign(layer, per_input_peak=False)
    deadline = time.monotonic() + seconds
    attempt = 0
    while True:
        left = deadline - time.monotonic()
        if left < 5 and attempt:
            break
        report = out / f"{layer}.json"
        report.unlink(missing_ok=True)
        command = [sys.executable, __file__, "--worker", "--layer", layer, "--engine", "atheris",
                   "--seconds", str(max(1, int(left))), "--seed", str(seed + attempt),
                   "--out", str(out), "--timeout", str(timeout_s), "--rss-limit-mb", str(rss_limit_mb),
                   "--memory-limit-mb", str(memory_limit_mb), "--memory-flag-mb", str(memory_flag_mb)]
        if runs:
            command += ["--runs", str(runs)]
        done = subprocess.run(command, capture_output=True, text=True, env={
            **os.environ, "PYTHONPATH": str(ROOT)})
        (out / f"{layer}-worker{attempt}.log").write_text(done.stdout + done.stderr)
        attempt += 1
        counted = re.findall(r"Done (\d+) runs", done.stderr)
        stats = json.loads(report.read_text()) if report.exists() else {"executions": 0, "findings": []}
        campaign.executions += int(counted[-1]) if counted else stats["executions"]
        campaign.slowest_s = max(campaign.slowest_s, stats.get("slowest_s", 0.0))
        campaign.outcomes.update(stats.get("outcomes", []))
        for f in stats["findings"]:
            data = bytes.fromhex(stats["inputs"][f["signature"]])
            campaign.record(f["kind"], f["signature"], f["message"], data, f["seconds"], f["peak_mb"])
            campaign.findings[f["signature"]].hits += f["hits"] - 1
        for artifact in out.glob(f"{layer}-*-*"):
            if artifact.name.startswith(f"{layer}-worker"):
                continue
            kind = artifact.name.split("-")[1]  # timeout, oom, crash, slow-unit
            campaign.record("slow" if kind in ("timeout", "slow") else "memory" if kind == "oom"
                            else "crash", f"libFuzzer {kind} ({layer})", artifact.name,
                            artifact.read_bytes(), 0.0, 0.0)
            artifact.rename(artifact.with_name("seen-" + artifact.name))
        if runs or done.returncode == 0:
            break
    return campaign


# -- Command line ----------------------------------------------------------------------

def have_atheris() -> bool:
    try:
        import atheris  # noqa: F401
    except ImportError:
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layer", choices=(*LAYERS, "all"), default="all")
    parser.add_argument("--engine", choices=("auto", "atheris", "random"), default="auto")
    parser.add_argument("--seconds", type=float, help="budget per layer")
    parser.add_argument("--runs", type=int, help="executions per layer (seeds included)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "actinr-fuzz")
    parser.add_argument("--timeout", type=float, default=10.0, help="an input's watchdog, seconds")
    parser.add_argument("--memory-limit-mb", type=int, default=4096,
                        help="address-space limit of the process running the inputs (RLIMIT_AS), 0 for none")
    parser.add_argument("--memory-flag-mb", type=float, default=256.0,
                        help="flag an input raising peak resident memory by more than this")
    parser.add_argument("--rss-limit-mb", type=int, default=4096, help="libFuzzer's -rss_limit_mb")
    parser.add_argument("--replay", nargs="+", type=Path, help="saved inputs or folders to replay")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    if args.replay:
        paths = [p for item in args.replay for p in (sorted(item.iterdir()) if item.is_dir() else [item])
                 if p.suffix in SUFFIX.values()]
        failed = 0
        for path in paths:
            try:
                print(f"{path}: {replay(path)}")
            except Exception as exc:  # noqa: BLE001
                failed += 1
                print(f"{path}: {type(exc).__name__} at {where(exc)}: {exc}")
        return 1 if failed else 0
    if args.memory_limit_mb and (args.worker or args.engine == "random" or not have_atheris()):
        # A huge allocation then fails as MemoryError (a finding) instead of swapping.
        limit = args.memory_limit_mb << 20
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    if args.worker:
        atheris_worker(args.layer, args.seconds or 60, args.runs, args.seed, args.out, args.timeout,
                       args.rss_limit_mb, args.memory_flag_mb)
        return 0
    if args.seconds is None and args.runs is None:
        parser.error("give --seconds and/or --runs")
    engine = args.engine if args.engine != "auto" else "atheris" if have_atheris() else "random"
    if engine == "random":
        signal.signal(signal.SIGALRM, alarm)
    args.out.mkdir(parents=True, exist_ok=True)
    report = {"engine": engine, "seed": args.seed, "seconds_per_layer": args.seconds,
              "runs_per_layer": args.runs, "layers": {}}
    for layer in (LAYERS if args.layer == "all" else (args.layer,)):
        begin = time.monotonic()
        if engine == "atheris":
            campaign = fuzz_atheris(layer, args.seconds or 3600, args.runs, args.seed, args.out,
                                    args.timeout, args.rss_limit_mb, args.memory_limit_mb,
                                    args.memory_flag_mb)
        else:
            campaign = fuzz_random(layer, args.runs, args.seconds, args.seed, timeout_s=args.timeout,
                                   memory_flag_mb=args.memory_flag_mb)
        summary = campaign.summary()
        summary["wall_s"] = round(time.monotonic() - begin, 1)
        summary["saved"] = [str(save(layer, f, args.out / "findings")) for f in campaign.findings.values()]
        report["layers"][layer] = summary
        print(f"{layer}: {campaign.executions} executions, {len(campaign.crashes())} crashes, "
              f"{len(campaign.findings)} findings, slowest {campaign.slowest_s:.2f} s",
              file=sys.stderr)
    report["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    report["peak_rss_children_mb"] = round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1)
    print(json.dumps(report, indent=1))
    return 1 if any(s["crashes"] for s in report["layers"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
