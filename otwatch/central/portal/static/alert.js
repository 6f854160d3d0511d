// The full details page of one alert: Take action (remediation, Learn, status, severity),
// Details (every field, message, parameters, sensors), Entities, Activity (audit trail and
// comments, with Add comment). Download PCAP lives in pcap.js.
import { ApiError, api } from "./api.js";
import { severityBadge, statusBadge } from "./columns.js";
import { initPage, isAdmin } from "./common.js";
import { entityView } from "./devicelink.js";
import { $, fill, h, show, text } from "./dom.js";
import { label, time } from "./format.js";
import { initPcap } from "./pcap.js";
import { actAndReport } from "./triage.js";

const admin = isAdmin();
const alertId = $("#alert").dataset.alertId;

function rows(pairs) {
  return h(
    "dl",
    { class: "fields" },
    pairs.map(([name, value]) => [h("dt", {}, name), h("dd", {}, value instanceof Node ? value : text(value))]),
  );
}

function table(headers, data, cells) {
  if (!data.length) return h("p", { class: "hint" }, "None.");
  return h(
    "table",
    { class: "grid compact" },
    h("thead", {}, h("tr", {}, headers.map((x) => h("th", { scope: "col" }, x)))),
    h("tbody", {}, data.map((item) => h("tr", {}, cells(item).map((c) => h("td", {}, c instanceof Node ? c : text(c)))))),
  );
}

function tacticList(d) {
  const tactics = d.tactics || [];
  if (!tactics.length) return h("p", { class: "hint" }, "No MITRE ATT&CK for ICS tactic for this type.");
  return h(
    "ul",
    { class: "tactics" },
    tactics.map((t) => (typeof t === "string" ? h("li", {}, t) : h("li", {}, h("span", { class: "tactic-id" }, t.id || ""), " ", t.name || ""))),
  );
}

function changeControl(kind, current, options, after) {
  const id = `detail-${kind}`;
  const select = h(
    "select",
    { id },
    options.map((o) => h("option", { value: o, selected: o === current }, label(kind, o))),
  );
  return h(
    "div",
    { class: "pane-control" },
    h("label", { for: id }, kind === "status" ? "Status" : "Severity"),
    select,
    h("button", { type: "button", id: `${id}-apply`, onclick: async () => after(await actAndReport(kind, [alertId], select.value)) }, "Apply"),
  );
}

function actionPanel(d) {
  const steps = d.remediation || [];
  const learnable = Boolean(d.learnable);
  const reason = d.learn_refusal || "this alert type is not learnable: its traffic is never normal";
  const learnButton = h(
    "button",
    {
      type: "button",
      id: "learn",
      class: "primary",
      disabled: !learnable || !admin || d.status === "closed",
      "aria-describedby": "learn-note",
      onclick: async () => reload(await actAndReport("learn", [alertId])),
    },
    "Learn",
  );
  let note = "Learn closes the alert and adds its traffic to the sensor's baseline, so it is not raised again.";
  if (!learnable) note = `Learn is not possible: ${reason}`;
  else if (d.status === "closed") note = "The alert is closed already.";
  else if (!admin) note = "Only an admin can learn alerts.";
  return [
    h("h2", {}, "Remediation steps"),
    steps.length ? h("ol", { class: "steps" }, steps.map((s) => h("li", {}, s))) : h("p", { class: "hint" }, "No remediation steps in the catalog."),
    h("h2", {}, "Learn"),
    h("p", {}, learnButton, " ", h("span", { id: "learn-note", class: learnable ? "hint" : "refusal" }, note)),
    h("p", { class: "hint" }, "Unlearn is done on the sensor that detected the alert (otwatch alerts unlearn)."),
    admin ? h("h2", {}, "Status and severity") : null,
    admin ? changeControl("status", d.status, ["new", "active", "closed"], reload) : null,
    admin ? changeControl("severity", d.severity, ["high", "medium", "low"], reload) : null,
  ];
}

function detailsPanel(d) {
  const parameters = Object.entries(d.parameters || {});
  return [
    h("h2", {}, "Message"),
    h("p", { class: "message" }, d.message || "—"),
    h("h2", {}, "Fields"),
    rows([
      ["ID", d.id],
      ["Name", d.name],
      ["Type", d.type],
      ["Engine", label("engine", d.engine)],
      ["Category", d.category],
      ["Severity", label("severity", d.severity)],
      ["Status", label("status", d.status)],
      ["Close reason", d.close_reason],
      ["Protocol", d.protocol],
      ["Source device", entityView(sideOf(d, "source"), "detail-source")],
      ["Source address", d.source_address],
      ["Source MAC", d.source_mac],
      ["Destination device", entityView(sideOf(d, "destination"), "detail-destination")],
      ["Destination address", d.destination_address],
      ["Destination MAC", d.destination_mac],
      ["First detection", time(d.first_detection)],
      ["Last detection", time(d.last_detection)],
      ["Last activity", time(d.last_activity)],
      ["Detections", d.detections],
      ["Sensors", d.sensors || [d.sensor]],
      ["Site", d.site],
      ["Zone", d.zone],
      ["Learnable", d.learnable],
      ["PCAP cached at central", d.pcap_available],
    ]),
    h("h2", {}, "Tactics (MITRE ATT&CK for ICS)"),
    tacticList(d),
    h("h2", {}, "Parameters"),
    table(["Parameter", "Value"], parameters, ([k, v]) => [k, typeof v === "object" && v !== null ? JSON.stringify(v) : v]),
    h("h2", {}, "Detected by"),
    table(["Sensor", "Sensor alert", "Site", "Zone", "Status", "Detections", "Last detection", "Online"], d.seen_by || [], (s) => [
      s.sensor,
      s.alert_id,
      s.site,
      s.zone,
      label("status", s.status),
      s.detections,
      time(s.last_detection),
      s.sensor_online ? "online" : "offline",
    ]),
  ];
}

