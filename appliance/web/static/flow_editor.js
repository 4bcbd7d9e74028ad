// The flow builder: one document in memory, edited by the canvas (move, connect), the side
// panel's forms and the keyboard; every finished edit is an undo step. Save stores the draft
// (PUT, or POST for a new flow), Publish saves then freezes a version; the API's
// {path, message} errors are shown on the nodes and fields they name. Stats, the preview chat
// and the version history read the same API.

import { api, errorText } from "./api.js";
import { Canvas } from "./flow_canvas.js";
import { renderFlowForm, renderStepForm } from "./flow_forms.js";
import {
  STEP_TYPES, addStep, autoLayout, blankDocument, canonical, cleanDocument, deleteStep, duplicateStep, ports, renameStep, setTarget,
} from "./flow_model.js";
import { Preview } from "./flow_preview.js";
import { busy, el, toast } from "./ui.js";

const root = document.getElementById("builder");
const $ = (id) => document.getElementById(id);
const HISTORY_LIMIT = 200;

const state = {
  id: root.dataset.flowId || null,
  doc: blankDocument(),
  saved: null, // JSON of the last saved document
  selected: null,
  selectedEdge: null,
  errors: [], // [{path, message}] from the API
  stats: null,
  undo: [],
  redo: [],
  status: null,
};

const canvas = new Canvas($("canvas"), {
  select: (id) => select(id),
  edge: (edge) => {
    const before = state.selectedEdge;
    if (state.selected) canvas.markSelected(null);
    state.selected = null;
    state.selectedEdge = edge;
    redraw({ changed: [edge.from, before && before.from].filter(Boolean) });
  },
  move: (id, x, y, done) => {
    state.doc.layout[id] = { x, y };
    touch([id]);
    if (done) { record([id]); markDirtySoon(); }
  },
  connect: (from, port, to) => edit((doc) => setTarget(doc.steps[from], port, to), { changed: [from] }),
});

// --- edits and undo ----------------------------------------------------------------------

let last = JSON.stringify(state.doc);
// The steps changed since the last undo record, or null when something untracked changed (the
// flow's own fields, a load): undo and redo redraw just these steps, or compare every step.
let touched = new Set();

function touch(ids) {
  if (touched === null) return;
  if (!ids) touched = null;
  else for (const id of ids) touched.add(id);
}

/** Remembers the document as it was before the edit just made (call after each finished edit),
 * with the steps that edit changed (ids; none given: unknown). */
function record(ids) {
  touch(ids);
  const now = JSON.stringify(state.doc);
  const changed = touched && touched.size ? [...touched] : null; // none seen: compare every step
  touched = new Set();
  if (now === last) return;
  state.undo.push({ json: last, changed });
  if (state.undo.length > HISTORY_LIMIT) state.undo.shift();
  state.redo = [];
  last = now;
  tools();
}

/** Applies fn to the document as one undo step. changed: the step ids fn may touch (content,
 * position, start mark) as a list or a function returning one after fn ran; without it the
 * whole canvas is compared (renames, the flow's own fields). */
function edit(fn, { form = true, changed = null } = {}) {
  const count = Object.keys(state.doc.steps).length;
  fn(state.doc);
  const ids = typeof changed === "function" ? changed() : changed;
  record(ids);
  markDirtySoon(); // comparing with the saved document is O(steps): once the edits pause
  // The side panel shows the selected step (or the flow): redraw it when that step changed or
  // steps came or went (its step pickers list them), not for an edit elsewhere on the canvas.
  const panel = form && (!ids || ids.includes(state.selected) || Object.keys(state.doc.steps).length !== count);
  redraw({ form: panel, changed: ids });
}

/** Goes to a remembered document. entry.changed: the steps that differ from the current one
 * (with any not yet recorded), so only those are redrawn; null: every step is compared. */
function restore(entry) {
  const changed = entry.changed && touched ? [...entry.changed, ...touched] : null;
  const count = Object.keys(state.doc.steps).length;
  touched = new Set();
  state.doc = JSON.parse(entry.json);
  last = entry.json;
  if (state.selected && !(state.selected in state.doc.steps)) state.selected = null;
  markDirtySoon();
  // The side panel is redrawn unless it shows a step this undo did not touch and the steps are
  // the same ones (its fields edit state.doc as it is when they fire, so they stay right).
  const steady = changed && state.selected && !changed.includes(state.selected) && Object.keys(state.doc.steps).length === count;
  redraw({ changed, form: !steady });
  tools();
}

