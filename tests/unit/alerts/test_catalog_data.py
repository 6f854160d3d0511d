"""The packaged alert catalog matches the published Defender for IoT alert reference.

The expected numbers are the counts published in section 3 of
``defender-alerts-spec.md`` (and its "Learnable" list in section 2). Counting the table rows
gives exactly the same numbers, so a typo in ``alert_types.toml`` (a wrong severity, a
missing ``*``, a dropped row) fails here.
"""

from __future__ import annotations

import re
from collections import Counter

import pytest

from otwatch.alerts.catalog import CATEGORIES, STANDARD_KEY_FIELDS, Engine, Severity, load_catalog

ID_PATTERN = re.compile(r"^[a-z0-9_]+$")
PARAM_PATTERN = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")


@pytest.fixture(scope="module")
def catalog():
    return load_catalog()


def test_total_count(catalog):
    assert len(catalog) == 202


def test_counts_per_engine(catalog):
    counts = Counter(t.engine for t in catalog.values())
    assert counts == {
        Engine.POLICY_VIOLATION: 89,
        Engine.OPERATIONAL: 38,
        Engine.MALWARE: 27,
        Engine.PROTOCOL_VIOLATION: 25,
        Engine.ANOMALY: 23,
    }


def test_counts_per_severity(catalog):
    counts = Counter(t.severity for t in catalog.values())
    assert counts == {Severity.HIGH: 42, Severity.MEDIUM: 123, Severity.LOW: 37}


def test_off_by_default(catalog):
    off = Counter(t.engine for t in catalog.values() if not t.enabled_by_default)
    assert sum(off.values()) == 38
    # Per-table headers in the spec: policy 7, anomaly 14, protocol 7, malware 3, operational 7.
    assert off == {
        Engine.POLICY_VIOLATION: 7,
        Engine.ANOMALY: 14,
        Engine.PROTOCOL_VIOLATION: 7,
        Engine.MALWARE: 3,
        Engine.OPERATIONAL: 7,
    }


def test_learnable_counts(catalog):
    learnable = Counter(t.engine for t in catalog.values() if t.learnable)
    assert sum(learnable.values()) == 95
    assert learnable == {
        Engine.POLICY_VIOLATION: 80,
        Engine.ANOMALY: 10,
        Engine.MALWARE: 3,
        Engine.PROTOCOL_VIOLATION: 1,
        Engine.OPERATIONAL: 1,
    }


def test_aggregatable_only_policy(catalog):
    aggregatable = [t for t in catalog.values() if t.aggregatable]
    assert len(aggregatable) == 62
    assert {t.engine for t in aggregatable} == {Engine.POLICY_VIOLATION}


def test_mutable_rule(catalog):
    # Learnable policy types are learned, not muted; everything else offers Mute.
    for t in catalog.values():
        expected = not (t.engine is Engine.POLICY_VIOLATION and t.learnable)
        assert t.mutable is expected, t.id


def test_ids_and_names_unique(catalog):
    ids = [t.id for t in catalog.values()]
    names = [t.name for t in catalog.values()]
    assert len(set(ids)) == len(ids) == 202
    assert len(set(names)) == len(names) == 202
    for type_id in ids:
        assert ID_PATTERN.match(type_id), type_id
    for name in names:
        assert not name.endswith("*"), name
        assert not name.startswith(("NAD ", "SoMA ")), name


def test_no_custom_engine_in_builtins(catalog):
    assert all(t.engine is not Engine.CUSTOM for t in catalog.values())


def test_categories_used(catalog):
    used = {t.category for t in catalog.values()}
    # The spec lists 24 categories; "Operation Failures" has no listed type.
    assert used == CATEGORIES - {"Operation Failures"}


def test_remediation_and_keys(catalog):
    for t in catalog.values():
        assert 2 <= len(t.remediation) <= 4, t.id
        assert all(step.strip() for step in t.remediation), t.id
        assert t.tactics, t.id
        assert len(set(t.tactics)) == len(t.tactics), t.id
        assert t.trigger.strip(), t.id
        assert len(set(t.dedup_key)) == len(t.dedup_key), t.id
        for field in t.dedup_key:
            assert field in STANDARD_KEY_FIELDS or PARAM_PATTERN.match(field), (t.id, field)


def test_aggregatable_keys_do_not_split_on_parameters(catalog):
    # Aggregation collects different violation parameters into one alert, so the key of an
    # aggregatable type names only the devices involved.
    for t in catalog.values():
        if t.aggregatable:
            assert set(t.dedup_key) <= STANDARD_KEY_FIELDS, t.id


