// The left sidebar: the application's worklets (a clock icon on each scheduled one, a "..."
// menu with Settings, Rename and Delete) and its views.

import { describeSchedule } from "./settings.js";
import { clockIcon, dotsIcon, h } from "./ui.js";

let openMenu = null;

export function menuIsOpen() {
  return openMenu !== null;
}

export function closeMenu() {
  if (!openMenu) return;
  const { menu, button, onDocument, onKey } = openMenu;
  openMenu = null;
  menu.remove();
  button.setAttribute("aria-expanded", "false");
  button.closest(".nav-item")?.classList.remove("menu-open");
  document.removeEventListener("pointerdown", onDocument, true);
  document.removeEventListener("keydown", onKey, true);
}

/** The "..." menu of a worklet, under its button. `actions`: [{label, testid, danger, run}]. */
function showMenu(button, worklet, actions) {
  if (openMenu?.button === button) {
    closeMenu();
    return;
  }
  closeMenu();
  const items = actions.map((action) =>
    h(
      "button",
      {
        type: "button",
        role: "menuitem",
        class: ["menu-item", action.danger ? "danger-text" : ""],
        testid: action.testid,
        onclick: () => {
          closeMenu();
          action.run(worklet);
        },
      },
      action.label,
    ),
  );
  const menu = h("div", { class: "menu", role: "menu", testid: "worklet-menu", "aria-label": `Actions for ${worklet.name}` }, items);
  document.body.append(menu);
  const rect = button.getBoundingClientRect();
  menu.style.top = `${Math.round(rect.bottom + 4)}px`;
  menu.style.left = `${Math.round(Math.min(rect.left, window.innerWidth - menu.offsetWidth - 8))}px`;
  button.setAttribute("aria-expanded", "true");
  button.closest(".nav-item")?.classList.add("menu-open");
  const onDocument = (event) => {
    if (!menu.contains(event.target) && !button.contains(event.target)) closeMenu();
  };
  const onKey = (event) => {
    if (event.key === "Escape") {
      closeMenu();
      button.focus();
    } else if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      event.preventDefault();
      const index = items.indexOf(document.activeElement);
      const step = event.key === "ArrowDown" ? 1 : -1;
      items[(index + step + items.length) % items.length].focus();
    }
  };
  document.addEventListener("pointerdown", onDocument, true);
  document.addEventListener("keydown", onKey, true);
  openMenu = { menu, button, onDocument, onKey };
  items[0].focus();
}

/**
 * Render the sidebar into `container`.
 * data: {worklets, schedules (Map worklet id -> schedule), views (array or null when the
 * views API is unavailable), viewsError, route ({kind, id})}.
 * handlers: {onNewWorklet, onNewView, onSettings, onRename, onDelete}.
 */
export function renderSidebar(container, data, handlers) {
  closeMenu();
  const { worklets, schedules, views, viewsError, route } = data;
  const actions = [
    { label: "Settings", testid: "menu-settings", run: handlers.onSettings },
    { label: "Rename", testid: "menu-rename", run: handlers.onRename },
    { label: "Delete", testid: "menu-delete", danger: true, run: handlers.onDelete },
  ];

  const workletItems = worklets.map((w) => {
    const schedule = schedules.get(w.id);
    const active = route.kind === "worklet" && route.id === w.id;
    const menuButton = h(
      "button",
      {
        type: "button",
        class: "icon-button nav-menu-button",
        testid: "worklet-menu-button",
        "aria-label": `More actions for ${w.name}`,
        "aria-haspopup": "menu",
        "aria-expanded": "false",
        title: "More actions",
      },
      dotsIcon(),
    );
    menuButton.addEventListener("click", (event) => {
      event.stopPropagation();
      showMenu(menuButton, w, actions);
    });
    return h(
      "li",
      {
        class: ["nav-item", active ? "active" : ""],
        testid: "worklet-item",
        "data-id": w.id,
        "data-name": w.name,
        "data-scheduled": schedule ? "true" : "false",
      },
      h(
        "a",
        { href: `#/worklets/${encodeURIComponent(w.id)}`, class: "nav-link", "aria-current": active ? "page" : null },
        h("span", { class: "nav-name", testid: "worklet-name" }, w.name),
        schedule
          ? h(
              "span",
              { class: "clock", testid: "clock-icon", title: `Scheduled: ${describeSchedule(schedule)}` },
              clockIcon(`Scheduled: ${describeSchedule(schedule)}`),
            )
          : null,
        w.settings?.background ? h("span", { class: "nav-tag", title: "Runs as a background task" }, "bg") : null,
      ),
      menuButton,
    );
  });

  let viewsBody;
  if (views === null) {
    viewsBody = h("p", { class: "nav-empty", testid: "views-unavailable" }, viewsError || "Views are not available.");
  } else if (!views.length) {
    viewsBody = h("p", { class: "nav-empty" }, "No views yet.");
  } else {
    viewsBody = h(
      "ul",
      { class: "nav-list", testid: "view-list" },
      views.map((v) => {
        const active = route.kind === "view" && route.id === v.id;
        return h(
          "li",
          { class: ["nav-item", active ? "active" : ""], testid: "view-item", "data-id": v.id, "data-name": v.name },
          h(
            "a",
            { href: `#/views/${encodeURIComponent(v.id)}`, class: "nav-link", "aria-current": active ? "page" : null },
            h("span", { class: "nav-name" }, v.title || v.name),
          ),
        );
      }),
    );
  }

  container.replaceChildren(
    h(
      "section",
      { class: "nav-section" },
      h(
        "div",
        { class: "nav-heading" },
        h("span", {}, "Worklets"),
        h("button", { type: "button", class: "small", testid: "new-worklet", onclick: handlers.onNewWorklet }, "+ New"),
      ),
      worklets.length
        ? h("ul", { class: "nav-list", testid: "worklet-list" }, workletItems)
        : h("p", { class: "nav-empty", testid: "no-worklets" }, "No worklets yet."),
    ),
    h(
      "section",
      { class: "nav-section" },
      h(
        "div",
        { class: "nav-heading" },
        h("span", {}, "Views"),
        views === null
          ? null
          : h("button", { type: "button", class: "small", testid: "new-view", onclick: handlers.onNewView }, "+ New"),
      ),
      viewsBody,
    ),
  );
}
