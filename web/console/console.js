// The console's wiring: configuration, signing in and out, the sidebar, routing between the
// overview, worklet pages and view pages, and the worklet actions (new, settings, rename,
// delete) shared by the sidebar and the pages.

import { bearerAuth, requestJson } from "../static/api.js";
import { renderOverview } from "./overview.js";
import { Registry } from "./registry.js";
import { openSettings } from "./settings.js";
import { closeMenu, menuIsOpen, renderSidebar } from "./sidebar.js";
import { confirmDialog, field, h, modal, showFieldError, toast, uniqueName } from "./ui.js";
import { renderViewPage } from "./views.js";
import { renderWorkletPage } from "./worklet-page.js";

const KEY_STORAGE = "worklets.console.key";
const root = document.getElementById("app");

const ctx = {
  registry: null,
  apiKey: null,
  appId: null,
  appName: null,
  keyId: null,
  gatewayUrl: null,
  worklets: [],
  schedules: new Map(),
  views: [],
  viewsError: null,
  drafts: new Map(), // unsaved editor texts, by worklet id or "view:{id}"
  pageHooks: {},
  navigate,
  refreshSidebar,
  newWorklet,
  openSettings: (worklet) => settings(worklet),
};

let sidebar = null;
let main = null;
let cleanup = () => {};
let route = { kind: "home", id: null };
let routing = 0;

// ---------------------------------------------------------------- configuration

async function loadConfig() {
  try {
    const { body } = await requestJson(new URL("config.json", document.baseURI).href);
    return body && typeof body.gateway_url === "string" ? body.gateway_url : null;
  } catch {
    return null;
  }
}

// ---------------------------------------------------------------- signing in

class SignInError extends Error {}

/** Who `key` is: {app_id, role, key_id}; SignInError with a message for a person otherwise. */
async function identify(key) {
  const registry = new Registry({ key });
  try {
    return await registry.me();
  } catch (err) {
    if (err.status === 401) {
      // perhaps the platform's admin token pasted in: say so rather than "invalid"
      if (!key.startsWith("wk_")) {
        try {
          const { body } = await requestJson("/v1/me", { auth: bearerAuth(key) });
          if (body && body.admin) {
            throw new SignInError(
              "That is the platform's admin token. The console signs in with an application's API key of role admin (it starts with wk_).",
            );
          }
        } catch (inner) {
          if (inner instanceof SignInError) throw inner;
        }
      }
      throw new SignInError("This API key is not valid, or it has been revoked.");
    }
    if (err.status === 403) {
      throw new SignInError(`This key cannot manage worklets: ${err.message}`);
    }
    if (err.status === 0) throw new SignInError(`Cannot reach the registry: ${err.message}`);
    throw new SignInError(err.message);
  }
}

async function signIn(key) {
  const me = await identify(key);
  if (me.role !== "admin") {
    throw new SignInError(
      `This key has the role “${me.role}”: it can invoke worklets and open views, but not manage them. ` +
        "Sign in with a key of role “admin”.",
    );
  }
  ctx.apiKey = key;
  ctx.appId = me.app_id;
  ctx.keyId = me.key_id || null;
  ctx.registry = new ConsoleRegistry({ key, appId: me.app_id });
  sessionStorage.setItem(KEY_STORAGE, key);
  try {
    const app = await ctx.registry.call("GET", ctx.registry.app());
    ctx.appName = app?.name || null;
  } catch {
    ctx.appName = null;
  }
}

/** The registry client, signing out when the key stops working mid-session. */
class ConsoleRegistry extends Registry {
  async call(method, route, body) {
    try {
      return await super.call(method, route, body);
    } catch (err) {
      if (err.status === 401 && ctx.registry === this) {
        signOut("Your API key is no longer valid (revoked?). Sign in again.");
      }
      throw err;
    }
  }
}

function signOut(message = null) {
  sessionStorage.removeItem(KEY_STORAGE);
  cleanup();
  cleanup = () => {};
  closeMenu();
  for (const dialog of document.querySelectorAll("dialog")) dialog.remove();
  Object.assign(ctx, { registry: null, apiKey: null, appId: null, appName: null, keyId: null, worklets: [], views: [] });
  ctx.schedules = new Map();
  ctx.drafts = new Map();
  showSignIn(message);
}

