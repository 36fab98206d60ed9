"""User code runs in warm worker subprocesses: isolated, limited, and replaceable."""

from __future__ import annotations

import asyncio
import os
from collections import defaultdict

import pytest

from services.common.sealing import Sealer, new_key
from shared.schemas import RunFailed, RunSucceeded, RunTimedOut
from tests.executor.harness import Harness, output
from tests.stack import Stack

pytestmark = pytest.mark.integration

ECHO = "def main(x):\n    return x\n"


async def test_user_code_runs_in_another_process_without_service_secrets(
    harness: Harness, executor: Stack
) -> None:
    worklet = await harness.code(
        "import os, sys\n"
        "def main():\n"
        "    parent = os.getppid()\n"
        "    try:\n"
        "        environ = open(f'/proc/{parent}/environ', 'rb').read().decode(errors='replace')\n"
        "    except OSError as err:\n"
        "        environ = type(err).__name__\n"
        "    return {\n"
        "        'pid': os.getpid(), 'parent': parent, 'uid': os.getuid(),\n"
        "        'variables': sorted(os.environ), 'environ': environ,\n"
        "        'stdin': sys.stdin.read(), 'cwd': os.getcwd(), 'home': os.environ['HOME'],\n"
        "    }\n"
    )
    seen = output(await harness.invoke(worklet))
    executor_pid = executor.processes["executor"].popen.pid
    assert seen["pid"] != executor_pid and seen["parent"] == executor_pid
    assert not [v for v in seen["variables"] if v.startswith(("WORKLETS_", "NATS"))]
    assert seen["environ"] == "PermissionError"  # and so it holds no WORKLETS_NATS_URL
    assert seen["stdin"] == ""  # the protocol is out of reach of sys.stdin
    assert seen["cwd"] == seen["home"] != os.getcwd()
    if os.geteuid() == 0:
        assert seen["uid"] != 0  # dropped to WORKLETS_WORKER_USER (nobody)


async def test_source_is_executed_once_per_worker(harness: Harness) -> None:
    worklet = await harness.code(
        "import os\n"
        "loads = 0\n"
        "loads += 1\n"
        "calls = 0\n"
        "def main():\n"
        "    global calls\n"
        "    calls += 1\n"
        "    return [os.getpid(), loads, calls]\n"
    )
    calls_by_pid: dict[int, list[int]] = defaultdict(list)
    for _ in range(6):
        pid, loads, calls = output(await harness.invoke(worklet))
        assert loads == 1
        calls_by_pid[pid].append(calls)
    for calls in calls_by_pid.values():
        assert calls == list(range(1, len(calls) + 1))


async def test_secrets_come_from_the_read_model(harness: Harness) -> None:
    worklet = await harness.code(
        "def main(x, env, context):\n"
        "    value = context.get_secret('api_token')\n"
        "    try:\n"
        "        context.get_secret('missing')\n"
        "    except KeyError as err:\n"
        "        return [value, str(err)]\n"
    )
    await harness.put_secret(worklet.app_id, "api_token", "t0ps3cret")
    await harness.put_secret("another-app", "missing", "not yours")
    value, missing = output(await harness.invoke(worklet))
    assert value == "t0ps3cret"
    assert "missing" in missing and "not set" in missing

    unknown = await harness.code(
        "def main(x, env, context):\n    return context.get_secret('nope')\n",
        app_id=worklet.app_id,
    )
    end = await harness.invoke(unknown)
    assert isinstance(end, RunFailed) and end.error.type == "KeyError"


async def test_a_secret_sealed_under_another_key_fails_the_run_saying_so(
    harness: Harness,
) -> None:
    worklet = await harness.code(
        "def main(x, env, context):\n    return context.get_secret('token')\n"
    )
    await harness.put_secret(worklet.app_id, "token", "v", sealer=Sealer(new_key()))
    end = await harness.invoke(worklet)
    assert isinstance(end, RunFailed)
    assert end.error.type == "SecretUnreadable" and end.error.block == "main"
    assert "WORKLETS_SECRETS_KEY" in end.error.message
    # moved to another secret's name, a sealed value does not open either
    await harness.put_secret(worklet.app_id, "elsewhere", "v")
    entry = await harness.kv.get(harness.names.secret(worklet.app_id, "elsewhere"))
    await harness.kv.put(harness.names.secret(worklet.app_id, "token"), entry.value)
    end = await harness.invoke(worklet)
    assert isinstance(end, RunFailed) and end.error.type == "SecretUnreadable"
    await harness.put_secret(worklet.app_id, "token", "right")
    assert output(await harness.invoke(worklet)) == "right"