function undo() {
  if (!state.undo.length) return;
  const entry = state.undo.pop();
  state.redo.push({ json: last, changed: entry.changed });
  restore(entry);
}

function redo() {
  if (!state.redo.length) return;
  const entry = state.redo.pop();
  state.undo.push({ json: last, changed: entry.changed });
  restore(entry);
}

function tools() {
  $("undo").disabled = !state.undo.length;
  $("redo").disabled = !state.redo.length;
}

function markDirty() {
  const dirty = canonical(cleanDocument(state.doc)) !== state.saved;
  root.classList.toggle("dirty", dirty);
  const chip = $("flow-status");
  const label = !state.id ? "Not saved yet" : dirty ? "Unsaved changes"
    : state.status === "published" ? (state.changed ? "Draft differs from the live version" : "Published") : "Draft";
  chip.textContent = label;
  chip.className = `chip ${dirty || !state.id ? "chip-warn" : state.status === "published" && !state.changed ? "chip-ok" : ""}`;
  $("flow-title").textContent = state.doc.name || "Untitled flow";
}

let dirtyTimer = null;
function markDirtySoon() {
  clearTimeout(dirtyTimer);
  dirtyTimer = setTimeout(markDirty, 150);
}

// --- drawing -----------------------------------------------------------------------------

function stepErrors() {
  const byStep = {};
  for (const e of state.errors) {
    const m = /^steps\.([^.]+)(?:\.(.*))?$/.exec(e.path);
    if (m && m[1] in state.doc.steps) (byStep[m[1]] = byStep[m[1]] || []).push(m[2] ? `${m[2]}: ${e.message}` : e.message);
  }
  return byStep;
}

function view() {
  return { selected: state.selected, selectedEdge: state.selectedEdge, errors: stepErrors(), stats: state.stats };
}

function redraw({ form = true, changed = null } = {}) {
  canvas.render(state.doc, view(), changed ? { changed } : {});
  $("canvas-empty").hidden = Object.keys(state.doc.steps).length > 0;
  if (form) drawForm();
}

function drawForm() {
  const panel = $("side-panel");
  const id = state.selected;
  const ctx = {
    get doc() { return state.doc; }, // the current document, also after an undo that kept this form
    id,
    update: (fn, final) => {
      fn(state.doc);
      if (final) record(id ? [id] : null); else touch(id ? [id] : null);
      markDirtySoon(); // comparing documents is O(steps): once typing pauses, not per keystroke
      if (id) canvas.renderStep(id, state.doc, view());
      else if (final) redraw({ form: false }); // the flow's own fields: only `start` shows on the canvas
    },
    restructure: (fn) => edit(fn, { changed: id ? [id] : null }),
    rename: (from, to) => { state.selected = to; edit((doc) => renameStep(doc, from, to)); },
    action: (name) => {
      if (name === "make-start") { const was = state.doc.start; edit((doc) => { doc.start = id; }, { changed: [was, id] }); }
      if (name === "duplicate-step") duplicate();
      if (name === "delete-step") remove();
    },
  };
  if (id) {
    const prefix = `steps.${id}`;
    ctx.errors = state.errors.filter((e) => e.path === prefix || e.path.startsWith(`${prefix}.`))
      .map((e) => ({ sub: e.path.slice(prefix.length + 1), message: e.message }));
    renderStepForm(panel, ctx);
  } else {
    ctx.errors = state.errors.filter((e) => !e.path.startsWith("steps.") || !(e.path.split(".")[1] in state.doc.steps))
      .map((e) => ({ sub: e.path, message: e.message }));
    renderFlowForm(panel, ctx);
  }
}

function select(id) {
  if (state.selected === id && !state.selectedEdge) return;
  const hadEdge = state.selectedEdge;
  state.selected = id;
  state.selectedEdge = null;
  if (hadEdge) redraw({ changed: [hadEdge.from, id].filter(Boolean) });
  else { canvas.markSelected(id); drawForm(); }
}

