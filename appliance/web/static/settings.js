// Settings: every section reads and writes through the JSON API of its feature. Lists are
// built with textContent; secrets (tokens, keys) are only ever sent, never shown back.

import { api, errorText } from "./api.js";
import { busy, copy, el, toast, when } from "./ui.js";

const section = document.querySelector(".settings")?.dataset.section;
const CHANNELS = { messenger: "Messenger", instagram: "Instagram", whatsapp: "WhatsApp" };
const STATUS = { active: ["Connected", "chip-ok"], needs_reauth: ["Needs reconnecting", "chip-danger"], disconnected: ["Disconnected", ""] };

function formValues(form) {
  const values = {};
  for (const [key, value] of new FormData(form)) if (typeof value === "string") values[key] = value.trim();
  return values;
}

function onSubmit(form, handler) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!form.reportValidity()) return;
    await busy(form.querySelector("button[type=submit]"), async () => {
      try {
        await handler(formValues(form));
      } catch (err) {
        toast(errorText(err), "error");
      }
    });
  });
}

function emptyRow(text) {
  return el("p", { class: "muted", text });
}

function failed(box, err) {
  box.replaceChildren(el("p", { class: "error", role: "alert", text: errorText(err) }));
}

function resultBox(target, label, value, extra) {
  const code = el("code", { text: value });
  target.replaceChildren(el("div", { class: "result-box", role: "status" }, el("p", { text: label }), code, " ",
    el("button", { type: "button", class: "secondary small", onclick: () => copy(value), text: "Copy" }),
    extra ? el("p", { class: "muted small", text: extra }) : null));
}

// --- channels --------------------------------------------------------------------------------

async function channels() {
  const list = document.getElementById("channel-list");
  const form = document.getElementById("connect-form");
  const type = form.elements.type;
  const showExtra = () => {
    document.getElementById("waba-field").hidden = type.value !== "whatsapp";
    document.getElementById("page-field").hidden = type.value !== "instagram";
  };
  type.addEventListener("change", showExtra);
  showExtra();

  async function load() {
    try {
      const page = await api("GET", "/api/v1/channels?limit=500");
      list.replaceChildren(...(page.items.length ? page.items.map(row) : [emptyRow("No channels yet. Connect one below.")]));
    } catch (err) {
      failed(list, err);
    }
  }

  function row(ch) {
    const [label, chip] = STATUS[ch.status] || [ch.status, ""];
    const actions = el("div", { class: "page-actions" });
    if (ch.status !== "active") {
      actions.append(el("button", { type: "button", class: "secondary small", text: "Reconnect", onclick: () => {
        type.value = ch.type;
        showExtra();
        form.elements.external_id.value = ch.external_id;
        form.elements.name.value = ch.name || "";
        if (ch.waba_id) form.elements.waba_id.value = ch.waba_id;
        form.elements.access_token.focus();
        toast(`Paste a new token for ${ch.name || ch.external_id} and press Connect channel.`);
      } }));
    }
    if (ch.status !== "disconnected") {
      actions.append(el("button", { type: "button", class: "secondary small", text: "Disconnect",
        "aria-label": `Disconnect ${ch.name || ch.external_id}`, onclick: async (event) => {
          if (!confirm(`Disconnect ${ch.name || ch.external_id}? Its token is erased at once; conversations stay.`)) return;
          await busy(event.target, async () => {
            try {
              await api("DELETE", `/api/v1/channels/${ch.id}`);
              toast("Channel disconnected.");
              load();
            } catch (err) {
              toast(errorText(err), "error");
            }
          });
        } }));
    }
    return el("div", { class: "list-row", dataset: { channelId: ch.id } },
      el("div", { class: "grow" }, el("div", { class: "title", text: ch.name || `${CHANNELS[ch.type]} ${ch.external_id}` }),
        el("div", { class: "muted small", text: `${CHANNELS[ch.type]} · id ${ch.external_id}${ch.waba_id ? ` · account ${ch.waba_id}` : ""}${ch.connected_at ? ` · connected ${when(ch.connected_at)}` : ""}` }),
        ch.status_reason ? el("div", { class: "small error", text: ch.status_reason }) : null),
      el("span", { class: `chip ${chip}`, text: label }), actions);
  }

  onSubmit(form, async (values) => {
    const body = { type: values.type, external_id: values.external_id, access_token: values.access_token };
    if (values.name) body.name = values.name;
    if (values.type === "whatsapp" && values.waba_id) body.waba_id = values.waba_id;
    if (values.type === "instagram" && values.page_id) body.page_id = values.page_id;
    await api("POST", "/api/v1/channels", body);
    form.elements.access_token.value = "";
    toast("Channel connected.");
    load();
  });
  load();
}

