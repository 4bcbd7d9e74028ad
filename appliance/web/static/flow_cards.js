// Forms for the structured parts of a step that are not one value per field: a message's
// cards (the carousel: Messenger's and Instagram's generic template) and name → value maps
// (an HTTP request's headers, what it saves from the answer).
//
// Cards keep the limits of docs/spec/flow-format.md and meta-platform.md in the form: at most
// 10 cards and 3 buttons per card (the Add buttons go away at the limit), titles and subtitles
// up to 80 characters, button titles up to 20 (Messenger's template button); a document
// imported over a limit says so on the field it concerns. Every card part carries data-path
// (cards.0.title, cards.1.buttons.2, ...) so the API's invalid_flow errors land on it. A card
// button that goes to a step is a port on the canvas (cards.<c>.buttons.<b>) like any button.
// aat.flow/v1 card buttons go to a step or open a link: the format has no call button and no
// default action for a card, so the form offers neither.
//
// Each input has an accessible name that says which card and button it belongs to
// ("Card 2 button 1 title"), the visible label stays short ("Title").

import { el } from "./ui.js";

export const MAX_CARDS = 10;
export const MAX_CARD_BUTTONS = 3;
export const CARD_TEXT = 80;
export const CARD_BUTTON_TITLE = 20;
let uid = 0;

function errorSlot() { return el("p", { class: "field-error", role: "alert" }); }

/** One labelled input; onValue(value, final) is called as the person types. */
function input(label, name, value, path, onValue, { max, placeholder, check } = {}) {
  const id = `cf-${++uid}`;
  const box = el("input", { id, type: "text", maxlength: max || 2000, placeholder, autocomplete: "off", "aria-label": name });
  box.value = value ?? "";
  const error = errorSlot();
  const wrap = el("div", { class: "field field-text", dataset: { path } }, el("label", { for: id, text: label }), box, error);
  const judge = () => {
    const problem = check ? check(box.value) : "";
    error.textContent = problem;
    wrap.classList.toggle("invalid", Boolean(problem));
  };
  judge();
  box.addEventListener("input", () => { judge(); onValue(box.value, false); });
  box.addEventListener("change", () => onValue(box.value, true));
  return wrap;
}

function select(label, name, value, path, options, onValue) {
  const id = `cf-${++uid}`;
  let box;
  if (options.picker) box = stepPicker(options.doc, value, { none: options.none, exclude: options.exclude, id, name });
  else {
    box = el("select", { id, "aria-label": name }, options.map(([v, text]) => el("option", { value: v, text })));
    box.value = value;
  }
  box.addEventListener("change", () => onValue(box.value));
  return el("div", { class: "field field-select", dataset: { path } }, el("label", { for: id, text: label }), box, errorSlot());
}

function small(text, label, onClick, disabled = false) {
  const button = el("button", { type: "button", class: "link-button", text, "aria-label": label, disabled });
  button.addEventListener("click", onClick);
  return button;
}

/** A <select> of the flow's steps. It starts with only the chosen step (and the "none"
 * choice) and gets the full list in a task of its own right after the form is shown, or at once
 * when it is focused first: Chromium takes ~10 ms per 200-option select, and a step's form can
 * have several, so building them all inline made selecting a step in a 200-step flow slow.
 * none: the label of the empty choice, or null for none; exclude: a step id left out. */
export function stepPicker(doc, current, { none = null, exclude = null, id, name } = {}) {
  const box = el("select", { id, "aria-label": name });
  const option = (v, text) => el("option", { value: v, text });
  const head = none === null ? [] : [option("", none)];
  const missing = current && !(current in doc.steps);
  box.append(...head, current ? option(current, missing ? `${current} (missing)` : current) : null);
  box.value = current || "";
  let filled = false;
  const fill = () => {
    if (filled) return;
    filled = true;
    const chosen = box.value;
    box.replaceChildren(...head, ...Object.keys(doc.steps).filter((s) => s !== exclude).map((s) => option(s, s)),
      missing ? option(current, `${current} (missing)`) : null);
    box.value = chosen;
  };
  box.addEventListener("focus", fill);
  box.addEventListener("pointerdown", fill);
  setTimeout(fill, 0);
  return box;
}

function tooLong(value, limit) {
  return typeof value === "string" && value.length > limit ? `At most ${limit} characters (${value.length} now).` : "";
}

