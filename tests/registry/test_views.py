"""Views in the registry API (docs/web.md, "Views"): CRUD, every refusal, the read model."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import msgspec
import pytest
from nats.aio.client import Client
from nats.js.kv import KeyValue
from pymongo.asynchronous.database import AsyncDatabase

from shared.schemas import ChangeNotice, ViewDefinition, ViewEntry, encoder
from shared.subjects import Names
from tests.registry.definitions import definition
from tests.registry.support import client, kv_entries, kv_value, new_app
from tests.registry.test_access import assert_error
from tests.stack import Servers, Stack

Database = AsyncDatabase[dict[str, Any]]

PUBLIC_URL = "https://views.example/"  # the trailing slash is not repeated in page URLs


@pytest.fixture(scope="module")
def registry(servers: Servers, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """This module's registry knows where browsers reach the gateway."""
    with Stack(
        servers, tmp_path_factory.mktemp("views"), WORKLETS_GATEWAY_PUBLIC_URL=PUBLIC_URL
    ) as stack:
        stack.start("registry")
        yield stack


# ---------------------------------------------------------------- definitions


def component(component_id: str, type_: str, **extra: Any) -> dict[str, Any]:
    return {"id": component_id, "type": type_, **extra}


def handler(worklet: str = "greeter", input_: Any = None, **assign: str) -> dict[str, Any]:
    return {"worklet": worklet, "input": input_, "assign": assign}


def binding(worklet: str = "greeter", input_: Any = None, **extra: Any) -> dict[str, Any]:
    return {"worklet": worklet, "input": input_, **extra}


def view(name: str, *components: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"name": name, "components": list(components), **extra}


def hello_view(name: str = "hello view", worklet: str = "greeter") -> dict[str, Any]:
    """A text input, a button invoking ``worklet`` with it, and a text showing the answer."""
    return view(
        name,
        component("name_input", "text_input", label="Name", value="Ada"),
        component(
            "greet",
            "button",
            label="Greet",
            on={
                "click": handler(
                    worklet, {"name": "{{name_input.value}}"}, message="message", raw=""
                )
            },
        ),
        component("message", "text"),
        component("raw", "json"),
        title="Hello",
        description="Greets someone",
    )


async def deploy(admin: httpx.AsyncClient, app_id: str, name: str) -> str:
    made = await admin.post(f"/v1/applications/{app_id}/worklets", json=definition(name))
    assert made.status_code == 201, made.text
    worklet_id: str = made.json()["id"]
    return worklet_id


async def entry_of(kv: KeyValue, app_id: str, view_id: str) -> ViewEntry | None:
    value = await kv_value(kv, Names.view(app_id, view_id))
    return None if value is None else msgspec.json.decode(value, type=ViewEntry)


# ---------------------------------------------------------------- CRUD and the read model


