"""A worker subprocess: runs the code blocks the executor sends it, one call at a time.

Started by the sandbox as ``python -I -B -m services.executor.worker``; confines itself
(``confine.py``), says Ready, then serves Calls until its stdin closes. A block's source is
executed once per worker (the cold start); later calls reuse the loaded function. Whatever a
call prints goes into that block's logs, never onto the protocol pipe.
"""

from __future__ import annotations

import _thread
import argparse
import inspect
import io
import linecache
import os
import re
import sys
import traceback
import types
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, BinaryIO

import msgspec

from services.executor.confine import confine, set_cpu_limit, worker_identity
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
    ToWorker,
    frame,
    memory_error,
    to_worker,
)
from shared.errors import RunErrorType
from shared.schemas import RunError

LOG_LIMIT = 1024 * 1024  # characters of logs kept per call
MAX_MODULES = 256  # loaded blocks kept per worker; the executor resends an evicted source
USER_FILE = "<worklet "  # filenames of user code start with this; tracebacks keep only those


class Channel:
    """Blocking frames: requests on one descriptor, answers on another."""

    def __init__(self, read_fd: int, write_fd: int) -> None:
        self._in: BinaryIO = open(read_fd, "rb", buffering=1 << 16)  # noqa: SIM115
        self._out: BinaryIO = open(write_fd, "wb", buffering=1 << 16)  # noqa: SIM115

    def receive(self) -> ToWorker | None:
        header = self._in.read(HEADER.size)
        if len(header) < HEADER.size:
            return None
        (size,) = HEADER.unpack(header)
        body = self._in.read(size)
        if len(body) < size:
            return None
        return to_worker.decode(body)

    def send(self, message: FromWorker) -> None:
        self._out.write(frame(message))
        self._out.flush()


class Capture(io.TextIOBase):
    """Stands in for stdout and stderr during a call; its text becomes the block's logs."""

    def __init__(self, limit: int = LOG_LIMIT) -> None:
        super().__init__()
        self._parts: list[str] = []
        self._room = limit
        self._dropped = 0

    encoding = "utf-8"

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        kept = text[: max(self._room, 0)]
        self._parts.append(kept)
        self._room -= len(kept)
        self._dropped += len(text) - len(kept)
        return len(text)

    def lines(self) -> list[str]:
        lines = "".join(self._parts).splitlines()
        if self._dropped:
            lines.append(f"[logs truncated: {self._dropped} characters dropped]")
        return lines

    @contextmanager
    def active(self) -> Iterator[None]:
        saved = sys.stdout, sys.stderr
        sys.stdout = sys.stderr = self
        try:
            yield
        finally:
            sys.stdout, sys.stderr = saved


class Context:
    """The ``context`` argument of a block's function."""

    __slots__ = (
        "_active",
        "_capture",
        "_channel",
        "app_id",
        "attempt",
        "block_id",
        "parent_run_id",
        "run_id",
        "trigger",
        "version",
        "worklet_id",
    )

    def __init__(self, info: CallContext, channel: Channel, capture: Capture) -> None:
        self.run_id = info.run_id
        self.worklet_id = info.worklet_id
        self.app_id = info.app_id
        self.version = info.version
        self.block_id = info.block_id
        self.trigger = info.trigger
        self.parent_run_id = info.parent_run_id
        self.attempt = info.attempt
        self._channel = channel
        self._capture = capture
        self._active = True

    def get_secret(self, name: str) -> str:
        """The value of the application's secret ``name``; KeyError when it is not set."""
        if not isinstance(name, str):
            raise TypeError(f"secret name must be str, not {type(name).__name__}")
        if not self._active:
            raise RuntimeError("context.get_secret() can only be called while the block runs")
        self._channel.send(SecretRequest(name=name))
        answer = self._channel.receive()
        if not isinstance(answer, SecretValue):
            os._exit(3)  # the executor is gone or broke the protocol: nothing sane to do
        if answer.value is None:
            raise KeyError(f"Secret {name!r} is not set for this application")
        return answer.value

    def log(self, *args: object) -> None:
        """Add a line to this block's logs."""
        self._capture.write(" ".join(str(a) for a in args) + "\n")

    def close(self) -> None:
        self._active = False

    def __repr__(self) -> str:
        return f"<context run {self.run_id} block {self.block_id}>"


class Rejected(Exception):
    """A call that ends with a platform error (not an exception of the user's code)."""

    def __init__(self, error: RunError) -> None:
        super().__init__(error.message)
        self.error = error


