"""Property tests: random interleavings of detections, changes on both sides, disconnects,
broker crashes and redeliveries always end with the same alerts on both sides, nothing lost
and nothing twice.

Real SQLite stores (sensor and central), the real engines, and the in-memory broker of
``tests.syncnet`` (no network). The agent and the sync daemon use separate alert managers on
the same store, as the two processes do.
"""

from __future__ import annotations

import tempfile
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from otwatch.agent.alerts.manager import AlertManager
from otwatch.agent.sensor import SensorIdentity
from otwatch.agent.store.db import open_store
from otwatch.agent.store.models import AuditEvent as SensorAudit
from otwatch.alerts.catalog import load_catalog
from otwatch.alerts.lifecycle import Action
from otwatch.central.commands import CommandRefused
from otwatch.central.ingest import CentralSync
from otwatch.central.store.db import open_central_store
from otwatch.central.store.models import AuditEvent as CentralAudit
from otwatch.central.store.models import Command
from otwatch.sync.protocol.streams import NS, StreamLimits
from otwatch.sync.sensor_sync import SensorSync
from tests.factories import T0, detection
from tests.syncnet import Net, central_alerts, sensor_alerts

CATALOG = load_catalog()
TRAFFIC = [
    ("unpermitted_usage_of_modbus_function_code", {}),  # learnable, not mutable
    ("modbus_exception", {"function_code": 1, "exception_code": 2}),  # mutable, not learnable
]
CHANGE_KINDS = {"status", "severity", "learn", "unlearn", "mute", "unmute", "comment"}
LIMITS = StreamLimits(ack_timeout_ns=3 * NS, gap_timeout_ns=2 * NS, batch_rows=50)

ops = st.one_of(
    st.tuples(st.just("detect"), st.integers(0, 3), st.integers(0, 1)),
    st.tuples(
        st.just("sensor"),
        st.integers(0, 7),
        st.sampled_from(
            [
                (Action.SET_STATUS, "closed"),
                (Action.SET_STATUS, "active"),
                (Action.SET_STATUS, "new"),
                (Action.SET_SEVERITY, "high"),
                (Action.SET_SEVERITY, "low"),
                (Action.LEARN, None),
                (Action.UNLEARN, None),
                (Action.MUTE, None),
                (Action.UNMUTE, None),
                (Action.COMMENT, "seen"),
            ]
        ),
    ),
    st.tuples(
        st.just("central"),
        st.integers(0, 7),
        st.sampled_from(
            [
                ("status", "closed"),
                ("status", "active"),
                ("status", "new"),
                ("severity", "high"),
                ("severity", "medium"),
                ("learn", None),
            ]
        ),
    ),
    st.tuples(
        st.just("net"),
        st.sampled_from(
            [
                "sensor_down",
                "sensor_up",
                "central_down",
                "central_up",
                "crash",
                "dup",
                "dup",
                "group",
            ]
        ),
    ),
    st.tuples(st.just("run"), st.integers(1, 30), st.sampled_from([0.01, 0.3, 1.5])),
)


@contextmanager
def world(central_url: str | None = None):
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(Path(tmp) / "sensor")
        agent = AlertManager(store, CATALOG, sensor_id="s1")
        sensor = SensorSync(store, SensorIdentity("s1"), limits=LIMITS)
        cstore = open_central_store(central_url or f"sqlite:///{tmp}/central.db")
        central = CentralSync(cstore, limits=LIMITS)
        net = Net(sensor, central)
        try:
            yield net, agent
        finally:
            cstore.close()
            store.close()


