"""A pool of warm worker subprocesses that run user code for the executor.

Each worker serves one call at a time; calls queue for a free worker. The pool remembers
which block keys each worker has loaded, so a block's source crosses the pipe once per worker.
A worker that dies, times out or is cancelled mid-call is killed and replaced; only that
call's run is affected.

A worker belongs to the first application whose code it runs, for the rest of its life: module
state, patched built-ins and files in its home are that application's alone. A call takes an
idle worker of its own application, else a fresh one; else, if its application has no worker
or another application's worker has been idle ``PATIENCE``, that worker is stopped and a new
process started in its place for this call (a cold start, the price of isolation when more
applications are busy than there are workers); else it waits for one of its own. A worker back
from a call goes to the first waiting call of its application; an application without a
worker gets one within ``PATIENCE`` (``_waiter_for``). Whenever a fresh worker is claimed and
none is left, the least recently used idle worker of an application holding several is
replaced by a fresh one in the background, so the next application to come usually finds one.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from services.common.wire import expire
from services.executor.confine import Identity, worker_identity
from services.executor.protocol import (
    EXIT_MEMORY,
    HEADER,
    Call,
    CallContext,
    FromWorker,
    Ready,
    Result,
    SecretRequest,
    SecretValue,
    frame,
    from_worker,
    memory_error,
)
from shared.errors import RunErrorType
from shared.schemas import RunError
from shared.settings import ExecutorSettings

log = logging.getLogger(__name__)

SecretLookup = Callable[[str], Awaitable[str | None]]

START_TIMEOUT = 30.0  # seconds a new worker has to say Ready
EXIT_WAIT = 1.0  # seconds a worker has to exit on its own before SIGKILL
RESPAWN_BACKOFF = (0.1, 0.5, 2.0, 5.0)
LOG_ALLOWANCE = 4 * 1024 * 1024  # bytes of logs a frame may carry (the worker keeps 1 Mi chars)
WORKER_PATH = "/usr/local/bin:/usr/bin:/bin"
LOADED_LIMIT = 256  # keys remembered per worker (the worker keeps as many)
PATIENCE = 1.0  # seconds a waiting call lets calls of other applications go first
HOMES_PREFIX = "worklets-executor-"  # {tmp}/worklets-executor-{pid}-*/worker-*: workers' homes


class SandboxError(Exception):
    """The call could not complete for a reason of the sandbox, not of the user's code."""

    def __init__(self, error: RunError) -> None:
        super().__init__(error.message)
        self.error = error


class WorkerExited(Exception):
    """The worker closed its answer pipe or broke the protocol."""


class Answers(asyncio.Protocol):
    """The worker's answer pipe: frames are decoded as they complete and kept for ``receive``.

    One frame usually arrives in one read, and is decoded straight from it.
    """

    def __init__(self, max_frame: int) -> None:
        self._max_frame = max_frame
        self._buffer = bytearray()
        self._frames: deque[FromWorker] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._broken: str | None = None  # why no more frames will come

    @property
    def at_eof(self) -> bool:
        return self._broken is not None and not self._frames

    def data_received(self, data: bytes) -> None:
        if self._broken is not None:
            return
        buffer = self._buffer
        if not buffer and len(data) >= HEADER.size:
            (size,) = HEADER.unpack_from(data)
            if len(data) == HEADER.size + size and size <= self._max_frame:
                self._decode(memoryview(data)[HEADER.size :])
                self._wake()
                return
        buffer += data
        offset, end = 0, len(buffer)
        while end - offset >= HEADER.size:
            (size,) = HEADER.unpack_from(buffer, offset)
            if size > self._max_frame:
                self._break(f"frame of {size} bytes")
                buffer.clear()
                return
            stop = offset + HEADER.size + size
            if stop > end:
                break
            with memoryview(buffer) as view:
                self._decode(view[offset + HEADER.size : stop])
            if self._broken is not None:
                buffer.clear()
                return
            offset = stop
        if offset:
            del buffer[:offset]
        self._wake()

    def _decode(self, body: memoryview) -> None:
        try:
            self._frames.append(from_worker.decode(body))
        except ValueError as err:  # msgspec.DecodeError is a ValueError
            self._break(f"undecodable frame: {err}")
        finally:
            body.release()

    def eof_received(self) -> None:
        self._break("end of answers")

    def connection_lost(self, exc: Exception | None) -> None:
        self._break("end of answers")

    def _break(self, why: str) -> None:
        if self._broken is None:
            self._broken = why
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def receive(self, deadline: float | None = None) -> FromWorker:
        """The next frame; TimeoutError once ``deadline`` (loop time) passes."""
        while not self._frames:
            if self._broken is not None:
                raise WorkerExited(self._broken)
            loop = asyncio.get_running_loop()
            waiter = self._waiter = loop.create_future()
            timer = None if deadline is None else loop.call_at(deadline, expire, waiter)
            try:
                await waiter
            finally:
                self._waiter = None
                if timer is not None:
                    timer.cancel()
        return self._frames.popleft()