function showSignIn(message = null) {
  const key = h("input", {
    type: "password",
    id: "signin-key",
    testid: "signin-key",
    autocomplete: "off",
    spellcheck: "false",
    placeholder: "wk_…",
    required: true,
  });
  const error = h("p", { class: "form-error", testid: "signin-error", role: "alert", hidden: !message }, message || "");
  const submit = h("button", { type: "submit", class: "primary wide", testid: "signin-submit" }, "Sign in");
  const form = h(
    "form",
    {
      class: "signin-card",
      testid: "signin",
      onsubmit: async (event) => {
        event.preventDefault();
        error.hidden = true;
        submit.disabled = true;
        submit.textContent = "Signing in…";
        try {
          await signIn(key.value.trim());
          await showConsole();
        } catch (err) {
          error.textContent = err instanceof SignInError ? err.message : `Could not sign in: ${err.message}`;
          error.hidden = false;
          submit.disabled = false;
          submit.textContent = "Sign in";
          key.select();
        }
      },
    },
    h("div", { class: "brand brand-large" }, logo(), "Worklets"),
    h("h1", {}, "Sign in to the console"),
    h("p", { class: "muted" }, "Paste an API key of your application with the role admin. It is kept in this tab only (sessionStorage) and sent to this registry alone."),
    h("label", { for: "signin-key" }, "API key"),
    key,
    error,
    submit,
  );
  root.replaceChildren(h("div", { class: "signin-page" }, form));
  key.focus();
}

function logo() {
  return h("span", { class: "logo", "aria-hidden": "true" }, "w");
}

// ---------------------------------------------------------------- the shell

async function showConsole() {
  sidebar = h("nav", { class: "sidebar", testid: "sidebar", "aria-label": "Worklets and views" });
  main = h("main", { class: "main", id: "main", tabindex: -1 });
  const topbar = h(
    "header",
    { class: "topbar" },
    h("a", { class: "brand", href: "#/" }, logo(), "Worklets"),
    h("span", { class: "topbar-app", testid: "app-name", title: ctx.appId }, ctx.appName || ctx.appId),
    h("span", { class: "push" }),
    ctx.gatewayUrl ? null : h("span", { class: "badge badge-bad", title: "config.json has no gateway_url" }, "gateway unknown"),
    h("span", { class: "muted small", title: "The key you signed in with" }, ctx.keyId ? `key ${ctx.keyId}` : ""),
    h("button", { type: "button", class: "small", testid: "signout", onclick: () => signOut() }, "Sign out"),
  );
  root.replaceChildren(h("div", { class: "shell" }, topbar, sidebar, main));
  await refreshSidebar();
  await showRoute();
}

async function refreshSidebar() {
  if (!ctx.registry) return;
  const registry = ctx.registry;
  const [worklets, schedules, views] = await Promise.all([
    registry.worklets().then((r) => r.items),
    registry.schedules().then(
      (r) => r.items,
      () => [],
    ),
    registry.views().then(
      (r) => ({ items: r.items, error: null }),
      (err) => ({ items: null, error: err.status === 404 ? "Views are not available on this registry yet." : `Could not load the views: ${err.message}` }),
    ),
  ]).catch((err) => {
    toast(`Could not load the worklets: ${err.message}`, "error");
    return [ctx.worklets, [...ctx.schedules.values()], { items: ctx.views, error: ctx.viewsError }];
  });
  if (ctx.registry !== registry) return;
  ctx.worklets = worklets;
  ctx.schedules = new Map(schedules.map((schedule) => [schedule.worklet_id, schedule]));
  ctx.views = views.items;
  ctx.viewsError = views.error;
  drawSidebar();
  ctx.pageHooks.sidebarChanged?.();
}

function drawSidebar() {
  if (!sidebar) return;
  renderSidebar(
    sidebar,
    { worklets: ctx.worklets, schedules: ctx.schedules, views: ctx.views, viewsError: ctx.viewsError, route },
    {
      onNewWorklet: newWorklet,
      onNewView: () => navigate("#/views/new"),
      onSettings: settings,
      onRename: rename,
      onDelete: remove,
    },
  );
}

// ---------------------------------------------------------------- routing

