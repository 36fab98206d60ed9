"""Schedules: the registry API, its refusals, the key-value entry the scheduler follows, the
last scheduled runs read back from run records, and the rebuild of the entries at start-up."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import msgspec
import pytest
from nats.aio.client import Client
from nats.js.kv import KeyValue
from pymongo.asynchronous.database import AsyncDatabase

from services.common.ids import slot_run_id
from shared.schemas import ChangeNotice, RunCancelled, RunError, ScheduleEntry, ScheduleSpec
from shared.subjects import Names
from tests.registry.definitions import definition
from tests.registry.support import client, eventually, kv_entries, kv_value, new_app, publish
from tests.registry.test_access import assert_error
from tests.registry.test_restart import restart
from tests.registry.test_runs import Run
from tests.stack import Servers, Stack

Database = AsyncDatabase[dict[str, Any]]

ANSWER_FIELDS = {
    "worklet_id",
    "worklet_name",
    "schedule_id",
    "timezone",
    "input",
    "background",
    "enabled",
    "overlap",
    "next_fire_times",
    "last_run",
    "skipped",
    "created_at",
    "updated_at",
}


async def new_worklet(admin: httpx.AsyncClient, app_id: str, name: str) -> str:
    created = await admin.post(f"/v1/applications/{app_id}/worklets", json=definition(name))
    assert created.status_code == 201, created.text
    worklet_id: str = created.json()["id"]
    return worklet_id


def schedule_path(app_id: str, worklet: str) -> str:
    return f"/v1/applications/{app_id}/worklets/{worklet}/schedule"


async def entry_of(kv: KeyValue, app_id: str, worklet_id: str) -> ScheduleEntry | None:
    value = await kv_value(kv, Names.schedule(app_id, worklet_id))
    return None if value is None else msgspec.json.decode(value, type=ScheduleEntry)


def when(text: str) -> datetime:
    return datetime.fromisoformat(text)


def iso(moment: datetime) -> str:
    return moment.isoformat()


@asynccontextmanager
async def notices_of(nc: Client, prefix: str, app_id: str) -> AsyncIterator[list[ChangeNotice]]:
    """The change notices of ``app_id`` received while inside."""
    seen: list[ChangeNotice] = []

    async def collect(msg: Any) -> None:
        seen.append(msgspec.json.decode(msg.data, type=ChangeNotice))

    sub = await nc.subscribe(Names(prefix).changes(app_id), cb=collect)
    await nc.flush()
    try:
        yield seen
    finally:
        await sub.unsubscribe()


# ---------------------------------------------------------------- refusals


def refusals() -> list[tuple[Any, str | None, str]]:
    """(body, error.field, a piece of the message) for each schedule the API refuses."""
    past = datetime.now(UTC) - timedelta(minutes=5)
    return [
        ({"cron": "61 * * * *"}, "cron", "bad cron expression"),
        ({"cron": "* * *"}, "cron", "Wrong number of fields"),
        ({"cron": "0 9 * * mon-fry"}, "cron", "bad cron expression"),
        ({"cron": "0 0 30 2 *"}, "cron", "never fires"),
        ({"cron": "0 9 * * *", "timezone": "Mars/Olympus_Mons"}, "timezone", "unknown time zone"),
        ({"every": "1h", "timezone": ""}, "timezone", "unknown time zone"),
        ({"every": "500ms"}, "every", "under one second"),
        ({"every": "0.5s"}, "every", "under one second"),
        ({"every": "0s"}, "every", "under one second"),
        ({"every": "soon"}, "every", "not an interval"),
        ({"every": "9" * 40 + "s"}, "every", "cannot be scheduled"),
        ({"every": "100000000d"}, "every", "cannot be scheduled"),
        ({"at": iso(past)}, "at", "in the past"),
        # without an offset, `at` is a wall-clock time of the schedule's time zone
        (
            {
                "at": past.astimezone(ZoneInfo("Asia/Tokyo")).replace(tzinfo=None).isoformat(),
                "timezone": "Asia/Tokyo",
            },
            "at",
            "in the past",
        ),
        ({"cron": "0 9 * * *", "every": "1h"}, "every", "exactly one of cron, every or at"),
        (
            {"cron": "0 9 * * *", "every": "1h", "at": "2099-01-01T00:00:00Z"},
            "at",
            "exactly one",
        ),
        ({}, "cron", "exactly one"),
        ({"timezone": "UTC"}, "cron", "got none"),
        # shape errors say where, and name the field
        ({"every": "1h", "overlap": "never"}, "overlap", "- at `$.overlap`"),
        ({"every": "1h", "at": "tomorrow"}, "at", "- at `$.at`"),
        ({"every": "1h", "enabled": "yes"}, "enabled", "Expected `bool`, got `str`"),
        ({"cron": 5}, "cron", "Expected `str | null`, got `int`"),
        ({"every": "1h", "colour": "red"}, None, "unknown field `colour`"),
        ([], None, "Expected `object`, got `array`"),
    ]


async def assert_refused(
    admin: httpx.AsyncClient, path: str, body: Any, field: str | None, message: str
) -> None:
    answer = await admin.put(path, json=body)
    error = assert_error(answer, 422, "invalid_request")
    assert message in error["message"], (body, error)
    assert error.get("field") == field, (body, error)


async def test_refusals_are_422_with_the_field_and_store_nothing(
    admin: httpx.AsyncClient, app: tuple[str, str], kv: KeyValue, mongo: Database
) -> None:
    app_id, _ = app
    worklet_id = await new_worklet(admin, app_id, "refused")
    path = schedule_path(app_id, worklet_id)

    for body, field, message in refusals():
        await assert_refused(admin, path, body, field, message)
    assert_error(await admin.get(path), 404, "not_found")
    assert await entry_of(kv, app_id, worklet_id) is None
    assert await mongo["schedules"].count_documents({"app_id": app_id}) == 0
    not_json = await admin.put(
        path, content=b"{cron:", headers={"content-type": "application/json"}
    )
    assert "not valid JSON" in assert_error(not_json, 422, "invalid_request")["message"]

    # with a schedule in place, a refused PUT leaves it as it was
    kept = await admin.put(path, json={"every": "1h", "input": {"keep": True}})
    assert kept.status_code == 201, kept.text
    entry = await kv_value(kv, Names.schedule(app_id, worklet_id))
    stored = await mongo["schedules"].find_one({"_id": worklet_id})
    for body, field, message in refusals():
        await assert_refused(admin, path, body, field, message)
    again = (await admin.get(path)).json()
    assert again == {**kept.json(), "next_fire_times": again["next_fire_times"]}
    assert await kv_value(kv, Names.schedule(app_id, worklet_id)) == entry
    assert await mongo["schedules"].find_one({"_id": worklet_id}) == stored


async def test_missing_worklet_or_schedule_is_404(
    admin: httpx.AsyncClient, app: tuple[str, str]
) -> None:
    app_id, _ = app
    nowhere = schedule_path(app_id, "no-such-worklet")
    assert_error(await admin.put(nowhere, json={"every": "1h"}), 404, "not_found")
    assert_error(await admin.get(nowhere), 404, "not_found")
    assert_error(await admin.delete(nowhere), 404, "not_found")
    # the body is checked before the worklet is looked up, as for definitions
    await assert_refused(admin, nowhere, {"every": "1ms"}, "every", "under one second")

    worklet_id = await new_worklet(admin, app_id, "unscheduled")
    missing = assert_error(await admin.get(schedule_path(app_id, worklet_id)), 404, "not_found")
    assert "no schedule" in missing["message"]
    assert_error(await admin.delete(schedule_path(app_id, worklet_id)), 404, "not_found")
    assert_error(await admin.get(f"/v1/applications/{app_id}/schedules/x"), 404, "not_found")


# ---------------------------------------------------------------- the API


async def test_put_get_delete_round_trip(
    admin: httpx.AsyncClient, app: tuple[str, str], kv: KeyValue, mongo: Database
) -> None:
    app_id, _ = app
    worklet_id = await new_worklet(admin, app_id, "nightly")
    by_id, by_name = schedule_path(app_id, worklet_id), schedule_path(app_id, "nightly")
    body = {
        "cron": "30 9 * * 1-5",
        "timezone": "Europe/Paris",
        "input": {"report": [1, 2.5, "x"], "nested": {"ok": None}},
        "overlap": "allow",
    }
    created = await admin.put(by_name, json=body)
    assert created.status_code == 201, created.text
    schedule = created.json()
    assert set(schedule) == ANSWER_FIELDS | {"cron"}
    assert schedule["worklet_id"] == worklet_id and schedule["worklet_name"] == "nightly"
    assert {k: schedule[k] for k in body} == body
    assert (schedule["background"], schedule["enabled"]) == (True, True)
    assert (schedule["last_run"], schedule["skipped"]) == (None, 0)
    assert schedule["created_at"] == schedule["updated_at"]
    assert len(schedule["next_fire_times"]) == 5
    assert len(schedule["schedule_id"]) == 12

    def same(answer: dict[str, Any], expected: dict[str, Any]) -> None:
        # next fire times move on with the clock; the rest must be equal
        assert {**answer, "next_fire_times": None} == {**expected, "next_fire_times": None}

    for path in (by_id, by_name):
        got = await admin.get(path)
        assert got.status_code == 200, got.text
        same(got.json(), schedule)

    # a PUT replaces the whole schedule; the id and the creation time stay
    replaced = await admin.put(by_id, json={"every": "15m", "enabled": False, "background": False})
    assert replaced.status_code == 200, replaced.text
    second = replaced.json()
    assert set(second) == ANSWER_FIELDS | {"every"}
    assert second["schedule_id"] == schedule["schedule_id"]
    assert second["created_at"] == schedule["created_at"]
    assert when(second["updated_at"]) > when(schedule["updated_at"])
    assert (second["every"], second["timezone"], second["input"]) == ("15m", "UTC", None)
    assert (second["enabled"], second["background"], second["overlap"]) == (False, False, "skip")
    assert second["next_fire_times"] == []  # disabled
    same((await admin.get(by_id)).json(), second)

    listed = (await admin.get(f"/v1/applications/{app_id}/schedules")).json()["items"]
    assert [item["worklet_id"] for item in listed] == [worklet_id]
    same(listed[0], second)

    deleted = await admin.delete(by_name)
    assert deleted.status_code == 204 and deleted.content == b""
    assert_error(await admin.get(by_id), 404, "not_found")
    assert_error(await admin.delete(by_id), 404, "not_found")
    assert await entry_of(kv, app_id, worklet_id) is None
    assert await mongo["schedules"].find_one({"_id": worklet_id}) is None
    assert (await admin.get(f"/v1/applications/{app_id}/schedules")).json() == {"items": []}

    # a new schedule after a delete is a new schedule
    anew = await admin.put(by_id, json={"cron": "0 0 1 1 *"})
    assert anew.status_code == 201, anew.text
    assert anew.json()["schedule_id"] != schedule["schedule_id"]


async def test_next_fire_times_of_a_cron_in_a_time_zone(
    admin: httpx.AsyncClient, app: tuple[str, str]
) -> None:
    app_id, _ = app
    worklet_id = await new_worklet(admin, app_id, "morning")
    new_york = ZoneInfo("America/New_York")
    before = datetime.now(UTC)
    answer = await admin.put(
        schedule_path(app_id, worklet_id),
        json={"cron": "0 9 * * *", "timezone": "America/New_York"},
    )
    assert answer.status_code == 201, answer.text
    after = datetime.now(UTC)
    fires = [when(text) for text in answer.json()["next_fire_times"]]

    def expected_after(now: datetime) -> list[datetime]:
        """09:00 New York time on the next five days, in New York's offset of each day."""
        today = now.astimezone(new_york).date()
        days = [today + timedelta(days=n) for n in range(7)]
        return [m for m in (datetime.combine(d, time(9), new_york) for d in days) if m > now][:5]

    expected = expected_after(before)
    assert fires in (expected, expected_after(after))  # the server's clock was in between
    assert [f.utcoffset() for f in fires] == [e.utcoffset() for e in expected]
    assert all(f.astimezone(new_york).hour == 9 for f in fires)


