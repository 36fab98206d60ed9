"""Runs through a real executor: data flow, decisions, child worklets, errors, the trace."""

from __future__ import annotations

import msgspec
import pytest
from nats.js.api import DeliverPolicy

from shared.schemas import (
    BlockFinished,
    RunFailed,
    RunQueued,
    RunStarted,
    RunSucceeded,
    RunTimedOut,
)
from shared.subjects import EVENT_KIND_HEADER, MSG_ID
from tests.executor.harness import Harness, output

pytestmark = pytest.mark.integration


async def test_code_block_output(harness: Harness) -> None:
    worklet = await harness.code(
        "def main(block_input):\n    return {'doubled': block_input['n'] * 2}\n"
    )
    end = await harness.invoke(worklet, {"n": 21})
    assert output(end) == {"doubled": 42}
    assert isinstance(end.latency_ms, int)
    [block] = end.trace
    assert (block.block, block.type, block.next) == ("main", "code", None)
    assert msgspec.json.decode(block.input) == {"n": 21}
    assert msgspec.json.decode(block.output) == {"doubled": 42}
    assert block.duration_ms > 0 and block.started_at is not None

    events = await harness.events.wait(end.run_id, lambda es: len(es) >= 3)
    started, finished, _ = events
    assert isinstance(started, RunStarted) and started.attempt == 1 and started.executor
    assert isinstance(finished, BlockFinished) and finished.block.block == "main"
    stored = await harness.stored_events(worklet, end.run_id)
    assert [type(e) for e in stored] == [RunStarted, BlockFinished, RunSucceeded]


async def test_outputs_flow_through_blocks_and_env_lives_for_the_run(harness: Harness) -> None:
    worklet = await harness.deploy(
        [
            {
                "id": "prepare",
                "type": "code",
                "source": "def main(block_input, env, context):\n"
                "    env['greeting'] = 'Hello'\n"
                "    return {'name': block_input['name'].strip()}\n",
                "next": "greet",
            },
            {
                "id": "greet",
                "type": "code",
                "source": "def helper(x):\n    return x\n\n"
                "def greet(block_input, env):\n"
                "    env['count'] = env.get('count', 0) + 1\n"
                "    return helper(env['greeting'] + ', ' + block_input['name'])\n",
                "function": "greet",
                "next": "shout",
            },
            {
                "id": "shout",
                "type": "code",
                "source": "def shout(*args):\n"
                "    text, env, context = args\n"
                "    return {'text': text.upper(), 'env': env, 'block': context.block_id}\n",
            },
        ]
    )
    end = await harness.invoke(worklet, {"name": "  ada "})
    assert output(end) == {
        "text": "HELLO, ADA",
        "env": {"greeting": "Hello", "count": 1},
        "block": "shout",
    }
    assert [(b.block, b.next) for b in end.trace] == [
        ("prepare", "greet"),
        ("greet", "shout"),
        ("shout", None),
    ]
    assert msgspec.json.decode(end.trace[1].input) == {"name": "ada"}


async def test_decision_routes_on_input_and_env(harness: Harness) -> None:
    worklet = await harness.deploy(
        [
            {
                "id": "prepare",
                "type": "code",
                "source": "def main(block_input, env):\n"
                "    env['vip'] = block_input.get('vip', False)\n"
                "    return block_input\n",
                "next": "route",
            },
            {
                "id": "route",
                "type": "decision",
                "conditions": [
                    {"when": "env.vip", "next": "vip"},
                    {"when": 'input.name == ""', "next": "anonymous"},
                ],
                "default": "greet",
            },
            {"id": "anonymous", "type": "code", "source": "def main():\n    return 'stranger'\n"},
            {"id": "vip", "type": "decision", "conditions": []},  # no default: the run ends
            {
                "id": "greet",
                "type": "code",
                "source": "def main(block_input):\n    return 'hi ' + block_input['name']\n",
            },
        ]
    )
    assert output(await harness.invoke(worklet, {"name": ""})) == "stranger"
    assert output(await harness.invoke(worklet, {"name": "bo"})) == "hi bo"
    vip = await harness.invoke(worklet, {"name": "cy", "vip": True})
    assert output(vip) == {"name": "cy", "vip": True}  # a decision passes its input through
    assert [(b.block, b.type, b.next) for b in vip.trace] == [
        ("prepare", "code", "route"),
        ("route", "decision", "vip"),
        ("vip", "decision", None),
    ]


