"""Sans-IO state machines for the sequence/ack stream of sensor events.

``SensorStream`` decides what the sensor reads from its outbox, publishes, re-sends and
deletes; ``CentralStream`` tracks what central has committed for one sensor (high-water mark,
out-of-order sequence numbers above it, gaps). Both take events as method calls with the
current time and return small command objects; the callers do the I/O. No clocks, sockets or
databases in here, so every rule is tested with plain scripts.

The stream's rules:

- Each outbox row has a per-sensor sequence number (its ``seq``). Rows are committed in
  sequence order on the sensor, so the rows a reader sees are a prefix.
- The sensor publishes rows in order, except that an alert update is held back while the
  same alert was published less than ``coalesce_ns`` ago (it keeps collecting detections).
- Central commits events in any order, acknowledges the highest sequence number below which
  it has everything (``hw``), and asks for a resync when a gap stays open.
- The sensor deletes rows up to ``hw``. It re-sends everything above ``hw`` when central's
  birth says so, and when no ack came for ``ack_timeout_ns`` (doubling up to a maximum).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

__all__ = [
    "CentralStream",
    "DeleteAcked",
    "NewEpoch",
    "OutboxRow",
    "Publish",
    "ReadOutbox",
    "RequestResync",
    "Rewind",
    "SensorStream",
    "StreamLimits",
]

NS = 1_000_000_000


# -- commands ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReadOutbox:
    """Read up to ``limit`` unpublished outbox rows with ``seq > after_seq``, in order."""

    after_seq: int
    limit: int


@dataclass(frozen=True, slots=True)
class Publish:
    """Publish these rows (in this order) and then mark them published."""

    rows: tuple[OutboxRow, ...]


@dataclass(frozen=True, slots=True)
class Rewind:
    """Mark every row with ``seq > after_seq`` unpublished so it is sent again."""

    after_seq: int


@dataclass(frozen=True, slots=True)
class DeleteAcked:
    """Remember ``hw`` as acknowledged and delete the rows up to it."""

    hw: int


@dataclass(frozen=True, slots=True)
class NewEpoch:
    """Central has more than this sensor ever wrote: the store was restored or replaced.
    Start a new epoch (a new stream from sequence 0) and send a snapshot of every alert."""


@dataclass(frozen=True, slots=True)
class RequestResync:
    """Ask the sensor to re-send from ``from_seq`` (None: a snapshot of every alert)."""

    from_seq: int | None


@dataclass(frozen=True, slots=True)
class OutboxRow:
    seq: int
    kind: str
    alert_id: int | None
    device_id: int | None = None


@dataclass(frozen=True, slots=True)
class StreamLimits:
    batch_rows: int = 2_000
    """Rows read per outbox read."""
    max_inflight: int = 20_000
    """Published rows not yet acknowledged, at most (keeps broker queues bounded)."""
    coalesce_ns: int = NS
    """At most one update per alert per this interval."""
    device_coalesce_ns: int = 5 * NS
    """At most one update per device per this interval (a device's counters and last seen
    change at every flush it has traffic in)."""
    ack_timeout_ns: int = 10 * NS
    max_ack_timeout_ns: int = 300 * NS
    gap_timeout_ns: int = 5 * NS
    """Central: how long a gap may stay open before a resync request."""
    delete_rows: int = 5_000
    """Acknowledged rows are deleted once this many have gathered, or ``delete_interval_ns``
    after the last deletion: one transaction per ack would cost more than the rows do."""
    delete_interval_ns: int = NS


# -- sensor -----------------------------------------------------------------------------


@dataclass
class SensorStream:
    """The sensor's side of the event stream."""

    acked_hw: int
    last_seq: int = 0
    """Highest sequence number this sensor ever wrote (its outbox's max seq)."""
    limits: StreamLimits = field(default_factory=StreamLimits)
    connected: bool = False
    sent_hw: int = 0
    cursor: int = 0
    last_progress_ns: int = 0
    ack_timeout_ns: int = 0
    last_published: dict[int, int] = field(default_factory=dict)
    device_published: dict[int, int] = field(default_factory=dict)
    deleted_hw: int = 0
    """Rows up to here are deleted (``acked_hw`` runs ahead until the next ``DeleteAcked``)."""
    last_delete_ns: int | None = None
    sent_ceiling: int = 0
    """Highest sequence number this sensor may have sent: what its outbox held at start (an
    earlier process may have sent it) and every row handed out to publish since. Central
    acknowledging more than this acknowledges events this sensor never sent (``unsent``)."""

    def __post_init__(self) -> None:
        self.sent_hw = max(self.sent_hw, self.acked_hw)
        self.deleted_hw = max(self.deleted_hw, self.acked_hw)
        self.sent_ceiling = max(self.sent_ceiling, self.last_seq, self.acked_hw)
        self.ack_timeout_ns = self.limits.ack_timeout_ns

    def unsent(self, hw: int) -> bool:
        """An ack of ``hw`` covers events this sensor never sent: forged, or central holds
        forged events under this sensor's sequence numbers. Either way it must not delete
        anything; the caller starts a new epoch (``NewEpoch``)."""
        return hw > self.sent_ceiling

    @property
    def inflight(self) -> int:
        return max(0, self.sent_hw - self.acked_hw)

    def connect(self, now: int) -> list[object]:
        self.connected = True
        self.last_progress_ns = now
        self.cursor = 0
        return []

    def disconnect(self) -> None:
        self.connected = False

    def ack(self, hw: int, now: int) -> list[object]:
        """Central committed everything up to ``hw``."""
        if hw <= self.acked_hw:
            return []
        self.acked_hw = hw
        self.sent_hw = max(self.sent_hw, hw)
        self.last_seq = max(self.last_seq, hw)
        self.last_progress_ns = now
        self.ack_timeout_ns = self.limits.ack_timeout_ns
        return self._delete(now)

    def _delete(self, now: int) -> list[object]:
        """``DeleteAcked`` when enough acknowledged rows gathered (see ``StreamLimits``)."""
        if self.acked_hw <= self.deleted_hw:
            return []
        if (
            self.last_delete_ns is None
            or self.acked_hw - self.deleted_hw >= self.limits.delete_rows
            or now - self.last_delete_ns >= self.limits.delete_interval_ns
        ):
            self.deleted_hw, self.last_delete_ns = self.acked_hw, now
            return [DeleteAcked(self.acked_hw)]
        return []

    def central_birth(self, hw: int, now: int) -> list[object]:
        """Central (re)connected or answered our birth: re-send whatever it lacks."""
        if hw > self.last_seq:
            return [NewEpoch()]
        out = self.ack(hw, now)
        self.last_progress_ns = now
        return [*out, *self._rewind()]

    def _rewind(self) -> list[object]:
        self.cursor = 0
        if self.sent_hw <= self.acked_hw:
            return []
        self.sent_hw = self.acked_hw
        return [Rewind(self.acked_hw)]

    def poll(self, now: int) -> list[object]:
        """What to do now: re-send after an ack timeout, or read more rows to publish."""
        if not self.connected:
            return []
        out: list[object] = self._delete(now)
        if self.inflight and now - self.last_progress_ns >= self.ack_timeout_ns:
            out.extend(self._rewind())
            self.last_progress_ns = now
            self.ack_timeout_ns = min(self.ack_timeout_ns * 2, self.limits.max_ack_timeout_ns)
        room = self.limits.max_inflight - self.inflight
        if room > 0:
            out.append(ReadOutbox(self.cursor, min(self.limits.batch_rows, room)))
        return out

    def rows_read(self, rows: list[OutboxRow], limit: int, now: int) -> list[object]:
        """Decide which of the rows just read to publish now; the rest wait their turn."""
        horizon = now - self.limits.coalesce_ns
        if len(self.last_published) > 4 * self.limits.batch_rows:
            self.last_published = {a: t for a, t in self.last_published.items() if t > horizon}
        device_horizon = now - self.limits.device_coalesce_ns
        if len(self.device_published) > 4 * self.limits.batch_rows:
            self.device_published = {
                d: t for d, t in self.device_published.items() if t > device_horizon
            }
        self.cursor = rows[-1].seq if len(rows) >= limit else 0
        ready = []
        for row in rows:
            self.last_seq = max(self.last_seq, row.seq)
            if row.kind == "alert" and row.alert_id is not None:
                if self.last_published.get(row.alert_id, horizon) > horizon:
                    continue
                self.last_published[row.alert_id] = now
            elif row.kind == "device" and row.device_id is not None:
                if self.device_published.get(row.device_id, device_horizon) > device_horizon:
                    continue
                self.device_published[row.device_id] = now
            ready.append(row)
        if not ready:
            return []
        self.sent_ceiling = max(self.sent_ceiling, ready[-1].seq)
        return [Publish(tuple(ready))]

    def published(self, rows: tuple[OutboxRow, ...], now: int) -> None:
        if rows:
            if self.inflight == 0:
                self.last_progress_ns = now
            self.sent_hw = max(self.sent_hw, rows[-1].seq)


