"""The sensor's sync logic without the network: messages in, messages to publish out.

``SensorSync`` owns the ``SensorStream`` state machine, the outbox and the command handler.
The daemon (``otwatch.sync.daemon``) feeds it connects, inbound messages and timer ticks and
publishes what it returns; the property tests wire it to ``CentralSync`` through an in-memory
network instead. Every inbound message is validated; a bad one is logged with its reason,
counted in ``dropped`` (reported in the health status) and changes nothing.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from otwatch import __version__
from otwatch.agent.alerts import build
from otwatch.agent.alerts.triage import AppliesActions
from otwatch.agent.capture.status import pcap_status
from otwatch.agent.sensor import SensorIdentity
from otwatch.agent.store.db import Store
from otwatch.agent.store.state import get_state, put_state
from otwatch.hlc import DEFAULT_MAX_SKEW_MS, peer_limit
from otwatch.seclog import security_event
from otwatch.sync import outbox
from otwatch.sync.commands import CommandHandler, Handled, PcapSend, Resync
from otwatch.sync.pcap import PcapProvider, PcapSender, PcapStream
from otwatch.sync.protocol.messages import (
    MAX_BYTES,
    MAX_EVENTS,
    VERSION,
    CentralBirth,
    CommandBatch,
    EventAck,
    ProtocolError,
    decode,
    encode_raw,
)
from otwatch.sync.protocol.outgoing import Outgoing
from otwatch.sync.protocol.streams import (
    DeleteAcked,
    NewEpoch,
    OutboxRow,
    Publish,
    ReadOutbox,
    Rewind,
    SensorStream,
    StreamLimits,
)
from otwatch.sync.protocol.topics import Direction, TopicError, parse_topic, up_topic

__all__ = ["Outgoing", "SensorSync", "capture_health"]

log = logging.getLogger(__name__)

_BATCH_BYTES = 900 << 10


def capture_health(store: Store) -> tuple[int | None, float | None]:
    """(kernel drops over every interface, PCAP ring bytes / ring budget) as the agent reports
    them (``pcap_status``); None while the agent never ran, or has no ring budget."""
    status = pcap_status(store)
    capture, ring = status["capture"], status["ring"]
    drops = None if capture["state"] == "never run" else max(0, int(capture["kernel_drops"]))
    budget = ring["budget_bytes"]
    usage = min(1.0, ring["bytes"] / budget) if isinstance(budget, int) and budget > 0 else None
    return drops, usage


@dataclass
class SensorSync:
    store: Store
    identity: SensorIdentity
    pcap: PcapProvider | None = None
    limits: StreamLimits = field(default_factory=StreamLimits)
    version: str = __version__
    triage_factory: Callable[[], AppliesActions] | None = None
    """Builds what applies central's triage commands (default: a ``Triage`` of ``store``)."""
    dropped: Counter[str] = field(default_factory=Counter)
    stats: Counter[str] = field(default_factory=Counter)
    pcap_sender: PcapSender = field(default_factory=PcapSender)
    """PCAP transfers to stream (the daemon runs its task; in-memory tests ``drain`` it)."""
    max_clock_skew_ms: int = DEFAULT_MAX_SKEW_MS
    """How far ahead of this sensor's clock a command's change clock may be (``otwatch.hlc``)."""

    def __post_init__(self) -> None:
        with self.store.session() as session:
            self.epoch = outbox.get_epoch(session)
            acked = int(get_state(session, outbox.ACKED_HW, 0))
            last = outbox.max_seq(session)
        self.stream = SensorStream(acked_hw=acked, last_seq=max(last, acked), limits=self.limits)
        self._triage: AppliesActions | None = None
        self.commands = CommandHandler(self.store, self._get_triage, pcap=self.pcap)

    @property
    def sensor_id(self) -> str:
        return self.identity.sensor_id

    def _get_triage(self) -> AppliesActions:
        if self._triage is None:
            factory = self.triage_factory or (lambda: build.triage(self.store))
            self._triage = factory()
        return self._triage

    # -- connection -----------------------------------------------------------------------

    def will(self) -> Outgoing:
        return self._status("offline", time.time_ns(), with_health=False)

    def on_connect(self, now: int) -> list[Outgoing]:
        self.stream.connect(now)
        return [self._birth(now), self._status("online", now)]

    def on_disconnect(self) -> None:
        self.stream.disconnect()

    def _birth(self, now: int) -> Outgoing:
        body = {
            "v": VERSION,
            "sensor_id": self.sensor_id,
            "epoch": self.epoch,
            "version": self.version[:64],
            "site": self.identity.site[:64],
            "zone": self.identity.zone[:64],
            "acked_hw": self.stream.acked_hw,
            "last_seq": self.stream.last_seq,
            "ts_ns": now,
        }
        return Outgoing(up_topic(self.sensor_id, "birth"), encode_raw(body))

    def health(self) -> dict[str, Any]:
        with self.store.session() as session:
            depth = outbox.pending_depth(session, self.stream.acked_hw)
        drops, ring = capture_health(self.store)
        return {
            "capture_drops": drops,
            "outbox_depth": depth,
            "ring_usage": ring,
            "dropped": {k[:64]: v for k, v in list(self.dropped.items())[:32]},
        }

    def status(self, now: int) -> Outgoing:
        return self._status("online", now)

    def _status(self, state: str, now: int, *, with_health: bool = True) -> Outgoing:
        body = {
            "v": VERSION,
            "sensor_id": self.sensor_id,
            "state": state,
            "version": self.version[:64],
            "ts_ns": now,
            "health": self.health() if with_health else {},
        }
        return Outgoing(up_topic(self.sensor_id, "status"), encode_raw(body), retain=True)

    # -- outbound events ------------------------------------------------------------------

    def poll(self, now: int) -> list[Outgoing]:
        """Read what is due from the outbox and return the event batches to publish."""
        out: list[Outgoing] = []
        pending = self.stream.poll(now)
        while pending:
            cmd = pending.pop(0)
            if isinstance(cmd, ReadOutbox):
                with self.store.session() as session:
                    rows = outbox.read_rows(session, cmd.after_seq, self.stream.acked_hw, cmd.limit)
                if rows:
                    pending.extend(self.stream.rows_read(rows, cmd.limit, now))
                else:
                    self.stream.cursor = 0
            elif isinstance(cmd, Publish):
                out.extend(self._event_batches(cmd.rows, now))
            else:
                self._execute(cmd, now)
        return out

    def _event_batches(self, rows: tuple[OutboxRow, ...], now: int) -> list[Outgoing]:
        with self.store.session() as session:
            events = outbox.load_events(session, rows, now)
        by_seq = {r.seq: r for r in rows}
        topic = up_topic(self.sensor_id, "events")
        head = f'{{"v":{VERSION},"sensor_id":"{self.sensor_id}","epoch":"{self.epoch}","events":['
        batches: list[Outgoing] = []
        parts: list[bytes] = []
        carried: list[OutboxRow] = []
        size = len(head) + 2

        def close() -> None:
            if parts:
                payload = head.encode() + b",".join(parts) + b"]}"
                batches.append(Outgoing(topic, payload, rows=tuple(carried)))
                parts.clear()
                carried.clear()

        for seq, blob in events:
            if parts and (size + len(blob) + 1 > _BATCH_BYTES or len(parts) >= MAX_EVENTS):
                close()
                size = len(head) + 2
            parts.append(blob)
            carried.append(by_seq[seq])
            size += len(blob) + 1
        close()
        self.stats["events_built"] += len(events)
        return batches

    def published(self, message: Outgoing, now: int) -> None:
        """The broker acknowledged ``message`` (PUBACK)."""
        if message.rows:
            self.stream.published(message.rows, now)
            self.stats["events_published"] += len(message.rows)

    def publish_failed(self, message: Outgoing) -> None:
        """A batch did not reach the broker: send its rows again."""
        if message.rows:
            self._execute(Rewind(max(self.stream.acked_hw, message.rows[0].seq - 1)), 0)
            self.stream.sent_hw = min(self.stream.sent_hw, message.rows[0].seq - 1)
            self.stream.sent_hw = max(self.stream.sent_hw, self.stream.acked_hw)

    def _execute(self, cmd: object, now: int) -> list[Outgoing]:
        if isinstance(cmd, DeleteAcked):
            with self.store.session() as session:
                outbox.delete_acked(session, cmd.hw, now or time.time_ns())
        elif isinstance(cmd, Rewind):
            with self.store.session() as session:
                outbox.rewind(session, cmd.after_seq)
            self.stats["rewinds"] += 1
        elif isinstance(cmd, NewEpoch):
            return self._new_epoch(now)
        return []

    def _new_epoch(self, now: int) -> list[Outgoing]:
        """Central has events this store never wrote (it was restored): start over."""
        log.warning(
            "central has more events than this sensor's store ever wrote (restored from a "
            "backup?); starting a new stream epoch and sending every alert again"
        )
        with self.store.session() as session:
            self.epoch = str(uuid.uuid4())
            put_state(session, outbox.EPOCH, self.epoch)
            first = outbox.max_seq(session)
            outbox.delete_acked(session, first, now)
            put_state(session, outbox.ACKED_HW, first)
            outbox.enqueue_snapshots(session, now)
        self.stream = SensorStream(
            acked_hw=first, last_seq=first, limits=self.limits, connected=self.stream.connected
        )
        self.stats["new_epochs"] += 1
        return [self._birth(now)]

    # -- inbound --------------------------------------------------------------------------

    def _drop(self, reason: str, detail: str, topic: str) -> list[Outgoing]:
        self.dropped[reason] += 1
        log.warning("dropped message on %s: %s: %s", topic[:200], reason, detail)
        return []

    def on_message(self, topic: str, payload: bytes, now: int) -> list[Outgoing]:
        """Handle one inbound message; never raises for anything the peer sent."""
        try:
            parsed = parse_topic(topic)
        except TopicError as exc:
            return self._drop("bad_topic", str(exc), topic)
        if parsed.sensor_id != self.sensor_id or parsed.direction != Direction.DOWN:
            return self._drop("wrong_sensor", f"topic is for {parsed.sensor_id}", topic)
        try:
            if parsed.kind == "acks":
                msg = decode(EventAck, payload, MAX_BYTES["acks_down"])
                return self._on_ack(msg, now, topic)
            if parsed.kind == "birth":
                birth = decode(CentralBirth, payload, MAX_BYTES["birth"])
                return self._on_birth(birth, now, topic)
            batch = decode(CommandBatch, payload, MAX_BYTES["commands"])
            return self._on_commands(batch, now, topic)
        except ProtocolError as exc:
            return self._drop(exc.reason, exc.detail, topic)

    def _on_ack(self, msg: EventAck, now: int, topic: str) -> list[Outgoing]:
        if msg.sensor_id != self.sensor_id:
            return self._drop("wrong_sensor", f"payload is for {msg.sensor_id}", topic)
        if msg.epoch != self.epoch:
            return self._drop("stale_epoch", f"ack for epoch {msg.epoch}", topic)
        if self.stream.unsent(msg.hw):
            # Rows never sent cannot be committed centrally: the ack is forged, or central
            # holds forged events under our sequence numbers (our real ones would be skipped
            # there as duplicates). Delete nothing and send everything again in a new epoch.
            self.dropped["ack_unsent"] += 1
            security_event(
                "ack_unsent",
                "central acknowledged events up to %d but this sensor sent only up to %d; "
                "keeping every row and starting a new stream epoch",
                msg.hw,
                self.stream.sent_ceiling,
            )
            return self._new_epoch(now)
        out: list[Outgoing] = []
        for cmd in self.stream.ack(msg.hw, now):
            out.extend(self._execute(cmd, now))
        return out

    def _on_birth(self, birth: CentralBirth, now: int, topic: str) -> list[Outgoing]:
        if birth.sensor_id != self.sensor_id:
            return self._drop("wrong_sensor", f"payload is for {birth.sensor_id}", topic)
        if birth.epoch != self.epoch:
            # Central does not know this stream yet: tell it (it answers with a new birth).
            return [self._birth(now)]
        out: list[Outgoing] = []
        for cmd in self.stream.central_birth(birth.hw, now):
            out.extend(self._execute(cmd, now))
        return out

    def _on_commands(self, batch: CommandBatch, now: int, topic: str) -> list[Outgoing]:
        if batch.sensor_id != self.sensor_id:
            return self._drop("wrong_sensor", f"payload is for {batch.sensor_id}", topic)
        acks: list[dict[str, Any]] = []
        out: list[Outgoing] = []
        limit = peer_limit(max(now, time.time_ns()) // 1_000_000, self.max_clock_skew_ms)
        for cmd in batch.commands:
            if cmd.hlc > limit:
                # Clamped, not refused: the command still applies, stamped no later than the
                # limit, and one forged clock cannot wedge the alert or this daemon's clock.
                self.dropped["clock_ahead"] += 1
                security_event(
                    "clock_ahead",
                    "command %s carries a change clock further ahead of this sensor's clock "
                    "than the allowed skew; clamped to the limit",
                    cmd.id,
                )
                cmd = cmd.model_copy(update={"hlc": limit})
            try:
                handled = self.commands.handle(cmd, now)
            except Exception as exc:  # a store error must not kill the daemon
                log.exception("command %s failed", cmd.id)
                self.dropped["command_error"] += 1
                handled = Handled(
                    {
                        "command_id": cmd.id,
                        "result": "rejected",
                        "outcome": "error",
                        "reason": f"sensor error: {exc}"[:512],
                        "alert": None,
                    }
                )
            self._count(handled)
            acks.append(handled.ack)
            if not handled.replayed:
                for effect in handled.effects:
                    out.extend(self._effect(effect, now))
        body = {"v": VERSION, "sensor_id": self.sensor_id, "acks": acks}
        return [Outgoing(up_topic(self.sensor_id, "acks"), encode_raw(body)), *out]

    def _count(self, handled: Handled) -> None:
        outcome = handled.ack["outcome"]
        if handled.replayed:
            self.dropped["replayed_command"] += 1
            log.warning("replayed command %s: acknowledged again", handled.ack["command_id"])
        elif handled.ack["result"] == "rejected":
            reason = {"unknown": "unknown_command", "not_found": "unknown_alert"}.get(
                outcome, f"rejected_{outcome}"
            )
            self.dropped[reason] += 1
            log.warning("command %s rejected: %s", handled.ack["command_id"], handled.ack["reason"])
        self.stats[f"command_{outcome}"] += 1

    def _effect(self, effect: PcapSend | Resync, now: int) -> list[Outgoing]:
        if isinstance(effect, Resync):
            return self._resync(effect.from_seq, now)
        try:
            stream = PcapStream.open(
                effect.path,
                sensor_id=self.sensor_id,
                request_id=effect.request_id,
                alert_id=effect.alert_id,
                only=effect.chunks,
            )
        except OSError as exc:
            log.warning("cannot read PCAP %s: %s", effect.path, exc)
            return []
        self.pcap_sender.add(stream)
        return []

    def _resync(self, from_seq: int | None, now: int) -> list[Outgoing]:
        if from_seq is not None and from_seq > self.stream.acked_hw:
            self.stream.sent_hw = self.stream.acked_hw
            self.stream.cursor = 0
            self._execute(Rewind(self.stream.acked_hw), now)
            return []
        with self.store.session() as session:
            queued = outbox.enqueue_snapshots(session, now)
        log.info("resync: queued %d alert and device snapshots", queued)
        return []
