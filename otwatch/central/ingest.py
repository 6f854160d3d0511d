"""Central's sync logic without the network: sensor messages in, messages to publish out.

``CentralSync`` validates every message from a sensor (topic id = payload id, schema, size),
commits event batches idempotently (alerts merged per field, audit rows keyed by event id,
the stream's high-water mark in the same transaction) and only then acknowledges them. It
queues commands to sensors (``otwatch.central.commands``), keeps them pending until
acknowledged and re-sends them on the sensor's birth. A bad message is logged with its
reason, counted, and changes nothing. ``otwatch.central.service`` runs it against the broker.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import update

from otwatch.central import clockbound, placement
from otwatch.central.birthask import BirthAsks
from otwatch.central.command_acks import record_acks, undo_rejected
from otwatch.central.commands import (
    CommandIssuer,
    CommandSpec,
    IssueResult,
    PullPcap,
    Resync,
    command_for,
    command_messages,
)
from otwatch.central.inbound import DecodedEvents, Received, decode_events, events_sensor
from otwatch.central.pcap import PcapAssembler, PcapError, PcapSink
from otwatch.central.store import alerts as alert_store
from otwatch.central.store import commands as command_store
from otwatch.central.store import devices as device_store
from otwatch.central.store import search_backlog
from otwatch.central.store import sensors as sensor_store
from otwatch.central.store.db import CentralStore
from otwatch.central.store.models import Command
from otwatch.errors import OtwatchError
from otwatch.hlc import DEFAULT_MAX_SKEW_MS, HybridClock, peer_limit
from otwatch.sync.protocol.messages import (
    EVENT_KINDS,
    MAX_BYTES,
    VERSION,
    CommandAcks,
    ProtocolError,
    SensorBirth,
    SensorStatus,
    decode,
    encode_raw,
)
from otwatch.sync.protocol.outgoing import Outgoing
from otwatch.sync.protocol.streams import CentralStream, RequestResync, StreamLimits
from otwatch.sync.protocol.topics import Direction, TopicError, down_topic, parse_topic

__all__ = ["CentralSync"]

log = logging.getLogger(__name__)

_RESEND_AFTER_NS = 60 * 1_000_000_000


@dataclass(frozen=True, slots=True)
class _EventWrite:
    """One validated ``up/events`` batch, ready to commit (``CentralSync._prepare_events``)."""

    sensor_id: str
    after: CentralStream
    rows: list[dict[str, Any]]
    audit: list[dict[str, Any]]
    bad: list[int]
    top_hlc: int
    fresh: int
    received: int
    unknown: int
    devices: list[tuple[int, dict[str, Any] | None]] = field(default_factory=list)
    """Kind ``device``: (the sensor's device id, its snapshot or None when forgotten)."""


@dataclass
class CentralSync:
    store: CentralStore
    limits: StreamLimits = field(default_factory=StreamLimits)
    pcap_sink: PcapSink | None = None
    dropped: Counter[str] = field(default_factory=Counter)
    stats: Counter[str] = field(default_factory=Counter)
    max_clock_skew_ms: int = DEFAULT_MAX_SKEW_MS
    """How far ahead of central's clock a sensor's change clock may be (``otwatch.hlc``)."""

    def __post_init__(self) -> None:
        self.streams: dict[str, CentralStream] = {}
        self.birth_asks = BirthAsks()
        self.pcap = PcapAssembler(self.pcap_sink)
        with self.store.session() as session:
            self.clock = HybridClock(last=int(sensor_store.get_state(session, "hlc", 0)))
            for sensor in sensor_store.all_sensors(session):
                self.streams[sensor.id] = CentralStream(sensor.epoch, sensor.events_hw)
        self._last_resend_ns = 0
        self.commands = CommandIssuer(self.store, self.clock, self.pcap, self.stats)

    # -- outgoing helpers -----------------------------------------------------------------

    def _birth(self, sensor_id: str, now: int, pending: int = 0) -> Outgoing:
        stream = self.streams.get(sensor_id, CentralStream())
        body = {
            "v": VERSION,
            "sensor_id": sensor_id,
            "epoch": stream.epoch,
            "hw": stream.hw,
            "pending_commands": pending,
            "ts_ns": now,
        }
        return Outgoing(down_topic(sensor_id, "birth"), encode_raw(body))

    def _ack(self, sensor_id: str, stream: CentralStream) -> Outgoing:
        body = {"v": VERSION, "sensor_id": sensor_id, "epoch": stream.epoch, "hw": stream.hw}
        return Outgoing(down_topic(sensor_id, "acks"), encode_raw(body))

    def _pending(self, sensor_id: str) -> list[Outgoing]:
        with self.store.session() as session:
            pending = command_store.pending_commands(session, sensor_id)
            command_store.mark_sent(session, [c.id for c in pending])
        return command_messages(sensor_id, pending)

    # -- connection -----------------------------------------------------------------------

    def on_connect(self, now: int) -> list[Outgoing]:
        """Central (re)connected: tell every known sensor what we have, re-send commands."""
        out: list[Outgoing] = []
        for sensor_id in sorted(self.streams):
            pending = self._pending(sensor_id)
            out.append(self._birth(sensor_id, now, len(pending)))
            out.extend(pending)
        return out

    def poll(self, now: int) -> list[Outgoing]:
        """Timers: resync requests for gaps, PCAP re-requests, stale pending commands."""
        out: list[Outgoing] = []
        for sensor_id, stream in list(self.streams.items()):
            new, cmds = stream.check_gap(now, self.limits)
            if cmds:
                self.streams[sensor_id] = new
                for cmd in cmds:
                    assert isinstance(cmd, RequestResync)
                    log.warning("sensor %s: gap after %d; requesting resync", sensor_id, stream.hw)
                    out.extend(self._resync(sensor_id, cmd.from_seq, now))
        for transfer, missing in self.pcap.stalled(now):
            chunks = None if missing is None else tuple(missing)
            spec = PullPcap(transfer.alert_id, transfer.request_id, chunks)
            result = self.issue(transfer.sensor_id, spec, actor="central:pcap", now=now)
            out.extend(result.outgoing)
        if now - self._last_resend_ns >= _RESEND_AFTER_NS:
            self._last_resend_ns = now
            out.extend(self._resend_stale(now))
        return out

    def _resend_stale(self, now: int) -> list[Outgoing]:
        out: list[Outgoing] = []
        with self.store.session() as session:
            for sensor in sensor_store.all_sensors(session):
                if not sensor.online:
                    continue
                stale = [
                    c
                    for c in command_store.pending_commands(session, sensor.id)
                    if now - c.issued_ns >= _RESEND_AFTER_NS
                ]
                command_store.mark_sent(session, [c.id for c in stale])
                out.extend(command_messages(sensor.id, stale))
        return out

    def index_search(self, limit: int = search_backlog.INDEX_STEP, *, keep: int = 0) -> int:
        """Move up to ``limit`` new or changed alerts into the search index, leaving ``keep``
        (SQLite; see ``store.search_backlog``); returns how many."""
        with self.store.session() as session:
            return search_backlog.index_pending(session.connection(), limit, keep=keep)

    # -- inbound --------------------------------------------------------------------------

    def _peer_limit(self, now: int) -> int:
        """The latest change clock a sensor may send now (``otwatch.hlc.peer_limit``)."""
        return peer_limit(max(now, time.time_ns()) // 1_000_000, self.max_clock_skew_ms)

    def _drop(self, reason: str, detail: str, topic: str, sensor_id: str | None, now: int):
        self.dropped[reason] += 1
        log.warning("dropped message on %s: %s: %s", topic[:200], reason, detail)
        if sensor_id is not None:
            try:
                with self.store.session() as session:
                    sensor_store.add_dropped(session, sensor_id, 1, now)
            except OtwatchError:
                log.exception("cannot count a dropped message")
        return []

    def on_message(self, topic: str, payload: bytes, now: int) -> list[Outgoing]:
        """Handle one message from a sensor; never raises for anything a sensor sent."""
        try:
            parsed = parse_topic(topic)
        except TopicError as exc:
            return self._drop("bad_topic", str(exc), topic, None, now)
        if parsed.direction != Direction.UP:
            return []  # our own messages, if a wildcard ever matches them
        sensor_id = parsed.sensor_id
        try:
            if parsed.kind == "events":
                return self._on_events(sensor_id, payload, now, topic)
            if parsed.kind == "acks":
                return self._on_acks(sensor_id, payload, now, topic)
            if parsed.kind == "birth":
                return self._on_birth(sensor_id, payload, now, topic)
            if parsed.kind == "status":
                return self._on_status(sensor_id, payload, now, topic)
            return self._on_pcap(sensor_id, parsed.request_id or "", payload, now, topic)
        except ProtocolError as exc:
            return self._drop(exc.reason, exc.detail, topic, sensor_id, now)

    def _check_sensor(self, topic_id: str, payload_id: str) -> None:
        if topic_id != payload_id:
            raise ProtocolError(
                "wrong_sensor", f"payload sensor id {payload_id!r} != topic {topic_id!r}"
            )

    @staticmethod
    def predecode(topic: str, payload: bytes) -> DecodedEvents | ProtocolError | None:
        """Validate an ``up/events`` payload ahead of ``on_messages``, on any thread (no
        state is read or changed): the service runs it on its own thread while the database
        thread writes the previous group. None for other topics."""
        if events_sensor(topic) is None:
            return None
        try:
            return decode_events(payload)
        except ProtocolError as exc:
            return exc

    def _on_events(self, sensor_id: str, payload: bytes, now: int, topic: str) -> list[Outgoing]:
        prepared = self._prepare_events(sensor_id, payload, now, topic, {})
        if isinstance(prepared, list):
            return prepared
        return self._write_events([prepared], now)

    def _prepare_events(
        self,
        sensor_id: str,
        payload: bytes,
        now: int,
        topic: str,
        pending: dict[str, CentralStream],
        decoded: DecodedEvents | ProtocolError | None = None,
    ) -> _EventWrite | list[Outgoing]:
        """Validate one ``up/events`` message and work out its rows, without the database.

        ``pending`` holds the stream states of batches prepared before this one in the same
        group (not committed yet); this one's state is added to it. A message that cannot
        be written returns what to send instead (a birth for a stale epoch; raises
        ``ProtocolError`` when invalid)."""
        if decoded is None:
            decoded = decode_events(payload)
        elif isinstance(decoded, ProtocolError):
            raise decoded
        batch, events, bad = decoded.batch, decoded.events, decoded.bad
        self.dropped["invalid_event"] += decoded.unseqable
        self._check_sensor(sensor_id, batch.sensor_id)
        stream = pending.get(sensor_id) or self.streams.get(sensor_id, CentralStream())
        if stream.epoch != batch.epoch:
            self._drop("stale_epoch", f"events of epoch {batch.epoch}", topic, sensor_id, now)
            return self._ask_birth(sensor_id, now)
        fresh = [e for e in events if stream.is_new(e.seq)]
        rows, audit = [], []
        top_hlc = 0
        unknown = 0
        devices: list[tuple[int, dict[str, Any] | None]] = []
        for event in fresh:
            if event.kind not in EVENT_KINDS:
                unknown += 1
                continue
            if event.kind == "device":
                if event.device_id is not None:
                    snap = event.device.model_dump() if event.device is not None else None
                    devices.append((event.device_id, snap))
                continue
            if event.alert is not None:
                snap = event.alert.__dict__  # validated, frozen: read its fields directly
                rows.append(alert_store.alert_row(sensor_id, snap, now))
                top_hlc = max(top_hlc, snap["status_hlc"], snap["severity_hlc"])
            if event.kind != "alert" and event.change is not None:
                change = event.change
                detail = change.model_dump(exclude={"actor", "origin", "ts_ns"}, exclude_none=True)
                audit.append(
                    {
                        "event_id": event.id,
                        "sensor": sensor_id,
                        "alert_id": event.alert_id,
                        "ts_ns": change.ts_ns,
                        "actor": change.actor,
                        "origin": change.origin,
                        "action": event.kind,
                        "detail": detail,
                    }
                )
        clamped = clockbound.clamp_batch(rows, audit, limit := self._peer_limit(now))
        if clamped:
            top_hlc = min(top_hlc, limit)
            self.stats["clock_clamped"] += clamped
            clockbound.report(sensor_id, clamped, "an event batch")
        bad = [s for s in bad if stream.is_new(s)]
        advanced = stream.committed([e.seq for e in fresh] + bad, now)
        pending[sensor_id] = advanced
        return _EventWrite(
            sensor_id, advanced, rows, audit, bad, top_hlc, len(fresh), len(events),
            unknown, devices,
        )  # fmt: skip

    def _write_events(self, writes: list[_EventWrite], now: int) -> list[Outgoing]:
        """Commit prepared batches in one transaction, then acknowledge each sensor's new
        high-water mark (never before the commit: the sensor deletes what is acked)."""
        final = {write.sensor_id: write.after for write in writes}  # each sensor's last
        if any(w.rows or w.audit or w.bad or w.devices for w in writes):
            with self.store.session() as session:
                rows = [r for w in writes for r in w.rows]
                placement.place_rows(session, rows)  # central's site and zone, not the claim
                alert_store.upsert_alerts(session, rows)
                alert_store.add_audit(session, [a for w in writes for a in w.audit])
                for write in writes:
                    device_store.apply_snapshots(session, write.sensor_id, write.devices, now)
                for sensor_id, after in final.items():
                    if after.hw != self.streams.get(sensor_id, CentralStream()).hw:
                        sensor_store.set_stream(session, sensor_id, after.epoch, after.hw, now)
                    bad = sum(len(w.bad) for w in writes if w.sensor_id == sensor_id)
                    if bad:
                        sensor_store.add_dropped(session, sensor_id, bad, now)
            top_hlc = max(w.top_hlc for w in writes)
            if top_hlc:
                self.clock.observe(top_hlc)
        for write in writes:
            self.dropped["invalid_event"] += len(write.bad)
            self.dropped["unknown_event_kind"] += write.unknown
            self.stats["events"] += write.fresh
            self.stats["devices"] += len(write.devices)
            self.stats["duplicates"] += write.received - write.fresh
        self.streams.update(final)
        return [self._ack(sensor_id, after) for sensor_id, after in final.items()]

    def on_messages(self, messages: Sequence[Received], now: int) -> list[Outgoing]:
        """Handle messages received together, in order; runs of ``up/events`` messages are
        committed in one transaction (group commit: one commit per run instead of one per
        message is most of what a burst of events costs beyond the rows themselves).

        Each message is ``(topic, payload)`` or ``(topic, payload, predecode(topic,
        payload))``."""
        out: list[Outgoing] = []
        writes: list[_EventWrite] = []
        pending: dict[str, CentralStream] = {}
        for topic, payload, *ahead in messages:
            sensor_id = events_sensor(topic)
            if sensor_id is None:
                if writes:
                    out.extend(self._write_events(writes, now))
                    writes, pending = [], {}
                out.extend(self.on_message(topic, payload, now))
                continue
            try:
                decoded = ahead[0] if ahead else None
                prepared = self._prepare_events(sensor_id, payload, now, topic, pending, decoded)
            except ProtocolError as exc:
                out.extend(self._drop(exc.reason, exc.detail, topic, sensor_id, now))
                continue
            if isinstance(prepared, list):
                out.extend(prepared)
            else:
                writes.append(prepared)
        if writes:
            out.extend(self._write_events(writes, now))
        return out

    def _on_birth(self, sensor_id: str, payload: bytes, now: int, topic: str) -> list[Outgoing]:
        birth = decode(SensorBirth, payload, MAX_BYTES["birth"])
        self._check_sensor(sensor_id, birth.sensor_id)
        stream = self.streams.get(sensor_id, CentralStream())
        new, cmds = stream.birth(birth.epoch, birth.acked_hw, now)
        with self.store.session() as session:
            placement.claim(session, sensor_id, birth.site, birth.zone, now)
            sensor_store.touch_sensor(
                session,
                sensor_id,
                now,
                online=True,
                version=birth.version,
                epoch=new.epoch,
                events_hw=new.hw,
            )
        self.streams[sensor_id] = new
        if new.epoch != stream.epoch and stream.epoch is not None:
            log.warning("sensor %s started a new event stream (epoch %s)", sensor_id, new.epoch)
        out: list[Outgoing] = []
        for cmd in cmds:
            assert isinstance(cmd, RequestResync)
            log.warning("sensor %s deleted events central lacks; requesting a snapshot", sensor_id)
            out.extend(self._resync(sensor_id, None, now, send=False))
        pending = self._pending(sensor_id)
        return [self._birth(sensor_id, now, len(pending)), *out, *pending]

    def _on_status(self, sensor_id: str, payload: bytes, now: int, topic: str) -> list[Outgoing]:
        status = decode(SensorStatus, payload, MAX_BYTES["status"])
        self._check_sensor(sensor_id, status.sensor_id)
        with self.store.session() as session:
            sensor_store.touch_sensor(
                session,
                sensor_id,
                now,
                online=status.state == "online",
                version=status.version,
                health=status.health.model_dump(),
            )
        if self.streams.setdefault(sensor_id, CentralStream()).epoch is None:
            return self._ask_birth(sensor_id, now)  # a sensor we have no stream of
        return []

    def _ask_birth(self, sensor_id: str, now: int) -> list[Outgoing]:
        """Our birth for a stream we do not know: the sensor answers with its own birth
        (``otwatch.central.birthask``; at most once per interval per sensor)."""
        if not self.birth_asks.due(sensor_id, now):
            return []
        log.info("sensor %s: unknown event stream; asking the sensor for its birth", sensor_id)
        return [self._birth(sensor_id, now)]

    def _on_acks(self, sensor_id: str, payload: bytes, now: int, topic: str) -> list[Outgoing]:
        msg = decode(CommandAcks, payload, MAX_BYTES["acks_up"])
        self._check_sensor(sensor_id, msg.sensor_id)
        with self.store.session() as session:
            record_acks(session, sensor_id, msg, clock_limit=self._peer_limit(now),
                        rejected=self._rejected, stats=self.stats, now=now)  # fmt: skip
        return []

    def _rejected(self, session: Any, sensor_id: str, command: Command, ack: dict) -> None:
        undo_rejected(session, sensor_id, command, ack, self.pcap)

    def _on_pcap(
        self, sensor_id: str, request_id: str, payload: bytes, now: int, topic: str
    ) -> list[Outgoing]:
        try:
            done = self.pcap.receive(sensor_id, request_id, payload, now)
        except PcapError as exc:
            raise ProtocolError("pcap", str(exc)) from None
        if done is not None:
            self.stats["pcap_done"] += 1
            if self.pcap_sink is not None:
                self.pcap_sink.store(done)
        return []

    # -- commands -------------------------------------------------------------------------

    def _resync(
        self, sensor_id: str, from_seq: int | None, now: int, *, send: bool = True
    ) -> list[Outgoing]:
        with self.store.session() as session:
            session.execute(
                update(Command)
                .where(
                    Command.sensor == sensor_id,
                    Command.kind == "resync",
                    Command.status == "pending",
                )
                .values(status="rejected", outcome="replaced", reason="a newer resync replaced it")
                .execution_options(synchronize_session=False)
            )
        result = self.issue(sensor_id, Resync(from_seq), actor="central:sync", now=now)
        return list(result.outgoing) if send else []

    def issue(
        self, sensor_id: str, spec: CommandSpec, *, actor: str, now: int | None = None
    ) -> IssueResult:
        """Queue a command for a sensor (``otwatch.central.commands``)."""
        return self.commands.issue(sensor_id, spec, actor=actor, now=now)

    def issue_command(
        self, sensor_id: str, kind: str, *, actor: str, now: int | None = None, **fields: Any
    ) -> IssueResult:
        """Queue a command named by its kind string (``commands.command_for``)."""
        return self.issue(sensor_id, command_for(kind, **fields), actor=actor, now=now)
