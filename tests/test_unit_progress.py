"""`ProgressPump` driven by a real async callback: batching, the size cap, keepalives, cancel and
a failing client. No kernel, no server; every wait is bounded."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator

import anyio
import pytest
from anyio.streams.memory import MemoryObjectReceiveStream

from python_mcp_server.services.outputs import ProgressPump

pytestmark = pytest.mark.anyio

QUIET_S = 60.0  # a keepalive interval no test reaches


class Sink:
    """The progress callback: passes each message to the test; holds the pump while `gate` is
    closed, as a slow client would."""

    def __init__(self) -> None:
        self._send, self.received = anyio.create_memory_object_stream[str](100)
        self.gate: anyio.Event | None = None

    async def __call__(self, message: str) -> None:
        await self._send.send(message)
        if self.gate is not None:
            await self.gate.wait()

    def close(self) -> None:
        self._send.close()
        self.received.close()


async def next_message(received: MemoryObjectReceiveStream[str]) -> str:
    with anyio.fail_after(5):
        return await received.receive()


async def stop(pump: ProgressPump) -> asyncio.Task[None] | None:
    task = pump.cancel()
    if task is not None:
        with anyio.fail_after(5):
            await asyncio.wait([task])
    return task


@pytest.fixture
async def sink() -> AsyncIterator[Sink]:
    sink = Sink()
    yield sink
    sink.close()


async def test_text_pushed_together_goes_out_as_one_message(sink: Sink) -> None:
    pump = ProgressPump(sink, keepalive_s=QUIET_S, interval_s=0)
    pump.start()
    pump.push("stdout", "a")
    pump.push("stderr", "b\n")
    pump.push("stdout", "")
    pump.push("stdout", "c")
    assert await next_message(sink.received) == "a[stderr] b\nc"
    await stop(pump)


async def test_text_pushed_while_a_message_is_being_sent_goes_out_next_as_one(
    sink: Sink,
) -> None:
    sink.gate = anyio.Event()
    pump = ProgressPump(sink, keepalive_s=QUIET_S, interval_s=0)
    pump.start()
    pump.push("stdout", "first\n")
    assert await next_message(sink.received) == "first\n"
    pump.push("stdout", "x")
    pump.push("stdout", "y")
    sink.gate.set()
    assert await next_message(sink.received) == "xy"
    await stop(pump)


async def test_a_message_over_the_cap_keeps_the_latest_text_and_says_how_much_was_skipped(
    sink: Sink,
) -> None:
    pump = ProgressPump(sink, keepalive_s=QUIET_S, interval_s=0, max_chars=5)
    pump.start()
    pump.push("stdout", "abcdefgh")
    assert await next_message(sink.received) == (
        "[... 3 characters not streamed; all output is in the result]\ndefgh"
    )
    await stop(pump)


async def test_text_piling_up_past_twice_the_cap_is_trimmed_as_it_arrives(sink: Sink) -> None:
    pump = ProgressPump(sink, keepalive_s=QUIET_S, interval_s=0, max_chars=5)
    pump.push("stdout", "abcdefghij")
    pump.push("stdout", "k")
    pump.push("stdout", "l")
    pump.start()
    assert await next_message(sink.received) == (
        "[... 7 characters not streamed; all output is in the result]\nhijkl"
    )
    await stop(pump)


async def test_the_skipped_count_starts_again_after_each_message(sink: Sink) -> None:
    sink.gate = anyio.Event()
    pump = ProgressPump(sink, keepalive_s=QUIET_S, interval_s=0, max_chars=3)
    pump.start()
    pump.push("stdout", "123456")
    assert await next_message(sink.received) == (
        "[... 3 characters not streamed; all output is in the result]\n456"
    )
    pump.push("stdout", "ab")
    sink.gate.set()
    assert await next_message(sink.received) == "ab"
    await stop(pump)


async def test_a_silent_cell_sends_keepalives(sink: Sink) -> None:
    pump = ProgressPump(sink, keepalive_s=0.01, interval_s=0)
    pump.start()
    first = await next_message(sink.received)
    second = await next_message(sink.received)
    assert re.fullmatch(r"still running \(\d+ s\)", first)
    assert re.fullmatch(r"still running \(\d+ s\)", second)
    await stop(pump)


async def test_output_goes_out_before_a_keepalive_would(sink: Sink) -> None:
    sink.gate = anyio.Event()
    pump = ProgressPump(sink, keepalive_s=0.01, interval_s=0)
    pump.start()
    assert (await next_message(sink.received)).startswith("still running (")
    pump.push("stdout", "news")
    sink.gate.set()
    assert await next_message(sink.received) == "news"
    await stop(pump)


async def test_cancel_drops_the_pending_batch(sink: Sink) -> None:
    pump = ProgressPump(sink, keepalive_s=QUIET_S, interval_s=0)
    pump.start()
    pump.push("stdout", "never sent")
    task = await stop(pump)
    assert task is not None
    assert task.cancelled()
    pump.push("stdout", "after the cancel")
    assert sink.received.statistics().current_buffer_used == 0


async def test_cancel_while_a_message_is_being_sent_ends_the_pump(sink: Sink) -> None:
    sink.gate = anyio.Event()  # never opened: the client does not answer
    pump = ProgressPump(sink, keepalive_s=QUIET_S, interval_s=0)
    pump.start()
    pump.push("stdout", "stuck")
    assert await next_message(sink.received) == "stuck"
    task = await stop(pump)
    assert task is not None
    assert task.cancelled()


async def test_cancel_before_start_has_no_task() -> None:
    async def send(message: str) -> None:
        raise AssertionError(message)

    pump = ProgressPump(send, keepalive_s=QUIET_S)
    assert pump.cancel() is None


async def test_a_failing_client_stops_the_streaming_but_not_the_caller(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls: list[str] = []
    failed = anyio.Event()

    async def send(message: str) -> None:
        calls.append(message)
        failed.set()
        raise ConnectionResetError("client went away")

    pump = ProgressPump(send, keepalive_s=QUIET_S, interval_s=0)
    with caplog.at_level(logging.ERROR):
        pump.start()
        pump.push("stdout", "one")
        with anyio.fail_after(5):
            await failed.wait()
        pump.push("stdout", "two")
        task = await stop(pump)
    assert task is not None
    assert (task.cancelled(), task.exception()) == (False, None)
    assert calls == ["one"]
    assert caplog.messages == ["sending a progress notification failed; streaming stopped"]
