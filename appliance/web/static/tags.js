// Tags of a contact, in the inbox's contact panel and on the profile: add with the form,
// remove with each tag's button. The list is redrawn from the API's answer.

import { api, errorText } from "./api.js";
import { busy, el, toast } from "./ui.js";

export function renderTags(list, tags) {
  list.replaceChildren(...tags.map((tag) => el("li", { class: "tag" },
    el("span", { text: tag }),
    el("button", { type: "button", class: "tag-remove", dataset: { tag }, "aria-label": `Remove tag ${tag}`, text: "×" }))));
}

/** Wires the tag form and list inside `root`; onChange(contact) after each change. */
export function wireTags(root, contactId, onChange = () => {}) {
  const list = root.querySelector("#contact-tags");
  const form = root.querySelector(".tag-form");
  if (!list || !form) return;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const input = form.querySelector("input[name=tag]");
    const tag = input.value.trim();
    if (!tag) {
      input.focus();
      return;
    }
    await busy(form.querySelector("button"), async () => {
      try {
        const contact = await api("POST", `/api/v1/contacts/${contactId}/tags`, { tag });
        renderTags(list, contact.tags);
        input.value = "";
        toast(`Tagged ${tag}.`);
        onChange(contact);
      } catch (err) {
        toast(errorText(err), "error");
      }
    });
  });
  list.addEventListener("click", async (event) => {
    const button = event.target.closest(".tag-remove");
    if (!button) return;
    const tag = button.dataset.tag;
    try {
      const contact = await api("DELETE", `/api/v1/contacts/${contactId}/tags/${encodeURIComponent(tag)}`);
      renderTags(list, contact.tags);
      toast(`Removed the tag ${tag}.`);
      form.querySelector("input[name=tag]").focus();
      onChange(contact);
    } catch (err) {
      toast(errorText(err), "error");
    }
  });
}