async def test_condition_that_fails_names_its_block(harness: Harness) -> None:
    worklet = await harness.deploy(
        [
            {
                "id": "check",
                "type": "decision",
                "conditions": [{"when": "input.n + 1 > 2", "next": "end"}],
            },
            {"id": "end", "type": "code", "source": "def main(x):\n    return x\n"},
        ]
    )
    end = await harness.invoke(worklet, {"n": "three"})
    assert isinstance(end, RunFailed)
    assert (end.error.type, end.error.block) == ("InvalidCondition", "check")
    assert "input.n + 1 > 2" in end.error.message
    assert end.trace[0].error is not None


async def test_worklet_block_runs_the_child_as_its_own_run(harness: Harness) -> None:
    child = await harness.deploy(
        [
            {
                "id": "double",
                "type": "code",
                "source": "def main(x, env, context):\n"
                "    return {'value': x['value'] * 2, 'parent': context.parent_run_id,"
                " 'trigger': context.trigger}\n",
                "next": "inc",
            },
            {
                "id": "inc",
                "type": "code",
                "source": "def main(x):\n    return {**x, 'value': x['value'] + 1}\n",
            },
        ]
    )
    before = harness.published
    runs_before = (await harness.js.stream_info(harness.names.runs_stream)).state.last_seq
    parent = await harness.deploy(
        [
            {
                "id": "start",
                "type": "code",
                "source": "def main(x):\n    return {'value': x}\n",
                "next": "call",
            },
            {
                "id": "call",
                "type": "worklet",
                "worklet": "the child",
                "worklet_id": child.worklet_id,
                "next": "finish",
            },
            {"id": "finish", "type": "code", "source": "def main(x):\n    return x\n"},
        ],
        app_id=child.app_id,
    )
    end = await harness.invoke(parent, 20)
    assert output(end)["value"] == 41
    call = end.trace[1]
    assert call.type == "worklet" and call.child_run_id
    assert output(end) == {"value": 41, "parent": end.run_id, "trigger": "worklet"}

    child_events = await harness.events.wait(
        call.child_run_id, lambda es: any(isinstance(e, RunSucceeded) for e in es)
    )
    assert [type(e) for e in child_events] == [
        RunQueued,
        RunStarted,
        BlockFinished,
        BlockFinished,
        RunSucceeded,
    ]
    assert all(e.parent_run_id == end.run_id and e.trigger == "worklet" for e in child_events)
    assert all(e.worklet_id == child.worklet_id for e in child_events)
    child_end = child_events[-1]
    assert isinstance(child_end, RunSucceeded) and [b.block for b in child_end.trace] == [
        "double",
        "inc",
    ]
    # Nothing but the parent's own request went through RUNS.
    runs_after = (await harness.js.stream_info(harness.names.runs_stream)).state.last_seq
    assert runs_after - runs_before == harness.published - before == 1


async def test_child_failure_fails_the_parent_naming_the_child_run(harness: Harness) -> None:
    child = await harness.code("def main(x):\n    return 1 / x\n")
    parent = await harness.deploy(
        [{"id": "call", "type": "worklet", "worklet": "c", "worklet_id": child.worklet_id}],
        app_id=child.app_id,
    )
    end = await harness.invoke(parent, 0)
    assert isinstance(end, RunFailed)
    child_run = end.trace[0].child_run_id
    assert child_run is not None
    assert (end.error.type, end.error.block) == ("ZeroDivisionError", "call")
    assert child_run in end.error.message and "division by zero" in end.error.message
    child_end = await harness.events.terminal(child_run)
    assert isinstance(child_end, RunFailed) and child_end.error.block == "main"


async def test_nesting_deeper_than_max_depth_fails(harness: Harness) -> None:
    worklet = await harness.deploy(
        [{"id": "again", "type": "worklet", "worklet": "myself", "worklet_id": "recursive"}],
        worklet_id="recursive",
    )
    end = await harness.invoke(worklet, None)
    assert isinstance(end, RunFailed)
    # max depth 3: the run at depth 3 is refused a child at depth 4; the error bubbles up.
    assert end.error.type == "DepthLimit"
    assert "at most 3 deep" in end.error.message
    chain, run = [], end.run_id
    while children := harness.events.children(run):
        [run] = children
        chain.append(run)
    assert len(chain) == 3


