"""The live progress display of `whospoke process`, driven by `ProcessEvent`s.

Each stage has a row whose bar follows the work the server reports and whose timer
stops when the stage ends (rich stops `TimeElapsedColumn` once a task is finished).
A row only reaches 100 % when its stage is over: by the server's `*_done` flags, or
when a later stage starts (servers that predate those flags), so a bar never claims
completion while the work goes on.
"""

from __future__ import annotations

from collections.abc import Callable

from rich.console import Console
from rich.progress import BarColumn, Progress, Task, TaskID, TextColumn, TimeElapsedColumn

from whospoke.v1 import orchestrator_pb2 as pb

ALMOST = 99.9
"""Where a running stage's bar waits for the stage to end."""
ROWS = {
    pb.STAGE_DECODING: "decoding",
    pb.STAGE_TRANSCRIBING: "transcribing",
    pb.STAGE_DIARIZING: "diarizing",
    pb.STAGE_MERGING: "merging",
}
EARLIER = {
    "decoding": ("queued",),
    "transcribing": ("queued", "decoding"),
    "diarizing": ("queued", "decoding"),
    "merging": ("queued", "decoding", "transcribing", "diarizing"),
}
"""The rows a stage's start ends."""
FAILED = {"diarization_failed": "diarizing", "transcription_failed": "transcribing"}
"""Warnings that end a row without completing it."""


def warning_line(warning: pb.Warning) -> str:
    """One line per server warning, with the stretch of audio it concerns."""
    where = ""
    if warning.end_seconds > warning.start_seconds:
        where = f" ({warning.start_seconds:.1f} to {warning.end_seconds:.1f} s)"
    message = " ".join(warning.message.split())
    return f"whospoke: warning: {warning.code}: {message}{where}"


class ProgressView:
    """Rows per stage on `console` (stderr); warnings go to `warn` as single lines."""

    def __init__(self, console: Console, warn: Callable[[str], None]) -> None:
        self._progress = Progress(
            TextColumn("{task.description:<14}"),
            BarColumn(),
            TextColumn("{task.percentage:>5.1f} %"),
            TextColumn("{task.fields[note]}"),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        )
        self._warn = warn
        self._tasks: dict[str, TaskID] = {}
        self._failed: set[str] = set()

    def __enter__(self) -> ProgressView:
        return self

    def __exit__(self, *_: object) -> None:
        if self._tasks:
            self._progress.stop()

    def percent(self, name: str) -> float | None:
        """A row's percentage (None when the row does not exist): for tests."""
        if name not in self._tasks:
            return None
        return float(self._task(name).percentage)

    def finished(self, name: str) -> bool:
        """Whether a row's stage has ended, done or failed (its timer stopped)."""
        return name in self._failed or (name in self._tasks and self._task(name).finished)

    def show(self, event: pb.ProcessEvent) -> None:
        kind = event.WhichOneof("event")
        if kind == "queued":
            self._progress.update(self._row("queued"), note=f"position {event.queued.position}")
        elif kind == "stage" and event.stage.stage in ROWS:
            name = ROWS[event.stage.stage]
            self._finish(*EARLIER[name])
            self._row(name)
        elif kind == "progress":
            self._advance(event.progress)
        elif kind == "warning":
            self._warn(warning_line(event.warning))
            failed = FAILED.get(event.warning.code)
            if failed in self._tasks and not self.finished(failed):
                self._failed.add(failed)  # its timer stops; its bar stays where it got to
                self._progress.update(self._tasks[failed], note="failed")
                self._progress.stop_task(self._tasks[failed])
        elif kind == "result":
            self._finish(*self._tasks)

    def _advance(self, p: pb.Progress) -> None:
        self._set("decoding", p.decoding_percent, done=p.decoding_percent >= 100)
        self._set("transcribing", p.transcription_percent, done=p.transcription_done)
        if "transcribing" in self._tasks:
            self._progress.update(self._tasks["transcribing"], note=f"{p.segment_count} segments")
        self._set("diarizing", p.diarization_percent, done=p.diarization_done)

    def _set(self, name: str, percent: float, done: bool) -> None:
        """Move a row forward (never back); only `done` completes it."""
        if name not in self._tasks or self.finished(name):
            return
        task = self._tasks[name]
        if done:
            self._progress.update(task, completed=100)
            return
        current = self._task(name).completed
        self._progress.update(task, completed=max(current, min(percent, ALMOST)))

    def _finish(self, *names: str) -> None:
        for name in names:
            if name in self._tasks and not self.finished(name):
                self._progress.update(self._tasks[name], completed=100)

    def _task(self, name: str) -> Task:
        return next(t for t in self._progress.tasks if t.id == self._tasks[name])

    def _row(self, name: str) -> TaskID:
        if name not in self._tasks:
            if not self._tasks:  # the display starts with its first row: no blank line before
                self._progress.start()  # an error that came before any event
            self._tasks[name] = self._progress.add_task(name, total=100, note="")
        return self._tasks[name]
