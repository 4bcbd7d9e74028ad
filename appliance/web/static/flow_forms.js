// The side panel: a form for the selected step (every step type) or, with nothing selected,
// for the flow itself (name, start, channels, every trigger type). Fields are specs
// ({kind, label, path}) rendered by one function, so each field carries data-path (its place in
// the step or document) and the API's errors land under the field they name.
//
// ctx: {doc, id (step or null), errors: [{sub, message}], update(fn, final), restructure(fn),
//       rename(from, to), action(name)}. update() edits in place (typing; the form stays),
// restructure() edits and redraws the form (adding a button, changing a type).

import { el } from "./ui.js";
import { cardsField, pairsField, stepPicker } from "./flow_cards.js";
import { ID_PATTERN, STEP_TYPES, TRIGGER_TYPES } from "./flow_model.js";

const CHANNELS = [["messenger", "Messenger"], ["instagram", "Instagram"], ["whatsapp", "WhatsApp"]];
const OPS = ["eq", "ne", "contains", "not_contains", "gt", "lt", "exists", "not_exists", "has_tag", "not_has_tag"];
const VALIDATE = ["text", "email", "phone", "number", "date", "url", "regex"];
const ACTIONS = [["add_tag", "Add tag"], ["remove_tag", "Remove tag"], ["set_field", "Set field"],
  ["clear_field", "Clear field"], ["subscribe", "Subscribe / unsubscribe"], ["notify_team", "Notify the team"]];
let uid = 0;

// --- paths -------------------------------------------------------------------------------

function key(part) { return /^\d+$/.test(part) ? Number(part) : part; }

export function getPath(obj, path) {
  let node = obj;
  for (const part of path.split(".")) { if (node == null) return undefined; node = node[key(part)]; }
  return node;
}

function setPath(obj, path, value) {
  const parts = path.split(".");
  let node = obj;
  for (const part of parts.slice(0, -1)) {
    if (node[key(part)] == null) node[key(part)] = {};
    node = node[key(part)];
  }
  const last = key(parts[parts.length - 1]);
  if (value === undefined || value === "" || (Array.isArray(value) && !value.length)) delete node[last];
  else node[last] = value;
}

/** Drops empty optional objects the forms may leave behind (a window without times). */
function tidy(obj) {
  for (const [k, v] of Object.entries(obj)) {
    if (v && typeof v === "object" && !Array.isArray(v)) {
      tidy(v);
      if (!Object.keys(v).length && k !== "steps") delete obj[k];
    }
  }
}

// --- fields ------------------------------------------------------------------------------

function read(spec, root) {
  return spec.get ? spec.get(root) : getPath(root, spec.path);
}

function field(spec, root, base, ctx) {
  const id = `ff-${++uid}`;
  const value = read(spec, root);
  let input;
  const commit = (final) => {
    let parsed;
    try { parsed = parse(spec, input); } catch (err) { error.textContent = err.message; return; }
    error.textContent = "";
    const apply = (target) => (spec.set ? spec.set(target, parsed) : setPath(target, spec.path, parsed));
    if (spec.restructure) ctx.restructure((target) => { apply(base(target)); tidy(base(target)); });
    else ctx.update((target) => { apply(base(target)); tidy(base(target)); }, final);
  };
  switch (spec.kind) {
    case "textarea":
    case "json": // only a request body that is itself JSON; the document's own structure has forms
      input = el("textarea", { id, rows: spec.rows || 3, maxlength: spec.max || (spec.kind === "json" ? 20000 : 4096) });
      input.value = spec.kind === "json" ? format(spec, value) : value ?? "";
      break;
    case "select":
    case "target": {
      if (spec.kind === "target" || spec.steps) { // the flow's steps, listed lazily (see stepPicker)
        input = stepPicker(ctx.doc, value || "", { none: spec.kind === "target" ? "— nothing (the run ends) —" : null,
          exclude: spec.kind === "target" ? ctx.id : null, id });
        break;
      }
      input = el("select", { id }, spec.options.map(([v, label]) => el("option", { value: v, text: label })));
      input.value = value === undefined || value === null ? (spec.default ?? "") : String(value);
      break;
    }
    case "checkbox":
      input = el("input", { id, type: "checkbox" });
      input.checked = value === undefined ? spec.default !== false : Boolean(value);
      break;
    case "channels": {
      const chosen = new Set(value || []);
      const boxes = CHANNELS.map(([v, label]) => {
        const box = el("input", { type: "checkbox", value: v, id: `${id}-${v}` });
        box.checked = chosen.has(v);
        return el("label", { class: "check", for: `${id}-${v}` }, box, label);
      });
      input = el("div", { class: "checks", role: "group", "aria-label": spec.label }, boxes);
      break;
    }
    default:
      input = el("input", { id, type: spec.kind === "number" ? "number" : "text", maxlength: spec.max || 4096,
        placeholder: spec.placeholder, list: spec.list, autocomplete: "off" });
      if (spec.kind === "number") { input.min = spec.min ?? ""; input.max = spec.max ?? ""; input.removeAttribute("maxlength"); }
      input.value = format(spec, value);
  }
  const error = el("p", { class: "field-error", role: "alert" });
  const live = spec.kind === "select" || spec.kind === "target" || spec.kind === "checkbox" || spec.kind === "channels";
  input.addEventListener(live ? "change" : "input", () => commit(live));
  if (!live) input.addEventListener("change", () => commit(true));
  const label = spec.kind === "channels" ? el("span", { class: "label", text: spec.label }) : el("label", { for: id, text: spec.label });
  return el("div", { class: `field field-${spec.kind}`, dataset: { path: spec.errorPath || spec.path || "" } },
    spec.kind === "checkbox" ? el("label", { class: "check", for: id }, input, spec.label) : [label, input],
    spec.hint ? el("p", { class: "hint", text: spec.hint }) : null, error);
}

