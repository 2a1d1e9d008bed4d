"""One stream of faster-whisper transcription, decoded incrementally.

Each stream buffers audio; `run` asks the window planner what part of the buffer
is ready (cut in VAD-confirmed silence), transcribes it, and drops it. A file's
stream plans a batch of pieces at once and decodes them in one batched pass
(transcriber/batched.py), for throughput; a live or multilingual one decodes each
piece as it closes with `transcribe`, and a live one may send an utterance's words
before it closes (transcriber/early.py). Each piece is decoded on its own: the
client's prompt conditions every piece, the text of earlier ones does not (it made
Whisper repeat earlier phrases on repetitive speech). The language detected first
is kept, unless the stream is multilingual (transcriber/languages.py).

Each piece's segments pass a `PieceReview` (transcriber/review.py): loops and
speech left without text are decoded again, what stays lost is named by a warning.
A progress marker follows every segment and every piece.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import nullcontext
from dataclasses import replace
from functools import partial
from typing import Any

import numpy as np
from faster_whisper import WhisperModel

from transcriber.batched import Batch, Piece, converted, shifted
from transcriber.coverage import Span
from transcriber.decoding import decode_alone, decoding
from transcriber.domain import Transcribed, TranscriptionItem
from transcriber.early import EarlyTimings, EarlyWords, unsent_spans
from transcriber.languages import language_runs
from transcriber.model_process import ModelPool, Stopped
from transcriber.review import PieceReview
from transcriber.vad import EARLY_VAD, LIVE_VAD, PLANNING_VAD, SPEECH_PAD, speech_regions
from transcriber.windows import (
    ANALYSIS_SAMPLES,
    FIRST_ANALYSIS_SAMPLES,
    FIRST_WINDOW_SAMPLES,
    PACK_SAMPLES,
    Plan,
    Region,
    batch_span,
    plan_batch,
    plan_window,
)
from whospoke.common.audio import SAMPLE_RATE, Samples, seconds
from whospoke.contract.transcription import (
    LanguageShare,
    Segment,
    SpeechWarning,
    TranscriptionOptions,
    language_shares,
)

logger = logging.getLogger(__name__)

TAIL_TOLERANCE = 0.5
"""Seconds before the end of speech at which a decoded segment counts as the last."""


class WhisperSession:
    """The buffer and decoding state of one stream."""

    def __init__(
        self,
        model: WhisperModel,
        options: TranscriptionOptions,
        batch_size: int = 1,
        pool: ModelPool | None = None,
        timings: EarlyTimings | None = None,
    ) -> None:
        self._base, self._pool = model, pool
        self._model = model
        self._options = options
        self._batched = not options.live and not options.multilingual
        early = options.live and not options.multilingual and options.vad_filter
        self._early = EarlyWords(timings) if timings and early else None
        """Sending live words early (None: off, the engine's `live_early_words`)."""
        self._vad = LIVE_VAD if options.live else PLANNING_VAD
        self._batch_size = batch_size
        self._span = batch_span(batch_size) if self._batched else ANALYSIS_SAMPLES
        self._lock = threading.Lock()
        self._parts: list[Samples] = []
        self._buffered = 0
        self._received = 0
        self._committed = 0
        self._decoded = 0.0
        self._next_index = 0
        self._language = options.language or ""
        known = {options.language: [1.0]} if options.language else {}
        self._probabilities: dict[str, list[float]] = known
        self._spoken: dict[str, float] = {}
        self._spoken_languages: list[str] = []
        """Languages decoded so far (multilingual), the one in use last."""

    @property
    def received_seconds(self) -> float:
        return seconds(self._received)

    @property
    def transcribed_seconds(self) -> float:
        """Audio whose text has all been sent: the piece in progress counts up to its
        last segment sent."""
        return max(seconds(self._committed), self._decoded)

    @property
    def buffered_seconds(self) -> float:
        return seconds(self._buffered)

    @property
    def language(self) -> tuple[str, float]:
        """The most spoken language so far (else the one in use), with the mean
        probability of its detections."""
        shares = self.languages
        language = shares[0].language if shares else self._language
        found = self._probabilities.get(language, [])
        return language, sum(found) / len(found) if found else 0.0

    @property
    def languages(self) -> list[LanguageShare]:
        return language_shares(self._spoken.items())

    def push(self, samples: Samples) -> None:
        with self._lock:
            self._parts.append(samples)
            self._buffered += samples.size
            self._received += samples.size

    def run(self, final: bool, stop: threading.Event) -> Iterator[TranscriptionItem]:
        """Decode what is ready; `stop` ends it at the next stage, or at once in a model
        process (transcriber/model_process.py), which the lease then replaces."""
        lease = self._pool.lease(self._base, stop) if self._pool else nullcontext(self._base)
        try:
            with lease as model:
                self._model = model
                yield from self._run(final, stop)
        except Stopped:
            return
        finally:
            self._model = self._base  # the lease's model is not ours once it is returned

    def _run(self, final: bool, stop: threading.Event) -> Iterator[TranscriptionItem]:
        while not stop.is_set():
            buffer = self._snapshot()
            regions = self._speech(buffer, final)
            plans = self._plan(regions, buffer.size, final)
            if not plans:
                if (
                    self._early
                    and not final
                    and self._early.due(regions, buffer.size, self._received)
                ):
                    yield from self._send_words(buffer, buffer.size, regions, stop)
                    self._drop(self._early.start())
                return
            start = 0
            pieces: list[tuple[int, Piece]] = []
            for plan in plans:
                if plan.transcribe:
                    inside = [
                        Region(r.start - start, r.end - start)
                        for r in regions
                        if r.start >= start and r.end <= start + plan.cut
                    ]
                    pieces.append((start, Piece(buffer[start : start + plan.cut], inside)))
                start += plan.cut
            if self._batched:
                yield from self._decode_batch(pieces, stop)
            else:
                for base, piece in pieces:
                    if self._early and self._early.floor > base:  # its first words are sent
                        end = base + piece.audio.size
                        yield from self._send_words(buffer, end, regions, stop, closed=True)
                    else:
                        began = time.perf_counter()
                        yield from self._transcribe(piece, base, stop)
                        if self._early:
                            self._early.timed(time.perf_counter() - began)
            if stop.is_set():
                return
            self._drop(start)
            yield Transcribed(self.transcribed_seconds)

    def _plan(self, regions: list[Region], buffered: int, final: bool) -> list[Plan]:
        """The next cuts: one piece at a time live, up to a batch of pieces for a file."""
        window = FIRST_WINDOW_SAMPLES if self._next_index == 0 else PACK_SAMPLES
        span = self._current_span()
        analysed = min(buffered, span)
        vad_filter = self._options.vad_filter
        if not self._batched:
            plan = plan_window(
                regions, analysed, buffered, final, vad_filter, window, self._options.live
            )
            return [plan] if plan else []
        pieces = 1 if self._next_index == 0 else self._batch_size
        return plan_batch(regions, analysed, buffered, final, vad_filter, pieces, window, span)

    def _current_span(self) -> int:
        """Audio analysed per plan; a file's first piece (decoded alone, for a quick first
        segment) is planned from the first `FIRST_ANALYSIS_SAMPLES`, without waiting for a
        batch."""
        return FIRST_ANALYSIS_SAMPLES if self._next_index == 0 else self._span

    def _snapshot(self) -> Samples:
        with self._lock:
            if len(self._parts) > 1:
                self._parts = [np.concatenate(self._parts)]
            return self._parts[0] if self._parts else np.zeros(0, dtype=np.float32)

    def _drop(self, count: int) -> None:
        if self._early:
            self._early.dropped(count)
        with self._lock:
            merged = np.concatenate(self._parts) if len(self._parts) > 1 else self._parts[0]
            rest = merged[count:]
            self._parts = [rest] if rest.size else []
            self._buffered -= count
            self._committed += count

    def _speech(self, buffer: Samples, final: bool) -> list[Region]:
        early = self._early is not None and self._early.fast
        return speech_regions(
            buffer, self._current_span(), final, EARLY_VAD if early else self._vad
        )

    def _transcribe(
        self, piece: Piece, base: int, stop: threading.Event
    ) -> Iterator[TranscriptionItem]:
        """Decode one piece (from sample `base` of the buffer); a multilingual stream's
        piece run by run of one language."""
        audio, regions = piece.audio, list(piece.regions)
        if not self._options.multilingual:
            yield from self._decode(audio, base, regions, self._language, stop)
            return
        runs, self._spoken_languages = language_runs(audio, self._detect, self._spoken_languages)
        for run in runs:
            if run.probability:
                self._probabilities.setdefault(run.language, []).append(run.probability)
            inside = [
                Region(max(r.start, run.start) - run.start, min(r.end, run.end) - run.start)
                for r in regions
                if r.start < run.end and r.end > run.start
            ]
            piece_run = audio[run.start : run.end]
            yield from self._decode(piece_run, base + run.start, inside, run.language, stop)
            if stop.is_set():
                return

    def _decode_batch(
        self, pieces: list[tuple[int, Piece]], stop: threading.Event
    ) -> Iterator[TranscriptionItem]:
        """Decode a file's pieces in one batched pass (transcriber/batched.py), then
        review and send each piece's segments in order."""
        if not pieces:
            return
        batch = Batch(self._model, [piece for _, piece in pieces], stop)
        if not self._language:
            self._found_language(*batch.language())
        language = self._language
        decoded = batch.decode(language, self._decoding(language))
        for (base, piece), segments in zip(pieces, decoded, strict=True):
            offset = seconds(self._committed + base)
            spans = [
                Span(offset + seconds(r.start), offset + seconds(r.end)) for r in piece.regions
            ]

            alone = partial(self._decode_alone, piece.audio, offset, language, stop)
            review = PieceReview(spans, alone)
            for segment in segments:
                yield from self._emit(review.add(shifted(segment, offset)))
                yield Transcribed(self.transcribed_seconds)
                if stop.is_set():
                    return
            yield from self._emit(review.finish(offset + seconds(piece.audio.size)))

    def _found_language(self, language: str, probability: float) -> None:
        """Record a language detected on the stream's first piece."""
        self._probabilities.setdefault(language, []).append(probability)
        self._language = self._language or language
        self._spoken_languages = [*(x for x in self._spoken_languages if x != language), language]

    def _detect(self, audio: Samples) -> list[tuple[str, float]]:
        _, _, detection = self._model.detect_language(audio)
        return [(language, float(probability)) for language, probability in detection]

    def _decode(
        self,
        audio: Samples,
        start: int,
        regions: list[Region],
        language: str,
        stop: threading.Event,
    ) -> Iterator[TranscriptionItem]:
        """Decode `audio` (from sample `start` of the piece) with faster-whisper's own
        VAD filter, as for a whole file, in `language` ("" to detect it).

        Within the piece the decoder does not condition on its own output, which
        avoids Whisper's repetition loops on repetitive speech. A piece ends in
        silence: once the text reaches the end of the last speech region, decoding
        the rest costs temperature fallbacks and yields invented words, so the
        segment generator is not asked for more. Each segment passes the piece's
        review first, which may decode parts of the piece again (`_decode_alone`).
        """
        segments, info = self._model.transcribe(
            audio, vad_filter=self._options.vad_filter, **self._decoding(language)
        )
        if not language:
            language = info.language
            self._found_language(language, float(info.language_probability))
        speech_end = seconds(regions[-1].end - SPEECH_PAD) if regions else seconds(audio.size)
        offset = seconds(self._committed + start)
        spans = [Span(offset + seconds(r.start), offset + seconds(r.end)) for r in regions]
        alone = partial(self._decode_alone, audio, offset, language, stop)
        review = PieceReview(spans, alone)
        for raw in segments:
            yield from self._emit(review.add(converted(raw, offset, language)))
            yield Transcribed(self.transcribed_seconds)
            if stop.is_set() or raw.end >= speech_end - TAIL_TOLERANCE:
                break
        if not stop.is_set():
            yield from self._emit(review.finish(offset + seconds(audio.size)))

    def _send_words(
        self,
        buffer: Samples,
        end: int,
        regions: list[Region],
        stop: threading.Event,
        closed: bool = False,
    ) -> Iterator[TranscriptionItem]:
        """Decode the unsent speech before sample `end` of the buffer and send its words
        (transcriber/early.py): those ending `hold` before the end while the utterance is
        open, all of them once it has `closed` (`end` is then a planned cut)."""
        early, began = self._early, time.perf_counter()
        if early is None or end <= early.floor:
            return
        early.tried, first = self._received, early.start()
        hold = 0 if closed else early.hold
        audio = buffer[first:end]
        decoding = {**self._decoding(self._language), "word_timestamps": True}
        raw, info = self._model.transcribe(audio, vad_filter=self._options.vad_filter, **decoding)
        if not self._language:
            self._found_language(info.language, float(info.language_probability))
        language, base = self._language, seconds(self._committed)
        offset, floor, until = (
            base + seconds(first),
            base + seconds(early.floor),
            base + seconds(end - hold),
        )
        spans = unsent_spans(regions, early.floor, end - hold, base)
        review = PieceReview(spans, partial(self._decode_alone, audio, offset, language, stop))
        sent = floor
        for part in early.parts((converted(r, offset, language) for r in raw), floor, until):
            yield from self._emit(review.add(part))
            yield Transcribed(self.transcribed_seconds)
            sent = part.end
            if stop.is_set():
                return
        yield from self._emit(review.finish(until if closed else sent))
        early.floor = max(early.floor, round((sent - base) * SAMPLE_RATE))
        early.timed(time.perf_counter() - began)

    def _decoding(self, language: str) -> dict[str, Any]:
        return decoding(self._options, language)

    def _decode_alone(
        self, audio: Samples, offset: float, language: str, stop: threading.Event, span: Span
    ) -> list[Segment]:
        """`span` of the piece `audio` decoded again on its own (transcriber/decoding.py)."""
        return decode_alone(self._model, self._decoding(language), audio, offset, stop, span)

    def _emit(self, items: Iterable[Segment | SpeechWarning]) -> Iterator[TranscriptionItem]:
        """Number the segments in the order they are sent; note how far the text reaches."""
        for item in items:
            if isinstance(item, SpeechWarning):
                logger.info("%s: %s", item.code, item.message)
                yield item
                continue
            self._decoded = max(self._decoded, item.end)
            if not self._options.word_timestamps:
                item = replace(item, words=())  # a live stream's words were decoded to cut by
            self._spoken[item.language] = (
                self._spoken.get(item.language, 0.0) + item.end - item.start
            )
            yield replace(item, index=self._next_index)
            self._next_index += 1
