"""One list of alert columns: both stores' ``alerts`` tables and the sync ``AlertSnapshot``."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import String

from otwatch.agent.store.models import Alert as SensorAlert
from otwatch.alerts.columns import ALERT_COLUMNS
from otwatch.central.store.models import Alert as CentralAlert
from otwatch.sync.protocol.messages import AlertSnapshot


def _shape(table: Any, name: str) -> tuple[str, bool, Any]:
    column = table.c[name]
    default = column.default.arg if column.default is not None else None
    return repr(column.type), column.nullable, default


def test_the_sensor_table_is_its_key_plus_the_shared_columns():
    assert [c.name for c in SensorAlert.__table__.c] == ["id", *ALERT_COLUMNS]
    central = {c.name for c in CentralAlert.__table__.c}
    assert central - set(ALERT_COLUMNS) == {
        "id", "alert_id", "status_origin", "severity_origin", "received_ns", "severity_rank"
    }  # fmt: skip


@pytest.mark.parametrize("name", ALERT_COLUMNS)
def test_both_stores_map_each_column_alike(name):
    sensor, central = SensorAlert.__table__, CentralAlert.__table__
    assert _shape(sensor, name) == _shape(central, name)


def test_the_snapshot_carries_the_columns_but_sensor_plus_the_sensor_alert_id():
    assert set(AlertSnapshot.model_fields) == (set(ALERT_COLUMNS) - {"sensor"}) | {"id"}


def _max_length(prop: dict[str, Any]) -> int | None:
    for option in prop.get("anyOf", [prop]):
        if option.get("type") == "string" and "maxLength" in option:
            return option["maxLength"]
    return None


@pytest.mark.parametrize(
    "name", [n for n in ALERT_COLUMNS if isinstance(SensorAlert.__table__.c[n].type, String)]
)
def test_snapshot_strings_fit_the_columns(name):
    """A snapshot central accepts fits its column: the limits are the column lengths."""
    length = SensorAlert.__table__.c[name].type.length
    prop = AlertSnapshot.model_json_schema()["properties"].get(name)
    if prop is None:  # ``sensor``: named by the envelope, checked there
        return
    limit = _max_length(prop)
    if "enum" in str(prop):  # status, close_reason, severity: a closed set of short words
        assert length and all(len(v) <= length for v in _enum_values(prop))
    elif length is None:  # Text
        assert limit is not None
    else:
        assert limit == length


def _enum_values(prop: dict[str, Any]) -> list[str]:
    values: list[str] = []
    for option in prop.get("anyOf", [prop]):
        values += option.get("enum", [])
    return values
