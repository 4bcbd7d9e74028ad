// The composer of a conversation: replies (checked against Meta's policy as time passes),
// WhatsApp templates outside the window, private notes, saved replies, Ctrl+Enter to send.

import { api, errorText } from "./api.js";
import { composerState } from "./policy.js";
import { busy, el, toast } from "./ui.js";

const VARIABLE = /\{\{\s*([A-Za-z0-9_]+)\s*\}\}/g;
let templateCache = null; // waba id -> Promise of templates

function variables(text) {
  const names = [];
  for (const match of (text || "").matchAll(VARIABLE)) if (!names.includes(match[1])) names.push(match[1]);
  return names;
}

async function loadTemplates(wabaId) {
  templateCache = templateCache || new Map();
  if (!templateCache.has(wabaId)) {
    const query = new URLSearchParams({ status: "APPROVED", limit: "500" });
    if (wabaId) query.set("waba_id", wabaId);
    templateCache.set(wabaId, api("GET", `/api/v1/templates?${query}`).then((page) => page.items));
  }
  return templateCache.get(wabaId);
}

/**
 * Wires the composer form; returns {refresh(conversation)} for live conversation updates.
 * onSent() runs after a reply or note was accepted (the thread then loads new items).
 */
export function initComposer(form, { onSent }) {
  const text = form.querySelector("#composer-text");
  const notice = form.querySelector("#composer-notice");
  const send = form.querySelector("#send-button");
  const picker = form.querySelector("#template-picker");
  const templateSelect = form.querySelector("#template-select");
  const params = form.querySelector("#template-params");
  const preview = form.querySelector("#template-preview");
  const canned = form.querySelector("#canned-select");
  const conversationId = form.dataset.conversationId;
  let templates = [];
  let state = { mode: form.dataset.mode, notice: notice.textContent };

  const kind = () => form.querySelector("input[name=kind]:checked").value;
  const chosenTemplate = () => templates.find((t) => t.id === templateSelect.value) || null;

  function render() {
    state = composerState(form.dataset.channel, form.dataset.channelStatus, form.dataset.lastInbound || null);
    const note = kind() === "note";
    form.dataset.mode = note ? "note" : state.mode;
    form.classList.toggle("is-note", note);
    notice.className = `composer-notice notice-${note ? "note" : state.mode}`;
    notice.textContent = note
      ? "Private note: only your team sees it. It is never sent to the contact."
      : state.notice;
    const useTemplate = !note && state.mode === "template";
    picker.hidden = !useTemplate;
    text.disabled = !note && (state.mode === "blocked" || state.mode === "template");
    text.placeholder = note ? "Write a note for your team…" : "Write a reply…";
    send.textContent = note ? "Add note" : "Send";
    send.disabled = !note && (state.mode === "blocked" || (useTemplate && !chosenTemplate()));
    if (useTemplate && templates.length === 0) fillTemplates();
  }

  async function fillTemplates() {
    if (templateSelect.dataset.loading) return;
    templateSelect.dataset.loading = "1";
    try {
      templates = await loadTemplates(form.dataset.wabaId || "");
      templateSelect.replaceChildren(el("option", { value: "", text: templates.length ? "Choose a template…" : "No approved templates: sync them in Broadcasts" }),
        ...templates.map((t) => el("option", { value: t.id, text: `${t.name} (${t.language})` })));
    } catch (err) {
      templateSelect.replaceChildren(el("option", { value: "", text: "Templates could not be loaded" }));
      toast(errorText(err), "error");
    } finally {
      delete templateSelect.dataset.loading;
      render();
    }
  }

  function templateParts(template) {
    const components = template ? template.components || [] : [];
    const body = components.find((c) => String(c.type).toUpperCase() === "BODY");
    const header = components.find((c) => String(c.type).toUpperCase() === "HEADER");
    return { body, header };
  }

  function showTemplate() {
    const template = chosenTemplate();
    params.replaceChildren();
    preview.hidden = !template;
    if (!template) return render();
    const { body, header } = templateParts(template);
    const add = (section, name) => {
      const id = `tp-${section}-${name}`;
      params.append(el("label", { for: id, text: `${section === "header" ? "Header" : "Body"} value {{${name}}}` }),
        el("input", { id, dataset: { section, name }, maxlength: 1024, required: true }));
    };
    if (header && String(header.format || "TEXT").toUpperCase() === "TEXT") variables(header.text).forEach((n) => add("header", n));
    else if (header && ["IMAGE", "VIDEO", "DOCUMENT"].includes(String(header.format).toUpperCase())) {
      params.append(el("label", { for: "tp-media", text: `Header ${String(header.format).toLowerCase()} link (https)` }),
        el("input", { id: "tp-media", type: "url", dataset: { section: "media", name: String(header.format).toLowerCase() }, required: true }));
    }
    if (body) variables(body.text).forEach((n) => add("body", n));
    updatePreview();
    render();
  }

  function updatePreview() {
    const template = chosenTemplate();
    if (!template) return;
    const { body } = templateParts(template);
    const values = {};
    for (const input of params.querySelectorAll("input[data-section=body]")) values[input.dataset.name] = input.value;
    preview.textContent = (body ? body.text : "").replace(VARIABLE, (_, name) => values[name] || `{{${name}}}`);
  }

  function templatePayload(template) {
    const named = String(template.parameter_format || "").toUpperCase() === "NAMED";
    const sections = { header: [], body: [] };
    for (const input of params.querySelectorAll("input")) {
      const value = input.value.trim();
      if (!value) throw new Error("Fill in every value of the template.");
      if (input.dataset.section === "media") {
        sections.header.push({ type: input.dataset.name, [input.dataset.name]: { link: value } });
      } else {
        const parameter = { type: "text", text: value };
        if (named) parameter.parameter_name = input.dataset.name;
        sections[input.dataset.section].push(parameter);
      }
    }
    const components = Object.entries(sections).filter(([, p]) => p.length)
      .map(([type, parameters]) => ({ type, parameters }));
    return { name: template.name, language: template.language, components };
  }

  async function submit() {
    const note = kind() === "note";
    let body;
    let path = `/api/v1/conversations/${conversationId}/messages`;
    if (note) {
      if (!text.value.trim()) return text.focus();
      body = { text: text.value };
      path = `/api/v1/conversations/${conversationId}/notes`;
    } else if (state.mode === "template") {
      const template = chosenTemplate();
      if (!template) return templateSelect.focus();
      try {
        body = { template: templatePayload(template) };
      } catch (err) {
        toast(err.message, "error");
        return;
      }
    } else {
      if (state.mode === "blocked") return;
      if (!text.value.trim()) return text.focus();
      body = { text: text.value };
    }
    await busy(send, async () => {
      try {
        await api("POST", path, body);
        text.value = "";
        if (!note && state.mode === "template") {
          templateSelect.value = "";
          showTemplate();
        }
        toast(note ? "Note added." : "Reply queued.");
        onSent();
      } catch (err) {
        notice.className = "composer-notice notice-error";
        notice.textContent = errorText(err);
        notice.setAttribute("role", "alert");
        toast(errorText(err), "error");
      }
    });
    render();
    if (!text.disabled) text.focus();
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    notice.removeAttribute("role");
    submit();
  });
  text.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      form.requestSubmit();
    } else if (event.key === "Tab" && canned && /^\/[a-z0-9_-]+$/.test(text.value)) {
      // "/hours" + Tab: the saved reply with that shortcut
      const option = [...canned.options].find((o) => o.textContent.startsWith(`${text.value} `));
      if (option) {
        event.preventDefault();
        text.value = option.dataset.text;
      }
    }
  });
  for (const radio of form.querySelectorAll("input[name=kind]")) radio.addEventListener("change", render);
  templateSelect.addEventListener("change", showTemplate);
  params.addEventListener("input", updatePreview);
  if (canned) {
    canned.addEventListener("change", () => {
      const option = canned.selectedOptions[0];
      if (option && option.dataset.text !== undefined) {
        if (!text.disabled) {
          text.setRangeText(option.dataset.text, text.selectionStart, text.selectionEnd, "end");
          text.focus();
        } else {
          toast("A saved reply can't be sent now: " + state.notice, "info");
        }
      }
      canned.value = "";
    });
  }
  const timer = setInterval(() => {
    if (!form.isConnected) return clearInterval(timer);
    if (kind() === "reply") render();
  }, 30000);
  render();

  return {
    /** A conversation.updated event: the window may have reopened. */
    refresh(conversation) {
      if (conversation && "last_inbound_at" in conversation) form.dataset.lastInbound = conversation.last_inbound_at || "";
      render();
    },
  };
}
