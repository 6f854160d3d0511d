// The Alerts grid's columns: the spec's defaults, the ones Edit columns can add, how each cell
// reads, and the API sort key of each (the backend sorts on every column).
import { h, text } from "./dom.js";
import { label, shortTime as time } from "./format.js";

function device(row, side) {
  return row[`${side}_device`] || row[`${side}_name`] || row[`${side}_address`] || row[`${side}_mac`] || "";
}

function tactics(row) {
  return (row.tactics || []).map((t) => (typeof t === "string" ? t : t.name || t.id));
}

export function severityBadge(value) {
  return h("span", { class: `sev sev-${String(value).toLowerCase()}` }, label("severity", value));
}

export function statusBadge(value) {
  return h("span", { class: `status status-${String(value).toLowerCase()}` }, label("status", value));
}

export const COLUMNS = {
  severity: { label: "Severity", sort: "severity", cell: (r) => severityBadge(r.severity) },
  name: { label: "Name", sort: "name", cell: (r) => r.name },
  site: { label: "Site", sort: "site", cell: (r) => r.site },
  engine: { label: "Engine", sort: "engine", cell: (r) => label("engine", r.engine) },
  last_detection: { label: "Last detection", sort: "last_detection", cell: (r) => time(r.last_detection) },
  status: { label: "Status", sort: "status", cell: (r) => statusBadge(r.status) },
  source_device: { label: "Source device", sort: "source_address", cell: (r) => device(r, "source") },
  tactics: { label: "Tactics", sort: "tactics", cell: (r) => tactics(r).join(", ") },
  source_address: { label: "Source device address", sort: "source_address", cell: (r) => r.source_address },
  destination_address: {
    label: "Destination device address",
    sort: "destination_address",
    cell: (r) => r.destination_address,
  },
  destination_device: {
    label: "Destination device",
    sort: "destination_address",
    cell: (r) => device(r, "destination"),
  },
  first_detection: { label: "First detection", sort: "first_detection", cell: (r) => time(r.first_detection) },
  id: { label: "ID", sort: "id", cell: (r) => r.id },
  last_activity: { label: "Last activity", sort: "last_activity", cell: (r) => time(r.last_activity) },
  protocol: { label: "Protocol", sort: "protocol", cell: (r) => r.protocol },
  sensor: { label: "Sensor", sort: "sensor", cell: (r) => (r.sensors || [r.sensor]).join(", ") },
  zone: { label: "Zone", sort: "zone", cell: (r) => r.zone },
  category: { label: "Category", sort: "category", cell: (r) => r.category },
  type: { label: "Type", sort: "type", cell: (r) => r.type },
};

export const DEFAULT_COLUMNS = [
  "severity",
  "name",
  "site",
  "engine",
  "last_detection",
  "status",
  "source_device",
  "tactics",
];

/** Known column ids, in order, without repeats; the defaults when nothing usable is left. */
export function cleanColumns(value) {
  if (!Array.isArray(value)) return [...DEFAULT_COLUMNS];
  const out = [...new Set(value.filter((c) => typeof c === "string" && c in COLUMNS))];
  return out.length ? out : [...DEFAULT_COLUMNS];
}

/** A cell's content (a node, or the value's text) for `column` of `row`; `defs` are the
 * grid's column definitions (the Alerts grid's by default). */
export function cellContent(column, row, defs = COLUMNS) {
  const value = defs[column].cell(row);
  return value instanceof Node ? value : text(value);
}
