"""Job events (domain) to `ProcessEvent` messages: one message per event."""

from __future__ import annotations

from orchestrator.attributed import AttributedSegment
from orchestrator.jobs import JobEvent, JobResult, Queued, StageStarted
from orchestrator.live_view import LiveSegment, SpeakerUpdate
from orchestrator.progress import JobWarning, ProgressUpdate
from whospoke.contract.diarization import turn_to_pb
from whospoke.contract.transcription import Segment, language_shares, segment_to_pb, share_to_pb
from whospoke.v1 import diarizer_pb2
from whospoke.v1 import orchestrator_pb2 as pb

STAGES = {
    "decoding": pb.STAGE_DECODING,
    "transcribing": pb.STAGE_TRANSCRIBING,
    "diarizing": pb.STAGE_DIARIZING,
    "merging": pb.STAGE_MERGING,
}


def event_to_pb(event: JobEvent, elapsed: float) -> pb.ProcessEvent:
    message = pb.ProcessEvent(elapsed_seconds=elapsed)
    if isinstance(event, Queued):
        message.queued.position = event.position
    elif isinstance(event, StageStarted):
        message.stage.stage = STAGES[event.stage]
        message.stage.audio_duration_seconds = event.audio_seconds
    elif isinstance(event, ProgressUpdate):
        message.progress.CopyFrom(
            pb.Progress(
                transcription_percent=event.transcription_percent,
                diarization_percent=event.diarization_percent,
                overall_percent=event.overall_percent,
                transcription_elapsed_seconds=event.transcription_elapsed,
                diarization_elapsed_seconds=event.diarization_elapsed,
                segment_count=event.segment_count,
                decoding_percent=event.decoding_percent,
                decoding_elapsed_seconds=event.decoding_elapsed,
                transcription_done=event.transcription_done,
                diarization_done=event.diarization_done,
            )
        )
    elif isinstance(event, Segment):
        message.segment.CopyFrom(segment_to_pb(event))
    elif isinstance(event, AttributedSegment):
        message.attributed_segment.CopyFrom(attributed_to_pb(event))
    elif isinstance(event, JobWarning):
        message.warning.CopyFrom(warning_to_pb(event))
    elif isinstance(event, LiveSegment):
        message.live_segment.CopyFrom(
            pb.LiveSegment(
                index=event.index,
                segment=attributed_to_pb(event.segment),
                latency_seconds=event.latency,
            )
        )
    elif isinstance(event, SpeakerUpdate):
        message.speaker_update.CopyFrom(
            pb.SpeakerUpdate(
                index=event.index,
                speaker=event.speaker,
                word_speakers=event.word_speakers,
                final=event.final,
            )
        )
    else:
        message.result.CopyFrom(result_to_pb(event))
    return message


def result_to_pb(result: JobResult) -> pb.ProcessResult:
    t = result.timings
    transcription_model, segmentation_model, embedding_model = result.models
    return pb.ProcessResult(
        text=result.text,
        segments=[attributed_to_pb(s) for s in result.segments],
        transcription_segments=[segment_to_pb(s) for s in result.transcription_segments],
        diarization_turns=[turn_to_pb(t) for t in result.diarization.turns],
        exclusive_turns=[turn_to_pb(t) for t in result.diarization.exclusive_turns],
        speakers=[
            diarizer_pb2.SpeakerSummary(
                speaker=s.speaker,
                speech_seconds=s.speech_seconds,
                embedding=s.embedding,
                known_speaker_similarity=s.known_similarity,
            )
            for s in result.diarization.speakers
        ],
        language=result.language,
        languages=[
            share_to_pb(share)
            for share in language_shares(
                (s.language, s.end - s.start) for s in result.transcription_segments
            )
        ],
        audio_duration_seconds=result.audio_seconds,
        timings=pb.Timings(
            queued_seconds=t.queued,
            decoding_seconds=t.decoding,
            transcription_seconds=t.transcription,
            diarization_seconds=t.diarization,
            merge_seconds=t.merge,
            total_seconds=t.total,
        ),
        models=pb.ModelsUsed(
            transcription_model=transcription_model,
            segmentation_model=segmentation_model,
            embedding_model=embedding_model,
        ),
        warnings=[warning_to_pb(w) for w in result.warnings],
        devices=result.devices,
    )


def warning_to_pb(warning: JobWarning) -> pb.Warning:
    return pb.Warning(
        code=warning.code,
        message=warning.message,
        start_seconds=warning.start,
        end_seconds=warning.end,
    )


def attributed_to_pb(segment: AttributedSegment) -> pb.AttributedSegment:
    return pb.AttributedSegment(
        start_seconds=segment.start,
        end_seconds=segment.end,
        speaker=segment.speaker,
        text=segment.text,
        language=segment.language,
        words=[
            pb.AttributedWord(
                start_seconds=w.start,
                end_seconds=w.end,
                text=w.text,
                probability=w.probability,
                speaker=w.speaker,
            )
            for w in segment.words
        ],
    )
