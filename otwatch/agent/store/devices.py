"""The SQL of the device inventory: merge the packet path's batches, overrides, lookups.

:func:`save_devices` merges the changes :meth:`DeviceTable.take_dirty` hands over into the
stored rows (counters added, first/last seen widened, MAC history, names, facts, services,
peers and evidence unioned within their bounds) and derives the listed columns (name,
vendor, model, firmware, type, Purdue level, protocols, learned) again. Overrides made by a
user are kept in their own columns and win over every guess.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Iterable, Mapping
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy import insert as plain_insert
from sqlalchemy.dialects.sqlite import insert
from sqlalchemy.orm import Session

from otwatch.agent.inventory.roles import guess_role
from otwatch.agent.inventory.table import MAX_PEERS
from otwatch.agent.inventory.vendors import oui_vendor
from otwatch.agent.store.models import OutboxEvent
from otwatch.agent.store.models_devices import DeviceRow

__all__ = [
    "FACT_PRIORITY",
    "derive",
    "find_device",
    "forget_device",
    "queue_device_events",
    "save_devices",
    "set_overrides",
]

FACT_PRIORITY = ("modbus-fc43", "enip-listidentity", "cip-identity", "s7-szl", "bacnet-rp",
                 "bacnet-iam", "profinet-dcp", "dhcp", "dnp3")  # fmt: skip
"""Which source's value a listed column shows when several sources say something."""
_MAX_SERVICES, _MAX_NAMES, _CHUNK = 64, 16, 500
_EMPTY: dict[str, Any] = {
    "packets_in": 0, "packets_out": 0, "bytes_in": 0, "bytes_out": 0, "macs": {}, "names": {},
    "facts": [], "services": [], "peers": [], "evidence": {}, "device_type": "Unknown",
    "type_reason": "", "protocols": [], "learned": False, "updated_ns": 0,
}  # fmt: skip


def _facts_by_key(facts: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(f["field"], f["source"]): dict(f) for f in facts}


def _merge(row: DeviceRow, change: Mapping[str, Any]) -> None:
    row.first_seen_ns = min(row.first_seen_ns, change["first_ns"])
    row.last_seen_ns = max(row.last_seen_ns, change["last_ns"])
    row.packets_in += change["packets_in"]
    row.packets_out += change["packets_out"]
    row.bytes_in += change["bytes_in"]
    row.bytes_out += change["bytes_out"]
    if change["mac"] is not None:
        row.mac = change["mac"]
    if change["vlan"] is not None:
        row.vlan = change["vlan"]
    macs = dict(row.macs or {})
    for mac, (first, last) in change["macs"].items():
        old = macs.get(mac)
        macs[mac] = [min(first, old[0]), max(last, old[1])] if old else [first, last]
    row.macs = macs
    names = dict(row.names or {})
    for name, (source, ts) in change["names"].items():
        if name not in names and len(names) < _MAX_NAMES:
            names[name] = {"source": source, "ts_ns": ts}
    row.names = names
    facts = _facts_by_key(row.facts or [])
    for (field, source), (value, ts) in change["facts"].items():
        facts[(field, source)] = {"field": field, "value": value, "source": source, "ts_ns": ts}
    row.facts = sorted(facts.values(), key=lambda f: (f["field"], f["source"]))
    row.services = sorted(set(row.services or ()) | set(change["services"]))[:_MAX_SERVICES]
    row.peers = sorted(set(row.peers or ()) | set(change["peers"]))[:MAX_PEERS]
    evidence = dict(row.evidence or {})
    for tag, ts in change["evidence"].items():
        evidence.setdefault(tag, ts)
    row.evidence = evidence


def _best(facts: list[dict[str, Any]], *fields: str) -> str | None:
    for field in fields:
        found = [f for f in facts if f["field"] == field]
        if found:
            found.sort(key=lambda f: FACT_PRIORITY.index(f["source"])
                       if f["source"] in FACT_PRIORITY else len(FACT_PRIORITY))  # fmt: skip
            return str(found[0]["value"])
    return None


def derive(row: DeviceRow, shared_mac: bool = False) -> None:
    """Fill the listed columns from the merged facts and the overrides."""
    facts = list(row.facts or [])
    record = {"services": row.services, "evidence": row.evidence, "facts": facts}
    guessed_type, guessed_level, reason = guess_role(record, shared_mac)
    row.device_type = row.type_override or guessed_type
    row.purdue_level = row.purdue_override if row.purdue_override is not None else guessed_level
    row.type_reason = "set by a user" if row.type_override else reason
    names = sorted(row.names or {})
    row.name = row.name_override or _best(facts, "name") or (names[0] if names else None)
    row.vendor = _best(facts, "vendor") or (oui_vendor(row.mac) if row.mac else None)
    row.model = _best(facts, "model", "order_number", "product_name", "product_code")
    row.firmware = _best(facts, "firmware")
    apps = set()
    for entry in row.services or ():
        kind, _, rest = entry.partition(":")
        apps.add(rest.rsplit("/", 1)[-1] if kind == "server" else rest)
    apps.discard("-")
    row.protocols = sorted(apps)


