// The aat.flow/v1 document as the builder edits it: plain functions over the JSON, no DOM.
// Ports are where a connection starts: "next", "then", "else", "on_invalid", "on_timeout",
// "on_error", "buttons.0", "quick_replies.2", "branches.1", "cards.0.buttons.1".

export const STEP_TYPES = {
  message: { label: "Message", make: () => ({ type: "message", text: "New message" }) },
  input: { label: "Question", make: () => ({ type: "input", text: "What is your answer?", validate: "text" }) },
  condition: { label: "Condition", make: () => ({ type: "condition", if: [{ field: "contact.channel", op: "eq", value: "whatsapp" }], match: "all" }) },
  randomizer: { label: "Randomizer", make: () => ({ type: "randomizer", branches: [{ weight: 50 }, { weight: 50 }] }) },
  delay: { label: "Delay", make: () => ({ type: "delay", seconds: 3600 }) },
  action: { label: "Action", make: () => ({ type: "action", actions: [{ add_tag: "new-tag" }] }) },
  http_request: { label: "HTTP request", make: () => ({ type: "http_request", method: "GET", url: "https://example.com/" }) },
  google_sheets: { label: "Google Sheets", make: () => ({ type: "google_sheets", spreadsheet_id: "", sheet: "Sheet1", values: ["{{contact.name}}"] }) },
  ai_reply: { label: "AI reply", make: () => ({ type: "ai_reply", instructions: "Answer questions about our products." }) },
  handoff: { label: "Handoff", make: () => ({ type: "handoff", text: "Connecting you with our team." }) },
  goto_flow: { label: "Go to flow", make: () => ({ type: "goto_flow", flow: "" }) },
  end: { label: "End", make: () => ({ type: "end" }) },
};

export const TRIGGER_TYPES = {
  keyword: "Keyword", comment: "Comment on a post", story_reply: "Story reply", story_mention: "Story mention",
  ref: "Link or QR code (ref)", postback: "Menu item / ice breaker", welcome: "Welcome (new contact)",
  default: "Default reply",
};

export const ID_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;

export function blankDocument() {
  return { schema: "aat.flow/v1", name: "New flow", triggers: [], start: "", steps: {}, layout: {} };
}

const NAMED_PORTS = {
  condition: [["then", "Then"], ["else", "Else"]],
  input: [["next", "Next"], ["on_invalid", "Invalid"], ["on_timeout", "Timeout"]],
  http_request: [["next", "Next"], ["on_error", "On error"]],
  google_sheets: [["next", "Next"], ["on_error", "On error"]],
  ai_reply: [["next", "After AI"], ["on_error", "On error"]],
  handoff: [], goto_flow: [], end: [], randomizer: [],
};

/** [{port, label, target, kind}] for every place a connection can start on this step. */
export function ports(step) {
  const out = [];
  (step.buttons || []).forEach((b, i) => { if (!b.url) out.push({ port: `buttons.${i}`, label: b.title, target: b.next, kind: "button" }); });
  (step.quick_replies || []).forEach((b, i) => out.push({ port: `quick_replies.${i}`, label: b.title, target: b.next, kind: "button" }));
  (step.cards || []).forEach((c, ci) => (c.buttons || []).forEach((b, i) => {
    if (!b.url) out.push({ port: `cards.${ci}.buttons.${i}`, label: `${c.title}: ${b.title}`, target: b.next, kind: "button" });
  }));
  (step.branches || []).forEach((b, i) => out.push({ port: `branches.${i}`, label: `${b.weight}`, target: b.next, kind: "branch" }));
  for (const [port, label] of NAMED_PORTS[step.type] || [["next", "Next"]]) out.push({ port, label, target: step[port], kind: port });
  return out;
}

function holder(step, port) {
  const parts = port.split(".");
  if (parts.length === 1) return [step, parts[0]];
  let node = step;
  for (const part of parts) node = node && node[/^\d+$/.test(part) ? Number(part) : part];
  return node && typeof node === "object" ? [node, "next"] : [null, null];
}

export function setTarget(step, port, target) {
  const [obj, key] = holder(step, port);
  if (!obj) return;
  if (target) obj[key] = target; else delete obj[key];
}

export function newId(doc, type) {
  const base = type === "input" ? "question" : type;
  for (let n = 1; ; n++) if (!(`${base}_${n}` in doc.steps)) return `${base}_${n}`;
}

/** Every reference to a step, as a callback(obj, key) over the document (steps only). */
function eachRef(doc, fn) {
  for (const step of Object.values(doc.steps)) {
    for (const key of ["next", "then", "else", "on_invalid", "on_timeout", "on_error"]) if (key in step) fn(step, key);
    for (const list of ["buttons", "quick_replies", "branches"]) for (const b of step[list] || []) if ("next" in b) fn(b, "next");
    for (const c of step.cards || []) for (const b of c.buttons || []) if ("next" in b) fn(b, "next");
  }
}

export function renameStep(doc, from, to) {
  if (from === to || !(from in doc.steps) || to in doc.steps || !ID_PATTERN.test(to)) return false;
  const steps = {};
  for (const [id, step] of Object.entries(doc.steps)) steps[id === from ? to : id] = step;
  doc.steps = steps;
  eachRef(doc, (obj, key) => { if (obj[key] === from) obj[key] = to; });
  if (doc.start === from) doc.start = to;
  if (doc.layout && doc.layout[from]) { doc.layout[to] = doc.layout[from]; delete doc.layout[from]; }
  return true;
}

