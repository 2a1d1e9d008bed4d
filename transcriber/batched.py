"""Several pieces of a complete file decoded in one batched Whisper pass.

A file's stream does not need the low latency of a live one, so its pieces are
decoded the way faster-whisper's `BatchedInferencePipeline` decodes a whole
file: each piece holds only its speech (the pauses the planner measured as long
are removed), fills one 30-second window, and several windows go through the
encoder and the beam search together. Against decoding pieces one by one with
`WhisperModel.transcribe`, this saves the second, nearly empty window that its
seek loop spends on the tail of almost every piece, the second VAD pass over
each piece, and (batching) most of the per-window overhead of CTranslate2 on
CPU as on GPU. What a window's decoder leaves unfinished at its end is not
returned; the piece's review (transcriber/review.py) finds such speech without
text and decodes it again on its own.

The pipeline's `forward` is faster-whisper's own code (pinned version); times
come back in the piece's speech-only timeline and are mapped to the stream's.

A cancelled stream stops the pass between its stages (encoder, beam search,
word alignment). CTranslate2 cannot interrupt a stage: on CPU the model runs in
a child process that the cancel kills (transcriber/model_process.py); in
process (on a GPU) the stage in flight is the most a cancel waits for.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from faster_whisper import BatchedInferencePipeline, WhisperModel
from faster_whisper.audio import pad_or_trim
from faster_whisper.tokenizer import Tokenizer
from faster_whisper.transcribe import TranscriptionOptions as WhisperOptions
from faster_whisper.transcribe import get_compression_ratio, get_suppressed_tokens
from faster_whisper.vad import SpeechTimestampsMap

from transcriber.model_process import Stopped
from transcriber.review import LOGPROB_LIMIT, NO_SPEECH_LIMIT
from transcriber.windows import KEPT_SILENCE, Region
from whospoke.common.audio import SAMPLE_RATE, Samples, seconds
from whospoke.contract.transcription import Segment, Word, ends_sentence

PUNCTUATION_BEFORE = "\"'\u201c\u00bf([{-"
PUNCTUATION_AFTER = "\"'.\u3002,\uff0c!\uff01?\uff1f:\uff1a\u201d)]}\u3001"
"""faster-whisper's defaults: punctuation merged into the word before or after it."""
SEGMENT_PAUSE = 1.0
"""Seconds between two words that start a new segment even mid-sentence."""


@dataclass(frozen=True)
class Piece:
    """One piece to decode: its audio, and the speech regions in it (piece samples)."""

    audio: Samples
    regions: Sequence[Region]

    def speech(self) -> list[Region]:
        """What the decoder hears: the regions, joined across pauses shorter than
        `KEPT_SILENCE` (kept, as the planner counted them), the whole piece without VAD."""
        if not self.regions:
            return [Region(0, self.audio.size)]
        joined = [self.regions[0]]
        for region in self.regions[1:]:
            last = joined[-1]
            if region.start - last.end < KEPT_SILENCE:
                joined[-1] = Region(last.start, max(last.end, region.end))
            else:
                joined.append(region)
        return joined


class _Stoppable:
    """`model` for the batched pipeline, checking `stop` around its long stages.

    The pipeline calls `encode`, then the CTranslate2 beam search, then
    `add_word_timestamps`; raising `Stopped` after the encoder or before the
    alignment leaves the pass at the first boundary after a cancel. The encoder
    output of the batch's features is kept, so that detecting the language and
    decoding share one encoder pass.
    """

    def __init__(self, model: WhisperModel, stop: threading.Event) -> None:
        self._model = model
        self._stop = stop
        self._encoded: tuple[Any, Any] | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)

    def _check(self) -> None:
        if self._stop.is_set():
            raise Stopped

    def encode(self, features: Any) -> Any:
        if self._encoded is not None and self._encoded[0] is features:
            return self._encoded[1]
        self._check()
        encoded = self._model.encode(features)
        self._check()
        self._encoded = (features, encoded)
        return encoded

    def add_word_timestamps(self, *args: Any, **kwargs: Any) -> Any:
        self._check()
        return self._model.add_word_timestamps(*args, **kwargs)


class Batch:
    """Pieces of a file to decode in one batched pass (`Stopped` when `stop` is set)."""

    def __init__(self, model: WhisperModel, pieces: Sequence[Piece], stop: threading.Event):
        self._model = _Stoppable(model, stop)
        self._speech = [piece.speech() for piece in pieces]
        self._audio = [
            np.concatenate([piece.audio[r.start : r.end] for r in regions])
            for piece, regions in zip(pieces, self._speech, strict=True)
        ]
        self._features = np.stack(
            [pad_or_trim(model.feature_extractor(a)[..., :-1]) for a in self._audio]
        )

    def language(self) -> tuple[str, float]:
        """The language of the first piece's speech, with its probability (English-only
        models: en), from the encoder pass the decoding then reuses."""
        if not self._model.model.is_multilingual:
            return "en", 1.0
        encoded = self._model.encode(self._features)
        token, probability = self._model.model.detect_language(encoded)[0][0]
        return token[2:-2], float(probability)

    def decode(self, language: str, decoding: dict[str, Any]) -> list[list[Segment]]:
        """Each piece's segments, times in seconds from the start of its piece."""
        model = self._model
        tokenizer = Tokenizer(
            model.hf_tokenizer,
            model.model.is_multilingual,
            task=decoding["task"],
            language=language,
        )
        offsets = np.cumsum([0.0, *(seconds(a.size) for a in self._audio)])
        metadata = [
            {"offset": float(offset), "duration": seconds(a.size), "segments": []}
            for offset, a in zip(offsets, self._audio, strict=False)
        ]
        pipeline = BatchedInferencePipeline(model)
        options = _options(tokenizer, decoding)
        outputs = pipeline.forward(self._features, tokenizer, metadata, options)
        return [
            _segments(output, SpeechTimestampsMap(_dicts(regions), SAMPLE_RATE), offset, language)
            if output and not _silence(output[0])
            else []
            for output, regions, offset in zip(outputs, self._speech, offsets, strict=False)
        ]


