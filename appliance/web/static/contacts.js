// Contacts: the CSV import (preview, per-row errors, then the real import) on the list, and
// on a profile: details, tags, custom fields, subscription, GDPR export and erasure.

import { api, errorText } from "./api.js";
import { wireTags } from "./tags.js";
import { busy, el, toast } from "./ui.js";

// --- the list: CSV import --------------------------------------------------------------------

const importToggle = document.getElementById("import-toggle");
const importPanel = document.getElementById("import-panel");
if (importToggle && importPanel) {
  importToggle.addEventListener("click", () => {
    const open = importPanel.hidden;
    importPanel.hidden = !open;
    importToggle.setAttribute("aria-expanded", String(open));
    if (open) document.getElementById("import-file").focus();
  });
  const form = document.getElementById("import-form");
  const result = document.getElementById("import-result");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const file = document.getElementById("import-file").files[0];
    if (!file) return;
    await busy(document.getElementById("import-preview"), () => preview(file, result));
  });
}

function upload(file, dryRun) {
  const body = new FormData();
  body.append("file", file);
  return api("POST", `/api/v1/contacts/import${dryRun ? "?dry_run=true" : ""}`, body);
}

async function preview(file, result) {
  let report;
  try {
    report = await upload(file, true);
  } catch (err) {
    result.replaceChildren(el("p", { class: "error", role: "alert", text: errorText(err) }),
      ...detailList(err.details));
    return;
  }
  const ok = report.invalid === 0;
  const summary = el("div", { class: "counts" },
    el("span", { text: `${report.rows} rows` }), el("span", { text: `${report.create} new` }),
    el("span", { text: `${report.update} updated` }), el("span", { text: `${report.unchanged} unchanged` }),
    el("span", { class: report.invalid ? "error" : "", text: `${report.invalid} with errors` }));
  const heading = el("h3", { text: ok ? "Preview: ready to import" : "Preview: fix these rows, then preview again" });
  const nodes = [heading, summary];
  if (report.errors.length) {
    nodes.push(el("div", { class: "table-wrap" }, el("table", { class: "data-table compact", id: "import-errors" },
      el("caption", { class: "visually-hidden", text: "Rows with errors" }),
      el("thead", {}, el("tr", {}, el("th", { scope: "col", text: "Row" }), el("th", { scope: "col", text: "Column" }),
        el("th", { scope: "col", text: "Problem" }))),
      el("tbody", {}, report.errors.map((e) => el("tr", { class: "row-error" },
        el("td", { text: e.row }), el("td", { text: e.path.split(".").slice(1).join(".") || "—" }),
        el("td", { text: e.message })))))));
  }
  nodes.push(el("div", { class: "table-wrap" }, el("table", { class: "data-table compact", id: "import-preview-table" },
    el("caption", { text: `The first ${report.preview.length} rows` }),
    el("thead", {}, el("tr", {}, ["Row", "Action", "Channel", "Id", "Name", "Tags added"].map((h) => el("th", { scope: "col", text: h })))),
    el("tbody", {}, report.preview.map((r) => el("tr", { class: r.action === "error" ? "row-error" : "" },
      el("td", { text: r.row }), el("td", { text: r.action }), el("td", { text: r.channel || "—" }),
      el("td", { text: r.external_id || "—" }), el("td", { text: r.name || "" }), el("td", { text: r.tags.join(", ") })))))));
  if (ok) {
    const go = el("button", { type: "button", id: "import-confirm", text: `Import ${report.rows} contacts` });
    go.addEventListener("click", () => busy(go, async () => {
      try {
        const done = await upload(file, false);
        result.replaceChildren(el("p", { class: "notice", role: "status",
          text: `Imported: ${done.created} new, ${done.updated} updated, ${done.unchanged} unchanged.` }),
        el("a", { href: "/contacts", class: "button secondary", text: "Show the contacts" }));
      } catch (err) {
        result.prepend(el("p", { class: "error", role: "alert", text: errorText(err) }));
      }
    }));
    nodes.push(el("div", { class: "form-actions" }, go));
  }
  result.replaceChildren(...nodes);
  heading.tabIndex = -1;
  heading.focus();
}

function detailList(details = []) {
  if (!details.length) return [];
  return [el("ul", {}, details.slice(0, 50).map((d) => el("li", { text: `${d.path}: ${d.message}` })))];
}

// --- a profile -------------------------------------------------------------------------------