def save_devices(
    session: Session, changes: list[dict[str, Any]], learned: Collection[str], now_ns: int
) -> int:
    """Merge a batch of device changes into the table; returns how many rows it touched."""
    for start in range(0, len(changes), _CHUNK):
        chunk = changes[start : start + _CHUNK]
        keys = [c["key"] for c in chunk]
        # Rows for new devices first, as the transaction's write: it takes SQLite's write
        # lock before anything is read, so two worker processes that met the same device
        # neither collide on the key nor overwrite each other's counters.
        skeletons = [
            {"key": c["key"], "ip": c["ip"], "first_seen_ns": c["first_ns"],
             "last_seen_ns": c["last_ns"], **_EMPTY}
            for c in chunk
        ]  # fmt: skip
        session.execute(insert(DeviceRow).on_conflict_do_nothing(index_elements=["key"]),
                        skeletons)  # fmt: skip
        rows = {r.key: r for r in session.scalars(select(DeviceRow).where(DeviceRow.key.in_(keys)))}
        for change in chunk:
            row = rows[change["key"]]
            _merge(row, change)
            row.learned = row.ip in learned if row.ip else False
            row.updated_ns = now_ns
        session.flush()
        shared = _shared_macs(session, {r.mac for r in rows.values() if r.mac})
        for row in rows.values():
            derive(row, row.mac in shared)
        queue_device_events(session, [r.id for r in rows.values()], now_ns)
    return len(changes)


def queue_device_events(session: Session, device_ids: Iterable[int], now_ns: int) -> int:
    """Queue a ``device`` outbox row per device unless one is already waiting unpublished
    (the sync daemon reads the device when it publishes: changes coalesce, like alert
    snapshots). Returns how many rows were added."""
    ids = list(dict.fromkeys(device_ids))
    waiting: set[int | None] = set()
    for start in range(0, len(ids), _CHUNK):
        waiting.update(
            session.scalars(
                select(OutboxEvent.device_id).where(
                    OutboxEvent.device_id.in_(ids[start : start + _CHUNK]),
                    OutboxEvent.published_ns.is_(None),
                )
            )
        )
    rows = [
        {"event_id": str(uuid.uuid4()), "kind": "device", "alert_id": None,
         "device_id": device_id, "created_ns": now_ns, "payload": None}
        for device_id in ids
        if device_id not in waiting
    ]  # fmt: skip
    if rows:
        session.execute(plain_insert(OutboxEvent), rows)
    return len(rows)


def _shared_macs(session: Session, macs: set[str]) -> set[str]:
    """MACs that several IP devices use (a router's, seen for the hosts behind it)."""
    if not macs:
        return set()
    stmt = (
        select(DeviceRow.mac)
        .where(DeviceRow.mac.in_(macs), DeviceRow.ip.is_not(None))
        .group_by(DeviceRow.mac)
        .having(func.count() >= 4)
    )
    return set(session.scalars(stmt))


def find_device(session: Session, ref: str) -> DeviceRow | None:
    """A device by id, IP, MAC (the most recently seen with it) or key."""
    if ref.isdigit():
        return session.get(DeviceRow, int(ref))
    stmt = (
        select(DeviceRow)
        .where(or_(DeviceRow.key == ref, DeviceRow.ip == ref, DeviceRow.mac == ref.lower()))
        .order_by(DeviceRow.last_seen_ns.desc())
        .limit(1)
    )
    return session.scalars(stmt).first()


_UNSET: Any = object()


def set_overrides(
    session: Session, row: DeviceRow, *, name: str | None = _UNSET,
    device_type: str | None = _UNSET, purdue: int | None = _UNSET, now_ns: int,
) -> dict[str, Any]:  # fmt: skip
    """Set (or clear with None) the user's name, type and Purdue level; returns the change
    (queued for central like any change of the device)."""
    change: dict[str, Any] = {}
    if name is not _UNSET:
        row.name_override = change["name"] = name or None
    if device_type is not _UNSET:
        row.type_override = change["type"] = device_type or None
    if purdue is not _UNSET:
        row.purdue_override = change["purdue_level"] = purdue
    row.updated_ns = now_ns
    mac = row.mac
    derive(row, bool(mac and mac in _shared_macs(session, {mac})))
    queue_device_events(session, [row.id], now_ns)  # central learns the override
    return change


def forget_device(session: Session, row: DeviceRow, now_ns: int = 0) -> None:
    """Remove the device; central forgets it too (its outbox row finds no device)."""
    queue_device_events(session, [row.id], now_ns)
    session.delete(row)
