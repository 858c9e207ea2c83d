"""The worker's graceful shutdown: stop taking work, let running commands finish, hand back the rest."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from nats.errors import TimeoutError as NatsTimeout

from tests.helpers.waiting import wait_until
from worker.consumer import Consumer
from worker.executor import Notification, Outcome


class FakeMessage:
    def __init__(self, command_id: int) -> None:
        self.data = orjson.dumps({"execution_id": 1, "event_id": command_id, "command_id": command_id})
        self.outcome: str | None = None

    async def ack(self) -> None:
        self.outcome = "ack"

    async def nak(self, delay: float | None = None) -> None:
        self.outcome = "nak"

    async def term(self) -> None:
        self.outcome = "term"


class FakeSubscription:
    def __init__(self, messages: list[FakeMessage]) -> None:
        self.messages = messages
        self.fetches = 0

    async def fetch(self, batch: int, timeout: float) -> list[FakeMessage]:  # noqa: ASYNC109 (nats' API)
        self.fetches += 1
        if not self.messages:
            await asyncio.sleep(min(timeout, 0.05))
            raise NatsTimeout
        return [self.messages.pop(0)]

    async def unsubscribe(self) -> None:
        pass


class FakeJetStream:
    def __init__(self, subscription: FakeSubscription) -> None:
        self.subscription = subscription

    async def pull_subscribe(self, *args: Any, **kwargs: Any) -> FakeSubscription:
        return self.subscription


class SlowExecutor:
    """Each command takes `seconds[command_id]`; records which started and which finished."""

    def __init__(self, seconds: dict[int, float]) -> None:
        self.seconds = seconds
        self.started: list[int] = []
        self.finished: list[int] = []

    async def handle(self, note: Notification) -> str:
        self.started.append(note.command_id)
        await asyncio.sleep(self.seconds[note.command_id])
        self.finished.append(note.command_id)
        return Outcome.DONE


def consumer(
    messages: list[FakeMessage], executor: SlowExecutor, *, concurrency: int, grace: float
) -> Consumer:
    return Consumer(
        FakeJetStream(FakeSubscription(messages)),
        executor,  # type: ignore[arg-type]
        stream="S",
        consumer="c",
        pools=("shared",),
        concurrency=concurrency,
        ack_wait=30,
        grace=grace,
    )


async def test_running_commands_finish_within_the_grace_and_no_new_work_is_taken() -> None:
    first, second, third = FakeMessage(1), FakeMessage(2), FakeMessage(3)
    executor = SlowExecutor({1: 0.3, 2: 0.3, 3: 0.01})
    intake = consumer([first, second, third], executor, concurrency=2, grace=5.0)
    await intake.start()
    await wait_until(lambda: len(executor.started) == 2, what="two commands running")
    async with asyncio.timeout(3):
        await intake.shutdown()
    assert executor.finished == [1, 2]
    assert (first.outcome, second.outcome) == ("ack", "ack")
    # 3 was never taken: both slots were busy when the stop came, and no fetch followed it.
    assert executor.started == [1, 2]
    assert third.outcome is None


async def test_commands_still_running_after_the_grace_are_handed_back() -> None:
    slow, quick = FakeMessage(1), FakeMessage(2)
    executor = SlowExecutor({1: 30.0, 2: 0.01})
    intake = consumer([slow, quick], executor, concurrency=4, grace=0.2)
    await intake.start()
    await wait_until(
        lambda: executor.finished == [2] and len(executor.started) == 2, what="one done, one running"
    )
    async with asyncio.timeout(3):
        await intake.shutdown()
    assert executor.finished == [2]
    assert (slow.outcome, quick.outcome) == ("nak", "ack")
