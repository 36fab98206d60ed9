"""Small HTTP clients for the registry (management API) and the gateway (invoke and poll).

Both turn the platform's JSON errors (``{"success": false, "error": {"code", "message"}}``)
and connection failures into ``ApiError``, whose text is what a user should read.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any, Self

import httpx

Json = dict[str, Any]


class ApiError(Exception):
    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        block: str | None = None,
        field: str | None = None,
        run_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.block = block
        self.field = field
        self.run_id = run_id

    def __str__(self) -> str:
        text = f"{self.code}: {self.message}" if self.code else self.message
        if self.block:
            text += f" (block `{self.block}`)"
        if self.field:
            text += f" (field `{self.field}`)"
        if self.run_id:
            text += f" (run {self.run_id})"
        return text


def _error_of(response: httpx.Response) -> ApiError:
    try:
        body = response.json()
    except ValueError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        return ApiError(
            str(error.get("message", "")),
            status=response.status_code,
            code=str(error.get("code", "")) or None,
            block=error.get("block"),
            field=error.get("field"),
            run_id=body.get("run_id") if isinstance(body, dict) else None,
        )
    text = response.text.strip()[:500] or response.reason_phrase
    return ApiError(f"HTTP {response.status_code}: {text}", status=response.status_code)


class _Client:
    service = "service"

    def __init__(self, base_url: str, headers: dict[str, str], timeout: float) -> None:
        self.base_url = base_url
        self._http = httpx.Client(base_url=base_url, headers=headers, timeout=timeout)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def request(self, method: str, path: str, ok: tuple[int, ...], **kwargs: Any) -> Any:
        """Send; return the decoded body (None when empty) if the status is in ``ok``."""
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TimeoutException as err:
            raise ApiError(f"the {self.service} at {self.base_url} did not answer: {err}") from None
        except httpx.HTTPError as err:
            raise ApiError(
                f"cannot reach the {self.service} at {self.base_url} ({err}); "
                "is `worklets dev` running?"
            ) from None
        if response.status_code not in ok:
            raise _error_of(response)
        return response.json() if response.content else None


class Registry(_Client):
    """The management API; authenticates with the admin token, else with an admin API key."""

    service = "registry"

    def __init__(
        self,
        base_url: str,
        *,
        admin_token: str | None = None,
        api_key: str | None = None,
        timeout: float = 30.0,
    ) -> None:
        headers = {}
        if admin_token:
            headers["Authorization"] = f"Bearer {admin_token}"
        elif api_key:
            headers["Authorization"] = f"Api-Key {api_key}"
        super().__init__(base_url, headers, timeout)

    # applications and keys
    def list_applications(self) -> list[Json]:
        items: list[Json] = self.request("GET", "/v1/applications", (200,))["items"]
        return items

    def get_application(self, app: str) -> Json:
        found: Json = self.request("GET", f"/v1/applications/{app}", (200,))
        return found

    def create_application(self, name: str) -> Json:
        created: Json = self.request("POST", "/v1/applications", (201,), json={"name": name})
        return created

    def create_api_key(self, app: str, name: str, role: str = "admin") -> Json:
        body = {"name": name, "role": role}
        created: Json = self.request("POST", f"/v1/applications/{app}/api-keys", (201,), json=body)
        return created

    # worklets
    def list_worklets(self, app: str) -> list[Json]:
        items: list[Json] = self.request("GET", f"/v1/applications/{app}/worklets", (200,))["items"]
        return items

    def get_worklet(self, app: str, worklet_id: str) -> Json:
        found: Json = self.request("GET", f"/v1/applications/{app}/worklets/{worklet_id}", (200,))
        return found

    def create_worklet(self, app: str, definition: Json) -> Json:
        path = f"/v1/applications/{app}/worklets"
        created: Json = self.request("POST", path, (201,), json=definition)
        return created

    def update_worklet(self, app: str, worklet_id: str, definition: Json) -> Json:
        path = f"/v1/applications/{app}/worklets/{worklet_id}"
        updated: Json = self.request("PUT", path, (200,), json=definition)
        return updated

    def resolve_worklet(self, app: str, worklet: str) -> Json:
        """The list entry of the worklet whose id, else whose name, is ``worklet``."""
        return find_worklet(self.list_worklets(app), app, worklet)

    # schedules
    def put_schedule(self, app: str, worklet_id: str, schedule: Json) -> Json:
        """Create or replace the worklet's schedule."""
        path = f"/v1/applications/{app}/worklets/{worklet_id}/schedule"
        answer: Json = self.request("PUT", path, (200, 201), json=schedule)
        return answer

    def get_schedule(self, app: str, worklet_id: str) -> Json:
        path = f"/v1/applications/{app}/worklets/{worklet_id}/schedule"
        found: Json = self.request("GET", path, (200,))
        return found

    def delete_schedule(self, app: str, worklet_id: str) -> None:
        self.request("DELETE", f"/v1/applications/{app}/worklets/{worklet_id}/schedule", (204,))

    def list_schedules(self, app: str) -> list[Json]:
        items: list[Json] = self.request("GET", f"/v1/applications/{app}/schedules", (200,))[
            "items"
        ]
        return items

    # runs
    def list_runs(
        self,
        app: str,
        *,
        worklet_id: str | None,
        status: str | None,
        limit: int,
        schedule_id: str | None = None,
    ) -> list[Json]:
        params: dict[str, str | int] = {"limit": limit}
        if worklet_id:
            params["worklet_id"] = worklet_id
        if status:
            params["status"] = status
        if schedule_id:
            params["schedule_id"] = schedule_id
        path = f"/v1/applications/{app}/runs"
        items: list[Json] = self.request("GET", path, (200,), params=params)["items"]
        return items


class Gateway(_Client):
    """The public invoke API, authenticated with an API key."""

    service = "gateway"

    def __init__(self, base_url: str, api_key: str, timeout: float = 330.0) -> None:
        super().__init__(base_url, {"Authorization": f"Api-Key {api_key}"}, timeout)

    def invoke(
        self, app: str, worklet_id: str, worklet_input: Any, *, background: bool, trace: bool
    ) -> Json:
        """200 (finished, successfully or not) or 202 (queued); anything else raises."""
        body = {"worklet_input": worklet_input, "async": background, "trace": trace}
        path = f"/applications/{app}/worklets/{worklet_id}/invoke"
        answer: Json = self.request("POST", path, (200, 202), json=body)
        return answer

    def poll(self, app: str, worklet_id: str, run_id: str) -> Json:
        path = f"/applications/{app}/worklets/{worklet_id}/{run_id}"
        answer: Json = self.request("GET", path, (200,))
        return answer


def find_worklet(items: list[Json], app: str, worklet: str) -> Json:
    """The entry of ``items`` (a worklet list) whose id, else whose name, is ``worklet``."""
    for key in ("id", "name"):
        for item in items:
            if item.get(key) == worklet:
                return item
    raise ApiError(f"no worklet `{worklet}` in application {app}", code="not_found")