/** Removes the step and every connection into it (a dangling reference is an invalid draft). */
export function deleteStep(doc, id) {
  delete doc.steps[id];
  if (doc.layout) delete doc.layout[id];
  eachRef(doc, (obj, key) => { if (obj[key] === id) delete obj[key]; });
  if (doc.start === id) doc.start = Object.keys(doc.steps)[0] || "";
}

export function addStep(doc, type, at) {
  const id = newId(doc, type);
  doc.steps[id] = STEP_TYPES[type].make();
  doc.layout = doc.layout || {};
  doc.layout[id] = { x: Math.round(at.x), y: Math.round(at.y) };
  if (!doc.start || !(doc.start in doc.steps)) doc.start = id;
  return id;
}

export function duplicateStep(doc, id) {
  const copy = structuredClone(doc.steps[id]);
  const fresh = newId(doc, copy.type);
  doc.steps[fresh] = copy;
  const at = (doc.layout && doc.layout[id]) || { x: 0, y: 0 };
  doc.layout[fresh] = { x: at.x + 40, y: at.y + 40 };
  return fresh;
}

/** Positions for steps the document does not place: columns by distance from start. */
export function autoLayout(doc) {
  doc.layout = doc.layout || {};
  const missing = Object.keys(doc.steps).filter((id) => !doc.layout[id]);
  if (!missing.length) return;
  const depth = {};
  const queue = doc.start in doc.steps ? [doc.start] : [];
  if (queue.length) depth[doc.start] = 0;
  while (queue.length) {
    const id = queue.shift();
    for (const p of ports(doc.steps[id])) {
      if (p.target && p.target in doc.steps && !(p.target in depth)) { depth[p.target] = depth[id] + 1; queue.push(p.target); }
    }
  }
  const rows = {};
  const maxDepth = Math.max(0, ...Object.values(depth));
  for (const id of Object.keys(doc.steps)) {
    const col = id in depth ? depth[id] : maxDepth + 1;
    rows[col] = (rows[col] || 0) + 1;
    if (!doc.layout[id]) doc.layout[id] = { x: 40 + col * 320, y: 40 + (rows[col] - 1) * 220 };
  }
}

export function describeSeconds(seconds) {
  const units = [[86400, "d"], [3600, "h"], [60, "min"], [1, "s"]];
  for (const [size, name] of units) if (seconds % size === 0 && seconds >= size) return `${seconds / size} ${name}`;
  return `${seconds} s`;
}

/** Short lines describing what the step does, for the node's body. */
export function summary(step) {
  switch (step.type) {
    case "message": {
      const lines = [];
      if (step.media) lines.push(`[${step.media.type}] ${step.media.url}`);
      if (step.text) lines.push(step.text);
      if (step.cards && step.cards.length) {
        lines.push(`${step.cards.length} card${step.cards.length > 1 ? "s" : ""}: ${step.cards.map((c) => c.title || "(no title)").join(" · ")}`);
      }
      return lines;
    }
    case "input": return [step.text, `Expects ${step.validate || "text"}${step.save_to ? ` → ${step.save_to}` : ""}`];
    case "condition": return [(step.match === "any" ? "Any of: " : "All of: ") +
      (step.if || []).map((c) => `${c.field} ${c.op}${c.value !== undefined && c.value !== null ? ` ${c.value}` : ""}`).join("; ")];
    case "randomizer": return ["Split at random by weight"];
    case "delay": return [`Wait ${describeSeconds(step.seconds)}${step.window ? ` (only ${step.window.from}–${step.window.to})` : ""}`];
    case "action": return (step.actions || []).map((a) => {
      const [k, v] = Object.entries(a)[0] || ["", ""];
      if (k === "set_field") return `Set ${v.name} = ${v.value}`;
      return `${k.replace("_", " ")}${v === true ? "" : `: ${typeof v === "object" ? JSON.stringify(v) : v}`}`;
    });
    case "http_request": return [`${step.method || "GET"} ${step.url}`];
    case "google_sheets": return [`Append to ${step.sheet || "?"}`, (step.values || []).join(" | ")];
    case "ai_reply": return [step.instructions || "Answers with the workspace's AI settings",
      step.use_knowledge_base === false ? "Without the knowledge base" : "With the knowledge base"];
    case "handoff": return [step.text || "Hands over to the team", step.assign_to ? `Assign to ${step.assign_to}` : ""].filter(Boolean);
    case "goto_flow": return [`Continue in “${step.flow}”`];
    case "end": return ["Ends the run"];
    default: return [];
  }
}

/** The document to send: no layout for deleted steps, no empty optional fields. */
export function cleanDocument(doc) {
  const out = structuredClone(doc);
  out.layout = {};
  for (const id of Object.keys(out.steps)) if (doc.layout && doc.layout[id]) out.layout[id] = doc.layout[id];
  if (!out.description) delete out.description;
  if (out.settings && !(out.settings.channels && out.settings.channels.length)) delete out.settings;
  return out;
}

/** JSON with sorted keys: two documents that differ only in key order compare equal. */
export function canonical(value) {
  return JSON.stringify(value, (_, v) => (v && typeof v === "object" && !Array.isArray(v)
    ? Object.fromEntries(Object.keys(v).sort().map((k) => [k, v[k]])) : v));
}
