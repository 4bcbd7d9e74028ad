// Live updates: one EventSource on /api/v1/events per page. Each event is re-dispatched on
// `document` as "live:<type>" (detail: the event's JSON). The browser reconnects by itself
// when the server ends a stream (it does every few minutes) and resumes with Last-Event-ID;
// when the stream fails for good (the appliance restarted, the session ended) we reconnect
// with backoff and dispatch "live:resync" so screens reload what they show.

import { signInAgain } from "./api.js";

const TYPES = ["message.created", "message.updated", "conversation.updated", "conversation.assigned",
  "contact.created", "contact.updated", "contact.deleted"];

let source = null;
let retry = 1000;
let started = false;

function setStatus(state, text) {
  const box = document.getElementById("live-status");
  if (!box) return;
  box.dataset.state = state;
  const label = box.querySelector(".live-text");
  if (label) label.textContent = text;
  box.title = text;
}

async function sessionAlive() {
  try {
    const response = await fetch("/api/v1/me", { credentials: "same-origin" });
    return response.status !== 401;
  } catch {
    return true; // offline: keep trying
  }
}

function open(resync) {
  source = new EventSource("/api/v1/events");
  source.addEventListener("open", () => {
    retry = 1000;
    setStatus("live", "Live");
    if (resync) document.dispatchEvent(new CustomEvent("live:resync"));
    resync = false;
  });
  source.addEventListener("error", async () => {
    if (source.readyState === EventSource.CONNECTING) {
      setStatus("connecting", "Reconnecting…");
      return;
    }
    source.close();
    setStatus("offline", "Offline, retrying…");
    if (!(await sessionAlive())) {
      signInAgain();
      return;
    }
    setTimeout(() => open(true), retry);
    retry = Math.min(retry * 2, 30000);
  });
  for (const type of TYPES) {
    source.addEventListener(type, (event) => {
      let detail;
      try {
        detail = JSON.parse(event.data);
      } catch {
        return;
      }
      document.dispatchEvent(new CustomEvent(`live:${type}`, { detail }));
    });
  }
}

/** Starts the page's live connection (once). */
export function startLive() {
  if (started || !("EventSource" in window)) return;
  started = true;
  open(false);
  window.addEventListener("pagehide", () => source && source.close());
}

/** on("message.created", (detail) => ...) */
export function on(type, handler) {
  document.addEventListener(`live:${type}`, (event) => handler(event.detail || {}));
}
