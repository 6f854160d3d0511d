// The Alerts page's details pane: one alert's description, devices, where and when, tactics,
// and for admins status and severity controls.
import { ApiError, api } from "./api.js";
import { severityBadge, statusBadge } from "./columns.js";
import { entityView } from "./devicelink.js";
import { fill, h, show, text } from "./dom.js";
import { label, time } from "./format.js";
import { actAndReport } from "./triage.js";

function entity(details, side) {
  const known = (details.entities && details.entities[side]) || {};
  return {
    address: known.address ?? details[`${side}_address`],
    mac: known.mac ?? details[`${side}_mac`],
    name: details[`${side}_device`] || known.name,
    deviceId: details[`${side}_device_id`],
  };
}

function tacticNames(details) {
  return (details.tactics || []).map((t) => (typeof t === "string" ? t : t.id ? `${t.name} (${t.id})` : t.name));
}

function field(name, value) {
  return [h("dt", {}, name), h("dd", {}, value instanceof Node ? value : text(value))];
}

function changeControl(id, kind, current, options, onChanged) {
  const select = h(
    "select",
    { id: `pane-${kind}`, "aria-label": kind === "status" ? "Status" : "Severity" },
    options.map((o) => h("option", { value: o, selected: o === current }, label(kind, o))),
  );
  return h(
    "div",
    { class: "pane-control" },
    h("label", { for: `pane-${kind}` }, kind === "status" ? "Status" : "Severity"),
    select,
    h(
      "button",
      {
        type: "button",
        id: `pane-${kind}-apply`,
        onclick: async () => {
          await actAndReport(kind, [id], select.value);
          onChanged();
        },
      },
      "Apply",
    ),
  );
}

let paneGeneration = 0;

/** Show alert `id` in `pane` (hide it for no id); `onClose` and `onChanged` (after a
 * status or severity change) are the grid's. Only the latest call fills the pane. */
export async function showPane(pane, id, { admin, onClose, onChanged }) {
  const gen = ++paneGeneration;
  document.body.classList.toggle("with-pane", Boolean(id));
  if (!id) {
    show(pane, false);
    return;
  }
  show(pane);
  const closeButton = () =>
    h("button", { type: "button", class: "pane-close", "aria-label": "Close details", onclick: onClose }, "×");
  fill(pane, h("p", { class: "hint" }, "Loading…"));
  let d;
  try {
    d = await api(`/alerts/${encodeURIComponent(id)}`);
  } catch (err) {
    if (gen !== paneGeneration) return;
    fill(pane, closeButton(), h("p", { class: "error" }, err instanceof ApiError && err.status === 404 ? `Alert ${id} does not exist (any more).` : `Could not load alert ${id}: ${err.message}`));
    return;
  }
  if (gen !== paneGeneration) return;
  fill(
    pane,
    closeButton(),
    h("h2", { id: "pane-title" }, d.name),
    h("p", { class: "badges" }, severityBadge(d.severity), " ", statusBadge(d.status), d.close_reason ? ` (${d.close_reason})` : ""),
    h("p", { class: "message" }, d.message || ""),
    h(
      "dl",
      { class: "fields" },
      field("Source", entityView(entity(d, "source"), "pane-source")),
      field("Destination", entityView(entity(d, "destination"), "pane-destination")),
      field("Protocol", d.protocol),
      field("Sensor", (d.sensors || [d.sensor]).join(", ")),
      field("Site", d.site),
      field("Zone", d.zone),
      field("First detection", time(d.first_detection)),
      field("Last detection", time(d.last_detection)),
      field("Detections", d.detections),
      field("Tactics", tacticNames(d)),
      field("ID", d.id),
    ),
    admin ? changeControl(d.id, "status", d.status, ["new", "active", "closed"], onChanged) : null,
    admin ? changeControl(d.id, "severity", d.severity, ["high", "medium", "low"], onChanged) : null,
    h("p", {}, h("a", { class: "button primary", id: "view-full", href: `/alerts/${encodeURIComponent(d.id)}` }, "View full details")),
  );
}