function showErrors(errors, heading) {
  state.errors = errors;
  const box = $("error-summary");
  if (!errors.length) { box.hidden = true; box.replaceChildren(); return; }
  box.replaceChildren(el("strong", { text: heading }), el("ul", {}, errors.slice(0, 20).map((e) => {
    const m = /^steps\.([^.]+)/.exec(e.path);
    const item = el("li", {}, e.path ? el("code", { text: e.path }) : null, ` ${e.message}`);
    if (m && m[1] in state.doc.steps) {
      const go = el("button", { type: "button", class: "link-button", text: "Show" });
      go.addEventListener("click", () => { select(m[1]); canvas.reveal(m[1]); });
      item.append(" ", go);
    }
    return item;
  })));
  box.hidden = false;
}

// --- palette and keyboard ----------------------------------------------------------------

for (const [type, { label }] of Object.entries(STEP_TYPES)) {
  const button = el("button", { type: "button", class: `palette-item type-${type}`, dataset: { type }, text: label,
    "aria-label": `Add a ${label} step` });
  button.addEventListener("click", () => add(type));
  $("palette").append(button);
}

/** A new step goes to the right of the selected one (the next in a chain), else at the middle
 * of the view; then down until it overlaps no other step. */
function freeSpot(at) {
  const spots = Object.values(state.doc.layout || {});
  while (spots.some((p) => Math.abs(p.x - at.x) < 250 && Math.abs(p.y - at.y) < 250)) at.y += 260;
  return at;
}

function add(type) {
  const from = state.selected && state.doc.layout[state.selected];
  const at = freeSpot(from ? { x: from.x + 300, y: from.y } : canvas.center());
  let id;
  const was = state.doc.start;
  edit((doc) => { id = addStep(doc, type, at); }, { changed: () => [id, was] });
  select(id);
  canvas.reveal(id);
  const node = document.querySelector(`[data-step-id="${id}"]`);
  if (node) node.focus({ preventScroll: true });
}

function duplicate() {
  if (!state.selected) return;
  let id;
  edit((doc) => { id = duplicateStep(doc, state.selected); }, { changed: () => [id] });
  select(id);
}

function remove() {
  if (state.selectedEdge) {
    const { from, port } = state.selectedEdge;
    state.selectedEdge = null;
    edit((doc) => setTarget(doc.steps[from], port, null), { changed: [from] });
    return;
  }
  if (!state.selected) return;
  const id = state.selected;
  state.selected = null;
  // The step, every step with a connection into it, and the next start if it was the start.
  const touched = [id, ...Object.keys(state.doc.steps).filter((s) => ports(state.doc.steps[s]).some((p) => p.target === id))];
  edit((doc) => deleteStep(doc, id), { changed: () => [...touched, state.doc.start] });
  $("canvas").focus();
}

document.addEventListener("keydown", (e) => {
  const typing = e.target.closest("input, textarea, select, [contenteditable]");
  const mod = e.ctrlKey || e.metaKey;
  if (mod && e.key.toLowerCase() === "s") { e.preventDefault(); save(); return; }
  if (typing) return;
  if (mod && e.key.toLowerCase() === "z") { e.preventDefault(); if (e.shiftKey) redo(); else undo(); }
  else if (mod && e.key.toLowerCase() === "y") { e.preventDefault(); redo(); }
  else if (mod && e.key.toLowerCase() === "d") { e.preventDefault(); duplicate(); }
  else if (e.key === "Delete" || e.key === "Backspace") { if (state.selected || state.selectedEdge) { e.preventDefault(); remove(); } }
  else if (e.key === "Escape") select(null);
  else if (e.key.startsWith("Arrow") && state.selected) {
    e.preventDefault();
    const step = e.shiftKey ? 50 : 10;
    const at = state.doc.layout[state.selected];
    const dx = e.key === "ArrowLeft" ? -step : e.key === "ArrowRight" ? step : 0;
    const dy = e.key === "ArrowUp" ? -step : e.key === "ArrowDown" ? step : 0;
    state.doc.layout[state.selected] = { x: at.x + dx, y: at.y + dy };
    canvas.moveNode(state.selected, at.x + dx, at.y + dy);
    record([state.selected]);
    markDirtySoon();
  }
});
$("nodes").addEventListener("focusin", (e) => {
  const node = e.target.closest(".fnode");
  if (node && state.selected !== node.dataset.stepId) select(node.dataset.stepId);
});
$("undo").addEventListener("click", undo);
$("redo").addEventListener("click", redo);
$("zoom-in").addEventListener("click", () => canvas.zoomBy(1.2));
$("zoom-out").addEventListener("click", () => canvas.zoomBy(1 / 1.2));
$("zoom-fit").addEventListener("click", () => canvas.fit());

