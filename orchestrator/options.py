"""`ProcessOptions` to validated job options, shared by `Process` and durable jobs."""

from __future__ import annotations

from orchestrator.domain import JobOptions
from orchestrator.names import checked_name
from whospoke.common.errors import InvalidArgument
from whospoke.contract.diarization import options_from_pb as diarization_options
from whospoke.contract.transcription import options_from_pb as transcription_options
from whospoke.v1 import diarizer_pb2, transcriber_pb2
from whospoke.v1 import orchestrator_pb2 as pb

MAX_REFERENCES = 8


def options_from_pb(options: pb.ProcessOptions) -> JobOptions:
    """Validate with the backends' own rules, naming `options.*` fields."""
    if options.skip_transcription and options.skip_diarization:
        raise InvalidArgument(
            "options.skip_transcription: cannot skip both transcription and diarization"
        )
    transcription = transcriber_pb2.TranscriptionConfig(
        language=options.language,
        task=options.task,
        beam_size=options.beam_size,
        initial_prompt=options.initial_prompt,
        hotwords=options.hotwords,
        multilingual=options.multilingual,
    )
    if options.HasField("word_timestamps"):
        transcription.word_timestamps = options.word_timestamps
    if options.HasField("temperature"):
        transcription.temperature = options.temperature
    diarization = diarizer_pb2.DiarizationConfig()
    for name in ("num_speakers", "min_speakers", "max_speakers"):
        if options.HasField(name):
            setattr(diarization, name, getattr(options, name))
    names = tuple(dict.fromkeys(name.strip() for name in options.known_speakers))
    if "" in names:
        raise InvalidArgument("options.known_speakers: a name is empty")
    references = _references(options)
    recognises = bool(names or references or options.all_known_speakers)
    if options.skip_diarization and recognises:
        raise InvalidArgument("options.known_speakers: known speakers need diarization")
    diarization.return_embeddings = recognises or options.return_embeddings
    return JobOptions(
        transcription=transcription_options(transcription, default_beam=0, field="options"),
        diarization=diarization_options(diarization, field="options"),
        skip_transcription=options.skip_transcription,
        skip_diarization=options.skip_diarization,
        require_diarization=options.require_diarization,
        model=options.model.strip(),
        known_speakers=names,
        all_known_speakers=options.all_known_speakers,
        return_embeddings=options.return_embeddings,
        references=references,
    )


def _references(options: pb.ProcessOptions) -> tuple[tuple[str, bytes], ...]:
    """The per-job voices, checked: named, distinct, with audio, at most `MAX_REFERENCES`."""
    field = "options.known_speaker_references"
    if len(options.known_speaker_references) > MAX_REFERENCES:
        raise InvalidArgument(f"{field}: at most {MAX_REFERENCES} voices per job")
    references: dict[str, bytes] = {}
    for index, reference in enumerate(options.known_speaker_references):
        name = checked_name(reference.name, f"{field}[{index}].name")
        if name in references:
            raise InvalidArgument(f"{field}[{index}].name: {name!r} is given twice")
        if not reference.audio:
            raise InvalidArgument(f"{field}[{index}].audio: empty")
        references[name] = reference.audio
    return tuple(references.items())
