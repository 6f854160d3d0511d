"""The one home of test builders: times, addresses, detections, Scapy frames and the engine
harnesses.

* Frames are built between documentation addresses with one MAC scheme (:func:`mac`) and
  explicit MACs everywhere (Scapy never resolves one on the network).
* :class:`EngineRun` is the one engine harness: engines through the pipeline's own packet path
  (decode, flow table, routing, type gate), or with :meth:`EngineRun.with_store` through the
  whole :class:`~otwatch.agent.pipeline.Pipeline` over a real store (baseline, learning state,
  custom rules, inventory, hooks); either way it collects the detections.
  :func:`case_tests` turns a table of trigger/quiet :class:`Case` rows into the two
  parametrized tests every engine module has.
* :func:`run_pipeline` feeds frames to the whole pipeline with the real alert manager writing
  alerts to the store (what the store sees, not what the engines said).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.l2 import ARP, Ether
from scapy.packet import Packet, Raw

from otwatch.agent.engines.base import Engine, EngineContext
from otwatch.agent.engines.baseline import Baseline, LearningClock
from otwatch.agent.engines.detection import Detection, DetectionFactory
from otwatch.agent.pipeline import PacketPath, Pipeline
from otwatch.alerts.catalog import Catalog, load_catalog

SEC = 1_000_000_000
MIN = 60 * SEC
T0 = 1_790_000_000 * SEC  # 2026-09-21, an arbitrary fixed traffic time
A, B, C = "192.0.2.10", "198.51.100.20", "203.0.113.30"
CLIENT, SERVER, OTHER = A, B, "192.0.2.30"
NET = "198.51.100"
CLIENT_MAC, SERVER_MAC = "02:00:00:00:00:01", "02:00:00:00:00:02"
"""The fixed MACs of :func:`eth` and the Modbus builders (tests match rules on them)."""


# --- detections and alerts ----------------------------------------------------------------


def detection(
    type_id: str = "unpermitted_usage_of_modbus_function_code",
    ts_ns: int = T0,
    src: str = "192.0.2.10",
    dst: str = "198.51.100.20",
    **fields: Any,
) -> Detection:
    factory = DetectionFactory(load_catalog())
    fields.setdefault("protocol", "modbus")
    return factory.make(
        type_id,
        ts_ns,
        f"{src} did something to {dst}",
        source_address=src,
        destination_address=dst,
        **fields,
    )


def types(detections: Iterable[Detection]) -> Counter[str]:
    """Type id → how many of ``detections`` have it."""
    return Counter(d.type_id for d in detections)


def of_type(detections: Iterable[Detection], type_id: str) -> list[Detection]:
    return [d for d in detections if d.type_id == type_id]


def alert_types(store) -> dict[str, int]:
    """Alert type id → total detections, from the store."""
    from sqlalchemy import func, select

    from otwatch.agent.store.models import Alert

    with store.session() as s:
        rows = s.execute(
            select(Alert.type_id, func.sum(Alert.detections)).group_by(Alert.type_id)
        ).all()
    return {type_id: int(total) for type_id, total in rows}


# --- frames -------------------------------------------------------------------------------


def mac(address: str) -> str:
    """A stable locally administered MAC for an IPv4 address (02:00:xx:xx:xx:xx)."""
    digits = [int(x) for x in address.split(".")] if "." in address else [0, 0, 0, 1]
    return "02:00:" + ":".join(f"{d:02x}" for d in digits)


def eth(src: str = CLIENT_MAC, dst: str = SERVER_MAC) -> Ether:
    """An Ethernet header with explicit MACs."""
    return Ether(src=src, dst=dst)


def _payload(payload: bytes | Packet) -> Packet:
    return payload if isinstance(payload, Packet) else Raw(payload)


def tcp(
    src: str,
    dst: str,
    sport: int,
    dport: int,
    flags: str = "PA",
    payload: bytes | Packet = b"",
    seq: int = 1,
) -> Packet:
    return (
        Ether(src=mac(src), dst=mac(dst))
        / IP(src=src, dst=dst)
        / TCP(sport=sport, dport=dport, flags=flags, seq=seq)
        / _payload(payload)
    )


def udp(src: str, dst: str, sport: int, dport: int, payload: bytes | Packet = b"") -> Packet:
    return (
        Ether(src=mac(src), dst=mac(dst))
        / IP(src=src, dst=dst)
        / UDP(sport=sport, dport=dport)
        / _payload(payload)
    )


def syn(src: str, dst: str, dport: int, sport: int = 40000) -> Packet:
    return tcp(src, dst, sport, dport, "S")


def synack(src: str, dst: str, sport: int, dport: int = 40000) -> Packet:
    return tcp(src, dst, sport, dport, "SA")


def to_server(port: int, payload, *, src: str = CLIENT, dst: str = SERVER, sport: int = 40000,
              seq: int = 1000) -> Packet:  # fmt: skip
    """A client → server TCP segment carrying ``payload`` to ``port``."""
    return tcp(src, dst, sport, port, payload=payload, seq=seq)


def to_client(port: int, payload, *, src: str = SERVER, dst: str = CLIENT, dport: int = 40000,
              seq: int = 5000) -> Packet:  # fmt: skip
    """The server's answer from ``port``."""
    return tcp(src, dst, port, dport, payload=payload, seq=seq)


