// The view runtime: renders a ViewDefinition (shared/schemas.py) into a container and runs its
// event handlers and bindings against the gateway, with the semantics of docs/web.md.
//
//   const view = renderView(container, definition, {gatewayUrl, appId, apiKey, viewId});
//   view.value("name_input"); view.setValue("name_input", "Ada"); view.destroy();
//
// A pure module: no globals, nothing runs on import; destroy() stops every timer and poll and
// removes what it rendered. DOM hooks: each component's root has data-component="<id>" and
// data-state="idle|loading|error"; its error text is in [data-role="error"]. The root of each
// component also dispatches (bubbling) "worklets:change" {component, value} when its value
// changes and "worklets:run" {component, source, worklet, seq, outcome, run_id, error} when a
// run ends, outcome "applied", "error" or "dropped" (a response older than a newer request).

import { ApiError, gatewayClient } from "./api.js";

export const POLL_INTERVAL_MS = 500;
export const DEFAULT_DEBOUNCE_MS = 250;

const FAILED = new Set(["FAILED", "TIMED_OUT", "CANCELLED"]);
const CONTROLS = new Set(["text_input", "number_input", "select", "checkbox", "button"]);
// Placeholders as the registry checks them (services/registry/validate_view.py): no spaces.
const EXACT = /^\{\{([A-Za-z_][A-Za-z0-9_]*)\.value\}\}$/;
const PLACEHOLDERS = /\{\{([A-Za-z_][A-Za-z0-9_]*)\.value\}\}/g;
const MAX_POLL_OUTAGES = 20; // consecutive 503s or network failures while polling a run

let renders = 0; // distinguishes the DOM ids of several views on one page (the console preview)

// ------------------------------------------------------------------------- pure helpers

/** The text a value shows as: strings as they are, null as nothing, other JSON as JSON. */
export function textOf(value) {
  if (value === null || value === undefined) return "";
  if (typeof value === "string") return value;
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  return JSON.stringify(value);
}

/** The component ids a JSON template reads (`{{id.value}}`, anywhere in it). */
export function templateRefs(template, refs = new Set()) {
  if (typeof template === "string") {
    for (const match of template.matchAll(PLACEHOLDERS)) refs.add(match[1]);
  } else if (Array.isArray(template)) {
    for (const item of template) templateRefs(item, refs);
  } else if (template && typeof template === "object") {
    for (const item of Object.values(template)) templateRefs(item, refs);
  }
  return refs;
}

/**
 * A template filled with component values: a string that is exactly "{{id.value}}" becomes the
 * value with its type; placeholders inside a longer string are replaced by their text;
 * everything else is copied. An unknown component reads as null.
 */
export function fillTemplate(template, valueOf) {
  if (typeof template === "string") {
    const exact = EXACT.exec(template);
    if (exact) return clone(valueOf(exact[1]) ?? null);
    return template.replace(PLACEHOLDERS, (_, id) => textOf(valueOf(id)));
  }
  if (Array.isArray(template)) return template.map((item) => fillTemplate(item, valueOf));
  if (template && typeof template === "object") {
    return Object.fromEntries(Object.entries(template).map(([k, v]) => [k, fillTemplate(v, valueOf)]));
  }
  return template === undefined ? null : template;
}

/** The part of `value` at `path` ("" the whole, "a.b.0.c" walks objects and lists). */
export function pathGet(value, path) {
  if (path === "" || path === undefined || path === null) return { found: true, value };
  let current = value;
  for (const step of String(path).split(".")) {
    if (Array.isArray(current) && /^\d+$/.test(step) && Number(step) < current.length) {
      current = current[Number(step)];
    } else if (current && typeof current === "object" && !Array.isArray(current) && Object.hasOwn(current, step)) {
      current = current[step];
    } else {
      return { found: false, value: undefined };
    }
  }
  return { found: true, value: current };
}

/** Rows and columns of a table value: a list of objects (or anything, shown as best it can). */
export function tableModel(value, columns) {
  const rows = Array.isArray(value) ? value : value === null || value === undefined ? [] : [value];
  const isRecord = (row) => row !== null && typeof row === "object" && !Array.isArray(row);
  let cols = Array.isArray(columns) ? columns.map(String) : null;
  if (!cols) {
    const seen = new Set();
    for (const row of rows) {
      if (isRecord(row)) Object.keys(row).forEach((k) => seen.add(k));
      else seen.add("value");
    }
    cols = [...seen];
  }
  const cells = rows.map((row) => cols.map((col) => (isRecord(row) ? row[col] : col === "value" ? row : undefined)));
  return { columns: cols, rows: cells };
}