/** The card list of a message step. ctx as in flow_forms.js; base(doc) is the step. */
export function cardsField(step, base, ctx) {
  const cards = step.cards || [];
  const cardsOf = (doc) => base(doc).cards;
  const change = (fn) => ctx.restructure((doc) => {
    const step = base(doc);
    step.cards = step.cards || [];
    fn(step.cards);
    if (!step.cards.length) delete step.cards;
  });
  const box = el("fieldset", { class: "list-field cards-field", dataset: { path: "cards" } },
    el("legend", { text: "Cards" }),
    el("p", { class: "hint", text: `A carousel of up to ${MAX_CARDS} cards with up to ${MAX_CARD_BUTTONS} buttons each, on Messenger and Instagram. WhatsApp cannot show cards: publishing a flow with cards for WhatsApp is refused.` }));
  cards.forEach((card, c) => {
    const n = c + 1;
    const at = (doc) => cardsOf(doc)[c];
    const set = (key, value, final) => ctx.update((doc) => {
      const target = at(doc);
      if (value === "" && key !== "title") delete target[key]; else target[key] = value;
    }, final);
    const item = el("div", { class: "list-item card-item", role: "group", "aria-label": `Card ${n}`, dataset: { path: `cards.${c}` } },
      el("div", { class: "list-item-head" }, el("strong", { text: `Card ${n}` }),
        el("span", { class: "item-tools" },
          small("↑", `Move card ${n} up`, () => change((list) => list.splice(c - 1, 2, list[c], list[c - 1])), c === 0),
          small("↓", `Move card ${n} down`, () => change((list) => list.splice(c, 2, list[c + 1], list[c])), c === cards.length - 1),
          small("Remove", `Remove card ${n}`, () => change((list) => list.splice(c, 1))))),
      errorSlot(),
      input("Title", `Card ${n} title`, card.title, `cards.${c}.title`, (v, f) => set("title", v, f),
        { max: CARD_TEXT, check: (v) => (v ? tooLong(v, CARD_TEXT) : "A card needs a title.") }),
      input("Subtitle", `Card ${n} subtitle`, card.subtitle, `cards.${c}.subtitle`, (v, f) => set("subtitle", v, f),
        { max: CARD_TEXT, check: (v) => tooLong(v, CARD_TEXT) }),
      input("Image URL", `Card ${n} image URL`, card.image_url, `cards.${c}.image_url`, (v, f) => set("image_url", v, f),
        { placeholder: "https://…" }),
      cardButtons(card, c, at, ctx));
    box.append(item);
  });
  if (cards.length < MAX_CARDS) {
    box.append(el("button", { type: "button", class: "secondary small", text: "Add card",
      onclick: () => change((list) => list.push({ title: `Card ${list.length + 1}` })) }));
  } else {
    box.append(el("p", { class: "hint", text: `${MAX_CARDS} cards is the most a carousel holds.` }));
  }
  const error = errorSlot();
  if (cards.length > MAX_CARDS) error.textContent = `At most ${MAX_CARDS} cards: remove ${cards.length - MAX_CARDS}.`;
  box.append(error);
  if (error.textContent) box.classList.add("invalid");
  return box;
}