def icmp_echo(src: str, dst: str, seq: int = 1) -> Packet:
    return Ether(src=mac(src), dst=mac(dst)) / IP(src=src, dst=dst) / ICMP(type=8, seq=seq)


def arp_request(sender: str, target: str, sender_mac: str | None = None) -> Packet:
    hw = sender_mac or mac(sender)
    return Ether(src=hw, dst="ff:ff:ff:ff:ff:ff") / ARP(op=1, hwsrc=hw, psrc=sender, pdst=target)


def arp_reply(sender: str, target: str, sender_mac: str | None = None) -> Packet:
    hw = sender_mac or mac(sender)
    return Ether(src=hw, dst=mac(target)) / ARP(
        op=2, hwsrc=hw, psrc=sender, hwdst=mac(target), pdst=target
    )


def _mbap(function: int, body: bytes, tid: int) -> bytes:
    pdu = bytes([function]) + body
    return tid.to_bytes(2, "big") + b"\x00\x00" + (len(pdu) + 1).to_bytes(2, "big") + b"\x01" + pdu


def modbus_request(
    src: str,
    dst: str,
    function: int,
    body: bytes = b"\x00\x00\x00\x01",
    tid: int = 1,
    sport: int = 40000,
) -> Packet:
    """An Ethernet/IPv4/TCP frame carrying one Modbus/TCP request (MBAP + PDU)."""
    return (
        eth(CLIENT_MAC, SERVER_MAC)
        / IP(src=src, dst=dst)
        / TCP(sport=sport, dport=502, flags="PA")
        / _mbap(function, body, tid)
    )


def modbus_response(
    src: str, dst: str, function: int, body: bytes, tid: int = 1, dport: int = 40000
) -> Packet:
    return (
        eth(SERVER_MAC, CLIENT_MAC)
        / IP(src=src, dst=dst)
        / TCP(sport=502, dport=dport, flags="PA")
        / _mbap(function, body, tid)
    )


def ether_frames(packets, start_ns: int = T0, step_ns: int = 1_000_000):
    """Scapy packets → pipeline input tuples ``(ts_ns, wire_len, linktype, bytes)``."""
    out = []
    for i, pkt in enumerate(packets):
        data = bytes(pkt)
        out.append((start_ns + i * step_ns, len(data), 1, data))
    return out


# --- engine harness -----------------------------------------------------------------------


