// The Devices grid's columns (the `otwatch devices list` columns), how each cell reads, and
// the API sort key of each. Names, vendors and models come from the network (DHCP, DNS,
// device identification): they are attacker-controlled and only ever set as text.
import { h } from "./dom.js";
import { shortTime as time } from "./format.js";

export function deviceHref(id) {
  return `/devices/${encodeURIComponent(id)}`;
}

/** The name a device is shown by: its name, else its address, MAC or key. */
export function deviceLabel(d) {
  return d.name || d.ip || d.mac || d.key || `device ${d.id}`;
}

export function learnedBadge(learned) {
  return learned
    ? h("span", { class: "badge learned" }, "learned")
    : h("span", { class: "badge new-device" }, "new");
}

export function purdue(level) {
  return level === null || level === undefined || level === "" ? "" : `Level ${level}`;
}

/** "(override)" beside a value the user set; the guess otherwise. */
export function overridden(d, field) {
  const o = d.overrides || {};
  return o[field] !== null && o[field] !== undefined && o[field] !== "";
}

/** A time that wraps between its date and its time of day only. */
function when(iso) {
  const [day, hour] = time(iso).split(" ");
  return hour ? h("span", { class: "when" }, h("span", {}, day), " ", h("span", {}, hour)) : day;
}

export const DEVICE_COLUMNS = {
  name: {
    label: "Name",
    sort: "name",
    cell: (d) => h("a", { href: deviceHref(d.id), class: "device-link" }, deviceLabel(d)),
  },
  ip: { label: "IP", sort: "ip", cell: (d) => d.ip },
  mac: { label: "MAC", sort: "mac", cell: (d) => d.mac },
  vendor: { label: "Vendor", sort: "vendor", cell: (d) => d.vendor },
  model: { label: "Model", sort: "model", cell: (d) => d.model },
  firmware: { label: "Firmware", sort: "firmware", cell: (d) => d.firmware },
  type: { label: "Type", sort: "type", cell: (d) => d.type },
  purdue_level: { label: "Purdue", sort: "purdue_level", cell: (d) => purdue(d.purdue_level) },
  protocols: { label: "Protocols", sort: "protocols", cell: (d) => d.protocols || [] },
  sensor: { label: "Sensor", sort: "sensor", cell: (d) => d.sensor_id },
  first_seen: { label: "First seen", sort: "first_seen", cell: (d) => when(d.first_seen) },
  last_seen: { label: "Last seen", sort: "last_seen", cell: (d) => when(d.last_seen) },
  learned: { label: "Learned", sort: "learned", cell: (d) => learnedBadge(d.learned) },
};

export const DEVICE_COLUMN_ORDER = Object.keys(DEVICE_COLUMNS);
