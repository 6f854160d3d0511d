// The Alerts page: grid, search, time range, filters, group by, paging, sorting, details pane,
// selection and bulk actions. All view state lives in the URL (Back/Forward and copied links
// give the same view); the chosen columns are a per-user preference on the server.
import { api, query } from "./api.js";
import { COLUMNS, DEFAULT_COLUMNS, cellContent } from "./columns.js";
import { loadColumns, openColumns, saveColumns } from "./columnsdialog.js";
import { initPage, isAdmin } from "./common.js";
import { $, fill, h, show, toast, typing } from "./dom.js";
import { count, label } from "./format.js";
import { showPane } from "./pane.js";
import { actAndReport } from "./triage.js";
import { dataCell, sortHeader } from "./grid.js";
import { FILTERS, FILTER_LABELS, apiFilter, filtering, readState, setUrl, urlParams } from "./viewstate.js";

const GROUP_ROWS = 100;

const admin = isAdmin();
let state = readState();
let columns = [...DEFAULT_COLUMNS];
let selected = new Set();
const learnable = new Map(); // alert id → learnable, for the rows shown
let generation = 0;

// -- state <-> URL ---------------------------------------------------------------------------

function navigate(changes, { replace = false } = {}) {
  state = { ...state, ...changes };
  setUrl("/alerts" + query(urlParams(state)), { replace });
  render();
}

// -- rendering -------------------------------------------------------------------------------

function render() {
  syncControls();
  renderHead();
  selected = new Set(); // a new view starts with no selection
  updateSelectionBar();
  const gen = ++generation;
  document.body.dataset.loading = "true";
  const load = state.group ? loadGroups(gen) : loadRows(gen);
  load
    .catch((err) => gen === generation && showError(err))
    .finally(() => {
      if (gen === generation) document.body.dataset.loading = "false";
    });
  renderPane();
}

function syncControls() {
  $("#search").value = state.search;
  $("#range").value = state.range;
  show($("#custom-range"), state.range === "custom");
  $("#since").value = state.since ? state.since.replace(/Z$/, "").slice(0, 19) : "";
  $("#until").value = state.until ? state.until.replace(/Z$/, "").slice(0, 19) : "";
  $("#group-by").value = state.group;
  $("#page-size").value = String(state.size);
  $("#export").href = "/api/v1/alerts/export.csv" + query({ ...apiFilter(state), sort: state.sort });
  renderChips();
}

function renderChips() {
  const chips = [];
  for (const kind of FILTERS) {
    const values = state.filters[kind];
    if (!values.length) continue;
    const shown = values.map((v) => (kind === "learnable" ? (v === "true" ? "yes" : "no") : label(kind, v)));
    chips.push(
      h(
        "li",
        { class: "chip", dataset: { kind } },
        h("span", {}, `${FILTER_LABELS[kind]}: ${shown.join(", ")}`),
        h(
          "button",
          {
            type: "button",
            class: "chip-remove",
            "aria-label": `Remove filter ${FILTER_LABELS[kind]}`,
            onclick: () => navigate({ filters: { ...state.filters, [kind]: [] }, page: 1 }),
          },
          "×",
        ),
      ),
    );
  }
  if (chips.length) {
    chips.push(h("li", {}, h("button", { type: "button", class: "link", onclick: clearFilters }, "Clear filters")));
  }
  fill($("#chips"), chips);
}

function clearFilters() {
  const filters = Object.fromEntries(FILTERS.map((k) => [k, []]));
  navigate({ filters, search: "", range: "any", since: "", until: "", page: 1 });
}

function renderHead() {
  const cells = [];
  if (admin) {
    cells.push(
      h(
        "th",
        { class: "check", scope: "col" },
        h("input", { type: "checkbox", id: "select-all", "aria-label": "Select all alerts on this page", onchange: selectAll }),
      ),
    );
  }
  for (const column of columns) {
    cells.push(sortHeader(column, COLUMNS[column], state.sort, (sort) => navigate({ sort, page: 1 })));
  }
  fill($("#grid thead"), h("tr", {}, cells));
}

function rowElement(row) {
  learnable.set(row.id, Boolean(row.learnable));
  const cells = [];
  if (admin) {
    cells.push(
      h(
        "td",
        { class: "check" },
        h("input", {
          type: "checkbox",
          "aria-label": `Select alert ${row.id}`,
          checked: selected.has(row.id),
          onchange: (e) => toggleSelected(row.id, e.target.checked),
        }),
      ),
    );
  }
  for (const column of columns) cells.push(dataCell(column, cellContent(column, row)));
  const tr = h(
    "tr",
    {
      class: "row",
      tabindex: "-1",
      dataset: { id: row.id },
      "aria-selected": String(row.id === state.sel),
    },
    cells,
  );
  tr.addEventListener("click", (event) => {
    if (event.target.closest("input, a, button")) return;
    selectRow(row.id);
  });
  tr.addEventListener("dblclick", () => openFull(row.id));
  return tr;
}