class EngineRun:
    """Engines with their own context, fed frames through the pipeline's packet path.

    ``EngineRun(engines)`` is the packet path alone (decode, flow table, routing, type gate):
    what an engine's unit tests drive. :meth:`with_store` is the same harness over the whole
    :class:`~otwatch.agent.pipeline.Pipeline` on a real store (baseline, learning state, custom
    rules, inventory, hooks) with a sink that collects detections instead of writing alerts.
    Either way :meth:`feed` returns a call's detections and :attr:`detections` keeps all."""

    def __init__(
        self,
        engines: type[Engine] | Sequence[type[Engine]],
        *,
        settings: dict | None = None,
        _pipeline: Callable[[Callable[[Detection], object]], PacketPath] | None = None,
    ) -> None:
        engine_classes = (engines,) if isinstance(engines, type) else tuple(engines)
        self._out: list[Detection] = []
        self.detections: list[Detection] = []
        if _pipeline is None:
            self.clock = LearningClock(0)
            self.ctx = EngineContext(
                factory=DetectionFactory(load_catalog()),
                baseline=Baseline(),
                learning=self.clock,
                settings=dict(settings or {}),
            )
            self.path = PacketPath(self.ctx, engine_classes, self._observe)
        else:
            self.path = _pipeline(self._observe)
            self.ctx = self.path.ctx
            self.clock = self.ctx.learning
        self.engine = self.path.engines[0]
        self.engines = self.path.engines
        self.flows = self.path.flows
        self.ts = T0
        self._next_seq: dict[tuple, int] = {}

    @classmethod
    def with_store(
        cls,
        store: Any,
        engines: Sequence[type[Engine]],
        *,
        settings: dict | None = None,
        learning_s: float = 0.0,
        all_types: bool = True,
    ) -> EngineRun:
        """``engines`` in a whole :class:`Pipeline` over ``store``, its detections collected
        (:attr:`pipeline` is the pipeline). ``all_types`` turns on the types the spec has off
        by default (the detectors are tested, not the defaults; the type gate has tests of its
        own), unless ``settings`` say otherwise for an engine."""
        settings = dict(settings or {})
        if all_types:
            for engine in engines:
                table = settings.setdefault(engine.name, {})
                if "enable" not in table:
                    settings[engine.name] = {**table, "enable": ["*"]}

        def pipeline(observe: Callable[[Detection], object]) -> Pipeline:
            built = Pipeline(
                _Collect(store, load_catalog(), observe),
                learning_period_ns=int(learning_s * SEC),
                settings=settings,
                engines=tuple(engines),
            )
            built.start_segment()
            return built

        return cls(engines, _pipeline=pipeline)

    @property
    def pipeline(self) -> Pipeline:
        """The whole pipeline of a :meth:`with_store` run."""
        assert isinstance(self.path, Pipeline), "EngineRun.with_store(...) has a pipeline"
        return self.path

    def types(self) -> Counter[str]:
        """Every detection of this run so far, counted by type."""
        return types(self.detections)

    def of(self, type_id: str) -> list[Detection]:
        """Every detection of ``type_id`` of this run so far."""
        return of_type(self.detections, type_id)

    def feed(
        self,
        packets: Iterable,
        step_ns: int = 1_000_000,
        *,
        start_ns: int | None = None,
        auto_seq: bool = True,
        interface: str | None = None,
    ) -> list[Detection]:
        """Feed Scapy packets (or raw frames) ``step_ns`` apart, the first at ``start_ns``
        (default: ``step_ns`` after the last one); with ``auto_seq`` each TCP direction gets
        consecutive sequence numbers across calls, as a real stream would."""
        if start_ns is not None:
            self.ts = start_ns - step_ns
        frames = []
        for pkt in packets:
            self.ts += step_ns
            if auto_seq and not isinstance(pkt, bytes) and TCP in pkt:
                key = (pkt[IP].src, pkt[TCP].sport, pkt[IP].dst, pkt[TCP].dport)
                pkt = pkt.copy()
                pkt[TCP].seq = self._next_seq.get(key, pkt[TCP].seq)
                self._next_seq[key] = (pkt[TCP].seq + len(pkt[TCP].payload)) & 0xFFFFFFFF
            data = pkt if isinstance(pkt, bytes) else bytes(pkt)
            frames.append((self.ts, len(data), 1, data))
        return self.feed_frames(frames, interface)

    def feed_capture(self, path) -> list[Detection]:
        """Every frame of a capture file, with its own timestamps."""
        from otwatch.agent.capture.pcapfile import open_capture

        with open_capture(path) as capture:
            return self.feed_frames(list(capture))

    def feed_frames(
        self, frames: Iterable[tuple[int, int, int, bytes]], interface: str | None = None
    ) -> list[Detection]:
        process = self.path.process
        for ts, wire_len, linktype, data in frames:
            self.ts = ts
            process(ts, wire_len, linktype, data, interface)
        out, self._out[:] = list(self._out), []
        return out

    def _observe(self, det: Detection) -> None:
        self._out.append(det)
        self.detections.append(det)

    def learn(self, packets: Iterable, step_ns: int = 1_000_000) -> list[Detection]:
        """Feed ``packets`` in learning mode; learning ends afterwards."""
        self.clock.remaining_ns = 10**18
        try:
            return self.feed(packets, step_ns)
        finally:
            self.clock.remaining_ns = 0


