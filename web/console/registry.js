// The registry's /v1 API as the console uses it, for one admin API key of one application.
// Same origin as the console. Errors are api.js's ApiError (code, message, field, block...).

import { apiKeyAuth, path, requestJson } from "../static/api.js";

export class Registry {
  constructor({ key, appId = null }) {
    this.key = key;
    this.appId = appId;
  }

  async call(method, route, body) {
    const answer = await requestJson(route, {
      method,
      auth: apiKeyAuth(this.key),
      body,
    });
    return answer.body;
  }

  app(...segments) {
    return path("v1", "applications", this.appId, ...segments);
  }

  me() {
    return this.call("GET", "/v1/me");
  }

  // worklets
  worklets() {
    return this.call("GET", this.app("worklets"));
  }
  worklet(id) {
    return this.call("GET", this.app("worklets", id));
  }
  createWorklet(definition) {
    return this.call("POST", this.app("worklets"), definition);
  }
  updateWorklet(id, definition) {
    return this.call("PUT", this.app("worklets", id), definition);
  }
  deleteWorklet(id) {
    return this.call("DELETE", this.app("worklets", id));
  }

  // schedules
  schedules() {
    return this.call("GET", this.app("schedules"));
  }
  schedule(workletId) {
    return this.call("GET", this.app("worklets", workletId, "schedule"));
  }
  putSchedule(workletId, schedule) {
    return this.call("PUT", this.app("worklets", workletId, "schedule"), schedule);
  }
  deleteSchedule(workletId) {
    return this.call("DELETE", this.app("worklets", workletId, "schedule"));
  }

  // runs
  runs({ workletId, cursor, limit = 25 } = {}) {
    const query = new URLSearchParams({ limit: String(limit) });
    if (workletId) query.set("worklet_id", workletId);
    if (cursor) query.set("cursor", cursor);
    return this.call("GET", `${this.app("runs")}?${query}`);
  }
  run(runId) {
    return this.call("GET", this.app("runs", runId));
  }

  // views
  views() {
    return this.call("GET", this.app("views"));
  }
  view(id) {
    return this.call("GET", this.app("views", id));
  }
  createView(definition) {
    return this.call("POST", this.app("views"), definition);
  }
  updateView(id, definition) {
    return this.call("PUT", this.app("views", id), definition);
  }
  deleteView(id) {
    return this.call("DELETE", this.app("views", id));
  }
}
