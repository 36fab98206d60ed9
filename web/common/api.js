// Fetch wrappers for the Worklets HTTP APIs (registry /v1 and gateway), shared by the console
// and views. Every error answer is JSON {"success": false, "error": {"code", "message", ...}};
// it becomes an ApiError carrying the status, code and, when present, field/block/component.

/** An HTTP or network failure. `status` is 0 when the server could not be reached. */
export class ApiError extends Error {
  constructor(message, { status = 0, code = "", field = null, block = null, component = null, body = null } = {}) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.field = field;
    this.block = block;
    this.component = component;
    this.body = body;
  }
}

/** `Authorization` header values. */
export const apiKeyAuth = (key) => `Api-Key ${key}`;
export const bearerAuth = (token) => `Bearer ${token}`;

/** Joins a base URL and a path without doubling or dropping the slash. */
export function joinUrl(base, path) {
  return `${String(base || "").replace(/\/+$/, "")}/${String(path).replace(/^\/+/, "")}`;
}

/** Encodes each id for a path segment: `path("applications", app, "views")`. */
export function path(...segments) {
  return "/" + segments.map((s) => encodeURIComponent(String(s))).join("/");
}

function errorFrom(status, body, fallback) {
  const error = body && typeof body === "object" ? body.error : null;
  if (error && typeof error === "object") {
    return new ApiError(error.message || fallback, {
      status,
      code: error.code || "",
      field: error.field ?? null,
      block: error.block ?? null,
      component: error.component ?? null,
      body,
    });
  }
  return new ApiError(fallback, { status, code: "", body });
}

/**
 * A JSON request. Resolves to `{status, body}` for a 2xx answer (body null when empty);
 * rejects with ApiError otherwise, and with ApiError status 0, code "network" when the server
 * cannot be reached. An AbortSignal's abort rejects with the AbortError untouched.
 */
export async function requestJson(url, { method = "GET", auth = null, body = undefined, headers = {}, signal } = {}) {
  const init = { method, headers: { Accept: "application/json", ...headers }, signal };
  if (auth) init.headers.Authorization = auth;
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = typeof body === "string" ? body : JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(url, init);
  } catch (err) {
    if (err && err.name === "AbortError") throw err;
    throw new ApiError(`Could not reach the server (${err && err.message ? err.message : err})`, {
      code: "network",
    });
  }
  const text = await response.text();
  let parsed = null;
  if (text) {
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = null;
    }
  }
  if (!response.ok) {
    throw errorFrom(response.status, parsed, `HTTP ${response.status} ${response.statusText}`.trim());
  }
  if (text && parsed === null && text.trim() !== "null") {
    throw new ApiError("The server answered with something other than JSON", { status: response.status });
  }
  return { status: response.status, body: parsed };
}

/**
 * The gateway, as a key of one application sees it: invoke, poll, view definitions.
 * `invoke` resolves to `{status, body}` (200 or 202); HTTP errors reject with ApiError.
 */
export function gatewayClient({ gatewayUrl = "", appId, apiKey }) {
  const auth = apiKeyAuth(apiKey);
  const url = (...segments) => joinUrl(gatewayUrl, path("applications", appId, ...segments));
  return {
    invoke(workletId, payload, { signal } = {}) {
      return requestJson(url("worklets", workletId, "invoke"), { method: "POST", auth, body: payload, signal });
    },
    async poll(workletId, runId, { signal } = {}) {
      return (await requestJson(url("worklets", workletId, runId), { auth, signal })).body;
    },
    async view(viewId, { signal } = {}) {
      return (await requestJson(url("views", viewId), { auth, signal })).body;
    },
  };
}