def play(net: Net, agent: AlertManager, script) -> None:
    ts = T0
    net.connect_central()
    net.connect_sensor()
    for op in script:
        match op:
            case ("detect", host, kind):
                ts += NS
                type_id, fields = TRAFFIC[kind]
                agent.observe(
                    detection(type_id=type_id, src=f"192.0.2.{host + 1}", ts_ns=ts, **fields)
                )
                agent.flush()
            case ("sensor", index, (action, value)):
                ids = sorted(sensor_alerts(net.sensor))
                if ids:
                    agent.apply([ids[index % len(ids)]], action, actor="ana", value=value)
            case ("central", index, (kind, value)):
                ids = sorted(central_alerts(net.central, "s1"))
                if ids:
                    with suppress(CommandRefused):
                        net.issue(
                            "s1", kind, alert_id=ids[index % len(ids)], value=value, actor="c"
                        )
            case ("net", what):
                {
                    "sensor_down": net.disconnect_sensor,
                    "sensor_up": net.connect_sensor,
                    "central_down": net.disconnect_central,
                    "central_up": net.connect_central,
                    "crash": net.broker_crash,
                    "dup": net.duplicate_one,
                    "group": net.deliver_group,
                }[what]()
            case ("run", steps, seconds):
                for _ in range(steps):
                    net.tick(seconds)
                    net.step()
    net.connect_central()
    net.connect_sensor()
    net.settle(max_steps=20_000)


def check(net: Net) -> None:
    sensor, central = sensor_alerts(net.sensor), central_alerts(net.central, "s1")
    assert central == sensor, "alert tables differ after settling"
    with net.sensor.store.session() as s:
        changes = s.scalar(
            select(__import__("sqlalchemy").func.count())
            .select_from(SensorAudit)
            .where(SensorAudit.action.in_(CHANGE_KINDS))
        )
    with net.central.store.session() as s:
        command_ids = set(s.scalars(select(Command.id)))
        received = [
            e
            for e in s.scalars(
                select(CentralAudit.event_id).where(CentralAudit.action.in_(CHANGE_KINDS))
            )
            if e not in command_ids
        ]
        pending = list(s.scalars(select(Command.id).where(Command.status == "pending")))
    assert len(received) == changes, "a change made on the sensor never reached central"
    assert pending == [], "a command was never acknowledged"


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.lists(ops, max_size=40))
def test_random_interleavings_converge_without_loss(script):
    with world() as (net, agent):
        play(net, agent, script)
        check(net)


@pytest.mark.slow
@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(ops, max_size=120))
def test_random_interleavings_converge_without_loss_long(script):
    with world() as (net, agent):
        play(net, agent, script)
        check(net)


def test_concurrent_offline_changes_converge_to_the_later_one():
    """The brief's example: both sides change one alert while the link is down."""
    for central_last in (False, True):
        with world() as (net, agent):
            play(net, agent, [("detect", 0, 0)])
            net.disconnect_sensor()
            first, second = ("sensor", "central") if central_last else ("central", "sensor")
            for side in (first, second):
                net.tick(1)
                if side == "sensor":
                    agent.apply([1], Action.SET_STATUS, actor="ana", value="active")
                else:
                    net.issue("s1", "status", alert_id=1, value="closed", actor="c")
            play(net, agent, [])
            check(net)
            expected = "closed" if central_last else "active"
            assert sensor_alerts(net.sensor)[1][0] == expected


def test_detection_after_central_closed_raises_a_new_alert():
    with world() as (net, agent):
        play(net, agent, [("detect", 0, 0)])
        net.issue("s1", "status", alert_id=1, value="closed", actor="c")
        play(net, agent, [])  # the sensor applies it
        play(net, agent, [("detect", 0, 0)])
        check(net)
        alerts = central_alerts(net.central, "s1")
        assert alerts[1][0] == "closed" and alerts[1][3] == 1  # never reopened or bumped
        assert alerts[2][0] == "new"


@pytest.mark.postgres
def test_random_interleavings_converge_on_postgresql(pg_database):  # noqa: F811
    @settings(max_examples=3, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.lists(ops, max_size=30))
    def run(script):
        with pg_schema(pg_database) as url, world(url) as (net, agent):
            play(net, agent, script)
            check(net)

    run()


from tests.centraldb import pg_database, pg_schema  # noqa: E402, F401
