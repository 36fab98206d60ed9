"""``worklets events``: follow an application's run events on NATS, one JSON line each.

It subscribes to ``{prefix}.events.{app}.>`` (or one worklet's subjects), so it shows events
published from now on; Ctrl-C ends it.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

import msgspec
import nats
from nats.aio.msg import Msg

from cli.config import Config
from shared.subjects import Names


def _line(data: bytes) -> str:
    try:
        return msgspec.json.encode(msgspec.json.decode(data)).decode()
    except msgspec.DecodeError:
        return msgspec.json.encode({"undecodable": data.decode(errors="replace")}).decode()


async def follow(config: Config, subject: str) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    async def on_event(msg: Msg) -> None:
        try:
            sys.stdout.write(_line(msg.data) + "\n")
            sys.stdout.flush()
        except BrokenPipeError:  # `worklets events | head`
            stop.set()

    try:
        nc = await nats.connect(config.nats_url, connect_timeout=5, max_reconnect_attempts=-1)
    except (OSError, TimeoutError, nats.errors.NoServersError) as err:
        raise ConnectionError(
            f"cannot reach NATS at {config.nats_url} ({err}); is `worklets dev` running?"
        ) from None
    try:
        await nc.subscribe(subject, cb=on_event)
        await nc.flush()
        sys.stderr.write(f"following {subject} (Ctrl-C to stop)\n")
        sys.stderr.flush()
        await stop.wait()
    finally:
        await nc.close()


def command(args: argparse.Namespace, config: Config) -> int:
    app = args.app or config.require_app()
    names = Names(config.prefix)
    subject = names.events_of_app(app)
    if args.worklet:
        with config.registry() as registry:
            worklet_id = registry.resolve_worklet(app, args.worklet)["id"]
        subject = names.events(app, worklet_id, ">")
    asyncio.run(follow(config, subject))
    return 0
