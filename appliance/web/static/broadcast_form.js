// A new broadcast: the audience builder with its live recipient count (POST
// /api/v1/broadcasts/estimate, debounced), text with buttons or a WhatsApp template with its
// variables, the schedule; then POST /api/v1/broadcasts (and .../start to send or schedule it).
// The API checks everything; its message and paths are shown as they come.

import { api, errorText } from "./api.js";
import { busy, debounce, el } from "./ui.js";

const form = document.getElementById("broadcast-form");
const VARIABLE = /\{\{\s*([A-Za-z0-9_]+)\s*\}\}/g;
const OPS = [["eq", "is"], ["ne", "is not"], ["contains", "contains"], ["starts_with", "starts with"],
  ["gt", ">"], ["gte", "≥"], ["lt", "<"], ["lte", "≤"], ["is_set", "is set"], ["is_not_set", "is not set"]];
const REASONS = { no_channel: "no channel", unsubscribed: "unsubscribed", marketing_opt_out: "marketing opt-out",
  outside_window: "outside the 24-hour window" };
const SPAN = /^\d{1,5}[mhdw]$/;
let conditionSeq = 0;
let buttonSeq = 0;

const $ = (id) => document.getElementById(id);
const list = (value) => value.split(",").map((t) => t.trim()).filter(Boolean);
const kind = () => form.querySelector("input[name=kind]:checked").value;
const later = () => form.querySelector("input[name=when]:checked").value === "later";

function variables(text) {
  const names = [];
  for (const match of (text || "").matchAll(VARIABLE)) if (!names.includes(match[1])) names.push(match[1]);
  return names;
}

/** "7d" as is; a date (and time) typed in the browser's zone as an ISO time with an offset;
 * anything else as typed, so the API says what is wrong with it. */
function moment(value) {
  const text = value.trim();
  if (!text) return null;
  if (SPAN.test(text)) return text;
  const parsed = new Date(/^\d{4}-\d{2}-\d{2}$/.test(text) ? `${text}T00:00:00` : text.replace(" ", "T"));
  return Number.isNaN(parsed.getTime()) ? text : parsed.toISOString();
}

// --- the audience ------------------------------------------------------------------------------

function addCondition() {
  const n = ++conditionSeq;
  const field = el("input", { id: `cond-field-${n}`, list: "field-names", maxlength: 64, autocomplete: "off",
    class: "cond-field", placeholder: "plan" });
  const op = el("select", { id: `cond-op-${n}`, class: "cond-op" }, OPS.map(([v, t]) => el("option", { value: v, text: t })));
  const value = el("input", { id: `cond-value-${n}`, class: "cond-value", maxlength: 2000, autocomplete: "off" });
  const remove = el("button", { type: "button", class: "small secondary", text: "Remove",
    "aria-label": `Remove field condition ${n}` });
  const row = el("li", { class: "list-row filters cond" },
    el("div", { class: "field" }, el("label", { for: field.id, text: `Field (condition ${n})` }), field),
    el("div", { class: "field" }, el("label", { for: op.id, text: `Operator (condition ${n})` }), op),
    el("div", { class: "field" }, el("label", { for: value.id, text: `Value (condition ${n})` }), value),
    el("div", { class: "field actions" }, remove));
  op.addEventListener("change", () => { value.disabled = op.value.startsWith("is_"); recount(); });
  remove.addEventListener("click", () => { row.remove(); recount(); });
  $("field-conditions").append(row);
  field.focus();
}

function audience() {
  const result = {};
  const tags = { any: list($("tags-any").value), all: list($("tags-all").value), none: list($("tags-none").value) };
  if (tags.any.length || tags.all.length || tags.none.length) result.tags = tags;
  const fields = [];
  for (const row of form.querySelectorAll("li.cond")) {
    const name = row.querySelector(".cond-field").value.trim();
    if (!name) continue;
    const op = row.querySelector(".cond-op").value;
    const condition = { field: name, op };
    if (!op.startsWith("is_")) {
      const raw = row.querySelector(".cond-value").value;
      condition.value = ["gt", "gte", "lt", "lte"].includes(op) && raw.trim() !== "" && !Number.isNaN(Number(raw))
        ? Number(raw) : raw;
    }
    fields.push(condition);
  }
  if (fields.length) result.fields = fields;
  const channels = [...form.querySelectorAll("input[name=channel]:checked")].map((c) => c.value);
  if (channels.length) result.channels = channels;
  if ($("subscribed").value) result.subscribed = $("subscribed").value === "true";
  const after = moment($("wrote-after").value);
  const before = moment($("wrote-before").value);
  if (after || before) result.last_interaction = { ...(after ? { after } : {}), ...(before ? { before } : {}) };
  return result;
}

// --- the message -------------------------------------------------------------------------------

