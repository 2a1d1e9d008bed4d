"""Known speakers: enrolling voices (`whospoke.v1.Speakers`) and finding them in jobs.

A voice is one person's recording run through the diarizer, asking for each
speaker's centroid embedding, so it is described exactly as the speakers of a job
are, by the same model. The recording should hold one person: a second voice with
a real share of the speech is refused rather than averaged into the first (the
clustering may also split one person in two; such clusters are as similar as the
same voice in two recordings, and are joined). Enrolled voices are stored; a
job's own references (OpenAI's `known_speaker_references[]`) are not.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any, TypeAlias

import grpc
import numpy as np

from orchestrator.domain import DiarizationDone, DiarizerBackend, JobOptions
from orchestrator.known import THRESHOLD, similarity
from orchestrator.names import checked_name
from orchestrator.sources import requested_audio
from orchestrator.spool import spool
from orchestrator.store import in_thread
from orchestrator.store.speakers import SqlSpeakers, Voice
from orchestrator.uploads import UploadStore
from whospoke.common.decode import Source
from whospoke.common.errors import AlreadyExists, InvalidArgument, NotFound
from whospoke.contract.diarization import DiarizationOptions, SpeakerInfo
from whospoke.v1 import speakers_pb2 as spb
from whospoke.v1 import speakers_pb2_grpc as spb_grpc

Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"
SERVICE_NAME = spb.DESCRIPTOR.services_by_name["Speakers"].full_name
MIN_SPEECH_SECONDS = 3.0
"""Less speech than this gives an unreliable voice to enroll."""
MIN_REFERENCE_SECONDS = 2.0
"""A job's own reference may be shorter (OpenAI asks for 2 to 10 s)."""
MAX_ENROLL_SECONDS = 600.0
SECOND_VOICE_SHARE = 0.2
"""A different voice with this share of the speech makes a recording unusable."""


def enrolled_voice(
    name: str,
    speakers: Sequence[SpeakerInfo],
    model: str,
    field: str = "audio",
    min_seconds: float = MIN_SPEECH_SECONDS,
) -> Voice:
    """The voice of a recording's diarized speakers: the main speaker, joined by the
    clusters that are the same voice; INVALID_ARGUMENT (naming `field`) for too little
    speech or a second voice."""
    ranked = sorted((s for s in speakers if s.embedding), key=lambda s: -s.speech_seconds)
    if not ranked:
        raise InvalidArgument(f"{field}: no speech found in the recording")
    main = ranked[0]
    same = [s for s in ranked if similarity(s.embedding, main.embedding) >= THRESHOLD]
    total = sum(s.speech_seconds for s in ranked)
    other = [s for s in ranked if s not in same and s.speech_seconds >= SECOND_VOICE_SHARE * total]
    if other:
        found = ", ".join(f"{s.speech_seconds:.1f} s" for s in [main, *other])
        raise InvalidArgument(
            f"{field}: holds more than one voice ({found}); give a recording of one person"
        )
    seconds = sum(s.speech_seconds for s in same)
    if seconds < min_seconds:
        raise InvalidArgument(
            f"{field}: {seconds:.1f} s of speech; a voice needs at least {min_seconds:g} s"
        )
    weights = np.array([s.speech_seconds for s in same])
    embedding = np.average(np.array([s.embedding for s in same]), axis=0, weights=weights)
    return Voice(name, tuple(float(x) for x in embedding), model, seconds, 0.0)


