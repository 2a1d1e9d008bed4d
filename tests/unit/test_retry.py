"""A backend stream that fails UNAVAILABLE is made again once, without repeating events."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from orchestrator.domain import Progressed, TranscriptDone
from orchestrator.retry import retried_once
from whospoke.common.errors import InvalidArgument, Unavailable
from whospoke.contract.transcription import Segment, SpeechWarning

Event = Progressed | Segment | SpeechWarning | TranscriptDone


def segment(index: int) -> Segment:
    return Segment(index, float(index), index + 0.9, f" {index}")


def run(fail_after: int | None, error: Exception) -> AsyncIterator[Event]:
    async def events() -> AsyncIterator[Event]:
        script: list[Event] = [
            segment(0),
            Progressed(1.0),
            SpeechWarning("no_text", "speech without text", 1.0, 2.0),
            segment(1),
            Progressed(2.0),
            segment(2),
            Progressed(3.0),
            TranscriptDone("en", "base"),
        ]
        for position, event in enumerate(script):
            if position == fail_after:
                raise error
            yield event

    return events()


async def collect(calls: list[int | None], error: Exception) -> list[Event]:
    def start() -> AsyncIterator[Event]:
        return run(calls.pop(0), error)

    return [e async for e in retried_once(start, "transcriber")]


async def test_the_second_call_goes_on_where_the_first_stopped() -> None:
    events = await collect([5, None], Unavailable("transcriber: connection reset"))
    assert events == [e async for e in run(None, Exception())]


async def test_one_retry_only_and_only_for_unavailable() -> None:
    with pytest.raises(Unavailable):
        await collect([2, 3], Unavailable("down"))
    calls: list[int | None] = [1, None]
    with pytest.raises(InvalidArgument):
        await collect(calls, InvalidArgument("config.language: unknown"))
    assert calls == [None]  # never called again
