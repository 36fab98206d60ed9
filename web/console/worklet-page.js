// A worklet's page: its blocks as a graph, the JSON definition editor (save = PUT; a 422's
// `error.block` is highlighted in the graph and in the text, the message shown next to the
// editor), the Test panel and the run history.

import { joinUrl, path } from "../static/api.js";
import { createErrorBox, createJsonEditor, parseOrShow } from "./editor.js";
import { renderGraph } from "./graph.js";
import { createRunHistory } from "./runs.js";
import { describeSchedule } from "./settings.js";
import { createTestPanel } from "./test-panel.js";
import { clockIcon, h, missingPage, toast } from "./ui.js";

const BLOCK_ORDER = ["id", "type", "description", "worklet", "function", "source", "conditions", "default", "next"];
const TOP_ORDER = ["name", "description", "entry", "settings", "blocks"];

function ordered(object, order) {
  const out = {};
  for (const key of order) if (key in object) out[key] = object[key];
  for (const key of Object.keys(object)) if (!(key in out)) out[key] = object[key];
  return out;
}

/** The definition as a person would write it: no nulls, no empty defaults, no resolved ids. */
export function tidyDefinition(definition) {
  const top = {};
  for (const [key, value] of Object.entries(definition || {})) {
    if (value === null || (key === "description" && value === "")) continue;
    if (key === "settings" && value && typeof value === "object" && !Object.keys(value).length) continue;
    top[key] = value;
  }
  if (Array.isArray(top.blocks)) {
    top.blocks = top.blocks.map((block) => {
      const clean = {};
      for (const [key, value] of Object.entries(block || {})) {
        if (value === null || key === "worklet_id" || (key === "description" && value === "")) continue;
        clean[key] = value;
      }
      return ordered(clean, BLOCK_ORDER);
    });
  }
  return ordered(top, TOP_ORDER);
}

export function definitionText(definition) {
  return `${JSON.stringify(tidyDefinition(definition), null, 2)}\n`;
}