async def test_missing_worklet_version_fails(harness: Harness) -> None:
    worklet = await harness.code("def main():\n    return 1\n")
    run_id = await harness.submit(worklet, version=7)
    end = await harness.events.terminal(run_id)
    assert isinstance(end, RunFailed) and end.error.type == "WorkletNotFound"


async def test_user_exception_fails_with_type_message_block_and_user_traceback(
    harness: Harness,
) -> None:
    worklet = await harness.deploy(
        [
            {
                "id": "first",
                "type": "code",
                "source": "def main(x):\n    return x\n",
                "next": "divide",
            },
            {
                "id": "divide",
                "type": "code",
                "source": "def ratio(a, b):\n    return a / b\n\n"
                "def main(x):\n    print('dividing', x)\n    return ratio(x, 0)\n",
                "function": "main",
            },
        ]
    )
    end = await harness.invoke(worklet, 5)
    assert isinstance(end, RunFailed)
    error = end.error
    assert (error.type, error.message, error.block) == (
        "ZeroDivisionError",
        "division by zero",
        "divide",
    )
    assert error.traceback is not None
    assert "return a / b" in error.traceback and "return ratio(x, 0)" in error.traceback
    assert "services" not in error.traceback and "worker.py" not in error.traceback
    failed = end.trace[-1]
    assert failed.block == "divide" and failed.error == error and failed.logs == ["dividing 5"]


async def test_output_that_is_not_json_is_refused(harness: Harness) -> None:
    worklet = await harness.code("def main():\n    return {'ids': {1, 2}}\n")
    end = await harness.invoke(worklet)
    assert isinstance(end, RunFailed)
    assert (end.error.type, end.error.block) == ("InvalidOutput", "main")
    assert "set" in end.error.message


async def test_print_and_context_log_land_in_the_trace(harness: Harness) -> None:
    worklet = await harness.code(
        "import sys\n"
        "print('loading')\n"
        "def main(x, env, context):\n"
        "    print('input is', x)\n"
        "    context.log('run', context.run_id, 'attempt', context.attempt)\n"
        "    print('to stderr', file=sys.stderr)\n"
        "    return x\n"
    )
    end = await harness.invoke(worklet, 3)
    logs = end.trace[0].logs
    assert logs[-3:] == ["input is 3", f"run {end.run_id} attempt 1", "to stderr"]


async def test_trace_beyond_its_budget_is_truncated(harness: Harness) -> None:
    # WORKLETS_MAX_TRACE_BYTES is 64 KiB for these tests
    big = "x" * 40_000
    worklet = await harness.deploy(
        [
            {
                "id": "a",
                "type": "code",
                "source": f"def main():\n    return '{big}'\n",
                "next": "b",
            },
            {"id": "b", "type": "code", "source": "def main(x):\n    return len(x)\n"},
        ]
    )
    end = await harness.invoke(worklet)
    assert output(end) == 40_000
    first, second = end.trace
    assert len(first.output) == 40_002
    assert msgspec.json.decode(second.input) == {"truncated": True, "bytes": 40_002}


async def test_undecodable_request_is_terminated_and_others_still_run(harness: Harness) -> None:
    worklet = await harness.code("def main(x):\n    return x\n")
    await harness.js.publish(harness.names.runs(worklet.app_id, worklet.worklet_id), b"{not json")
    assert output(await harness.invoke(worklet, "after")) == "after"


async def test_output_over_the_limit_is_refused(harness: Harness) -> None:
    worklet = await harness.code("def main():\n    return 'x' * (3 * 1024 * 1024)\n")
    end = await harness.invoke(worklet)
    assert isinstance(end, RunFailed)
    assert (end.error.type, end.error.block) == ("OutputTooLarge", "main")


SPIN = "def main():\n    while True:\n        pass\n"


async def test_child_that_exceeds_its_own_timeout_fails_the_parent(harness: Harness) -> None:
    child = await harness.code(SPIN, timeout=0.5)
    parent = await harness.deploy(
        [{"id": "call", "type": "worklet", "worklet": "c", "worklet_id": child.worklet_id}],
        app_id=child.app_id,
    )
    end = await harness.invoke(parent, timeout=10)
    assert isinstance(end, RunFailed)  # the parent still had time: the child failed it
    assert (end.error.type, end.error.block) == ("Timeout", "call")
    assert "timeout of 0.5 s" in end.error.message
    child_end = await harness.events.terminal(end.trace[0].child_run_id or "")
    assert isinstance(child_end, RunTimedOut) and child_end.error.block == "main"


