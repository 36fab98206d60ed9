// The Settings dialog of a worklet: "Schedule this worklet" (frequency presets and time, or a
// cron expression; time zone; the scheduled input), "Run worklet as background task" and the
// timeout. Errors are shown next to the field that caused them (the API's `error.field`).

import { parseJson } from "./json-source.js";
import { field, h, modal, pretty, showFieldError, toast } from "./ui.js";

const DAYS = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];

const FREQUENCIES = [
  ["minutes", "Every N minutes"],
  ["hours", "Every N hours"],
  ["daily", "Every day at…"],
  ["weekly", "Every week on…"],
  ["interval", "Custom interval (30s, 1h30m…)"],
  ["once", "Once, at a date and time"],
  ["cron", "Cron expression"],
];

function pad(n) {
  return String(n).padStart(2, "0");
}

export function browserTimeZone() {
  try {
    return Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
  } catch {
    return "UTC";
  }
}

function timeZones() {
  let zones = [];
  try {
    zones = Intl.supportedValuesOf("timeZone");
  } catch {
    zones = [];
  }
  return ["UTC", ...zones.filter((z) => z !== "UTC")];
}

/** The form's preset for a stored schedule. */
export function presetOf(schedule) {
  const preset = { frequency: "daily", n: 15, time: "09:00", day: 1, cron: "", interval: "", at: "" };
  if (!schedule) return preset;
  if (schedule.every) {
    const m = /^(\d+)m$/.exec(schedule.every);
    const hr = /^(\d+)h$/.exec(schedule.every);
    if (m) return { ...preset, frequency: "minutes", n: Number(m[1]) };
    if (hr) return { ...preset, frequency: "hours", n: Number(hr[1]) };
    return { ...preset, frequency: "interval", interval: schedule.every };
  }
  if (schedule.at) {
    // shown as wall-clock time in the schedule's zone when it has no offset; else as given
    const text = String(schedule.at);
    return { ...preset, frequency: "once", at: text.slice(0, 16) };
  }
  if (schedule.cron) {
    const daily = /^(\d{1,2}) (\d{1,2}) \* \* \*$/.exec(schedule.cron);
    const weekly = /^(\d{1,2}) (\d{1,2}) \* \* ([0-7])$/.exec(schedule.cron);
    if (daily && Number(daily[1]) < 60 && Number(daily[2]) < 24) {
      return { ...preset, frequency: "daily", time: `${pad(daily[2])}:${pad(daily[1])}`, cron: schedule.cron };
    }
    if (weekly && Number(weekly[1]) < 60 && Number(weekly[2]) < 24) {
      return {
        ...preset,
        frequency: "weekly",
        time: `${pad(weekly[2])}:${pad(weekly[1])}`,
        day: Number(weekly[3]) % 7,
        cron: schedule.cron,
      };
    }
    return { ...preset, frequency: "cron", cron: schedule.cron };
  }
  return preset;
}

/** "every 15 minutes", "daily at 09:30 (Europe/Paris)"... for tooltips and headers. */
export function describeSchedule(schedule) {
  if (!schedule) return "";
  const p = presetOf(schedule);
  const zone = schedule.timezone && schedule.timezone !== "UTC" ? ` (${schedule.timezone})` : " (UTC)";
  let what;
  switch (p.frequency) {
    case "minutes":
      what = p.n === 1 ? "every minute" : `every ${p.n} minutes`;
      break;
    case "hours":
      what = p.n === 1 ? "every hour" : `every ${p.n} hours`;
      break;
    case "interval":
      what = `every ${p.interval}`;
      break;
    case "daily":
      what = `daily at ${p.time}${zone}`;
      break;
    case "weekly":
      what = `${DAYS[p.day]}s at ${p.time}${zone}`;
      break;
    case "once":
      what = `once at ${String(schedule.at).replace("T", " ")}${zone}`;
      break;
    default:
      what = `cron ${schedule.cron}${zone}`;
  }
  if (schedule.enabled === false) what += ", paused";
  return what;
}

