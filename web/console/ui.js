// Small DOM helpers shared by the console's modules: element builders, dialogs, formatting.

const SVG_NS = "http://www.w3.org/2000/svg";

function append(parent, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    parent.append(child instanceof Node ? child : String(child));
  }
}

function setAttributes(el, attrs) {
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      el.addEventListener(name.slice(2).toLowerCase(), value);
    } else if (name === "class") {
      el.setAttribute("class", Array.isArray(value) ? value.filter(Boolean).join(" ") : value);
    } else if (name === "testid") {
      el.setAttribute("data-testid", value);
    } else if (name === "value" && "value" in el && !(el instanceof SVGElement)) {
      el.value = value;
    } else if (name === "checked" || name === "disabled" || name === "selected") {
      el[name] = Boolean(value);
    } else {
      el.setAttribute(name, value === true ? "" : String(value));
    }
  }
}

/** h("button", {class: "primary", onclick}, "Save") */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  setAttributes(el, attrs);
  append(el, children);
  return el;
}

/** The SVG counterpart of h. */
export function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  setAttributes(el, attrs);
  append(el, children);
  return el;
}

/** The page shown instead of a worklet or view that could not be loaded (`what`: "worklet"). */
export function missingPage(what, testid, err) {
  return h(
    "div",
    { class: "empty-state", testid },
    h("h1", {}, err.status === 404 ? `No such ${what}` : `Could not load the ${what}`),
    h("p", {}, err.message),
    h("a", { href: "#/" }, "Back to the overview"),
  );
}

/** `base`, or `base-2`, `base-3`... whichever no item of `items` is named yet. */
export function uniqueName(base, items) {
  const taken = new Set((items || []).map((item) => item.name));
  if (!taken.has(base)) return base;
  for (let n = 2; ; n++) if (!taken.has(`${base}-${n}`)) return `${base}-${n}`;
}

// ---------------------------------------------------------------- icons (inline SVG)

export function clockIcon(title = "Scheduled") {
  return s(
    "svg",
    { class: "icon clock", viewBox: "0 0 16 16", width: 14, height: 14, "aria-hidden": "true" },
    s("title", {}, title),
    s("circle", { cx: 8, cy: 8, r: 6.25, fill: "none", stroke: "currentColor", "stroke-width": 1.5 }),
    s("path", {
      d: "M8 4.5V8l2.5 1.5",
      fill: "none",
      stroke: "currentColor",
      "stroke-width": 1.5,
      "stroke-linecap": "round",
    }),
  );
}

export function dotsIcon() {
  return s(
    "svg",
    { class: "icon", viewBox: "0 0 16 16", width: 16, height: 16, "aria-hidden": "true" },
    s("circle", { cx: 3.5, cy: 8, r: 1.3, fill: "currentColor" }),
    s("circle", { cx: 8, cy: 8, r: 1.3, fill: "currentColor" }),
    s("circle", { cx: 12.5, cy: 8, r: 1.3, fill: "currentColor" }),
  );
}

// ---------------------------------------------------------------- formatting

export function pretty(value) {
  if (value === undefined) return "";
  return JSON.stringify(value, null, 2);
}

export function formatLatency(ms) {
  if (ms === null || ms === undefined) return "–";
  if (ms < 1000) return `${Math.round(ms * 10) / 10} ms`;
  return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
}

export function formatTime(iso) {
  if (!iso) return "–";
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso;
  const now = new Date();
  const time = date.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit" });
  if (date.toDateString() === now.toDateString()) return time;
  return `${date.toLocaleDateString(undefined, { month: "short", day: "numeric" })} ${time}`;
}

export function fullTime(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : date.toLocaleString();
}

export function statusBadge(status, attrs = {}) {
  const kind = {
    SUCCEEDED: "ok",
    FAILED: "bad",
    TIMED_OUT: "bad",
    CANCELLED: "muted",
    QUEUED: "pending",
    RUNNING: "pending",
  }[status] || "muted";
  return h(
    "span",
    { class: ["badge", `badge-${kind}`], "data-status": status, ...attrs },
    status ? status.replace("_", " ").toLowerCase() : "–",
  );
}

// ---------------------------------------------------------------- dialogs

/**
 * A modal <dialog> appended to <body>; removed from the page when closed.
 * Answers {dialog, body, footer, close}. `onClose` runs once.
 */
export function modal({ title, testid, className = "", onClose } = {}) {
  const body = h("div", { class: "dialog-body" });
  const footer = h("div", { class: "dialog-footer" });
  const closeButton = h("button", { type: "button", class: "icon-button", "aria-label": "Close", testid: "dialog-close" }, "×");
  const dialog = h(
    "dialog",
    { class: ["dialog", className], testid, "aria-label": title },
    h("header", { class: "dialog-header" }, h("h2", {}, title), closeButton),
    body,
    footer,
  );
  let closed = false;
  const close = () => {
    if (closed) return;
    closed = true;
    if (dialog.open) dialog.close();
    dialog.remove();
    onClose?.();
  };
  closeButton.addEventListener("click", close);
  dialog.addEventListener("cancel", (event) => {
    event.preventDefault();
    close();
  });
  dialog.addEventListener("close", close);
  document.body.append(dialog);
  dialog.showModal();
  return { dialog, body, footer, close };
}

/** Ask before something that cannot be undone. Resolves true if confirmed. */
export function confirmDialog({ title, message, confirmLabel = "Delete", danger = true }) {
  return new Promise((resolve) => {
    let answer = false;
    const { body, footer, close } = modal({
      title,
      testid: "confirm-dialog",
      className: "dialog-small",
      onClose: () => resolve(answer),
    });
    body.append(h("p", { class: "confirm-message" }, message));
    const ok = h(
      "button",
      {
        type: "button",
        class: danger ? "danger" : "primary",
        testid: "confirm-ok",
        onclick: () => {
          answer = true;
          close();
        },
      },
      confirmLabel,
    );
    footer.append(h("button", { type: "button", testid: "confirm-cancel", onclick: close }, "Cancel"), ok);
    ok.focus();
  });
}

// ---------------------------------------------------------------- notices

let toastHost = null;

/** A short notice at the bottom of the page. */
export function toast(message, kind = "info") {
  if (!toastHost || !toastHost.isConnected) {
    toastHost = h("div", { class: "toasts", role: "status", "aria-live": "polite" });
    document.body.append(toastHost);
  }
  const note = h("div", { class: ["toast", `toast-${kind}`], testid: "toast" }, message);
  toastHost.append(note);
  setTimeout(() => note.remove(), kind === "error" ? 6000 : 3000);
}

/** A labelled form row with an error slot below the control. */
export function field({ label, control, name, hint = null, className = "", labelFor = null }) {
  const target = labelFor || control;
  const id = target.id || `f-${name}`;
  target.id = id;
  const error = h("p", { class: "field-error", testid: `error-${name}`, hidden: true, role: "alert" });
  const row = h(
    "div",
    { class: ["field", className], "data-field": name },
    h("label", { for: id }, label),
    control,
    hint ? h("p", { class: "field-hint" }, hint) : null,
    error,
  );
  return { row, control, error };
}

export function showFieldError(slot, message) {
  if (!slot) return;
  slot.textContent = message || "";
  slot.hidden = !message;
  slot.closest(".field")?.classList.toggle("has-error", Boolean(message));
}
