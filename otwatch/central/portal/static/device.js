// One device's page: identity (addresses, vendor, model, firmware, names with their source),
// type and Purdue level with the reason and whether a user set them, every fact with its
// source and time, MAC history, services, peers, recent alerts; admins edit name, type and
// Purdue level (PATCH; the sensor applies it, the page says so until it has).
import { ApiError, api, query } from "./api.js";
import { severityBadge, statusBadge } from "./columns.js";
import { initPage, isAdmin } from "./common.js";
import { deviceHref, deviceLabel, learnedBadge, overridden, purdue } from "./devicecolumns.js";
import { $, fill, h, show, text } from "./dom.js";
import { bytes, count, time } from "./format.js";

const TYPES = ["PLC", "RTU/outstation", "HMI/SCADA client", "Engineering station", "Historian",
  "Network device", "IT host", "Field device", "Unknown"];
const admin = isAdmin();
const deviceId = $("#device").dataset.deviceId;

function fields(pairs) {
  return h(
    "dl",
    { class: "fields" },
    pairs.map(([name, value]) => [h("dt", {}, name), h("dd", {}, value instanceof Node ? value : text(value))]),
  );
}

function table(id, headers, data, cells) {
  if (!data.length) return h("p", { class: "hint", id }, "None.");
  return h(
    "table",
    { class: "grid compact", id },
    h("thead", {}, h("tr", {}, headers.map((x) => h("th", { scope: "col" }, x)))),
    h("tbody", {}, data.map((item) => h("tr", {}, cells(item).map((c) => h("td", {}, c instanceof Node ? c : text(c)))))),
  );
}

function section(id, title, ...body) {
  return h("section", { class: "device-section", id, "aria-labelledby": `${id}-title` }, h("h2", { id: `${id}-title` }, title), ...body);
}

function userSet(d, field, value) {
  if (!overridden(d, field)) return text(value);
  return h("span", {}, text(value), " ", h("span", { class: "badge override", title: "Set by a user: it wins over the sensor's guess" }, "set by user"));
}

function identity(d) {
  return section(
    "identity",
    "Identity",
    fields([
      ["Name", userSet(d, "name", d.name)],
      ["IP address", d.ip],
      ["MAC address", d.mac],
      ["VLAN", d.vlan],
      ["Vendor", d.vendor],
      ["Model", d.model],
      ["Firmware", d.firmware],
      ["Sensor", d.sensor_id],
      ["Sensor's device id", d.sensor_device_id],
      ["First seen", time(d.first_seen)],
      ["Last seen", time(d.last_seen)],
      ["Learned", d.learned ? "yes: part of the baseline" : "no: new since learning"],
      ["Packets in / out", `${count(d.packets_in ?? 0)} / ${count(d.packets_out ?? 0)}`],
      ["Bytes in / out", `${bytes(d.bytes_in ?? 0)} / ${bytes(d.bytes_out ?? 0)}`],
    ]),
    h("h3", {}, "Names and where they come from"),
    table("names", ["Name", "Source"], Object.entries(d.names || {}), ([name, source]) => [name, source && source.source ? source.source : source]),
  );
}

const FIELD_NAMES = { name: "name", type: "type", purdue_level: "Purdue level" };

function changeText(set) {
  return Object.entries(set || {})
    .filter(([k]) => k in FIELD_NAMES)
    .map(([k, v]) => `${FIELD_NAMES[k]} ${v === null || v === "" ? "back to the guess" : `→ ${v}`}`)
    .join(", ");
}

/** A change made at central that the sensor has not applied yet (or refused). */
function pendingNote(d) {
  const p = d.pending_override;
  if (p) {
    const what = changeText(p.set);
    const who = p.by ? ` (${p.by}, ${time(p.at)})` : "";
    return h("p", { class: "pending", id: "pending" }, `Pending until the sensor applies it${what ? ": " + what : ""}${who}.`);
  }
  const last = (d.overrides || {}).central;
  if (last && last.state && !["pending", "applied"].includes(last.state)) {
    return h("p", { class: "pending error", id: "pending" }, `The sensor did not apply the last change (${changeText(last.set)}): ${last.reason || last.state}.`);
  }
  return null;
}

function editForm(d) {
  const o = d.overrides || {};
  const current = o.type || "";
  const typeOptions = [h("option", { value: "" }, "(the sensor's guess)"), ...TYPES.map((t) => h("option", { value: t, selected: t === current }, t))];
  if (current && !TYPES.includes(current)) typeOptions.push(h("option", { value: current, selected: true }, current));
  const level = o.purdue_level === null || o.purdue_level === undefined ? "" : String(o.purdue_level);
  const form = h(
    "form",
    { id: "edit-form", class: "edit-form" },
    h("label", { for: "edit-name" }, "Name"),
    h("input", { id: "edit-name", maxlength: "200", value: o.name || "", placeholder: d.name || "" }),
    h("label", { for: "edit-type" }, "Type"),
    h("select", { id: "edit-type" }, typeOptions),
    h("label", { for: "edit-purdue" }, "Purdue level"),
    h(
      "select",
      { id: "edit-purdue" },
      h("option", { value: "" }, "(the sensor's guess)"),
      [0, 1, 2, 3, 4, 5].map((n) => h("option", { value: String(n), selected: String(n) === level }, `Level ${n}`)),
    ),
    h("span", {}),
    h("span", {}, h("button", { type: "submit", class: "primary" }, "Save"), " ", h("span", { id: "edit-status", role: "status" })),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const purdueValue = $("#edit-purdue").value;
    const wanted = {
      name: $("#edit-name").value.trim() || null,
      type: $("#edit-type").value || null,
      purdue_level: purdueValue === "" ? null : Number(purdueValue),
    };
    const before = { name: o.name || null, type: o.type || null, purdue_level: o.purdue_level ?? null };
    const body = Object.fromEntries(Object.entries(wanted).filter(([k, v]) => v !== before[k]));
    const status = $("#edit-status");
    status.className = "";
    if (!Object.keys(body).length) {
      status.textContent = "Nothing to change.";
      return;
    }
    status.textContent = "Saving…";
    try {
      await api(`/devices/${encodeURIComponent(deviceId)}`, { method: "PATCH", body });
    } catch (err) {
      status.textContent = err.status === 403 ? "Not allowed: only an admin can change devices." : `Not saved: ${err.message}`;
      status.className = "error";
      return;
    }
    await reload();
    const after = $("#edit-status");
    if (after) after.textContent = "Saved: sent to the sensor.";
  });
  return form;
}