@dataclass
class Case:
    """One row of an engine's trigger/quiet table: after learning ``learn`` (the table's
    default when ``None``), ``trigger`` raises ``type_id`` and ``quiet`` does not (after
    learning ``quiet_learn`` when given)."""

    type_id: str
    trigger: list
    quiet: list
    learn: list | None = None
    quiet_learn: list | None = None
    step_ns: int = 1_000_000


def case_tests(
    cases: Sequence[Case], make_run: Callable[[], EngineRun], *, learn: Sequence = ()
) -> tuple[Callable[[Case], None], Callable[[Case], None]]:
    """The ``test_triggers`` and ``test_quiet`` of a table of cases; ``learn`` is what a case
    learns when it names nothing. Use as ``test_triggers, test_quiet = case_tests(...)``."""
    ids = [case.type_id for case in cases]

    def learned(case: Case) -> list:
        return list(learn) if case.learn is None else case.learn

    @pytest.mark.parametrize("case", cases, ids=ids)
    def test_triggers(case: Case) -> None:
        run = make_run()
        run.learn(learned(case))
        assert case.type_id in types(run.feed(case.trigger, case.step_ns))

    @pytest.mark.parametrize("case", cases, ids=ids)
    def test_quiet(case: Case) -> None:
        run = make_run()
        run.learn(learned(case) if case.quiet_learn is None else case.quiet_learn)
        assert case.type_id not in types(run.feed(case.quiet, case.step_ns))

    return test_triggers, test_quiet


# --- pipeline harnesses -------------------------------------------------------------------


@dataclass
class _Collect:
    """The sink of :meth:`EngineRun.with_store`: collects detections, writes no alerts."""

    store: Any
    catalog: Catalog
    observe: Callable[[Detection], object]

    def repeat(self, det: Detection, ts_ns: int) -> None:
        self.detections.append(det._replace(ts_ns=ts_ns))

    def flush(self) -> None:
        pass


def run_pipeline(store, frames, *, learning_period_ns: int | None = None, settings=None):
    """Feed frames through a fresh pipeline with the real alert manager on ``store``;
    returns the pipeline after flush."""
    from otwatch.agent.alerts.manager import AlertManager

    manager = AlertManager(store, load_catalog(), sensor_id="test")
    pipeline = Pipeline(manager, learning_period_ns=learning_period_ns, settings=settings)
    pipeline.start_segment()
    for frame in frames:
        pipeline.process(*frame)
    pipeline.flush()
    return pipeline


@pytest.fixture(scope="module")
def netstore(tmp_path_factory):
    """One real store per test module; the collecting manager never writes alerts to it."""
    from otwatch.agent.store.db import open_store

    store = open_store(tmp_path_factory.mktemp("net"))
    yield store
    store.close()