function addButton() {
  if (form.querySelectorAll("li.bbutton").length >= 3) return;
  const n = ++buttonSeq;
  const title = el("input", { id: `button-title-${n}`, class: "button-title", maxlength: 20, autocomplete: "off" });
  const action = el("select", { id: `button-action-${n}`, class: "button-action" },
    el("option", { value: "flow", text: "Starts a flow" }), el("option", { value: "url", text: "Opens a link" }));
  const flow = el("select", { id: `button-flow-${n}`, class: "button-flow" });
  flow.append(el("option", { value: "", text: "Choose a flow…" }), $("flow-options").content.cloneNode(true));
  const url = el("input", { id: `button-url-${n}`, class: "button-url", type: "url", placeholder: "https://", hidden: true });
  const urlLabel = el("label", { for: url.id, text: `Link (button ${n})`, hidden: true });
  const flowLabel = el("label", { for: flow.id, text: `Flow (button ${n})` });
  const remove = el("button", { type: "button", class: "small secondary", text: "Remove", "aria-label": `Remove button ${n}` });
  const row = el("li", { class: "list-row filters bbutton" },
    el("div", { class: "field" }, el("label", { for: title.id, text: `Button ${n} title` }), title),
    el("div", { class: "field" }, el("label", { for: action.id, text: `Button ${n} action` }), action),
    el("div", { class: "field" }, flowLabel, flow, urlLabel, url),
    el("div", { class: "field actions" }, remove));
  action.addEventListener("change", () => {
    const link = action.value === "url";
    url.hidden = urlLabel.hidden = !link;
    flow.hidden = flowLabel.hidden = link;
  });
  remove.addEventListener("click", () => { row.remove(); $("add-button").hidden = false; });
  $("buttons").append(row);
  $("add-button").hidden = form.querySelectorAll("li.bbutton").length >= 3;
  title.focus();
}

function chosenTemplate() {
  const option = $("b-template").selectedOptions[0];
  if (!option || !option.value) return null;
  let components = [];
  try { components = JSON.parse(option.dataset.components || "[]"); } catch { components = []; }
  const part = (type) => components.find((c) => String(c.type || "").toUpperCase() === type) || {};
  return { name: option.dataset.name, language: option.dataset.language, waba_id: option.dataset.waba,
    named: option.dataset.format === "NAMED", body: part("BODY"), header: part("HEADER"),
    buttons: (part("BUTTONS").buttons || []) };
}

function varInput(id, label, cls) {
  return el("div", { class: "field" }, el("label", { for: id, text: label }),
    el("input", { id, class: cls, maxlength: 1024, autocomplete: "off", placeholder: "{{contact.first_name|there}}" }));
}

function renderTemplate() {
  const t = chosenTemplate();
  const box = $("template-vars");
  const body = $("template-body");
  body.hidden = !t;
  if (!t) { box.replaceChildren(); recount(); return; }
  body.textContent = t.body.text || "";
  const nodes = [];
  const format = String(t.header.format || "").toUpperCase();
  if (format === "TEXT") {
    variables(t.header.text).forEach((name) => nodes.push(varInput(`tvar-header-${name}`, `Header variable {{${name}}}`, "tvar-header")));
  } else if (["IMAGE", "VIDEO", "DOCUMENT"].includes(format)) {
    const input = el("input", { id: "tvar-media", type: "url", placeholder: "https://", dataset: { type: format.toLowerCase() } });
    nodes.push(el("div", { class: "field" }, el("label", { for: input.id, text: `Header ${format.toLowerCase()} link` }), input));
  }
  variables(t.body.text).forEach((name) => {
    const input = varInput(`tvar-body-${name}`, `Body variable {{${name}}}`, "tvar-body");
    input.querySelector("input").dataset.name = name;
    nodes.push(input);
  });
  t.buttons.forEach((button, index) => {
    if (String(button.type).toUpperCase() !== "QUICK_REPLY") return;
    const select = el("select", { id: `tvar-button-${index}`, class: "tvar-button", dataset: { index } },
      el("option", { value: "", text: "Does nothing special" }));
    select.append($("flow-options").content.cloneNode(true));
    nodes.push(el("div", { class: "field" },
      el("label", { for: select.id, text: `Quick reply “${button.text}” starts` }), select));
  });
  box.replaceChildren(el("div", { class: "filters" }, nodes));
  recount();
}

/** Placeholder variables that satisfy the template's components (for the count only). */
function countVars(t) {
  const vars = {};
  const format = String(t.header.format || "").toUpperCase();
  if (format === "TEXT" && variables(t.header.text).length) vars.header = variables(t.header.text).map(() => "x");
  if (["IMAGE", "VIDEO", "DOCUMENT"].includes(format)) {
    vars.header_media = { type: format.toLowerCase(), link: "https://example.com/x" };
  }
  const body = variables(t.body.text);
  if (body.length) vars.body = t.named ? Object.fromEntries(body.map((n) => [n, "x"])) : body.map(() => "x");
  return vars;
}

