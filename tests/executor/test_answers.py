"""The executor's end of a worker's answer pipe: frames however the pipe cuts them."""

from __future__ import annotations

import asyncio

import pytest

from services.executor.protocol import Ready, Result, SecretRequest, frame
from services.executor.sandbox import Answers, WorkerExited

READY = Ready(pid=7, uid=8)
RESULT = Result(output=b'{"greeting": "hello"}', logs=["a line"])
SECRET = SecretRequest(name="api_token")
FRAMES = b"".join(bytes(frame(m)) for m in (READY, RESULT, SECRET))


async def receive_all(answers: Answers, count: int) -> list[object]:
    return [await answers.receive() for _ in range(count)]


async def test_frames_cut_anywhere_come_out_whole_and_in_order() -> None:
    for cut in range(1, len(FRAMES)):
        answers = Answers(max_frame=1024)
        answers.data_received(FRAMES[:cut])
        answers.data_received(FRAMES[cut:])
        assert await receive_all(answers, 3) == [READY, RESULT, SECRET]


async def test_a_byte_at_a_time() -> None:
    answers = Answers(max_frame=1024)
    for byte in FRAMES:
        answers.data_received(bytes([byte]))
    assert await receive_all(answers, 3) == [READY, RESULT, SECRET]


async def test_a_waiting_receive_gets_the_frame_when_it_arrives() -> None:
    answers = Answers(max_frame=1024)
    waiting = asyncio.ensure_future(answers.receive())
    await asyncio.sleep(0)
    assert not waiting.done()
    answers.data_received(bytes(frame(RESULT)))
    assert await waiting == RESULT


async def test_end_of_pipe_after_the_last_frame() -> None:
    answers = Answers(max_frame=1024)
    answers.data_received(bytes(frame(RESULT)))
    answers.eof_received()
    assert not answers.at_eof  # one frame still to read
    assert await answers.receive() == RESULT
    assert answers.at_eof
    with pytest.raises(WorkerExited, match="end of answers"):
        await answers.receive()


async def test_end_of_pipe_wakes_a_waiting_receive() -> None:
    answers = Answers(max_frame=1024)
    waiting = asyncio.ensure_future(answers.receive())
    await asyncio.sleep(0)
    answers.connection_lost(None)
    with pytest.raises(WorkerExited, match="end of answers"):
        await waiting


@pytest.mark.parametrize("split", [False, True])
async def test_a_frame_over_the_limit_breaks_the_protocol(split: bool) -> None:
    data = bytes(frame(RESULT))
    answers = Answers(max_frame=len(data) - 5)
    if split:
        answers.data_received(data[:3])
        answers.data_received(data[3:])
    else:
        answers.data_received(data)
    with pytest.raises(WorkerExited, match="frame of"):
        await answers.receive()


@pytest.mark.parametrize("split", [False, True])
async def test_an_undecodable_frame_breaks_the_protocol(split: bool) -> None:
    answers = Answers(max_frame=1024)
    if split:
        answers.data_received(b"\x00\x00\x00\x03a")
        answers.data_received(b"bc" + bytes(frame(READY)))
    else:
        answers.data_received(b"\x00\x00\x00\x03abc")
    with pytest.raises(WorkerExited, match="undecodable frame"):
        await answers.receive()
    answers.data_received(bytes(frame(READY)))  # nothing more is read once broken
    assert answers.at_eof


async def test_receive_gives_up_at_the_deadline() -> None:
    answers = Answers(max_frame=1024)
    loop = asyncio.get_running_loop()
    with pytest.raises(TimeoutError):
        await answers.receive(deadline=loop.time() + 0.05)
    # a frame that comes afterwards is still there for the next receive
    answers.data_received(bytes(frame(RESULT)))
    assert await answers.receive(deadline=loop.time() + 1) == RESULT