function showError(err) {
  if (err.name === "AbortError") return;
  const box = $("#grid-error");
  fill(
    box,
    `Could not load alerts: ${err.message} `,
    h("button", { type: "button", onclick: () => render() }, "Retry"),
  );
  show(box);
}

function setBodies(bodies) {
  const table = $("#grid");
  for (const old of table.querySelectorAll("tbody")) old.remove();
  table.append(...bodies);
  show($("#grid-error"), false);
}

function setEmpty(nothing) {
  const box = $("#empty");
  if (!nothing) return show(box, false);
  if (filtering(state)) {
    fill(box, "No alerts match this search, filters and time range. ", h("button", { type: "button", onclick: clearFilters }, "Clear filters"));
  } else {
    fill(box, "No alerts yet. Alerts appear here as soon as a sensor's sync daemon sends them to central.");
  }
  show(box);
}

async function loadRows(gen) {
  const offset = (state.page - 1) * state.size;
  const params = { ...apiFilter(state), sort: state.sort, limit: state.size, offset };
  const data = await api("/alerts" + query(params));
  if (gen !== generation) return;
  const rows = data.alerts || [];
  if (!rows.length && state.page > 1 && (data.total ?? 0) > 0) { // past the end: go to the last page
    navigate({ page: Math.max(1, Math.ceil(data.total / state.size)) }, { replace: true });
    return;
  }
  setBodies([h("tbody", {}, rows.map(rowElement))]);
  setEmpty(rows.length === 0);
  const total = data.total ?? null; // null: more than the server counts exactly
  const atLeast = Math.max((data.total_at_least ?? 1) - 1, offset + rows.length);
  const totalText = total === null ? `more than ${count(atLeast)}` : count(total);
  $("#total").textContent = total === null ? `More than ${count(atLeast)} alerts` : `${totalText} alert${total === 1 ? "" : "s"}`;
  $("#page-info").textContent = rows.length ? `${count(offset + 1)}–${count(offset + rows.length)} of ${totalText}` : "";
  $("#prev").disabled = state.page <= 1;
  $("#next").disabled = data.next_offset === null || data.next_offset === undefined || (total !== null && offset + rows.length >= total);
  show($(".pager"));
  markSelected();
}

function groupFilter(value) {
  if (state.group === "name") return { search: value };
  return { [state.group]: [value] };
}

async function loadGroups(gen) {
  const data = await api("/alerts/groups" + query({ ...apiFilter(state), by: state.group }));
  if (gen !== generation) return;
  const groups = data.groups || [];
  const total = groups.reduce((n, g) => n + g.count, 0);
  $("#total").textContent = `${count(total)} alert${total === 1 ? "" : "s"} in ${count(groups.length)} group${groups.length === 1 ? "" : "s"}`;
  show($(".pager"), false);
  const width = columns.length + (admin ? 1 : 0);
  const bodies = groups.map((group) => {
    const value = String(group.value);
    const open = state.open.includes(value);
    const shown = state.group === "severity" || state.group === "status" || state.group === "engine" ? label(state.group, value) : value;
    const head = h(
      "tr",
      { class: "group-head" },
      h(
        "th",
        { colspan: String(width), scope: "rowgroup" },
        h(
          "button",
          {
            type: "button",
            class: "group-toggle",
            "aria-expanded": String(open),
            onclick: () => navigate({ open: open ? state.open.filter((v) => v !== value) : [...state.open, value] }, { replace: false }),
          },
          open ? "▾ " : "▸ ",
          shown || "(none)",
        ),
        h("span", { class: "group-count" }, `${count(group.count)} alert${group.count === 1 ? "" : "s"}`),
      ),
    );
    const body = h("tbody", { class: "group", dataset: { value } }, head);
    if (open) {
      fillGroup(body, value, group.count, gen).catch((err) => gen === generation && showError(err));
    }
    return body;
  });
  setBodies(bodies);
  setEmpty(groups.length === 0);
}

async function fillGroup(body, value, total, gen) {
  const params = { ...apiFilter(state), ...groupFilter(value), sort: state.sort, limit: GROUP_ROWS };
  const data = await api("/alerts" + query(params));
  if (gen !== generation) return;
  let rows = data.alerts || [];
  if (state.group === "name") rows = rows.filter((r) => r.name === value);
  body.append(...rows.map(rowElement));
  if (total > rows.length) {
    const width = columns.length + (admin ? 1 : 0);
    const more = { ...state.filters };
    const changes = state.group === "name" ? { search: value } : { filters: { ...more, [state.group]: [value] } };
    body.append(
      h(
        "tr",
        { class: "group-more" },
        h(
          "td",
          { colspan: String(width) },
          `Showing ${rows.length} of ${count(total)}. `,
          h("button", { type: "button", class: "link", onclick: () => navigate({ ...changes, group: "", open: [], page: 1 }) }, "Show all in the grid"),
        ),
      ),
    );
  }
  markSelected();
}

