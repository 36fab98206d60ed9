// A run's per-block trace: each block's output, logs, duration and error. Used by the Test
// panel and by the run detail.

import { formatLatency, h, pretty } from "./ui.js";

function section(title, content, attrs = {}) {
  return h("div", { class: "trace-section" }, h("h4", {}, title), h("pre", { class: "code", ...attrs }, content));
}

/** A list of trace entries ({block, type, input, output, logs, duration_ms, next, error}). */
export function renderTrace(trace, { onSelect } = {}) {
  if (!Array.isArray(trace) || !trace.length) {
    return h("p", { class: "empty", testid: "trace-empty" }, "No blocks ran.");
  }
  return h(
    "ol",
    { class: "trace", testid: "trace" },
    trace.map((step, index) => {
      const failed = Boolean(step.error);
      const logs = Array.isArray(step.logs) ? step.logs : [];
      return h(
        "li",
        {
          class: ["trace-block", failed ? "trace-failed" : ""],
          testid: "trace-block",
          "data-block": step.block,
          "data-status": failed ? "error" : "ok",
        },
        h(
          "div",
          { class: "trace-head" },
          h("span", { class: "trace-index" }, String(index + 1)),
          h(
            "button",
            {
              type: "button",
              class: "link trace-name",
              title: "Show this block in the graph",
              onclick: onSelect ? () => onSelect(step.block) : null,
              disabled: !onSelect,
            },
            step.block,
          ),
          h("span", { class: "trace-type" }, step.type || ""),
          step.next ? h("span", { class: "trace-next" }, `→ ${step.next}`) : null,
          h("span", { class: "trace-duration", testid: "trace-duration" }, formatLatency(step.duration_ms)),
        ),
        failed
          ? null
          : step.type === "decision"
            ? section("Chose", step.next ? step.next : "(the run ends here)", { testid: "trace-output" })
            : section("Output", pretty(step.output ?? null), { testid: "trace-output" }),
        logs.length ? section("Logs", logs.join("\n"), { testid: "trace-logs", class: "code logs" }) : null,
        failed
          ? section(
              "Error",
              `${step.error.type || "Error"}: ${step.error.message || ""}${step.error.traceback ? `\n\n${step.error.traceback}` : ""}`,
              { testid: "trace-error", class: "code error-text" },
            )
          : null,
        step.child_run_id ? h("p", { class: "muted small" }, `child run ${step.child_run_id}`) : null,
        h("details", { class: "trace-input" }, h("summary", {}, "Input"), h("pre", { class: "code" }, pretty(step.input ?? null))),
      );
    }),
  );
}
