"""Where to cut a growing audio buffer so each piece can be transcribed at once.

Whisper decodes 30-second windows, and an encoder pass costs the same whether a
window holds 2 or 30 seconds of speech. The planner therefore cuts only in
silence that voice activity detection has confirmed (a speech region is closed
once enough silence follows it), and packs as many closed regions as fit in one
window. When audio arrives faster than it is transcribed, windows fill up
(throughput); when it arrives live, each region is cut as soon as it closes
(latency). That adaptation makes the pieces depend on arrival timing, which only
live audio needs: for a file, planning waits until more than one analysis span
has arrived (or the stream has ended), so each plan sees exactly the same audio
on every run and the output depends on the audio alone. Pure functions: the
engine supplies the speech regions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from whospoke.common.audio import SAMPLE_RATE

WINDOW_SAMPLES = 30 * SAMPLE_RATE
"""Audio one Whisper pass decodes."""
FIRST_WINDOW_SAMPLES = 10 * SAMPLE_RATE
"""Speech packed into a stream's first piece: its text comes out sooner, for one extra pass."""
ANALYSIS_SAMPLES = 60 * SAMPLE_RATE
"""Most audio VAD looks at per plan; enough to find a full window."""
FIRST_ANALYSIS_SAMPLES = 30 * SAMPLE_RATE
"""Audio VAD looks at to plan a stream's first piece (`FIRST_WINDOW_SAMPLES` of speech):
half the usual span is VAD time saved before the first segment (0.1 s of 1.3 s on 2 CPU
cores with Whisper base)."""
KEEP_BEFORE_SPEECH = SAMPLE_RATE
"""Silence kept in front of the buffer when non-speech is dropped."""
KEPT_SILENCE = 2 * SAMPLE_RATE
"""Silences shorter than this stay in what Whisper decodes: faster-whisper's own VAD,
run on each piece, only removes silences of 2 s or more (`min_silence_duration_ms`)."""
PACK_SAMPLES = WINDOW_SAMPLES - SAMPLE_RATE
"""Audio packed into one piece: a window, less a second for VAD finding slightly
different edges in the piece than in the whole buffer."""


def batch_span(pieces: int) -> int:
    """Audio analysed per plan of a file decoded `pieces` windows at a time: enough for a
    full batch of pieces and the region still open after them."""
    return max(ANALYSIS_SAMPLES, (pieces + 2) * WINDOW_SAMPLES)


@dataclass(frozen=True)
class Region:
    """A speech region in samples, relative to the start of the buffer."""

    start: int
    end: int


@dataclass(frozen=True)
class Plan:
    """What to do with the first `cut` samples of the buffer."""

    cut: int
    transcribe: bool


def plan_window(
    regions: Sequence[Region],
    analysed: int,
    buffered: int,
    final: bool,
    vad_filter: bool,
    window: int = PACK_SAMPLES,
    live: bool = True,
    span: int = ANALYSIS_SAMPLES,
) -> Plan | None:
    """Decide the next piece of the buffer to transcribe, or None to wait for audio.

    `regions` are the speech regions VAD found in the first `analysed` samples of a
    buffer of `buffered` samples; a region ending before `analysed` is closed.
    Closed regions are packed up to `window` samples of audio for Whisper. Unless `live`, no
    plan is made from a partial analysis span: strictly more than `span` samples
    must be buffered, or the stream must have ended.
    """
    if buffered == 0 or (not live and not final and buffered <= span):
        return None
    if final and buffered <= span:
        # Every region is closed at the end; pack them as everywhere else (the first
        # piece stays short), and give the last piece the rest of the buffer.
        cut = _pack(regions, vad_filter, window)
        if cut is not None and cut < regions[-1].end:
            return Plan(cut, transcribe=True)
        return Plan(buffered, transcribe=bool(regions) or not vad_filter)
    closed = [r for r in regions if r.end < analysed]
    cut = _pack(closed, vad_filter, window)
    if cut is not None:
        return Plan(cut, transcribe=True)
    if not regions and analysed > KEEP_BEFORE_SPEECH and vad_filter:
        return Plan(analysed - KEEP_BEFORE_SPEECH, transcribe=False)
    if regions and regions[0].start > KEEP_BEFORE_SPEECH and vad_filter:
        return Plan(regions[0].start - KEEP_BEFORE_SPEECH, transcribe=False)
    if analysed >= WINDOW_SAMPLES and (final or not vad_filter or analysed >= span):
        return Plan(WINDOW_SAMPLES, transcribe=True)
    return None


def plan_batch(
    regions: Sequence[Region],
    analysed: int,
    buffered: int,
    final: bool,
    vad_filter: bool,
    pieces: int,
    window: int = PACK_SAMPLES,
    span: int = ANALYSIS_SAMPLES,
) -> list[Plan]:
    """The next cuts of a complete file's buffer, up to `pieces` of them to transcribe.

    Plans as `plan_window` does for a file (so the output depends on the audio
    alone), then goes on planning inside the same analysed span, so that one
    batched decoder pass takes several pieces. Each cut is relative to the end of
    the one before. Empty: wait for audio.
    """
    plans: list[Plan] = []
    consumed = 0
    while sum(p.transcribe for p in plans) < pieces:
        shifted = [
            Region(r.start - consumed, r.end - consumed) for r in regions if r.start >= consumed
        ]
        plan = plan_window(
            shifted,
            analysed - consumed,
            buffered - consumed,
            final,
            vad_filter,
            window if not plans else PACK_SAMPLES,
            live=False,
            span=span - consumed,
        )
        if plan is None or plan.cut <= 0:
            break
        plans.append(plan)
        consumed += plan.cut
        if consumed >= buffered:
            break
    return plans


def _pack(closed: Sequence[Region], vad_filter: bool, window: int) -> int | None:
    """End of the last closed region whose piece Whisper still decodes in one window.

    With VAD filtering Whisper sees the speech and the silences shorter than
    `KEPT_SILENCE` between it; without, the whole span from the buffer start.
    A piece that overflows its window loses speech without a trace: Whisper
    does not transcribe the utterance the window's end cuts through (its text
    ends with the utterance before), and the second window, holding only the
    rest of that utterance, is judged silence. Issue 19's French prompt went so.
    """
    cut: int | None = None
    used = 0
    for region in closed:
        if vad_filter:
            gap = region.start - cut if cut is not None else 0
            used += region.end - region.start + (gap if gap < KEPT_SILENCE else 0)
        else:
            used = region.end
        if used > window and cut is not None:
            break
        cut = region.end
        if used > window:
            break
    return cut