const profile = document.getElementById("profile");
if (profile) {
  const id = profile.dataset.contactId;
  wireTags(profile, id);

  const details = document.getElementById("details-form");
  const initial = Object.fromEntries(new FormData(details));
  details.addEventListener("submit", async (event) => {
    event.preventDefault();
    const now = Object.fromEntries(new FormData(details));
    const changes = {};
    for (const [key, value] of Object.entries(now)) {
      if (value !== initial[key]) changes[key] = value.trim() === "" ? null : value.trim();
    }
    if (!Object.keys(changes).length) {
      toast("Nothing changed.");
      return;
    }
    await busy(details.querySelector("button"), async () => {
      try {
        const contact = await api("PATCH", `/api/v1/contacts/${id}`, changes);
        Object.assign(initial, now);
        for (const key of ["first_name", "last_name"]) {
          const input = details.elements[key];
          input.value = contact[key] || "";
          initial[key] = input.value;
        }
        document.getElementById("contact-title").textContent = contact.name || document.getElementById("contact-title").textContent;
        toast("Details saved.");
      } catch (err) {
        toast(errorText(err), "error");
      }
    });
  });

  const subscription = document.getElementById("sub-toggle");
  subscription.addEventListener("click", () => busy(subscription, async () => {
    const next = subscription.dataset.subscribed !== "true";
    try {
      const contact = await api("PATCH", `/api/v1/contacts/${id}`, { subscribed: next });
      subscription.dataset.subscribed = String(contact.subscribed);
      subscription.textContent = contact.subscribed ? "Unsubscribe" : "Subscribe again";
      document.getElementById("sub-state").textContent = contact.subscribed
        ? "Subscribed: gets broadcasts and automated messages."
        : "Unsubscribed: gets no broadcasts or automated messages (replies from your team still reach them).";
      toast(contact.subscribed ? "Subscribed again." : "Unsubscribed.");
    } catch (err) {
      toast(errorText(err), "error");
    }
  }));

  const fieldForm = document.getElementById("field-form");
  fieldForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!fieldForm.reportValidity()) return;
    const name = fieldForm.elements.name.value.trim();
    const value = fieldForm.elements.value.value;
    await saveFields({ [name]: value }, `Saved the field ${name}.`, fieldForm.querySelector("button"));
  });
  profile.addEventListener("click", (event) => {
    const remove = event.target.closest(".field-remove");
    if (remove) saveFields({ [remove.dataset.field]: null }, `Removed the field ${remove.dataset.field}.`, remove);
  });

  async function saveFields(fields, message, button) {
    await busy(button, async () => {
      try {
        const contact = await api("PATCH", `/api/v1/contacts/${id}`, { fields });
        renderFields(contact.fields);
        fieldForm.reset();
        toast(message);
      } catch (err) {
        toast(errorText(err), "error");
      }
    });
  }

  function renderFields(fields) {
    const section = fieldForm.closest("section");
    section.querySelector("#fields-table")?.remove();
    section.querySelector("p.muted:not(.small)")?.remove();
    const names = Object.keys(fields).sort();
    const table = names.length
      ? el("table", { class: "data-table compact", id: "fields-table" },
        el("thead", {}, el("tr", {}, el("th", { scope: "col", text: "Field" }), el("th", { scope: "col", text: "Value" }),
          el("th", { scope: "col" }, el("span", { class: "visually-hidden", text: "Actions" })))),
        el("tbody", {}, names.map((name) => el("tr", {}, el("td", {}, el("code", { text: name })),
          el("td", { text: String(fields[name]) }),
          el("td", {}, el("button", { type: "button", class: "link-button field-remove", dataset: { field: name },
            "aria-label": `Remove field ${name}`, text: "Remove" }))))))
      : el("p", { class: "muted", text: "No custom fields yet." });
    fieldForm.before(table);
  }

  const objectButton = document.getElementById("object-button");
  objectButton.addEventListener("click", async () => {
    await busy(objectButton, async () => {
      try {
        await api("POST", `/api/v1/contacts/${id}/objection`);
        location.assign(`/contacts/${id}?objected=1`);
      } catch (err) {
        toast(errorText(err), "error");
      }
    });
  });

  const dialog = document.getElementById("erase-dialog");
  const confirmInput = document.getElementById("erase-confirm");
  document.getElementById("erase-open").addEventListener("click", () => {
    confirmInput.value = "";
    dialog.showModal();
    confirmInput.focus();
  });
  document.getElementById("erase-cancel").addEventListener("click", () => dialog.close());
  document.getElementById("erase-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    if (confirmInput.value.trim() !== "ERASE") {
      confirmInput.setCustomValidity("Type ERASE in capitals to confirm.");
      confirmInput.reportValidity();
      return;
    }
    confirmInput.setCustomValidity("");
    await busy(document.getElementById("erase-submit"), async () => {
      try {
        await api("DELETE", `/api/v1/contacts/${id}`);
        location.assign("/contacts?erased=1");
      } catch (err) {
        toast(errorText(err), "error");
      }
    });
  });
  confirmInput.addEventListener("input", () => confirmInput.setCustomValidity(""));
}
