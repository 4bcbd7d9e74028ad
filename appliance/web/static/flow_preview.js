// The preview chat: talks to the saved draft through POST /api/v1/flows/{id}/preview and draws
// each bot message from the Graph API bodies the channel's adapter rendered, so buttons look
// the way that channel shows them (Messenger button template or quick replies, WhatsApp reply
// buttons or a list, Instagram quick replies or cards). Tapping one sends its payload back.

import { api, errorText } from "./api.js";
import { el } from "./ui.js";

/** [{text, buttons: [{title, payload|url}], quick: [...], list: {label, rows}, cards, media}] */
export function bubbles(body, channel) {
  if (channel === "whatsapp") return [whatsapp(body)];
  const m = body.message || {};
  const out = { text: m.text || null, buttons: [], quick: [], cards: [], media: null };
  const att = m.attachment;
  if (att && att.type === "template") {
    const p = att.payload || {};
    if (p.template_type === "button") { out.text = p.text; out.buttons = (p.buttons || []).map(mButton); }
    if (p.template_type === "generic") {
      out.cards = (p.elements || []).map((c) => ({ title: c.title, subtitle: c.subtitle, buttons: (c.buttons || []).map(mButton) }));
    }
  } else if (att) out.media = att.type;
  out.quick = (m.quick_replies || []).map((q) => ({ title: q.title, payload: q.payload }));
  return [out];
}

function mButton(b) {
  return b.type === "web_url" ? { title: b.title, url: b.url } : { title: b.title, payload: b.payload };
}

function whatsapp(body) {
  const out = { text: null, buttons: [], quick: [], cards: [], media: null, list: null };
  if (body.type === "text") out.text = body.text.body;
  else if (body.type === "interactive") {
    const i = body.interactive;
    out.text = i.body ? i.body.text : null;
    if (i.type === "button") out.buttons = i.action.buttons.map((b) => ({ title: b.reply.title, payload: b.reply.id }));
    if (i.type === "list") {
      out.list = { label: i.action.button, rows: i.action.sections.flatMap((s) => s.rows.map((r) => ({ title: r.title, payload: r.id }))) };
    }
    if (i.type === "cta_url") out.buttons = [{ title: i.action.parameters.display_text, url: i.action.parameters.url }];
  } else out.media = body.type;
  return out;
}

export class Preview {
  constructor(flowId, ensureSaved) {
    this.flowId = flowId;
    this.ensureSaved = ensureSaved;
    this.chat = document.getElementById("preview-chat");
    this.channel = document.getElementById("preview-channel");
    this.runLine = document.getElementById("preview-run");
    document.getElementById("preview-start").addEventListener("click", () => this.send({ reset: true }));
    document.getElementById("preview-form").addEventListener("submit", (e) => {
      e.preventDefault();
      const input = document.getElementById("preview-text");
      const text = input.value.trim();
      if (!text) return;
      input.value = "";
      this.say(text);
      this.send({ text });
    });
    this.channel.addEventListener("change", () => this.send({ reset: true }));
  }

  say(text) {
    this.chat.append(el("li", { class: "bubble from-contact", text }));
    this.chat.scrollTop = this.chat.scrollHeight;
  }

  async send(input) {
    const id = await this.ensureSaved();
    if (!id) return;
    if (input.reset) this.chat.replaceChildren();
    let answer;
    try {
      answer = await api("POST", `/api/v1/flows/${id}/preview`, { channel: this.channel.value, ...input });
    } catch (err) {
      this.chat.append(el("li", { class: "bubble system error", role: "alert", text: errorText(err) }));
      return;
    }
    for (const item of answer.transcript) this.chat.append(...this.item(item));
    const run = answer.run;
    this.runLine.textContent = run.status === "active"
      ? (run.waiting ? `Waiting for the contact (${run.waiting}) at ${run.step}.` : `At ${run.step}.`)
      : `The run ended: ${run.status}.`;
    this.chat.scrollTop = this.chat.scrollHeight;
  }

  item(item) {
    if (item.type === "wait") return [el("li", { class: "bubble system", text: item.kind === "delay" ? "(a delay passes)" : `(waits: ${item.kind})` })];
    if (item.type === "call") return [el("li", { class: "bubble system", text: `(${item.kind} of ${item.step}: not run in the preview)` })];
    if (item.type === "handoff") return [el("li", { class: "bubble system", text: "(handed off to the team)" })];
    if (item.type === "goto_flow") return [el("li", { class: "bubble system", text: `(continues in flow ${item.flow})` })];
    if (item.channel_error) return [el("li", { class: "bubble system error", text: `Cannot be sent on this channel: ${item.channel_error}` })];
    const channel = this.channel.value;
    return (item.channel_bodies || []).flatMap((body) => bubbles(body, channel)).map((b) => this.bubble(b, item.step));
  }

  bubble(b, step) {
    const tap = (choice) => {
      if (choice.url) return el("a", { class: "chat-button", href: choice.url, target: "_blank", rel: "noopener noreferrer", text: `${choice.title} ↗` });
      const button = el("button", { type: "button", class: "chat-button", text: choice.title });
      button.addEventListener("click", () => { this.say(choice.title); this.send({ payload: choice.payload, text: choice.title }); });
      return button;
    };
    const node = el("li", { class: `bubble from-bot ch-${this.channel.value}`, dataset: { step } });
    if (b.media) node.append(el("p", { class: "muted", text: `[${b.media}]` }));
    if (b.text) node.append(el("p", { text: b.text }));
    if (b.buttons.length) node.append(el("div", { class: "chat-buttons" }, b.buttons.map(tap)));
    for (const c of b.cards) {
      node.append(el("div", { class: "chat-card" }, el("strong", { text: c.title }), c.subtitle ? el("p", { text: c.subtitle }) : null,
        el("div", { class: "chat-buttons" }, c.buttons.map(tap))));
    }
    if (b.list) {
      const rows = el("div", { class: "chat-list", hidden: true }, b.list.rows.map(tap));
      const open = el("button", { type: "button", class: "chat-button", text: `☰ ${b.list.label}` });
      open.addEventListener("click", () => { rows.hidden = !rows.hidden; });
      node.append(open, rows);
    }
    if (b.quick.length) node.append(el("div", { class: "chat-quick" }, b.quick.map(tap)));
    return node;
  }
}

export { api };
