// The Sensors page: every sensor central knows, with its health from its last status message.
import { api, query } from "./api.js";
import { initPage } from "./common.js";
import { $, fill, h, show, text } from "./dom.js";
import { count, percent, time } from "./format.js";

const SILENT_AFTER_MS = 120e3;

function state(s) {
  if (!s.online) return "offline";
  const seen = s.last_seen ? Date.parse(s.last_seen) : 0;
  return seen && Date.now() - seen > SILENT_AFTER_MS ? "silent" : "online";
}

function captureHealth(health) {
  if (health.capture_drops === undefined || health.capture_drops === null) return "—";
  return health.capture_drops ? `${count(health.capture_drops)} packets dropped` : "no drops";
}

async function load() {
  const box = $("#sensors-error");
  let sensors;
  try {
    sensors = await api("/sensors");
  } catch (err) {
    fill(box, `Could not load sensors: ${err.message} `, h("button", { type: "button", onclick: load }, "Retry"));
    show(box);
    return;
  }
  show(box, false);
  const states = sensors.map(state);
  $("#sensor-summary").textContent = `${sensors.length} sensor${sensors.length === 1 ? "" : "s"}: ${states.filter((s) => s === "online").length} online, ${states.filter((s) => s === "silent").length} silent, ${states.filter((s) => s === "offline").length} offline`;
  fill(
    $("#sensors tbody"),
    sensors.map((s, i) => {
      const health = s.health || {};
      return h(
        "tr",
        { dataset: { sensor: s.sensor } },
        h("td", {}, s.sensor),
        h("td", {}, h("span", { class: `state state-${states[i]}` }, states[i])),
        h("td", {}, time(s.last_seen)),
        h("td", {}, text(s.site)),
        h("td", {}, text(s.zone)),
        h("td", {}, captureHealth(health)),
        h("td", {}, health.outbox_depth === undefined ? "—" : `${count(health.outbox_depth)} events`),
        h("td", {}, percent(health.ring_usage)),
        h("td", {}, text(s.version)),
        h("td", {}, h("a", { href: "/alerts" + query({ sensor: s.sensor, status: "new" }) }, "New alerts")),
      );
    }),
  );
  show($("#sensors-empty"), sensors.length === 0);
}

initPage();
$("#refresh").addEventListener("click", load);
load();