function format(spec, value) {
  if (value === undefined || value === null) return "";
  if (spec.kind === "csv") return value.join(", ");
  if (spec.kind === "lines") return value.join("\n");
  if (spec.kind === "json") return JSON.stringify(value, null, 2);
  return String(value);
}

function parse(spec, input) {
  if (spec.kind === "checkbox") return input.checked;
  if (spec.kind === "channels") {
    const picked = [...input.querySelectorAll("input:checked")].map((b) => b.value);
    return picked.length ? picked : undefined;
  }
  const raw = input.value;
  if (spec.kind === "number") {
    if (raw.trim() === "") return undefined;
    const n = Number(raw);
    if (!Number.isFinite(n)) throw new Error("Enter a number.");
    return n;
  }
  if (spec.kind === "csv") return raw.split(",").map((s) => s.trim()).filter(Boolean);
  if (spec.kind === "lines") return raw.split("\n").map((s) => s.trim()).filter(Boolean);
  if (spec.kind === "json") {
    if (!raw.trim()) return undefined;
    try { return JSON.parse(raw); } catch { throw new Error("This is not valid JSON."); }
  }
  if (spec.kind === "select" && spec.boolean) return raw === "" ? undefined : raw === "true";
  return raw;
}

function list(spec, root, base, ctx) {
  const items = getPath(root, spec.path) || [];
  const box = el("fieldset", { class: "list-field", dataset: { path: spec.path } }, el("legend", { text: spec.label }));
  items.forEach((item, i) => {
    const itemBase = (target) => getPath(base(target), spec.path)[i];
    const remove = el("button", { type: "button", class: "link-button", text: "Remove",
      "aria-label": `Remove ${spec.item.toLowerCase()} ${i + 1}` });
    remove.addEventListener("click", () => ctx.restructure((target) => {
      const arr = getPath(base(target), spec.path);
      arr.splice(i, 1);
      if (!arr.length) setPath(base(target), spec.path, undefined);
    }));
    const fields = spec.fields(item).map((f) => field({ ...f, errorPath: `${spec.path}.${i}${f.path ? `.${f.path}` : ""}` }, item, itemBase, ctx));
    box.append(el("div", { class: "list-item", dataset: { path: `${spec.path}.${i}` } },
      el("div", { class: "list-item-head" }, el("strong", { text: `${spec.item} ${i + 1}` }), remove), fields));
  });
  if (!spec.max || items.length < spec.max) {
    const add = el("button", { type: "button", class: "secondary small", text: `Add ${spec.item.toLowerCase()}` });
    add.addEventListener("click", () => ctx.restructure((target) => {
      const b = base(target);
      const arr = getPath(b, spec.path) || [];
      arr.push(spec.make(arr.length));
      setPath(b, spec.path, arr);
    }));
    box.append(add);
  }
  box.append(el("p", { class: "field-error", role: "alert" }));
  return box;
}

// --- step specs --------------------------------------------------------------------------