function classification(d) {
  return section(
    "classification",
    "Type and Purdue level",
    fields([
      ["Type", userSet(d, "type", d.type)],
      ["Purdue level", userSet(d, "purdue_level", purdue(d.purdue_level))],
      ["Why", overridden(d, "type") ? "set by a user" : d.type_reason],
    ]),
    pendingNote(d),
    admin ? h("h3", {}, "Change name, type or Purdue level") : null,
    admin ? editForm(d) : null,
    admin ? h("p", { class: "hint" }, "A change is sent to the sensor that owns the device and wins over its guesses; empty fields go back to the guess.") : null,
  );
}

function facts(d) {
  return section(
    "facts",
    "Facts",
    table("facts-table", ["Field", "Value", "Source", "Seen"], d.facts || [], (f) => [f.field, f.value, f.source, time(f.seen)]),
  );
}

function history(d) {
  return section(
    "history",
    "MAC and IP history",
    table("mac-history", ["MAC", "First seen", "Last seen"], d.mac_history || [], (m) => [m.mac, time(m.first_seen), time(m.last_seen)]),
    d.mac ? h("h3", {}, "Other IP addresses of its MAC") : null,
    d.mac ? h("div", { id: "mac-ips" }, h("p", { class: "hint" }, "Loading…")) : null,
  );
}

/** The sensor's other devices with this device's MAC (an IP that moved, a router): found
 * with the list's search, which covers MACs. */
async function otherAddresses(d) {
  const box = $("#mac-ips");
  if (!box) return;
  let data;
  try {
    data = await api("/devices" + query({ search: d.mac, sensor: d.sensor_id, limit: 100 }));
  } catch (err) {
    fill(box, h("p", { class: "error" }, `Could not list them: ${err.message}`));
    return;
  }
  const others = (data.items || []).filter((o) => o.mac === d.mac && o.id !== d.id);
  fill(
    box,
    table("ip-history", ["IP", "Name", "First seen", "Last seen"], others, (o) => [
      h("a", { href: deviceHref(o.id) }, o.ip || o.key),
      o.name,
      time(o.first_seen),
      time(o.last_seen),
    ]),
  );
}

function traffic(d) {
  const peers = d.peer_addresses || [];
  return section(
    "traffic",
    "Protocols, services and peers",
    fields([
      ["Protocols", d.protocols || []],
      ["Peers", peers.length < (d.peers ?? 0) ? `${count(d.peers)} (first ${peers.length} listed)` : count(d.peers ?? peers.length)],
    ]),
    h("h3", {}, "Services"),
    (d.services || []).length ? h("ul", { class: "plain", id: "services" }, d.services.map((s) => h("li", {}, s))) : h("p", { class: "hint", id: "services" }, "None."),
    h("h3", {}, "Peers"),
    peers.length ? h("ul", { class: "peers", id: "peers" }, peers.map((p) => h("li", {}, p))) : h("p", { class: "hint", id: "peers" }, "None."),
    (d.evidence || []).length ? h("h3", {}, "Evidence for the type") : null,
    (d.evidence || []).length ? h("ul", { class: "plain", id: "evidence" }, d.evidence.map((e) => h("li", {}, text(e)))) : null,
  );
}

function alerts(d) {
  return section(
    "alerts",
    "Recent alerts",
    table("alerts-table", ["Name", "Severity", "Status", "Last detection"], d.recent_alerts || [], (a) => [
      h("a", { href: `/alerts/${encodeURIComponent(a.id)}` }, a.name || a.id),
      severityBadge(a.severity),
      statusBadge(a.status),
      time(a.last_detection),
    ]),
  );
}

async function reload() {
  let d;
  try {
    d = await api(`/devices/${encodeURIComponent(deviceId)}`);
  } catch (err) {
    const box = $("#device-error");
    box.textContent = err instanceof ApiError && err.status === 404 ? `Device ${deviceId} does not exist.` : `Could not load the device: ${err.message}`;
    show(box);
    document.body.dataset.loading = "false";
    return;
  }
  show($("#device-error"), false);
  const label = deviceLabel(d);
  document.title = `${label} · otwatch`;
  fill($("#device-title"), label);
  fill($("#device-badges"), d.type ? h("span", { class: "badge" }, d.type) : null, " ", learnedBadge(d.learned));
  fill($("#device-body"), identity(d), classification(d), facts(d), history(d), traffic(d), alerts(d));
  await otherAddresses(d);
  document.body.dataset.loading = "false";
}

initPage();
if (document.referrer && new URL(document.referrer).origin === location.origin && new URL(document.referrer).pathname === "/devices") {
  $("#back").href = new URL(document.referrer).pathname + new URL(document.referrer).search;
}
document.body.dataset.loading = "true";
reload();
