// The canvas: steps as HTML nodes and connections as SVG paths in one "world" that pans and
// zooms with a CSS transform. Testability contract: a node is [data-step-id], a connection is
// [data-edge="from:to"] (with data-port naming where it starts), and with stats shown a node
// carries data-entered. The canvas owns no document state: render(doc, view) draws it, and
// gestures come back as callbacks (select, move, connect), which the editor turns into edits.
// Dragging a node touches only that node and its own connections, once per animation frame,
// and an edit of one step redraws that step and its connections (render's hint), so 200 steps
// stay smooth.

import { el } from "./ui.js";
import { STEP_TYPES, ports, summary } from "./flow_model.js";

const SVG = "http://www.w3.org/2000/svg";
const ENTRY_Y = 20; // where connections enter a node, below its top edge
const MIN_ZOOM = 0.2;
const MAX_ZOOM = 2;

function svg(tag, attrs) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  return node;
}

function curve(x1, y1, x2, y2) {
  if (x2 < x1 + 30) { // a connection back (a loop, a retry): swing out and come round below
    const dx = Math.max(80, Math.abs(x2 - x1) / 4);
    const dip = Math.max(y1, y2) + 90;
    return `M${x1},${y1} C${x1 + dx},${y1} ${x1 + dx},${dip} ${(x1 + x2) / 2},${dip} S${x2 - dx},${y2} ${x2},${y2}`;
  }
  const dx = Math.max(40, Math.abs(x2 - x1) / 2);
  return `M${x1},${y1} C${x1 + dx},${y1} ${x2 - dx},${y2} ${x2},${y2}`;
}

export class Canvas {
  /** handlers: {select(id|null), edge({from, port}), move(id, x, y, done), connect(from, port, to)} */
  constructor(root, handlers) {
    this.root = root;
    this.world = root.querySelector("#world");
    this.nodesEl = root.querySelector("#nodes");
    this.edgesEl = root.querySelector("#edges");
    this.handlers = handlers;
    this.view = { x: 40, y: 40, z: 1 };
    this.nodes = new Map(); // id -> {el, x, y, w, ports: {port: dy}}
    this.edges = new Map(); // "from|port" -> {g, from, port, to, kind, selected, d}
    this.incident = new Map(); // step id -> Set of the edges that start or end there
    this.pendingMove = null; // {id, x, y}: a drag position waiting for the next frame
    this.frame = 0;
    this.doc = null;
    this.gesture = null;
    const defs = svg("defs", {});
    defs.append(this._marker());
    this.edgesEl.append(defs);
    this.edgeLayer = this.edgesEl.appendChild(svg("g", { class: "edge-layer" }));
    this._wire();
    this._applyView();
  }

