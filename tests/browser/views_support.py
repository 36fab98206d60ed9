"""What the view tests share: an application with an ``admin`` and an ``invoke`` key, worklets
and views, all made through the registry API, and a few look-ups of runs."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.stack import Stack, code_worklet

TERMINAL = {"SUCCEEDED", "FAILED", "TIMED_OUT", "CANCELLED"}
SLOW_SECONDS = 5

# A small picture for the image component, as a data: URL (an image any page can show).
BADGE = (
    "data:image/svg+xml;utf8,"
    "<svg xmlns='http://www.w3.org/2000/svg' width='220' height='64' viewBox='0 0 220 64'>"
    "<rect width='220' height='64' rx='10' fill='%233056d3'/>"
    "<text x='110' y='40' font-family='sans-serif' font-size='20' fill='white' "
    "text-anchor='middle'>{label}</text></svg>"
)

WORKLETS: list[dict[str, Any]] = [
    # Rows of orders; `count` must arrive as a number (a "{{count.value}}" template keeps types).
    code_worklet(
        "orders",
        f"""
BADGE = {BADGE!r}

def main(block_input):
    customer = block_input["customer"]
    count = block_input["count"]
    if not isinstance(count, int) or isinstance(count, bool):
        raise TypeError(f"count should be a number, got {{count!r}}")
    region = block_input.get("region") or "any"
    rows = [
        {{"id": n + 1, "customer": customer, "region": region, "total": round(12.5 * (n + 1), 2)}}
        for n in range(count)
    ]
    if block_input.get("refunds"):
        rows.append({{"id": 0, "customer": customer, "region": region, "total": -5.0}})
    return {{
        "rows": rows,
        "summary": {{"count": len(rows), "total": sum(r["total"] for r in rows)}},
        "note": block_input.get("note", ""),
        "badge": BADGE.format(label=f"{{len(rows)}} orders"),
    }}
""",
    ),
    # A look-up that takes its time when asked to: an older request answered after a newer one.
    code_worklet(
        "lookup",
        f"""
import time

def main(block_input):
    q = block_input["q"]
    if q == "slow":
        time.sleep({SLOW_SECONDS})
    return {{"text": f"result for {{q}}", "length": len(q)}}
""",
    ),
    code_worklet(
        "fails",
        """
def main(block_input):
    raise ValueError(f"no such customer: {block_input['name']}")
""",
    ),
    # "Run worklet as background task": the gateway answers 202 and the view polls the run.
    code_worklet(
        "report",
        """
import time

def main(block_input):
    time.sleep(1)
    return {"status": "done", "pages": block_input["pages"]}
""",
        background=True,
    ),
]


@dataclass
class ViewApp:
    """An application of the stack, its two keys and its worklets (name -> id)."""

    stack: Stack
    app_id: str
    admin_key: str
    invoke_key: str
    worklets: dict[str, str] = field(default_factory=dict)

    def client(self, key: str | None = None) -> httpx.Client:
        return httpx.Client(
            base_url=self.stack.registry_url,
            headers={"Authorization": f"Api-Key {key or self.admin_key}"},
            timeout=30,
        )

    def create_view(self, definition: dict[str, Any]) -> dict[str, Any]:
        with self.client() as client:
            r = client.post(f"/v1/applications/{self.app_id}/views", json=definition)
        assert r.status_code == 201, r.text
        view: dict[str, Any] = r.json()
        return view

    def runs(self, worklet: str) -> list[dict[str, Any]]:
        with self.client() as client:
            r = client.get(
                f"/v1/applications/{self.app_id}/runs",
                params={"worklet_id": self.worklets[worklet], "limit": 100},
            )
        r.raise_for_status()
        items: list[dict[str, Any]] = r.json()["items"]
        return items

    def wait_for_run(self, run_id: str, timeout: float = 30) -> dict[str, Any]:
        """The run's record once it has ended (the registry stores a run when it ends)."""
        deadline = time.monotonic() + timeout
        with self.client() as client:
            while True:
                r = client.get(f"/v1/applications/{self.app_id}/runs/{run_id}")
                if r.status_code == 200 and r.json()["status"] in TERMINAL:
                    run: dict[str, Any] = r.json()
                    return run
                assert r.status_code in (200, 404), r.text
                assert time.monotonic() < deadline, f"run {run_id} did not end in {timeout} s"
                time.sleep(0.1)  # the polling interval of a client, not synchronisation


def make_view_app(stack: Stack) -> ViewApp:
    """A fresh application with keys of both roles and the worklets above."""
    with stack.admin() as admin:
        app = admin.post("/v1/applications", json={"name": "views"})
        assert app.status_code == 201, app.text
        app_id = app.json()["id"]
        keys = {}
        for role in ("admin", "invoke"):
            r = admin.post(
                f"/v1/applications/{app_id}/api-keys", json={"name": f"{role} key", "role": role}
            )
            assert r.status_code == 201, r.text
            assert r.json()["role"] == role
            keys[role] = r.json()["key"]
    views = ViewApp(stack, app_id, keys["admin"], keys["invoke"])
    for definition in WORKLETS:
        views.worklets[definition["name"]] = stack.deploy(app_id, definition)["id"]
    return views
