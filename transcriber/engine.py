"""faster-whisper behind the `TranscriptionEngine` protocol, transcribing incrementally.

Each stream buffers audio; `run` asks the window planner what part of the buffer
is ready (cut in VAD-confirmed silence), transcribes it, and drops it. Pieces
start and end at utterance boundaries, so each is decoded on its own: the
client's initial prompt conditions every piece, but the text of earlier pieces
does not. Carrying it over (as text or as tokens) made Whisper repeat earlier
phrases on repetitive speech and cost several points of WER on the Asterisk
prompts; without it the stream matches whole-file accuracy (BENCHMARKS.md). The
language detected on the first piece is kept for the rest of the stream.

Each piece's segments go through a `PieceReview` before they are sent: a
repetition loop is decoded again, speech left without text is decoded again on
its own, and what stays lost is named by a warning (see transcriber/review.py).
A progress marker follows every segment and every piece, so the audio reported
transcribed advances with each Whisper window decoded (CTranslate2 reports
nothing inside one window; a piece is one window unless its speech runs on
without a pause).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Iterator
from dataclasses import replace
from functools import partial
from typing import Any

import ctranslate2
import numpy as np
from faster_whisper import WhisperModel
from faster_whisper.vad import VadOptions, get_speech_timestamps

from transcriber.config import ModelConfig
from transcriber.coverage import Span
from transcriber.domain import EngineInfo, Transcribed, TranscriptionItem
from transcriber.review import PieceReview
from transcriber.windows import (
    ANALYSIS_SAMPLES,
    FIRST_WINDOW_SAMPLES,
    PACK_SAMPLES,
    Region,
    plan_window,
)
from whospoke.common.audio import SAMPLE_RATE, Samples, seconds
from whospoke.common.errors import InvalidArgument, Unavailable, quoted
from whospoke.common.models import resolve_whisper
from whospoke.contract.transcription import Segment, SpeechWarning, TranscriptionOptions, Word

logger = logging.getLogger(__name__)

PLANNING_VAD = VadOptions(min_silence_duration_ms=1000, max_speech_duration_s=28)
"""VAD settings: a region closes after 1 s of silence; long ones split before 30 s."""
SPEECH_PAD = PLANNING_VAD.speech_pad_ms * SAMPLE_RATE // 1000
"""Samples of padding VAD adds after the last speech frame of a region."""
TAIL_TOLERANCE = 0.5
"""Seconds before the end of speech at which a decoded segment counts as the last."""
END_PADDING = np.zeros(int(1.5 * SAMPLE_RATE), dtype=np.float32)
"""Silence appended (for VAD only) at the end of a stream so its last region closes."""
ALONE_PAD = 0.2
"""Seconds of context kept around a stretch decoded again on its own."""


def resolve_device(device: str) -> str:
    if device != "auto":
        return device
    return "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"


def resolve_compute_type(compute_type: str, device: str) -> str:
    if compute_type != "auto":
        return compute_type
    return "float16" if device == "cuda" else "int8"


class FasterWhisperEngine:
    """One WhisperModel, loaded once, shared by up to `workers` concurrent streams."""

    def __init__(self, config: ModelConfig, workers: int = 1) -> None:
        self._config = config
        self._workers = workers
        self._device = resolve_device(config.device)
        self._compute_type = resolve_compute_type(config.compute_type, self._device)
        self._model: WhisperModel | None = None

    @property
    def ready(self) -> bool:
        return self._model is not None

    def load(self) -> None:
        resolved = resolve_whisper(self._config.model)
        logger.info(
            "loading Whisper %s from %s on %s (%s)",
            resolved.name,
            resolved.location,
            self._device,
            self._compute_type,
        )
        self._model = WhisperModel(
            resolved.location,
            device=self._device,
            device_index=self._config.device_index,
            compute_type=self._compute_type,
            cpu_threads=self._config.cpu_threads,
            num_workers=self._workers,
            local_files_only=resolved.embedded,
        )

    @property
    def model(self) -> WhisperModel:
        if self._model is None:
            raise Unavailable("the Whisper model is still loading; retry shortly")
        return self._model

    def info(self) -> EngineInfo:
        model = self._model
        multilingual = bool(model.model.is_multilingual) if model else False
        return EngineInfo(
            model=self._config.model,
            device=self._device,
            device_index=self._config.device_index,
            compute_type=self._compute_type,
            multilingual=multilingual,
            languages=tuple(model.supported_languages) if model else (),
            cpu_threads=self._config.cpu_threads,
        )

    def validate(self, options: TranscriptionOptions) -> None:
        model = self.model
        languages = model.supported_languages
        if options.language is not None and options.language not in languages:
            raise InvalidArgument(
                f"config.language: unknown or unsupported language code "
                f"{quoted(options.language)} for model {self._config.model!r}; "
                f"use one of {', '.join(languages)} or leave it empty to detect"
            )
        if options.task == "translate" and not model.model.is_multilingual:
            raise InvalidArgument(
                f"config.task: model {self._config.model!r} is English-only and cannot translate"
            )

    def open_session(self, options: TranscriptionOptions) -> WhisperSession:
        return WhisperSession(self.model, options)


class WhisperSession:
    """The buffer and decoding state of one stream."""

    def __init__(self, model: WhisperModel, options: TranscriptionOptions) -> None:
        self._model = model
        self._options = options
        self._lock = threading.Lock()
        self._parts: list[Samples] = []
        self._buffered = 0
        self._received = 0
        self._committed = 0
        self._decoded = 0.0
        self._next_index = 0
        self._language = options.language or ""
        self._language_probability = 1.0 if options.language else 0.0

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
        return self._language, self._language_probability

    def push(self, samples: Samples) -> None:
        with self._lock:
            self._parts.append(samples)
            self._buffered += samples.size
            self._received += samples.size

    def run(self, final: bool, stop: threading.Event) -> Iterator[TranscriptionItem]:
        while not stop.is_set():
            buffer = self._snapshot()
            regions = self._speech(buffer, final)
            plan = plan_window(
                regions,
                min(buffer.size, ANALYSIS_SAMPLES),
                buffer.size,
                final,
                self._options.vad_filter,
                FIRST_WINDOW_SAMPLES if self._next_index == 0 else PACK_SAMPLES,
                live=self._options.live,
            )
            if plan is None:
                return
            if plan.transcribe:
                inside = [r for r in regions if r.end <= plan.cut]
                yield from self._transcribe(buffer[: plan.cut], inside, stop)
            if stop.is_set():
                return
            self._drop(plan.cut)
            yield Transcribed(self.transcribed_seconds)

    def _snapshot(self) -> Samples:
        with self._lock:
            if len(self._parts) > 1:
                self._parts = [np.concatenate(self._parts)]
            return self._parts[0] if self._parts else np.zeros(0, dtype=np.float32)

    def _drop(self, count: int) -> None:
        with self._lock:
            merged = np.concatenate(self._parts) if len(self._parts) > 1 else self._parts[0]
            rest = merged[count:]
            self._parts = [rest] if rest.size else []
            self._buffered -= count
            self._committed += count

    def _speech(self, buffer: Samples, final: bool) -> list[Region]:
        """Speech regions of the analysed part of the buffer.

        At the end of the stream the audio is padded with silence for VAD, so the
        last region ends where its speech does rather than at the end of the audio.
        """
        analysed = buffer[:ANALYSIS_SAMPLES]
        closing = final and buffer.size <= ANALYSIS_SAMPLES
        padded = np.concatenate([analysed, END_PADDING]) if closing else analysed
        return [
            Region(r["start"], min(r["end"], analysed.size))
            for r in get_speech_timestamps(padded, PLANNING_VAD)
            if r["start"] < analysed.size
        ]

    def _transcribe(
        self, audio: Samples, regions: list[Region], stop: threading.Event
    ) -> Iterator[TranscriptionItem]:
        """Decode one piece with faster-whisper's own VAD filter, as for a whole file.

        Within the piece the decoder does not condition on its own output, which
        avoids Whisper's repetition loops on repetitive speech. A piece ends in
        silence: once the text reaches the end of the last speech region, decoding
        the rest costs temperature fallbacks and yields invented words, so the
        segment generator is not asked for more. Each segment passes the piece's
        review first, which may decode parts of the piece again (`_decode_alone`).
        """
        segments, info = self._model.transcribe(
            audio, vad_filter=self._options.vad_filter, **self._decoding()
        )
        if not self._language:
            self._language = info.language
            self._language_probability = float(info.language_probability)
        speech_end = seconds(regions[-1].end - SPEECH_PAD) if regions else seconds(audio.size)
        offset = seconds(self._committed)
        spans = [Span(offset + seconds(r.start), offset + seconds(r.end)) for r in regions]
        review = PieceReview(spans, partial(self._decode_alone, audio, offset, stop))
        for raw in segments:
            yield from self._emit(review.add(self._convert(raw, offset)))
            yield Transcribed(self.transcribed_seconds)
            if stop.is_set() or raw.end >= speech_end - TAIL_TOLERANCE:
                break
        if not stop.is_set():
            yield from self._emit(review.finish(offset + seconds(audio.size)))

    def _decoding(self) -> dict[str, Any]:
        """The decoder settings every pass of this stream shares.

        By default decoding is deterministic (beam search at temperature 0
        only): faster-whisper's temperature fallback samples at random when a
        window's text repeats or scores low, and then the same file gives
        different text from run to run (seen on the Spanish prompts of issue 19
        and a meeting recording). Loops, the fallback's main target, are handled
        by the review instead, deterministically; on the Asterisk and sample
        references the word error rate is unchanged. A client that asks for a
        temperature above 0 gets sampling at that one temperature (no fallback
        ladder either): its runs differ, by its choice.
        """
        options = self._options
        return {
            "language": self._language or None,
            "task": options.task,
            "beam_size": options.beam_size,
            "word_timestamps": options.word_timestamps,
            "initial_prompt": options.initial_prompt,
            "hotwords": options.hotwords,
            "condition_on_previous_text": False,
            "temperature": options.temperature,
        }

    def _decode_alone(
        self, audio: Samples, offset: float, stop: threading.Event, span: Span
    ) -> list[Segment]:
        """Decode `span` (absolute seconds) of the piece `audio` on its own, unfiltered.

        A second chance for speech the piece's pass left without text, or turned
        into a loop: a window of its own, and no segment skipped as non-speech,
        so that the review sees what the model makes of it and says why it drops it.
        """
        first = max(0, int((span.start - offset - ALONE_PAD) * SAMPLE_RATE))
        last = min(audio.size, int((span.end - offset + ALONE_PAD) * SAMPLE_RATE))
        if last <= first:
            return []
        segments, _ = self._model.transcribe(
            audio[first:last], vad_filter=False, no_speech_threshold=None, **self._decoding()
        )
        decoded: list[Segment] = []
        for raw in segments:
            if stop.is_set():
                break
            decoded.append(self._convert(raw, offset + seconds(first)))
        return decoded

    def _emit(self, items: Iterable[Segment | SpeechWarning]) -> Iterator[TranscriptionItem]:
        """Number the segments in the order they are sent; note how far the text reaches."""
        for item in items:
            if isinstance(item, SpeechWarning):
                logger.info("%s: %s", item.code, item.message)
                yield item
                continue
            self._decoded = max(self._decoded, item.end)
            yield replace(item, index=self._next_index)
            self._next_index += 1

    def _convert(self, raw: Any, offset: float) -> Segment:
        words = tuple(
            Word(float(w.start) + offset, float(w.end) + offset, w.word, float(w.probability))
            for w in raw.words or ()
        )
        return Segment(
            index=0,
            start=float(raw.start) + offset,
            end=float(raw.end) + offset,
            text=raw.text,
            words=words,
            avg_logprob=float(raw.avg_logprob),
            no_speech_prob=float(raw.no_speech_prob),
            compression_ratio=float(raw.compression_ratio),
        )
