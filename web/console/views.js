// Views: a JSON editor with a live preview (the view runtime rendering the edited definition
// in a frame, invoking for real), save, delete, and the link to the published page.

import { createErrorBox, createJsonEditor, parseOrShow } from "./editor.js";
import { confirmDialog, h, missingPage, toast, uniqueName } from "./ui.js";

const PREVIEW_DELAY_MS = 600;

/** A small starting point: a text input, a button invoking a worklet, a JSON viewer. */
export function viewTemplate(name, worklets) {
  const target = worklets[0];
  const components = [
    { id: "name", type: "text_input", label: "Name", value: "Ada", placeholder: "Who?" },
    target
      ? {
          id: "go",
          type: "button",
          label: `Run ${target.name}`,
          on: { click: { worklet: target.name, input: { name: "{{name.value}}" }, assign: { result: "" } } },
        }
      : { id: "go", type: "button", label: "Run" },
    { id: "result", type: "json", label: "Result" },
  ];
  return { name, title: "New view", components };
}

/** Worklet names in handlers and bindings resolved to ids, as the published view has them. */
function resolveWorklets(definition, worklets) {
  const byName = new Map(worklets.map((w) => [w.name, w.id]));
  const ids = new Set(worklets.map((w) => w.id));
  const resolve = (ref) => {
    if (!ref || typeof ref !== "object" || typeof ref.worklet !== "string") return ref;
    if (ref.worklet_id) return ref;
    const id = ids.has(ref.worklet) ? ref.worklet : byName.get(ref.worklet);
    return id ? { ...ref, worklet_id: id } : ref;
  };
  const copy = structuredClone(definition);
  for (const component of Array.isArray(copy.components) ? copy.components : []) {
    if (!component || typeof component !== "object") continue;
    if (component.on && typeof component.on === "object") {
      for (const event of Object.keys(component.on)) component.on[event] = resolve(component.on[event]);
    }
    if (component.binding) component.binding = resolve(component.binding);
  }
  return copy;
}

function scriptJson(value) {
  return JSON.stringify(value).replace(/</g, "\\u003c");
}

function previewDocument(definition, options) {
  const runtime = new URL("../static/view-runtime.js", document.baseURI).href;
  const css = new URL("../static/view.css", document.baseURI).href;
  return `<!doctype html>
<html><head><meta charset="utf-8">
<link rel="stylesheet" href="${css}">
<style>body{margin:16px;font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:#1f2933}
.preview-error{color:#b42318;white-space:pre-wrap}</style>
</head><body>
<div id="root"></div>
<script type="application/json" id="definition">${scriptJson(definition)}</script>
<script type="application/json" id="options">${scriptJson(options)}</script>
<script type="module">
const root = document.getElementById("root");
try {
  const { renderView } = await import(${JSON.stringify(runtime)});
  const definition = JSON.parse(document.getElementById("definition").textContent);
  const options = JSON.parse(document.getElementById("options").textContent);
  await renderView(root, definition, options);
  document.body.dataset.state = "ready";
} catch (err) {
  root.className = "preview-error";
  root.textContent = "The preview could not be rendered: " + (err && err.message ? err.message : err);
  document.body.dataset.state = "error";
}
</script>
</body></html>`;
}