// --- saving and publishing ---------------------------------------------------------------

function payload() {
  const doc = cleanDocument(state.doc);
  return doc;
}

/** Saves when needed; returns the flow id, or null when the draft could not be saved. */
async function ensureSaved() {
  if (!Object.keys(state.doc.steps).length) {
    showErrors([{ path: "steps", message: "add at least one step first" }], "Nothing to save yet");
    return null;
  }
  const doc = payload();
  const json = canonical(doc);
  if (state.id && json === state.saved) return state.id;
  try {
    const flow = state.id ? await api("PUT", `/api/v1/flows/${state.id}`, doc) : await api("POST", "/api/v1/flows", doc);
    adopt(flow, json);
    showErrors([], "");
    redraw();
    return state.id;
  } catch (err) {
    if (err.code === "invalid_flow") { showErrors(err.details, "The flow was not saved: fix these first"); redraw(); }
    else toast(errorText(err), "error");
    return null;
  }
}

function adopt(flow, json) {
  const isNew = !state.id;
  state.id = flow.id;
  state.status = flow.status;
  state.changed = flow.has_unpublished_changes;
  state.saved = json;
  root.dataset.flowId = flow.id;
  if (isNew) history.replaceState(null, "", `/flows/${flow.id}`);
  markDirty();
}

async function save() {
  await busy($("save"), async () => {
    const id = await ensureSaved();
    if (id) toast("Draft saved.");
  });
}

async function publish() {
  await busy($("publish"), async () => {
    const id = await ensureSaved();
    if (!id) return;
    try {
      const done = await api("POST", `/api/v1/flows/${id}/publish`);
      state.status = "published";
      state.changed = false;
      showErrors([], "");
      redraw();
      markDirty();
      addVersion(done.version);
      const warnings = done.warnings || [];
      toast(`Version ${done.version} is live.${warnings.length ? ` ${warnings.length} warning${warnings.length > 1 ? "s" : ""}: ${warnings[0].path}: ${warnings[0].message}` : ""}`);
    } catch (err) {
      if (err.code === "invalid_flow") { showErrors(err.details, "Not published: fix these first"); redraw(); }
      else toast(errorText(err), "error");
    }
  });
}

$("save").addEventListener("click", save);
$("publish").addEventListener("click", publish);
window.addEventListener("beforeunload", (e) => {
  // Decided now, not from the "dirty" class: that is refreshed 150 ms after the last edit.
  const dirty = canonical(cleanDocument(state.doc)) !== state.saved;
  if (dirty && Object.keys(state.doc.steps).length) e.preventDefault();
});

// --- history, import, export -------------------------------------------------------------

function addVersion(version) {
  const list = $("versions");
  const none = $("no-versions");
  if (none) none.remove();
  for (const chip of list.querySelectorAll(".chip-ok")) chip.remove();
  const button = el("button", { type: "button", class: "secondary small", dataset: { restore: version }, text: "Restore",
    "aria-label": `Restore version ${version}` });
  list.prepend(el("li", { dataset: { version } }, el("div", {}, el("strong", { text: `Version ${version}` }), " ",
    el("span", { class: "chip chip-ok", text: "Live" }), el("div", { class: "muted small", text: "just now" })), button));
}

$("versions").addEventListener("click", async (e) => {
  const button = e.target.closest("[data-restore]");
  if (!button || !state.id) return;
  await busy(button, async () => {
    try {
      const response = await fetch(`/api/v1/flows/${state.id}/export?version=${button.dataset.restore}`, { credentials: "same-origin" });
      if (!response.ok) throw new Error(`The version could not be loaded (HTTP ${response.status}).`);
      load(await response.json());
      record();
      markDirty();
      toast(`Version ${button.dataset.restore} is in the draft now. Save or publish to keep it.`);
    } catch (err) {
      toast(errorText(err), "error");
    }
  });
});

