// The published view page, {gateway}/views/{app}/{view}: sign in with an API key of the
// application (from #key=... or a form; kept in sessionStorage only), fetch the view's
// definition from the gateway, render it with the view runtime.

import { gatewayClient } from "./api.js";
import { el, renderView } from "./view-runtime.js";

const main = document.getElementById("main");
const signOutButton = document.getElementById("sign-out");
let view = null; // the runtime's handle while a view is shown

// ------------------------------------------------------------------------- the key

const storage = {
  // sessionStorage can be unavailable (a privacy mode): the key then lives in memory only.
  memory: new Map(),
  get(name) {
    try {
      return sessionStorage.getItem(name);
    } catch {
      return this.memory.get(name) ?? null;
    }
  },
  set(name, value) {
    try {
      sessionStorage.setItem(name, value);
    } catch {
      this.memory.set(name, value);
    }
  },
  remove(name) {
    try {
      sessionStorage.removeItem(name);
    } catch {
      this.memory.delete(name);
    }
  },
};

/**
 * `#key=...` moves into sessionStorage and leaves the address bar (and the history).
 * True when the fragment had a key.
 */
function keyFromFragment(storageName) {
  const fragment = new URLSearchParams(location.hash.slice(1));
  const key = (fragment.get("key") || "").trim();
  if (!key) return false;
  storage.set(storageName, key);
  fragment.delete("key");
  const rest = fragment.toString();
  history.replaceState(history.state, "", location.pathname + location.search + (rest ? `#${rest}` : ""));
  return true;
}

// ------------------------------------------------------------------------- screens

function show(...nodes) {
  if (view) {
    view.destroy();
    view = null;
  }
  main.replaceChildren(...nodes);
}

function signInScreen(appId, message) {
  document.title = "Sign in · Worklets view";
  signOutButton.hidden = true;
  const input = el("input", { id: "api-key", name: "api-key", type: "password", class: "wv-input", autocomplete: "off", spellcheck: "false", required: true, placeholder: "wk_…" });
  const form = el(
    "form",
    { class: "card sign-in", "aria-labelledby": "sign-in-title" },
    el("h1", { id: "sign-in-title", text: "Sign in to open this view" }),
    el("p", { class: "muted", text: `Enter an API key of application ${appId}. The key is kept in this browser tab only.` }),
    message ? el("p", { class: "notice notice-error", role: "alert", text: message }) : null,
    el("div", { class: "field" }, el("label", { for: "api-key", text: "API key" }), input),
    el("button", { type: "submit", class: "wv-button", text: "Open view" }),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const key = input.value.trim();
    if (!key) return;
    storage.set(storageKey(appId), key);
    open(appId, currentViewId, key);
  });
  show(form);
  input.focus();
}

function problemScreen(title, message, { retry = null, signedIn = true } = {}) {
  document.title = `${title} · Worklets view`;
  signOutButton.hidden = true; // the card has its own
  const actions = el("div", { class: "actions" });
  if (retry) {
    const again = el("button", { type: "button", class: "wv-button", text: "Try again" });
    again.addEventListener("click", retry);
    actions.append(again);
  }
  if (signedIn) {
    const out = el("button", { type: "button", class: "secondary-button", text: "Sign out" });
    out.addEventListener("click", signOut);
    actions.append(out);
  }
  show(
    el(
      "section",
      { class: "card problem", role: "alert", "aria-labelledby": "problem-title", "data-role": "page-error" },
      el("h1", { id: "problem-title", text: title }),
      el("p", { text: message }),
      actions,
    ),
  );
}

const PROBLEMS = {
  401: ["This key was not accepted", "The API key is unknown or has been revoked. Sign out and sign in with a valid key of this application."],
  403: ["This key cannot open this view", "The API key belongs to another application. Sign out and sign in with a key of this application."],
  404: ["View not found", "This application has no such view: it may have been deleted, or the address is wrong."],
};

// ------------------------------------------------------------------------- the view

const match = /\/views\/([^/]+)\/([^/]+)\/?$/.exec(location.pathname);
const currentAppId = match ? decodeURIComponent(match[1]) : null;
const currentViewId = match ? decodeURIComponent(match[2]) : null;

function storageKey(appId) {
  return `worklets.view.key.${appId}`;
}

function signOut() {
  storage.remove(storageKey(currentAppId));
  signInScreen(currentAppId);
}

async function open(appId, viewId, key) {
  signOutButton.hidden = false;
  show(el("p", { class: "muted loading", "data-role": "page-loading", text: "Loading the view…" }));
  const client = gatewayClient({ gatewayUrl: "", appId, apiKey: key });
  let body;
  try {
    body = await client.view(viewId);
  } catch (err) {
    const known = PROBLEMS[err.status];
    if (known) problemScreen(known[0], `${known[1]} (${err.message})`);
    else problemScreen("The view could not be loaded", err.message || String(err), { retry: () => open(appId, viewId, key) });
    return;
  }
  const definition = body;
  const title = (definition && (definition.title || definition.name)) || "Untitled view";
  document.title = title;
  const container = el("div", { class: "view-body" });
  show(
    el(
      "article",
      { class: "view", "aria-labelledby": "view-title" },
      el(
        "header",
        { class: "view-header" },
        el("h1", { id: "view-title", text: title }),
        definition && definition.description ? el("p", { class: "muted", text: definition.description }) : null,
      ),
      container,
    ),
  );
  view = renderView(container, definition, { gatewayUrl: "", appId, apiKey: key, viewId });
}

signOutButton.addEventListener("click", signOut);

if (!match) {
  problemScreen("Not a view address", "A view's address looks like /views/APPLICATION_ID/VIEW_ID.", { signedIn: false });
} else {
  keyFromFragment(storageKey(currentAppId));
  const key = storage.get(storageKey(currentAppId));
  if (key) open(currentAppId, currentViewId, key);
  else signInScreen(currentAppId);
  // A link with another #key= followed in this tab changes only the fragment: sign in with it.
  window.addEventListener("hashchange", () => {
    if (keyFromFragment(storageKey(currentAppId))) open(currentAppId, currentViewId, storage.get(storageKey(currentAppId)));
  });
}