// -- selection (checkboxes) and bulk actions ------------------------------------------------

function pageIds() {
  return [...document.querySelectorAll("#grid tr.row")].map((tr) => tr.dataset.id);
}

function toggleSelected(id, on) {
  if (on) selected.add(id);
  else selected.delete(id);
  updateSelectionBar();
}

function selectAll(event) {
  const on = event.target.checked;
  for (const id of pageIds()) {
    if (on) selected.add(id);
    else selected.delete(id);
  }
  for (const box of document.querySelectorAll("#grid td.check input")) box.checked = on;
  updateSelectionBar();
}

function updateSelectionBar() {
  const bar = $("#selection-bar");
  if (!bar) return;
  show(bar, selected.size > 0);
  $("#selected-count").textContent = `${selected.size} selected`;
  const canLearn = [...selected].filter((id) => learnable.get(id)).length;
  $("#bulk-learn").textContent = `Learn (${canLearn} of ${selected.size} learnable)`;
  const all = $("#select-all");
  if (all) {
    const ids = pageIds();
    all.checked = ids.length > 0 && ids.every((id) => selected.has(id));
    all.indeterminate = !all.checked && ids.some((id) => selected.has(id));
  }
}

async function bulk(kind, value) {
  const ids = [...selected];
  if (!ids.length) return;
  await actAndReport(kind, ids, value);
  render();
}

// -- details pane --------------------------------------------------------------------------

function markSelected() {
  for (const tr of document.querySelectorAll("#grid tr.row")) {
    tr.setAttribute("aria-selected", String(tr.dataset.id === state.sel));
  }
  updateSelectionBar();
}

function selectRow(id, { focus = false } = {}) {
  state = { ...state, sel: id };
  history.replaceState(null, "", "/alerts" + query(urlParams(state)));
  markSelected();
  renderPane();
  if (focus) $("#pane").focus();
}

function openFull(id) {
  location.assign(`/alerts/${encodeURIComponent(id)}`);
}

function renderPane() {
  showPane($("#pane"), state.sel, { admin, onClose: closePane, onChanged: render });
}

function closePane() {
  const previous = state.sel;
  state = { ...state, sel: "" };
  history.replaceState(null, "", "/alerts" + query(urlParams(state)));
  markSelected();
  renderPane();
  const row = document.querySelector(`#grid tr.row[data-id="${CSS.escape(previous)}"]`);
  if (row) row.focus();
}

// -- dialogs: Edit columns, Add filter -------------------------------------------------------

let filterLoad = 0;
async function loadFilterValues() {
  const kind = $("#filter-kind").value;
  const list = $("#filter-values");
  if (list.dataset.kind === kind) return; // a repeated change event: the values are there
  list.dataset.kind = kind;
  const load = ++filterLoad;
  const current = new Set(state.filters[kind]);
  const item = (value, shown, n) =>
    h(
      "li",
      {},
      h("label", {}, h("input", { type: "checkbox", value, checked: current.has(value) }), " ", shown, n === undefined ? "" : h("span", { class: "group-count" }, ` ${count(n)}`)),
    );
  const typed = h(
    "li",
    { class: "typed" },
    h("label", {}, "Other value ", h("input", { type: "text", id: "filter-typed", maxlength: "200", "aria-label": "Other value" })),
  );
  if (kind === "learnable") {
    fill(list, item("true", "Learnable", undefined), item("false", "Not learnable", undefined));
    return;
  }
  fill(list, h("li", { class: "hint" }, "Loading values…"));
  const filter = { ...apiFilter(state), [kind]: [] };
  try {
    const data = await api("/alerts/groups" + query({ ...filter, by: kind }));
    if (load !== filterLoad) return;
    const values = data.groups || [];
    const seen = new Set(values.map((g) => String(g.value)));
    fill(
      list,
      values.map((g) => item(String(g.value), label(kind, g.value), g.count)),
      [...current].filter((v) => !seen.has(v)).map((v) => item(v, label(kind, v), 0)),
      values.length ? null : h("li", { class: "hint" }, "No values in the current selection."),
      typed,
    );
  } catch (err) {
    if (load !== filterLoad) return;
    fill(list, h("li", { class: "error" }, `Could not list the values: ${err.message}`), typed);
  }
}