function nextTimes(schedule) {
  const times = schedule?.next_fire_times || [];
  if (!times.length) return null;
  return h(
    "div",
    { class: "next-fires", testid: "schedule-next" },
    h("span", { class: "muted" }, "Next runs: "),
    times.slice(0, 3).map((t, i) => h("span", { class: "next-fire", title: t }, (i ? ", " : "") + new Date(t).toLocaleString())),
  );
}

/**
 * Open the Settings dialog for `worklet` ({id, name}). `ctx` is the console's context
 * (registry, refresh...). `onSaved()` runs after a successful save.
 */
export async function openSettings(ctx, worklet, { onSaved } = {}) {
  let current;
  let schedule = null;
  try {
    [current, schedule] = await Promise.all([
      ctx.registry.worklet(worklet.id),
      ctx.registry.schedule(worklet.id).catch((err) => {
        if (err.status === 404) return null;
        throw err;
      }),
    ]);
  } catch (err) {
    toast(`Could not open the settings: ${err.message}`, "error");
    return;
  }
  const definition = current.definition;
  const settings = definition.settings || {};
  const preset = presetOf(schedule);

  const { body, footer, close } = modal({ title: `Settings · ${current.name}`, testid: "settings-dialog", className: "dialog-settings" });

  // ---------------------------------------------------------------- schedule
  const enabled = h("input", { type: "checkbox", testid: "schedule-enabled", checked: Boolean(schedule) });
  const frequency = h(
    "select",
    { testid: "schedule-frequency" },
    FREQUENCIES.map(([value, label]) => h("option", { value, selected: value === preset.frequency }, label)),
  );
  const n = h("input", { type: "number", min: 1, step: 1, value: String(preset.n), testid: "schedule-every", class: "narrow" });
  const interval = h("input", { type: "text", value: preset.interval, placeholder: "30s, 15m, 1h30m", testid: "schedule-interval" });
  const time = h("input", { type: "time", value: preset.time, testid: "schedule-time", class: "narrow" });
  const day = h(
    "select",
    { testid: "schedule-day" },
    DAYS.map((name, index) => h("option", { value: String(index), selected: index === preset.day }, name)),
  );
  const at = h("input", { type: "datetime-local", value: preset.at, testid: "schedule-at" });
  const cron = h("input", {
    type: "text",
    value: preset.cron,
    placeholder: "0 9 * * 1-5",
    testid: "schedule-cron",
    class: "mono",
    spellcheck: "false",
  });
  const zoneList = h("datalist", { id: "tz-list" }, timeZones().map((z) => h("option", { value: z })));
  const timezone = h("input", {
    type: "text",
    list: "tz-list",
    value: schedule?.timezone || browserTimeZone(),
    testid: "schedule-timezone",
    spellcheck: "false",
  });
  const input = h("textarea", { rows: 4, testid: "schedule-input", class: "mono", spellcheck: "false" });
  input.value = schedule && schedule.input !== undefined && schedule.input !== null ? pretty(schedule.input) : "";
  input.placeholder = '{"name": "team"}';

  const f = {
    frequency: field({ label: "Frequency", control: frequency, name: "schedule-frequency" }),
    every: field({
      label: "Every",
      control: h("div", { class: "inline" }, n, h("span", { class: "unit", testid: "schedule-unit" }, "minutes")),
      labelFor: n,
      name: "schedule-every",
    }),
    interval: field({ label: "Interval", control: interval, name: "schedule-interval" }),
    day: field({ label: "Day", control: day, name: "schedule-day" }),
    time: field({ label: "Time", control: time, name: "schedule-time" }),
    at: field({ label: "Date and time", control: at, name: "schedule-at" }),
    cron: field({
      label: "Cron expression",
      control: cron,
      name: "schedule-cron",
      hint: "minute hour day-of-month month day-of-week (Sunday = 0)",
    }),
    timezone: field({ label: "Time zone", control: timezone, name: "schedule-timezone" }),
    input: field({
      label: "Scheduled input (JSON)",
      control: input,
      name: "schedule-input",
      hint: "The worklet_input of every scheduled run; empty means null.",
    }),
  };
  const scheduleError = h("p", { class: "form-error", testid: "schedule-error", hidden: true, role: "alert" });
  const scheduleFields = h(
    "div",
    { class: "schedule-fields", testid: "schedule-fields" },
    h("div", { class: "field-grid" }, f.frequency.row, f.every.row, f.interval.row, f.day.row, f.time.row, f.at.row, f.cron.row),
    f.timezone.row,
    f.input.row,
    nextTimes(schedule),
    scheduleError,
  );

  function syncFrequency() {
    const v = frequency.value;
    f.every.row.hidden = !(v === "minutes" || v === "hours");
    f.every.row.querySelector(".unit").textContent = v === "hours" ? "hours" : "minutes";
    f.interval.row.hidden = v !== "interval";
    f.day.row.hidden = v !== "weekly";
    f.time.row.hidden = !(v === "daily" || v === "weekly");
    f.at.row.hidden = v !== "once";
    f.cron.row.hidden = v !== "cron";
    f.timezone.row.hidden = v === "minutes" || v === "hours" || v === "interval";
    scheduleFields.hidden = !enabled.checked;
  }
  frequency.addEventListener("change", syncFrequency);
  enabled.addEventListener("change", syncFrequency);

  // ---------------------------------------------------------------- run settings
  const background = h("input", { type: "checkbox", testid: "setting-background", checked: Boolean(settings.background) });
  const timeout = h("input", {
    type: "number",
    min: 1,
    step: "any",
    value: settings.timeout ?? "",
    placeholder: "300",
    testid: "setting-timeout",
    class: "narrow",
  });
  const timeoutField = field({
    label: "Timeout (seconds)",
    control: timeout,
    name: "setting-timeout",
    hint: "Synchronous runs; empty means the platform default (300 s).",
  });
  const generalError = h("p", { class: "form-error", testid: "settings-error", hidden: true, role: "alert" });

  body.append(
    h(
      "section",
      { class: "settings-section" },
      h("label", { class: "toggle" }, enabled, h("span", {}, h("strong", {}, "Schedule this worklet"), h("span", { class: "muted" }, "Run it at a frequency and time you choose."))),
      scheduleFields,
    ),
    h(
      "section",
      { class: "settings-section" },
      h(
        "label",
        { class: "toggle" },
        background,
        h("span", {}, h("strong", {}, "Run worklet as background task"), h("span", { class: "muted" }, "Invocations answer at once with a run id to poll, and may run for longer.")),
      ),
      timeoutField.row,
    ),
    zoneList,
    generalError,
  );
  syncFrequency();

  const save = h("button", { type: "submit", class: "primary", testid: "settings-save" }, "Save");
  footer.append(h("button", { type: "button", testid: "settings-cancel", onclick: close }, "Cancel"), save);

  const slots = {
    cron: () => (frequency.value === "daily" || frequency.value === "weekly" ? f.time.error : f.cron.error),
    every: () => (frequency.value === "interval" ? f.interval.error : f.every.error),
    at: () => f.at.error,
    timezone: () => f.timezone.error,
    input: () => f.input.error,
  };

  function clearErrors() {
    for (const x of Object.values(f)) showFieldError(x.error, "");
    showFieldError(timeoutField.error, "");
    scheduleError.hidden = true;
    generalError.hidden = true;
  }

  /** The schedule body, or null after showing what is wrong next to its field. */
  function scheduleBody() {
    const v = frequency.value;
    const spec = {};
    if (v === "minutes" || v === "hours") {
      const count = Number(n.value);
      if (!Number.isInteger(count) || count < 1) {
        showFieldError(f.every.error, "Enter a whole number of at least 1.");
        return null;
      }
      spec.every = `${count}${v === "hours" ? "h" : "m"}`;
    } else if (v === "interval") {
      if (!interval.value.trim()) {
        showFieldError(f.interval.error, "Enter an interval such as 30s, 15m or 1h30m.");
        return null;
      }
      spec.every = interval.value.trim();
    } else if (v === "daily" || v === "weekly") {
      const m = /^(\d{1,2}):(\d{2})/.exec(time.value);
      if (!m) {
        showFieldError(f.time.error, "Choose a time.");
        return null;
      }
      spec.cron = `${Number(m[2])} ${Number(m[1])} * * ${v === "weekly" ? day.value : "*"}`;
    } else if (v === "once") {
      if (!at.value) {
        showFieldError(f.at.error, "Choose a date and time.");
        return null;
      }
      spec.at = at.value.length === 16 ? `${at.value}:00` : at.value;
    } else {
      if (!cron.value.trim()) {
        showFieldError(f.cron.error, "Enter a cron expression.");
        return null;
      }
      spec.cron = cron.value.trim();
    }
    spec.timezone = timezone.value.trim() || "UTC";
    if (input.value.trim()) {
      try {
        spec.input = parseJson(input.value).value;
      } catch (err) {
        showFieldError(f.input.error, `Not valid JSON: ${err.message}`);
        return null;
      }
    } else {
      spec.input = null;
    }
    // a PUT replaces the whole schedule: keep what this dialog does not show
    if (schedule) {
      for (const key of ["background", "enabled", "overlap"]) if (key in schedule) spec[key] = schedule[key];
    }
    return spec;
  }

  function settingsBody() {
    const next = { ...settings };
    if (background.checked) next.background = true;
    else delete next.background;
    const t = timeout.value.trim();
    if (t) {
      const seconds = Number(t);
      if (!Number.isFinite(seconds) || seconds <= 0) {
        showFieldError(timeoutField.error, "The timeout must be a positive number of seconds.");
        return null;
      }
      next.timeout = seconds;
    } else {
      delete next.timeout;
    }
    return next;
  }

  function sameSettings(a, b) {
    const norm = (x) => JSON.stringify({ background: Boolean(x.background), timeout: x.timeout ?? null, bt: x.background_timeout ?? null });
    return norm(a) === norm(b);
  }

  async function submit(event) {
    event?.preventDefault();
    clearErrors();
    const wantSchedule = enabled.checked;
    const spec = wantSchedule ? scheduleBody() : null;
    if (wantSchedule && !spec) return;
    const nextSettings = settingsBody();
    if (!nextSettings) return;
    save.disabled = true;
    save.textContent = "Saving…";
    try {
      // the schedule first: it is what a user most often gets wrong
      if (wantSchedule) {
        try {
          schedule = await ctx.registry.putSchedule(current.id, spec);
        } catch (err) {
          const slot = err.field && slots[err.field] ? slots[err.field]() : null;
          if (slot) showFieldError(slot, err.message);
          else {
            scheduleError.textContent = err.message;
            scheduleError.hidden = false;
          }
          return;
        }
      } else if (schedule) {
        try {
          await ctx.registry.deleteSchedule(current.id);
        } catch (err) {
          if (err.status !== 404) throw err;
        }
        schedule = null;
      }
      let saved = current;
      if (!sameSettings(settings, nextSettings)) {
        const nextDefinition = { ...definition, settings: nextSettings };
        try {
          saved = await ctx.registry.updateWorklet(current.id, nextDefinition);
        } catch (err) {
          if (/timeout/i.test(err.message)) showFieldError(timeoutField.error, err.message);
          else {
            generalError.textContent = err.message;
            generalError.hidden = false;
          }
          return;
        }
      }
      close();
      toast(wantSchedule ? `Scheduled: ${describeSchedule(schedule)}` : "Settings saved");
      await onSaved?.({ worklet: saved, schedule });
    } catch (err) {
      generalError.textContent = err.message;
      generalError.hidden = false;
    } finally {
      save.disabled = false;
      save.textContent = "Save";
    }
  }

  const form = h("form", { class: "dialog-form", onsubmit: submit });
  // the dialog's body and footer move into one form so Enter submits
  const dialogEl = body.parentElement;
  dialogEl.insertBefore(form, body);
  form.append(body, footer);
  frequency.focus();
}
