"""Ready-made NATS commands and JetStream acks by token (``services.common.wire``)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import nats.errors
import nats.js.errors
import pytest
from nats.aio.client import Client

from services.common.bus import ensure_streams
from services.common.wire import Wire, header_block, hpub, pub, within
from shared.settings import CommonSettings
from shared.subjects import EVENT_KIND_HEADER, MSG_ID


def test_commands_are_the_nats_protocol() -> None:
    header = header_block((MSG_ID, "r1.end"), (EVENT_KIND_HEADER, "succeeded"))
    assert header == b"NATS/1.0\r\nNats-Msg-Id: r1.end\r\nWorklets-Event: succeeded\r\n\r\n"
    size = len(header)
    assert hpub(b"a.b", header, b"{}") == (b"HPUB a.b %d %d\r\n%b{}\r\n" % (size, size + 2, header))
    assert hpub(b"a.b", header, b"{}", b"_INBOX.x.1") == (
        b"HPUB a.b _INBOX.x.1 %d %d\r\n%b{}\r\n" % (size, size + 2, header)
    )
    assert pub(b"a.b", b"hello") == b"PUB a.b 5\r\nhello\r\n"
    assert pub(b"a.b", b"", b"r") == b"PUB a.b r 0\r\n\r\n"


@pytest.fixture
async def wire(nc: Client) -> AsyncIterator[Wire]:
    wire = Wire(nc)
    await wire.start()
    yield wire
    await wire.stop()


@pytest.mark.integration
async def test_messages_go_out_in_order_with_their_headers(nc: Client, wire: Wire) -> None:
    inbox = nc.new_inbox()
    sub = await nc.subscribe(inbox)
    wire.send(
        hpub(inbox.encode(), header_block((EVENT_KIND_HEADER, "started")), b"1"),
        pub(inbox.encode(), b"2"),
    )
    wire.send(pub(inbox.encode(), b"3"))
    got = [await sub.next_msg(timeout=5) for _ in range(3)]
    assert [m.data for m in got] == [b"1", b"2", b"3"]
    assert got[0].headers == {EVENT_KIND_HEADER: "started"}
    await sub.unsubscribe()


@pytest.mark.integration
async def test_jetstream_acks(nc: Client, wire: Wire, fresh_prefix: str) -> None:
    settings = CommonSettings(prefix=fresh_prefix)
    js = nc.jetstream()
    await ensure_streams(js, settings)
    subject = settings.names.events("app", "worklet", "run")
    header = header_block((MSG_ID, "run.end"), (EVENT_KIND_HEADER, "succeeded"))

    reply, stored = wire.expect_ack()
    wire.send(hpub(subject.encode(), header, b'{"n":1}', reply))
    await asyncio.wait_for(stored, 5)
    last = await js.get_last_msg(settings.names.events_stream, subject, direct=True)
    assert last.data == b'{"n":1}'
    assert last.headers is not None and last.headers[MSG_ID] == "run.end"

    reply, again = wire.expect_ack()  # the same Nats-Msg-Id: a duplicate, acknowledged
    wire.send(hpub(subject.encode(), header, b'{"n":2}', reply))
    await asyncio.wait_for(again, 5)
    last = await js.get_last_msg(settings.names.events_stream, subject, direct=True)
    assert last.data == b'{"n":1}'

    reply, refused = wire.expect_ack()  # the stream refuses it
    wrong = header_block(("Nats-Expected-Stream", "NOT_THIS_ONE"))
    wire.send(hpub(subject.encode(), wrong, b"{}", reply))
    with pytest.raises(nats.js.errors.APIError):
        await asyncio.wait_for(refused, 5)

    reply, nobody = wire.expect_ack()  # no stream has the subject
    wire.send(hpub(f"{fresh_prefix}.nowhere".encode(), header, b"{}", reply))
    with pytest.raises(nats.errors.NoRespondersError):
        await asyncio.wait_for(nobody, 5)


@pytest.mark.integration
async def test_a_forgotten_ack_is_cancelled(wire: Wire) -> None:
    reply, future = wire.expect_ack()
    wire.forget(reply, future)
    assert future.cancelled()


@pytest.mark.integration
async def test_a_closed_connection_refuses_to_send(nc: Client, wire: Wire) -> None:
    payload = b"x" * (nc.max_payload + 1)
    with pytest.raises(nats.errors.MaxPayloadError):
        wire.check_size(payload)
    await nc.close()
    with pytest.raises(nats.errors.ConnectionClosedError):
        wire.send(pub(b"a.b", b"after close"))


async def test_within_waits_for_each_future_until_the_time_is_up() -> None:
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()
    done.set_result(None)
    late: asyncio.Future[None] = loop.create_future()
    loop.call_later(0.01, late.set_result, None)
    await within(1, done, late)
    never: asyncio.Future[None] = loop.create_future()
    with pytest.raises(TimeoutError):
        await within(0.05, done, never)
    failed: asyncio.Future[None] = loop.create_future()
    failed.set_exception(nats.errors.NoRespondersError())
    with pytest.raises(nats.errors.NoRespondersError):
        await within(1, failed)
