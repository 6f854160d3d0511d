"""Seeds, mutations and the pipeline harness of the frame fuzzers.

Seeds are real frames (every capture in ``../shared/pcaps``, the deliberately malformed ones
included), generated traffic (``bench/gen_capture.py`` Modbus polling, the simulated plant of
``otwatch/simulate/plant.py``) and a few synthesized frames for protocols the corpus lacks
(SMB, DHCP, database logins, FTP, IPv6, VLAN, ICMP errors). They are grouped by the tag the
pipeline routes on (application protocol or packet event), so a group's mutants keep reaching
the engines of that protocol: most mutations touch the payload, some the headers, some make a
frame of random bytes on a random link type.

:func:`fuzz_pipeline` feeds mutants to a real :class:`~otwatch.agent.pipeline.Pipeline` (every
engine on, learning over, IOC lists and custom rules loaded, a real SQLite store) and records,
per engine, how many frames it was given and every exception it raised (the pipeline counts
and swallows engine exceptions; the fuzzer wants each one, with its frame).
"""

from __future__ import annotations

import os
import random
import sys
import traceback
import types
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.factories import T0

REPO = Path(__file__).resolve().parents[2]
PCAPS = REPO.parent / "shared" / "pcaps"
Seed = tuple[int, bytes]
"""(link type, frame bytes)"""