/** The alert's device on one side: {name, address, mac, deviceId} (see devicelink.js). */
function sideOf(d, key) {
  const e = (d.entities || {})[key] || {};
  return {
    name: d[`${key}_device`] || e.name,
    address: e.address ?? d[`${key}_address`],
    mac: e.mac ?? d[`${key}_mac`],
    deviceId: d[`${key}_device_id`],
  };
}

function entityPanel(d) {
  const entities = d.entities || {};
  const side = (name, key) => {
    const e = entities[key] || { address: d[`${key}_address`], mac: d[`${key}_mac`] };
    const known = Object.entries(e).filter(([k]) => !["address", "mac", "name"].includes(k));
    const s = sideOf(d, key);
    const device = s.deviceId === null || s.deviceId === undefined ? "not in the inventory" : entityView(s, `entity-${key}`);
    return h(
      "section",
      { class: "entity", "aria-label": name },
      h("h2", {}, name),
      rows([["Name", s.name], ["Device", device], ["Address", e.address], ["MAC", e.mac], ...known.map(([k, v]) => [k.replaceAll("_", " "), v])]),
    );
  };
  return h("div", { class: "entities" }, side("Source device", "source"), side("Destination device", "destination"));
}

/** "status: new → active; reason: …" from an audit event's detail (clock stamps left out). */
function auditDetail(detail) {
  if (!detail || typeof detail !== "object") return detail;
  return Object.entries(detail)
    .filter(([key, value]) => key !== "hlc" && value !== null && value !== undefined)
    .map(([key, value]) => `${key.replaceAll("_", " ")}: ${typeof value === "object" ? JSON.stringify(value) : value}`)
    .join("; ");
}

function activityPanel(d) {
  const comments = d.comments || [];
  const form = admin
    ? h(
        "form",
        { id: "comment-form", class: "comment-form" },
        h("label", { for: "comment-text" }, "Add a comment"),
        h("textarea", { id: "comment-text", rows: "3", maxlength: "1000", required: true }),
        h("button", { type: "submit", class: "primary" }, "Add comment"),
      )
    : null;
  if (form) {
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const value = $("#comment-text").value.trim();
      if (!value) return;
      reload(await actAndReport("comment", [alertId], value), "activity");
    });
  }
  return [
    h("h2", {}, "Comments"),
    comments.length
      ? h(
          "ul",
          { class: "comments", id: "comments" },
          comments.map((c) => h("li", {}, h("p", { class: "comment-meta" }, `${c.author} · ${time(c.at)}`), h("p", { class: "comment-text" }, c.text))),
        )
      : h("p", { class: "hint", id: "comments" }, "No comments yet."),
    form,
    h("h2", {}, "History"),
    table(["Time", "Who", "Where", "What", "Detail"], d.audit || [], (a) => [time(a.time), a.actor, a.origin, a.action, auditDetail(a.detail)]),
  ];
}

function selectTab(name) {
  for (const tab of document.querySelectorAll("[role=tab]")) {
    const on = tab.id === `tab-${name}`;
    tab.setAttribute("aria-selected", String(on));
    tab.tabIndex = on ? 0 : -1;
    show($(`#${tab.getAttribute("aria-controls")}`), on);
  }
}

function wireTabs() {
  const tabs = [...document.querySelectorAll("[role=tab]")];
  tabs.forEach((tab, i) => {
    tab.addEventListener("click", () => selectTab(tab.id.slice(4)));
    tab.addEventListener("keydown", (event) => {
      const step = event.key === "ArrowRight" ? 1 : event.key === "ArrowLeft" ? -1 : 0;
      if (!step) return;
      const next = tabs[(i + step + tabs.length) % tabs.length];
      next.focus();
      selectTab(next.id.slice(4));
    });
  });
}

async function reload(_results, tab) {
  let d;
  try {
    d = await api(`/alerts/${encodeURIComponent(alertId)}`);
  } catch (err) {
    const box = $("#alert-error");
    box.textContent = err instanceof ApiError && err.status === 404 ? `Alert ${alertId} does not exist.` : `Could not load the alert: ${err.message}`;
    show(box);
    return;
  }
  document.title = `${d.name} · otwatch`;
  fill($("#alert-title"), d.name);
  fill($("#alert-badges"), severityBadge(d.severity), " ", statusBadge(d.status), d.close_reason ? ` (${d.close_reason})` : "", " ", h("span", { class: "hint" }, `ID ${d.id}`));
  fill($("#panel-action"), actionPanel(d));
  fill($("#panel-details"), detailsPanel(d));
  fill($("#panel-entities"), entityPanel(d));
  fill($("#panel-activity"), activityPanel(d));
  if (tab) selectTab(tab);
}

initPage();
wireTabs();
if (document.referrer && new URL(document.referrer).origin === location.origin && new URL(document.referrer).pathname === "/alerts") {
  $("#back").href = new URL(document.referrer).pathname + new URL(document.referrer).search;
}
initPcap(alertId);
reload();
