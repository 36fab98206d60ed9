// A JSON editor: a plain <textarea> over a backdrop that marks where an error is (a syntax
// error's line, or the block or component an API error names), with line numbers.

import { JsonSyntaxError, lineColumn, parseJson } from "./json-source.js";
import { h } from "./ui.js";

/**
 * createJsonEditor({text, testid, onChange(text), onSave()}) answers
 * {element, getText, setText, parse, markRange, markObject}.
 */
export function createJsonEditor({ text = "", testid = "editor", label = "JSON", onChange, onSave } = {}) {
  const gutter = h("div", { class: "editor-gutter", "aria-hidden": "true" });
  const backdrop = h("div", { class: "editor-backdrop", "aria-hidden": "true" });
  const textarea = h("textarea", {
    class: "editor-input",
    testid,
    spellcheck: "false",
    autocomplete: "off",
    autocapitalize: "off",
    wrap: "off",
    "aria-label": label,
  });
  textarea.value = text;
  const surface = h("div", { class: "editor-surface" }, backdrop, textarea);
  const element = h("div", { class: "editor" }, gutter, surface);

  let mark = null; // {start, end, kind}

  function render() {
    const value = textarea.value;
    // backdrop: the same text, invisible, with the marked range highlighted
    if (mark && mark.start < value.length + 1) {
      const start = Math.max(0, Math.min(mark.start, value.length));
      let end = Math.max(start, Math.min(mark.end, value.length));
      const before = value.slice(0, start);
      let inside = value.slice(start, end);
      if (!inside) {
        inside = " "; // a syntax error at the very end: still show where
        end = start;
      }
      backdrop.replaceChildren(
        before,
        h("mark", { class: `editor-mark editor-mark-${mark.kind}`, testid: "editor-highlight" }, inside),
        value.slice(end) + "\n",
      );
    } else {
      backdrop.replaceChildren(value + "\n");
    }
    // gutter: one number a line; lines of the mark flagged
    const lines = value.split("\n").length;
    let first = -1;
    let last = -1;
    if (mark) {
      first = lineColumn(value, Math.min(mark.start, value.length)).line;
      last = lineColumn(value, Math.min(Math.max(mark.end - 1, mark.start), value.length)).line;
    }
    const numbers = [];
    for (let n = 1; n <= lines; n++) {
      numbers.push(h("div", { class: n >= first && n <= last ? "gutter-line marked" : "gutter-line" }, String(n)));
    }
    gutter.replaceChildren(...numbers);
    syncScroll();
  }

  function syncScroll() {
    backdrop.scrollTop = textarea.scrollTop;
    backdrop.scrollLeft = textarea.scrollLeft;
    gutter.scrollTop = textarea.scrollTop;
  }

  textarea.addEventListener("scroll", syncScroll);
  textarea.addEventListener("input", () => {
    mark = null;
    render();
    onChange?.(textarea.value);
  });
  textarea.addEventListener("keydown", (event) => {
    if (event.key === "Tab" && !event.shiftKey && !event.altKey && !event.ctrlKey && !event.metaKey) {
      event.preventDefault();
      textarea.setRangeText("  ", textarea.selectionStart, textarea.selectionEnd, "end");
      textarea.dispatchEvent(new Event("input"));
    } else if ((event.ctrlKey || event.metaKey) && event.key.toLowerCase() === "s") {
      event.preventDefault();
      onSave?.();
    }
  });

  function reveal(offset) {
    const { line } = lineColumn(textarea.value, offset);
    const lineHeight = parseFloat(getComputedStyle(textarea).lineHeight) || 18;
    const target = (line - 1) * lineHeight - textarea.clientHeight / 3;
    textarea.scrollTop = Math.max(0, target);
    syncScroll();
  }

  const editor = {
    element,
    getText: () => textarea.value,
    setText(value) {
      textarea.value = value;
      mark = null;
      render();
    },
    /** {value, spans} or throws JsonSyntaxError (and marks where). */
    parse() {
      try {
        return parseJson(textarea.value);
      } catch (err) {
        if (err instanceof JsonSyntaxError) editor.markSyntaxError(err);
        throw err;
      }
    },
    markRange(start, end, kind = "error") {
      mark = { start, end, kind };
      render();
      reveal(start);
    },
    markSyntaxError(err) {
      const value = textarea.value;
      const lineStart = value.lastIndexOf("\n", err.offset - 1) + 1;
      let lineEnd = value.indexOf("\n", err.offset);
      if (lineEnd < 0) lineEnd = value.length;
      editor.markRange(lineStart, Math.max(lineEnd, lineStart + 1), "error");
    },
    /** Mark the object of a list whose "id" is `id`; false if the text has none. */
    markObject(id, kind = "error") {
      let spans;
      try {
        spans = parseJson(textarea.value).spans;
      } catch {
        return false;
      }
      const span = spans.get(id);
      if (!span) return false;
      editor.markRange(span.start, span.end, kind);
      return true;
    },
  };
  render();
  return editor;
}

/**
 * The box above an editor that says why its text was refused: createErrorBox({testid,
 * messageTestid, subject, field}) answers {element, show(message, {at, kind}), hide()}.
 * `at` is the block or component an API error names ("Block “x”"); it is kept in
 * `element.dataset[field]`.
 */
export function createErrorBox({ testid, messageTestid, subject, field }) {
  const element = h("div", { class: "editor-error", testid, hidden: true, role: "alert" });
  return {
    element,
    show(message, { at = null, kind = "error" } = {}) {
      element.replaceChildren(
        h("strong", {}, kind === "syntax" ? "Not valid JSON" : at ? `${subject} “${at}”` : "Not saved"),
        h("span", { testid: messageTestid }, message),
      );
      element.dataset[field] = at || "";
      element.hidden = false;
    },
    hide() {
      element.hidden = true;
      element.replaceChildren();
      element.dataset[field] = "";
    },
  };
}

/** The editor's text parsed ({value, spans}), or null once a syntax error is shown in `errors`. */
export function parseOrShow(editor, errors) {
  try {
    return editor.parse();
  } catch (err) {
    if (err instanceof JsonSyntaxError) errors.show(syntaxMessage(editor.getText(), err), { kind: "syntax" });
    return null;
  }
}

/** Describe a syntax error with its line and column. */
export function syntaxMessage(text, err) {
  const { line, column } = lineColumn(text, err.offset);
  return `JSON syntax error at line ${line}, column ${column}: ${err.message}`;
}