function parseRoute(hash) {
  const parts = hash.replace(/^#\/?/, "").split("/").filter(Boolean).map(decodeURIComponent);
  if (parts[0] === "worklets" && parts[1]) return { kind: "worklet", id: parts[1] };
  if (parts[0] === "views" && parts[1] === "new") return { kind: "new-view", id: null };
  if (parts[0] === "views" && parts[1]) return { kind: "view", id: parts[1] };
  return { kind: "home", id: null };
}

function navigate(hash) {
  if (location.hash === hash) showRoute();
  else location.hash = hash;
}

async function showRoute() {
  if (!ctx.registry || !main) return;
  const mine = ++routing;
  cleanup();
  cleanup = () => {};
  closeMenu();
  route = parseRoute(location.hash);
  drawSidebar();
  let done;
  if (route.kind === "worklet") done = await renderWorkletPage(ctx, main, route.id);
  else if (route.kind === "view") done = await renderViewPage(ctx, main, route.id);
  else if (route.kind === "new-view") done = await renderViewPage(ctx, main, null);
  else done = renderOverview(ctx, main);
  if (mine !== routing) {
    done?.(); // a newer route was shown meanwhile
    return;
  }
  cleanup = done || (() => {});
  main.scrollTop = 0;
}

window.addEventListener("hashchange", showRoute);
window.addEventListener("beforeunload", (event) => {
  if (ctx.drafts.size) event.preventDefault();
});

// ---------------------------------------------------------------- worklet actions

const TEMPLATE_SOURCES = {
  prepare: [
    "def main(block_input, env, context):",
    '    name = block_input.get("name") if isinstance(block_input, dict) else None',
    '    name = name or "world"',
    '    context.log("preparing a greeting for", name)',
    '    return {"name": name}',
    "",
  ].join("\n"),
  respond: ["def main(block_input):", '    return {"message": f"Hello, {block_input[\'name\']}!"}', ""].join("\n"),
};

function workletTemplate(name) {
  return {
    name,
    description: "Greets someone",
    blocks: [
      { id: "prepare", type: "code", source: TEMPLATE_SOURCES.prepare, next: "respond" },
      { id: "respond", type: "code", source: TEMPLATE_SOURCES.respond },
    ],
  };
}

function nameDialog({ title, testid, label, initial, inputTestid, submitLabel, submitTestid, run }) {
  const { dialog, body, footer, close } = modal({ title, testid, className: "dialog-small" });
  const input = h("input", { type: "text", value: initial, testid: inputTestid, spellcheck: "false", required: true, autocomplete: "off" });
  const f = field({ label, control: input, name: inputTestid });
  const submit = h("button", { type: "submit", class: "primary", testid: submitTestid }, submitLabel);
  const form = h("form", {
    class: "dialog-form",
    onsubmit: async (event) => {
      event.preventDefault();
      showFieldError(f.error, "");
      const value = input.value.trim();
      if (!value) {
        showFieldError(f.error, "Enter a name.");
        return;
      }
      submit.disabled = true;
      try {
        await run(value);
        close();
      } catch (err) {
        showFieldError(f.error, err.message);
      } finally {
        submit.disabled = false;
      }
    },
  });
  dialog.insertBefore(form, body);
  form.append(body, footer);
  body.append(f.row);
  footer.append(h("button", { type: "button", onclick: close }, "Cancel"), submit);
  input.focus();
  input.select();
}

function newWorklet() {
  const name = uniqueName("my-worklet", ctx.worklets);
  nameDialog({
    title: "New worklet",
    testid: "new-worklet-dialog",
    label: "Name",
    initial: name,
    inputTestid: "new-worklet-name",
    submitLabel: "Create",
    submitTestid: "new-worklet-create",
    run: async (value) => {
      const created = await ctx.registry.createWorklet(workletTemplate(value));
      toast(`Created ${created.name}`);
      await refreshSidebar();
      navigate(`#/worklets/${encodeURIComponent(created.id)}`);
    },
  });
}

function settings(worklet) {
  openSettings(ctx, worklet, {
    onSaved: async () => {
      await refreshSidebar();
      await ctx.pageHooks.workletChanged?.(worklet.id);
    },
  });
}

function rename(worklet) {
  nameDialog({
    title: `Rename ${worklet.name}`,
    testid: "rename-dialog",
    label: "New name",
    initial: worklet.name,
    inputTestid: "rename-input",
    submitLabel: "Rename",
    submitTestid: "rename-save",
    run: async (value) => {
      if (value === worklet.name) return;
      // a rename is a new version of the current definition with another name; the id stays
      const current = await ctx.registry.worklet(worklet.id);
      await ctx.registry.updateWorklet(worklet.id, { ...current.definition, name: value });
      toast(`Renamed to ${value}`);
      await refreshSidebar();
      await ctx.pageHooks.workletChanged?.(worklet.id);
    },
  });
}

async function remove(worklet) {
  const scheduled = ctx.schedules.has(worklet.id);
  const ok = await confirmDialog({
    title: `Delete ${worklet.name}?`,
    message:
      `The worklet “${worklet.name}”${scheduled ? " and its schedule" : ""} will be deleted, and its API endpoint will stop answering. ` +
      "Runs already queued still run. This cannot be undone.",
  });
  if (!ok) return;
  try {
    await ctx.registry.deleteWorklet(worklet.id);
  } catch (err) {
    toast(`Could not delete ${worklet.name}: ${err.message}`, "error");
    return;
  }
  ctx.drafts.delete(worklet.id);
  toast(`Deleted ${worklet.name}`);
  await refreshSidebar();
  if (route.kind === "worklet" && route.id === worklet.id) navigate("#/");
}

// ---------------------------------------------------------------- start

async function boot() {
  ctx.gatewayUrl = await loadConfig();
  const key = sessionStorage.getItem(KEY_STORAGE);
  if (!key) {
    showSignIn();
    return;
  }
  try {
    await signIn(key);
  } catch (err) {
    sessionStorage.removeItem(KEY_STORAGE);
    showSignIn(err.message);
    return;
  }
  await showConsole();
}

document.addEventListener("keydown", (event) => {
  if (event.key === "Escape") closeMenu();
});
// back from another tab or the command line: worklets and schedules may have changed
let lastFocusRefresh = 0;
window.addEventListener("focus", () => {
  if (!ctx.registry || menuIsOpen() || document.querySelector("dialog[open]")) return;
  if (Date.now() - lastFocusRefresh < 5000) return;
  lastFocusRefresh = Date.now();
  refreshSidebar();
});

boot();
