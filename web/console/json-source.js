// Parsing JSON text while keeping track of where things are, so an error can be shown where
// it is: a syntax error's offset, and the span of each object of a list that has an "id"
// (worklet blocks, view components).

export class JsonSyntaxError extends Error {
  constructor(message, offset) {
    super(message);
    this.name = "JsonSyntaxError";
    this.offset = offset;
  }
}

/**
 * Parse `text` as JSON. Answers {value, spans}: `spans` maps the "id" of each object that is
 * an element of a list to its {start, end} offsets (the first one, if ids repeat).
 * Throws JsonSyntaxError with the offset of the first problem.
 */
export function parseJson(text) {
  let i = 0;
  const spans = new Map();

  const fail = (message, at = i) => {
    throw new JsonSyntaxError(message, Math.min(at, text.length));
  };
  const ws = () => {
    while (i < text.length) {
      const c = text.charCodeAt(i);
      if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) i++;
      else break;
    }
  };
  const describe = () => (i >= text.length ? "the end of the text" : `'${text[i]}'`);

  function string() {
    const start = i;
    i++; // opening quote
    for (;;) {
      if (i >= text.length) fail("unterminated string", start);
      const c = text[i];
      if (c === '"') break;
      if (c === "\\") {
        i += 2;
        continue;
      }
      if (c.charCodeAt(0) < 0x20) fail("control character in a string (use \\n)", i);
      i++;
    }
    i++;
    try {
      return JSON.parse(text.slice(start, i));
    } catch {
      return fail("invalid escape in a string", start);
    }
  }

  function number() {
    const match = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
    match.lastIndex = i;
    const found = match.exec(text);
    if (!found) fail(`unexpected ${describe()}`);
    i += found[0].length;
    return Number(found[0]);
  }

  function value(inList) {
    ws();
    if (i >= text.length) fail("unexpected end of the text: a value is missing");
    const c = text[i];
    if (c === "{") return object(inList);
    if (c === "[") return list();
    if (c === '"') return string();
    if (c === "-" || (c >= "0" && c <= "9")) return number();
    for (const [word, result] of [["true", true], ["false", false], ["null", null]]) {
      if (text.startsWith(word, i)) {
        i += word.length;
        return result;
      }
    }
    return fail(`unexpected ${describe()}: expected a value`);
  }

  function object(inList) {
    const start = i;
    i++;
    const result = {};
    ws();
    if (text[i] === "}") {
      i++;
      return result;
    }
    for (;;) {
      ws();
      if (text[i] !== '"') fail(`unexpected ${describe()}: expected a "key" in quotes`);
      const key = string();
      ws();
      if (text[i] !== ":") fail(`unexpected ${describe()}: expected ':' after "${key}"`);
      i++;
      const item = value(false);
      Object.defineProperty(result, key, { value: item, enumerable: true, writable: true, configurable: true });
      ws();
      if (text[i] === ",") {
        i++;
        ws();
        if (text[i] === "}") fail("a comma before '}' (trailing commas are not JSON)");
        continue;
      }
      if (text[i] === "}") {
        i++;
        break;
      }
      fail(`unexpected ${describe()}: expected ',' or '}'`);
    }
    if (inList && typeof result.id === "string" && !spans.has(result.id)) {
      spans.set(result.id, { start, end: i });
    }
    return result;
  }

  function list() {
    i++;
    const result = [];
    ws();
    if (text[i] === "]") {
      i++;
      return result;
    }
    for (;;) {
      result.push(value(true));
      ws();
      if (text[i] === ",") {
        i++;
        ws();
        if (text[i] === "]") fail("a comma before ']' (trailing commas are not JSON)");
        continue;
      }
      if (text[i] === "]") {
        i++;
        return result;
      }
      fail(`unexpected ${describe()}: expected ',' or ']'`);
    }
  }

  const result = value(false);
  ws();
  if (i < text.length) fail(`unexpected ${describe()} after the end of the JSON value`);
  return { value: result, spans };
}

/** 1-based line and column of an offset. */
export function lineColumn(text, offset) {
  const before = text.slice(0, offset);
  const line = before.split("\n").length;
  const column = offset - before.lastIndexOf("\n");
  return { line, column };
}