class KnownSpeakers:
    """The enrolled voices, and voices of recordings, as jobs need them."""

    def __init__(self, store: SqlSpeakers, diarizer: DiarizerBackend, spool_dir: Path) -> None:
        self.store = store
        self.diarizer = diarizer
        self._spool_dir = spool_dir

    async def embed(
        self, name: str, source: Callable[[], Source], field: str, min_seconds: float
    ) -> Voice:
        """The voice of one person's recording, as the diarizer describes speakers."""
        audio = await spool(source, self._spool_dir, MAX_ENROLL_SECONDS)
        try:
            output = None
            options = DiarizationOptions(return_embeddings=True)
            async for event in self.diarizer.diarize(audio, options):
                if isinstance(event, DiarizationDone):
                    output = event.output
            _, model = await self.diarizer.models()
        finally:
            await audio.remove()
        speakers = output.speakers if output else ()
        return enrolled_voice(name, speakers, model, field, min_seconds)

    async def check(self, options: JobOptions) -> None:
        """INVALID_ARGUMENT now for a name that is not enrolled (nor given a reference)."""
        own = {name for name, _ in options.references}
        wanted = [n for n in options.known_speakers if n not in own]
        if not wanted:
            return
        enrolled = {v.name for v in await in_thread(self.store.list)}
        missing = [n for n in wanted if n not in enrolled]
        if missing:
            known = ", ".join(sorted(enrolled)) or "none"
            raise InvalidArgument(
                f"options.known_speakers: {missing[0]!r} is not enrolled (enrolled: {known})"
            )

    async def voices(self, options: JobOptions) -> list[Voice]:
        """The voices a job looks for: its own references, and the enrolled ones made by
        the diarizer's embedding model (a reference replaces an enrolled namesake)."""
        if not options.recognises:
            return []
        field = "options.known_speaker_references"
        own = await asyncio.gather(
            *(
                self.embed(
                    name, partial(bytes, audio), f"{field}[{i}].audio", MIN_REFERENCE_SECONDS
                )
                for i, (name, audio) in enumerate(options.references)
            )
        )
        enrolled: list[Voice] = []
        if options.known_speakers or options.all_known_speakers:
            names = None if options.all_known_speakers else options.known_speakers
            enrolled = await in_thread(lambda: self.store.list(names))
        _, model = await self.diarizer.models()
        mine = {v.name for v in own}
        fits = [v for v in enrolled if v.embedding_model == model and v.name not in mine]
        return [*own, *fits]


def speaker_pb(voice: Voice, embedding: bool) -> spb.Speaker:
    return spb.Speaker(
        name=voice.name,
        speech_seconds=voice.speech_seconds,
        embedding_model=voice.embedding_model,
        enrolled_at_unix_seconds=voice.enrolled_at,
        embedding=voice.embedding if embedding else (),
    )


class SpeakersServicer(spb_grpc.SpeakersServicer):
    def __init__(self, known: KnownSpeakers, uploads: UploadStore, max_inline_bytes: int) -> None:
        self._known = known
        self._uploads = uploads
        self._max_inline_bytes = max_inline_bytes

    async def EnrollSpeaker(
        self, request: spb.EnrollSpeakerRequest, context: Context
    ) -> spb.Speaker:
        name = checked_name(request.name)
        found = await requested_audio(
            request, self._uploads, self._max_inline_bytes, MAX_ENROLL_SECONDS
        )
        source: Callable[[], Source] = (
            partial(bytes, found)
            if isinstance(found, bytes)
            else partial(self._uploads.path, found.upload_id)
        )
        voice = await self._known.embed(name, source, "audio", MIN_SPEECH_SECONDS)
        stored = await in_thread(lambda: self._known.store.enroll(voice, request.replace))
        if stored is None:
            raise AlreadyExists(f"name: {name!r} is enrolled already; set replace to re-enroll")
        return speaker_pb(stored, embedding=True)

    async def ListSpeakers(
        self, request: spb.ListSpeakersRequest, context: Context
    ) -> spb.ListSpeakersResponse:
        voices = await in_thread(self._known.store.list)
        return spb.ListSpeakersResponse(
            speakers=[speaker_pb(v, request.include_embeddings) for v in voices]
        )

    async def DeleteSpeaker(
        self, request: spb.DeleteSpeakerRequest, context: Context
    ) -> spb.DeleteSpeakerResponse:
        name = request.name.strip()
        if not await in_thread(lambda: self._known.store.delete(name)):
            raise NotFound(f"name: no voice is enrolled as {name!r}")
        return spb.DeleteSpeakerResponse()