def sweep_stale_homes(root: Path) -> None:
    """Remove the worker homes of executors that died without cleaning up (kill -9)."""
    for path in root.glob(f"{HOMES_PREFIX}*"):
        try:
            pid = int(path.name[len(HOMES_PREFIX) :].split("-", 1)[0])
        except ValueError:
            continue
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            log.info("removing %s, left by executor %d", path, pid)
            shutil.rmtree(path, ignore_errors=True)
        except PermissionError:  # alive, as another user
            continue


def worker_env(home: Path) -> dict[str, str]:
    """Built from nothing: no WORKLETS_* or any other variable of the executor."""
    return {
        "PATH": WORKER_PATH,
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "HOME": str(home),
        "TMPDIR": str(home),
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
        "PYTHONIOENCODING": "utf-8",
    }


@dataclass(eq=False)
class Worker:
    popen: subprocess.Popen[bytes]
    answers: Answers
    reading: asyncio.ReadTransport
    writer: asyncio.WriteTransport
    home: Path
    loaded: dict[str, None] = field(default_factory=dict)  # insertion-ordered set
    app_id: str | None = None  # the application whose code it runs; None: fresh
    idle_since: float = 0.0  # loop time it last went idle

    @property
    def pid(self) -> int:
        return self.popen.pid

    def send(self, message: Call | SecretValue) -> None:
        self.writer.write(frame(message))

    async def receive(self) -> FromWorker:
        return await self.answers.receive()

    async def call(self, call: Call, secrets: SecretLookup, deadline: float) -> Result:
        """Send ``call`` and answer its secret requests until its Result; TimeoutError once
        ``deadline`` (loop time) passes."""
        self.send(call)
        while True:
            match await self.answers.receive(deadline):
                case Result() as result:
                    return result
                case SecretRequest(name=name):
                    async with asyncio.timeout_at(deadline):
                        value = await secrets(name)
                    self.send(SecretValue(value=value))
                case other:
                    raise WorkerExited(f"unexpected {type(other).__name__}")

    def remember(self, key: str) -> None:
        self.loaded[key] = None
        if len(self.loaded) > LOADED_LIMIT:
            del self.loaded[next(iter(self.loaded))]

    async def stop(self, wait: float = EXIT_WAIT) -> int:
        """Close its stdin, wait for it to exit (SIGKILL after ``wait``), clean up."""
        self.writer.close()
        try:
            code = await self.exit_code(wait)
            if code is None:
                self.popen.kill()
                code = await self.exit_code(None)
            assert code is not None
            return code
        finally:
            self.reading.close()
            await asyncio.to_thread(shutil.rmtree, self.home, True)

    async def exit_code(self, wait: float | None) -> int | None:
        delay, waited = 0.002, 0.0
        while (code := self.popen.poll()) is None:
            if wait is not None and waited >= wait:
                return None
            await asyncio.sleep(delay)
            waited += delay
            delay = min(delay * 2, 0.05)
        return code


def _crash_error(code: int, block: str, memory_mb: int) -> RunError:
    if code == EXIT_MEMORY:
        return memory_error(block, memory_mb)
    if code < 0:
        try:
            how = f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            how = f"was killed by signal {-code}"
    else:
        how = f"exited with code {code}"
    return RunError(
        type=RunErrorType.WORKER_CRASHED,
        message=f"The worker running block {block!r} {how}",
        block=block,
    )


@dataclass(eq=False)
class Waiter:
    """A call waiting for a worker."""

    app_id: str
    since: float  # loop time
    future: asyncio.Future[Worker]


