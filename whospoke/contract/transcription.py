"""Transcription: options, words and segments, and their protobuf forms."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from whospoke.common.errors import InvalidArgument
from whospoke.v1 import transcriber_pb2 as pb

SENTENCE_ENDS = frozenset(".?!\u3002\uff1f\uff01\u2026")
"""Characters that end a sentence in Whisper's output (closing quotes are skipped)."""
CLOSERS = "\"')]\u00bb\u201d\u2019"


def ends_sentence(text: str) -> bool:
    """Whether a word (Whisper's text, any script) ends a sentence."""
    return text.strip().rstrip(CLOSERS)[-1:] in SENTENCE_ENDS


MAX_BEAM_SIZE = 20
"""Larger beams cost time for no measurable accuracy on Whisper."""
TASKS = {
    pb.TASK_UNSPECIFIED: "transcribe",
    pb.TASK_TRANSCRIBE: "transcribe",
    pb.TASK_TRANSLATE: "translate",
}


@dataclass(frozen=True)
class TranscriptionOptions:
    """Options of one stream, validated."""

    language: str | None = None
    task: str = "transcribe"
    word_timestamps: bool = True
    beam_size: int = 5
    initial_prompt: str | None = None
    hotwords: str | None = None
    vad_filter: bool = True
    live: bool = False
    """Audio arrives as spoken: decode each utterance at once (pieces follow arrival)."""
    temperature: float = 0.0
    """Sampling temperature of the decoder, 0 to 1: 0 decodes deterministically."""
    multilingual: bool = False
    """Detect the language of every utterance rather than once per stream."""


@dataclass(frozen=True)
class Word:
    start: float
    end: float
    text: str
    probability: float


@dataclass(frozen=True)
class Segment:
    """A final segment; times in seconds from the start of the stream."""

    index: int
    start: float
    end: float
    text: str
    words: tuple[Word, ...] = ()
    avg_logprob: float = 0.0
    no_speech_prob: float = 0.0
    compression_ratio: float = 0.0
    language: str = ""
    """The language it was decoded in (ISO 639-1)."""


@dataclass(frozen=True)
class LanguageShare:
    language: str
    seconds: float
    share: float
    """Part of all segment time, 0 to 1."""


def language_shares(spoken: Iterable[tuple[str, float]]) -> list[LanguageShare]:
    """Seconds per language from (language, seconds) pairs, most first (ties by code).

    The transcriber's summary and the orchestrator's result both use it, so a
    stream and a `Process` call report the same shares for the same segments.
    """
    totals: dict[str, float] = defaultdict(float)
    for language, time in spoken:
        if language:
            totals[language] += max(time, 0.0)
    whole = sum(totals.values())
    ranked = sorted(totals.items(), key=lambda item: (-item[1], item[0]))
    return [LanguageShare(code, time, time / whole if whole else 0.0) for code, time in ranked]


def share_to_pb(share: LanguageShare) -> pb.LanguageShare:
    return pb.LanguageShare(language=share.language, seconds=share.seconds, share=share.share)


def options_from_pb(
    config: pb.TranscriptionConfig, default_beam: int, field: str = "config"
) -> TranscriptionOptions:
    """Validate the config message and convert it to domain options.

    `field` prefixes messages (`config.beam_size`, `options.beam_size`) so that a
    caller validating its own message names its own fields.
    """
    if config.task not in TASKS:
        raise InvalidArgument(f"{field}.task: unknown value {config.task}")
    if config.beam_size > MAX_BEAM_SIZE:
        raise InvalidArgument(
            f"{field}.beam_size: {config.beam_size} is above the maximum of {MAX_BEAM_SIZE}"
        )
    language = config.language.strip().lower()
    return TranscriptionOptions(
        language=language or None,
        task=TASKS[config.task],
        word_timestamps=config.word_timestamps if config.HasField("word_timestamps") else True,
        beam_size=config.beam_size or default_beam,
        initial_prompt=config.initial_prompt or None,
        hotwords=config.hotwords or None,
        vad_filter=config.vad_filter if config.HasField("vad_filter") else True,
        live=config.live,
        temperature=_temperature(config, field),
        multilingual=config.multilingual and not language,
    )


def _temperature(config: pb.TranscriptionConfig, field: str) -> float:
    """The temperature asked for (0 when unset), within 0 to 1: the range of Whisper's own fallback.

    The message holds a 32-bit float: rounding to 6 places gives back the number
    the client wrote (0.7, not 0.699999988).
    """
    if not config.HasField("temperature"):
        return 0.0
    value = config.temperature
    if not 0.0 <= value <= 1.0:  # NaN fails this too
        raise InvalidArgument(f"{field}.temperature: {value:g} is outside the range 0 to 1")
    return round(value, 6)


def options_to_pb(options: TranscriptionOptions) -> pb.TranscriptionConfig:
    return pb.TranscriptionConfig(
        language=options.language or "",
        task=pb.TASK_TRANSLATE if options.task == "translate" else pb.TASK_TRANSCRIBE,
        word_timestamps=options.word_timestamps,
        beam_size=options.beam_size,
        initial_prompt=options.initial_prompt or "",
        hotwords=options.hotwords or "",
        vad_filter=options.vad_filter,
        live=options.live,
        temperature=options.temperature,
        multilingual=options.multilingual,
    )


def segment_to_pb(segment: Segment) -> pb.TranscriptSegment:
    return pb.TranscriptSegment(
        index=segment.index,
        start_seconds=segment.start,
        end_seconds=segment.end,
        text=segment.text,
        words=[
            pb.Word(
                start_seconds=w.start, end_seconds=w.end, text=w.text, probability=w.probability
            )
            for w in segment.words
        ],
        avg_logprob=segment.avg_logprob,
        no_speech_prob=segment.no_speech_prob,
        compression_ratio=segment.compression_ratio,
        language=segment.language,
    )


def segment_from_pb(segment: pb.TranscriptSegment) -> Segment:
    return Segment(
        index=segment.index,
        start=segment.start_seconds,
        end=segment.end_seconds,
        text=segment.text,
        words=tuple(
            Word(w.start_seconds, w.end_seconds, w.text, w.probability) for w in segment.words
        ),
        avg_logprob=segment.avg_logprob,
        no_speech_prob=segment.no_speech_prob,
        compression_ratio=segment.compression_ratio,
        language=segment.language,
    )


@dataclass(frozen=True)
class SpeechWarning:
    """Detected speech with no trustworthy text: the transcript says so instead of
    silently leaving a hole (codes: `no_text`, `low_confidence`, `repetition`)."""

    code: str
    message: str
    start: float
    end: float


def warning_to_pb(warning: SpeechWarning) -> pb.TranscriptionWarning:
    return pb.TranscriptionWarning(
        code=warning.code,
        message=warning.message,
        start_seconds=warning.start,
        end_seconds=warning.end,
    )


def warning_from_pb(warning: pb.TranscriptionWarning) -> SpeechWarning:
    return SpeechWarning(warning.code, warning.message, warning.start_seconds, warning.end_seconds)
