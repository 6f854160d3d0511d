"""Pipeline hooks for detectors: ticks, capture interface, packet-event subscriptions, and
picking up rule, baseline and learning changes made by other processes at flush."""

from __future__ import annotations

from sqlalchemy import select

from otwatch.agent.alerts.manager import AlertManager
from otwatch.agent.engines.base import EVENT_ARP, EVENT_SYN, EVENT_UDP, Engine
from otwatch.agent.engines.custom_rules import CustomRuleEngine
from otwatch.agent.engines.detection import Repeat
from otwatch.agent.pipeline import Pipeline
from otwatch.agent.store.baseline import BASELINE_VERSION, load_learning_ns, save_learning_ns
from otwatch.agent.store.models import Alert, BaselineFact
from otwatch.agent.store.models_rules import CustomRule, CustomRuleEvent
from otwatch.agent.store.state import bump_version
from otwatch.alerts.catalog import load_catalog
from tests.factories import SEC, T0, A, B, EngineRun, arp_request, modbus_request, syn, tcp, udp


class Recorder(Engine):
    name = "recorder"
    type_ids = frozenset()
    apps = frozenset({EVENT_SYN, EVENT_UDP, EVENT_ARP})

    def __init__(self, ctx):  # type: ignore[no-untyped-def]
        super().__init__(ctx)
        self.seen: list[tuple[str | None, str | None]] = []
        self.ticks: list[int] = []

    def observe(self, rec, flow):  # type: ignore[no-untyped-def]
        self.seen.append((rec.src_ip or rec.arp_sender_ip, self.ctx.interface))

    def tick(self, now_ns):  # type: ignore[no-untyped-def]
        self.ticks.append(now_ns)


def test_events_interface_and_ticks(store):
    run = EngineRun.with_store(store, (Recorder,))
    rec = run.engines[0]
    run.feed(
        [tcp(A, B, 50000, 502), syn(A, B, 502), udp(B, A, 53, 5000), arp_request(B, A)],
        SEC // 2,
        start_ns=T0,
        interface="span0",
    )
    assert rec.seen == [(A, "span0"), (B, "span0"), (B, "span0")]  # the data packet is skipped
    assert rec.ticks == [T0, T0 + SEC]
    run.pipeline.tick(T0 + 10 * SEC)  # wall-clock tick from an idle capture loop
    assert rec.ticks[-1] == T0 + 10 * SEC


def test_learning_changed_by_the_cli_is_adopted(store):
    run = EngineRun.with_store(store, (Recorder,), learning_s=100)
    run.feed([tcp(A, B, 50000, 502)] * 11, SEC, start_ns=T0)
    run.pipeline.flush()
    with store.session() as session:
        assert load_learning_ns(session) == 90 * SEC
        save_learning_ns(session, 0)  # `otwatch baseline stop`
    run.pipeline.flush()
    assert not run.ctx.learning.active
    with store.session() as session:
        save_learning_ns(session, 3600 * SEC)  # `otwatch baseline start --period 1h`
    run.pipeline.flush()
    assert run.ctx.learning.remaining_ns == 3600 * SEC


def test_rules_and_baseline_changes_reach_a_running_pipeline(store):
    run = EngineRun.with_store(store, (CustomRuleEngine,))
    run.feed([modbus_request(A, B, 6)], start_ns=T0)
    assert run.types() == {}
    with store.session() as session:
        for name, action in (("writes", "alert"), ("writes-log", "event")):
            session.add(
                CustomRule(
                    name=name,
                    enabled=True,
                    protocol="modbus",
                    sources=[],
                    destinations=[],
                    conditions=[{"field": "modbus.function_code", "op": "==", "value": 6}],
                    days=[],
                    time_from=None,
                    time_to=None,
                    action=action,
                    severity="low",
                    message="",
                    created_ns=0,
                    updated_ns=0,
                    actor="t",
                )
            )
        session.add(
            BaselineFact(
                kind="device",
                key="192.0.2.99",
                attrs={},
                first_seen_ns=0,
                last_seen_ns=0,
                origin="import",
            )
        )
        bump_version(session)
        bump_version(session, BASELINE_VERSION)
    run.pipeline.flush()
    assert "192.0.2.99" in run.ctx.baseline.kind("device")
    run.feed([modbus_request(A, B, 6)], start_ns=T0 + SEC)
    assert [d.fields["rule_name"] for d in run.detections] == ["writes"]
    run.pipeline.flush()
    with store.session() as session:
        [event] = session.scalars(select(CustomRuleEvent)).all()
    assert (event.rule_name, event.source_address, event.severity) == ("writes-log", A, "low")


STOP = "an_s7_stop_plc_command_was_sent"  # engineering-station evidence for the inventory
FC = "unpermitted_usage_of_modbus_function_code"


class Repeater(Engine):
    """Raises the same two detections on every packet as a ``Repeat``, never built with the
    packet's time: the pipeline and the manager must give them that time."""

    name = "repeater"
    type_ids = frozenset({STOP, FC})
    apps = None

    def __init__(self, ctx):  # type: ignore[no-untyped-def]
        super().__init__(ctx)
        self.template = tuple(
            self.detect(t, 0, f"{A} did {t}", source_address=A, destination_address=B)
            for t in (STOP, FC)
        )

    def observe(self, rec, flow):  # type: ignore[no-untyped-def]
        return Repeat(self.template, rec.ts_ns)


def test_a_repeat_counts_each_detection_at_the_packets_time(store):
    manager = AlertManager(store, load_catalog(), sensor_id="s1")
    pipeline = Pipeline(
        manager,
        learning_period_ns=0,
        ot_subnets=("192.0.2.0/24",),
        settings={"repeater": {"disable": [FC]}},
        engines=(Repeater,),
    )
    pipeline.start_segment()
    frames = [bytes(udp(A, B, 5000, 47808)) for _ in range(3)]
    for i, frame in enumerate(frames):
        pipeline.process(T0 + i * SEC, len(frame), 1, frame)
    pipeline.flush()
    assert (pipeline.stats.detections, pipeline.stats.disabled) == (3, 3)
    with store.session() as session:
        [alert] = session.scalars(select(Alert))
    assert alert.type_id == STOP
    assert (alert.detections, alert.first_detection_ns, alert.last_detection_ns) == (
        3, T0, T0 + 2 * SEC,
    )  # fmt: skip
    assert pipeline.inventory is not None
    device = pipeline.inventory.table.get(A)
    assert device is not None and device.evidence == {"program_transfer": T0}