/** The message as the API takes it. For the count (forCount), blanks are filled in: who gets
 * the broadcast depends on the kind of message and the template's account and category, not
 * on the words or the variables. */
function message(forCount = false) {
  const fill = (value) => (forCount && !value.trim() ? "x" : value);
  if (kind() === "template") {
    const t = chosenTemplate();
    if (!t) return forCount ? { text: "x" } : { template: { name: "", language: "" } };
    const template = { name: t.name, language: t.language, waba_id: t.waba_id };
    if (forCount) return { template: { ...template, ...countVars(t) } };
    const header = [...form.querySelectorAll(".tvar-header")].map((i) => i.value);
    if (header.length) template.header = header;
    const media = $("tvar-media");
    if (media) template.header_media = { type: media.dataset.type, link: media.value.trim() };
    const inputs = [...form.querySelectorAll(".tvar-body")];
    if (inputs.length) {
      template.body = t.named ? Object.fromEntries(inputs.map((i) => [i.dataset.name, i.value])) : inputs.map((i) => i.value);
    }
    const buttons = [...form.querySelectorAll(".tvar-button")].filter((s) => s.value)
      .map((s) => ({ index: Number(s.dataset.index), flow_id: s.value }));
    if (buttons.length) template.buttons = buttons;
    return { template };
  }
  const result = { text: fill($("b-text").value) };
  if (forCount) return result;  // buttons don't change who gets it
  const buttons = [...form.querySelectorAll("li.bbutton")].map((row) => {
    const button = { title: row.querySelector(".button-title").value.trim() };
    if (row.querySelector(".button-action").value === "url") button.url = row.querySelector(".button-url").value.trim();
    else button.flow_id = row.querySelector(".button-flow").value;
    return button;
  });
  if (buttons.length) result.buttons = buttons;
  return result;
}

// --- the live count ------------------------------------------------------------------------------

let countSeq = 0;

async function count() {
  const seq = ++countSeq;
  const box = $("audience-count");
  const body = { audience: audience(), message: message(true) };
  try {
    const result = await api("POST", "/api/v1/broadcasts/estimate", body);
    if (seq !== countSeq) return;
    const skipped = Object.entries(result.skipped_reasons)
      .map(([reason, n]) => `${n} ${REASONS[reason] || reason}`);
    box.replaceChildren(
      el("strong", { id: "recipient-count", text: `${result.total} ${result.total === 1 ? "contact matches" : "contacts match"}` }),
      el("span", { text: `; ${result.eligible} would get it now` }),
      skipped.length ? el("span", { text: ` (skipped: ${skipped.join(", ")})` }) : "", ".");
    box.classList.remove("error");
  } catch (err) {
    if (seq !== countSeq) return;
    box.textContent = `The audience cannot be counted: ${errorText(err)}`;
    box.classList.add("error");
  }
}

const recount = debounce(count, 300);

// --- the schedule and sending ------------------------------------------------------------------

function request() {
  const body = { name: $("b-name").value.trim(), audience: audience(), message: message() };
  if (later()) {
    body.send_at = $("send-at").value ? `${$("send-at").value}:00`.slice(0, 19) : "";
    body.timezone = $("timezone").value;
  }
  return body;
}

function showError(text) {
  const box = $("form-error");
  box.textContent = text;
  box.hidden = !text;
}

async function submit(go, button) {
  showError("");
  if (!$("b-name").value.trim()) {
    showError("Give the broadcast a name.");
    $("b-name").focus();
    return;
  }
  if (later() && !$("send-at").value) {
    showError("Choose when to send it, or choose Send now.");
    $("send-at").focus();
    return;
  }
  await busy(button, async () => {
    try {
      const created = await api("POST", "/api/v1/broadcasts", request());
      if (go === "start") await api("POST", `/api/v1/broadcasts/${created.id}/start`);
      location.assign("/broadcasts");
    } catch (err) {
      showError(errorText(err));
    }
  });
}

if (form) {
  $("add-condition").addEventListener("click", addCondition);
  $("add-button").addEventListener("click", addButton);
  $("b-template").addEventListener("change", renderTemplate);
  for (const radio of form.querySelectorAll("input[name=kind]")) {
    radio.addEventListener("change", () => {
      $("text-part").hidden = kind() !== "text";
      $("template-part").hidden = kind() !== "template";
      recount();
    });
  }
  for (const radio of form.querySelectorAll("input[name=when]")) {
    radio.addEventListener("change", () => {
      $("schedule-part").hidden = !later();
      $("send-broadcast").textContent = later() ? "Schedule broadcast" : "Send broadcast";
    });
  }
  form.addEventListener("input", (event) => {
    if (event.target.closest("#audience")) recount();
  });
  form.addEventListener("change", (event) => {
    if (event.target.id === "subscribed" || event.target.name === "channel") recount();
  });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const button = event.submitter || $("send-broadcast");
    submit(button.dataset.go || "start", button);
  });
  count();
}