// --- team ------------------------------------------------------------------------------------

async function team() {
  const list = document.getElementById("user-list");
  const result = document.getElementById("invite-result");
  async function load() {
    try {
      const page = await api("GET", "/api/v1/users?limit=500");
      list.replaceChildren(...page.items.map((user) => el("div", { class: "list-row" },
        el("div", { class: "grow" }, el("div", { class: "title", text: user.name || user.email }),
          el("div", { class: "muted small", text: `${user.email} · joined ${when(user.created_at)}` })),
        el("span", { class: "chip", text: user.disabled ? "disabled" : user.role }),
        el("button", { type: "button", class: "secondary small", "aria-label": `Create a password reset link for ${user.email}`,
          text: "Reset link", onclick: (event) => busy(event.target, async () => {
            try {
              const link = await api("POST", `/api/v1/users/${user.id}/reset-link`);
              resultBox(result, `Send this link to ${user.email}; it works once, until ${when(link.expires_at)}:`, link.reset_url);
            } catch (err) {
              toast(errorText(err), "error");
            }
          }) }))));
    } catch (err) {
      failed(list, err);
    }
  }
  const form = document.getElementById("invite-form");
  onSubmit(form, async (values) => {
    const body = { email: values.email, role: values.role };
    if (values.name) body.name = values.name;
    const user = await api("POST", "/api/v1/users", body);
    form.reset();
    resultBox(result, `Invitation for ${user.email}: send them this link (valid 7 days, shown once).`, user.invite_url,
      user.invite_emailed ? "It was also emailed to them." : "This workspace does not send email: share the link yourself.");
    load();
  });
  load();
}

// --- saved replies ---------------------------------------------------------------------------

async function replies() {
  const list = document.getElementById("reply-list");
  const form = document.getElementById("reply-form");
  const submit = form.querySelector("button[type=submit]");
  let editing = null;
  async function load() {
    try {
      const page = await api("GET", "/api/v1/canned-replies");
      list.replaceChildren(...(page.items.length ? page.items.map((reply) => el("div", { class: "list-row" },
        el("div", { class: "grow" }, el("div", { class: "title", text: `/${reply.shortcut}` }),
          el("div", { class: "muted small", text: reply.text })),
        el("button", { type: "button", class: "secondary small", "aria-label": `Edit /${reply.shortcut}`, text: "Edit",
          onclick: () => {
            editing = reply.id;
            form.elements.shortcut.value = reply.shortcut;
            form.elements.text.value = reply.text;
            submit.textContent = "Save changes";
            form.elements.text.focus();
          } }),
        el("button", { type: "button", class: "secondary small", "aria-label": `Delete /${reply.shortcut}`, text: "Delete",
          onclick: async () => {
            if (!confirm(`Delete the saved reply /${reply.shortcut}?`)) return;
            try {
              await api("DELETE", `/api/v1/canned-replies/${reply.id}`);
              toast("Saved reply deleted.");
              load();
            } catch (err) {
              toast(errorText(err), "error");
            }
          } }))) : [emptyRow("No saved replies yet.")]));
    } catch (err) {
      failed(list, err);
    }
  }
  onSubmit(form, async (values) => {
    const body = { shortcut: values.shortcut, text: form.elements.text.value };
    if (editing) await api("PUT", `/api/v1/canned-replies/${editing}`, body);
    else await api("POST", "/api/v1/canned-replies", body);
    toast(editing ? "Saved reply updated." : "Saved reply added.");
    editing = null;
    submit.textContent = "Save reply";
    form.reset();
    load();
  });
  load();
}

