"""`make bench`: the demo worklet through the full HTTP path, on this machine.

Starts nats-server, the MongoDB-wire server and the four services on free ports in a temporary
directory, deploys the demo worklets, and prints:

- synchronous invoke latency, p50 and p99, one client sending one request at a time;
- background throughput: runs per second from the first invoke until the registry has recorded
  every run SUCCEEDED, with 64 concurrent clients;
- cold start: the first invoke after each of several deploys (median and worst);
- the floor: a raw NATS request/reply round trip between two connections on this machine;
- applications sharing the worker pool: synchronous invokes per second of a one-block worklet
  from 1, 2 and 3 applications at once (16 clients each), and the worker processes started
  to move workers between them (a worker serves one application for its life);
- where the CPU went: milliseconds of CPU per run of each process, in both measures.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import nats
from pymongo import MongoClient
from pymongo.collection import Collection

from bench.cpu import Meter
from bench.http import AsyncClient, SyncClient
from cli.deploy import load_definition
from cli.servers import free_port, start_mongo, start_nats
from shared.schemas import event_decoder
from shared.settings import ExecutorSettings
from shared.subjects import EVENT_KIND_HEADER, REGISTRY_CONSUMER
from tests.stack import Servers, Stack, code_worklet

DEMO = Path(__file__).resolve().parent.parent / "cli" / "demo"


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


async def nats_floor(url: str, count: int) -> list[float]:
    server, client = await nats.connect(url), await nats.connect(url)
    subject = f"bench.echo.{os.getpid()}"

    async def echo(msg: Any) -> None:
        await msg.respond(msg.data)

    await server.subscribe(subject, cb=echo)
    await server.flush()
    for _ in range(100):  # until the client's server sees the subscription
        try:
            await client.request(subject, b"ready", timeout=5)
            break
        except nats.errors.NoRespondersError:
            await asyncio.sleep(0.01)
    samples = []
    for _ in range(count):
        t = time.perf_counter()
        await client.request(subject, b"x" * 64, timeout=5)
        samples.append(time.perf_counter() - t)
    await client.close()
    await server.close()
    return samples


def sync_latency(client: SyncClient, path: str, count: int) -> list[float]:
    samples = []
    for i in range(count):
        t = time.perf_counter()
        status, body = client.post(path, {"worklet_input": {"name": f"Ada {i}"}})
        samples.append(time.perf_counter() - t)
        assert status == 200 and body["success"], body
    return samples


def cold_starts(
    stack: Stack, app_id: str, client: SyncClient, worklet: dict[str, Any], count: int
) -> list[float]:
    samples = []
    with stack.admin() as admin:
        for i in range(count):
            definition = dict(worklet["definition"])
            blocks = [dict(b) for b in definition["blocks"]]
            first_code = next(b for b in blocks if b["type"] == "code")
            first_code["source"] += f"\n# deploy {i} at {time.time()}\n"
            definition["blocks"] = blocks
            r = admin.put(f"/v1/applications/{app_id}/worklets/{worklet['id']}", json=definition)
            assert r.status_code == 200, r.text
            t = time.perf_counter()
            status, body = client.post(
                f"/applications/{app_id}/worklets/{worklet['id']}/invoke",
                {"worklet_input": {"name": "Ada"}},
            )
            samples.append(time.perf_counter() - t)
            assert status == 200 and body["success"], body
    return samples


async def throughput(
    stack: Stack, app_id: str, key: str, worklet_id: str, total: int, clients: int, mongo_url: str
) -> tuple[float, float]:
    """(invokes accepted per second, runs recorded SUCCEEDED per second)."""
    path = f"/applications/{app_id}/worklets/{worklet_id}/invoke"
    remaining = iter(range(total))

    async def client_loop() -> None:
        client = AsyncClient("127.0.0.1", stack.gateway_port, {"Authorization": f"Api-Key {key}"})
        for i in remaining:
            status, body = await client.post(
                path, {"worklet_input": {"name": f"n{i}"}, "async": True}
            )
            assert status == 202, body
        await client.close()

    nc = await nats.connect(stack.servers.nats_url)
    js = nc.jetstream()
    ended = 0
    all_ended = asyncio.Event()

    async def on_event(msg: Any) -> None:
        nonlocal ended
        if msg.headers and msg.headers.get(EVENT_KIND_HEADER) == "succeeded":
            event = event_decoder.decode(msg.data)
            if event.trigger == "api_async":
                ended += 1
                if ended == total:
                    all_ended.set()

    sub = await nc.subscribe(stack.names.events(app_id, worklet_id, "*"), cb=on_event)
    start = time.perf_counter()
    await asyncio.gather(*(client_loop() for _ in range(clients)))
    accepted = time.perf_counter() - start
    await all_ended.wait()
    # recorded: the registry has written every event of the stream to MongoDB
    while True:
        info = await js.consumer_info(stack.names.events_stream, REGISTRY_CONSUMER)
        if info.num_pending == 0 and info.num_ack_pending == 0:
            break
        await asyncio.sleep(0.02)
    recorded = time.perf_counter() - start
    await sub.unsubscribe()
    await nc.close()
    runs: Collection[dict[str, Any]] = MongoClient(mongo_url)[stack.prefix]["runs"]
    query = {"app_id": app_id, "worklet_id": worklet_id, "trigger": "api_async"}
    assert runs.count_documents({**query, "status": "SUCCEEDED"}) == total
    return total / accepted, total / recorded


async def shared_pool(
    stack: Stack, apps: list[tuple[str, str, str]], seconds: float, clients: int
) -> tuple[float, set[int]]:
    """Synchronous invokes per second with ``clients`` clients per (app, key, worklet), and
    the worker processes (pids) that ran them."""
    stop = time.perf_counter() + seconds
    done = 0
    pids: set[int] = set()

    async def client_loop(app_id: str, key: str, worklet_id: str) -> None:
        nonlocal done
        client = AsyncClient("127.0.0.1", stack.gateway_port, {"Authorization": f"Api-Key {key}"})
        path = f"/applications/{app_id}/worklets/{worklet_id}/invoke"
        while time.perf_counter() < stop:
            status, body = await client.post(path, {"worklet_input": None})
            assert status == 200 and body["success"], body
            pids.add(body["worklet_output"])
            done += 1
        await client.close()

    await asyncio.gather(*(client_loop(*app) for app in apps for _ in range(clients)))
    return done / seconds, pids


def tenants(stack: Stack, seconds: float) -> list[tuple[int, float, int]]:
    """(applications, invokes/s, worker processes used) for 1, 2 and 3 applications."""
    apps = []
    for i in range(3):
        app_id, key = stack.create_app(f"tenant-{i}")
        source = "import os\n\ndef main():\n    return os.getpid()\n"
        apps.append((app_id, key, stack.deploy(app_id, code_worklet("pid", source))["id"]))
    results = []
    for count in (1, 2, 3):
        asyncio.run(shared_pool(stack, apps[:count], 2.0, 16))  # warm up
        rate, pids = asyncio.run(shared_pool(stack, apps[:count], seconds, 16))
        results.append((count, rate, len(pids)))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(prog="make bench", description=__doc__.splitlines()[0])
    parser.add_argument("--sync", type=int, default=2000, help="synchronous invokes measured")
    parser.add_argument("--runs", type=int, default=5000, help="background runs measured")
    parser.add_argument("--clients", type=int, default=64, help="concurrent background clients")
    parser.add_argument("--cold", type=int, default=10, help="deploys measured for cold start")
    parser.add_argument(
        "--tenant-seconds", type=float, default=8.0, help="seconds per shared-pool measure"
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="worklets-bench-") as tmp:
        root = Path(tmp)
        nats_port, mongo_port = free_port(), free_port()
        nats_proc = start_nats(root / "nats", nats_port)
        mongo_proc = start_mongo(root / "mongo", mongo_port)
        servers = Servers(
            f"nats://127.0.0.1:{nats_port}", f"mongodb://127.0.0.1:{mongo_port}", root
        )
        try:
            with Stack(servers, root / "stack", WORKLETS_LOG_LEVEL="WARNING") as stack:
                stack.start_all()
                app_id, key = stack.create_app("bench")
                greeter = stack.deploy(app_id, load_definition(DEMO / "greeter.yaml"))
                hello = stack.deploy(app_id, load_definition(DEMO / "hello.yaml"))
                del greeter
                client = SyncClient(
                    "127.0.0.1", stack.gateway_port, {"Authorization": f"Api-Key {key}"}
                )
                path = f"/applications/{app_id}/worklets/{hello['id']}/invoke"
                sync_latency(client, path, 300)  # warm up workers and caches
                pids = {name: p.popen.pid for name, p in stack.processes.items()}
                meter = Meter({"nats": nats_proc.popen.pid, "mongo": mongo_proc.popen.pid, **pids})
                sync = sync_latency(client, path, args.sync)
                sync_cpu = meter.take()
                cold = cold_starts(stack, app_id, client, hello, args.cold)
                client.close()
                meter.take()
                accepted, recorded = asyncio.run(
                    throughput(
                        stack, app_id, key, hello["id"], args.runs, args.clients, servers.mongo_url
                    )
                )
                background_cpu = meter.take()
                floor = asyncio.run(nats_floor(servers.nats_url, 2000))
                shared = tenants(stack, args.tenant_seconds)
                workers = ExecutorSettings(secrets_key=stack.secrets_key).workers
        finally:
            mongo_proc.stop()
            nats_proc.stop()

    cpu = platform.processor() or platform.machine()
    print(f"machine: {os.cpu_count()} cores, {cpu}, Python {platform.python_version()}")
    print(
        f"demo worklet `hello` ({len(hello['definition']['blocks'])} blocks, one calls `greeter`)"
    )
    print("| measure | result | target |")
    print("|---|---|---|")
    print(f"| sync invoke p50 (serial, {args.sync} runs) | {ms(percentile(sync, 0.5))} | ≤ 3 ms |")
    print(f"| sync invoke p99 | {ms(percentile(sync, 0.99))} | ≤ 15 ms |")
    print(
        f"| background runs/s, invoke to SUCCEEDED recorded ({args.runs} runs, {args.clients} clients) | {recorded:.0f} | ≥ 1,000 |"
    )
    print(f"| background invokes accepted/s (202) | {accepted:.0f} | |")
    print(
        f"| cold start, first invoke after a deploy (median of {args.cold}) | {ms(statistics.median(cold))} | ≤ 100 ms |"
    )
    print(f"| cold start, worst | {ms(max(cold))} | |")
    print(f"| NATS request/reply floor p50 | {ms(percentile(floor, 0.5))} | |")
    print(f"| NATS request/reply floor p99 | {ms(percentile(floor, 0.99))} | |")
    print()
    print("CPU per run (ms; the executor includes its workers; the benchmark client not shown):")
    print("| process | sync | background |")
    print("|---|---|---|")
    for name in sync_cpu:
        sync_ms, bg_ms = sync_cpu[name] * 1000 / args.sync, background_cpu[name] * 1000 / args.runs
        print(f"| {name} | {sync_ms:.2f} | {bg_ms:.2f} |")
    total_sync = sum(sync_cpu.values()) * 1000 / args.sync
    total_bg = sum(background_cpu.values()) * 1000 / args.runs
    print(f"| all | {total_sync:.2f} | {total_bg:.2f} |")
    print()
    print(
        f"Applications sharing the executor's {workers} workers (a one-block worklet, 16 "
        f"clients per application, synchronous, {args.tenant_seconds:g} s each):"
    )
    print("| applications | invokes/s | worker processes used |")
    print("|---|---|---|")
    for count, rate, used in shared:
        print(f"| {count} | {rate:.0f} | {used} |")


if __name__ == "__main__":
    main()
