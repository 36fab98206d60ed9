// The console's home: the application's worklets and views at a glance.

import { describeSchedule } from "./settings.js";
import { clockIcon, formatTime, fullTime, h } from "./ui.js";

export function renderOverview(ctx, main) {
  const worklets = ctx.worklets;
  const views = ctx.views;
  const workletRows = worklets.map((w) => {
    const schedule = ctx.schedules.get(w.id);
    return h(
      "tr",
      { testid: "overview-worklet", "data-name": w.name },
      h("td", {}, h("a", { href: `#/worklets/${encodeURIComponent(w.id)}` }, w.name)),
      h("td", { class: "num" }, `v${w.version}`),
      h("td", {}, schedule ? h("span", { class: "with-icon" }, clockIcon(), describeSchedule(schedule)) : h("span", { class: "muted" }, "–")),
      h("td", {}, w.settings?.background ? "background" : h("span", { class: "muted" }, "synchronous")),
      h("td", { title: fullTime(w.updated_at) }, formatTime(w.updated_at)),
    );
  });
  main.replaceChildren(
    h(
      "div",
      { class: "overview", testid: "overview" },
      h(
        "header",
        { class: "page-header" },
        h("div", { class: "page-title" }, h("h1", {}, ctx.appName || "Your application"), h("div", { class: "page-meta" }, h("code", { class: "muted" }, ctx.appId))),
        h("div", { class: "page-actions" }, h("button", { type: "button", class: "primary", onclick: ctx.newWorklet }, "New worklet")),
      ),
      h(
        "section",
        { class: "card" },
        h("header", { class: "card-header" }, h("h2", {}, "Worklets"), h("span", { class: "muted small" }, `${worklets.length}`)),
        worklets.length
          ? h(
              "div",
              { class: "table-wrap" },
              h(
                "table",
                { class: "table" },
                h("thead", {}, h("tr", {}, ["Name", "Version", "Schedule", "Runs as", "Updated"].map((c) => h("th", { scope: "col" }, c)))),
                h("tbody", {}, workletRows),
              ),
            )
          : h(
              "div",
              { class: "empty-state" },
              h("p", {}, "A worklet is a small workflow of blocks (Python code, decisions, calls to other worklets) with an API endpoint from the moment it exists."),
              h("button", { type: "button", class: "primary", onclick: ctx.newWorklet }, "Create your first worklet"),
            ),
      ),
      h(
        "section",
        { class: "card" },
        h("header", { class: "card-header" }, h("h2", {}, "Views"), views ? h("span", { class: "muted small" }, `${views.length}`) : null),
        views === null
          ? h("p", { class: "empty" }, ctx.viewsError || "Views are not available.")
          : views.length
            ? h(
                "div",
                { class: "table-wrap" },
                h(
                  "table",
                  { class: "table" },
                  h("thead", {}, h("tr", {}, ["Name", "Title", "Published page", "Updated"].map((c) => h("th", { scope: "col" }, c)))),
                  h(
                    "tbody",
                    {},
                    views.map((v) =>
                      h(
                        "tr",
                        { testid: "overview-view", "data-name": v.name },
                        h("td", {}, h("a", { href: `#/views/${encodeURIComponent(v.id)}` }, v.name)),
                        h("td", {}, v.title || h("span", { class: "muted" }, "–")),
                        h("td", {}, v.url ? h("a", { href: v.url, target: "_blank", rel: "noopener" }, "open ↗") : "–"),
                        h("td", { title: fullTime(v.updated_at) }, formatTime(v.updated_at)),
                      ),
                    ),
                  ),
                ),
              )
            : h("div", { class: "empty-state" }, h("p", {}, "A view is a page of inputs, buttons, tables and more that invokes worklets."), h("a", { href: "#/views/new" }, "Create a view")),
      ),
    ),
  );
  return () => {};
}
