"""One central instance among several: ``CentralSync`` with its state kept in the database.

``CentralSync`` keeps each sensor's stream position in memory, which is right for one
instance. Behind an MQTT v5 shared subscription the broker hands each message to any one of
N instances, so consecutive batches of one sensor land on different instances. With
``shared=True`` this class therefore, for every message of a sensor, takes a per-sensor lock
(PostgreSQL advisory lock; one process per SQLite file needs none), reloads the stream state
(epoch, high-water mark and the sequence numbers committed above it) from the database, lets
``CentralSync`` do its work, and stores what changed, all before the next instance may touch
that sensor. Acks then always carry the true high-water mark: no event is lost (the sensor
keeps it until acknowledged) and none is applied twice (the merge is idempotent anyway).

PCAP pulls are kept in ``pcap_requests`` so they survive a central restart, an offline sensor
and the instance that assembles the chunks not being the one whose API asked: a chunk of a
pending request that this instance does not know yet starts its transfer here; chunks of
finished or unknown requests are ignored quietly (every instance also subscribes to PCAP
chunks directly, see ``CentralService``). Transfers of offline sensors are not re-requested:
the command stays pending and the sensor answers when it returns.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy import select, text, update

from otwatch.central.inbound import Received
from otwatch.central.ingest import CentralSync
from otwatch.central.maintenance import MaintenanceSettings, auto_close, delete_expired, unify
from otwatch.central.store import sensors as sensor_store
from otwatch.central.store.models import CentralState, Command, Sensor
from otwatch.central.store.models_api import PcapRequest
from otwatch.sync.protocol.outgoing import Outgoing
from otwatch.sync.protocol.streams import CentralStream
from otwatch.sync.protocol.topics import Direction, TopicError, parse_topic

__all__ = ["CentralNode"]

log = logging.getLogger(__name__)

_ABOVE = "stream_above:"
_MAX_ABOVE = 50_000


def _lock_key(sensor_id: str) -> int:
    raw = hashlib.sha256(f"otwatch-sensor-stream:{sensor_id}".encode()).digest()
    return int.from_bytes(raw[:8], "big", signed=True)


class CentralNode(CentralSync):
    """``CentralSync`` for the HTTP API and for N instances sharing one database."""

    def __init__(self, *args: Any, shared: bool = False, **kwargs: Any) -> None:
        self.shared = shared
        super().__init__(*args, **kwargs)

    # -- stream state in the database -----------------------------------------------------

    @contextlib.contextmanager
    def _sensor_lock(self, sensor_id: str) -> Iterator[None]:
        if not self.shared or self.store.dialect != "postgresql":
            yield
            return
        with self.store.engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _lock_key(sensor_id)})
            conn.commit()
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _lock_key(sensor_id)})
                conn.commit()

    def _load_stream(self, sensor: Sensor, above: list[int]) -> CentralStream:
        mine = self.streams.get(sensor.id, CentralStream())
        above_set = frozenset(s for s in above if s > sensor.events_hw)
        same = mine.epoch == sensor.epoch
        return CentralStream(
            epoch=sensor.epoch,
            hw=sensor.events_hw,
            above=above_set,
            gap_since_ns=(mine.gap_since_ns if same else None) if above_set else None,
            last_resync_ns=mine.last_resync_ns if same else None,
            resyncs=mine.resyncs if same and above_set else 0,
        )

    def _refresh(self, sensor_id: str | None = None) -> None:
        with self.store.session() as session:
            sensors = select(Sensor)
            states = select(CentralState).where(CentralState.key.startswith(_ABOVE))
            if sensor_id is not None:
                sensors = sensors.where(Sensor.id == sensor_id)
                states = select(CentralState).where(CentralState.key == _ABOVE + sensor_id)
            above = {
                row.key[len(_ABOVE) :]: list(row.value.get("v") or [])
                for row in session.scalars(states)
            }
            for sensor in session.scalars(sensors):
                self.streams[sensor.id] = self._load_stream(sensor, above.get(sensor.id, []))

    def _save_above(self, sensor_id: str, before: frozenset[int]) -> None:
        stream = self.streams.get(sensor_id)
        if stream is None or stream.above == before:
            return
        above = sorted(stream.above)[:_MAX_ABOVE]
        with self.store.session() as session:
            sensor_store.put_state(session, _ABOVE + sensor_id, above)

    def on_message(self, topic: str, payload: bytes, now: int) -> list[Outgoing]:
        try:
            parsed = parse_topic(topic)
        except TopicError:
            return super().on_message(topic, payload, now)
        if parsed.direction != Direction.UP:
            return []
        if parsed.kind == "pcap":
            return self._on_pcap_topic(
                parsed.sensor_id, parsed.request_id or "", topic, payload, now
            )
        if not self.shared or parsed.kind not in ("events", "birth", "status"):
            return super().on_message(topic, payload, now)
        with self._sensor_lock(parsed.sensor_id):
            self._refresh(parsed.sensor_id)
            before = self.streams.get(parsed.sensor_id, CentralStream()).above
            out = super().on_message(topic, payload, now)
            self._save_above(parsed.sensor_id, before)
        return out

    def on_messages(self, messages: Sequence[Received], now: int) -> list[Outgoing]:
        if self.shared:  # each message under its sensor's lock, with the stream reloaded
            out: list[Outgoing] = []
            for topic, payload, *_ in messages:
                out.extend(self.on_message(topic, payload, now))
            return out
        return super().on_messages(messages, now)

    def on_connect(self, now: int) -> list[Outgoing]:
        if self.shared:
            self._refresh()
        self._adopt_pending_pcaps(now)
        return super().on_connect(now)

    def poll(self, now: int) -> list[Outgoing]:
        if self.shared:
            self._refresh()
        self._hold_offline_transfers(now)
        out = super().poll(now)
        self._fail_given_up_pcaps(now)
        return out

    # -- periodic jobs --------------------------------------------------------------------

    def maintenance(self, now: int, settings: MaintenanceSettings) -> dict[str, int]:
        """Unify new alerts, auto-close stale New ones, delete expired ones (bounded work)."""
        done = {"unified": 0, "auto_closed": 0, "deleted": 0}
        with self.store.session() as session:
            done["unified"] = unify(session, now)
        if settings.auto_close_ns is not None:
            with self.store.session() as session:
                done["auto_closed"] = auto_close(
                    session, now, settings.auto_close_ns, self.clock.now
                )
                if done["auto_closed"]:
                    sensor_store.put_state(session, "hlc", self.clock.last)
        if settings.retention_ns is not None:
            for _ in range(20):
                with self.store.session() as session:
                    deleted = delete_expired(session, now, settings.retention_ns)
                done["deleted"] += deleted
                if not deleted:
                    break
        expire = getattr(self.pcap_sink, "expire", None)
        if expire is not None:
            done["pcap_expired"] = expire(now)
        return done

    # -- PCAP -----------------------------------------------------------------------------

    def pcap_progress(self, request_id: str) -> tuple[int, int | None] | None:
        """Chunks received and expected of a transfer this instance assembles (any thread)."""
        transfer = self.pcap.transfers.get(request_id)
        if transfer is None:
            return None
        return transfer.count, transfer.total

    def _on_pcap_topic(
        self, sensor_id: str, request_id: str, topic: str, payload: bytes, now: int
    ) -> list[Outgoing]:
        if request_id not in self.pcap.transfers:
            with self.store.session() as session:
                row = session.get(PcapRequest, request_id)
                pending = row is not None and row.state == "pending" and row.sensor == sensor_id
                alert_id = row.alert_id if row is not None else 0
            if not pending:
                self.stats["pcap_ignored"] += 1
                return []
            self.pcap.expect(sensor_id, alert_id, request_id, now)
        return super().on_message(topic, payload, now)

    def _hold_offline_transfers(self, now: int) -> None:
        """An offline sensor cannot answer: keep its transfers from counting as stalled (its
        silent re-requests start again from zero when it returns), and forget transfers whose
        request ended elsewhere (another instance got the refusal or gave up)."""
        if not self.pcap.transfers:
            return
        with self.store.session() as session:
            online = {s.id for s in session.scalars(select(Sensor).where(Sensor.online.is_(True)))}
            states = dict(
                session.execute(
                    select(PcapRequest.request_id, PcapRequest.state).where(
                        PcapRequest.request_id.in_(list(self.pcap.transfers))
                    )
                ).all()
            )
        for request_id, transfer in list(self.pcap.transfers.items()):
            if states.get(request_id, "pending") != "pending":
                self.pcap.cancel(request_id)
            elif transfer.sensor_id not in online:
                transfer.last_chunk_ns = now
                transfer.rerequests = 0

    def _adopt_pending_pcaps(self, now: int) -> None:
        """Track the pending requests of the database (issued before a restart, or by another
        instance's API), so that a sensor that never answers them is given up on too."""
        with self.store.session() as session:
            rows = session.execute(
                select(PcapRequest.request_id, PcapRequest.sensor, PcapRequest.alert_id).where(
                    PcapRequest.state == "pending"
                )
            ).all()
        for request_id, sensor_id, alert_id in rows:
            self.pcap.expect(sensor_id, alert_id, request_id, now)

    def _fail_given_up_pcaps(self, now: int) -> None:
        """Mark the requests the assembler gave up on failed, with its reason, and stop
        re-sending their commands (a silent sensor would otherwise get them forever)."""
        for given_up in self.pcap.take_given_up():
            transfer, reason = given_up.transfer, given_up.reason
            log.warning("PCAP request %s failed: %s", transfer.request_id, reason)
            self.stats["pcap_failed"] += 1
            with self.store.session() as session:
                session.execute(
                    update(PcapRequest)
                    .where(
                        PcapRequest.request_id == transfer.request_id,
                        PcapRequest.state == "pending",
                    )
                    .values(state="failed", reason=reason[:512], done_ns=now)
                    .execution_options(synchronize_session=False)
                )
                for command in session.scalars(
                    select(Command).where(
                        Command.sensor == transfer.sensor_id,
                        Command.kind == "pcap",
                        Command.status == "pending",
                    )
                ):
                    if (command.params or {}).get("request_id") == transfer.request_id:
                        command.status, command.outcome = "rejected", "timeout"
                        command.reason, command.acked_ns = reason[:512], now

    def _rejected(self, session: Any, sensor_id: str, command: Command, ack: dict) -> None:
        super()._rejected(session, sensor_id, command, ack)
        if command.kind != "pcap":
            return
        request_id = (command.params or {}).get("request_id")
        if not request_id:
            return
        state = "not_available" if ack.get("outcome") == "not_available" else "failed"
        session.execute(
            update(PcapRequest)
            .where(PcapRequest.request_id == request_id, PcapRequest.state == "pending")
            .values(state=state, reason=str(ack.get("reason") or state)[:512])
            .execution_options(synchronize_session=False)
        )