/** Bindings that depend on each other in a cycle (refused at save time; a preview may have them). */
export function bindingCycles(components) {
  const bound = new Map();
  for (const c of components) if (c && c.binding) bound.set(c.id, templateRefs(c.binding.input));
  const inCycle = new Set();
  const visit = (id, stack) => {
    for (const ref of bound.get(id) || []) {
      if (ref === id) continue; // a binding using its own component: ignored, not a cycle
      const at = stack.indexOf(ref);
      if (at >= 0) stack.slice(at).forEach((c) => inCycle.add(c));
      else if (bound.has(ref) && !inCycle.has(ref)) visit(ref, [...stack, ref]);
    }
  };
  for (const id of bound.keys()) visit(id, [id]);
  return inCycle;
}

function clone(value) {
  return value === undefined ? undefined : JSON.parse(JSON.stringify(value));
}

function same(a, b) {
  return JSON.stringify(a ?? null) === JSON.stringify(b ?? null);
}

function runErrorText(error, fallback) {
  if (!error || typeof error !== "object") return fallback;
  const message = error.message || fallback;
  const text = error.type && !message.startsWith(`${error.type}:`) ? `${error.type}: ${message}` : message;
  return error.block ? `${text} (block ${error.block})` : text;
}

/** el("p", {class: "note", text: "..."}, child...): a DOM element. */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") node.className = value;
    else if (name === "text") node.textContent = value;
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children) if (child) node.append(child);
  return node;
}

class RunFailure extends Error {
  constructor(message, runId = null) {
    super(message);
    this.runId = runId;
  }
}

// ------------------------------------------------------------------------- components

function normaliseOptions(options) {
  return (Array.isArray(options) ? options : []).map((option) =>
    option && typeof option === "object" && !Array.isArray(option) && "value" in option
      ? { label: textOf(option.label ?? option.value), value: option.value }
      : { label: textOf(option), value: option },
  );
}

/**
 * One rendered component: its root, the control or display, and how a value is shown.
 * `emit(event)` is called with "input" (the user changed the value), "change" or "submit".
 */