def rss_mib() -> float:
    """This process's resident set size now (not the peak), in MiB."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def env_count(name: str, default: int) -> int:
    """A fuzz count from the environment (e.g. ``OTWATCH_FUZZ_FRAMES=1000000``)."""
    return int(os.environ.get(name, default))


# --- seeds --------------------------------------------------------------------------------


def corpus_files() -> list[Path]:
    if not PCAPS.is_dir():
        return []
    return sorted(
        p
        for p in [*PCAPS.iterdir(), *(PCAPS / "malformed").iterdir()]
        if p.suffix in (".pcap", ".pcapng")
    )


def read_frames(path: Path, limit: int) -> list[Seed]:
    """Up to ``limit`` frames of a capture, spread over the file; a truncated file gives what
    it has."""
    from otwatch.agent.capture.pcapfile import open_capture

    frames: list[Seed] = []
    try:
        with open_capture(path) as cap:
            frames = [(linktype, data) for _ts, _wire, linktype, data in cap]
    except Exception:  # a file the reader refuses (header) adds no seeds
        pass
    if len(frames) > limit:
        step = len(frames) / limit
        frames = [frames[int(i * step)] for i in range(limit)]
    return frames


def generated_frames(workdir: Path) -> list[Seed]:
    """Frames of ``bench/gen_capture.py`` and of the simulated plant (short runs)."""
    sys.path.insert(0, str(REPO / "bench"))
    try:
        from gen_capture import modbus_polling
    finally:
        sys.path.remove(str(REPO / "bench"))
    from otwatch.simulate.plant import PlantProfile, write_plant_capture

    workdir.mkdir(parents=True, exist_ok=True)
    bench, plant = workdir / "bench_modbus.pcap", workdir / "plant.pcap"
    modbus_polling(bench, packets=2000, clients=7, seed=3)
    write_plant_capture(plant, PlantProfile(learning_s=30.0, attack_s=60.0))
    return read_frames(bench, 400) + read_frames(plant, 1500)


def synthesized_frames() -> list[Seed]:
    """Frames for decoders the corpus has no traffic for (explicit MACs, documentation IPs)."""
    from scapy.layers.dhcp import BOOTP, DHCP
    from scapy.layers.dns import DNS, DNSQR
    from scapy.layers.inet import ICMP, IP, TCP, UDP
    from scapy.layers.inet6 import IPv6
    from scapy.layers.l2 import ARP, Dot1Q, Ether

    a, b, c = "192.0.2.10", "198.51.100.20", "203.0.113.30"
    eth = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")

    def tcp(sport: int, dport: int, payload: bytes, flags: str = "PA") -> bytes:
        return bytes(eth / IP(src=a, dst=b) / TCP(sport=sport, dport=dport, flags=flags) / payload)

    def udp(sport: int, dport: int, payload: bytes) -> bytes:
        return bytes(eth / IP(src=a, dst=b) / UDP(sport=sport, dport=dport) / payload)

    smb1 = b"\xffSMB\x32" + bytes(27) + b"\x0e\x00"  # trans2, as DoublePulsar pings
    smb2 = b"\xfeSMB" + (64).to_bytes(2, "little") + bytes(58)
    frames = [
        tcp(40000, 445, len(smb1).to_bytes(4, "big") + smb1),
        tcp(445, 40000, len(smb2).to_bytes(4, "big") + smb2),
        tcp(40000, 139, b"\x00\x00\x00\x24" + smb1 + bytes(3)),
        bytes(
            eth
            / IP(src="0.0.0.0", dst="255.255.255.255")
            / UDP(sport=68, dport=67)
            / BOOTP(chaddr=bytes.fromhex("020000000001"))
            / DHCP(options=[("message-type", "discover"), ("hostname", b"plc-1"), "end"])
        ),
        udp(67, 68, bytes(BOOTP(op=2, yiaddr=c) / DHCP(options=[("message-type", "nak"), "end"]))),
        tcp(3306, 40000, b"\x4a\x00\x00\x00\x0a8.0.36\x00" + bytes(40)),
        tcp(3306, 40000, b"\x17\x00\x00\x02\xff\x15\x04#28000Access denied"),
        tcp(5432, 40000, b"R\x00\x00\x00\x08\x00\x00\x00\x00"),
        tcp(5432, 40000, b"E\x00\x00\x00\x30SFATAL\x00C28P01\x00Mpassword failed\x00\x00"),
        tcp(1433, 40000, b"\x04\x01\x00\x25\x00\x00\x01\x00\xad\x10\x00" + bytes(26)),
        tcp(40000, 21, b"USER admin\r\n"),
        tcp(21, 40000, b"530 Login incorrect.\r\n"),
        tcp(23, 40000, b"login: "),
        tcp(40000, 80, b"GET /admin/../etc/passwd HTTP/1.1\r\nHost: x.example\r\n\r\n"),
        tcp(80, 40000, b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n"),
        tcp(40000, 53, b"\x00\x1d" + bytes(DNS(qd=DNSQR(qname="evil.example")))),
        udp(40000, 53, bytes(DNS(qd=DNSQR(qname="bad.example", qtype="TXT")))),
        udp(5353, 5353, bytes(DNS(qd=DNSQR(qname="plc._http._tcp.local")))),
        tcp(40000, 3389, b"\x03\x00\x00\x13\x0e\xe0" + bytes(13), "S"),
        bytes(eth / IP(src=b, dst=a) / ICMP(type=3, code=3) / IP(src=a, dst=b) / UDP(dport=161)),
        bytes(eth / IP(src=b, dst=a) / ICMP(type=8) / b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR"),
        bytes(eth / IPv6(src="2001:db8::1", dst="2001:db8::2") / TCP(sport=40000, dport=502)),
        bytes(eth / Dot1Q(vlan=7) / IP(src=a, dst=b) / TCP(sport=40000, dport=102) / b"\x03\x00"),
        bytes(Ether(src="02:00:00:00:00:01", dst="ff:ff:ff:ff:ff:ff") / ARP(psrc=a, pdst=b)),
        bytes(IP(src=a, dst=b) / UDP(sport=40000, dport=47808) / b"\x81\x0a\x00\x08"),
    ]
    out: list[Seed] = [(1, f) for f in frames]
    out.append((101, frames[-1]))  # raw IP link type
    return out


def route_tag(linktype: int, data: bytes) -> str:
    """The group a seed belongs to: the application or packet-event tag engines subscribe to
    (``engines.base.EVENT_*``)."""
    from otwatch.agent.decode.headers import L3_ARP, decode
    from otwatch.agent.decode.ports import TCP_PORTS, UDP_PORTS
    from otwatch.agent.engines import base

    rec = decode(0, len(data), linktype, data)
    if rec.sport is not None and rec.src_ip is not None:
        table = TCP_PORTS if rec.ip_proto == 6 else UDP_PORTS
        app = table.get(rec.dport) or table.get(rec.sport)
        if app is not None:
            return app
        if rec.ip_proto == 17:
            return base.EVENT_UDP
        flags = rec.tcp_flags or 0
        return (base.EVENT_SYNACK if flags & 0x10 else base.EVENT_SYN) if flags & 2 else "@tcp"
    if rec.icmp_type is not None:
        return base.EVENT_ICMP
    if rec.src_ip is not None:
        return base.EVENT_IP
    return base.EVENT_ARP if rec.l3 == L3_ARP else base.EVENT_L2


def seed_groups(workdir: Path, per_file: int = 300) -> dict[str, list[Seed]]:
    seeds: list[Seed] = []
    for path in corpus_files():
        seeds += read_frames(path, per_file)
    seeds += generated_frames(workdir) + synthesized_frames()
    groups: dict[str, list[Seed]] = {}
    for linktype, data in seeds:
        groups.setdefault(route_tag(linktype, data), []).append((linktype, data))
    return groups


# --- mutation -----------------------------------------------------------------------------

_INTERESTING = (0x00, 0x01, 0x7F, 0x80, 0xFE, 0xFF)
LINKTYPES = (0, 1, 101, 113, 228, 229, 276, 147, 65535)


def payload_offset(linktype: int, data: bytes) -> int:
    """Where the innermost payload starts (the headers before it route the frame)."""
    from otwatch.agent.decode.headers import decode

    payload = decode(0, len(data), linktype, data).payload
    return len(data) - len(payload) if payload and data.endswith(payload) else len(data) // 2


class Mutator:
    """Seeded byte-level mutations, stacked one to four deep."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def random_frame(self) -> Seed:
        rng = self.rng
        size = rng.choice((0, 1, 8, 13, 14, 20, 34, 54, 60, rng.randrange(1600)))
        return rng.choice(LINKTYPES), rng.randbytes(size)

    def mutate(self, seed: Seed, start: int, donor: bytes) -> Seed:
        """A mutant of ``seed``; ``start`` is its payload offset (mostly mutated there),
        ``donor`` another frame of the same group to splice from."""
        rng = self.rng
        linktype, data = seed
        buf = bytearray(data)
        for _ in range(rng.choice((1, 1, 1, 2, 2, 3, 4))):
            lo = start if rng.random() < 0.75 and start < len(buf) else 0
            n = len(buf)
            op = rng.randrange(9)
            if op == 0 and n > lo:  # flip bits
                for _ in range(rng.randint(1, 8)):
                    buf[rng.randrange(lo, n)] ^= 1 << rng.randrange(8)
            elif op == 1 and n > lo:  # interesting values
                for _ in range(rng.randint(1, 4)):
                    buf[rng.randrange(lo, n)] = rng.choice(_INTERESTING)
            elif op == 2 and n > lo:  # 16-bit length-like fields at their extremes
                pos = rng.randrange(lo, n)
                buf[pos : pos + 2] = rng.choice((b"\0\0", b"\xff\xff", b"\x80\0", b"\0\1"))
            elif op == 3:  # truncate
                del buf[rng.randint(lo, n) :]
            elif op == 4:  # insert random bytes
                pos = rng.randint(lo, n)
                buf[pos:pos] = rng.randbytes(rng.choice((1, 2, 4, rng.randrange(64))))
            elif op == 5 and n > lo:  # delete a chunk
                pos = rng.randrange(lo, n)
                del buf[pos : pos + rng.randint(1, 16)]
            elif op == 6 and n > lo:  # repeat a chunk (two PDUs in one segment, loops)
                pos = rng.randrange(lo, n)
                chunk = buf[pos : pos + rng.randint(1, 64)]
                buf[pos:pos] = chunk * rng.randint(1, 4)
            elif op == 7:  # splice the tail of a donor frame
                cut = rng.randint(0, len(donor))
                del buf[rng.randint(lo, n) :]
                buf += donor[cut:]
            else:  # random payload
                del buf[lo:]
                buf += rng.randbytes(rng.randrange(256))
        if rng.random() < 0.01:
            linktype = rng.choice(LINKTYPES)
        return linktype, bytes(buf)