const T = (label, path, extra = {}) => ({ kind: "text", label, path, ...extra });
const target = (label, path) => ({ kind: "target", label, path });
const buttonFields = (withUrl) => () => [
  T("Button title", "title", { max: 80 }),
  ...(withUrl ? [T("Link URL (instead of a step)", "url", { placeholder: "https://…",
    set: (o, v) => { setPath(o, "url", v); if (v) delete o.next; } })] : []),
  { kind: "target", label: "Goes to", path: "next", set: (o, v) => { setPath(o, "next", v); if (v) delete o.url; } },
];

function stepSpecs(step) {
  switch (step.type) {
    case "message": return [
      { kind: "textarea", label: "Text", path: "text", rows: 4 },
      { kind: "select", label: "Media", path: "media.type", options: [["", "None"], ["image", "Image"], ["video", "Video"], ["audio", "Audio"], ["file", "File"]],
        set: (o, v) => { if (!v) delete o.media; else o.media = { ...(o.media || {}), type: v }; } },
      ...(step.media ? [T("Media URL", "media.url", { placeholder: "https://…" })] : []),
      { list: true, label: "Buttons", item: "Button", path: "buttons", max: 10, fields: buttonFields(true), make: (n) => ({ title: `Option ${n + 1}` }) },
      { list: true, label: "Quick replies", item: "Quick reply", path: "quick_replies", max: 13, fields: buttonFields(false), make: (n) => ({ title: `Reply ${n + 1}` }) },
      { custom: cardsField },
      target("Next step", "next"),
    ];
    case "input": return [
      { kind: "textarea", label: "Text", path: "text", rows: 3 },
      { kind: "select", label: "Expected answer", path: "validate", restructure: true, options: VALIDATE.map((v) => [v, v === "regex" ? "Pattern (regex)" : v]),
        get: (o) => ((o.validate || "text").startsWith("regex:") ? "regex" : o.validate || "text"),
        set: (o, v) => { o.validate = v === "regex" ? "regex:.+" : v; } },
      ...((step.validate || "").startsWith("regex:") ? [T("Pattern", "validate", {
        get: (o) => o.validate.slice(6), set: (o, v) => { o.validate = `regex:${v}`; } })] : []),
      T("Save the answer to field", "save_to", { placeholder: "e.g. email" }),
      { kind: "textarea", label: "Retry text", path: "retry_text", rows: 2 },
      { kind: "number", label: "Retries", path: "max_retries", min: 0, max: 10 },
      { kind: "number", label: "Give up after (seconds)", path: "timeout_seconds", min: 60 },
      target("Next step", "next"), target("When the answer stays invalid", "on_invalid"), target("When no answer comes", "on_timeout"),
    ];
    case "condition": return [
      { kind: "select", label: "Match", path: "match", options: [["all", "All conditions"], ["any", "Any condition"]], default: "all" },
      { list: true, label: "Conditions", item: "Condition", path: "if", max: 20, make: () => ({ field: "contact.channel", op: "eq", value: "" }),
        fields: () => [T("Field", "field", { placeholder: "contact.fields.plan, or a tag" }),
          { kind: "select", label: "Operator", path: "op", options: OPS.map((o) => [o, o.replaceAll("_", " ")]) },
          T("Value", "value")] },
      target("Then", "then"), target("Else", "else"),
    ];
    case "randomizer": return [
      { list: true, label: "Branches", item: "Branch", path: "branches", max: 10, make: () => ({ weight: 50 }),
        fields: () => [{ kind: "number", label: "Weight", path: "weight", min: 1, max: 1000 }, target("Goes to", "next")] },
    ];
    case "delay": return [
      { kind: "number", label: "Wait (seconds)", path: "seconds", min: 1, hint: "3600 = 1 hour, 86400 = 1 day" },
      T("Only continue from (HH:MM)", "window.from", { placeholder: "09:00" }),
      T("Until (HH:MM)", "window.to", { placeholder: "18:00" }),
      T("Time zone", "window.timezone", { placeholder: "the contact's, else the workspace's" }),
      target("Next step", "next"),
    ];
    case "action": return [
      { list: true, label: "Actions", item: "Action", path: "actions", max: 50, make: () => ({ add_tag: "tag" }),
        fields: (item) => {
          const kind = Object.keys(item)[0] || "add_tag";
          const out = [{ kind: "select", label: "Do", path: kind, restructure: true, options: ACTIONS,
            get: () => kind, set: (o, v) => {
              for (const k of Object.keys(o)) delete o[k];
              o[v] = v === "set_field" ? { name: "field", value: "" } : v === "subscribe" ? true : "value";
            } }];
          if (kind === "set_field") out.push(T("Field name", "set_field.name"), T("Field value", "set_field.value", { set: (o, v) => { o.set_field.value = v; } }));
          else if (kind === "subscribe") out.push({ kind: "select", label: "Subscription", path: "subscribe", boolean: true, options: [["true", "Subscribe"], ["false", "Unsubscribe"]] });
          else out.push(T(kind === "notify_team" ? "Message to the team" : kind === "clear_field" ? "Field name" : "Tag", kind));
          return out;
        } },
      target("Next step", "next"),
    ];
    case "http_request": return [
      { kind: "select", label: "Method", path: "method", default: "GET", options: ["GET", "POST", "PUT", "PATCH", "DELETE"].map((m) => [m, m]) },
      T("URL", "url", { placeholder: "https://api.example.com/…" }),
      { custom: (st, base, ctx) => pairsField({ label: "Headers", path: "headers", item: "Header", keyLabel: "Name",
        valueLabel: "Value", keyPlaceholder: "Authorization", valuePlaceholder: "Bearer …" }, st, base, ctx) },
      { kind: "select", label: "Send the body as", path: "body", restructure: true,
        options: [["text", "Text (templates allowed)"], ["json", "JSON"]],
        get: (o) => (o.body !== undefined && typeof o.body !== "string" ? "json" : "text"),
        set: (o, v) => {
          if (v === "json" && typeof o.body === "string") { try { o.body = JSON.parse(o.body); } catch { o.body = {}; } }
          if (v === "text" && o.body !== undefined && typeof o.body !== "string") o.body = JSON.stringify(o.body);
        } },
      typeof step.body === "string" || step.body === undefined
        ? { kind: "textarea", label: "Body", path: "body", rows: 3, max: 20000 }
        : { kind: "json", label: "Body (JSON, sent as application/json)", path: "body", rows: 4 },
      { kind: "number", label: "Timeout (seconds, up to 10)", path: "timeout_seconds", min: 1, max: 10 },
      { custom: (st, base, ctx) => pairsField({ label: "Save from the answer", path: "save", item: "Saved field", keyLabel: "Contact field",
        valueLabel: "From the answer at (JSON path)", keyPlaceholder: "order_status", valuePlaceholder: "$.status" }, st, base, ctx) },
      target("Next step", "next"), target("On error", "on_error"),
    ];
    case "google_sheets": return [
      T("Spreadsheet id", "spreadsheet_id"), T("Sheet", "sheet"),
      { kind: "lines", label: "Values (one per line, templates allowed)", path: "values" },
      target("Next step", "next"), target("On error", "on_error"),
    ];
    case "ai_reply": return [
      { kind: "textarea", label: "Instructions", path: "instructions", rows: 4 },
      { kind: "checkbox", label: "Use the knowledge base", path: "use_knowledge_base", default: true },
      { kind: "select", label: "Provider", path: "provider", options: [["", "Workspace default"], ["anthropic", "Anthropic"], ["openai", "OpenAI"]] },
      T("Model", "model", { placeholder: "workspace default" }),
      { kind: "number", label: "Max turns", path: "max_turns", min: 1, max: 50 },
      { kind: "csv", label: "Hand off on keywords (comma-separated)", path: "handoff_keywords" },
      target("After the AI conversation", "next"), target("On error", "on_error"),
    ];
    case "handoff": return [{ kind: "textarea", label: "Text", path: "text", rows: 2 }, T("Assign to (email)", "assign_to")];
    case "goto_flow": return [T("Flow (id or name)", "flow", { list: "flow-names" })];
    default: return [];
  }
}