function buildComponent(def, domId, emit) {
  const errorId = `${domId}-error`;
  const root = el("div", {
    class: `wv-component wv-type-${def.type}`,
    "data-component": def.id,
    "data-state": "idle",
    "data-type": def.type,
  });
  const error = el("p", { class: "wv-error", "data-role": "error", id: errorId, role: "alert", hidden: true });
  const label = def.label ? String(def.label) : "";
  const part = { root, error, control: null, show: () => {}, read: null };

  const fieldLabel = () => el("label", { class: "wv-label", for: domId, text: label || def.id });
  const caption = () => (label ? el("div", { class: "wv-caption", id: `${domId}-label`, text: label }) : null);
  const describe = (control) => {
    control.setAttribute("aria-describedby", errorId);
    part.control = control;
  };

  switch (def.type) {
    case "text_input": {
      const input = el("input", { id: domId, type: "text", class: "wv-input", placeholder: def.placeholder || null, autocomplete: "off" });
      if (def.on && def.on.submit) input.setAttribute("enterkeyhint", "send");
      describe(input);
      input.addEventListener("input", () => emit("input", input.value));
      input.addEventListener("change", () => emit("change"));
      input.addEventListener("keydown", (event) => {
        if (event.key === "Enter" && !event.isComposing) {
          event.preventDefault();
          emit("submit");
        }
      });
      part.show = (value) => {
        const text = textOf(value);
        if (input.value !== text) input.value = text;
      };
      root.append(fieldLabel(), input);
      break;
    }
    case "number_input": {
      const input = el("input", { id: domId, type: "number", step: "any", inputmode: "decimal", class: "wv-input", placeholder: def.placeholder || null });
      describe(input);
      const read = () => (input.value === "" ? null : Number.isNaN(input.valueAsNumber) ? undefined : input.valueAsNumber);
      input.addEventListener("input", () => {
        const value = read();
        if (value !== undefined) emit("input", value);
      });
      input.addEventListener("change", () => emit("change"));
      part.show = (value) => {
        if (!same(read(), value)) input.value = value === null || value === undefined ? "" : textOf(value);
      };
      root.append(fieldLabel(), input);
      break;
    }
    case "select": {
      const select = el("select", { id: domId, class: "wv-input" });
      describe(select);
      let options = normaliseOptions(def.options);
      const fill = (value) => {
        select.replaceChildren();
        if (def.placeholder) select.append(el("option", { value: "", disabled: true, text: def.placeholder }));
        options.forEach((option, i) => select.append(el("option", { value: String(i), text: option.label })));
        part.show(value);
      };
      select.addEventListener("change", () => {
        const option = options[Number(select.value)];
        if (option) emit("input", clone(option.value));
        emit("change");
      });
      part.show = (value) => {
        let index = options.findIndex((option) => same(option.value, value));
        if (index < 0 && value !== null && value !== undefined) {
          options = [...options, { label: textOf(value), value }]; // assigned a value not offered
          fill(value);
          return;
        }
        select.value = index >= 0 ? String(index) : def.placeholder ? "" : options.length ? "0" : "";
      };
      part.initial = (value) => {
        // What the user sees is the value: the first option unless a placeholder is shown.
        const offered = options.some((option) => same(option.value, value));
        if (offered || (value !== null && value !== undefined) || def.placeholder || !options.length) return value;
        return clone(options[0].value);
      };
      fill(def.value);
      root.append(fieldLabel(), select);
      break;
    }
    case "checkbox": {
      const input = el("input", { id: domId, type: "checkbox", class: "wv-checkbox" });
      describe(input);
      input.addEventListener("change", () => {
        emit("input", input.checked);
        emit("change");
      });
      part.show = (value) => {
        input.checked = Boolean(value);
      };
      part.initial = (value) => Boolean(value);
      root.append(el("label", { class: "wv-check", for: domId }, input, el("span", { text: label || def.id })));
      break;
    }
    case "button": {
      const button = el("button", { id: domId, type: "button", class: "wv-button", text: label || def.id });
      describe(button);
      button.addEventListener("click", () => emit("click"));
      root.append(button);
      break;
    }
    case "text": {
      const body = el("div", { class: "wv-text-value", "aria-live": "polite" });
      if (label) body.setAttribute("aria-labelledby", `${domId}-label`);
      part.show = (value) => {
        body.textContent = textOf(value);
      };
      root.append(caption(), body);
      break;
    }
    case "table": {
      const wrap = el("div", { class: "wv-table-wrap" });
      part.show = (value) => {
        const model = tableModel(value, def.columns);
        const table = el("table", { class: "wv-table", "aria-label": label ? null : def.id });
        if (label) table.append(el("caption", { text: label }));
        // a column of numbers (and blanks) is aligned right, its heading too
        const numeric = model.columns.map(
          (_, i) =>
            model.rows.some((row) => typeof row[i] === "number") &&
            model.rows.every((row) => typeof row[i] === "number" || row[i] === null || row[i] === undefined),
        );
        const head = el("tr");
        model.columns.forEach((col, i) => head.append(el("th", { scope: "col", class: numeric[i] ? "wv-num" : null, text: col })));
        const body = el("tbody");
        for (const row of model.rows) {
          const tr = el("tr");
          row.forEach((cell, i) => tr.append(el("td", { class: numeric[i] ? "wv-num" : null, text: textOf(cell) })));
          body.append(tr);
        }
        if (!model.rows.length) {
          body.append(el("tr", { class: "wv-empty" }, el("td", { colspan: Math.max(1, model.columns.length), text: "No rows" })));
        }
        table.append(el("thead", {}, head), body);
        wrap.replaceChildren(table);
      };
      root.append(wrap);
      break;
    }
    case "json": {
      const pre = el("pre", { class: "wv-json", tabindex: 0, role: "region", "aria-label": label || def.id });
      part.show = (value) => {
        pre.textContent = JSON.stringify(value ?? null, null, 2);
      };
      root.append(caption(), pre);
      break;
    }
    case "image": {
      const img = el("img", { class: "wv-image", alt: label || def.id, hidden: true });
      const empty = el("div", { class: "wv-image-empty", text: "No image" });
      part.show = (value) => {
        const src = typeof value === "string" ? value.trim() : "";
        img.hidden = !src;
        empty.hidden = Boolean(src);
        if (src && img.getAttribute("src") !== src) img.setAttribute("src", src);
        if (!src) img.removeAttribute("src");
      };
      root.append(caption(), img, empty);
      break;
    }
    default:
      root.append(el("div", { class: "wv-caption", text: def.id || "(no id)" }));
      part.unknown = true;
  }
  root.append(error);
  return part;
}

