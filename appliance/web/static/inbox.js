// The inbox: open conversations without reloading, actions, and live updates for every agent.
// Markup always comes from the server (fragments rendered by the same templates as the page),
// parsed inertly; this file only moves elements and sets text.

import { api, errorText, fragment } from "./api.js";
import { initComposer } from "./composer.js";
import { on } from "./live.js";
import { wireTags } from "./tags.js";
import { busy, debounce, toast } from "./ui.js";

const main = document.getElementById("main");
const pane = document.querySelector(".conv-pane");
const listBox = document.getElementById("conversation-list");
const threadBox = document.getElementById("thread");
const contactBox = document.getElementById("contact-panel");
const view = pane.dataset.view;
const channel = pane.dataset.channel;

let current = null; // {id, contactId, composer}
let listLoading = null;
// message.updated for a message not shown yet (its timeline fetch is in flight): redrawn
// once it is appended, so a fast failure or status is never shown stale.
const pendingUpdates = new Set();

// --- the conversation list -------------------------------------------------------------------

function listUrl() {
  const query = new URLSearchParams({ view });
  if (channel) query.set("channel", channel);
  if (current) query.set("conversation", current.id);
  return `/inbox/fragments/list?${query}`;
}

async function refreshList() {
  if (listLoading) return listLoading.then(() => refreshList());
  listLoading = (async () => {
    try {
      const { root } = await fragment(listUrl());
      // Where focus is when the list is redrawn, not when the fetch began (the agent may have moved).
      const focused = document.activeElement && document.activeElement.closest("[data-conversation-id]");
      const focusedId = focused && listBox.contains(focused) ? focused.dataset.conversationId : null;
      const counts = root.querySelector("#view-counts");
      if (counts) {
        for (const item of counts.children) updateCount(item.dataset.count, item.dataset.conversations, item.dataset.unread);
        counts.remove();
      }
      listBox.replaceChildren(...root.childNodes);
      if (focusedId) {
        const again = listBox.querySelector(`[data-conversation-id="${CSS.escape(focusedId)}"]`);
        if (again) again.focus();
      }
    } catch (err) {
      if (err.status !== 401) console.warn("list refresh failed", err);
    } finally {
      listLoading = null;
    }
  })();
  return listLoading;
}
const scheduleList = debounce(refreshList, 250);

function updateCount(key, conversations, unread) {
  const tab = document.querySelector(`.view-tab[data-view="${key}"]`);
  if (!tab) return;
  tab.querySelector(".count").textContent = conversations;
  let badge = tab.querySelector(".badge");
  if (Number(unread) > 0 && key !== "closed") {
    if (!badge) {
      badge = document.createElement("span");
      badge.className = "badge";
      tab.append(badge);
    }
    badge.textContent = unread;
    badge.setAttribute("aria-label", `${unread} unread`);
  } else if (badge) {
    badge.remove();
  }
}

function markSelected(id) {
  for (const link of listBox.querySelectorAll(".conv-item")) {
    const selected = link.dataset.conversationId === String(id);
    link.classList.toggle("selected", selected);
    if (selected) link.setAttribute("aria-current", "true");
    else link.removeAttribute("aria-current");
  }
}

listBox.addEventListener("click", (event) => {
  const more = event.target.closest("[data-more-cursor]");
  if (more) {
    event.preventDefault();
    loadMore(more);
    return;
  }
  const link = event.target.closest("a.conv-item");
  if (!link || event.metaKey || event.ctrlKey || event.shiftKey || event.button !== 0) return;
  event.preventDefault();
  openConversation(link.dataset.conversationId, { push: true, wasUnread: link.classList.contains("unread") });
});

listBox.addEventListener("keydown", (event) => {
  if (event.key !== "ArrowDown" && event.key !== "ArrowUp") return;
  const items = [...listBox.querySelectorAll("a.conv-item")];
  const index = items.indexOf(document.activeElement);
  if (index < 0) return;
  event.preventDefault();
  const next = items[event.key === "ArrowDown" ? Math.min(index + 1, items.length - 1) : Math.max(index - 1, 0)];
  next.focus();
});

