"""A live stream's encoded audio (WebM/Opus, Ogg/Opus, MP3...) decoded as it arrives.

A browser's `MediaRecorder` sends WebM/Opus in pieces, a phone gateway or
`ffmpeg -f ogg -` an Ogg stream: a tenth of the bytes of raw PCM, and no
format to state, since the stream's header carries its codec, rate and
channels. FFmpeg's demuxers read from a file, not from messages, so the stream
is decoded in a thread of its own from a pipe that blocks until the next message
has arrived; each message's `convert` returns once the decoder has used all it
could of the bytes received so far (it is waiting for more), so its audio goes
to the backends without waiting for the next message. The probe and stream
analysis are kept short (`PROBE_OPTIONS`) so the first audio is not held back
for the seconds FFmpeg would otherwise read ahead.
"""

from __future__ import annotations

import io
import threading
from typing import Any

import av

from orchestrator.live_audio import pcm_bytes
from whospoke.common.audio import SAMPLE_RATE
from whospoke.common.errors import InvalidArgument

PROBE_OPTIONS = {"probesize": "4096", "analyzeduration": "0"}
"""FFmpeg's probe (which container) on the first 4 KB, and no read-ahead to analyse
streams: a live container's header says all that is needed."""
DECODE_TIMEOUT = 30.0
"""Seconds a message's bytes may take to decode before the stream fails."""


class _Pipe(io.RawIOBase):
    """Bytes in order as messages bring them; a read waits until there are some (or the end)."""

    def __init__(self) -> None:
        self._data = bytearray()
        self._ended = False
        self.starved = False
        """The reader is waiting for bytes: everything received so far has been used."""
        self.changed = threading.Condition()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        with self.changed:
            while not self._data and not self._ended:
                self.starved = True
                self.changed.notify_all()
                self.changed.wait()
            count = min(len(buffer), len(self._data))
            buffer[:count] = self._data[:count]
            del self._data[:count]
            return count

    def push(self, data: bytes) -> None:
        with self.changed:
            self._data += data
            self.starved = False
            self.changed.notify_all()

    def end(self) -> None:
        with self.changed:
            self._ended = True
            self.changed.notify_all()


class StreamDecoder:
    """One stream's encoded audio to 16 kHz mono s16le, message by message."""

    def __init__(self) -> None:
        self._pipe = _Pipe()
        self._out: list[bytes] = []
        self._error: Exception | None = None
        self._done = False
        self._thread = threading.Thread(target=self._decode, name="live-decode", daemon=True)
        self._thread.start()

    def _decode(self) -> None:
        resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
        try:
            with av.open(self._pipe, "r", options=PROBE_OPTIONS) as container:
                if not container.streams.audio:
                    raise InvalidArgument("audio: the encoded stream holds no audio track")
                for frame in container.decode(container.streams.audio[0]):
                    self._add(pcm_bytes(resampler.resample(frame)))
                self._add(pcm_bytes(resampler.resample(None)))
        except InvalidArgument as error:
            self._error = error
        except (av.FFmpegError, ValueError) as error:
            self._error = InvalidArgument(f"audio: cannot decode the encoded stream ({error})")
        finally:
            with self._pipe.changed:
                self._done = True
                self._pipe.changed.notify_all()

    def _add(self, pcm: bytes) -> None:
        with self._pipe.changed:
            self._out.append(pcm)

    def convert(self, data: bytes) -> bytes:
        """The audio `data` completes, once the decoder has used it (blocking: call it
        from a worker thread); INVALID_ARGUMENT (naming `audio`) when it cannot be decoded."""
        if data:
            if self._done and self._error is None:
                raise InvalidArgument("audio: bytes sent after the end of the encoded stream")
            self._pipe.push(data)
        with self._pipe.changed:
            if not self._pipe.changed.wait_for(
                lambda: self._pipe.starved or self._done, DECODE_TIMEOUT
            ):
                raise InvalidArgument(
                    f"audio: a message took over {DECODE_TIMEOUT:.0f} s to decode"
                )
        return self._taken()

    def flush(self) -> bytes:
        """The rest, once the stream has ended (blocking)."""
        self._pipe.end()
        self._thread.join(DECODE_TIMEOUT)
        return self._taken()

    def close(self) -> None:
        """End the decoder thread, whatever it was waiting for."""
        self._pipe.end()

    def _taken(self) -> bytes:
        with self._pipe.changed:
            if self._error is not None:
                raise self._error
            out, self._out = b"".join(self._out), []
            return out
