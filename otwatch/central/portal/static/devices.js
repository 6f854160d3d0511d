// The Devices page: the inventory of every sensor as a grid with search, filters (type,
// vendor, protocol, subnet, sensor, seen since, new since learning), server-side sorting and
// paging. The view lives in the URL (Back/Forward and copied links give the same view).
import { api, query } from "./api.js";
import { cellContent } from "./columns.js";
import { initPage } from "./common.js";
import { DEVICE_COLUMNS, DEVICE_COLUMN_ORDER, deviceHref } from "./devicecolumns.js";
import { $, fill, h, show } from "./dom.js";
import { count } from "./format.js";
import { dataCell, sortHeader } from "./grid.js";
import { RANGES, pageParam, setUrl, sizeParam, sortOrder } from "./viewstate.js";

const TEXT_FILTERS = ["type", "vendor", "protocol", "subnet", "sensor"];
const LABELS = { type: "Type", vendor: "Vendor", protocol: "Protocol", subnet: "Subnet", sensor: "Sensor" };
const RANGE_LABELS = { "1h": "last hour", "24h": "last 24 hours", "7d": "last 7 days", "30d": "last 30 days" };
const DEFAULT_SORT = "ip";

let state = readState();
let generation = 0;
const protocols = new Set(); // seen in the rows so far: suggestions for the Protocol filter

function readState() {
  const p = new URLSearchParams(location.search);
  const out = {
    search: p.get("search") || "",
    range: p.get("range") in RANGES ? p.get("range") : "any",
    new: p.get("new") === "1",
    sort: p.get("sort") || DEFAULT_SORT,
    page: pageParam(p),
    size: sizeParam(p),
  };
  for (const key of TEXT_FILTERS) out[key] = (p.get(key) || "").trim();
  return out;
}

function urlParams(s) {
  const out = {
    search: s.search,
    range: s.range === "any" ? "" : s.range,
    new: s.new ? "1" : "",
    sort: s.sort === DEFAULT_SORT ? "" : s.sort,
    page: s.page > 1 ? s.page : "",
    size: s.size === 50 ? "" : s.size,
  };
  for (const key of TEXT_FILTERS) out[key] = s[key];
  return out;
}

function apiParams(s) {
  const [sort, order] = sortOrder(s.sort);
  const out = { search: s.search, sort, order, limit: s.size, offset: (s.page - 1) * s.size };
  for (const key of TEXT_FILTERS) out[key] = s[key];
  if (s.range in RANGES) out.since = new Date(Date.now() - RANGES[s.range]).toISOString();
  if (s.new) out.new = "true";
  return out;
}

function filtering(s) {
  return Boolean(s.search || s.new || s.range !== "any" || TEXT_FILTERS.some((k) => s[k]));
}

function navigate(changes, { replace = false } = {}) {
  state = { ...state, ...changes };
  setUrl("/devices" + query(urlParams(state)), { replace });
  render();
}

// -- rendering -------------------------------------------------------------------------------

function syncControls() {
  $("#search").value = state.search;
  for (const key of TEXT_FILTERS) {
    const input = $(`#f-${key}`);
    if (input.tagName === "SELECT" && state[key] && ![...input.options].some((o) => o.value === state[key])) {
      input.append(h("option", { value: state[key] }, state[key]));
    }
    input.value = state[key];
  }
  $("#f-range").value = state.range;
  $("#f-new").checked = state.new;
  $("#page-size").value = String(state.size);
  renderChips();
}

function chip(kind, text, changes) {
  return h(
    "li",
    { class: "chip", dataset: { kind } },
    h("span", {}, text),
    h(
      "button",
      { type: "button", class: "chip-remove", "aria-label": `Remove filter ${text}`, onclick: () => navigate({ ...changes, page: 1 }) },
      "×",
    ),
  );
}

function renderChips() {
  const chips = [];
  if (state.search) chips.push(chip("search", `Search: ${state.search}`, { search: "" }));
  for (const key of TEXT_FILTERS) {
    if (state[key]) chips.push(chip(key, `${LABELS[key]}: ${state[key]}`, { [key]: "" }));
  }
  if (state.range !== "any") chips.push(chip("range", `Seen: ${RANGE_LABELS[state.range]}`, { range: "any" }));
  if (state.new) chips.push(chip("new", "New since learning", { new: false }));
  if (chips.length) chips.push(h("li", {}, h("button", { type: "button", class: "link", onclick: clearFilters }, "Clear filters")));
  fill($("#chips"), chips);
}

function clearFilters() {
  const cleared = Object.fromEntries(TEXT_FILTERS.map((k) => [k, ""]));
  navigate({ ...cleared, search: "", range: "any", new: false, page: 1 });
}