# -- central ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CentralStream:
    """What central has committed of one sensor's stream (immutable: the caller persists
    ``hw`` in the same transaction as the events, then keeps the new value)."""

    epoch: str | None = None
    hw: int = 0
    above: frozenset[int] = frozenset()
    gap_since_ns: int | None = None
    last_resync_ns: int | None = None
    resyncs: int = 0
    """Resync requests sent for the open gap: from the third on, each waits twice as long
    (up to 64 gap timeouts), so a gap no sensor fills is not asked about every few seconds
    for ever."""

    def is_new(self, seq: int) -> bool:
        return seq > self.hw and seq not in self.above

    def committed(self, seqs: list[int], now: int) -> CentralStream:
        """The state after committing ``seqs`` (duplicates are ignored)."""
        fresh = [s for s in seqs if self.is_new(s)]
        if not fresh:
            return self
        return self._compacted(self.hw, {*self.above, *fresh}, now)

    def _compacted(self, hw: int, above: set[int], now: int) -> CentralStream:
        above = {s for s in above if s > hw}
        while hw + 1 in above:
            hw += 1
            above.discard(hw)
        gap_since = None if not above else (self.gap_since_ns or now)
        resyncs = self.resyncs if above else 0
        return replace(self, hw=hw, above=frozenset(above), gap_since_ns=gap_since, resyncs=resyncs)

    def birth(self, epoch: str, acked_hw: int, now: int) -> tuple[CentralStream, list[object]]:
        """A sensor announced itself. A new epoch starts a new stream; a sensor that deleted
        rows central never committed (central's database was restored) needs a snapshot."""
        state = self
        if epoch != self.epoch:
            state = CentralStream(epoch=epoch)
        if acked_hw > state.hw:
            state = replace(state, gap_since_ns=None)._compacted(acked_hw, set(state.above), now)
            return state, [RequestResync(None)]
        return state, []

    def check_gap(self, now: int, limits: StreamLimits) -> tuple[CentralStream, list[object]]:
        """Ask for a resync when a gap has stayed open too long (once per gap timeout, backing
        off from the third request)."""
        if self.gap_since_ns is None or now - self.gap_since_ns < limits.gap_timeout_ns:
            return self, []
        wait = limits.gap_timeout_ns << min(max(self.resyncs - 1, 0), 6)
        if self.last_resync_ns is not None and now - self.last_resync_ns < wait:
            return self, []
        state = replace(self, last_resync_ns=now, resyncs=self.resyncs + 1)
        return state, [RequestResync(self.hw + 1)]
