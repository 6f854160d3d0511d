// How values read on screen. Every time is shown in UTC, with the zone said.

const LABELS = {
  severity: { high: "High", medium: "Medium", low: "Low" },
  status: { new: "New", active: "Active", closed: "Closed" },
  engine: {
    policy_violation: "Policy violation",
    protocol_violation: "Protocol violation",
    malware: "Malware",
    anomaly: "Anomaly",
    operational: "Operational",
  },
};

export function label(kind, value) {
  if (value === undefined || value === null || value === "") return "—";
  const known = LABELS[kind] && LABELS[kind][String(value).toLowerCase()];
  return known || String(value);
}

/** "2027-01-01 00:05:12 UTC" from an ISO 8601 UTC time. */
export function time(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  return d.toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z").replace("Z", " UTC");
}

/** "2027-01-01 00:05:12": for grid cells, where the zone is said once (all times UTC). */
export function shortTime(iso) {
  return time(iso).replace(/ UTC$/, "");
}

export function bytes(n) {
  if (n === undefined || n === null) return "—";
  const units = ["B", "KiB", "MiB", "GiB"];
  let value = Number(n);
  let i = 0;
  while (value >= 1024 && i < units.length - 1) {
    value /= 1024;
    i += 1;
  }
  return `${i ? value.toFixed(1) : value} ${units[i]}`;
}

export function percent(fraction) {
  if (fraction === undefined || fraction === null) return "—";
  return `${Math.round(Number(fraction) * 100)}%`;
}

export function count(n) {
  return Number(n).toLocaleString("en-US");
}

/** "Alert 12-s1 set to active: applied" → words for the result table. */
export const OUTCOMES = {
  applied: "Applied",
  unchanged: "Unchanged",
  refused: "Refused",
  not_found: "Not found",
};
