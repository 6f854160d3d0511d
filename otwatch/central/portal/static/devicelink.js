// An alert's source or destination as the pages show it: the device's name (its address when
// it has none) linking to the device's page when central knows the device, then the address
// and MAC. Device names come from the network: text only.
import { h } from "./dom.js";
import { deviceHref } from "./devicecolumns.js";

/** `e`: {name, address, mac, deviceId}; `id` names the link (for tests and labels). */
export function entityView(e, id) {
  const rest = [e.address, e.mac].filter((v) => v && v !== e.name);
  if (e.deviceId !== undefined && e.deviceId !== null) {
    const link = h("a", { href: deviceHref(e.deviceId), class: "device-link", id }, e.name || e.address || e.mac || `device ${e.deviceId}`);
    return h("span", {}, link, rest.length ? ` · ${rest.join(" · ")}` : "");
  }
  const parts = [e.name, e.address, e.mac].filter(Boolean);
  return h("span", {}, parts.length ? parts.join(" · ") : "—");
}