async def test_next_fire_times_of_a_one_off_and_of_an_interval(
    admin: httpx.AsyncClient, app: tuple[str, str], mongo: Database
) -> None:
    app_id, _ = app
    tokyo = ZoneInfo("Asia/Tokyo")
    once = await new_worklet(admin, app_id, "once")
    wall = datetime.combine(date.today() + timedelta(days=400), time(8, 30))
    answer = await admin.put(
        schedule_path(app_id, once), json={"at": wall.isoformat(), "timezone": "Asia/Tokyo"}
    )
    assert answer.status_code == 201, answer.text
    assert answer.json()["at"] == wall.isoformat()  # as written: a wall-clock time in Tokyo
    assert answer.json()["next_fire_times"] == [wall.replace(tzinfo=tokyo).isoformat()]

    # an `at` with an offset is shown in the schedule's time zone too
    utc_at = datetime(wall.year, 1, 2, 0, 0, tzinfo=UTC)
    answer = await admin.put(
        schedule_path(app_id, once),
        json={"at": utc_at.strftime("%Y-%m-%dT%H:%M:%SZ"), "timezone": "Asia/Tokyo"},
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["next_fire_times"] == [utc_at.astimezone(tokyo).isoformat()]

    # an interval's slots start at its anchor: on the hour for an anchor on the hour
    hourly = await new_worklet(admin, app_id, "hourly")
    path = schedule_path(app_id, hourly)
    assert (await admin.put(path, json={"every": "1h"})).status_code == 201
    await mongo["schedules"].update_one(
        {"_id": hourly}, {"$set": {"anchor": "2020-01-01T00:00:00.000000Z"}}
    )
    before = datetime.now(UTC)
    fires = [when(text) for text in (await admin.get(path)).json()["next_fire_times"]]
    after = datetime.now(UTC)
    first = [
        t.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1) for t in (before, after)
    ]
    assert fires[0] in first  # the next whole hour of the server's clock, between the two
    assert fires == [fires[0] + timedelta(hours=n) for n in range(5)]
    assert all(f.utcoffset() == timedelta(0) for f in fires)