// --- AI and the knowledge base ---------------------------------------------------------------

async function ai() {
  const form = document.getElementById("ai-form");
  const keyState = document.getElementById("ai-key-state");
  try {
    const settings = await api("GET", "/api/v1/settings/ai");
    form.elements.provider.value = settings.provider || "anthropic";
    form.elements.model.value = settings.model || "";
    form.elements.instructions.value = settings.instructions || "";
    keyState.textContent = settings.has_api_key
      ? "A key is stored (encrypted; never shown). Type a new one to replace it, or leave empty to keep it."
      : "No key stored yet: AI replies cannot run until you add one.";
  } catch (err) {
    if (err.status === 404) {
      form.hidden = true;
      document.getElementById("ai-unavailable").hidden = false;
    } else {
      toast(errorText(err), "error");
    }
  }
  onSubmit(form, async (values) => {
    const body = { provider: values.provider, model: values.model, instructions: form.elements.instructions.value };
    if (values.api_key) body.api_key = values.api_key;
    const saved = await api("PUT", "/api/v1/settings/ai", body);
    form.elements.api_key.value = "";
    keyState.textContent = saved.has_api_key ? "A key is stored (encrypted; never shown)." : "No key stored yet.";
    toast("AI settings saved.");
  });

  const list = document.getElementById("kb-list");
  async function load() {
    try {
      const page = await api("GET", "/api/v1/knowledge?limit=500");
      list.replaceChildren(...(page.items.length ? page.items.map((doc) => el("div", { class: "list-row" },
        el("div", { class: "grow" }, el("div", { class: "title", text: doc.title }),
          el("div", { class: "muted small", text: `${doc.source}${doc.filename ? ` · ${doc.filename}` : ""} · ${doc.chunks} passages · ${doc.chars.toLocaleString()} characters` })),
        el("button", { type: "button", class: "secondary small", "aria-label": `Delete ${doc.title}`, text: "Delete",
          onclick: async () => {
            if (!confirm(`Delete “${doc.title}” from the knowledge base?`)) return;
            try {
              await api("DELETE", `/api/v1/knowledge/${doc.id}`);
              toast("Document deleted.");
              load();
            } catch (err) {
              toast(errorText(err), "error");
            }
          } }))) : [emptyRow("No documents yet. Add your prices, opening hours, policies…")]));
    } catch (err) {
      failed(list, err);
    }
  }
  const textForm = document.getElementById("kb-text-form");
  onSubmit(textForm, async (values) => {
    await api("POST", "/api/v1/knowledge", { title: values.title, text: textForm.elements.text.value });
    textForm.reset();
    toast("Document added.");
    load();
  });
  const fileForm = document.getElementById("kb-file-form");
  onSubmit(fileForm, async () => {
    const body = new FormData();
    body.append("file", fileForm.elements.file.files[0]);
    await api("POST", "/api/v1/knowledge", body);
    fileForm.reset();
    toast("File added.");
    load();
  });
  load();
}

// --- integrations ----------------------------------------------------------------------------