async def test_view_lifecycle(
    admin: httpx.AsyncClient, app: tuple[str, str], kv: KeyValue, mongo: Database
) -> None:
    app_id, key = app
    greeter = await deploy(admin, app_id, "greeter")
    base = f"/v1/applications/{app_id}/views"

    created = await admin.post(base, json=hello_view())
    assert created.status_code == 201, created.text
    v = created.json()
    assert set(v) == {
        "id",
        "app_id",
        "name",
        "title",
        "definition",
        "url",
        "created_at",
        "updated_at",
    }
    assert (v["app_id"], v["name"], v["title"]) == (app_id, "hello view", "Hello")
    assert v["url"] == f"https://views.example/views/{app_id}/{v['id']}"
    click = v["definition"]["components"][1]["on"]["click"]
    assert click == {
        "worklet": "greeter",
        "worklet_id": greeter,
        "input": {"name": "{{name_input.value}}"},
        "assign": {"message": "message", "raw": ""},
    }
    assert v["definition"]["components"][0]["value"] == "Ada"
    assert v["definition"]["description"] == "Greets someone"

    # read back: by id, by name, with an admin key, and in the list
    assert (await admin.get(f"{base}/{v['id']}")).json() == v
    assert (await admin.get(f"{base}/hello view")).json() == v
    async with client_for(admin, key) as own:
        assert (await own.get(f"{base}/{v['id']}")).json() == v
    listed = (await admin.get(base)).json()["items"]
    assert listed == [
        {
            "id": v["id"],
            "name": "hello view",
            "title": "Hello",
            "url": v["url"],
            "updated_at": v["updated_at"],
        }
    ]

    # the read model the gateway serves
    entry = await entry_of(kv, app_id, v["id"])
    assert entry is not None
    assert (entry.app_id, entry.view_id) == (app_id, v["id"])
    assert msgspec.json.decode(encoder.encode(entry.definition)) == v["definition"]
    assert entry.definition.components[1].on["click"].worklet_id == greeter
    stored = await mongo["views"].find_one({"_id": v["id"]})
    assert stored is not None and isinstance(stored["definition"], str)

    # a rename (by the worklet's id this time) keeps the id and the page
    renamed = hello_view("renamed", worklet=greeter)
    updated = await admin.put(f"{base}/{v['id']}", json=renamed)
    assert updated.status_code == 200, updated.text
    u = updated.json()
    assert (u["id"], u["url"], u["created_at"], u["name"]) == (
        v["id"],
        v["url"],
        v["created_at"],
        "renamed",
    )
    assert u["updated_at"] > v["updated_at"]
    assert u["definition"]["components"][1]["on"]["click"]["worklet_id"] == greeter
    entry = await entry_of(kv, app_id, v["id"])
    assert entry is not None and entry.definition.name == "renamed"
    assert_error(await admin.get(f"{base}/hello view"), 404, "not_found")

    # a definition read back can be saved again as it is (worklet_id is resolved anew)
    again = await admin.put(f"{base}/{v['id']}", json=u["definition"])
    assert again.status_code == 200, again.text
    assert again.json()["definition"] == u["definition"]

    assert (await admin.delete(f"{base}/{v['id']}")).status_code == 204
    assert await entry_of(kv, app_id, v["id"]) is None
    assert_error(await admin.get(f"{base}/{v['id']}"), 404, "not_found")
    assert_error(await admin.put(f"{base}/{v['id']}", json=renamed), 404, "not_found")
    assert_error(await admin.delete(f"{base}/{v['id']}"), 404, "not_found")
    assert (await admin.get(base)).json() == {"items": []}
    assert await mongo["views"].count_documents({"app_id": app_id}) == 0


def client_for(admin: httpx.AsyncClient, key: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=str(admin.base_url), headers={"Authorization": f"Api-Key {key}"}, timeout=30
    )


async def test_names_are_unique_per_application(admin: httpx.AsyncClient) -> None:
    first, _ = await new_app(admin)
    second, _ = await new_app(admin)
    for app_id in (first, second):
        await deploy(admin, app_id, "greeter")
    made = await admin.post(f"/v1/applications/{first}/views", json=hello_view("v"))
    assert made.status_code == 201
    other = await admin.post(f"/v1/applications/{first}/views", json=hello_view("w"))
    assert other.status_code == 201
    # the same name in another application is fine
    elsewhere = await admin.post(f"/v1/applications/{second}/views", json=hello_view("v"))
    assert elsewhere.status_code == 201
    assert_error(
        await admin.post(f"/v1/applications/{first}/views", json=hello_view("v")), 409, "conflict"
    )
    assert_error(
        await admin.put(
            f"/v1/applications/{first}/views/{other.json()['id']}", json=hello_view("v")
        ),
        409,
        "conflict",
    )
    names = [
        v["name"] for v in (await admin.get(f"/v1/applications/{first}/views")).json()["items"]
    ]
    assert names == ["v", "w"]


async def test_views_are_scoped_to_their_application(
    admin: httpx.AsyncClient, registry: Stack
) -> None:
    first, _ = await new_app(admin)
    second, second_key = await new_app(admin)
    await deploy(admin, first, "greeter")
    other_greeter = await deploy(admin, second, "greeter")
    made = (await admin.post(f"/v1/applications/{first}/views", json=hello_view())).json()
    async with client(registry, f"Api-Key {second_key}") as other:
        path = f"/v1/applications/{first}/views"
        assert_error(await other.get(path), 403, "forbidden")
        assert_error(await other.get(f"{path}/{made['id']}"), 403, "forbidden")
        assert_error(await other.post(path, json=hello_view("x")), 403, "forbidden")
        assert_error(await other.delete(f"{path}/{made['id']}"), 403, "forbidden")
    # the view's id is unknown to the other application
    assert_error(await admin.get(f"/v1/applications/{second}/views/{made['id']}"), 404, "not_found")
    # a handler may not name a worklet of another application, even by its id
    refused = await admin.post(
        f"/v1/applications/{first}/views", json=hello_view("x", worklet=other_greeter)
    )
    assert assert_error(refused, 422, "invalid_definition")["component"] == "greet"