@dataclass(slots=True)
class Loaded:
    function: Callable[..., Any]
    arity: int  # how many of (block_input, env, context) it takes
    is_async: bool
    filename: str
    source: str
    module: str  # its name in sys.modules


def _filename(info: CallContext) -> str:
    return f"{USER_FILE}{info.worklet_id} v{info.version} block {info.block_id}>"


def _remember_lines(filename: str, source: str) -> None:
    linecache.cache[filename] = (len(source), None, source.splitlines(keepends=True), filename)


def _pick(namespace: dict[str, Any], wanted: str | None, filename: str) -> str:
    if wanted is not None:
        return wanted
    top = [
        name
        for name, value in namespace.items()
        if isinstance(value, types.FunctionType)
        and value.__code__.co_filename == filename
        and value.__qualname__ == name
    ]
    return top[0] if len(top) == 1 else "main"


def _arity(function: Callable[..., Any]) -> int:
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return 3
    count = 0
    for p in parameters:
        if p.kind is p.VAR_POSITIONAL:
            return 3
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            count += 1
    return min(count, 3)


def load(call: Call, source: str) -> Loaded:
    """Execute a block's source as a module of its own; raises what its top level raises."""
    info = call.context
    filename = _filename(info)
    _remember_lines(filename, source)
    code = compile(source, filename, "exec", dont_inherit=True)
    name = "worklet_" + re.sub(r"\W", "_", call.key)
    module = types.ModuleType(name)
    sys.modules[name] = module  # dataclasses, pickle and friends look modules up there
    try:
        exec(code, module.__dict__)
    except BaseException:
        del sys.modules[name]
        raise
    wanted = _pick(module.__dict__, call.function, filename)
    function = module.__dict__.get(wanted)
    if not callable(function):
        del sys.modules[name]
        raise Rejected(
            RunError(
                type=RunErrorType.FUNCTION_NOT_FOUND,
                message=f"Block {info.block_id!r} defines no function {wanted!r}",
                block=info.block_id,
            )
        )
    is_async = inspect.iscoroutinefunction(function)
    return Loaded(function, _arity(function), is_async, filename, source, name)


def user_error(exc: BaseException, block: str) -> RunError:
    """The exception as the user should see it: their frames only."""
    frames = [
        f for f in traceback.extract_tb(exc.__traceback__) if f.filename.startswith(USER_FILE)
    ]
    lines = traceback.format_exception_only(type(exc), exc)
    if frames:
        lines = [
            "Traceback (most recent call last):\n",
            *traceback.StackSummary.from_list(frames).format(),
            *lines,
        ]
    return RunError(
        type=type(exc).__name__, message=str(exc), block=block, traceback="".join(lines)
    )


_SCALARS = frozenset({str, int, float, bool, type(None)})


def _is_key(key: object) -> bool:
    """JSON keys are strings; ints are accepted too (written as strings), as json.dumps does."""
    return isinstance(key, str | int) and not isinstance(key, bool)


def first_non_json(value: object) -> str | None:
    """The type name of the first value inside ``value`` that JSON cannot hold, if any.

    Only called on values msgspec has encoded, so there is no cycle to guard against.
    """
    stack = [value]
    while stack:
        item = stack.pop()
        if type(item) in _SCALARS:
            continue
        if isinstance(item, dict):
            for key, inner in item.items():
                if type(key) is not str and not _is_key(key):
                    return f"{type(key).__name__} (as a key)"
                stack.append(inner)
        elif isinstance(item, list | tuple):
            stack.extend(item)
        elif not isinstance(item, str | int | float):  # subclasses, such as enums, are fine
            return type(item).__name__
    return None


def _invalid(block: str, what: str, detail: str) -> Rejected:
    message = f"Block {block!r} {what} that is not JSON: {detail}"
    return Rejected(RunError(type=RunErrorType.INVALID_OUTPUT, message=message, block=block))


def to_json(value: object, what: str, block: str, limit: int) -> bytes:
    try:
        data = msgspec.json.encode(value)
    except (TypeError, ValueError, OverflowError, RecursionError) as err:
        raise _invalid(block, what, str(err)) from None
    if len(data) > limit:
        raise Rejected(
            RunError(
                type=RunErrorType.OUTPUT_TOO_LARGE,
                message=f"Block {block!r} {what} of {len(data)} bytes, "
                f"more than the limit of {limit} bytes",
                block=block,
            )
        )
    # msgspec also encodes sets, datetimes, bytes...: refuse what JSON itself cannot hold
    bad = first_non_json(value)
    if bad is not None:
        raise _invalid(block, what, f"a value of type {bad}")
    return data