class Pool:
    """``settings.workers`` warm workers; an async context manager that starts and stops them."""

    def __init__(self, settings: ExecutorSettings) -> None:
        self._settings = settings
        self._identity: Identity | None = worker_identity(settings.worker_user)
        # Last in, first out: sequential calls keep going to the same warm worker.
        self._idle: list[Worker] = []
        self._waiting: deque[Waiter] = deque()  # calls waiting for a worker, oldest first
        self._workers: set[Worker] = set()
        self._respawns: set[asyncio.Task[None]] = set()
        self._starting = 0  # workers being started in the background
        self._patience: asyncio.TimerHandle | None = None  # see _arm_patience
        self._closing = False
        self._max_frame = 2 * settings.max_output_bytes + LOG_ALLOWANCE + 1024 * 1024
        self._homes: Path | None = None

    async def __aenter__(self) -> Pool:
        if self._identity is not None and self._identity.uid == 0:
            log.warning("workers run as root: worker_user %r is root", self._settings.worker_user)
        await asyncio.to_thread(sweep_stale_homes, Path(tempfile.gettempdir()))
        homes = Path(tempfile.mkdtemp(prefix=f"{HOMES_PREFIX}{os.getpid()}-"))
        os.chmod(homes, 0o711)  # a worker can reach its own home, not list the others
        self._homes = homes
        try:
            workers = await asyncio.gather(*(self._spawn() for _ in range(self._settings.workers)))
        except BaseException:
            await self.close()
            raise
        for worker in workers:
            self._give(worker)
        log.info("%d workers ready (pids %s)", len(workers), ", ".join(str(w.pid) for w in workers))
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        self._closing = True
        if self._patience is not None:
            self._patience.cancel()
        for task in self._respawns:
            task.cancel()
        await asyncio.gather(*self._respawns, return_exceptions=True)
        workers, self._workers = list(self._workers), set()
        await asyncio.gather(*(w.stop() for w in workers))
        if self._homes is not None:
            await asyncio.to_thread(shutil.rmtree, self._homes, True)

    async def _spawn(self) -> Worker:
        home = Path(tempfile.mkdtemp(prefix="worker-", dir=self._homes))
        if self._identity is not None:
            os.chown(home, self._identity.uid, self._identity.gid)
        reply_r, reply_w = os.pipe()
        request_r, request_w = os.pipe()
        argv = [
            sys.executable, "-I", "-B", "-m", "services.executor.worker",
            "--reply-fd", str(reply_w),
            "--memory-mb", str(self._settings.worker_memory_mb),
            "--user", self._settings.worker_user,
            "--max-output-bytes", str(self._settings.max_output_bytes),
        ]  # fmt: skip
        try:
            # Spawned from the loop's thread on purpose: the worker's parent-death signal fires
            # when the thread that forked it ends, so not from a pool thread.
            popen = subprocess.Popen(  # noqa: ASYNC220
                argv,
                stdin=request_r,
                stdout=subprocess.DEVNULL,
                stderr=None,  # the worker's own failures land in the executor's log
                env=worker_env(home),
                cwd=home,
                pass_fds=(reply_w,),
                close_fds=True,
            )
        except BaseException:
            os.close(reply_r)
            os.close(request_w)
            shutil.rmtree(home, ignore_errors=True)
            raise
        finally:
            os.close(reply_w)
            os.close(request_r)
        loop = asyncio.get_running_loop()
        replies = os.fdopen(reply_r, "rb", buffering=0)  # owned by the transports from here
        requests = os.fdopen(request_w, "wb", buffering=0)
        answers = Answers(self._max_frame)
        transport, _ = await loop.connect_read_pipe(lambda: answers, replies)
        writer, _ = await loop.connect_write_pipe(asyncio.Protocol, requests)
        worker = Worker(popen, answers, transport, writer, home)
        self._workers.add(worker)
        try:
            async with asyncio.timeout(START_TIMEOUT):
                ready = await worker.receive()
            if not isinstance(ready, Ready):
                raise WorkerExited(f"expected Ready, got {type(ready).__name__}")
        except (WorkerExited, TimeoutError) as err:
            self._workers.discard(worker)
            code = await worker.stop(0)
            raise RuntimeError(
                f"worker {worker.pid} did not start ({err}; exit code {code})"
            ) from None
        except BaseException:
            self._workers.discard(worker)
            await worker.stop(0)
            raise
        log.debug("worker %d ready as uid %d", ready.pid, ready.uid)
        return worker

    def _replace(self, worker: Worker) -> None:
        """Stop ``worker`` (already dead or to be killed) and start another in the background."""
        self._workers.discard(worker)
        self._background(self._respawn(worker), f"respawn {worker.pid}")

    def _background(self, work: Coroutine[Any, Any, Any], name: str) -> None:
        task = asyncio.create_task(work, name=name)
        self._respawns.add(task)
        task.add_done_callback(self._respawns.discard)

    async def _respawn(self, old: Worker | None) -> None:
        """Start a worker for the pool (after stopping ``old``), retrying until it starts."""
        self._starting += 1
        try:
            await self._start_one(old)
        finally:
            self._starting -= 1

    async def _start_one(self, old: Worker | None) -> None:
        if old is not None:
            old.popen.kill()
            await old.stop(0)
        attempt = 0
        while not self._closing:
            try:
                worker = await self._spawn()
            except (OSError, RuntimeError) as err:
                delay = RESPAWN_BACKOFF[min(attempt, len(RESPAWN_BACKOFF) - 1)]
                log.error("starting a worker failed: %s; retrying in %.1fs", err, delay)
                attempt += 1
                await asyncio.sleep(delay)
                continue
            if self._closing:
                self._workers.discard(worker)
                await worker.stop(0)
                return
            if old is not None:
                log.info("worker %d replaced by %d", old.pid, worker.pid)
            self._give(worker)
            return

    def _give(self, worker: Worker) -> None:
        """``worker`` is free: to a call waiting for one (``_waiter_for``), else idle."""
        waiting = self._waiting
        while waiting and waiting[0].future.done():  # expired or cancelled
            waiting.popleft()
        chosen = self._waiter_for(worker)
        if chosen is None:
            worker.idle_since = asyncio.get_running_loop().time()
            self._idle.append(worker)
            self._arm_patience()
            return
        waiting.remove(chosen)
        chosen.future.set_result(worker)

    def _waiter_for(self, worker: Worker) -> Waiter | None:
        """Which waiting call gets ``worker``: the oldest if the worker is fresh; else the
        oldest of the worker's application; else the oldest call, if its application has no
        worker at all and either the worker's application has others or the call has waited
        ``PATIENCE`` (the worker is then replaced for it). None: it stays idle, and calls of
        applications that have workers wait for their own. Taking a busy application's last
        worker at once would only make it take one back, a process start each way."""
        if not self._waiting:
            return None
        oldest, owner = self._waiting[0], worker.app_id
        if owner is None:
            return oldest
        for waiter in self._waiting:
            if waiter.app_id == owner and not waiter.future.done():
                return waiter
        held = self._held()
        if held[oldest.app_id]:
            return None
        waited = asyncio.get_running_loop().time() - oldest.since
        return oldest if held[owner] > 1 or waited >= PATIENCE else None

    def _arm_patience(self) -> None:
        """Workers are idle while the oldest call, of an application without a worker, waits:
        when it has waited ``PATIENCE`` it gets the worker idle longest."""
        if self._patience is not None or not self._waiting or not self._idle:
            return
        oldest = self._waiting[0]
        if self._held()[oldest.app_id]:
            return
        loop = asyncio.get_running_loop()
        self._patience = loop.call_at(oldest.since + PATIENCE, self._on_patience)

    def _on_patience(self) -> None:
        self._patience = None
        idle = self._idle
        if idle and self._waiting:
            self._give(idle.pop(0))  # idle in the order they went idle: the longest first

    async def _wait_for_worker(self, deadline: float, app_id: str) -> Worker:
        loop = asyncio.get_running_loop()
        waiter = Waiter(app_id, loop.time(), loop.create_future())
        self._waiting.append(waiter)
        timer = loop.call_at(deadline, expire, waiter.future)
        try:
            return await waiter.future
        except BaseException:
            future = waiter.future
            if future.done() and not future.cancelled() and future.exception() is None:
                self._give(future.result())  # handed over, but this call is gone: pass it on
            raise
        finally:
            timer.cancel()

    async def _take(self, deadline: float, app_id: str) -> Worker:
        """An idle worker of application ``app_id`` (or fresh) that is still alive; one may die
        between calls (its threads, OOM). TimeoutError once ``deadline`` (loop time) passes with
        none free."""
        while True:
            worker = self._idle_for(app_id) or await self._wait_for_worker(deadline, app_id)
            if worker.popen.poll() is not None or worker.answers.at_eof:
                log.warning(
                    "worker %d died while idle (exit code %s)", worker.pid, worker.popen.returncode
                )
                self._replace(worker)
                continue
            if worker.app_id is None:
                worker.app_id = app_id
                self._top_up(app_id)
            if worker.app_id == app_id:
                return worker
            return await self._fresh_instead(worker, app_id, deadline)

    def _top_up(self, app_id: str) -> None:
        """No fresh worker idle or starting: the least recently used idle worker of another
        application that has more than one is replaced by one."""
        if self._starting or any(worker.app_id is None for worker in self._idle):
            return
        held = self._held()
        for at, worker in enumerate(self._idle):
            if worker.app_id != app_id and held[worker.app_id] > 1:
                del self._idle[at]
                self._replace(worker)
                return

    def _held(self) -> Counter[str | None]:
        """Workers (busy or idle) by application; None: fresh or starting."""
        return Counter(worker.app_id for worker in self._workers)

    def _idle_for(self, app_id: str) -> Worker | None:
        """The idle worker to use: the last one back of this application, else the last fresh
        one. Failing both, with a fresh one starting: None (wait for it). Else the worker idle
        longest, of another application, to be replaced for this call, if this application
        has no worker or that one has been idle ``PATIENCE`` (its application is quiet); else
        None: the call waits for a worker of its own."""
        idle = self._idle
        fresh = None
        for at in range(len(idle) - 1, -1, -1):
            owner = idle[at].app_id
            if owner == app_id:
                return idle.pop(at)
            if owner is None and fresh is None:
                fresh = at
        if fresh is not None:
            return idle.pop(fresh)
        if not idle or self._starting:
            return None
        # idle is in the order workers went idle: the first has been idle longest
        quiet = asyncio.get_running_loop().time() - idle[0].idle_since >= PATIENCE
        if self._held()[app_id] and not quiet:
            return None
        return idle.pop(0)

    async def _fresh_instead(self, worker: Worker, app_id: str, deadline: float) -> Worker:
        """``worker`` ran another application's code: a new process takes its place."""
        log.debug("worker %d of another application is replaced for %s", worker.pid, app_id)
        self._workers.discard(worker)
        worker.popen.kill()
        self._background(worker.stop(0), f"stop {worker.pid}")
        try:
            async with asyncio.timeout_at(deadline):
                fresh = await self._spawn()
        except BaseException:
            self._background(self._respawn(None), "respawn")  # the pool keeps its size
            raise
        fresh.app_id = app_id
        return fresh

    async def call(
        self,
        *,
        key: str,
        source: str,
        function: str | None,
        input: bytes,
        env: bytes,
        context: CallContext,
        deadline: float,
        secrets: SecretLookup,
    ) -> Result:
        """Run one code block. TimeoutError when ``deadline`` (loop time) passes first."""
        worker = await self._take(deadline, context.app_id)
        loop = asyncio.get_running_loop()
        call = Call(
            key=key,
            source=None if key in worker.loaded else source,
            function=function,
            input=input,
            env=env,
            context=context,
            seconds=max(deadline - loop.time(), 0.0),
        )
        try:
            result = await worker.call(call, secrets, deadline)
            if result.need_source:
                call.source = source
                result = await worker.call(call, secrets, deadline)
        except WorkerExited as err:
            code = await worker.exit_code(EXIT_WAIT)
            if code is None:
                log.warning(
                    "run %s: worker %d broke the protocol (%s)", context.run_id, worker.pid, err
                )
                code = -signal.SIGKILL
            self._replace(worker)
            raise SandboxError(
                _crash_error(code, context.block_id, self._settings.worker_memory_mb)
            ) from None
        except BaseException:  # timeout or cancellation: the worker's state is unknown
            self._replace(worker)
            raise
        if result.loaded:
            worker.remember(key)
        else:
            worker.loaded.pop(key, None)
        if result.retire:
            log.info("run %s: worker %d retires after block %s", context.run_id, worker.pid, key)
            self._replace(worker)
        else:
            self._give(worker)
        return result
