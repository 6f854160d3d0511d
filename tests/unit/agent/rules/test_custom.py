"""Custom rule validation: every bad field is named."""

from __future__ import annotations

import pytest

from otwatch.agent.rules.custom import RuleError, parse_condition, validate_rule

GOOD = {"name": "r", "conditions": ["dst_port == 502"]}


@pytest.mark.parametrize(
    ("change", "field", "text"),
    [
        ({"name": ""}, "name", "needs a name"),
        ({"name": 'a"b'}, "name", "double quote"),
        ({"protocol": "gopher"}, "protocol", "unknown protocol"),
        ({"sources": ["999.1.1.1"]}, "source", "not an IP"),
        ({"destinations": ["zz:zz"]}, "destination", "not an IP"),
        ({"conditions": []}, "conditions", "at least one"),
        ({"conditions": ["port == 1"]}, "conditions[1]", "unknown field 'port'"),
        ({"conditions": ["dst_port contains 1"]}, "conditions[1]", "does not apply"),
        ({"conditions": ["dst_port == x"]}, "conditions[1]", "not a number"),
        ({"conditions": ["http.path matches ("]}, "conditions[1]", "bad regular expression"),
        ({"conditions": ["payload contains hex:zz"]}, "conditions[1]", "not valid hex"),
        ({"conditions": ["dst_port =="]}, "conditions", "FIELD OPERATOR VALUE"),
        ({"days": ["funday"]}, "days", "not a day"),
        ({"time_from": "25:00", "time_to": "01:00"}, "time_from", "HH:MM"),
        ({"time_from": "01:00"}, "time_from", "both"),
        ({"action": "page"}, "action", "not one of"),
        ({"severity": "critical"}, "severity", "not one of"),
        ({"message": "{nope} here"}, "message", "unknown template variable: nope"),
    ],
)
def test_bad_fields_are_named(change, field, text):
    with pytest.raises(RuleError, match=text) as caught:
        validate_rule({**GOOD, **change})
    assert caught.value.field == field
    assert str(caught.value).startswith(f"{field}: ")


def test_normalised_rule():
    spec = validate_rule(
        {
            "name": " writes ",
            "protocol": "Modbus",
            "sources": ["192.0.2.7"],
            "conditions": ["modbus.function_code in 5,6", "payload contains 'hex:0a0b'"],
            "days": ["Monday"],
            "message": "{rule_name} by {source_address}",
        }
    )
    assert (spec.name, spec.protocol, spec.sources, spec.days) == (
        "writes",
        "modbus",
        ("192.0.2.7/32",),
        ("mon",),
    )
    assert spec.conditions[0].value == (5, 6) and spec.conditions[1].value == b"\x0a\x0b"
    assert [c.text() for c in spec.conditions] == [
        "modbus.function_code in 5,6",
        "payload contains hex:0a0b",
    ]
    assert validate_rule(spec.as_dict()) == spec  # the stored form validates to the same rule


def test_parse_condition_keeps_spaces_in_values():
    assert parse_condition('http.user_agent == "Mozilla/5.0 (X11)"') == {
        "field": "http.user_agent",
        "op": "==",
        "value": "Mozilla/5.0 (X11)",
    }