def _run_coroutine(awaitable: Any) -> Any:
    import asyncio

    async def wait() -> Any:
        return await awaitable

    return asyncio.run(wait())


class Worker:
    def __init__(self, channel: Channel, memory_mb: int, max_output_bytes: int) -> None:
        self._channel = channel
        self._memory_mb = memory_mb
        self._max_output = max_output_bytes
        self._modules: OrderedDict[str, Loaded] = OrderedDict()
        self._json = msgspec.json.Decoder()

    def serve(self) -> None:
        try:
            while (message := self._channel.receive()) is not None:
                if not isinstance(message, Call):
                    return  # a stray answer: the executor and we disagree, so stop
                result = self._answer(message)
                if _thread._count():  # the call left threads running: they must not see the next
                    result.retire = True
                self._channel.send(result)
                if result.retire:
                    os._exit(0)
        except MemoryError:  # even the answer did not fit: the exit code tells the executor
            os._exit(EXIT_MEMORY)

    def _answer(self, call: Call) -> Result:
        try:
            return self.handle(call)
        except MemoryError:
            pass
        # Out of the handler, the exception and the frames holding the memory are gone.
        return Result(error=memory_error(call.context.block_id, self._memory_mb), retire=True)

    def _get(self, call: Call, capture: Capture) -> Loaded | Result:
        loaded = self._modules.get(call.key)
        if loaded is not None:
            self._modules.move_to_end(call.key)
            return loaded
        if call.source is None:
            return Result(need_source=True)
        try:
            with capture.active():
                loaded = load(call, call.source)
        except Rejected as rejected:
            return Result(error=rejected.error, logs=capture.lines())
        except MemoryError:
            raise
        except BaseException as exc:
            return Result(error=user_error(exc, call.context.block_id), logs=capture.lines())
        self._modules[call.key] = loaded
        while len(self._modules) > MAX_MODULES:
            _, evicted = self._modules.popitem(last=False)
            sys.modules.pop(evicted.module, None)
        return loaded

    def handle(self, call: Call) -> Result:
        set_cpu_limit(call.seconds)
        capture = Capture()
        loaded = self._get(call, capture)
        if isinstance(loaded, Result):
            return loaded
        block = call.context.block_id
        arity = loaded.arity
        # Only a function that takes env can change it: the others' calls skip its round trip.
        env: Any = self._json.decode(call.env) if arity >= 2 else None
        if arity >= 2 and not isinstance(env, dict):
            env = {}
        context = Context(call.context, self._channel, capture)
        args = (self._json.decode(call.input) if arity else None, env, context)[:arity]
        try:
            with capture.active():
                value = loaded.function(*args)
                if loaded.is_async or (type(value) not in _SCALARS and inspect.isawaitable(value)):
                    value = _run_coroutine(value)
        except MemoryError:
            raise
        except BaseException as exc:
            _remember_lines(loaded.filename, loaded.source)
            return Result(error=user_error(exc, block), logs=capture.lines(), loaded=True)
        finally:
            context.close()
        try:
            output = to_json(value, "returned output", block, self._max_output)
            new_env = None if env is None else to_json(env, "left env", block, self._max_output)
        except Rejected as rejected:
            return Result(error=rejected.error, logs=capture.lines(), loaded=True)
        return Result(
            output=output,
            env=None if new_env is None or new_env == call.env else new_env,
            logs=capture.lines(),
            loaded=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(prog="services.executor.worker")
    parser.add_argument("--reply-fd", type=int, required=True)
    parser.add_argument("--memory-mb", type=int, required=True)
    parser.add_argument("--user", required=True)
    parser.add_argument("--max-output-bytes", type=int, required=True)
    args = parser.parse_args()

    parent = os.getppid()
    requests = os.dup(0)  # the protocol keeps stdin; user code reading stdin gets nothing
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.close(devnull)
    channel = Channel(requests, args.reply_fd)
    confine(worker_identity(args.user), args.memory_mb, parent)
    channel.send(Ready(pid=os.getpid(), uid=os.getuid()))
    Worker(channel, args.memory_mb, args.max_output_bytes).serve()


if __name__ == "__main__":
    main()