function render(specs, root, base, ctx) {
  return specs.map((s) => (s.custom ? s.custom(root, base, ctx) : s.list ? list(s, root, base, ctx) : field(s, root, base, ctx)));
}

/** Puts each error under the field whose data-path is its longest prefix; the rest on top. */
function placeErrors(form, errors, top) {
  const fields = [...form.querySelectorAll("[data-path]")];
  for (const { sub, message } of errors) {
    let best = null;
    for (const f of fields) {
      const p = f.dataset.path;
      if (p && (sub === p || sub.startsWith(`${p}.`)) && (!best || p.length > best.dataset.path.length)) best = f;
    }
    const slot = best && best.querySelector(":scope > .field-error");
    if (slot) { slot.textContent = slot.textContent ? `${slot.textContent} ${message}` : message; best.classList.add("invalid"); }
    else top.append(el("li", { text: sub ? `${sub}: ${message}` : message }));
  }
  top.hidden = !top.children.length;
}

export function renderStepForm(panel, ctx) {
  const step = ctx.doc.steps[ctx.id];
  const base = (doc) => doc.steps[ctx.id];
  const idInput = el("input", { id: "step-id", value: ctx.id, maxlength: 64, autocomplete: "off", spellcheck: "false" });
  const idError = el("p", { class: "field-error", role: "alert" });
  idInput.addEventListener("change", () => {
    const next = idInput.value.trim();
    if (!ID_PATTERN.test(next)) { idError.textContent = "Letters, digits, _ and - only (up to 64)."; return; }
    if (next !== ctx.id && next in ctx.doc.steps) { idError.textContent = `Another step is already called ${next}.`; return; }
    ctx.rename(ctx.id, next);
  });
  const top = el("ul", { class: "form-errors", role: "alert" });
  const actions = el("div", { class: "form-actions" },
    ctx.doc.start !== ctx.id ? el("button", { type: "button", class: "secondary small", id: "make-start", text: "Start the flow here" }) : null,
    el("button", { type: "button", class: "secondary small", id: "duplicate-step", text: "Duplicate" }),
    el("button", { type: "button", class: "danger small", id: "delete-step", text: "Delete step" }));
  for (const button of actions.querySelectorAll("button")) button.addEventListener("click", () => ctx.action(button.id));
  const form = el("form", { class: "step-form", "aria-label": `Step ${ctx.id}`, novalidate: true },
    el("h2", { text: `${STEP_TYPES[step.type] ? STEP_TYPES[step.type].label : step.type} step` }), top,
    el("div", { class: "field", dataset: { path: "" } }, el("label", { for: "step-id", text: "Step id" }), idInput, idError),
    render(stepSpecs(step), step, base, ctx), actions);
  form.addEventListener("submit", (e) => e.preventDefault());
  placeErrors(form, ctx.errors, top);
  panel.replaceChildren(form);
}

