// The broadcasts list: live progress (GET /api/v1/broadcasts every POLL_MS while a broadcast is
// sending or scheduled: broadcasts emit no live events), send/resume, pause and cancel (with a
// confirmation), and syncing the WhatsApp template catalogue.

import { api, errorText } from "./api.js";
import { busy, toast } from "./ui.js";

const POLL_MS = 1500;
const ACTIVE = new Set(["scheduled", "sending"]);
const LABELS = { draft: "Draft", scheduled: "Scheduled", sending: "Sending", paused: "Paused", completed: "Completed",
  cancelled: "Cancelled" };
const CHIPS = { sending: "chip-ok", scheduled: "chip-note", paused: "chip-warn", cancelled: "chip-danger" };
const REASONS = { no_channel: "no channel", unsubscribed: "unsubscribed", marketing_opt_out: "marketing opt-out",
  outside_window: "outside the 24-hour window", cancelled: "cancelled" };

const table = document.getElementById("broadcasts-table");
let timer = null;

/** Shows one broadcast (the API shape) in its row. */
function update(row, b) {
  const c = b.counts;
  row.dataset.status = b.status;
  const chip = row.querySelector(".b-status");
  chip.className = `chip ${CHIPS[b.status] || ""} b-status`;
  chip.textContent = LABELS[b.status] || b.status;
  const done = c.sent + c.failed + c.skipped;
  const known = b.progress.audience_complete || b.status === "completed" || b.status === "cancelled";
  const bar = row.querySelector(".b-progress");
  if (known) bar.value = c.total ? Math.round((100 * done) / c.total) : 100;
  else bar.removeAttribute("value");
  row.querySelector(".b-done").textContent = `${done} of ${c.total}${known ? "" : " (counting the audience…)"}`;
  for (const key of ["sent", "delivered", "read", "failed", "skipped"]) {
    row.querySelector(`[data-count=${key}]`).textContent = `${c[key]} ${key}`;
  }
  row.querySelector(".b-reasons").textContent = Object.entries(b.skipped_reasons).sort()
    .map(([reason, n]) => `${REASONS[reason] || reason}: ${n}`).join("; ");
  const start = row.querySelector("[data-action=start]");
  start.hidden = !["draft", "paused"].includes(b.status);
  start.textContent = b.status === "paused" ? "Resume" : "Send";
  start.setAttribute("aria-label", `${start.textContent} ${b.name}`);
  row.querySelector("[data-action=pause]").hidden = !ACTIVE.has(b.status);
  row.querySelector("[data-action=cancel]").hidden = ["completed", "cancelled"].includes(b.status);
}

function anyActive() {
  return [...table.querySelectorAll("tbody tr")].some((row) => ACTIVE.has(row.dataset.status));
}

async function refresh() {
  timer = null;
  try {
    const page = await api("GET", "/api/v1/broadcasts?limit=100");
    for (const b of page.items) {
      const row = table.querySelector(`tr[data-broadcast-id="${CSS.escape(b.id)}"]`);
      if (row) update(row, b);
    }
  } catch (err) {
    if (err.status === 401) return;
  }
  schedule();
}

function schedule() {
  if (!timer && anyActive() && !document.hidden) timer = setTimeout(refresh, POLL_MS);
}

async function act(row, action, button) {
  await busy(button, async () => {
    try {
      update(row, await api("POST", `/api/v1/broadcasts/${row.dataset.broadcastId}/${action}`));
      schedule();
    } catch (err) {
      toast(errorText(err), "error");
    }
  });
}

if (table) {
  const dialog = document.getElementById("cancel-dialog");
  let cancelling = null;
  table.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-action]");
    if (!button) return;
    const row = button.closest("tr");
    if (button.dataset.action === "cancel") {
      cancelling = { row, button };
      dialog.showModal();
      return;
    }
    act(row, button.dataset.action, button);
  });
  document.getElementById("cancel-keep").addEventListener("click", () => dialog.close());
  document.getElementById("cancel-form").addEventListener("submit", (event) => {
    event.preventDefault();
    dialog.close();
    if (cancelling) act(cancelling.row, "cancel", cancelling.button);
    cancelling = null;
  });
  document.addEventListener("visibilitychange", schedule);
  document.addEventListener("live:resync", refresh);
  schedule();
}

const sync = document.getElementById("sync-templates");
if (sync) {
  sync.addEventListener("click", () => busy(sync, async () => {
    try {
      const result = await api("POST", "/api/v1/templates/sync", {});
      const total = (result.accounts || []).reduce((n, a) => n + (a.templates || 0), 0);
      const status = document.getElementById("templates-count");
      status.textContent = `The catalogue was synced from Meta: ${total} template${total === 1 ? "" : "s"}.`;
    } catch (err) {
      toast(errorText(err), "error");
    }
  }));
}
