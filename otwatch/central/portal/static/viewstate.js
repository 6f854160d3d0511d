// The Alerts page's view state and its URL: search, time range, filters, sort, page, size,
// grouping, expanded groups and the selected alert. Relative ranges stay relative in the URL;
// custom ones are UTC ISO times with Z.

export const FILTERS = ["severity", "status", "engine", "category", "sensor", "site", "zone", "protocol", "type", "learnable"];
export const FILTER_LABELS = {
  severity: "Severity",
  status: "Status",
  engine: "Engine",
  category: "Category",
  sensor: "Sensor",
  site: "Site",
  zone: "Zone",
  protocol: "Protocol",
  type: "Type",
  learnable: "Learnable",
  name: "Name",
};
export const RANGES = { "1h": 3600e3, "24h": 86400e3, "7d": 7 * 86400e3, "30d": 30 * 86400e3 };
export const SIZES = [25, 50, 100];

export function readState() {
  const p = new URLSearchParams(location.search);
  const filters = {};
  for (const kind of FILTERS) {
    filters[kind] = [...new Set(p.getAll(kind).flatMap((v) => v.split(",")).map((v) => v.trim()).filter(Boolean))];
  }
  const size = Number(p.get("size"));
  return {
    search: p.get("search") || "",
    range: p.get("range") in RANGES || p.get("range") === "custom" ? p.get("range") : "any",
    since: p.get("since") || "",
    until: p.get("until") || "",
    filters,
    sort: p.get("sort") || "-last_detection",
    page: Math.max(1, Number.parseInt(p.get("page") || "1", 10) || 1),
    size: SIZES.includes(size) ? size : 50,
    group: p.get("group") || "",
    open: p.getAll("open"),
    sel: p.get("sel") || "",
  };
}

export function urlParams(s) {
  return {
    search: s.search,
    range: s.range === "any" ? "" : s.range,
    since: s.range === "custom" ? s.since : "",
    until: s.range === "custom" ? s.until : "",
    ...s.filters,
    sort: s.sort === "-last_detection" ? "" : s.sort,
    page: s.page > 1 ? s.page : "",
    size: s.size === 50 ? "" : s.size,
    group: s.group,
    open: s.group ? s.open : [],
    sel: s.sel,
  };
}

/** What the API needs to select the alerts of the current view. */
export function apiFilter(s) {
  const out = { search: s.search, ...s.filters };
  if (s.range in RANGES) out.since = new Date(Date.now() - RANGES[s.range]).toISOString();
  if (s.range === "custom") {
    out.since = s.since;
    out.until = s.until;
  }
  return out;
}

export function filtering(s) {
  return Boolean(s.search || s.range !== "any" || FILTERS.some((k) => s.filters[k].length));
}