async def test_the_key_value_entry_follows_every_change(
    admin: httpx.AsyncClient,
    app: tuple[str, str],
    kv: KeyValue,
    mongo: Database,
    nc: Client,
    registry: Stack,
) -> None:
    app_id, _ = app
    worklet_id = await new_worklet(admin, app_id, "followed")
    path = schedule_path(app_id, worklet_id)
    old_anchor = datetime(2020, 1, 1, tzinfo=UTC)

    async def age_anchor() -> None:
        """Move the stored anchor back, to see whether the next PUT keeps or renews it."""
        await mongo["schedules"].update_one(
            {"_id": worklet_id}, {"$set": {"anchor": "2020-01-01T00:00:00.000000Z"}}
        )

    async def put(body: dict[str, Any]) -> tuple[dict[str, Any], ScheduleEntry]:
        answer = await admin.put(path, json=body)
        assert answer.status_code in (200, 201), answer.text
        # written before the answer: the scheduler can see it as soon as the PUT returns
        entry = await entry_of(kv, app_id, worklet_id)
        assert entry is not None
        return answer.json(), entry

    async with notices_of(nc, registry.prefix, app_id) as notices:
        first, entry = await put({"every": "1h", "input": {"n": 1}, "timezone": "Europe/Paris"})
        created = when(first["created_at"])
        assert entry == ScheduleEntry(
            schedule_id=first["schedule_id"],
            app_id=app_id,
            worklet_id=worklet_id,
            spec=ScheduleSpec(every="1h", input=msgspec.Raw(b'{"n":1}'), timezone="Europe/Paris"),
            anchor=created.replace(microsecond=0),  # creation time, to the whole second
            updated_at=created,
        )

        await age_anchor()
        # an edit of anything but the interval keeps the anchor, so the slots do not move
        second, entry = await put({"every": "1h", "input": {"n": 2}, "overlap": "allow"})
        assert entry.schedule_id == first["schedule_id"] and entry.anchor == old_anchor
        assert bytes(entry.spec.input) == b'{"n":2}' and entry.spec.overlap == "allow"
        assert entry.updated_at == when(second["updated_at"]) > created
        _, entry = await put({"every": "60m", "enabled": False})  # the same interval
        assert entry.anchor == old_anchor and entry.spec.enabled is False

        # a new interval renews it
        third, entry = await put({"every": "2h"})
        assert entry.schedule_id == first["schedule_id"]
        renewed = when(third["updated_at"])
        assert entry.anchor == renewed.replace(microsecond=0) > old_anchor

        # so does a change from an interval to a cron, but not from a cron to a cron
        await age_anchor()
        fourth, entry = await put({"cron": "*/5 * * * *"})
        assert entry.anchor == when(fourth["updated_at"]).replace(microsecond=0)
        await age_anchor()
        _, entry = await put({"cron": "*/10 * * * *", "background": False})
        assert entry.anchor == old_anchor and entry.spec.cron == "*/10 * * * *"
        assert entry.spec.background is False and entry.spec.every is None

        assert (await admin.delete(path)).status_code == 204
        assert await entry_of(kv, app_id, worklet_id) is None

        expected = [("schedule", worklet_id, "put")] * 6 + [("schedule", worklet_id, "delete")]
        async with asyncio.timeout(10):
            while len(notices) < len(expected):
                await asyncio.sleep(0.01)
    assert [(n.kind, n.id, n.action) for n in notices] == expected
    assert all(n.app_id == app_id for n in notices)


