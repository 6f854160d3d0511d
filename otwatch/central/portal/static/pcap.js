// Download PCAP: central asks the sensor for the alert's packets (on-demand pull); the page
// follows the request (waiting for the sensor → transferring n% → verified) and then hands the
// verified file to the browser. Failures are said in words, with Retry.
import { api } from "./api.js";
import { $, show } from "./dom.js";
import { bytes } from "./format.js";

const POLL_MS = 400;
const OFFLINE_POLL_MS = 3000;

export function initPcap(alertId) {
  const button = $("#pcap");
  if (!button) return;
  const status = $("#pcap-status");
  const bar = $("#pcap-progress");
  const retry = $("#pcap-retry");
  let run = 0; // each start (or Retry) supersedes the request followed before

  function say(message, { progress = null, failed = false } = {}) {
    status.textContent = message;
    status.classList.toggle("error", failed);
    show(bar, progress !== null);
    if (progress !== null) {
      if (progress < 0) bar.removeAttribute("value");
      else bar.value = progress;
    }
    show(retry, failed);
  }

  function download(view) {
    const link = document.createElement("a");
    link.href = view.download;
    link.download = `alert-${alertId}.pcap`;
    document.body.append(link);
    link.click();
    link.remove();
  }

  async function follow(view, mine) {
    for (;;) {
      if (mine !== run) return;
      const state = view.state;
      if (state === "done") {
        say(`Verified: ${bytes(view.size)}, SHA-256 ${view.sha256}. Downloading…`, { progress: 100 });
        download(view);
        say(`Verified and downloaded: ${bytes(view.size)}, SHA-256 ${view.sha256}.`, { progress: 100 });
        return;
      }
      if (state === "not_available") {
        return say(`The sensor no longer has this alert's packets: ${view.reason || view.message || "evidence gone"}.`, { failed: true });
      }
      if (state === "failed" || state === "expired") {
        return say(`The PCAP request ${state}: ${view.message || view.reason || "no reason given"}.`, { failed: true });
      }
      let wait = POLL_MS;
      if (view.sensor_online === false) {
        say(`Sensor ${view.sensor} is offline: the request is queued and completes when it returns.`, { progress: -1 });
        show(retry, true);
        wait = OFFLINE_POLL_MS;
      } else if (view.chunks_total) {
        const pct = Math.floor((100 * (view.chunks_received || 0)) / view.chunks_total);
        say(`Transferring from sensor ${view.sensor}: ${pct}%`, { progress: pct });
      } else {
        say(`Waiting for sensor ${view.sensor}…`, { progress: -1 });
      }
      await new Promise((resolve) => setTimeout(resolve, wait));
      if (mine !== run) return;
      view = await api(`/pcap/${encodeURIComponent(view.request_id)}`);
    }
  }

  async function start(fresh) {
    const mine = ++run;
    button.disabled = true;
    show(retry, false);
    say("Asking central for the PCAP…", { progress: -1 });
    try {
      const view = await api(`/alerts/${encodeURIComponent(alertId)}/pcap${fresh ? "?fresh=true" : ""}`, { method: "POST" });
      await follow(view, mine);
    } catch (err) {
      if (mine === run) say(`Download PCAP failed: ${err.message}`, { failed: true });
    } finally {
      if (mine === run) button.disabled = false;
    }
  }

  button.addEventListener("click", () => start(false));
  retry.addEventListener("click", () => start(true));
}