async function integrations() {
  const state = document.getElementById("sheets-state");
  const form = document.getElementById("sheets-form");
  async function loadSheets() {
    try {
      const sheets = await api("GET", "/api/v1/integrations/google-sheets");
      const nodes = [];
      if (sheets.connected) {
        nodes.push(el("p", { text: `Connected${sheets.email ? ` as ${sheets.email}` : ""} (${sheets.source === "oauth" ? "Google sign-in" : "your own OAuth client"})${sheets.status && sheets.status !== "active" ? `: ${sheets.status}` : ""}.` }));
        if (sheets.status_reason) nodes.push(el("p", { class: "error", text: sheets.status_reason }));
        nodes.push(el("button", { type: "button", class: "secondary", text: "Disconnect Google Sheets", onclick: async (event) => {
          if (!confirm("Disconnect Google Sheets? Flows that write to a sheet will fail until you connect again.")) return;
          await busy(event.target, async () => {
            try {
              await api("DELETE", "/api/v1/integrations/google-sheets");
              toast("Google Sheets disconnected.");
              loadSheets();
            } catch (err) {
              toast(errorText(err), "error");
            }
          });
        } }));
        form.hidden = true;
      } else {
        nodes.push(el("p", { class: "muted", text: "Not connected." }));
        if (sheets.connect_url) nodes.push(el("a", { class: "button", href: sheets.connect_url, text: "Connect with Google" }));
        form.hidden = false;
      }
      state.replaceChildren(...nodes);
    } catch (err) {
      failed(state, err);
    }
  }
  onSubmit(form, async (values) => {
    await api("PUT", "/api/v1/integrations/google-sheets", values);
    form.reset();
    toast("Google Sheets connected.");
    loadSheets();
  });
  loadSheets();

  const list = document.getElementById("hook-list");
  const result = document.getElementById("hook-result");
  async function loadHooks() {
    try {
      const page = await api("GET", "/api/v1/webhooks?limit=500");
      list.replaceChildren(...(page.items.length ? page.items.map((hook) => el("div", { class: "list-row" },
        el("div", { class: "grow" }, el("div", { class: "title", text: hook.url }),
          el("div", { class: "muted small", text: `${hook.description ? `${hook.description} · ` : ""}${hook.events.join(", ")}` })),
        el("span", { class: `chip ${hook.active ? "chip-ok" : ""}`, text: hook.active ? "active" : "paused" }),
        el("button", { type: "button", class: "secondary small", "aria-label": `Delete the webhook to ${hook.url}`, text: "Delete",
          onclick: async () => {
            if (!confirm(`Stop sending events to ${hook.url}?`)) return;
            try {
              await api("DELETE", `/api/v1/webhooks/${hook.id}`);
              toast("Webhook deleted.");
              loadHooks();
            } catch (err) {
              toast(errorText(err), "error");
            }
          } }))) : [emptyRow("No webhooks yet.")]));
    } catch (err) {
      failed(list, err);
    }
  }
  const hookForm = document.getElementById("hook-form");
  onSubmit(hookForm, async (values) => {
    const events = new FormData(hookForm).getAll("events");
    const body = { url: values.url, events };
    if (values.description) body.description = values.description;
    const hook = await api("POST", "/api/v1/webhooks", body);
    hookForm.reset();
    resultBox(result, "Signing secret (shown once): verify each delivery's signature with it.", hook.secret);
    loadHooks();
  });
  loadHooks();
}

// --- workspace -------------------------------------------------------------------------------

async function workspace() {
  const form = document.getElementById("workspace-form");
  const words = (text) => text.split(",").map((w) => w.trim()).filter(Boolean);
  try {
    const settings = await api("GET", "/api/v1/settings/workspace");
    form.elements.name.value = settings.name || "";
    form.elements.timezone.value = settings.timezone || "UTC";
    const sub = settings.subscription || {};
    form.elements.stop.value = (sub.stop || []).join(", ");
    form.elements.start.value = (sub.start || []).join(", ");
    form.elements.stop_reply.value = sub.stop_reply || "";
    form.elements.start_reply.value = sub.start_reply || "";
  } catch (err) {
    toast(errorText(err), "error");
  }
  onSubmit(form, async (values) => {
    await api("PUT", "/api/v1/settings/workspace", {
      name: values.name, timezone: values.timezone,
      subscription: { stop: words(values.stop), start: words(values.start), stop_reply: values.stop_reply, start_reply: values.start_reply },
    });
    toast("Workspace settings saved.");
  });
}

const SECTIONS = { channels, team, replies, ai, integrations, workspace };
if (SECTIONS[section]) SECTIONS[section]();