def _silence(raw: dict[str, Any]) -> bool:
    """faster-whisper's test for a window that holds no speech (both limits crossed);
    the batched pipeline skips it, and the piece's review then decides about its audio."""
    return bool(raw["no_speech_prob"] > NO_SPEECH_LIMIT and raw["avg_logprob"] < LOGPROB_LIMIT)


def _options(tokenizer: Tokenizer, decoding: dict[str, Any]) -> WhisperOptions:
    """faster-whisper's batched defaults, with the stream's own decoder settings."""
    return WhisperOptions(
        beam_size=decoding["beam_size"],
        best_of=5,
        patience=1.0,
        length_penalty=1.0,
        repetition_penalty=1.0,
        no_repeat_ngram_size=0,
        log_prob_threshold=LOGPROB_LIMIT,
        no_speech_threshold=NO_SPEECH_LIMIT,
        compression_ratio_threshold=2.4,
        temperatures=[decoding["temperature"]],
        initial_prompt=decoding["initial_prompt"],
        prefix=None,
        suppress_blank=True,
        suppress_tokens=get_suppressed_tokens(tokenizer, [-1]),
        prepend_punctuations=PUNCTUATION_BEFORE,
        append_punctuations=PUNCTUATION_AFTER,
        max_new_tokens=None,
        hotwords=decoding["hotwords"],
        word_timestamps=decoding["word_timestamps"],
        hallucination_silence_threshold=None,
        condition_on_previous_text=False,
        clip_timestamps=[],
        prompt_reset_on_temperature=0.5,
        multilingual=False,
        without_timestamps=decoding["word_timestamps"],
        max_initial_timestamp=0.0,
    )


def _dicts(regions: Sequence[Region]) -> list[dict[str, int]]:
    return [{"start": r.start, "end": r.end} for r in regions]


def _segments(
    output: list[dict[str, Any]], timeline: SpeechTimestampsMap, offset: float, language: str
) -> list[Segment]:
    """One piece's segments, from the batch's speech timeline to the piece's.

    With word timestamps the window is decoded without timestamp tokens (as the
    batched pipeline does by default: fewer tokens to decode, and no unfinished
    last segment to drop), and its words are cut into segments at sentence ends
    and long pauses; without, Whisper's own timestamped segments are kept.
    """
    segments = []
    for raw in output:
        words = [_word(word, timeline, offset) for word in raw.get("words") or ()]
        for part in _sentences(words) if words else [[]]:
            if part:
                start, end, text = part[0].start, part[-1].end, "".join(w.text for w in part)
            else:
                start = timeline.get_original_time(float(raw["start"]) - offset)
                end = timeline.get_original_time(float(raw["end"]) - offset, is_end=True)
                text = raw["text"]
            segments.append(
                Segment(
                    index=0,
                    start=start,
                    end=end,
                    text=text,
                    words=tuple(part),
                    avg_logprob=float(raw["avg_logprob"]),
                    no_speech_prob=float(raw["no_speech_prob"]),
                    compression_ratio=get_compression_ratio(text),
                    language=language,
                )
            )
    return segments


def _word(word: dict[str, Any], timeline: SpeechTimestampsMap, offset: float) -> Word:
    """A word in the piece's time; both ends mapped through the chunk of its middle."""
    start, end = float(word["start"]) - offset, float(word["end"]) - offset
    chunk = timeline.get_chunk_index((start + end) / 2)
    return Word(
        timeline.get_original_time(start, chunk),
        timeline.get_original_time(end, chunk),
        word["word"],
        float(word["probability"]),
    )


def _sentences(words: Sequence[Word]) -> list[list[Word]]:
    """Words cut after each sentence end, and before each pause of `SEGMENT_PAUSE`."""
    cut: list[list[Word]] = [[]]
    for word in words:
        if cut[-1] and word.start - cut[-1][-1].end >= SEGMENT_PAUSE:
            cut.append([])
        cut[-1].append(word)
        if ends_sentence(word.text):
            cut.append([])
    return [part for part in cut if part]


def shifted(segment: Segment, offset: float) -> Segment:
    """`segment`, `offset` seconds later."""
    return replace(
        segment,
        start=segment.start + offset,
        end=segment.end + offset,
        words=tuple(replace(w, start=w.start + offset, end=w.end + offset) for w in segment.words),
    )


def converted(raw: Any, offset: float, language: str) -> Segment:
    """A faster-whisper segment, `offset` seconds later."""
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
        language=language,
    )