// ------------------------------------------------------------------------- the runtime

class ViewRuntime {
  constructor(container, definition, options) {
    this.container = container;
    this.options = options;
    this.client = gatewayClient(options);
    this.controller = new AbortController();
    this.timers = new Set();
    this.components = new Map();
    this.bindings = new Map(); // bound component id -> binding state
    this.handlerSeq = new Map(); // "id:event" -> the newest invocation's sequence number
    this.destroyed = false;
    this.prefix = `wv${++renders}`;
    this.root = el("div", { class: "wv-view" });
    this.build(definition);
    container.append(this.root);
  }

  // ----------------------------------------------------------------- building

  build(definition) {
    const list = definition && Array.isArray(definition.components) ? definition.components : null;
    if (!list) {
      this.root.append(el("p", { class: "wv-error", "data-role": "error", text: "This view has no list of components." }));
      return;
    }
    let row = null;
    for (const [index, def] of list.entries()) {
      const ok = def && typeof def === "object" && typeof def.id === "string" && def.id;
      const id = ok ? def.id : `component_${index}`;
      const part = buildComponent(ok ? def : { id, type: "?" }, `${this.prefix}-${index}`, (event, value) =>
        this.onEvent(id, event, value),
      );
      const comp = { id, def: ok ? def : {}, part, value: null, pending: new Set(), error: null };
      if (this.components.has(id)) this.fail(comp, `Another component already has the id ${id}`);
      else if (!ok) this.fail(comp, "A component needs an id");
      else if (part.unknown) this.fail(comp, `Unknown component type ${JSON.stringify(def.type)}`);
      if (!this.components.has(id)) this.components.set(id, comp);
      const initial = ok ? clone(def.value ?? null) : null;
      comp.value = part.initial ? part.initial(initial) : initial;
      part.show(comp.value);
      if (CONTROLS.has(def && def.type)) {
        if (!row) this.root.append((row = el("div", { class: "wv-controls" })));
        row.append(part.root);
      } else {
        row = null;
        this.root.append(part.root);
      }
    }
    const cycles = bindingCycles(list.filter((def) => def && this.components.get(def.id)?.def === def));
    for (const comp of this.components.values()) {
      const binding = comp.def.binding;
      if (!binding) continue;
      if (cycles.has(comp.id)) {
        this.fail(comp, "This binding depends on itself through other bindings");
        continue;
      }
      const refs = templateRefs(binding.input);
      refs.delete(comp.id);
      this.bindings.set(comp.id, { comp, binding, refs, seq: 0, timer: null, token: null });
    }
  }

  start() {
    for (const state of this.bindings.values()) this.schedule(state, 0);
  }

  // ----------------------------------------------------------------- values and states

  valueOf(id) {
    const comp = this.components.get(id);
    return comp ? comp.value : null;
  }

  setValue(comp, value, { fromUser = false } = {}) {
    if (same(comp.value, value)) return;
    comp.value = clone(value ?? null);
    if (!fromUser) comp.part.show(comp.value);
    this.dispatch(comp, "worklets:change", { component: comp.id, value: clone(comp.value) });
    for (const state of this.bindings.values()) {
      if (state.refs.has(comp.id)) this.schedule(state, this.debounce(state.binding));
    }
  }

  debounce(binding) {
    const ms = Number(binding.debounce_ms);
    return Number.isFinite(ms) && ms >= 0 ? ms : DEFAULT_DEBOUNCE_MS;
  }

  refresh(comp) {
    const loading = comp.pending.size > 0;
    const state = loading ? "loading" : comp.error ? "error" : "idle";
    const { root, error, control } = comp.part;
    root.dataset.state = state;
    root.setAttribute("aria-busy", String(loading));
    error.textContent = comp.error || "";
    error.hidden = !comp.error;
    if (control) {
      if (comp.error) control.setAttribute("aria-invalid", "true");
      else control.removeAttribute("aria-invalid");
      if (comp.def.type === "button") control.disabled = loading;
    }
  }

