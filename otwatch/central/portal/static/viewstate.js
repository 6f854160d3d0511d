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

// -- helpers every grid page uses (Alerts, Devices) -------------------------------------------

/** Every value of a list parameter (repeated keys and "a,b"), trimmed, without repeats. */
export function listParam(p, key) {
  return [...new Set(p.getAll(key).flatMap((v) => v.split(",")).map((v) => v.trim()).filter(Boolean))];
}

/** The 1-based page number of the URL (1 when missing or bad). */
export function pageParam(p) {
  return Math.max(1, Number.parseInt(p.get("page") || "1", 10) || 1);
}

/** The page size of the URL when it is one of SIZES, else the default (50). */
export function sizeParam(p) {
  const size = Number(p.get("size"));
  return SIZES.includes(size) ? size : 50;
}

/** "-name" → ["name", "desc"]: the URL's sort as the API's sort and order parameters. */
export function sortOrder(sort) {
  return sort.startsWith("-") ? [sort.slice(1), "desc"] : [sort, "asc"];
}

/** The next sort when a column's header is clicked: ascending first, then descending. */
export function nextSort(current, key) {
  return current === key ? `-${key}` : key;
}

/** "ascending", "descending" or null: how `current` sorts on `key` (for aria-sort). */
export function sortDirection(current, key) {
  return current === key ? "ascending" : current === `-${key}` ? "descending" : null;
}

/** The page's URL for a view (`path` + query), pushed (Back returns) or replaced. */
export function setUrl(url, { replace = false } = {}) {
  if (replace) history.replaceState(null, "", url);
  else history.pushState(null, "", url);
}

// -- the Alerts page ---------------------------------------------------------------------------

export function readState() {
  const p = new URLSearchParams(location.search);
  const filters = {};
  for (const kind of FILTERS) filters[kind] = listParam(p, kind);
  return {
    search: p.get("search") || "",
    range: p.get("range") in RANGES || p.get("range") === "custom" ? p.get("range") : "any",
    since: p.get("since") || "",
    until: p.get("until") || "",
    filters,
    sort: p.get("sort") || "-last_detection",
    page: pageParam(p),
    size: sizeParam(p),
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