def mutants(seeds: list[Seed], count: int, seed: int) -> Iterator[Seed]:
    """``count`` frames: 90% mutants of ``seeds``, 5% the seeds themselves, 5% random."""
    mutator = Mutator(seed)
    rng = mutator.rng
    starts = [payload_offset(lt, data) for lt, data in seeds]
    for _ in range(count):
        roll = rng.random()
        if roll < 0.05 or not seeds:
            yield mutator.random_frame()
            continue
        i = rng.randrange(len(seeds))
        if roll < 0.10:
            yield seeds[i]
        else:
            yield mutator.mutate(seeds[i], starts[i], seeds[rng.randrange(len(seeds))][1])


# --- the pipeline harness -----------------------------------------------------------------

CUSTOM_RULES = [
    {"id": 1, "name": "fuzz modbus write", "protocol": "modbus", "severity": "low",
     "conditions": [{"field": "modbus.function_code", "op": "in", "value": [5, 6, 15, 16]}],
     "message": "{source_address} fc {modbus.function_code}"},
    {"id": 2, "name": "fuzz dns", "protocol": "dns", "severity": "low",
     "conditions": [{"field": "dns.query", "op": "contains", "value": "evil"}],
     "message": "query {dns.query}"},
    {"id": 3, "name": "fuzz http", "protocol": "http", "severity": "low",
     "conditions": [{"field": "http.path", "op": "startswith", "value": "/admin"}],
     "message": "{http.method} {http.path}"},
    {"id": 4, "name": "fuzz payload", "severity": "low",
     "conditions": [{"field": "payload", "op": "contains", "value": "hex:ff00ff"}],
     "message": "payload from {source_address}"},
]  # fmt: skip


