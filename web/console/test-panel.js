// The Test panel of a worklet: input JSON, Run (invoke through the gateway with
// "trace": true), then each block's output, logs and duration. A background run (the
// worklet's setting, or "in background" ticked, or a 504) shows its status updating until it
// ends, then its trace from the run record.

import { ApiError, gatewayClient } from "../static/api.js";
import { parseJson } from "./json-source.js";
import { renderTrace } from "./trace.js";
import { formatLatency, h, pretty, showFieldError, statusBadge } from "./ui.js";

const TERMINAL = new Set(["SUCCEEDED", "FAILED", "TIMED_OUT", "CANCELLED"]);
const POLL_MS = 500;
const RECORD_TRIES = 40; // the run record lands shortly after the run ends

function wait(ms, signal) {
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      clearTimeout(timer);
      reject(new DOMException("aborted", "AbortError"));
    };
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal.addEventListener("abort", onAbort, { once: true });
  });
}

/**
 * createTestPanel(ctx, worklet, {onFinished({runId, trace}), onSelectBlock})
 * answers {element, destroy}. ctx: {gatewayUrl, appId, apiKey, registry}.
 */
export function createTestPanel(ctx, worklet, { onFinished, onSelectBlock } = {}) {
  const storageKey = `worklets.console.test-input.${worklet.id}`;
  const input = h("textarea", {
    class: "mono",
    rows: 5,
    testid: "test-input",
    spellcheck: "false",
    "aria-label": "Test input (JSON)",
  });
  input.value = sessionStorage.getItem(storageKey) ?? "{}";
  const inputError = h("p", { class: "field-error", testid: "test-input-error", hidden: true, role: "alert" });
  const background = h("input", { type: "checkbox", testid: "test-async" });
  const run = h("button", { type: "button", class: "primary", testid: "test-run" }, "Run");
  const result = h("div", { class: "test-result", testid: "test-result", hidden: true });
  const controller = new AbortController();
  let current = null; // the AbortController of the run being shown

  const backgroundNote = h("span", { class: "muted small", testid: "test-background-note" });
  function setBackgroundNote(isBackground) {
    backgroundNote.textContent = isBackground ? "This worklet runs as a background task." : "";
  }
  setBackgroundNote(Boolean(worklet.settings?.background));

  const element = h(
    "section",
    { class: "card test-panel", testid: "test-panel" },
    h("header", { class: "card-header" }, h("h2", {}, "Test"), backgroundNote),
    h(
      "div",
      { class: "field" },
      h("label", { for: "test-input" }, "Input (JSON)"),
      Object.assign(input, { id: "test-input" }),
      inputError,
    ),
    h(
      "div",
      { class: "row" },
      run,
      h("label", { class: "check", title: "Invoke with \"async\": true and follow the run until it ends" }, background, " Run in background"),
    ),
    result,
  );

  function show({ status, latency, runId, output, error, trace, traceNote, history }) {
    result.hidden = false;
    const parts = [
      h(
        "div",
        { class: "result-head" },
        statusBadge(status, { testid: "test-status" }),
        h("span", { class: "muted", testid: "test-latency" }, latency !== undefined && latency !== null ? formatLatency(latency) : ""),
        runId ? h("span", { class: "run-id muted small", testid: "test-run-id", title: runId }, runId) : null,
      ),
    ];
    if (history && history.length) {
      parts.push(
        h(
          "ol",
          { class: "status-history", testid: "test-status-history" },
          history.map((step) => h("li", { "data-status": step.status }, h("span", { class: "history-status" }, step.status), h("span", { class: "muted small" }, step.at))),
        ),
      );
    }
    if (error) {
      parts.push(
        h(
          "div",
          { class: "result-error", testid: "test-error" },
          h("strong", {}, error.type || error.code || "Error"),
          ": ",
          error.message || "",
          error.block ? h("span", { class: "muted" }, ` (block ${error.block})`) : null,
        ),
      );
    }
    if (output !== undefined) {
      parts.push(h("h3", {}, "Output"), h("pre", { class: "code", testid: "test-output" }, pretty(output)));
    }
    if (trace) {
      parts.push(h("h3", {}, "Blocks"), renderTrace(trace, { onSelect: onSelectBlock }));
    } else if (traceNote) {
      parts.push(h("p", { class: "muted small", testid: "trace-note" }, traceNote));
    }
    result.replaceChildren(...parts);
  }

  async function traceFromRecord(runId, signal) {
    for (let i = 0; i < RECORD_TRIES; i++) {
      try {
        const record = await ctx.registry.run(runId);
        if (TERMINAL.has(record.status)) return record;
      } catch (err) {
        if (!(err instanceof ApiError) || (err.status !== 404 && err.status !== 503 && err.status !== 0)) throw err;
      }
      await wait(POLL_MS, signal);
    }
    return null;
  }

  async function follow(gateway, runId, signal) {
    const time = () => new Date().toLocaleTimeString();
    const history = [{ status: "QUEUED", at: time() }];
    let last = { status: "QUEUED" };
    show({ status: "QUEUED", runId, history, traceNote: "Waiting for the run to end…" });
    for (;;) {
      let answer = null;
      try {
        answer = await gateway.poll(worklet.id, runId, { signal });
      } catch (err) {
        if (err.name === "AbortError") throw err;
        if (!(err instanceof ApiError) || (err.status !== 503 && err.status !== 0)) throw err;
      }
      if (answer && answer.status !== last.status) {
        last = answer;
        history.push({ status: answer.status, at: time() });
        show({
          status: answer.status,
          runId,
          history,
          latency: answer.latency_ms,
          output: TERMINAL.has(answer.status) ? answer.worklet_output ?? null : undefined,
          error: answer.error,
          traceNote: TERMINAL.has(answer.status) ? "Loading the trace…" : answer.message,
        });
      }
      if (answer && TERMINAL.has(answer.status)) break;
      await wait(POLL_MS, signal);
    }
    const record = await traceFromRecord(runId, signal);
    const trace = record ? record.trace : null;
    show({
      status: last.status,
      runId,
      history,
      latency: last.latency_ms,
      output: last.worklet_output ?? null,
      error: last.error,
      trace,
      traceNote: trace ? null : "The run's record is not available yet; see the run history.",
    });
    return trace;
  }

  async function start() {
    showFieldError(inputError, "");
    let value;
    try {
      value = input.value.trim() ? parseJson(input.value).value : null;
    } catch (err) {
      showFieldError(inputError, `Not valid JSON: ${err.message}`);
      return;
    }
    sessionStorage.setItem(storageKey, input.value);
    if (!ctx.gatewayUrl) {
      show({ status: "FAILED", error: { code: "config", message: "The gateway's URL is unknown (config.json), so the console cannot invoke." } });
      return;
    }
    current?.abort();
    const mine = new AbortController();
    current = mine;
    const signal = AbortSignal.any([controller.signal, mine.signal]);
    run.disabled = true;
    run.textContent = "Running…";
    show({ status: "RUNNING", traceNote: "Invoking…" });
    const gateway = gatewayClient({ gatewayUrl: ctx.gatewayUrl, appId: ctx.appId, apiKey: ctx.apiKey });
    let runId = null;
    let trace = null;
    try {
      const payload = { worklet_input: value, trace: true };
      if (background.checked) payload.async = true;
      let answer;
      try {
        answer = await gateway.invoke(worklet.id, payload, { signal });
      } catch (err) {
        if (err instanceof ApiError && err.status === 504 && err.body?.run_id) {
          // the wait ran out, the run goes on: follow it to its end
          runId = err.body.run_id;
          trace = await follow(gateway, runId, signal);
          return;
        }
        throw err;
      }
      const body = answer.body || {};
      if (answer.status === 202) {
        runId = body.scheduled_worklet_run_id;
        trace = await follow(gateway, runId, signal);
        return;
      }
      runId = body.run_id;
      trace = body.trace || [];
      show({
        status: body.success ? "SUCCEEDED" : "FAILED",
        latency: body.latency_ms,
        runId,
        output: body.success ? body.worklet_output : undefined,
        error: body.success ? null : body.error,
        trace,
      });
    } catch (err) {
      if (err.name === "AbortError") return;
      show({ status: "FAILED", runId, error: { code: err.code, message: err.message } });
    } finally {
      if (current === mine) {
        run.disabled = false;
        run.textContent = "Run";
        current = null;
      }
      if (runId && !signal.aborted) onFinished?.({ runId, trace });
    }
  }

  run.addEventListener("click", start);
  input.addEventListener("keydown", (event) => {
    if ((event.ctrlKey || event.metaKey) && event.key === "Enter") {
      event.preventDefault();
      start();
    }
  });

  return {
    element,
    setWorklet(next) {
      worklet = next;
      setBackgroundNote(Boolean(next.settings?.background));
    },
    destroy: () => controller.abort(),
  };
}