function cardButtons(card, c, at, ctx) {
  const buttons = card.buttons || [];
  const n = c + 1;
  const change = (fn) => ctx.restructure((doc) => {
    const target = at(doc);
    target.buttons = target.buttons || [];
    fn(target.buttons);
    if (!target.buttons.length) delete target.buttons;
  });
  const box = el("fieldset", { class: "list-field card-buttons", dataset: { path: `cards.${c}.buttons` } },
    el("legend", { text: `Card ${n} buttons` }));
  buttons.forEach((b, i) => {
    const m = i + 1;
    const who = `Card ${n} button ${m}`;
    const path = `cards.${c}.buttons.${i}`;
    const edit = (fn, final) => ctx.update((doc) => fn(at(doc).buttons[i]), final);
    const kind = b.url !== undefined ? "url" : "step";
    const row = el("div", { class: "list-item", role: "group", "aria-label": who, dataset: { path } },
      el("div", { class: "list-item-head" }, el("span", { text: `Button ${m}` }),
        small("Remove", `Remove button ${m} of card ${n}`, () => change((list) => list.splice(i, 1)))),
      errorSlot(),
      input("Title", `${who} title`, b.title, `${path}.title`, (v, f) => edit((o) => { o.title = v; }, f),
        { max: CARD_BUTTON_TITLE, check: (v) => (v ? tooLong(v, CARD_BUTTON_TITLE) : "A button needs a title.") }),
      select("Type", `${who} type`, kind, `${path}.type`, [["step", "Goes to a step"], ["url", "Opens a link"]],
        (v) => ctx.restructure((doc) => {
          const o = at(doc).buttons[i];
          if (v === "url") { delete o.next; o.url = "https://"; } else delete o.url;
        })));
    if (kind === "url") {
      row.append(input("Link URL", `${who} link URL`, b.url, `${path}.url`, (v, f) => edit((o) => { o.url = v; }, f),
        { placeholder: "https://…" }));
    } else {
      const options = { picker: true, doc: ctx.doc, none: "— not connected yet —", exclude: ctx.id };
      row.append(select("Goes to", `${who} goes to`, b.next || "", `${path}.next`, options,
        (v) => ctx.update((doc) => { const o = at(doc).buttons[i]; if (v) o.next = v; else delete o.next; }, true)));
    }
    box.append(row);
  });
  if (buttons.length < MAX_CARD_BUTTONS) {
    box.append(el("button", { type: "button", class: "secondary small", text: "Add button", "aria-label": `Add a button to card ${n}`,
      onclick: () => change((list) => list.push({ title: `Option ${list.length + 1}` })) }));
  } else {
    box.append(el("p", { class: "hint", text: `${MAX_CARD_BUTTONS} buttons is the most a card holds.` }));
  }
  const error = errorSlot();
  if (buttons.length > MAX_CARD_BUTTONS) error.textContent = `At most ${MAX_CARD_BUTTONS} buttons on a card: remove ${buttons.length - MAX_CARD_BUTTONS}.`;
  box.append(error);
  return box;
}

/** A name → value object (headers, saved fields) as rows of two inputs. Rows with an empty name
 * are left out of the document; the order of the rows is the order of the keys. */
export function pairsField({ label, path, item, keyLabel, valueLabel, keyPlaceholder, valuePlaceholder }, step, base, ctx) {
  const entries = Object.entries(step[path] || {});
  const box = el("fieldset", { class: "list-field pairs-field", dataset: { path } }, el("legend", { text: label }));
  const rows = el("div", { class: "pairs" });
  const collect = (final) => ctx.update((doc) => {
    const out = {};
    for (const row of rows.children) {
      const [k, v] = row.querySelectorAll("input");
      if (k.value.trim()) out[k.value.trim()] = v.value;
    }
    if (Object.keys(out).length) base(doc)[path] = out; else delete base(doc)[path];
  }, final);
  const addRow = (k, v) => {
    const n = rows.children.length + 1;
    const row = el("div", { class: "list-item pair", dataset: { path: k ? `${path}.${k}` : "" } });
    const kid = `cf-${++uid}`;
    const vid = `cf-${++uid}`;
    const keyBox = el("input", { id: kid, type: "text", value: k, placeholder: keyPlaceholder, autocomplete: "off", "aria-label": `${item} ${n} ${keyLabel.toLowerCase()}` });
    const valueBox = el("input", { id: vid, type: "text", value: v, placeholder: valuePlaceholder, autocomplete: "off", "aria-label": `${item} ${n} ${valueLabel.toLowerCase()}` });
    for (const b of [keyBox, valueBox]) {
      b.addEventListener("input", () => { row.dataset.path = keyBox.value.trim() ? `${path}.${keyBox.value.trim()}` : ""; collect(false); });
      b.addEventListener("change", () => collect(true));
    }
    const remove = small("Remove", `Remove ${item.toLowerCase()} ${n}`, () => { row.remove(); collect(true); });
    row.append(el("div", { class: "list-item-head" }, el("span", { text: `${item} ${n}` }), remove),
      el("label", { for: kid, text: keyLabel }), keyBox, el("label", { for: vid, text: valueLabel }), valueBox, errorSlot());
    rows.append(row);
    return keyBox;
  };
  for (const [k, v] of entries) addRow(k, String(v));
  const add = el("button", { type: "button", class: "secondary small", text: `Add ${item.toLowerCase()}` });
  add.addEventListener("click", () => addRow("", "").focus());
  box.append(rows, add, errorSlot());
  return box;
}
