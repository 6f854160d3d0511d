"""The sequence/ack state machines as event → command scripts (no broker, no database)."""

from __future__ import annotations

from otwatch.sync.protocol.streams import (
    NS,
    CentralStream,
    DeleteAcked,
    NewEpoch,
    OutboxRow,
    Publish,
    ReadOutbox,
    RequestResync,
    Rewind,
    SensorStream,
    StreamLimits,
)

LIMITS = StreamLimits(batch_rows=3, max_inflight=5, ack_timeout_ns=10 * NS)


def rows(*specs) -> list[OutboxRow]:
    return [OutboxRow(seq, kind, alert) for seq, kind, alert in specs]


def connected(acked: int = 0, last: int = 0) -> SensorStream:
    s = SensorStream(acked_hw=acked, last_seq=last, limits=LIMITS)
    assert s.connect(0) == []
    return s


def test_nothing_happens_while_disconnected():
    s = SensorStream(acked_hw=0, limits=LIMITS)
    assert s.poll(0) == []


def test_reads_after_the_ack_and_publishes_in_order():
    s = connected()
    assert s.poll(0) == [ReadOutbox(0, 3)]
    got = s.rows_read(rows((1, "alert", 1), (2, "status", 1), (3, "alert", 2)), 3, 0)
    assert got == [Publish(tuple(rows((1, "alert", 1), (2, "status", 1), (3, "alert", 2))))]
    assert s.cursor == 3  # a full read continues after the last row
    s.published(got[0].rows, 0)
    assert s.inflight == 3
    assert s.poll(0) == [ReadOutbox(3, 2)]  # the window has room for two more


def test_window_full_reads_nothing():
    s = connected()
    s.published(tuple(rows(*((i, "status", 1) for i in range(1, 6)))), 0)
    assert s.poll(1) == []


def test_an_alert_is_published_at_most_once_per_second():
    s = connected()
    first = s.rows_read(rows((1, "alert", 7)), 3, 0)
    assert first == [Publish(tuple(rows((1, "alert", 7))))]
    # Half a second later the next update of alert 7 waits; other rows go ahead.
    later = s.rows_read(rows((2, "alert", 7), (3, "alert", 8)), 2, NS // 2)
    assert later == [Publish(tuple(rows((3, "alert", 8))))]
    assert s.cursor == 3
    # A short read wraps the cursor so the held-back row is read again.
    assert s.rows_read(rows((2, "alert", 7)), 3, NS // 2 + 1) == []
    assert s.cursor == 0
    assert s.rows_read(rows((2, "alert", 7)), 3, NS + 1) == [Publish(tuple(rows((2, "alert", 7))))]


def test_changes_are_never_held_back():
    s = connected()
    s.rows_read(rows((1, "alert", 7)), 3, 0)
    got = s.rows_read(rows((2, "status", 7), (3, "comment", 7)), 3, 1)
    assert got == [Publish(tuple(rows((2, "status", 7), (3, "comment", 7))))]


def test_ack_deletes_and_frees_the_window():
    s = connected()
    s.published(tuple(rows(*((i, "status", 1) for i in range(1, 6)))), 0)
    assert s.ack(3, 1) == [DeleteAcked(3)]
    assert s.ack(3, 2) == []  # a duplicate ack does nothing
    assert s.ack(2, 2) == []  # nor does an older one
    assert s.inflight == 2
    assert s.poll(2) == [ReadOutbox(0, 3)]


def test_acked_rows_are_deleted_in_batches_or_after_a_second():
    limits = StreamLimits(batch_rows=3, max_inflight=50, delete_rows=10, delete_interval_ns=NS)
    s = SensorStream(acked_hw=0, limits=limits)
    s.connect(0)
    s.published(tuple(rows(*((i, "status", 1) for i in range(1, 41)))), 0)
    assert s.ack(2, 1) == [DeleteAcked(2)]  # the first ack deletes at once
    assert s.ack(5, 2) == []  # a few more rows wait…
    assert s.inflight == 35  # …yet they are acknowledged: the window moves on
    assert s.ack(12, 3) == [DeleteAcked(12)]  # …until 10 have gathered
    assert s.ack(13, 4) == []
    assert DeleteAcked(13) not in s.poll(NS // 2)
    assert s.poll(NS + 4)[0] == DeleteAcked(13)  # or a second has passed
    assert s.poll(3 * NS) == [ReadOutbox(0, 3)]  # nothing left to delete


def test_no_ack_for_the_timeout_rewinds_with_doubling_backoff():
    s = connected()
    s.published(tuple(rows((1, "status", 1), (2, "status", 1))), 0)
    assert Rewind(0) not in s.poll(9 * NS)
    assert s.poll(10 * NS)[0] == Rewind(0)
    s.published(tuple(rows((1, "status", 1), (2, "status", 1))), 10 * NS)
    assert Rewind(0) not in s.poll(29 * NS)  # now 20 s
    assert s.poll(30 * NS)[0] == Rewind(0)
    s.ack(2, 31 * NS)
    s.published(
        tuple(
            rows(
                (3, "status", 1),
            )
        ),
        31 * NS,
    )
    assert s.poll(41 * NS)[0] == Rewind(2)  # back to 10 s after progress


def test_central_birth_resends_what_central_lacks():
    s = connected(acked=2, last=9)
    s.published(tuple(rows(*((i, "status", 1) for i in range(3, 8)))), 0)
    assert s.central_birth(4, 1) == [DeleteAcked(4), Rewind(4)]
    assert s.inflight == 0
    assert s.central_birth(4, 2) == []  # nothing in flight: nothing to rewind


def test_central_ahead_of_everything_we_wrote_means_a_new_epoch():
    s = connected(acked=2, last=9)
    assert s.central_birth(10, 1) == [NewEpoch()]


def test_central_commits_out_of_order_and_acks_the_contiguous_prefix():
    c = CentralStream("e", 0)
    c = c.committed([1, 2, 4, 5], 0)
    assert (c.hw, c.above) == (2, frozenset({4, 5}))
    assert c.is_new(3) and not c.is_new(4) and not c.is_new(2)
    c = c.committed([3], 1)
    assert (c.hw, c.above, c.gap_since_ns) == (5, frozenset(), None)
    assert c.committed([1, 5], 2) is c  # duplicates change nothing


def test_a_gap_that_stays_open_asks_for_a_resync_once_per_timeout():
    limits = StreamLimits(gap_timeout_ns=5 * NS)
    c = CentralStream("e", 0).committed([2], 0)
    assert c.check_gap(4 * NS, limits)[1] == []
    c, cmds = c.check_gap(5 * NS, limits)
    assert cmds == [RequestResync(1)]
    assert c.check_gap(6 * NS, limits)[1] == []
    assert c.check_gap(10 * NS, limits)[1] == [RequestResync(1)]
    assert c.committed([1], 11 * NS).check_gap(20 * NS, limits)[1] == []


def test_birth_of_a_new_epoch_restarts_the_stream():
    c = CentralStream("old", 50)
    c, cmds = c.birth("new", 0, 0)
    assert (c.epoch, c.hw, cmds) == ("new", 0, [])


def test_sensor_that_deleted_more_than_central_has_gets_a_snapshot_request():
    c = CentralStream("e", 3).committed([7, 9], 0)
    c, cmds = c.birth("e", 7, 0)
    assert cmds == [RequestResync(None)]
    assert (c.hw, c.above) == (7, frozenset({9}))