def test_file_order_follows_spec_tables(catalog):
    order = [Engine.POLICY_VIOLATION, Engine.ANOMALY, Engine.PROTOCOL_VIOLATION]
    order += [Engine.MALWARE, Engine.OPERATIONAL]
    engines = [t.engine for t in catalog.values()]
    blocks = [e for i, e in enumerate(engines) if i == 0 or engines[i - 1] != e]
    assert blocks == order


def test_port_scan_detected(catalog):
    t = catalog.by_name("Port Scan Detected")
    assert t.id == "port_scan_detected"
    assert t.engine is Engine.ANOMALY
    assert t.severity is Severity.HIGH
    assert t.category == "Scan"
    assert t.learnable
    assert t.tactics == ("Discovery",)
    assert t.enabled_by_default
    assert not t.aggregatable
    assert "25 scans/2 min" in t.trigger


def test_modbus_exception(catalog):
    t = catalog.by_name("Modbus Exception")
    assert t.engine is Engine.PROTOCOL_VIOLATION
    assert t.severity is Severity.MEDIUM
    assert t.category == "Illegal commands"
    assert not t.learnable
    assert t.mutable
    assert t.tactics == ("Inhibit Response Function",)


def test_unpermitted_modbus_function_code(catalog):
    t = catalog["unpermitted_usage_of_modbus_function_code"]
    assert t.name == "Unpermitted Usage of Modbus Function Code"
    assert t.engine is Engine.POLICY_VIOLATION
    assert t.category == "Unauthorized Communication Behavior"
    assert t.learnable and t.aggregatable and not t.mutable
    assert t.tactics == ("Impair Process Control",)
    # Spec §2: aggregation keys on source + destination IP and mixes read and write codes.
    assert t.dedup_key == ("source_address", "destination_address")


def test_new_asset_detected(catalog):
    t = catalog["new_asset_detected"]
    assert t.engine is Engine.POLICY_VIOLATION
    assert t.category == "Discovery"
    assert t.severity is Severity.MEDIUM
    assert t.learnable and not t.mutable and not t.aggregatable
    assert t.dedup_key == ("source_address",)
    assert t.trigger.startswith("NEWDEV")


def test_off_by_default_rows(catalog):
    assert not catalog.by_name("Illegal HTTP Communication").enabled_by_default
    assert not catalog.by_name("Suspicion of Malicious Activity (WannaCry)").enabled_by_default
    assert catalog.by_name("Suspicion of Malicious Activity (WannaCry)").severity is Severity.MEDIUM
    assert not catalog.by_name("Abnormal Traffic Bandwidth").enabled_by_default
    assert catalog.by_name("Unauthorized PLC Programming").enabled_by_default


def test_not_learnable_policy_rows(catalog):
    not_learnable = {
        t.name for t in catalog.values() if t.engine is Engine.POLICY_VIOLATION and not t.learnable
    }
    assert not_learnable == {
        "Database Login Failed",
        "Field Device Discovered Unexpectedly",
        "Firmware Change Detected",
        "FTP Login Failed",
        "Sampled Values Message Type Settings",
        "Unauthorized ABB Totalflow File Operation",
        "Unauthorized ABB Totalflow Register Operation",
        "Unauthorized Name Query",
        "Unauthorized Operation was detected by a User Defined Rule",
    }


def test_other_spot_checks(catalog):
    rule = catalog["unauthorized_operation_was_detected_by_a_user_defined_rule"]
    assert rule.category == "Custom Alerts"
    assert "rule_name" in rule.dedup_key

    programming = catalog.by_name("Unauthorized PLC Programming")
    assert programming.severity is Severity.HIGH
    assert programming.category == "Programming"
    assert programming.tactics == ("Impair Process Control", "Persistence", "Lateral Movement")

    windows = catalog.by_name("Unauthorized Windows Process")
    assert windows.tactics == ("Execution", "Privilege Escalation", "Command and Control")

    dns = catalog.by_name("Malicious Domain Name Request")
    assert dns.engine is Engine.MALWARE and dns.learnable and dns.mutable
    assert "domain" in dns.dedup_key
    assert "url_path" in catalog.by_name("Malicious URL Path").dedup_key

    lightsout = catalog.by_name("Suspicion of Malicious Activity (LightsOut)")
    assert lightsout.tactics == ("Evasion",)

    for name in ("No Traffic Detected on Sensor Interface", "Traffic Detected on Sensor Interface"):
        sensor = catalog.by_name(name)
        assert sensor.category == "Sensor traffic"
        assert sensor.dedup_key == ("interface",)
    assert catalog.by_name("No Traffic Detected on Sensor Interface").severity is Severity.HIGH

    backup = catalog.by_name("Expected Backup Operation Did Not Occur")
    assert backup.engine is Engine.OPERATIONAL and backup.learnable

    fw_update = catalog.by_name("Firmware Update")
    assert fw_update.engine is Engine.PROTOCOL_VIOLATION and fw_update.learnable