/** Render the view page (`id` null: a new view) into `main`; answers a cleanup function. */
export async function renderViewPage(ctx, main, id) {
  main.replaceChildren(h("p", { class: "loading" }, "Loading…"));
  let view = null;
  if (id) {
    try {
      view = await ctx.registry.view(id);
    } catch (err) {
      main.replaceChildren(missingPage("view", "view-missing", err));
      return () => {};
    }
  }
  const initial = view ? view.definition : viewTemplate(uniqueName("new-view", ctx.views), ctx.worklets);
  let savedText = view ? `${JSON.stringify(initial, null, 2)}\n` : "";
  let previewTimer = null;
  let destroyed = false;

  const title = h("h1", { testid: "view-title" }, view ? view.title || view.name : "New view");
  const link = h("a", { class: "published-link", testid: "view-link", target: "_blank", rel: "noopener", hidden: !view });
  const saveButton = h("button", { type: "button", class: "primary", testid: "view-save" }, view ? "Save" : "Create");
  const deleteButton = h("button", { type: "button", class: "danger-outline", testid: "view-delete", hidden: !view }, "Delete");
  const status = h("span", { class: "muted small", testid: "view-status" });
  const errors = createErrorBox({ testid: "view-error", messageTestid: "view-error-message", subject: "Component", field: "component" });
  const frameHost = h("div", { class: "preview-frame", testid: "view-preview" });
  const previewNote = h("span", { class: "muted small", testid: "preview-note" });

  function showLink() {
    if (view?.url) {
      link.href = view.url;
      link.textContent = "Open published page ↗";
      link.title = view.url;
      link.hidden = false;
    }
  }
  showLink();

  const editor = createJsonEditor({
    text: ctx.drafts.get(`view:${id || "new"}`) ?? `${JSON.stringify(initial, null, 2)}\n`,
    testid: "view-editor",
    label: "View definition (JSON)",
    onChange: changed,
    onSave: save,
  });

  function updateStatus() {
    const dirty = editor.getText() !== savedText;
    status.textContent = !view ? "not saved yet" : dirty ? "unsaved changes" : "saved";
    status.classList.toggle("dirty", dirty);
    const key = `view:${id || "new"}`;
    if (dirty && view) ctx.drafts.set(key, editor.getText());
    else ctx.drafts.delete(key);
  }

  function preview(definition) {
    if (destroyed) return;
    const options = { gatewayUrl: ctx.gatewayUrl, appId: ctx.appId, apiKey: ctx.apiKey, viewId: view ? view.id : null };
    const frame = h("iframe", { title: "Live preview", testid: "view-preview-frame" });
    frame.srcdoc = previewDocument(resolveWorklets(definition, ctx.worklets), options);
    frameHost.replaceChildren(frame);
    previewNote.textContent = `rendered ${new Date().toLocaleTimeString()}`;
  }

  function changed() {
    updateStatus();
    clearTimeout(previewTimer);
    previewTimer = setTimeout(() => {
      const parsed = parseOrShow(editor, errors);
      if (!parsed) return;
      errors.hide();
      preview(parsed.value);
    }, PREVIEW_DELAY_MS);
  }

  async function save() {
    clearTimeout(previewTimer);
    const parsed = parseOrShow(editor, errors);
    if (!parsed) return;
    saveButton.disabled = true;
    try {
      const saved = view ? await ctx.registry.updateView(view.id, parsed.value) : await ctx.registry.createView(parsed.value);
      errors.hide();
      toast(view ? "View saved" : "View created");
      ctx.drafts.delete(`view:${id || "new"}`);
      await ctx.refreshSidebar();
      if (!view) {
        ctx.navigate(`#/views/${encodeURIComponent(saved.id)}`);
        return;
      }
      view = saved;
      savedText = `${JSON.stringify(saved.definition, null, 2)}\n`;
      editor.setText(savedText);
      title.textContent = saved.title || saved.name;
      showLink();
      updateStatus();
      preview(saved.definition);
    } catch (err) {
      errors.show(err.message, { at: err.component });
      if (err.component) editor.markObject(err.component, "error");
    } finally {
      saveButton.disabled = false;
    }
  }

  async function remove() {
    const ok = await confirmDialog({
      title: "Delete this view?",
      message: `The view “${view.name}” and its published page will be deleted. This cannot be undone.`,
    });
    if (!ok) return;
    try {
      await ctx.registry.deleteView(view.id);
      toast(`Deleted ${view.name}`);
      ctx.drafts.delete(`view:${id}`);
      await ctx.refreshSidebar();
      ctx.navigate("#/");
    } catch (err) {
      toast(`Could not delete: ${err.message}`, "error");
    }
  }

  saveButton.addEventListener("click", save);
  deleteButton.addEventListener("click", remove);

  main.replaceChildren(
    h(
      "div",
      { class: "view-page", testid: "view-page", "data-id": view?.id || "" },
      h(
        "header",
        { class: "page-header" },
        h("div", { class: "page-title" }, title, h("div", { class: "page-meta" }, view ? h("span", { class: "badge badge-muted" }, view.name) : null, link)),
        h("div", { class: "page-actions" }, deleteButton, saveButton),
      ),
      h(
        "div",
        { class: "view-columns" },
        h(
          "section",
          { class: "card editor-card" },
          h("header", { class: "card-header" }, h("h2", {}, "Definition"), status),
          errors.element,
          editor.element,
          h(
            "p",
            { class: "muted small hint" },
            "Components: text_input, number_input, select, checkbox, button, text, table, json, image. ",
            "Handlers (",
            h("code", {}, "on"),
            ") and bindings invoke worklets with a template input such as ",
            h("code", {}, '"{{name.value}}"'),
            ".",
          ),
        ),
        h(
          "section",
          { class: "card preview-card" },
          h("header", { class: "card-header" }, h("h2", {}, "Live preview"), previewNote),
          frameHost,
        ),
      ),
    ),
  );
  updateStatus();
  const parsed = parseOrShow(editor, errors);
  if (parsed) preview(parsed.value);

  return () => {
    destroyed = true;
    clearTimeout(previewTimer);
  };
}
