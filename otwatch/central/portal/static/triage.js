// Triage actions (status, severity, learn, comment) through the API, and the per-alert result
// report: every alert of a request is listed as applied, unchanged, refused or not found,
// with the server's reason.
import { api } from "./api.js";
import { $, fill, h } from "./dom.js";
import { OUTCOMES } from "./format.js";

const PATHS = { status: "/alerts/status", severity: "/alerts/severity", learn: "/alerts/learn", comment: "/alerts/comment" };

/** One row per alert: {id, outcome, message}, whatever the API's field names. */
export function normalise(results) {
  return (results || []).map((r) => ({
    id: r.alert_id ?? r.id,
    outcome: r.outcome ?? (r.ok ? (r.queued ? "applied" : "applied") : "refused"),
    message: r.message ?? r.reason ?? (r.queued ? "queued for the sensor" : ""),
  }));
}

/** POST the action; returns the normalised per-alert results. */
export async function act(kind, ids, value) {
  const body = { ids };
  if (kind === "status") body.status = value;
  if (kind === "severity") body.severity = value;
  if (kind === "comment") body.text = value;
  const answer = await api(PATHS[kind], { method: "POST", body });
  return normalise(answer && answer.results);
}

function resultsDialog() {
  let dialog = $("#results-dialog");
  if (dialog) return dialog;
  dialog = h(
    "dialog",
    { id: "results-dialog", "aria-labelledby": "results-title" },
    h(
      "form",
      { method: "dialog" },
      h("h2", { id: "results-title" }, "Result"),
      h("p", { id: "results-summary" }),
      h(
        "table",
        { class: "results" },
        h("thead", {}, h("tr", {}, h("th", {}, "Alert"), h("th", {}, "Result"), h("th", {}, "Detail"))),
        h("tbody", { id: "results-body" }),
      ),
      h("div", { class: "dialog-buttons" }, h("button", { value: "ok", class: "primary" }, "OK")),
    ),
  );
  document.body.append(dialog);
  return dialog;
}

/** Show the per-alert report; resolves when the user closes it. */
export function showResults(title, rows) {
  const dialog = resultsDialog();
  $("#results-title").textContent = title;
  const counts = {};
  for (const r of rows) counts[r.outcome] = (counts[r.outcome] || 0) + 1;
  $("#results-summary").textContent = Object.entries(counts)
    .map(([k, n]) => `${n} ${(OUTCOMES[k] || k).toLowerCase()}`)
    .join(", ");
  fill(
    $("#results-body"),
    rows.map((r) =>
      h(
        "tr",
        { class: `outcome-${r.outcome}` },
        h("td", {}, String(r.id)),
        h("td", {}, OUTCOMES[r.outcome] || r.outcome),
        h("td", {}, r.message || ""),
      ),
    ),
  );
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(), { once: true });
    dialog.showModal();
  });
}

const TITLES = { status: "Change status", severity: "Change severity", learn: "Learn", comment: "Comment" };

/** Run an action and report it; errors (403, 409, network) are reported too. */
export async function actAndReport(kind, ids, value) {
  let rows;
  try {
    rows = await act(kind, ids, value);
  } catch (err) {
    rows = ids.map((id) => ({ id, outcome: "refused", message: err.message }));
  }
  await showResults(`${TITLES[kind]}: ${ids.length} alert${ids.length === 1 ? "" : "s"}`, rows);
  return rows;
}