// --- the flow's own form (triggers) ------------------------------------------------------

function triggerFields(trigger) {
  const out = [{ kind: "select", label: "Type", path: "type", restructure: true, options: Object.entries(TRIGGER_TYPES),
    set: (o, v) => { for (const k of Object.keys(o)) if (k !== "channels") delete o[k]; o.type = v; if (v === "keyword") o.keywords = ["hello"]; } }];
  const t = trigger.type;
  if (t === "keyword") out.push({ kind: "csv", label: "Keywords (comma-separated)", path: "keywords" });
  if (t === "comment" || t === "story_reply") out.push({ kind: "csv", label: "Keywords (comma-separated; empty = any)", path: "keywords" });
  if (["keyword", "comment", "story_reply"].includes(t)) {
    out.push({ kind: "select", label: "Match", path: "match", default: "contains", options: [["contains", "Contains"], ["exact", "Exact"], ["starts_with", "Starts with"]] });
  }
  if (t === "comment") {
    out.push({ kind: "csv", label: "Post ids (comma-separated; empty = any post)", path: "post_ids" },
      { kind: "textarea", label: "Public reply", path: "public_reply", rows: 2 });
  }
  if (t === "ref") out.push(T("Ref", "ref", { placeholder: "spring-sale" }));
  if (t === "postback") out.push(T("Payload", "payload"));
  out.push({ kind: "channels", label: "Channels (none = all)", path: "channels" });
  return out;
}

export function renderFlowForm(panel, ctx) {
  const base = (doc) => doc;
  const top = el("ul", { class: "form-errors", role: "alert" });
  const specs = [
    T("Flow name", "name", { max: 200 }),
    { kind: "textarea", label: "Description", path: "description", rows: 2, max: 2000 },
    { kind: "select", label: "Start step", path: "start", steps: true },
    { kind: "channels", label: "Only on channels (none = all)", path: "settings.channels" },
    { list: true, label: "Triggers", item: "Trigger", path: "triggers", max: 50, fields: triggerFields,
      make: () => ({ type: "keyword", keywords: ["hello"] }) },
  ];
  const form = el("form", { class: "step-form flow-form", "aria-label": "Flow settings", novalidate: true },
    el("h2", { text: "Flow" }), el("p", { class: "muted small", text: "Select a step on the canvas to edit it. Delete removes it, Ctrl+D duplicates, Ctrl+Z undoes." }),
    top, render(specs, ctx.doc, base, ctx));
  form.addEventListener("submit", (e) => e.preventDefault());
  placeErrors(form, ctx.errors, top);
  panel.replaceChildren(form);
}