async def test_changes_are_broadcast(
    admin: httpx.AsyncClient, app: tuple[str, str], nc: Client, registry: Stack
) -> None:
    app_id, _ = app
    await deploy(admin, app_id, "greeter")
    notices: asyncio.Queue[ChangeNotice] = asyncio.Queue()

    async def collect(msg: Any) -> None:
        await notices.put(msgspec.json.decode(msg.data, type=ChangeNotice))

    sub = await nc.subscribe(Names(registry.prefix).changes(app_id), cb=collect)
    await nc.flush()
    try:
        base = f"/v1/applications/{app_id}/views"
        made = (await admin.post(base, json=hello_view())).json()
        await admin.put(f"{base}/{made['id']}", json=hello_view("again"))
        await admin.delete(f"{base}/{made['id']}")
        seen = []
        async with asyncio.timeout(10):
            while len(seen) < 3:
                notice = await notices.get()
                assert notice.app_id == app_id
                seen.append((notice.kind, notice.id, notice.action))
        assert seen == [
            ("view", made["id"], "put"),
            ("view", made["id"], "put"),
            ("view", made["id"], "delete"),
        ]
    finally:
        await sub.unsubscribe()


# ---------------------------------------------------------------- what is accepted


async def test_what_the_rules_allow(admin: httpx.AsyncClient, app: tuple[str, str]) -> None:
    app_id, _ = app
    greeter = await deploy(admin, app_id, "greeter")
    await deploy(admin, app_id, "lookup")
    body = view(
        "allowed",
        component("query", "text_input", on={"submit": handler("lookup", "{{query.value}}")}),
        component("count", "number_input", value=3, on={"change": handler()}),
        component(
            "pick",
            "select",
            options=["a", {"label": "B", "value": "b"}],
            on={"change": handler(input_=["{{pick.value}}", {"n": "{{count.value}}"}])},
        ),
        component("agree", "checkbox", value=False, on={"change": handler()}),
        # a chain of bindings, without a cycle; debounce at both limits
        component(
            "rows",
            "table",
            columns=["name"],
            binding=binding("lookup", {"q": "{{query.value}} x{{count.value}}"}, path="rows"),
        ),
        component(
            "first",
            "json",
            binding=binding(greeter, {"rows": "{{rows.value}}"}, path="0", debounce_ms=0),
        ),
        component("pic", "image", binding=binding(input_="{{first.value}}", debounce_ms=60000)),
        # braces that are not placeholders are copied as text
        component("note", "text", value="{{ not checked"),
    )
    made = await admin.post(f"/v1/applications/{app_id}/views", json=body)
    assert made.status_code == 201, made.text
    components = made.json()["definition"]["components"]
    assert components[0]["on"]["submit"]["worklet_id"] != greeter
    assert components[5]["binding"]["worklet_id"] == greeter
    assert components[5]["binding"]["debounce_ms"] == 0
    assert components[2]["options"] == ["a", {"label": "B", "value": "b"}]
    # an empty view is a view too
    empty = await admin.post(f"/v1/applications/{app_id}/views", json=view("empty"))
    assert empty.status_code == 201, empty.text


# ---------------------------------------------------------------- every refusal


@dataclass(frozen=True)
class Bad:
    """A view that must be refused: the component named, and words of the message."""

    rule: str
    body: dict[str, Any]
    component: str | None
    says: str


def text(component_id: str = "out") -> dict[str, Any]:
    return component(component_id, "text")