  _marker() {
    const marker = svg("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7,
      orient: "auto-start-reverse" });
    marker.append(svg("path", { d: "M0,0 L10,5 L0,10 z", class: "arrow-head" }));
    return marker;
  }

  /** Draws the document. view: {selected, selectedEdge, errors: {step: [msg]}, stats}.
   *
   * With hint.changed (step ids), only those steps are looked at: the caller promises that
   * no other step's content, position or marks changed. Each listed step is added, removed or
   * (if its key changed) rebuilt and measured; its own connections are synced and the ones
   * into it re-routed. Cost: O(changed steps and their connections), not O(document).
   * Without a hint, every step is compared by key (undo, load, stats, errors). */
  render(doc, view, hint = {}) {
    this.doc = doc;
    if (hint.changed && this.nodes.size) {
      for (const id of new Set(hint.changed)) this._syncStep(id, doc, view);
      return;
    }
    // Keyed: a node whose step and marks did not change keeps its element and its measured
    // ports, so a changed step rebuilds and measures that one node.
    const previous = this.nodes;
    this.nodes = new Map();
    const fresh = [];
    for (const [id, step] of Object.entries(doc.steps)) {
      const at = doc.layout[id] || { x: 0, y: 0 };
      const key = this._key(id, step, doc, view);
      let info = previous.get(id);
      if (info && info.key === key) {
        previous.delete(id);
        if (info.x !== at.x || info.y !== at.y) info.el.style.transform = `translate(${at.x}px, ${at.y}px)`;
        Object.assign(info, { x: at.x, y: at.y });
      } else {
        const el = this._node(id, step, doc, view);
        el.style.transform = `translate(${at.x}px, ${at.y}px)`;
        info = { el, key, x: at.x, y: at.y, w: 0, ports: {} };
        fresh.push(info);
      }
      this.nodes.set(id, info);
    }
    for (const gone of previous.values()) gone.el.remove();
    this.nodesEl.append(...fresh.map((info) => info.el));
    for (const info of fresh) this._measure(info); // one layout pass, for the new nodes only
    this._drawEdges(doc, view);
  }

  _key(id, step, doc, view) {
    const stats = view.stats ? view.stats.steps[id] || "none yet" : "hidden";
    return JSON.stringify([step, view.selected === id, doc.start === id, (view.errors && view.errors[id]) || [], stats]);
  }

  _measure(info) {
    info.w = info.el.offsetWidth;
    info.ports = {};
    for (const row of info.el.querySelectorAll(".out-row")) info.ports[row.dataset.port] = row.offsetTop + row.offsetHeight / 2;
  }

  /** One step brought up to date (see render's hint): its node, its connections. */
  _syncStep(id, doc, view) {
    const step = doc.steps[id];
    let info = this.nodes.get(id);
    if (!step) {
      if (!info) return;
      info.el.remove();
      this.nodes.delete(id);
      for (const edge of [...(this.incident.get(id) || [])]) this._unlink(edge);
      this.incident.delete(id);
      return;
    }
    const at = doc.layout[id] || { x: 0, y: 0 };
    const key = this._key(id, step, doc, view);
    const created = !info;
    if (created || info.key !== key) {
      const el = this._node(id, step, doc, view);
      el.style.transform = `translate(${at.x}px, ${at.y}px)`;
      if (created) {
        info = { el, key, x: at.x, y: at.y, w: 0, ports: {} };
        this.nodes.set(id, info);
        this.nodesEl.append(el);
      } else {
        info.el.replaceWith(el);
        Object.assign(info, { el, key });
      }
      this._measure(info);
    }
    if (info.x !== at.x || info.y !== at.y) {
      info.el.style.transform = `translate(${at.x}px, ${at.y}px)`;
      Object.assign(info, { x: at.x, y: at.y });
    }
    this._syncOutgoing(id, step, view);
    if (created) { // a step drafted before with a reference to this id now gets its connection
      for (const [from, other] of Object.entries(doc.steps)) {
        if (from !== id && ports(other).some((p) => p.target === id)) this._syncOutgoing(from, other, view);
      }
    }
    for (const edge of this.incident.get(id) || []) if (edge.to === id) this._route(edge);
  }

  /** The connections that start at this step: kept (and re-routed), added or removed. */
  _syncOutgoing(from, step, view) {
    const want = new Map();
    for (const p of ports(step)) if (p.target && this.nodes.has(p.target)) want.set(`${from}|${p.port}`, p);
    for (const edge of [...(this.incident.get(from) || [])]) {
      if (edge.from !== from) continue;
      const k = `${from}|${edge.port}`;
      const p = want.get(k);
      if (p && p.target === edge.to && p.kind === edge.kind && edge.selected === this._isSelected(view, from, p.port)) {
        want.delete(k);
        this._route(edge);
      } else {
        this._unlink(edge);
      }
    }
    for (const p of want.values()) this._link(this._edge(from, p, view));
  }

  /** Redraws one step (typing in its form): its node, its own connections and the ones into
   * it; everything else stays. The same result as render(), at the cost of one node. */
  renderStep(id, doc, view) {
    this.render(doc, view, { changed: [id] });
  }

  _isSelected(view, from, port) {
    return Boolean(view.selectedEdge && view.selectedEdge.from === from && view.selectedEdge.port === port);
  }

  _edge(from, p, view) {
    const selected = this._isSelected(view, from, p.port);
    const g = svg("g", { class: `edge kind-${p.kind}${selected ? " selected" : ""}`, "data-edge": `${from}:${p.target}`,
      "data-port": p.port, "data-from": from });
    g.append(svg("path", { class: "edge-hit", d: "" }), svg("path", { class: "edge-line", d: "", "marker-end": "url(#arrow)" }));
    this.edgeLayer.append(g);
    const edge = { g, from, port: p.port, to: p.target, kind: p.kind, selected, d: "" };
    this._route(edge);
    return edge;
  }

  _link(edge) {
    this.edges.set(`${edge.from}|${edge.port}`, edge);
    for (const id of [edge.from, edge.to]) {
      let set = this.incident.get(id);
      if (!set) this.incident.set(id, (set = new Set()));
      set.add(edge);
    }
  }

  _unlink(edge) {
    edge.g.remove();
    const k = `${edge.from}|${edge.port}`;
    if (this.edges.get(k) === edge) this.edges.delete(k);
    for (const id of [edge.from, edge.to]) { const set = this.incident.get(id); if (set) set.delete(edge); }
  }

  _node(id, step, doc, view) {
    const type = STEP_TYPES[step.type] ? STEP_TYPES[step.type].label : step.type;
    const errors = (view.errors && view.errors[id]) || [];
    const stats = view.stats ? view.stats.steps[id] || { entered: 0, completed: 0, dropped: 0, clicks: {} } : null;
    const classes = ["fnode", `type-${step.type}`];
    if (view.selected === id) classes.push("selected");
    if (errors.length) classes.push("has-error");
    if (doc.start === id) classes.push("is-start");
    const node = el("div", { class: classes.join(" "), tabindex: "0", role: "group",
      "aria-label": `${type} step ${id}${errors.length ? ", has errors" : ""}`, dataset: { stepId: id } },
    el("div", { class: "fnode-head" }, el("span", { class: "fnode-type", text: type }),
      el("span", { class: "fnode-id", text: id }), doc.start === id ? el("span", { class: "chip chip-ok", text: "Start" }) : null),
    el("div", { class: "fnode-body" }, summary(step).filter(Boolean).map((line) =>
      el("p", { class: "fnode-line", text: line.length > 160 ? `${line.slice(0, 157)}…` : line }))));
    if (stats) {
      node.dataset.entered = String(stats.entered);
      node.dataset.completed = String(stats.completed);
      node.append(el("div", { class: "fnode-stats" },
        el("span", { title: "Entered", text: `${stats.entered} entered` }),
        el("span", { title: "Completed", text: `${stats.completed} completed` }),
        el("span", { title: "Dropped off", class: stats.dropped ? "dropped" : "", text: `${stats.dropped} dropped` })));
    }
    const rows = ports(step).map((p) => {
      const clicks = stats && p.kind === "button" ? stats.clicks[p.label.split(": ").pop()] || 0 : null;
      return el("li", { class: `out-row kind-${p.kind}${p.target ? " linked" : ""}`, dataset: { port: p.port } },
        el("span", { class: "out-label", text: p.kind === "branch" ? `Weight ${p.label}` : p.label }),
        clicks !== null ? el("span", { class: "clicks", text: `${clicks} click${clicks === 1 ? "" : "s"}${stats.entered ? ` · ${Math.round((100 * clicks) / stats.entered)}%` : ""}` }) : null,
        el("span", { class: "port", title: "Drag to a step to connect", dataset: { port: p.port } }));
    });
    const link = (text) => el("li", { class: "out-row kind-url" }, el("span", { class: "out-label", text: `${text} ↗` }));
    for (const b of step.buttons || []) if (b.url) rows.push(link(b.title));
    for (const c of step.cards || []) for (const b of c.buttons || []) if (b.url) rows.push(link(`${c.title}: ${b.title}`));
    if (rows.length) node.append(el("ul", { class: "fnode-ports" }, rows));
    if (errors.length) node.append(el("ul", { class: "fnode-errors", role: "note" }, errors.map((m) => el("li", { text: m }))));
    return node;
  }

  _drawEdges(doc, view) {
    // Keyed by (step, port): an unchanged connection keeps its SVG and is only re-routed (which
    // touches the SVG only when its path moved).
    const old = this.edges;
    this.edges = new Map();
    this.incident = new Map();
    for (const [from, step] of Object.entries(doc.steps)) {
      for (const p of ports(step)) {
        if (!p.target || !this.nodes.has(p.target)) continue;
        const key = `${from}|${p.port}`;
        let edge = old.get(key);
        if (edge && edge.to === p.target && edge.kind === p.kind && edge.selected === this._isSelected(view, from, p.port)) {
          old.delete(key);
          this._route(edge);
        } else {
          edge = this._edge(from, p, view);
        }
        this._link(edge);
      }
    }
    for (const gone of old.values()) gone.g.remove();
  }

  _route(edge) {
    const a = this.nodes.get(edge.from);
    const b = this.nodes.get(edge.to);
    const d = curve(a.x + a.w, a.y + (a.ports[edge.port] || ENTRY_Y), b.x, b.y + ENTRY_Y);
    if (d === edge.d) return; // setting the same path again would still make the browser redo it
    edge.d = d;
    for (const path of edge.g.children) path.setAttribute("d", d);
  }

  /** Selection without redrawing: only the two nodes' classes change. */
  markSelected(id) {
    for (const info of this.nodes.values()) {
      if (info.el.classList.contains("selected")) { info.el.classList.remove("selected"); info.key = null; }
    }
    const info = id && this.nodes.get(id);
    if (info) { info.el.classList.add("selected"); info.key = null; } // keys carry the selection: redraw these two next time
  }

  moveNode(id, x, y) {
    const info = this.nodes.get(id);
    if (!info) return;
    info.x = x;
    info.y = y;
    info.el.style.transform = `translate(${x}px, ${y}px)`;
    for (const edge of this.incident.get(id) || []) this._route(edge);
  }

  /** Applies the drag position waiting for the next animation frame now (pointer up; the
   * bench calls it to time one frame's work). */
  flush() {
    if (this.frame) cancelAnimationFrame(this.frame);
    this.frame = 0;
    const move = this.pendingMove;
    if (!move) return;
    this.pendingMove = null;
    this.moveNode(move.id, move.x, move.y);
    this.handlers.move(move.id, move.x, move.y, false);
  }

  // --- view ------------------------------------------------------------------------------

  _applyView() {
    this.world.style.transform = `translate(${this.view.x}px, ${this.view.y}px) scale(${this.view.z})`;
    const label = document.getElementById("zoom-level");
    if (label) label.textContent = `${Math.round(this.view.z * 100)}%`;
  }

  zoomBy(factor, cx, cy) {
    const rect = this.root.getBoundingClientRect();
    const px = cx === undefined ? rect.width / 2 : cx - rect.left;
    const py = cy === undefined ? rect.height / 2 : cy - rect.top;
    const z = Math.min(MAX_ZOOM, Math.max(MIN_ZOOM, this.view.z * factor));
    this.view.x = px - ((px - this.view.x) * z) / this.view.z;
    this.view.y = py - ((py - this.view.y) * z) / this.view.z;
    this.view.z = z;
    this._applyView();
  }

  fit() {
    if (!this.nodes.size) return;
    let [x1, y1, x2, y2] = [Infinity, Infinity, -Infinity, -Infinity];
    for (const n of this.nodes.values()) {
      x1 = Math.min(x1, n.x); y1 = Math.min(y1, n.y);
      x2 = Math.max(x2, n.x + n.w); y2 = Math.max(y2, n.y + n.el.offsetHeight);
    }
    const rect = this.root.getBoundingClientRect();
    const z = Math.min(1, Math.max(MIN_ZOOM, Math.min((rect.width - 60) / (x2 - x1), (rect.height - 60) / (y2 - y1))));
    this.view = { z, x: 30 - x1 * z, y: 30 - y1 * z };
    this._applyView();
  }

  /** The world point at the middle of the visible canvas (where new steps go). */
  center() {
    const rect = this.root.getBoundingClientRect();
    return this.toWorld(rect.left + rect.width / 2 - 110, rect.top + rect.height / 3);
  }

  toWorld(clientX, clientY) {
    const rect = this.root.getBoundingClientRect();
    return { x: (clientX - rect.left - this.view.x) / this.view.z, y: (clientY - rect.top - this.view.y) / this.view.z };
  }

  reveal(id) {
    const info = this.nodes.get(id);
    if (!info) return;
    const rect = this.root.getBoundingClientRect();
    const sx = info.x * this.view.z + this.view.x;
    const sy = info.y * this.view.z + this.view.y;
    if (sx < 0 || sy < 0 || sx + info.w * this.view.z > rect.width || sy + 60 > rect.height) {
      this.view.x = rect.width / 2 - (info.x + info.w / 2) * this.view.z;
      this.view.y = rect.height / 3 - info.y * this.view.z;
      this._applyView();
    }
  }

  // --- gestures --------------------------------------------------------------------------

  _wire() {
    const root = this.root;
    root.addEventListener("pointerdown", (e) => this._down(e));
    root.addEventListener("pointermove", (e) => this._move(e));
    root.addEventListener("pointerup", (e) => this._up(e));
    root.addEventListener("pointercancel", () => this._cancel());
    root.addEventListener("wheel", (e) => {
      e.preventDefault();
      if (e.ctrlKey || e.metaKey) this.zoomBy(Math.exp(-e.deltaY / 300), e.clientX, e.clientY);
      else { this.view.x -= e.deltaX; this.view.y -= e.deltaY; this._applyView(); }
    }, { passive: false });
  }

  _down(e) {
    if (e.button !== 0) return;
    const port = e.target.closest(".port");
    const node = e.target.closest(".fnode");
    const edge = e.target.closest(".edge");
    const start = { cx: e.clientX, cy: e.clientY, moved: false };
    if (port && node) {
      const from = node.dataset.stepId;
      const info = this.nodes.get(from);
      const line = svg("path", { class: "edge-draft", d: "" });
      this.edgesEl.append(line);
      this.gesture = { ...start, kind: "connect", from, port: port.dataset.port,
        x1: info.x + info.w, y1: info.y + (info.ports[port.dataset.port] || ENTRY_Y), line };
    } else if (node) {
      const id = node.dataset.stepId;
      const info = this.nodes.get(id);
      this.gesture = { ...start, kind: "drag", id, ox: info.x, oy: info.y };
      this.handlers.select(id);
    } else if (edge) {
      this.gesture = null;
      this.handlers.edge({ from: edge.dataset.from, port: edge.dataset.port });
      return;
    } else {
      this.gesture = { ...start, kind: "pan", vx: this.view.x, vy: this.view.y };
    }
    root_capture(this.root, e);
    if (!node) e.preventDefault();
  }

  _move(e) {
    const g = this.gesture;
    if (!g) return;
    const dx = e.clientX - g.cx;
    const dy = e.clientY - g.cy;
    if (!g.moved && Math.abs(dx) + Math.abs(dy) < 4) return;
    g.moved = true;
    if (g.kind === "pan") {
      this.view.x = g.vx + dx; this.view.y = g.vy + dy; this._applyView();
    } else if (g.kind === "drag") {
      // Pointer events can come faster than frames: keep the latest position, draw it once per
      // frame (the node and its own connections only).
      this.root.classList.add("dragging");
      this.pendingMove = { id: g.id, x: Math.round(g.ox + dx / this.view.z), y: Math.round(g.oy + dy / this.view.z) };
      if (!this.frame) this.frame = requestAnimationFrame(() => { this.frame = 0; this.flush(); });
    } else if (g.kind === "connect") {
      const p = this.toWorld(e.clientX, e.clientY);
      g.line.setAttribute("d", curve(g.x1, g.y1, p.x, p.y));
      const over = document.elementFromPoint(e.clientX, e.clientY);
      const target = over && over.closest(".fnode");
      for (const n of this.nodesEl.querySelectorAll(".drop-target")) n.classList.remove("drop-target");
      if (target) target.classList.add("drop-target");
    }
  }

  _up(e) {
    const g = this.gesture;
    this.gesture = null;
    this.root.classList.remove("dragging");
    if (!g) return;
    if (g.kind === "pan" && !g.moved) this.handlers.select(null);
    if (g.kind === "drag" && g.moved) {
      this.flush();
      const info = this.nodes.get(g.id);
      this.handlers.move(g.id, info.x, info.y, true);
    }
    if (g.kind === "connect") {
      g.line.remove();
      for (const n of this.nodesEl.querySelectorAll(".drop-target")) n.classList.remove("drop-target");
      const over = document.elementFromPoint(e.clientX, e.clientY);
      const target = over && over.closest(".fnode");
      if (target && g.moved) this.handlers.connect(g.from, g.port, target.dataset.stepId);
    }
  }

  _cancel() {
    if (this.gesture && this.gesture.line) this.gesture.line.remove();
    this.flush();
    this.gesture = null;
  }
}

function root_capture(root, e) {
  try { root.setPointerCapture(e.pointerId); } catch { /* the pointer is already gone */ }
}
