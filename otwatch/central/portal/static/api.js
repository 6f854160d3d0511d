// Calls to central's /api/v1 with the session cookie and the CSRF header (portal contract).
// A 401 (session expired or signed out elsewhere) goes to the sign-in page and back.

export const API = "/api/v1";

export class ApiError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
  }
}

export function csrfToken() {
  const meta = document.querySelector('meta[name="csrf-token"]');
  return meta ? meta.content : "";
}

export function signInAgain() {
  const here = location.pathname + location.search;
  location.assign("/login?next=" + encodeURIComponent(here));
}

function detailText(data) {
  if (!data || data.detail === undefined) return "";
  if (typeof data.detail === "string") return data.detail;
  if (Array.isArray(data.detail)) {
    return data.detail.map((d) => (d && d.msg ? `${(d.loc || []).slice(1).join(".")}: ${d.msg}` : String(d))).join("; ");
  }
  return JSON.stringify(data.detail);
}

/** JSON from central; throws ApiError with the server's words. */
export async function api(path, { method = "GET", body, signal } = {}) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET" && method !== "HEAD") headers["X-CSRF-Token"] = csrfToken();
  let response;
  try {
    const url = path.startsWith("/auth/") ? path : API + path;
    response = await fetch(url, {
      method,
      headers,
      credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
      signal,
    });
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiError(0, "central did not answer (network error): " + err.message);
  }
  if (response.status === 401 && !path.startsWith("/auth/")) {
    signInAgain();
    throw new ApiError(401, "your session has ended: sign in again");
  }
  let data = null;
  if (response.status !== 204) {
    try {
      data = await response.json();
    } catch {
      data = null;
    }
  }
  if (!response.ok) {
    throw new ApiError(response.status, detailText(data) || `${response.status} ${response.statusText}`);
  }
  return data;
}

/** A query string from {key: value | [values]}, skipping empty values. */
export function query(params) {
  const out = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    for (const v of Array.isArray(value) ? value : [value]) {
      if (v !== undefined && v !== null && v !== "") out.append(key, String(v));
    }
  }
  const text = out.toString();
  return text ? "?" + text : "";
}