BAD: list[Bad] = [
    Bad("empty component id", view("v", text(), component("", "text")), "", "component 1"),
    Bad("id starts with a digit", view("v", text("1st")), "1st", "must start with"),
    Bad("id with a dash", view("v", text("a-b")), "a-b", "must start with"),
    Bad("id with a dot", view("v", text("a.b")), "a.b", "must start with"),
    Bad("id too long", view("v", text("a" * 65)), "a" * 65, "at most 64"),
    Bad("repeated id", view("v", text("a"), text("b"), text("a")), "a", "more than one"),
    Bad(
        "click on a text input",
        view("v", component("t", "text_input", on={"click": handler()})),
        "t",
        "'change' or 'submit'",
    ),
    Bad(
        "submit on a number input",
        view("v", component("n", "number_input", on={"submit": handler()})),
        "n",
        "'submit'",
    ),
    Bad(
        "change on a button",
        view("v", component("b", "button", on={"change": handler()})),
        "b",
        "a button fires 'click'",
    ),
    Bad(
        "submit on a select",
        view("v", component("s", "select", on={"submit": handler()})),
        "s",
        "'submit'",
    ),
    Bad(
        "click on a checkbox",
        view("v", component("c", "checkbox", on={"click": handler()})),
        "c",
        "'click'",
    ),
    Bad(
        "any event on a text",
        view("v", component("t", "text", on={"click": handler()})),
        "t",
        "a text fires no events",
    ),
    Bad(
        "an unknown event",
        view("v", component("b", "button", on={"hover": handler()})),
        "b",
        "'hover'",
    ),
    Bad(
        "handler names no worklet",
        view("v", component("b", "button", on={"click": handler("missing")})),
        "b",
        "no worklet 'missing'",
    ),
    Bad(
        "handler names an empty worklet",
        view("v", component("b", "button", on={"click": handler("")})),
        "b",
        "no worklet ''",
    ),
    Bad(
        "binding names no worklet",
        view("v", text(), component("t", "text", binding=binding("missing"))),
        "t",
        "binding of component 't' names no worklet 'missing'",
    ),
    Bad(
        "placeholder names no component",
        view("v", component("b", "button", on={"click": handler(input_="{{nope.value}}")})),
        "b",
        "names no component",
    ),
    Bad(
        "placeholder deep in the input names no component",
        view(
            "v",
            text("name"),
            component(
                "b",
                "button",
                on={"click": handler(input_={"a": [1, {"b": "hi {{nope.value}}!"}]})},
            ),
        ),
        "b",
        "{{nope.value}}",
    ),
    Bad(
        "placeholder uses another property",
        view(
            "v",
            text("name"),
            component("b", "button", on={"click": handler(input_="{{name.label}}")}),
        ),
        "b",
        "'label'",
    ),
    Bad(
        "placeholder without a property",
        view("v", text("name"), component("b", "button", on={"click": handler(input_="{{name}}")})),
        "b",
        "{{component.value}}",
    ),
    Bad(
        "placeholder with spaces",
        view(
            "v",
            text("name"),
            component("b", "button", on={"click": handler(input_="{{ name.value }}")}),
        ),
        "b",
        "must be written",
    ),
    Bad(
        "binding placeholder names no component",
        view("v", component("t", "text", binding=binding(input_={"q": "{{gone.value}}"}))),
        "t",
        "names no component",
    ),
    Bad(
        "assign target is not a component",
        view("v", component("b", "button", on={"click": handler(nowhere="")})),
        "b",
        "assigns to 'nowhere'",
    ),
    Bad(
        "binding uses its own component",
        view("v", component("t", "text_input", binding=binding(input_="{{t.value}}"))),
        "t",
        "own value",
    ),
    Bad(
        "bindings in a cycle",
        view(
            "v",
            component("a", "text", binding=binding(input_="{{b.value}}")),
            component("b", "text", binding=binding(input_="{{a.value}}")),
        ),
        "b",
        "cycle: a -> b -> a",
    ),
    Bad(
        "bindings in a longer cycle",
        view(
            "v",
            text("start"),
            component("a", "text", binding=binding(input_=["{{start.value}}", "{{b.value}}"])),
            component("b", "json", binding=binding(input_={"x": "{{c.value}}"})),
            component("c", "table", binding=binding(input_="{{a.value}}")),
        ),
        "c",
        "cycle: a -> b -> c -> a",
    ),
    Bad(
        "negative debounce",
        view("v", component("t", "text", binding=binding(debounce_ms=-1))),
        "t",
        "debounce_ms",
    ),
    Bad(
        "debounce over a minute",
        view("v", component("t", "text", binding=binding(debounce_ms=60001))),
        "t",
        "debounce_ms",
    ),
    # the body is not JSON of this shape: the message says where
    Bad(
        "unknown component type",
        view("v", text("a"), component("slide", "slider")),
        "slide",
        "at `$.components[1].type`",
    ),
    Bad(
        "unknown field in a component",
        view("v", text("a"), component("b", "text", colour="red")),
        "b",
        "unknown field `colour` - at `$.components[1]`",
    ),
    Bad(
        "unknown field in a handler",
        view("v", component("b", "button", on={"click": {"worklet": "greeter", "retry": 1}})),
        "b",
        "unknown field `retry`",
    ),
    Bad(
        "debounce of the wrong type",
        view("v", component("t", "text", binding=binding(debounce_ms="soon"))),
        "t",
        "Expected `int`, got `str`",
    ),
    Bad("components missing", {"name": "v"}, None, "missing required field `components`"),
    Bad("empty name", view(" "), None, "needs a name"),
]