function applyFilter() {
  const kind = $("#filter-kind").value;
  const values = [...$("#filter-values").querySelectorAll("input[type=checkbox]:checked")].map((i) => i.value);
  const typed = $("#filter-typed");
  if (typed && typed.value.trim()) values.push(typed.value.trim());
  $("#filter-dialog").close();
  navigate({ filters: { ...state.filters, [kind]: [...new Set(values)] }, page: 1 });
}

// -- keyboard --------------------------------------------------------------------------------

function rows() {
  return [...document.querySelectorAll("#grid tr.row")];
}

function moveFocus(step) {
  const all = rows();
  if (!all.length) return;
  const current = all.indexOf(document.activeElement.closest ? document.activeElement.closest("tr.row") : null);
  const start = current >= 0 ? current : all.findIndex((tr) => tr.dataset.id === state.sel);
  const next = all[Math.min(all.length - 1, Math.max(0, start < 0 ? 0 : start + step))];
  next.focus();
  selectRow(next.dataset.id);
}

function onKey(event) {
  if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey) return;
  if ($("dialog[open]")) return;
  if (event.key === "Escape" && state.sel) {
    closePane();
    return;
  }
  if (typing(event)) return;
  const row = document.activeElement && document.activeElement.closest ? document.activeElement.closest("tr.row") : null;
  switch (event.key) {
    case "/":
      event.preventDefault();
      $("#search").focus();
      break;
    case "ArrowDown":
    case "j":
      event.preventDefault();
      moveFocus(1);
      break;
    case "ArrowUp":
    case "k":
      event.preventDefault();
      moveFocus(-1);
      break;
    case "Enter":
      if (row) {
        event.preventDefault();
        selectRow(row.dataset.id, { focus: true });
      }
      break;
    case "o":
      if (row || state.sel) openFull(row ? row.dataset.id : state.sel);
      break;
    case "x":
    case " ":
      if (row && admin) {
        event.preventDefault();
        const box = row.querySelector("td.check input");
        box.checked = !box.checked;
        toggleSelected(row.dataset.id, box.checked);
      }
      break;
    case "r":
      render();
      break;
    default:
  }
}

// -- wiring ----------------------------------------------------------------------------------

function isoFromLocalInput(value) {
  if (!value) return "";
  const withSeconds = value.length === 16 ? `${value}:00` : value;
  return `${withSeconds}Z`;
}

function wire() {
  $("#search-form").addEventListener("submit", (e) => {
    e.preventDefault();
    navigate({ search: $("#search").value.trim(), page: 1 });
  });
  $("#range").addEventListener("change", (e) => {
    const range = e.target.value;
    if (range === "custom") {
      show($("#custom-range"));
      $("#since").focus();
      return;
    }
    navigate({ range, since: "", until: "", page: 1 });
  });
  $("#apply-range").addEventListener("click", () => {
    const since = isoFromLocalInput($("#since").value);
    const until = isoFromLocalInput($("#until").value);
    if (!since && !until) {
      toast("Give a start or an end time (UTC).");
      return;
    }
    navigate({ range: "custom", since, until, page: 1 });
  });
  $("#group-by").addEventListener("change", (e) => navigate({ group: e.target.value, open: [], page: 1 }));
  $("#page-size").addEventListener("change", (e) => navigate({ size: Number(e.target.value), page: 1 }));
  $("#prev").addEventListener("click", () => navigate({ page: Math.max(1, state.page - 1) }));
  $("#next").addEventListener("click", () => navigate({ page: state.page + 1 }));
  $("#refresh").addEventListener("click", () => render());
  const useColumns = (chosen) => {
    columns = chosen;
    render();
  };
  $("#edit-columns").addEventListener("click", () => openColumns(columns, useColumns));
  $("#columns-save").addEventListener("click", saveColumns);
  $("#columns-reset").addEventListener("click", () => openColumns(DEFAULT_COLUMNS, useColumns));
  $("#add-filter").addEventListener("click", () => {
    delete $("#filter-values").dataset.kind;
    $("#filter-dialog").showModal();
    loadFilterValues();
  });
  $("#filter-kind").addEventListener("change", loadFilterValues);
  $("#filter-apply").addEventListener("click", applyFilter);
  if (admin) {
    $("#bulk-status-apply").addEventListener("click", () => bulk("status", $("#bulk-status").value));
    $("#bulk-severity-apply").addEventListener("click", () => bulk("severity", $("#bulk-severity").value));
    $("#bulk-learn").addEventListener("click", () => bulk("learn"));
    $("#bulk-clear").addEventListener("click", () => {
      selected.clear();
      for (const box of document.querySelectorAll("#grid td.check input")) box.checked = false;
      updateSelectionBar();
    });
  }
  window.addEventListener("popstate", () => {
    state = readState();
    render();
  });
  document.addEventListener("keydown", onKey);
}

initPage();
wire();
columns = await loadColumns();
render();
