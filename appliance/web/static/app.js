// Every signed-in page: the live connection and its status, the theme button.

import { startLive } from "./live.js";
import { toast } from "./ui.js";

document.documentElement.classList.add("js");
startLive();

// The theme button posts the same form without leaving the page (the cookie is set by the
// answer); without scripts the form still works.
const themeButton = document.getElementById("theme-toggle");
if (themeButton) {
  themeButton.form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const next = themeButton.dataset.themeNext;
    try {
      await fetch(`/theme/${next}`, { method: "POST", credentials: "same-origin", redirect: "manual" });
    } catch {
      toast("The theme could not be saved; it applies to this page only.", "error");
    }
    document.documentElement.dataset.theme = next;
    const other = next === "dark" ? "light" : "dark";
    themeButton.dataset.themeNext = other;
    themeButton.form.action = `/theme/${other}`;
    themeButton.setAttribute("aria-label", `Switch to ${other} theme`);
    themeButton.title = `Switch to ${other} theme`;
    themeButton.replaceChildren(iconFor(next === "dark" ? "sun" : "moon"));
  });
}

function iconFor(name) {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  for (const [k, v] of Object.entries({ class: "icon", viewBox: "0 0 24 24", width: 20, height: 20, fill: "none",
    stroke: "currentColor", "stroke-width": 1.8, "stroke-linecap": "round", "aria-hidden": "true" })) {
    svg.setAttribute(k, String(v));
  }
  const shapes = name === "sun"
    ? [["circle", { cx: 12, cy: 12, r: 4 }], ["path", { d: "M12 2v2M12 20v2M2 12h2M20 12h2M4.9 4.9l1.4 1.4M17.7 17.7l1.4 1.4M4.9 19.1l1.4-1.4M17.7 6.3l1.4-1.4" }]]
    : [["path", { d: "M20 14.5A8 8 0 0 1 9.5 4a8 8 0 1 0 10.5 10.5z" }]];
  for (const [tag, attrs] of shapes) {
    const shape = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attrs)) shape.setAttribute(k, String(v));
    svg.append(shape);
  }
  return svg;
}