  fail(comp, message) {
    comp.error = message;
    this.refresh(comp);
  }

  busy(comps, token, on) {
    for (const comp of comps) {
      if (on) comp.pending.add(token);
      else comp.pending.delete(token);
      this.refresh(comp);
    }
  }

  dispatch(comp, type, detail) {
    comp.part.root.dispatchEvent(new CustomEvent(type, { bubbles: true, detail }));
  }

  // ----------------------------------------------------------------- event handlers

  onEvent(id, event, value) {
    if (this.destroyed) return;
    const comp = this.components.get(id);
    if (!comp) return;
    if (event === "input") {
      this.setValue(comp, value, { fromUser: true });
      return;
    }
    const handler = comp.def.on && comp.def.on[event];
    if (handler) this.handle(comp, event, handler);
  }

  async handle(comp, event, handler) {
    const key = `${comp.id}:${event}`;
    const seq = (this.handlerSeq.get(key) || 0) + 1;
    this.handlerSeq.set(key, seq);
    const assign = handler.assign && typeof handler.assign === "object" ? handler.assign : {};
    const targets = Object.keys(assign).map((id) => this.components.get(id)).filter(Boolean);
    const token = {};
    comp.error = null;
    this.busy(new Set([comp, ...targets]), token, true);
    const input = fillTemplate(handler.input ?? null, (id) => this.valueOf(id));
    let outcome = "applied";
    let runId = null;
    let message = null;
    try {
      const result = await this.run(handler, input, () => seq !== this.handlerSeq.get(key));
      runId = result.runId;
      if (this.destroyed) return;
      if (seq !== this.handlerSeq.get(key)) {
        outcome = "dropped";
        return;
      }
      const values = new Map();
      for (const [target, path] of Object.entries(assign)) {
        const part = pathGet(result.output, path);
        if (!part.found) throw new RunFailure(`The worklet's output has nothing at "${path}" (for ${target})`, runId);
        values.set(target, part.value);
      }
      for (const target of targets) {
        this.setValue(target, values.get(target.id));
        target.error = null;
      }
    } catch (err) {
      if (this.destroyed || (err && err.name === "AbortError")) return;
      runId = err.runId ?? runId;
      if (seq !== this.handlerSeq.get(key)) {
        outcome = "dropped";
        return;
      }
      outcome = "error";
      message = err.message || String(err);
      comp.error = message;
    } finally {
      if (!this.destroyed) {
        this.busy(new Set([comp, ...targets]), token, false);
        const worklet = handler.worklet_id || handler.worklet;
        this.dispatch(comp, "worklets:run", { component: comp.id, source: event, worklet, seq, outcome, run_id: runId, error: message });
      }
    }
  }

  // ----------------------------------------------------------------- bindings

  schedule(state, delay) {
    if (this.destroyed) return;
    state.seq += 1;
    const seq = state.seq;
    if (state.timer !== null) this.clearTimer(state.timer);
    state.timer = null;
    state.comp.error = null;
    if (!state.token) state.token = {};
    this.busy([state.comp], state.token, true);
    if (delay <= 0) this.runBinding(state, seq);
    else state.timer = this.later(delay, () => {
      state.timer = null;
      this.runBinding(state, seq);
    });
  }

  async runBinding(state, seq) {
    const { comp, binding } = state;
    const input = fillTemplate(binding.input ?? null, (id) => this.valueOf(id));
    let outcome = "applied";
    let runId = null;
    let message = null;
    let value;
    try {
      const result = await this.run(binding, input, () => seq !== state.seq);
      runId = result.runId;
      const part = pathGet(result.output, binding.path ?? "");
      if (!part.found) throw new RunFailure(`The worklet's output has nothing at "${binding.path}"`, runId);
      value = part.value;
    } catch (err) {
      if (this.destroyed || (err && err.name === "AbortError")) return;
      runId = err.runId ?? runId;
      outcome = "error";
      message = err.message || String(err);
    }
    if (this.destroyed) return;
    if (seq !== state.seq) {
      outcome = "dropped"; // a newer request was made since: its answer is the one to show
    } else {
      this.busy([comp], state.token, false);
      state.token = null;
      comp.error = message;
      if (outcome === "applied") this.setValue(comp, value);
      this.refresh(comp);
    }
    const worklet = binding.worklet_id || binding.worklet;
    this.dispatch(comp, "worklets:run", { component: comp.id, source: "binding", worklet, seq, outcome, run_id: runId, error: message });
  }