async function loadMore(link) {
  const query = new URLSearchParams({ view, cursor: link.dataset.moreCursor });
  if (channel) query.set("channel", channel);
  if (current) query.set("conversation", current.id);
  try {
    const { root } = await fragment(`/inbox/fragments/list?${query}`);
    root.querySelector("#view-counts")?.remove();
    const items = root.querySelector("#conv-items");
    const list = listBox.querySelector("#conv-items");
    if (items && list) list.append(...items.children);
    const newMore = root.querySelector("[data-more-cursor]");
    if (newMore) link.replaceWith(newMore);
    else link.remove();
  } catch (err) {
    toast(errorText(err), "error");
  }
}

document.getElementById("channel-select").addEventListener("change", (event) => {
  const query = new URLSearchParams({ view });
  if (event.target.value) query.set("channel", event.target.value);
  location.assign(`/inbox?${query}`);
});

// --- the open conversation -------------------------------------------------------------------

function threadUrl(id) {
  const query = new URLSearchParams({ view });
  if (channel) query.set("channel", channel);
  query.set("conversation", id);
  return `/inbox?${query}`;
}

async function openConversation(id, { push = false, wasUnread = false } = {}) {
  try {
    const { root, status } = await fragment(`/inbox/fragments/thread/${id}?view=${view}`);
    if (status === 404) {
      threadBox.replaceChildren(root);
      contactBox.replaceChildren();
      current = null;
      return;
    }
    threadBox.replaceChildren(...root.querySelector('[data-part="thread"]').childNodes);
    contactBox.replaceChildren(...root.querySelector('[data-part="contact"]').childNodes);
  } catch (err) {
    toast(errorText(err), "error");
    return;
  }
  if (push) history.pushState({ conversation: id }, "", threadUrl(id));
  main.classList.add("has-thread");
  markSelected(id);
  setupThread({ wasUnread });
  const heading = threadBox.querySelector(".thread-title h2");
  if (heading && push) focusAgain(heading);
  const name = heading ? heading.textContent : "";
  document.title = `${name} · Inbox · AAT Systems`;
}

function setupThread({ wasUnread = false } = {}) {
  const thread = threadBox.querySelector(".thread");
  if (!thread) {
    current = null;
    return;
  }
  current = { id: thread.dataset.conversationId, contactId: thread.dataset.contactId };
  pendingUpdates.clear();
  const form = threadBox.querySelector("#composer");
  current.composer = initComposer(form, { onSent: () => loadNew() });
  wireContact();
  scrollToEnd(true);
  const item = listBox.querySelector(`.conv-item[data-conversation-id="${CSS.escape(current.id)}"]`);
  if (wasUnread || (item && item.classList.contains("unread"))) markRead();
}

function wireContact() {
  const card = contactBox.querySelector("#contact-card");
  if (card && current) wireTags(contactBox, current.contactId);
}

const markRead = debounce(async () => {
  if (!current || document.visibilityState !== "visible") return;
  try {
    await api("POST", `/api/v1/conversations/${current.id}/read`);
  } catch (err) {
    if (err.status !== 404) console.warn("mark read failed", err);
  }
}, 300);

function timeline() {
  return threadBox.querySelector("#timeline");
}

function nearEnd() {
  const wrap = threadBox.querySelector("#timeline-wrap");
  return !wrap || wrap.scrollHeight - wrap.scrollTop - wrap.clientHeight < 120;
}

function scrollToEnd(force = false) {
  const wrap = threadBox.querySelector("#timeline-wrap");
  if (wrap && (force || nearEnd())) wrap.scrollTop = wrap.scrollHeight;
}

function newestId(selector, attribute) {
  let max = 0;
  for (const node of threadBox.querySelectorAll(selector)) max = Math.max(max, Number(node.dataset[attribute]) || 0);
  return max;
}