function load(doc) {
  state.doc = { ...blankDocument(), ...doc, layout: doc.layout || {} };
  state.selected = null;
  state.selectedEdge = null;
  autoLayout(state.doc);
  redraw();
}

$("import-file").addEventListener("change", async (e) => {
  const file = e.target.files[0];
  e.target.value = "";
  if (!file) return;
  let doc;
  try {
    doc = JSON.parse(await file.text());
    if (!doc || typeof doc !== "object" || typeof doc.steps !== "object" || doc.steps === null) throw new Error("no steps");
  } catch {
    toast("This file is not an aat.flow/v1 document (JSON with steps).", "error");
    return;
  }
  load(doc);
  record();
  markDirty();
  canvas.fit();
  toast("Imported into the draft. Save to keep it.");
});

$("export").addEventListener("click", () => {
  const doc = payload();
  const blob = new Blob([JSON.stringify(doc, null, 2)], { type: "application/json" });
  const link = el("a", { href: URL.createObjectURL(blob), download: `${(doc.name || "flow").replace(/[^A-Za-z0-9]+/g, "-")}.aat-flow.json` });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 1000);
});

// --- panels: stats, preview, history -----------------------------------------------------

function toggle(button, panel, open) {
  const show = open ?? panel.hidden;
  panel.hidden = !show;
  button.setAttribute("aria-pressed", String(show));
  return show;
}

function isoDay(date) { return date.toISOString().slice(0, 10); }

async function loadStats() {
  if (!state.id) { $("stats-summary").textContent = "Save and publish the flow to collect stats."; return; }
  const from = $("stats-from").value;
  const to = $("stats-to").value;
  const until = new Date(`${to}T00:00:00Z`);
  until.setUTCDate(until.getUTCDate() + 1);
  try {
    state.stats = await api("GET", `/api/v1/flows/${state.id}/stats?from=${from}T00:00:00Z&to=${until.toISOString()}`);
  } catch (err) {
    $("stats-summary").textContent = errorText(err);
    return;
  }
  const r = state.stats.runs;
  const rate = r.started ? Math.round((100 * r.completed) / r.started) : 0;
  $("stats-summary").textContent = `${r.started} runs started, ${r.completed} completed (${rate}%), ${r.active} still active, `
    + `${r.handed_off} handed off, ${r.interrupted} interrupted, ${r.error} errors (UTC days).`;
  redraw({ form: false });
}

$("toggle-stats").addEventListener("click", () => {
  if (toggle($("toggle-stats"), $("stats-bar"))) {
    if (!$("stats-to").value) {
      const today = new Date();
      $("stats-to").value = isoDay(today);
      $("stats-from").value = isoDay(new Date(today.getTime() - 29 * 86400e3));
    }
    loadStats();
  } else {
    state.stats = null;
    redraw({ form: false });
  }
});
$("stats-form").addEventListener("submit", (e) => { e.preventDefault(); loadStats(); });

const preview = new Preview(null, ensureSaved);
$("toggle-preview").addEventListener("click", () => {
  if (toggle($("toggle-preview"), $("preview-panel"))) {
    toggle($("toggle-history"), $("history-panel"), false);
    preview.send({ reset: true });
  }
});
$("preview-close").addEventListener("click", () => toggle($("toggle-preview"), $("preview-panel"), false));
$("toggle-history").addEventListener("click", () => {
  if (toggle($("toggle-history"), $("history-panel"))) toggle($("toggle-preview"), $("preview-panel"), false);
});
$("history-close").addEventListener("click", () => toggle($("toggle-history"), $("history-panel"), false));

// --- start -------------------------------------------------------------------------------

async function start() {
  if (state.id) {
    try {
      const flow = await api("GET", `/api/v1/flows/${state.id}`);
      load(flow.document);
      // A document saved without positions gets them now; that is an edit worth saving.
      adopt(flow, canonical(cleanDocument(flow.document)));
      last = JSON.stringify(state.doc);
      touched = new Set();
      markDirty();
      canvas.fit();
    } catch (err) {
      toast(errorText(err), "error");
    }
  } else {
    redraw();
    markDirty();
  }
  root.dataset.ready = "true";
}

start();
export { canvas, edit, ports, state, undo }; // for diagnostics and bench/flow_canvas.py