/** Render the page of worklet `id` into `main`; answers a cleanup function. */
export async function renderWorkletPage(ctx, main, id) {
  main.replaceChildren(h("p", { class: "loading" }, "Loading…"));
  let worklet;
  try {
    worklet = await ctx.registry.worklet(id);
  } catch (err) {
    main.replaceChildren(missingPage("worklet", "worklet-missing", err));
    return () => {};
  }

  let savedText = definitionText(worklet.definition);
  let errorBlock = null;
  let ranBlocks = null;
  let selected = null;
  let lastGood = worklet.definition;
  let parseTimer = null;

  // ---------------------------------------------------------------- header
  const title = h("h1", { testid: "worklet-title" }, worklet.name);
  const meta = h("div", { class: "page-meta" });
  const settingsButton = h("button", { type: "button", testid: "open-settings" }, "Settings");
  const header = h(
    "header",
    { class: "page-header" },
    h("div", { class: "page-title" }, title, meta),
    h("div", { class: "page-actions" }, settingsButton),
  );

  function renderMeta() {
    const schedule = ctx.schedules.get(worklet.id);
    const invokeUrl = ctx.gatewayUrl ? joinUrl(ctx.gatewayUrl, path("applications", ctx.appId, "worklets", worklet.id, "invoke")) : null;
    const parts = [
      h("span", { class: "badge badge-muted", testid: "worklet-version" }, `version ${worklet.version}`),
      schedule
        ? h(
            "span",
            { class: "badge badge-info", testid: "worklet-schedule-badge", title: "Change it in Settings" },
            clockIcon(),
            ` ${describeSchedule(schedule)}`,
          )
        : null,
      worklet.settings?.background ? h("span", { class: "badge badge-info", testid: "worklet-background-badge" }, "background task") : null,
      invokeUrl
        ? h(
            "span",
            { class: "invoke-url", title: "The worklet's API endpoint" },
            h("span", { class: "method" }, "POST"),
            h("code", { testid: "invoke-url" }, invokeUrl),
            h(
              "button",
              {
                type: "button",
                class: "link small",
                onclick: async () => {
                  try {
                    await navigator.clipboard.writeText(invokeUrl);
                    toast("Endpoint copied");
                  } catch {
                    toast("Copy failed: select the URL instead", "error");
                  }
                },
              },
              "copy",
            ),
          )
        : null,
    ];
    meta.replaceChildren(...parts.filter(Boolean));
  }

  // ---------------------------------------------------------------- graph
  const graphBox = h("div", { class: "graph-wrap", testid: "graph-container" });
  const graphCard = h(
    "section",
    { class: "card graph-card" },
    h(
      "header",
      { class: "card-header" },
      h("h2", {}, "Blocks"),
      h(
        "span",
        { class: "legend" },
        h("span", { class: "legend-item legend-code" }, "code"),
        h("span", { class: "legend-item legend-decision" }, "decision"),
        h("span", { class: "legend-item legend-worklet" }, "worklet"),
      ),
    ),
    graphBox,
  );

  function drawGraph() {
    renderGraph(graphBox, lastGood, { errorBlock, ranBlocks, onSelect: selectBlock });
    if (selected) graphBox.querySelector(`[data-block="${CSS.escape(selected)}"]`)?.classList.add("node-selected");
  }

  function selectBlock(blockId) {
    selected = blockId;
    if (!editor.markObject(blockId, errorBlock === blockId ? "error" : "select")) selected = null;
    drawGraph();
  }

  // ---------------------------------------------------------------- editor
  const errors = createErrorBox({ testid: "definition-error", messageTestid: "definition-error-message", subject: "Block", field: "block" });
  const status = h("span", { class: "muted small", testid: "definition-status" });
  const saveButton = h("button", { type: "button", class: "primary", testid: "definition-save" }, "Save");
  const revertButton = h("button", { type: "button", testid: "definition-revert" }, "Revert");
  const editor = createJsonEditor({
    text: ctx.drafts.get(worklet.id) ?? savedText,
    testid: "definition-editor",
    label: "Worklet definition (JSON)",
    onChange: changed,
    onSave: save,
  });
  const editorCard = h(
    "section",
    { class: "card editor-card" },
    h("header", { class: "card-header" }, h("h2", {}, "Definition"), status, h("span", { class: "push" }), revertButton, saveButton),
    errors.element,
    editor.element,
  );

  function updateStatus() {
    const dirty = editor.getText() !== savedText;
    status.textContent = dirty ? "unsaved changes" : `version ${worklet.version} · saved`;
    status.classList.toggle("dirty", dirty);
    revertButton.disabled = !dirty;
    if (dirty) ctx.drafts.set(worklet.id, editor.getText());
    else ctx.drafts.delete(worklet.id);
  }

  function changed() {
    updateStatus();
    errorBlock = null;
    clearTimeout(parseTimer);
    parseTimer = setTimeout(() => {
      const parsed = parseOrShow(editor, errors);
      if (parsed) {
        lastGood = parsed.value;
        errors.hide();
      }
      drawGraph();
    }, 250);
  }

  async function save() {
    clearTimeout(parseTimer);
    const parsed = parseOrShow(editor, errors);
    if (!parsed) return;
    lastGood = parsed.value;
    saveButton.disabled = true;
    saveButton.textContent = "Saving…";
    try {
      const saved = await ctx.registry.updateWorklet(worklet.id, parsed.value);
      worklet = saved;
      savedText = definitionText(saved.definition);
      lastGood = saved.definition;
      errorBlock = null;
      errors.hide();
      editor.setText(savedText);
      title.textContent = saved.name;
      updateStatus();
      renderMeta();
      testPanel.setWorklet(saved);
      drawGraph();
      toast(`Saved version ${saved.version}`);
      await ctx.refreshSidebar();
    } catch (err) {
      errorBlock = err.block || null;
      errors.show(err.message, { at: errorBlock });
      if (errorBlock) {
        selected = errorBlock;
        editor.markObject(errorBlock, "error");
      }
      drawGraph();
    } finally {
      saveButton.disabled = false;
      saveButton.textContent = "Save";
    }
  }

  saveButton.addEventListener("click", save);
  revertButton.addEventListener("click", () => {
    editor.setText(savedText);
    lastGood = worklet.definition;
    errorBlock = null;
    errors.hide();
    updateStatus();
    drawGraph();
  });

  // ---------------------------------------------------------------- test panel and runs
  const runs = createRunHistory(ctx, worklet);
  const testPanel = createTestPanel(ctx, worklet, {
    onSelectBlock: selectBlock,
    onFinished: ({ runId, trace }) => {
      ranBlocks = Array.isArray(trace) ? new Map(trace.map((step) => [step.block, step.error ? "failed" : "ok"])) : null;
      drawGraph();
      runs.expect(runId);
    },
  });

  settingsButton.addEventListener("click", () => ctx.openSettings(worklet));

  main.replaceChildren(
    h(
      "div",
      { class: "worklet-page", testid: "worklet-page", "data-id": worklet.id },
      header,
      h("div", { class: "area-graph" }, graphCard),
      h("div", { class: "area-editor" }, editorCard),
      h("div", { class: "area-test" }, testPanel.element),
      h("div", { class: "area-runs" }, runs.element),
    ),
  );
  renderMeta();
  updateStatus();
  if (ctx.drafts.has(worklet.id)) changed();
  drawGraph();

  // the Settings dialog or a rename changed this worklet: show the new version
  ctx.pageHooks.workletChanged = async (changedId) => {
    if (changedId !== worklet.id) return;
    try {
      const fresh = await ctx.registry.worklet(worklet.id);
      const dirty = editor.getText() !== savedText;
      worklet = fresh;
      savedText = definitionText(fresh.definition);
      title.textContent = fresh.name;
      if (!dirty) {
        editor.setText(savedText);
        lastGood = fresh.definition;
        drawGraph();
      }
      updateStatus();
      renderMeta();
      testPanel.setWorklet(fresh);
    } catch {
      // deleted meanwhile: the console navigates away
    }
  };
  ctx.pageHooks.sidebarChanged = renderMeta;

  return () => {
    clearTimeout(parseTimer);
    testPanel.destroy();
    runs.destroy();
    ctx.pageHooks.workletChanged = null;
    ctx.pageHooks.sidebarChanged = null;
  };
}