def engine_settings(workdir: Path) -> dict[str, Any]:
    """IOC lists and custom rules, so the engines that are idle without them run too."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "ips.txt").write_text("203.0.113.30\n198.51.100.128/25\n")
    (workdir / "domains.txt").write_text("*.evil.example\nbad.example\n")
    (workdir / "urls.txt").write_text("/wp-admin/shell.php\nhttp://x.example/drop/*\n")
    return {
        "ioc": {
            "ip_files": [str(workdir / "ips.txt")],
            "domain_files": [str(workdir / "domains.txt")],
            "url_files": [str(workdir / "urls.txt")],
        },
        "custom_rules": {"rules": CUSTOM_RULES},
    }


@dataclass
class Crash:
    where: str
    """``decode``, ``engine <name>``, ``tick <name>`` or ``flush``."""
    error: str
    frame: Seed | None
    trace: str


@dataclass
class FuzzReport:
    frames: int = 0
    per_engine: Counter = field(default_factory=Counter)
    crashes: list[Crash] = field(default_factory=list)
    crash_count: int = 0
    detections: int = 0
    alerts: int = 0
    rss_start_mib: float = 0.0
    rss_warm_mib: float = 0.0
    rss_end_mib: float = 0.0
    seconds: float = 0.0
    groups: dict[str, int] = field(default_factory=dict)
    """Frames fed per seed group."""
    rss_checkpoints: list[tuple[int, float]] = field(default_factory=list)
    """(frames so far, RSS MiB) after each group."""

    def signatures(self) -> Counter:
        return Counter((c.where, c.error.split(":")[0]) for c in self.crashes)


class _Recorder:
    """Wraps each engine's ``observe`` to count its frames and keep each exception with its
    frame (then re-raises it, for the pipeline to count as it always does)."""

    def __init__(self, report: FuzzReport, keep: int = 60) -> None:
        self.report = report
        self.keep = keep
        self.frame: Seed | None = None

    def record(self, where: str, exc: BaseException | None) -> None:
        self.report.crash_count += 1
        seen = sum(1 for c in self.report.crashes if c.where == where)
        if seen < 3 and len(self.report.crashes) < self.keep:
            error = f"{type(exc).__name__}: {exc}" if exc else "engine error counted by pipeline"
            trace = traceback.format_exc() if exc else ""
            self.report.crashes.append(Crash(where, error, self.frame, trace))

    def wrap(self, engine: Any) -> None:
        counts = self.report.per_engine
        name = engine.name
        original = engine.observe

        def observe(_engine, rec, flow):  # type: ignore[no-untyped-def]
            counts[name] += 1
            try:
                return original(rec, flow)
            except Exception as exc:
                self.record(f"engine {name}", exc)
                raise

        engine.observe = types.MethodType(observe, engine)  # keeps ``__self__`` for the pipeline


def fuzz_target(store: Any, workdir: Path, recorder: _Recorder):  # -> Pipeline
    from otwatch.agent.alerts.manager import AlertManager
    from otwatch.agent.pipeline import Pipeline
    from otwatch.alerts.catalog import load_catalog

    manager = AlertManager(store, load_catalog(), sensor_id="fuzz")
    pipeline = Pipeline(
        manager,
        learning_period_ns=0,
        ot_subnets=("192.0.2.0/24", "198.51.100.0/24", "10.0.0.0/8", "192.168.0.0/16"),
        settings=engine_settings(workdir),
        max_flows=50_000,
    )
    rules = [e for e in pipeline.engines if e.name == "custom_rules"]
    assert rules and len(rules[0].rules) == len(CUSTOM_RULES), "a fuzz rule failed validation"
    for engine in pipeline.engines:
        recorder.wrap(engine)
    pipeline.start_segment()
    return pipeline


def fuzz_pipeline(
    store: Any,
    workdir: Path,
    groups: dict[str, list[Seed]],
    target: int,
    *,
    seed: int = 1,
    other_share: float = 0.05,
    cap: float = 3.0,
    flush_every: int = 100_000,
    progress: Callable[[FuzzReport], None] | None = None,
) -> FuzzReport:
    """Feed mutants of every seed group (plus a group of random frames) to one pipeline.

    Every group gets at least ``other_share × target`` frames; a group whose tag some engine
    subscribes to is fed on until each of those engines has been given ``target`` frames in
    all (at most ``cap × target`` from the group: a mutant may change its port). Timestamps
    advance ~1 ms per frame with rare jumps back and forward."""
    import time
    from itertools import islice

    report = FuzzReport(rss_start_mib=rss_mib())
    recorder = _Recorder(report)
    pipeline = fuzz_target(store, workdir, recorder)
    subscribers: dict[str, list[str]] = {}
    for engine in pipeline.engines:
        for tag in engine.apps or ():
            subscribers.setdefault(tag, []).append(engine.name)
    stats = pipeline.stats
    process = pipeline.process
    per_engine = report.per_engine
    rng = random.Random(seed)
    ts = T0
    started = time.perf_counter()
    plan = [*sorted(groups.items()), ("random", [])]
    batch = max(1, min(target, 20_000))
    for index, (tag, seeds) in enumerate(plan):
        frames = mutants(seeds, 1 << 62, seed * 1000 + index)
        names = subscribers.get(tag, [])
        least = max(1, int(other_share * target))
        limit = int(cap * target) if names else least
        fed = 0
        while fed < limit:
            if fed >= least and min((per_engine[n] for n in names), default=target) >= target:
                break
            for linktype, data in islice(frames, min(batch, limit - fed)):
                ts += rng.randrange(2_000_000)
                if rng.random() < 1e-4:
                    ts += rng.choice((-3600, 3600, 86_400)) * 1_000_000_000
                recorder.frame = (linktype, data)
                try:
                    process(ts, len(data) + rng.choice((0, 0, 0, 4, 1000)), linktype, data)
                except Exception as exc:  # decode and flow table: nothing guards them
                    recorder.record("decode", exc)
                if stats.engine_errors > report.crash_count:  # a tick failed (not wrapped)
                    recorder.record("tick", None)
                    report.crash_count = stats.engine_errors
                fed += 1
                report.frames += 1
                if report.frames % flush_every == 0:
                    try:
                        pipeline.flush()
                    except Exception as exc:
                        recorder.record("flush", exc)
        report.groups[tag] = fed
        report.rss_checkpoints.append((report.frames, rss_mib()))
        if index == 0:
            report.rss_warm_mib = report.rss_checkpoints[-1][1]
        if progress is not None:
            report.seconds = time.perf_counter() - started
            progress(report)
    pipeline.flush()
    report.seconds = time.perf_counter() - started
    report.rss_end_mib = rss_mib()
    report.detections = pipeline.stats.detections
    report.alerts = pipeline.manager.stats.alerts_new
    return report


def describe(report: FuzzReport) -> str:
    lines = [
        f"{report.frames:,} frames in {report.seconds:.1f} s; {report.crash_count} exceptions; "
        f"{report.detections:,} detections, {report.alerts:,} alerts; "
        f"RSS {report.rss_start_mib:.0f} → {report.rss_warm_mib:.0f} (first group) → "
        f"{report.rss_end_mib:.0f} MiB",
        "frames per engine: "
        + ", ".join(f"{n} {c:,}" for n, c in sorted(report.per_engine.items())),
    ]
    for crash in report.crashes:
        lines.append(f"{crash.where}: {crash.error}; frame {crash.frame!r}\n{crash.trace}")
    return "\n".join(lines)