/** Appends what arrived since the newest message and note shown. */
async function loadNew() {
  if (!current) return;
  const id = current.id;
  const query = new URLSearchParams({
    after_message: newestId("[data-message-id]", "messageId"),
    after_note: newestId("[data-note-id]", "noteId"),
  });
  const follow = nearEnd();
  try {
    const { root } = await fragment(`/inbox/fragments/timeline/${id}?${query}`);
    const list = timeline();
    if (!list || !current || current.id !== id) return;
    let lastDay = [...list.querySelectorAll("li.day")].pop();
    for (const item of [...root.children]) {
      if (item.classList.contains("day")) {
        if (lastDay && lastDay.dataset.day === item.dataset.day) continue;
        lastDay = item;
      }
      if (item.id && document.getElementById(item.id)) continue; // already shown
      list.append(item);
    }
    if (follow) scrollToEnd(true);
    for (const messageId of [...pendingUpdates]) {
      if (document.getElementById(`m-${messageId}`)) {
        pendingUpdates.delete(messageId);
        replaceMessage(messageId);
      }
    }
  } catch (err) {
    if (err.status !== 401) console.warn("loading new messages failed", err);
  }
}
const scheduleNew = debounce(loadNew, 100);

/** A selector that finds `node` again in a redrawn header or contact panel: its id, its action,
 * its tag's remove button, the conversation's heading (where a keyboard user is left when a
 * conversation opens), the tag form's button, or its link; null for anything else. */
function sameElement(node) {
  if (node.id) return `#${CSS.escape(node.id)}`;
  if (node.dataset.action) return `[data-action="${CSS.escape(node.dataset.action)}"]`;
  if (node.dataset.tag) return `.tag-remove[data-tag="${CSS.escape(node.dataset.tag)}"]`;
  for (const selector of [".thread-title h2", ".tag-form button"]) if (node.matches(selector)) return selector;
  return node.matches("a[href]") ? `a[href="${CSS.escape(node.getAttribute("href"))}"]` : null;
}

/** Focuses `node`; a heading is made focusable from script first (not a Tab stop). */
function focusAgain(node) {
  if (node.matches("h2")) node.tabIndex = -1;
  node.focus();
}

async function refreshHeader() {
  if (!current) return;
  try {
    const { root } = await fragment(`/inbox/fragments/header/${current.id}?view=${view}`);
    const head = threadBox.querySelector("#thread-head");
    const hadFocus = head && head.contains(document.activeElement);
    const focused = hadFocus ? sameElement(document.activeElement) : null;
    if (head && root) {
      head.replaceWith(root);
      if (hadFocus) {
        const again = (focused && root.querySelector(focused)) || root.querySelector("[data-action]");
        if (again) focusAgain(again);
      }
    }
  } catch (err) {
    if (err.status !== 401) console.warn("header refresh failed", err);
  }
}

async function refreshContact() {
  if (!current) return;
  try {
    const { root } = await fragment(`/inbox/fragments/contact/${current.id}`);
    const hadFocus = contactBox.contains(document.activeElement);
    const focused = hadFocus ? sameElement(document.activeElement) : null;
    const typed = contactBox.querySelector("#new-tag");
    const draft = typed ? { value: typed.value, start: typed.selectionStart, end: typed.selectionEnd } : null;
    contactBox.replaceChildren(root);
    wireContact();
    const input = contactBox.querySelector("#new-tag");
    if (input && draft && draft.value) input.value = draft.value; // a tag being typed survives the redraw
    if (hadFocus) { // on the same element, else (a removed tag's button) on the new-tag field
      const again = (focused && contactBox.querySelector(focused)) || input;
      if (again) focusAgain(again);
      if (again === input && draft) input.setSelectionRange(draft.start, draft.end);
    }
  } catch (err) {
    if (err.status !== 401) console.warn("contact refresh failed", err);
  }
}

const refreshing = new Map(); // message id -> another update arrived meanwhile

/** Redraws one message; updates arriving during a fetch cause one more fetch, in order. */
async function replaceMessage(id) {
  if (refreshing.has(id)) {
    refreshing.set(id, true);
    return;
  }
  refreshing.set(id, false);
  try {
    const { root, status } = await fragment(`/inbox/fragments/message/${id}`);
    const node = document.getElementById(`m-${id}`);
    if (node && status === 200 && root.firstElementChild) node.replaceWith(root.firstElementChild);
  } catch (err) {
    if (err.status !== 401) console.warn("message refresh failed", err);
  } finally {
    const again = refreshing.get(id);
    refreshing.delete(id);
    if (again) replaceMessage(id);
  }
}

