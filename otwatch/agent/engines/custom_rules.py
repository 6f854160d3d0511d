"""User-defined rules (spec section 5): raise *Unauthorized Operation was detected by a User
Defined Rule*, with the rule's own title in ``rule_name`` and its severity in
``rule_severity``, or record an event when the rule's action is ``event``.

Rules come from ``ctx.settings["custom_rules"]["rules"]`` (raw dicts, as the store keeps
them); the pipeline fills that from the store and calls :meth:`load` again when the rules
change. Without enabled rules the engine subscribes to no packets at all. Events wait in
``pending_events`` (bounded) for the pipeline to write them.
"""

from __future__ import annotations

import logging
from typing import Any

from otwatch.agent.decode.flows import Flow
from otwatch.agent.decode.headers import PacketRecord
from otwatch.agent.engines.base import Engine, EngineContext
from otwatch.agent.engines.detection import Detection
from otwatch.agent.rules.custom import RuleError, validate_rule
from otwatch.agent.rules.matching import CompiledRule, packet_contexts, render_message

__all__ = ["USER_DEFINED_RULE", "CustomRuleEngine", "RuleEvent"]

log = logging.getLogger(__name__)

USER_DEFINED_RULE = "unauthorized_operation_was_detected_by_a_user_defined_rule"
MAX_PENDING_EVENTS = 10_000


class RuleEvent(dict):
    """An ``event`` action's record: rule id and name, time, severity, message, fields."""


class CustomRuleEngine(Engine):
    name = "custom_rules"
    type_ids = frozenset({USER_DEFINED_RULE})
    apps: frozenset[str] | None = None

    def __init__(self, ctx: EngineContext) -> None:
        super().__init__(ctx)
        self.rules: tuple[CompiledRule, ...] = ()
        self.pending_events: list[RuleEvent] = []
        self.dropped_events = 0
        self.load(ctx.settings.get(self.name, {}).get("rules", ()))

    def load(self, raw_rules: Any) -> None:
        """Compile enabled rules; a stored rule that no longer validates is skipped and logged."""
        compiled = []
        for raw in raw_rules or ():
            try:
                spec = validate_rule(raw)
            except RuleError as exc:
                log.warning("custom rule %r skipped: %s", raw.get("name"), exc)
                continue
            if spec.enabled:
                compiled.append(CompiledRule(spec))
        self.rules = tuple(compiled)
        # no rules: subscribe to nothing (the pipeline re-reads ``apps`` after a reload)
        self.apps = None if compiled else frozenset()

    def observe(self, rec: PacketRecord, flow: Flow | None) -> list[Detection] | None:
        if not self.rules:
            return None
        out = None
        for rule in self.rules:
            if not rule.protocol_matches(rec, flow) or not rule.in_time(rec.ts_ns):
                continue
            contexts = packet_contexts(rec, flow, rule.groups)
            values = rule.match(contexts) if contexts else None
            if values is None:
                continue
            spec = rule.spec
            fields = {
                "source_address": values.get("src_ip"),
                "destination_address": values.get("dst_ip"),
                "source_mac": values.get("src_mac"),
                "destination_mac": values.get("dst_mac"),
                "protocol": values.get("protocol") or values.get("transport"),
                "rule_name": spec.name,
                "rule_id": spec.id,
                "rule_severity": spec.severity,
            }
            message = render_message(spec.message, {**values, **fields})
            if spec.action == "event":
                self._event(rec.ts_ns, spec, message, fields)
                continue
            out = out or []
            out.append(self.detect(USER_DEFINED_RULE, rec.ts_ns, message, **fields))
        return out

    def _event(self, ts_ns: int, spec: Any, message: str, fields: dict[str, Any]) -> None:
        if len(self.pending_events) >= MAX_PENDING_EVENTS:
            self.dropped_events += 1
            return
        self.pending_events.append(
            RuleEvent(
                rule_id=spec.id,
                rule_name=spec.name,
                ts_ns=ts_ns,
                severity=spec.severity,
                message=message,
                source_address=fields["source_address"],
                destination_address=fields["destination_address"],
                protocol=fields["protocol"],
            )
        )

    def take_events(self) -> list[RuleEvent]:
        events, self.pending_events = self.pending_events, []
        return events
