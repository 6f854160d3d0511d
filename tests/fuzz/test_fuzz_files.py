"""Capture files and the configuration file fuzzed: the pcap/pcapng reader, the ring's segment
scan, repair and reader, and the config loader refuse bad input with their own one-line error
(``CaptureFileError``, ``ConfigError``) and never raise anything else.

Default run: 300 mutated capture files, 300 mutated ring segments, 400 configurations.
``slow``: ``OTWATCH_FUZZ_FILES`` files of each kind (default 20,000).
"""

from __future__ import annotations

import random
import shutil

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from otwatch.agent.capture.pcapfile import CaptureFileError, open_capture
from otwatch.agent.capture.ring_repair import repair_ring
from otwatch.agent.capture.ring_segments import iter_segment, scan_segment
from otwatch.config import ConfigError, load_config
from tests.fuzz.frames import PCAPS, Mutator, env_count


def sources() -> list[bytes]:
    if not PCAPS.is_dir():
        pytest.skip(f"capture corpus not found at {PCAPS}")
    small = sorted(
        (p for p in [*PCAPS.iterdir(), *(PCAPS / "malformed").iterdir()]
         if p.suffix in (".pcap", ".pcapng") and p.stat().st_size < 400_000),
        key=lambda p: p.name,
    )  # fmt: skip
    return [p.read_bytes()[:60_000] for p in small]


def mutate_file(rng: random.Random, mutator: Mutator, data: bytes) -> bytes:
    """Header-aware enough: half the mutations hit the first 64 bytes (file and first record
    or block headers), the rest anywhere; sometimes cut short."""
    start = 0 if rng.random() < 0.5 else rng.randrange(max(1, len(data)))
    out = mutator.mutate((1, data), start, data)[1]
    return out[: rng.randrange(len(out) + 1)] if rng.random() < 0.2 else out


def fuzz_captures(tmp_path, count: int, seed: int) -> int:
    rng, mutator, corpus = random.Random(seed), Mutator(seed), sources()
    path = tmp_path / "f.pcap"
    refused = 0
    for _ in range(count):
        path.write_bytes(mutate_file(rng, mutator, rng.choice(corpus)))
        try:
            with open_capture(path) as capture:
                for _frame in capture:
                    pass
        except CaptureFileError as exc:
            assert "\n" not in str(exc)
            refused += 1
    return refused


def fuzz_ring(tmp_path, store, count: int, seed: int) -> None:
    rng, mutator = random.Random(seed), Mutator(seed)
    corpus = [d for d in sources() if d[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1")]
    ring = tmp_path / "ring"
    for i in range(count):
        ring.mkdir(exist_ok=True)
        segment = ring / f"replay-{i}-0.pcap"
        segment.write_bytes(mutate_file(rng, mutator, rng.choice(corpus)))
        scan = scan_segment(segment)
        if scan is not None:
            assert sum(1 for _ in iter_segment(segment, scan.valid_end)) == scan.packets
        if i % 10 == 0:
            repair_ring(store, ring)  # indexes, cuts or removes what it finds; never raises
        if i % 500 == 499:  # a fresh ring: repairing 20,000 segments every 10 is quadratic
            shutil.rmtree(ring)  # and the next repair drops the index rows of vanished files


def test_capture_reader_refuses_mutated_files_cleanly(tmp_path):
    refused = fuzz_captures(tmp_path, env_count("OTWATCH_FUZZ_FILES_SHORT", 300), seed=5)
    assert refused > 0  # the mutants do reach the error paths


def test_ring_scan_repair_and_reader_survive_mutated_segments(tmp_path, store):
    fuzz_ring(tmp_path, store, env_count("OTWATCH_FUZZ_FILES_SHORT", 300), seed=5)


@pytest.mark.slow
def test_capture_and_ring_readers_on_many_mutated_files(tmp_path, store):
    count = env_count("OTWATCH_FUZZ_FILES", 20_000)
    assert fuzz_captures(tmp_path, count, seed=11) > 0
    fuzz_ring(tmp_path, store, count, seed=11)


KEYS = ["[sensor]", "[capture]", "[detection]", "[engines]", "[engines.port_scan]", "[pcap]",
        "[sync]", "[central]", "[log]", "id = ", "interfaces = ", "bpf = ", "ot_subnets = ",
        "learning_period = ", "alert_rate_limit = ", "alert_rate_window = ", "password = ",
        "password_file = ", "broker = ", "level = ", "disabled = ", "threshold = "]  # fmt: skip
VALUES = st.sampled_from(['""', '"x"', "-1", "0", "1e308", "true", '["a", 1]', "{a = 1}",
                          '"mqtt://0.0.0.0"', '"../../etc/passwd"', '"\\u0000"', '"10.0.0.0/33"',
                          '"1m"', '"0s"', "[", '"""'])  # fmt: skip
LINES = st.lists(st.tuples(st.sampled_from(KEYS), VALUES), max_size=12).map(
    lambda items: "\n".join(k + (v if k.endswith("= ") else "") for k, v in items)
)


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(text=LINES | st.text(max_size=200), env=st.dictionaries(
    st.sampled_from(["OTWATCH_SENSOR_ID", "OTWATCH_DETECTION_ALERT_RATE_LIMIT",
                     "OTWATCH_DETECTION_OT_SUBNETS", "OTWATCH_SYNC_BROKER", "OTWATCH_LOG_LEVEL",
                     "OTWATCH_SYNC_PASSWORD", "OTWATCH_NOPE_X"]),
    st.text(max_size=30), max_size=3))  # fmt: skip
def test_config_loader_raises_only_config_error(tmp_path_factory, text, env):
    path = tmp_path_factory.mktemp("cfg") / "otwatch.toml"
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    try:
        load_config(path, env)
    except ConfigError as exc:
        assert exc.problems and "\n" not in str(exc)