async def test_deleting_a_worklet_deletes_its_schedule(
    admin: httpx.AsyncClient,
    app: tuple[str, str],
    kv: KeyValue,
    mongo: Database,
    nc: Client,
    registry: Stack,
) -> None:
    app_id, _ = app
    worklet_id = await new_worklet(admin, app_id, "doomed")
    kept_id = await new_worklet(admin, app_id, "kept")
    assert (await admin.put(schedule_path(app_id, worklet_id), json={"every": "1h"})).is_success
    assert (await admin.put(schedule_path(app_id, kept_id), json={"every": "1h"})).is_success

    async with notices_of(nc, registry.prefix, app_id) as notices:
        deleted = await admin.delete(f"/v1/applications/{app_id}/worklets/{worklet_id}")
        assert deleted.status_code == 204
        assert await entry_of(kv, app_id, worklet_id) is None
        assert await mongo["schedules"].find_one({"_id": worklet_id}) is None
        async with asyncio.timeout(10):
            while len(notices) < 2:
                await asyncio.sleep(0.01)
    assert [(n.kind, n.id, n.action) for n in notices] == [
        ("schedule", worklet_id, "delete"),
        ("worklet", worklet_id, "delete"),
    ]
    assert_error(await admin.get(schedule_path(app_id, worklet_id)), 404, "not_found")
    listed = (await admin.get(f"/v1/applications/{app_id}/schedules")).json()["items"]
    assert [item["worklet_name"] for item in listed] == ["kept"]
    assert await entry_of(kv, app_id, kept_id) is not None

    # a worklet made again under the same name starts without a schedule
    again = await new_worklet(admin, app_id, "doomed")
    assert_error(await admin.get(schedule_path(app_id, again)), 404, "not_found")