  // ----------------------------------------------------------------- invoking

  workletId(ref) {
    const names = this.options.worklets || {};
    return ref.worklet_id || names[ref.worklet] || ref.worklet;
  }

  /**
   * Invokes the worklet of a handler or binding: resolves to {output, runId}, rejects with an
   * Error whose message is for the user. A 202 (background run) is polled until it ends, as is
   * a 504 that names its run. `stale()` true stops polling a run whose answer is not wanted.
   */
  async run(ref, input, stale = () => false) {
    const worklet = this.workletId(ref);
    if (!worklet) throw new RunFailure("The handler names no worklet");
    const payload = { worklet_input: input };
    if (this.options.viewId) payload.view_id = this.options.viewId;
    const signal = this.controller.signal;
    let answer;
    try {
      answer = await this.client.invoke(worklet, payload, { signal });
    } catch (err) {
      const runId = err instanceof ApiError && err.body ? err.body.run_id : null;
      if (err instanceof ApiError && err.status === 504 && runId) return this.poll(worklet, runId, stale);
      throw err;
    }
    const body = answer.body || {};
    if (answer.status === 202) return this.poll(worklet, body.scheduled_worklet_run_id, stale);
    if (body.success) return { output: body.worklet_output ?? null, runId: body.run_id ?? null };
    throw new RunFailure(runErrorText(body.error, "The worklet failed"), body.run_id ?? null);
  }

  async poll(worklet, runId, stale) {
    if (!runId) throw new RunFailure("The gateway scheduled a run without giving its id");
    const signal = this.controller.signal;
    let outages = 0;
    for (;;) {
      await this.wait(this.options.pollIntervalMs ?? POLL_INTERVAL_MS);
      if (stale()) return { output: null, runId };
      let state;
      try {
        state = await this.client.poll(worklet, runId, { signal });
        outages = 0;
      } catch (err) {
        const transient = err instanceof ApiError && (err.status === 503 || err.code === "network");
        if (transient && ++outages < MAX_POLL_OUTAGES) continue;
        if (err instanceof ApiError) err.runId = runId;
        throw err;
      }
      if (state.status === "SUCCEEDED") return { output: state.worklet_output ?? null, runId };
      if (FAILED.has(state.status)) throw new RunFailure(runErrorText(state.error, state.message || `Run ${state.status}`), runId);
    }
  }

  // ----------------------------------------------------------------- timers

  later(ms, fn) {
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      if (!this.destroyed) fn();
    }, ms);
    this.timers.add(timer);
    return timer;
  }

  clearTimer(timer) {
    clearTimeout(timer);
    this.timers.delete(timer);
  }

  wait(ms) {
    return new Promise((resolve, reject) => {
      const signal = this.controller.signal;
      const onAbort = () => reject(new DOMException("The view was destroyed", "AbortError"));
      if (signal.aborted) return onAbort();
      signal.addEventListener("abort", onAbort, { once: true });
      this.later(ms, () => {
        signal.removeEventListener("abort", onAbort);
        resolve();
      });
    });
  }

  destroy() {
    if (this.destroyed) return;
    this.destroyed = true;
    this.controller.abort();
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
    this.root.remove();
  }
}

/**
 * Renders `definition` into `container` and starts its bindings. Options: gatewayUrl ("" for
 * the page's own origin), appId, apiKey, viewId (sent with each invoke: the run's trigger is
 * then "view"), worklets (optional {name: id} for definitions not yet saved, whose handlers name
 * worklets without `worklet_id`), pollIntervalMs (500).
 * Returns {element, value(id), setValue(id, value), destroy()}.
 */
export function renderView(container, definition, options = {}) {
  const runtime = new ViewRuntime(container, definition, options);
  runtime.start();
  return {
    element: runtime.root,
    value: (id) => clone(runtime.valueOf(id)),
    setValue: (id, value) => {
      const comp = runtime.components.get(id);
      if (comp) runtime.setValue(comp, value);
    },
    destroy: () => runtime.destroy(),
  };
}
