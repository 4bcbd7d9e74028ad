// The flows list: importing a flow document (JSON) creates a draft and opens it in the builder.

import { api, errorText } from "./api.js";
import { el } from "./ui.js";

const input = document.getElementById("import-flow-file");
const result = document.getElementById("import-flow-result");
if (input) {
  input.addEventListener("change", async () => {
    const file = input.files[0];
    input.value = "";
    if (!file) return;
    let doc;
    try {
      doc = JSON.parse(await file.text());
    } catch {
      result.replaceChildren(el("p", { class: "error", role: "alert", text: `${file.name} is not JSON.` }));
      return;
    }
    try {
      const flow = await api("POST", "/api/v1/flows", doc);
      location.assign(`/flows/${flow.id}`);
    } catch (err) {
      result.replaceChildren(el("div", { class: "error", role: "alert" }, el("p", { text: `${file.name} was not imported: ${err.message}` }),
        el("ul", {}, (err.details || []).slice(0, 20).map((d) => el("li", {}, el("code", { text: d.path }), ` ${d.message}`)))));
      if (!err.details || !err.details.length) result.firstChild.append(el("p", { text: errorText(err) }));
    }
  });
}
