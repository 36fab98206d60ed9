"""Running one RunRequest: its events, its blocks in graph order, its deadline and trace.

``docs/internals.md``, "A run, step by step", item 2. Code blocks go to the sandbox; decision
blocks are evaluated here with the condition language; worklet blocks run the child worklet
inline as a run of its own (own id and events, trigger ``worklet``, depth + 1).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import msgspec
from msgspec import Raw

from services.common.ids import new_run_id
from services.common.index import IndexView
from services.common.sealing import Sealer, SealError
from services.executor.events import Ending, Events, RunEvents, kind, meta, now
from services.executor.graph import Graph, Graphs
from services.executor.protocol import EMPTY_ENV, CallContext
from services.executor.sandbox import Pool, SandboxError
from services.executor.trace import Trace
from shared.errors import RunErrorType
from shared.schemas import (
    Block,
    BlockTrace,
    CodeBlock,
    DecisionBlock,
    RunError,
    RunFailed,
    RunRequest,
    RunSucceeded,
    RunTimedOut,
    SecretEntry,
    TerminalEvent,
    WorkletBlock,
    WorkletHead,
    WorkletVersion,
)
from shared.settings import ExecutorSettings
from shared.subjects import SECRET_NAME_PATTERN, Names

log = logging.getLogger(__name__)

T = TypeVar("T")

BLOCK_KINDS: dict[type[Block], str] = {
    CodeBlock: "code",
    DecisionBlock: "decision",
    WorkletBlock: "worklet",
}
_json = msgspec.json.Decoder()


async def shielded(work: Awaitable[T]) -> T:
    """Await ``work`` to the end even if the caller is cancelled meanwhile (then re-raise)."""
    task = asyncio.ensure_future(work)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        await task
        raise


def _loop_now() -> float:
    """The event loop's time, caught up with the clock: uvloop reads it (coarsely) once per
    iteration, so it can lag by a few milliseconds, and a deadline counted from it would cut a
    run short of its timeout."""
    now = asyncio.get_running_loop().time()
    lag = time.monotonic() - now
    return now + lag if 0 < lag < 1 else now  # only when both read the same clock


def seconds(value: float) -> str:
    return str(int(value)) if value == int(value) else f"{value:.2f}".rstrip("0").rstrip(".")


class RunEnded(Exception):
    """Raised inside a run to end it FAILED (or TIMED_OUT)."""

    def __init__(self, error: RunError, *, timed_out: bool = False) -> None:
        super().__init__(error.message)
        self.error = error
        self.timed_out = timed_out


def _failure(type_: str, message: str, block: str | None = None) -> RunEnded:
    return RunEnded(RunError(type=type_, message=message, block=block))


@dataclass(eq=False)
class Run:
    request: RunRequest
    attempt: int
    graph: Graph | None
    deadline: float  # loop time
    trace: Trace
    events: RunEvents
    started: float = field(default_factory=time.perf_counter)
    env: bytes = EMPTY_ENV
    # Ends of its child runs (and theirs) not yet acknowledged: they go out with this run's
    # events, ahead of its own end, and are awaited with it. A child shares its parent's list.
    ends: list[Ending] = field(default_factory=list)
    _env_value: tuple[bytes, Any] | None = None

    @property
    def id(self) -> str:
        return self.request.run_id

    def env_value(self) -> Any:
        """The env decoded, for conditions; decoded again only when a block changed it."""
        if self._env_value is None or self._env_value[0] is not self.env:
            self._env_value = (self.env, _json.decode(self.env))
        return self._env_value[1]

    def latency_ms(self) -> int:
        return int((time.perf_counter() - self.started) * 1000)


class Runtime:
    def __init__(
        self,
        *,
        settings: ExecutorSettings,
        events: Events,
        pool: Pool,
        versions: IndexView[WorkletVersion],
        heads: IndexView[WorkletHead],
        secrets: IndexView[SecretEntry],
    ) -> None:
        self._settings = settings
        self._events = events
        self._pool = pool
        self._versions = versions
        self._heads = heads
        self._secrets = secrets
        self._sealer = Sealer(settings.secrets_key, settings.secrets_previous_keys)
        self._graphs = Graphs()

    # ------------------------------------------------------------ a run's life

    async def start(
        self,
        request: RunRequest,
        attempt: int,
        version: WorkletVersion | None = None,
        parent: Run | None = None,
    ) -> Run:
        """Publish RunStarted and find the version. Transport errors propagate (not started).

        ``version`` and ``parent`` are given for child runs, which also get the RunQueued a
        gateway would send.
        """
        started = time.perf_counter()
        deadline = _loop_now() + request.timeout
        events = self._events.of(request)
        if version is not None:
            events.queued()
        events.started(attempt)
        key = Names.worklet_version(request.app_id, request.worklet_id, request.version)
        if version is None:
            version = await self._versions.get(key)
        graph = None if version is None else self._graphs.get(key, version)
        trace = Trace(self._settings.max_trace_bytes)
        run = Run(request, attempt, graph, deadline, trace, events, started)
        if parent is not None:
            run.ends = parent.ends
        log.debug("run %s: started, attempt %d", run.id, attempt)
        return run

    async def execute(self, run: Run) -> TerminalEvent:
        """Run the blocks; the terminal event, not yet published."""
        event: TerminalEvent
        try:
            if run.graph is None:
                raise _failure(
                    RunErrorType.WORKLET_NOT_FOUND,
                    f"Version {run.request.version} of worklet {run.request.worklet_id!r} "
                    "does not exist",
                )
            output = await self._blocks(run, run.graph)
            if len(output) > self._settings.max_output_bytes:
                raise _failure(
                    RunErrorType.OUTPUT_TOO_LARGE,
                    f"Worklet output of {len(output)} bytes is more than the limit of "
                    f"{self._settings.max_output_bytes} bytes",
                )
            event = RunSucceeded(
                **meta(run.request),
                output=Raw(output),
                latency_ms=run.latency_ms(),
                trace=run.trace.blocks,
            )
        except RunEnded as end:
            ended = RunTimedOut if end.timed_out else RunFailed
            event = ended(
                **meta(run.request),
                error=end.error,
                latency_ms=run.latency_ms(),
                trace=run.trace.blocks,
            )
            log.info(
                "run %s: %s %s in block %s: %s",
                run.id,
                "timed out" if end.timed_out else "failed",
                end.error.type,
                end.error.block,
                end.error.message,
            )
        return event

    async def finish(self, run: Run, event: TerminalEvent) -> None:
        """Store the terminal event (its child runs' ends are ahead of it on the connection,
        and stored too before this returns), then hand it to a waiting caller. Raises a
        transport error when an end could not be stored."""
        ends = run.ends
        try:
            own = run.events.end(event)
            ends.append(own)
            while ends:
                await ends[0].wait()
                del ends[0]
        except BaseException:
            for ending in ends:
                ending.abandon()
            ends.clear()
            raise
        self._events.reply(run.request, kind(event), own.payload)
        log.debug("run %s: %s in %d ms", run.id, type(event).__name__, event.latency_ms)

    def resend(self, request: RunRequest, event: TerminalEvent, payload: bytes) -> None:
        """A redelivered run that had ended: its caller may still wait for the answer."""
        self._events.reply(request, kind(event), payload)

    def give_up(self, request: RunRequest, attempt: int) -> tuple[Run, TerminalEvent]:
        """A run delivered too often: it ends FAILED without running again."""
        run = Run(request, attempt, None, 0.0, Trace(0), self._events.of(request))
        error = RunError(
            type=RunErrorType.REDELIVERY_LIMIT,
            message=f"Run was delivered {attempt} times, more than the limit of "
            f"{self._settings.max_deliveries}; executors kept stopping while running it",
        )
        log.error("run %s: %s", request.run_id, error.message)
        return run, RunFailed(**meta(request), error=error)

    # ------------------------------------------------------------ blocks

    def _timeout(self, run: Run, block: str | None) -> RunEnded:
        error = RunError(
            type=RunErrorType.TIMEOUT,
            message=f"Worklet exceeded its timeout of {seconds(run.request.timeout)} s",
            block=block,
        )
        return RunEnded(error, timed_out=True)

    async def _blocks(self, run: Run, graph: Graph) -> bytes:
        loop = asyncio.get_running_loop()
        value = bytes(run.request.input)
        current, previous = graph.entry, None
        for _ in range(len(graph.blocks) + 1):
            if current is None:
                return value
            block = graph.blocks.get(current)
            if block is None:
                raise _failure(
                    RunErrorType.INVALID_DEFINITION,
                    f"No block {current!r} in the worklet",
                    previous,
                )
            if loop.time() >= run.deadline:
                raise self._timeout(run, block.id)
            previous = current
            current, value = await self._block(run, graph, block, value)
        raise _failure(
            RunErrorType.INVALID_DEFINITION,
            f"The blocks form a cycle through {current!r}",
            previous,
        )

    async def _block(
        self, run: Run, graph: Graph, block: Block, value: bytes
    ) -> tuple[str | None, bytes]:
        trace = BlockTrace(
            block=block.id,
            type=BLOCK_KINDS[type(block)],
            input=Raw(value),
            started_at=now(),
        )
        began = time.perf_counter()
        following: str | None
        try:
            match block:
                case CodeBlock():
                    output = await self._code(run, graph, block, value, trace)
                    following = block.next
                case DecisionBlock():
                    output = value  # a decision passes its input through
                    following = self._decide(run, graph, block, value)
                case WorkletBlock():
                    output = await self._child(run, block, value, trace)
                    following = block.next
        except RunEnded as end:
            if end.error.block is None:
                end.error.block = block.id
            trace.error = end.error
            self._record(run, trace, began)
            raise
        trace.output = Raw(output)
        trace.next = following
        self._record(run, trace, began)
        return following, output

    def _record(self, run: Run, trace: BlockTrace, began: float) -> None:
        trace.duration_ms = round((time.perf_counter() - began) * 1000, 3)
        run.events.block(run.trace.add(trace))

    async def _code(
        self, run: Run, graph: Graph, block: CodeBlock, value: bytes, trace: BlockTrace
    ) -> bytes:
        request = run.request
        app = request.app_id

        async def secret(name: str) -> str | None:
            if SECRET_NAME_PATTERN.fullmatch(name) is None:
                return None
            entry = await self._secrets.get(Names.secret(app, name))
            if entry is None:
                return None
            try:
                return self._sealer.open(app, name, entry.sealed)
            except SealError as err:  # another key: the operator's mistake, said in the run
                log.error("run %s: %s", request.run_id, err)
                raise _failure(RunErrorType.SECRET_UNREADABLE, str(err)) from None

        context = CallContext(
            run_id=request.run_id,
            worklet_id=request.worklet_id,
            app_id=app,
            version=request.version,
            block_id=block.id,
            trigger=request.trigger,
            parent_run_id=request.parent_run_id,
            attempt=run.attempt,
        )
        try:
            result = await self._pool.call(
                key=graph.code_key(block.id),
                source=block.source,
                function=block.function,
                input=value,
                env=run.env,
                context=context,
                deadline=run.deadline,
                secrets=secret,
            )
        except TimeoutError:
            raise self._timeout(run, block.id) from None
        except SandboxError as err:
            log.warning("run %s: %s", run.id, err.error.message)
            raise RunEnded(err.error) from None
        trace.logs = result.logs
        if result.env is not None:
            run.env = result.env
        if result.error is not None:
            raise RunEnded(result.error)
        return result.output

    def _decide(self, run: Run, graph: Graph, block: DecisionBlock, value: bytes) -> str | None:
        try:
            rules = graph.rules(block)
        except ValueError as err:  # ConditionError
            raise _failure(
                RunErrorType.INVALID_CONDITION, f"A condition of block {block.id!r}: {err}"
            ) from None
        if rules:
            data, env = _json.decode(value), run.env_value()
            for rule in rules:
                try:
                    if rule.test(data, env):
                        return rule.next
                except Exception as err:  # any failure of a condition is the definition's
                    raise _failure(
                        RunErrorType.INVALID_CONDITION,
                        f"Condition {rule.when!r} of block {block.id!r} failed: {err}",
                    ) from None
        return block.default

    async def _child(self, run: Run, block: WorkletBlock, value: bytes, trace: BlockTrace) -> bytes:
        parent = run.request
        depth = parent.depth + 1
        worklet = block.worklet_id or block.worklet
        if depth > self._settings.max_depth:
            raise _failure(
                RunErrorType.DEPTH_LIMIT,
                f"Block {block.id!r} calls worklet {block.worklet!r} at nesting depth {depth}; "
                f"worklet blocks may nest at most {self._settings.max_depth} deep",
            )
        head = await self._heads.get(Names.worklet_head(parent.app_id, worklet))
        version = None
        if head is not None:
            key = Names.worklet_version(parent.app_id, worklet, head.version)
            version = await self._versions.get(key)
        if head is None or version is None:
            raise _failure(
                RunErrorType.WORKLET_NOT_FOUND,
                f"Block {block.id!r} calls worklet {block.worklet!r}, which does not exist",
            )
        own = self._settings.run_timeout(head.settings, background=False)
        remaining = run.deadline - _loop_now()
        request = RunRequest(
            run_id=new_run_id(),
            app_id=parent.app_id,
            worklet_id=worklet,
            version=head.version,
            trigger="worklet",
            input=Raw(value),
            timeout=max(min(own, remaining), 0.001),
            background=parent.background,
            queued_at=now(),
            parent_run_id=parent.run_id,
            depth=depth,
        )
        trace.child_run_id = request.run_id
        log.debug("run %s: block %s starts child run %s", run.id, block.id, request.run_id)
        child = await self.start(request, 1, version, parent=run)
        ended = await self.execute(child)
        # Sent with the parent's events (now, if they are released), ahead of the parent's end;
        # acknowledged before the parent's caller is answered (``finish``).
        run.ends.append(child.events.end(ended, parent=run.events))
        match ended:
            case RunSucceeded(output=output):
                return bytes(output)
            case RunTimedOut() if remaining <= own:  # the parent's time ran out
                raise self._timeout(run, block.id)
            case RunFailed(error=error) | RunTimedOut(error=error):
                raise RunEnded(
                    RunError(
                        type=error.type,
                        message=f"Child run {request.run_id} of worklet {worklet!r} failed"
                        + (f" in block {error.block!r}" if error.block else "")
                        + f": {error.message}",
                        block=block.id,
                        traceback=error.traceback,
                    )
                )
        raise AssertionError(f"unexpected terminal event {type(ended).__name__}")
