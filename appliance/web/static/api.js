// The JSON API from the pages: same-origin fetch with the session cookie, the CSRF token from
// <meta name="csrf-token"> on every change, and errors turned into sentences for people.

const SAFE = new Set(["GET", "HEAD"]);

export class ApiError extends Error {
  constructor(status, code, message, details = []) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details;
  }
}

export function csrfToken() {
  const meta = document.querySelector('meta[name="csrf-token"]');
  return meta ? meta.content : "";
}

/** Sends the browser to sign in again, back to this page afterwards. */
export function signInAgain() {
  const here = location.pathname + location.search;
  location.assign(`/signin?next=${encodeURIComponent(here)}`);
}

/**
 * api("POST", "/api/v1/conversations/7/close") -> the JSON answer (null for 204).
 * body: an object (sent as JSON), FormData, or a Blob/File (sent as is).
 * Throws ApiError with the server's message; a 401 sends the browser to sign in.
 */
export async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  if (!SAFE.has(method)) headers["X-CSRF-Token"] = csrfToken();
  let payload;
  if (body instanceof FormData) {
    payload = body;
  } else if (body instanceof Blob) {
    payload = body;
    headers["Content-Type"] = body.type || "application/octet-stream";
  } else if (body !== undefined) {
    payload = JSON.stringify(body);
    headers["Content-Type"] = "application/json";
  }
  let response;
  try {
    response = await fetch(path, { method, headers, body: payload, credentials: "same-origin" });
  } catch (err) {
    throw new ApiError(0, "network", "The appliance could not be reached. Check your connection and try again.");
  }
  if (response.status === 401) {
    signInAgain();
    throw new ApiError(401, "unauthorized", "Your session ended. Sign in again.");
  }
  if (response.status === 204) return null;
  const type = response.headers.get("content-type") || "";
  const data = type.includes("json") ? await response.json().catch(() => null) : null;
  if (!response.ok) {
    const error = (data && data.error) || {};
    throw new ApiError(response.status, error.code || `http_${response.status}`,
      error.message || `The request failed (HTTP ${response.status}).`, error.details || []);
  }
  return data;
}

/** The error as one sentence a person can act on, with the fields it names. */
export function errorText(err) {
  if (!(err instanceof ApiError)) return String(err && err.message ? err.message : err);
  const details = (err.details || []).slice(0, 5).map((d) => `${d.path}: ${d.message}`);
  return details.length ? `${err.message} (${details.join("; ")})` : err.message;
}

/**
 * A server-rendered fragment (an HTML page of ours): the element marked data-fragment, parsed
 * inertly with DOMParser (scripts in it never run) and adopted into this document. The server
 * escaped every value in it; nothing here builds markup from data.
 */
export async function fragment(url) {
  const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "text/html" } });
  if (response.status === 401) {
    signInAgain();
    throw new ApiError(401, "unauthorized", "Your session ended. Sign in again.");
  }
  const html = await response.text();
  const doc = new DOMParser().parseFromString(html, "text/html");
  const root = doc.querySelector("[data-fragment]");
  if (!root) throw new ApiError(response.status, "bad_fragment", "The page could not be updated; reload it.");
  return { status: response.status, root: document.adoptNode(root) };
}