async def test_timeout_kills_the_worker_and_the_next_run_works(harness: Harness) -> None:
    worklet = await harness.deploy(
        [
            {"id": "quick", "type": "code", "source": ECHO, "next": "spin"},
            {
                "id": "spin",
                "type": "code",
                "source": "def main():\n    while True:\n        pass\n",
            },
        ]
    )
    end = await harness.invoke(worklet, timeout=1)
    assert isinstance(end, RunTimedOut)
    assert (end.error.type, end.error.block) == ("Timeout", "spin")
    assert end.error.message == "Worklet exceeded its timeout of 1 s"
    assert 1000 <= end.latency_ms < 3000
    echo = await harness.code(ECHO)
    for n in range(3):  # both workers are usable again
        assert output(await harness.invoke(echo, n)) == n


@pytest.mark.parametrize(
    "crash", ["os._exit(1)", "os.kill(os.getpid(), signal.SIGKILL)", "os.abort()"]
)
async def test_worker_crash_fails_that_run_and_the_pool_recovers(
    harness: Harness, crash: str
) -> None:
    worklet = await harness.code(f"import os, signal\ndef main():\n    {crash}\n")
    echo = await harness.code(ECHO)
    for _ in range(2):  # as many crashes as there are workers: all of them are replaced
        end = await harness.invoke(worklet)
        assert isinstance(end, RunFailed)
        assert (end.error.type, end.error.block) == ("WorkerCrashed", "main")
    for n in range(3):
        assert output(await harness.invoke(echo, n)) == n


async def test_memory_blowup_fails_only_that_run(harness: Harness) -> None:
    hog = await harness.code(
        "def main():\n"
        "    chunks = []\n"
        "    while True:\n"
        "        chunks.append(bytearray(32 * 1024 * 1024))\n"
    )
    sleeper = await harness.code("import time\ndef main(x):\n    time.sleep(0.5)\n    return x\n")
    hogged, slept = await asyncio.gather(harness.invoke(hog), harness.invoke(sleeper, "fine"))
    assert isinstance(hogged, RunFailed)
    assert (hogged.error.type, hogged.error.block) == ("MemoryLimit", "main")
    assert "256 MB" in hogged.error.message
    assert isinstance(slept, RunSucceeded) and output(slept) == "fine"
    assert output(await harness.invoke(sleeper, "again")) == "again"


async def test_output_written_to_file_descriptors_cannot_break_the_protocol(
    harness: Harness,
) -> None:
    worklet = await harness.code(
        "import os\n"
        "def main():\n"
        "    os.write(1, b'raw stdout')\n"
        "    os.write(2, b'raw stderr\\n')\n"
        "    return 'ok'\n"
    )
    assert output(await harness.invoke(worklet)) == "ok"


async def test_async_functions_are_awaited(harness: Harness) -> None:
    worklet = await harness.code(
        "import asyncio\nasync def main(x):\n    await asyncio.sleep(0.01)\n    return x + 1\n"
    )
    assert output(await harness.invoke(worklet, 1)) == 2


async def test_threads_left_running_do_not_reach_the_next_run(harness: Harness) -> None:
    saboteur = await harness.code(
        "import os, threading\n"
        "def main():\n"
        "    threading.Timer(0.2, lambda: os._exit(1)).start()\n"
        "    return 'bye'\n"
    )
    sleeper = await harness.code("import time\ndef main(x):\n    time.sleep(0.5)\n    return x\n")
    assert output(await harness.invoke(saboteur)) == "bye"
    # Without retiring that worker, this run would land on it and die with it.
    assert output(await harness.invoke(sleeper, "unharmed")) == "unharmed"


async def test_an_application_never_sees_another_applications_module_state(
    harness: Harness,
) -> None:
    """A worker belongs to one application: what one's code leaves in the interpreter (a
    patched built-in, a cached module, a file in its home) another's code never finds."""
    planter = (
        "import builtins, os, sys\n"
        "def main(tag):\n"
        "    planted = getattr(builtins, 'planted', None)\n"
        "    builtins.planted = tag\n"
        "    sys.modules['planted_by'] = type(sys)('planted_by')\n"
        "    open('planted.txt', 'w').write(tag)\n"
        "    return [planted, os.getpid()]\n"
    )
    looker = (
        "import builtins, os, sys\n"
        "def main():\n"
        "    return [getattr(builtins, 'planted', None), 'planted_by' in sys.modules,\n"
        "            os.path.exists('planted.txt'), os.getpid()]\n"
    )
    ours = await harness.code(planter)
    theirs = await harness.code(looker)  # another application (harness.code: a new app id)
    assert ours.app_id != theirs.app_id
    pids: set[int] = set()
    previous = None
    for round_ in range(4):
        seen, pid = output(await harness.invoke(ours, f"round {round_}"))
        if previous is not None and pid in pids:
            assert seen == previous  # its own state, in its own warm worker
        previous = f"round {round_}"
        pids.add(pid)
        planted, module, file, their_pid = output(await harness.invoke(theirs))
        assert (planted, module, file) == (None, False, False)
        assert their_pid not in pids
