"""`whospoke process` and `job --wait` take live speaker-attributed segments in their stride.

The progress display draws rows from stages and progress; an attributed segment
(like a transcript segment) is content, not progress: it changes no row and
prints nothing, and the result is written from the final event as before.
"""

from __future__ import annotations

import pytest
from rich.console import Console

from whospoke.cli.progress import ProgressView
from whospoke.v1 import orchestrator_pb2 as pb


def test_an_attributed_segment_changes_no_row_and_prints_nothing() -> None:
    warnings: list[str] = []
    live = pb.AttributedSegment(start_seconds=0, end_seconds=1, speaker="SPEAKER_00", text="hi")
    with ProgressView(Console(quiet=True), warnings.append) as view:
        view.show(pb.ProcessEvent(stage=pb.StageStarted(stage=pb.STAGE_TRANSCRIBING)))
        view.show(pb.ProcessEvent(progress=pb.Progress(transcription_percent=40)))
        view.show(pb.ProcessEvent(attributed_segment=live))
        assert view.percent("transcribing") == pytest.approx(40)
        assert not view.finished("transcribing") and view.percent("merging") is None
        view.show(pb.ProcessEvent(result=pb.ProcessResult(segments=[live])))
        assert view.finished("transcribing")
    assert warnings == []
