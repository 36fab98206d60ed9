// A worklet's run history (status, trigger, latency, time), newest first, with a detail view
// (input, output, error, trace) for each run.

import { renderTrace } from "./trace.js";
import { formatLatency, formatTime, fullTime, h, modal, pretty, statusBadge, toast } from "./ui.js";

const REFRESH_MS = 10_000;
const ACTIVE = new Set(["QUEUED", "RUNNING"]);

const TRIGGERS = {
  api: "API",
  api_async: "API (background)",
  schedule: "schedule",
  view: "view",
  worklet: "worklet block",
};

/** Open the detail of one run in a dialog. */
export async function openRunDetail(ctx, runId) {
  let run;
  try {
    run = await ctx.registry.run(runId);
  } catch (err) {
    toast(`Could not load run ${runId}: ${err.message}`, "error");
    return;
  }
  const { body, footer, close } = modal({ title: `Run ${run.run_id}`, testid: "run-detail", className: "dialog-wide" });
  const facts = [
    ["Status", statusBadge(run.status, { testid: "run-detail-status" })],
    ["Trigger", TRIGGERS[run.trigger] || run.trigger],
    ["Version", String(run.version)],
    ["Latency", formatLatency(run.latency_ms)],
    ["Queued", fullTime(run.queued_at)],
    ["Started", fullTime(run.started_at)],
    ["Finished", fullTime(run.finished_at)],
    ["Attempts", String(run.attempts ?? "")],
  ];
  if (run.parent_run_id) facts.push(["Parent run", run.parent_run_id]);
  if (run.schedule_id) facts.push(["Schedule", run.schedule_id]);
  body.append(
    h(
      "div",
      { class: "run-detail-body" },
    h("dl", { class: "facts" }, facts.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v || "–")])),
    h(
      "div",
      { class: "two-columns" },
      h("div", {}, h("h3", {}, "Input"), h("pre", { class: "code", testid: "run-detail-input" }, pretty(run.input ?? null))),
      h("div", {}, h("h3", {}, "Output"), h("pre", { class: "code", testid: "run-detail-output" }, pretty(run.worklet_output ?? null))),
    ),
    run.error
      ? h(
          "div",
          { class: "result-error", testid: "run-detail-error" },
          h("strong", {}, run.error.type || "Error"),
          `: ${run.error.message || ""}`,
          run.error.block ? h("span", { class: "muted" }, ` (block ${run.error.block})`) : null,
          run.error.traceback ? h("pre", { class: "code error-text" }, run.error.traceback) : null,
        )
      : null,
    h("h3", {}, "Blocks"),
    renderTrace(run.trace),
    ),
  );
  footer.append(h("button", { type: "button", onclick: close }, "Close"));
}

/**
 * createRunHistory(ctx, worklet) answers {element, expect(runId), destroy()}.
 * `expect(runId)` refreshes until that run is listed in a final state.
 */
export function createRunHistory(ctx, worklet) {
  const tbody = h("tbody", {});
  const more = h("button", { type: "button", class: "small", testid: "runs-more", hidden: true }, "Load more");
  const empty = h("p", { class: "empty", testid: "runs-empty", hidden: true }, "No runs yet. Run it from the Test panel, by API, on a schedule or from a view.");
  const status = h("span", { class: "muted small", testid: "runs-updated" });
  const refreshButton = h("button", { type: "button", class: "small", testid: "runs-refresh" }, "Refresh");
  const element = h(
    "section",
    { class: "card runs", testid: "run-history" },
    h("header", { class: "card-header" }, h("h2", {}, "Run history"), status, h("span", { class: "push" }), refreshButton),
    h(
      "div",
      { class: "table-wrap" },
      h(
        "table",
        { class: "table" },
        h(
          "thead",
          {},
          h("tr", {}, ["Status", "Trigger", "Latency", "Time", "Version", "Run"].map((c) => h("th", { scope: "col" }, c))),
        ),
        tbody,
      ),
    ),
    empty,
    more,
  );

  let rows = [];
  let cursor = null;
  let timer = null;
  let destroyed = false;
  let waiting = new Map(); // run id -> until when we expect to see it (the Test panel's runs)

  function row(run) {
    const open = () => openRunDetail(ctx, run.run_id);
    return h(
      "tr",
      {
        class: "run-row",
        testid: "run-row",
        "data-run-id": run.run_id,
        "data-status": run.status,
        "data-trigger": run.trigger,
        tabindex: 0,
        title: "Show this run",
        onclick: open,
        onkeydown: (event) => {
          if (event.key === "Enter") open();
        },
      },
      h("td", {}, statusBadge(run.status)),
      h("td", { testid: "run-trigger" }, TRIGGERS[run.trigger] || run.trigger),
      h("td", { class: "num", testid: "run-latency" }, formatLatency(run.latency_ms)),
      h("td", { title: fullTime(run.queued_at) }, formatTime(run.queued_at)),
      h("td", { class: "num" }, `v${run.version}`),
      h("td", { class: "mono small muted" }, run.run_id.slice(-10)),
    );
  }

  function render() {
    tbody.replaceChildren(...rows.map(row));
    empty.hidden = rows.length > 0;
    more.hidden = !cursor;
  }

  let sequence = 0;

  async function refresh() {
    const mine = ++sequence;
    try {
      const page = await ctx.registry.runs({ workletId: worklet.id, limit: Math.min(200, Math.max(25, rows.length)) });
      if (destroyed || mine !== sequence) return; // a newer refresh is on its way
      rows = page.items;
      cursor = page.next_cursor;
      status.textContent = `updated ${new Date().toLocaleTimeString()}`;
      render();
      for (const run of rows) if (!ACTIVE.has(run.status)) waiting.delete(run.run_id);
      for (const [runId, until] of waiting) if (Date.now() > until) waiting.delete(runId);
    } catch (err) {
      if (mine !== sequence) return;
      status.textContent = `could not load runs: ${err.message}`;
    }
    schedule();
  }

  function schedule() {
    clearTimeout(timer);
    if (destroyed) return;
    const busy = waiting.size > 0 || rows.some((r) => ACTIVE.has(r.status));
    timer = setTimeout(refresh, busy ? 1000 : REFRESH_MS);
  }

  more.addEventListener("click", async () => {
    try {
      const page = await ctx.registry.runs({ workletId: worklet.id, cursor });
      rows = rows.concat(page.items);
      cursor = page.next_cursor;
      render();
    } catch (err) {
      toast(err.message, "error");
    }
  });
  refreshButton.addEventListener("click", refresh);
  refresh();

  return {
    element,
    expect(runId) {
      waiting.set(runId, Date.now() + 30_000);
      refresh();
    },
    destroy() {
      destroyed = true;
      clearTimeout(timer);
      waiting = new Map();
    },
  };
}
