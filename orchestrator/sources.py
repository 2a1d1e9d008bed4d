"""Which recording a request names (inline bytes or an upload), checked against the limits,
once for `Process` and `SubmitJob`."""

from __future__ import annotations

import asyncio

from orchestrator.uploads import UploadInfo, UploadStore
from whospoke.common.errors import InvalidArgument
from whospoke.v1 import jobs_pb2 as jobs
from whospoke.v1 import orchestrator_pb2 as pb
from whospoke.v1 import speakers_pb2 as spb


async def requested_audio(
    request: pb.ProcessRequest | jobs.SubmitJobRequest | spb.EnrollSpeakerRequest,
    uploads: UploadStore,
    max_inline_bytes: int,
    max_audio_seconds: float,
) -> UploadInfo | bytes:
    """The upload's details (it exists, is not expired, not too long) or the inline bytes
    (not empty, not over the inline limit): both requests name their audio the same way."""
    kind, audio, upload_id = request.WhichOneof("source"), request.audio, request.upload_id
    if kind == "upload_id":
        info = await asyncio.to_thread(uploads.info, upload_id)
        if info.duration_seconds > max_audio_seconds:
            raise InvalidArgument(
                f"upload_id: {info.duration_seconds:.0f} s is longer than the "
                f"{max_audio_seconds:.0f} s this server accepts"
            )
        return info
    if kind == "audio" and len(audio) > max_inline_bytes:
        raise InvalidArgument(
            f"audio: {len(audio)} bytes is above the {max_inline_bytes} "
            "accepted inline; send the file with Upload and pass its upload_id"
        )
    if kind == "audio" and audio:
        return audio
    raise InvalidArgument("audio: give the recording's bytes in `audio` or an `upload_id`")