async def test_child_is_bounded_by_the_parents_remaining_time(harness: Harness) -> None:
    child = await harness.code(SPIN)  # its own timeout is the default, far longer
    parent = await harness.deploy(
        [{"id": "call", "type": "worklet", "worklet": "c", "worklet_id": child.worklet_id}],
        app_id=child.app_id,
    )
    end = await harness.invoke(parent, timeout=1)
    assert isinstance(end, RunTimedOut)
    assert (end.error.type, end.error.block) == ("Timeout", "call")
    assert end.error.message == "Worklet exceeded its timeout of 1 s"
    assert end.latency_ms < 3000


async def test_a_long_run_shows_progress_while_it_runs(harness: Harness) -> None:
    worklet = await harness.deploy(
        [
            {
                "id": "quick",
                "type": "code",
                "source": "def main(x):\n    return x\n",
                "next": "slow",
            },
            {
                "id": "slow",
                "type": "code",
                "source": "import time\ndef main(x):\n    time.sleep(1)\n    return x\n",
                "next": "last",
            },
            {"id": "last", "type": "code", "source": "def main(x):\n    return x\n"},
        ]
    )
    run_id = await harness.submit(worklet, 1)
    events = await harness.events.wait(
        run_id, lambda es: any(isinstance(e, BlockFinished) for e in es)
    )
    assert [type(e) for e in events] == [RunStarted, BlockFinished]  # the run is still going
    await harness.events.terminal(run_id)
    stored = await harness.stored_events(worklet, run_id)
    assert [type(e) for e in stored] == [RunStarted, *[BlockFinished] * 3, RunSucceeded]
    assert [e.block.block for e in stored if isinstance(e, BlockFinished)] == [
        "quick",
        "slow",
        "last",
    ]


async def test_worklet_block_naming_no_worklet_fails(harness: Harness) -> None:
    worklet = await harness.deploy(
        [{"id": "call", "type": "worklet", "worklet": "ghost", "worklet_id": "nosuchworklet"}]
    )
    end = await harness.invoke(worklet)
    assert isinstance(end, RunFailed)
    assert (end.error.type, end.error.block) == ("WorkletNotFound", "call")
    assert "'ghost'" in end.error.message
    assert end.trace[0].child_run_id is None


async def test_child_ends_are_stored_ahead_of_the_parent_end(harness: Harness) -> None:
    child = await harness.code("def main(x):\n    return x + 1\n")
    call = {"type": "worklet", "worklet": "child", "worklet_id": child.worklet_id}
    parent = await harness.deploy(
        [{"id": "one", **call, "next": "two"}, {"id": "two", **call}], app_id=child.app_id
    )
    end = await harness.invoke(parent, 1)
    assert output(end) == 3
    children = [block.child_run_id for block in end.trace]

    # Every event of the application as the EVENTS stream holds them, in order.
    sub = await harness.js.subscribe(
        harness.names.events_of_app(child.app_id),
        ordered_consumer=True,
        deliver_policy=DeliverPolicy.ALL,
    )
    stored: list[tuple[str, dict[str, str]]] = []
    try:
        while True:
            msg = await sub.next_msg(timeout=5)
            stored.append((msg.subject.rsplit(".", 1)[1], dict(msg.headers or {})))
            if msg.metadata.num_pending == 0:
                break
    finally:
        await sub.unsubscribe()
    kinds = {run: [h[EVENT_KIND_HEADER] for r, h in stored if r == run] for run in children}
    for run in children:
        assert kinds[run] == ["queued", "started", "block_finished", "succeeded"]
    ends = [(run, headers) for run, headers in stored if headers[EVENT_KIND_HEADER] == "succeeded"]
    assert [run for run, _ in ends] == [*children, end.run_id]
    assert all(headers[MSG_ID] == f"{run}.end" for run, headers in ends)
    queued = [(run, h) for run, h in stored if h[EVENT_KIND_HEADER] == "queued"]
    assert all(headers[MSG_ID] == f"{run}.queued" for run, headers in queued)


async def test_a_burst_of_runs_runs_each_once(harness: Harness) -> None:
    worklet = await harness.code("def main(x):\n    return x\n")
    run_ids = [await harness.submit(worklet, n) for n in range(150)]
    for n, run_id in enumerate(run_ids):
        assert output(await harness.events.terminal(run_id, timeout=60)) == n
        started = [e for e in harness.events.runs[run_id] if isinstance(e, RunStarted)]
        assert [e.attempt for e in started] == [1]