# ---------------------------------------------------------------- last runs


SLOT = datetime(2026, 1, 31, 12, 0, tzinfo=UTC)


def scheduled(app_id: str, worklet_id: str, schedule_id: str, minutes: int) -> Run:
    """The events of a schedule's slot, as the scheduler and executor would publish them."""
    fire = SLOT + timedelta(minutes=minutes)
    run_id = slot_run_id(schedule_id, fire)
    return Run(app_id, worklet_id, run_id, trigger="schedule", schedule_id=schedule_id)


def cancelled(run: Run, error_type: str) -> RunCancelled:
    error = RunError(type=error_type, message="the previous scheduled run is still running")
    return RunCancelled(**run.ids, at=run.at(0), error=error)


async def test_schedules_list_shows_last_runs_and_skipped_slots(
    admin: httpx.AsyncClient, app: tuple[str, str], nc: Client, registry: Stack
) -> None:
    app_id, _ = app
    base = f"/v1/applications/{app_id}"
    alpha = await new_worklet(admin, app_id, "alpha")
    beta = await new_worklet(admin, app_id, "beta")
    await new_worklet(admin, app_id, "gamma")  # not scheduled: not listed
    beta_schedule = (await admin.put(schedule_path(app_id, beta), json={"every": "1h"})).json()
    alpha_schedule = (
        await admin.put(schedule_path(app_id, alpha), json={"cron": "0 0 1 1 *", "overlap": "skip"})
    ).json()
    listed = (await admin.get(f"{base}/schedules")).json()["items"]
    assert [(s["worklet_name"], s["last_run"], s["skipped"]) for s in listed] == [
        ("alpha", None, 0),
        ("beta", None, 0),
    ]

    a_id, b_id = alpha_schedule["schedule_id"], beta_schedule["schedule_id"]
    cancelled_by_user = scheduled(app_id, alpha, a_id, 0)
    succeeded = scheduled(app_id, alpha, a_id, 1)
    skipped_1 = scheduled(app_id, alpha, a_id, 2)
    skipped_2 = scheduled(app_id, alpha, a_id, 3)
    unscheduled = Run(app_id, alpha)  # newer than all of them, but not of the schedule
    running = scheduled(app_id, beta, b_id, 0)
    await publish(
        nc,
        registry.prefix,
        cancelled(cancelled_by_user, "Cancelled"),
        *succeeded.all(),
        cancelled(skipped_1, "OverlapSkipped"),
        cancelled(skipped_2, "OverlapSkipped"),
        *unscheduled.all(),
        running.queued(),
        running.started(),
    )

    async def recorded() -> list[dict[str, Any]] | None:
        items: list[dict[str, Any]] = (await admin.get(f"{base}/schedules")).json()["items"]
        last = [(s["last_run"] or {}).get("status") for s in items]
        skipped = [s["skipped"] for s in items]
        return items if last == ["CANCELLED", "RUNNING"] and skipped == [2, 0] else None

    items = await eventually(recorded, "the scheduled runs to be recorded")
    assert items[0]["last_run"] == {
        "run_id": skipped_2.run_id,
        "status": "CANCELLED",
        "queued_at": None,  # a skipped slot was never queued
    }
    assert items[1]["last_run"] == {
        "run_id": running.run_id,
        "status": "RUNNING",
        "queued_at": "2026-01-31T12:00:00Z",
    }
    one = (await admin.get(schedule_path(app_id, "alpha"))).json()
    assert (one["last_run"], one["skipped"]) == (items[0]["last_run"], 2)

    # the runs of a schedule, skipped slots included, newest first
    await eventually(
        lambda: _status(admin, f"{base}/runs/{unscheduled.run_id}", "SUCCEEDED"),
        "the unscheduled run to be recorded",
    )
    page = (await admin.get(f"{base}/runs", params={"schedule_id": a_id})).json()
    assert [run["run_id"] for run in page["items"]] == [
        skipped_2.run_id,
        skipped_1.run_id,
        succeeded.run_id,
        cancelled_by_user.run_id,
    ]
    assert {(run["trigger"], run["schedule_id"]) for run in page["items"]} == {("schedule", a_id)}
    failed = await admin.get(f"{base}/runs", params={"schedule_id": a_id, "status": "SUCCEEDED"})
    assert [run["run_id"] for run in failed.json()["items"]] == [succeeded.run_id]


