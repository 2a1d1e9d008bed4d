"""`ProcessOptions` to validated job options, shared by `Process` and durable jobs."""

from __future__ import annotations

from orchestrator.domain import JobOptions
from whospoke.common.errors import InvalidArgument
from whospoke.contract.diarization import options_from_pb as diarization_options
from whospoke.contract.transcription import options_from_pb as transcription_options
from whospoke.v1 import diarizer_pb2, transcriber_pb2
from whospoke.v1 import orchestrator_pb2 as pb


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
    return JobOptions(
        transcription=transcription_options(transcription, default_beam=0, field="options"),
        diarization=diarization_options(diarization, field="options"),
        skip_transcription=options.skip_transcription,
        skip_diarization=options.skip_diarization,
        require_diarization=options.require_diarization,
        model=options.model.strip(),
    )