@pytest.mark.parametrize("case", BAD, ids=lambda b: b.rule)
async def test_refused_view_stores_nothing(
    case: Bad, admin: httpx.AsyncClient, app: tuple[str, str], kv: KeyValue, mongo: Database
) -> None:
    app_id, _ = app
    await deploy(admin, app_id, "greeter")
    base = f"/v1/applications/{app_id}/views"
    existing = (await admin.post(base, json=hello_view("existing"))).json()

    for method, path in (("POST", base), ("PUT", f"{base}/{existing['id']}")):
        refused = await admin.request(method, path, json=case.body)
        error = assert_error(refused, 422, "invalid_definition")
        assert case.says in error["message"], error
        assert error.get("component") == case.component, error
        if case.component is not None:
            assert "component" in refused.json()["error"]

    assert await mongo["views"].count_documents({"app_id": app_id}) == 1
    assert (await admin.get(f"{base}/{existing['id']}")).json() == existing
    entry = await entry_of(kv, app_id, existing["id"])
    assert entry is not None and entry.definition.name == "existing"
    assert [v["id"] for v in (await admin.get(base)).json()["items"]] == [existing["id"]]


async def test_malformed_and_oversized_bodies(
    admin: httpx.AsyncClient, app: tuple[str, str], mongo: Database
) -> None:
    app_id, _ = app
    base = f"/v1/applications/{app_id}/views"
    malformed = await admin.post(base, content=b'{"name": "v", "components": [}')
    assert "not valid JSON" in assert_error(malformed, 422, "invalid_definition")["message"]
    assert_error(await admin.post(base, content=b""), 422, "invalid_definition")
    huge = view("huge", component("t", "text", value="x" * (1024 * 1024)))
    assert_error(await admin.post(base, json=huge), 413, "payload_too_large")
    assert await mongo["views"].count_documents({"app_id": app_id}) == 0


# ---------------------------------------------------------------- the start-up rebuild


async def test_restart_rebuilds_view_entries(
    servers: Servers, tmp_path_factory: pytest.TempPathFactory, nc: Client
) -> None:
    with Stack(servers, tmp_path_factory.mktemp("views-restart")) as stack:
        stack.start("registry")
        names = Names(stack.prefix)
        kv = await nc.jetstream().key_value(names.index_bucket)
        async with client(stack, f"Bearer {stack.admin_token}") as admin:
            app_id, _ = await new_app(admin)
            await deploy(admin, app_id, "greeter")
            kept = (await admin.post(f"/v1/applications/{app_id}/views", json=hello_view())).json()
            assert kept["url"] == f"http://127.0.0.1:8000/views/{app_id}/{kept['id']}"
        entries = await kv_entries(kv, nc, stack.prefix)
        assert names.view(app_id, kept["id"]) in entries

        # lose the view's entry, and leave one for a view MongoDB does not have
        await kv.delete(names.view(app_id, kept["id"]))
        stale = ViewEntry(
            app_id=app_id,
            view_id="gone",
            definition=ViewDefinition(name="gone", components=[]),
            updated_at=datetime.now(UTC),
        )
        await kv.put(names.view(app_id, "gone"), encoder.encode(stale))
        stack.processes["registry"].stop()
        stack.start("registry")

        assert await kv_entries(kv, nc, stack.prefix) == entries