async def _status(admin: httpx.AsyncClient, path: str, status: str) -> bool:
    answer = await admin.get(path)
    return answer.status_code == 200 and answer.json()["status"] == status


# ---------------------------------------------------------------- who may


async def test_schedules_follow_the_registry_access_rules(
    admin: httpx.AsyncClient, registry: Stack
) -> None:
    app_id, key = await new_app(admin)
    other_id, other_key = await new_app(admin)
    invoke_key = (
        await admin.post(f"/v1/applications/{app_id}/api-keys", json={"role": "invoke"})
    ).json()["key"]
    worklet_id = await new_worklet(admin, app_id, "guarded")
    path = schedule_path(app_id, worklet_id)
    listing = f"/v1/applications/{app_id}/schedules"
    async with (
        client(registry) as anonymous,
        client(registry, f"Api-Key {key}") as own,
        client(registry, f"Api-Key {other_key}") as other,
        client(registry, f"Api-Key {invoke_key}") as invoker,
    ):
        for caller, status, code in (
            (anonymous, 401, "unauthorized"),
            (other, 403, "forbidden"),
            (invoker, 403, "forbidden"),
        ):
            assert_error(await caller.put(path, json={"every": "1h"}), status, code)
            assert_error(await caller.get(path), status, code)
            assert_error(await caller.delete(path), status, code)
            assert_error(await caller.get(listing), status, code)
        assert_error(await admin.get(path), 404, "not_found")  # nothing was stored

        # the application's admin key may do everything
        assert (await own.put(path, json={"every": "1h"})).status_code == 201
        assert (await own.get(path)).status_code == 200
        assert [s["worklet_id"] for s in (await own.get(listing)).json()["items"]] == [worklet_id]
        assert_error(await invoker.delete(path), 403, "forbidden")
        assert (await own.delete(path)).status_code == 204

    # a worklet is only found in its own application
    elsewhere = schedule_path(other_id, worklet_id)
    assert_error(await admin.put(elsewhere, json={"every": "1h"}), 404, "not_found")