function renderHead() {
  const cells = DEVICE_COLUMN_ORDER.map((column) =>
    sortHeader(column, DEVICE_COLUMNS[column], state.sort, (sort) => navigate({ sort, page: 1 })),
  );
  fill($("#grid thead"), h("tr", {}, cells));
}

function rowElement(device) {
  const tr = h(
    "tr",
    { class: "row", dataset: { id: String(device.id) } },
    DEVICE_COLUMN_ORDER.map((column) => dataCell(column, cellContent(column, device, DEVICE_COLUMNS))),
  );
  tr.addEventListener("click", (event) => {
    if (event.target.closest("a, button, input")) return;
    location.assign(deviceHref(device.id));
  });
  return tr;
}

function showError(err) {
  if (err.name === "AbortError") return;
  fill(
    $("#grid-error"),
    `Could not load devices: ${err.message} `,
    h("button", { type: "button", id: "retry", onclick: () => render() }, "Retry"),
  );
  show($("#grid-error"));
  fill($("#grid tbody"));
  show($("#empty"), false);
  $("#total").textContent = "";
  $("#page-info").textContent = "";
  $("#prev").disabled = true;
  $("#next").disabled = true;
}

function setEmpty(nothing) {
  const box = $("#empty");
  if (!nothing) return show(box, false);
  if (filtering(state)) {
    fill(box, "No devices match this search and these filters. ", h("button", { type: "button", onclick: clearFilters }, "Clear filters"));
  } else {
    fill(box, "No devices yet. Devices appear here as soon as a sensor's sync daemon sends its inventory to central.");
  }
  show(box);
}

async function loadRows(gen) {
  const data = await api("/devices" + query(apiParams(state)));
  if (gen !== generation) return;
  const rows = data.items || [];
  const total = data.total ?? 0;
  const offset = (state.page - 1) * state.size;
  if (!rows.length && state.page > 1 && total > 0) {
    navigate({ page: Math.max(1, Math.ceil(total / state.size)) }, { replace: true });
    return;
  }
  show($("#grid-error"), false);
  fill($("#grid tbody"), rows.map(rowElement));
  for (const row of rows) for (const p of row.protocols || []) protocols.add(p);
  fill($("#protocol-list"), [...protocols].sort().map((p) => h("option", { value: p })));
  setEmpty(rows.length === 0);
  $("#total").textContent = `${count(total)} device${total === 1 ? "" : "s"}`;
  $("#page-info").textContent = rows.length ? `${count(offset + 1)}–${count(offset + rows.length)} of ${count(total)}` : "";
  $("#prev").disabled = state.page <= 1;
  $("#next").disabled = offset + rows.length >= total;
}

function render() {
  syncControls();
  renderHead();
  const gen = ++generation;
  document.body.dataset.loading = "true";
  loadRows(gen)
    .catch((err) => gen === generation && showError(err))
    .finally(() => {
      if (gen === generation) document.body.dataset.loading = "false";
    });
}

async function loadChoices() {
  // the sensors central knows, and the protocols of the devices (for the filter inputs)
  try {
    const sensors = await api("/sensors");
    const select = $("#f-sensor");
    const have = new Set([...select.options].map((o) => o.value));
    for (const s of sensors) {
      if (!have.has(s.sensor)) select.append(h("option", { value: s.sensor }, s.sensor));
    }
    select.value = state.sensor;
  } catch {
    // the filter still takes the value from the URL
  }
}

// -- wiring ----------------------------------------------------------------------------------

function fromControls() {
  const out = { search: $("#search").value.trim(), range: $("#f-range").value, new: $("#f-new").checked, page: 1 };
  for (const key of TEXT_FILTERS) out[key] = $(`#f-${key}`).value.trim();
  return out;
}

function wire() {
  $("#device-filters").addEventListener("submit", (e) => {
    e.preventDefault();
    navigate(fromControls());
  });
  for (const id of ["#f-type", "#f-sensor", "#f-range", "#f-new"]) {
    $(id).addEventListener("change", () => navigate(fromControls()));
  }
  $("#page-size").addEventListener("change", (e) => navigate({ size: Number(e.target.value), page: 1 }));
  $("#prev").addEventListener("click", () => navigate({ page: Math.max(1, state.page - 1) }));
  $("#next").addEventListener("click", () => navigate({ page: state.page + 1 }));
  $("#refresh").addEventListener("click", () => render());
  window.addEventListener("popstate", () => {
    state = readState();
    render();
  });
}

initPage();
wire();
render();
loadChoices();