threadBox.addEventListener("click", async (event) => {
  const back = event.target.closest(".back-link");
  if (back) {
    event.preventDefault();
    main.classList.remove("has-thread");
    history.pushState({}, "", `/inbox?view=${view}${channel ? `&channel=${channel}` : ""}`);
    const item = current && listBox.querySelector(`.conv-item[data-conversation-id="${CSS.escape(current.id)}"]`);
    if (item) item.focus();
    return;
  }
  const toggle = event.target.closest(".panel-toggle");
  if (toggle) {
    const open = !main.classList.contains("show-contact");
    main.classList.toggle("show-contact", open);
    toggle.setAttribute("aria-expanded", String(open));
    if (open) contactBox.querySelector("h2")?.focus?.();
    return;
  }
  const older = event.target.closest("[data-before]");
  if (older) {
    event.preventDefault();
    loadOlder(older);
    return;
  }
  const button = event.target.closest("button[data-action]");
  if (!button || !current) return;
  const action = button.dataset.action;
  const labels = { close: "Conversation closed.", reopen: "Conversation reopened.", "pause-bot": "Bot paused: automation stops for this contact.", "resume-bot": "Bot resumed." };
  await busy(button, async () => {
    try {
      await api("POST", `/api/v1/conversations/${current.id}/${action}`);
      toast(labels[action] || "Done.");
      await refreshHeader();
      scheduleList();
    } catch (err) {
      toast(errorText(err), "error");
    }
  });
});

threadBox.addEventListener("change", async (event) => {
  const select = event.target.closest("select[data-action=assign]");
  if (!select || !current) return;
  const userId = select.value || null;
  const label = select.selectedOptions[0] ? select.selectedOptions[0].textContent : "";
  try {
    await api("POST", `/api/v1/conversations/${current.id}/assign`, { user_id: userId });
    toast(userId ? `Assigned to ${label}.` : "Unassigned.");
    scheduleList();
  } catch (err) {
    toast(errorText(err), "error");
    refreshHeader();
  }
});

async function loadOlder(link) {
  if (!current) return;
  try {
    const { root } = await fragment(`/inbox/fragments/timeline/${current.id}?before=${link.dataset.before}`);
    const list = timeline();
    const wrap = threadBox.querySelector("#timeline-wrap");
    const height = wrap.scrollHeight;
    const firstDay = list.querySelector("li.day");
    const items = [...root.children];
    const lastNewDay = items.filter((i) => i.classList.contains("day")).pop();
    if (firstDay && lastNewDay && firstDay.dataset.day === lastNewDay.dataset.day) firstDay.remove();
    list.prepend(...items.filter((i) => !(i.id && document.getElementById(i.id))));
    wrap.scrollTop += wrap.scrollHeight - height;
    const older = root.dataset.older;
    if (older) link.dataset.before = older;
    else link.closest(".load-older").remove();
  } catch (err) {
    toast(errorText(err), "error");
  }
}

window.addEventListener("popstate", () => {
  const id = new URLSearchParams(location.search).get("conversation");
  if (id) openConversation(id);
  else main.classList.remove("has-thread");
});

document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "visible" && current) markRead();
});

// --- live updates ----------------------------------------------------------------------------

on("message.created", (event) => {
  scheduleList();
  if (current && event.conversation_id === current.id) {
    scheduleNew();
    if (event.message && event.message.direction === "in") markRead();
  }
});

on("message.updated", (event) => {
  if (!current || !event.message_id) return;
  if (document.getElementById(`m-${event.message_id}`)) replaceMessage(event.message_id);
  else if (event.message && event.message.conversation_id === current.id) {
    pendingUpdates.add(event.message_id);
    scheduleNew();
  }
});

const onConversation = (event) => {
  scheduleList();
  if (current && event.conversation_id === current.id) {
    refreshHeader();
    scheduleNew(); // notes arrive as conversation updates
    if (current.composer) current.composer.refresh(event.conversation);
  }
};
on("conversation.updated", onConversation);
on("conversation.assigned", onConversation);

on("contact.updated", (event) => {
  if (current && event.contact_id === current.contactId) refreshContact();
});

on("contact.deleted", (event) => {
  scheduleList();
  if (current && event.contact_id === current.contactId) openConversation(current.id);
});

on("resync", () => {
  refreshList();
  if (current) {
    loadNew();
    refreshHeader();
  }
});

setupThread();