async def test_openapi_documents_the_schedule_routes(admin: httpx.AsyncClient) -> None:
    schema = (await admin.get("/openapi.json")).json()
    routes = schema["paths"]["/v1/applications/{app_id}/worklets/{worklet_id}/schedule"]
    assert set(routes) == {"put", "get", "delete"}
    body = routes["put"]["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/ScheduleSpec"}
    answers = routes["put"]["responses"]
    for status in ("200", "201"):
        answer = answers[status]["content"]["application/json"]["schema"]
        assert answer == {"$ref": "#/components/schemas/Schedule"}
    refused = answers["422"]["content"]["application/json"]["schema"]
    assert refused == {"$ref": "#/components/schemas/FieldErrorResponse"}
    assert "get" in schema["paths"]["/v1/applications/{app_id}/schedules"]
    components = schema["components"]["schemas"]
    assert {"ScheduleSpec", "Schedule", "ScheduleList", "FieldErrorDetail"} <= set(components)
    assert set(components["ScheduleSpec"]["properties"]) == set(ScheduleSpec.__struct_fields__)
    assert "field" in components["FieldErrorDetail"]["properties"]


# ---------------------------------------------------------------- restart


@pytest.fixture
def own_registry(servers: Servers, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with Stack(servers, tmp_path_factory.mktemp("schedules-restart")) as stack:
        stack.start("registry")
        yield stack


async def test_a_restart_rebuilds_schedule_entries(own_registry: Stack, nc: Client) -> None:
    stack = own_registry
    kv = await nc.jetstream().key_value(stack.names.index_bucket)
    async with client(stack, f"Bearer {stack.admin_token}") as admin:
        app_id, _ = await new_app(admin)
        lost = await new_worklet(admin, app_id, "lost")
        kept = await new_worklet(admin, app_id, "kept")
        for worklet_id in (lost, kept):
            put = await admin.put(schedule_path(app_id, worklet_id), json={"every": "90s"})
            assert put.status_code == 201, put.text
        entries = await kv_entries(kv, nc, stack.prefix)
        assert Names.schedule(app_id, lost) in entries

    # lose one entry, and leave one MongoDB does not have
    await kv.delete(Names.schedule(app_id, lost))
    ghost = ScheduleEntry(
        schedule_id="ghost",
        app_id=app_id,
        worklet_id="ghost",
        spec=ScheduleSpec(every="1s"),
        anchor=SLOT,
        updated_at=SLOT,
    )
    await kv.put(Names.schedule(app_id, "ghost"), msgspec.json.encode(ghost))
    restart(stack)

    assert await kv_entries(kv, nc, stack.prefix) == entries
    assert await kv_value(kv, Names.schedule(app_id, "ghost")) is None
