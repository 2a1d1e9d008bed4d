"""Whisper's CTranslate2 model in child processes, so that a cancel stops its work at once.

CTranslate2 cannot interrupt a call once it has started. On 2 CPU cores the
encoder takes about 2 s for a batch of four 30-second windows of Whisper base,
the beam search over them 1-3 s, a large model tens of seconds; a cancelled
stream kept its thread and its cores that long. Here the model runs in a child
process, one per stream transcribed at once: a stream's run leases one, every
CTranslate2 call of the run (encode, detect_language, generate, align) goes
there, and a cancel kills it within a poll interval; a fresh child loads in the
background for the next stream.

Only features (3.8 MB for four windows) and results cross the pipe: the
encoder's output stays in the child, the service holds a handle to it
(`Encoded`), so language detection, beam search and word alignment reuse it
there. The service's own copy of the weights is unloaded once the child holds
them: the price of the child is an interpreter and the search buffers, which
the service held itself before. On a GPU a call takes a fraction of a second and
CUDA state does not survive a kill well, so `auto` keeps the model in process
there.
"""

from __future__ import annotations

import copy
import logging
import os
import queue
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from whospoke.common.errors import Unavailable

if TYPE_CHECKING:
    from faster_whisper import WhisperModel

logger = logging.getLogger(__name__)

POLL_SECONDS = 0.05
"""How often a waiting call looks at the stream's stop: the most a cancel waits."""
KEPT_ENCODINGS = 2
"""Encoder outputs a child keeps for later calls: a run uses each right after making it."""
SOURCE_ROOT = str(Path(__file__).resolve().parents[1])
"""Where the child finds this module: a new interpreter (not a fork, which would copy
the service's gRPC threads broken; nor multiprocessing's spawn, which imports the
parent's `__main__` again)."""


class Stopped(Exception):
    """The stream was cancelled; what it was decoding was abandoned (its child killed)."""


class ModelProcessFailed(Unavailable):
    """The model process died (killed from outside, out of memory): the stream fails as
    UNAVAILABLE, which a client may retry, and the next stream gets a fresh process."""


@dataclass(frozen=True)
class ModelFiles:
    """What a child needs to load the same CTranslate2 model as the service."""

    path: str
    device: str
    device_index: int
    compute_type: str
    threads: int


@dataclass(frozen=True)
class Encoded:
    """An encoder output kept in the child that made it."""

    handle: int


@dataclass(frozen=True)
class Searched:
    """One window's `WhisperGenerationResult`: the fields faster-whisper reads."""

    sequences: list[list[str]]
    sequences_ids: list[list[int]]
    scores: list[float]
    no_speech_prob: float


@dataclass(frozen=True)
class Aligned:
    """One window's `WhisperAlignmentResult`."""

    alignments: list[tuple[int, int]]
    text_token_probs: list[float]


@dataclass(frozen=True)
class Metadata:
    """What the service reads of the model once its weights live in a child."""

    is_multilingual: bool
    n_mels: int
    device: str
    device_index: list[int]


def serve(conn: Connection) -> None:
    """The child: load the model it is sent, say so, then run each call it is sent
    until the pipe closes. A call's own error goes back to the caller, which raises it."""
    import ctranslate2

    try:
        files: ModelFiles = conn.recv()
    except EOFError:  # the service ended before the child started
        return
    model = ctranslate2.models.Whisper(
        files.path,
        device=files.device,
        device_index=files.device_index,
        compute_type=files.compute_type,
        intra_threads=files.threads,
    )
    kept: dict[int, Any] = {}
    conn.send(None)
    while True:
        try:
            method, features, args, kwargs = conn.recv()
        except EOFError:
            return
        try:
            given = kept[features.handle] if isinstance(features, Encoded) else features
            if isinstance(given, np.ndarray):
                given = ctranslate2.StorageView.from_array(given)
            reply: Any = _plain(getattr(model, method)(given, *args, **kwargs), kept)
        except Exception as error:  # the caller's error to raise, not the child's end
            reply = error
        try:
            conn.send(reply)
        except OSError:  # the service has ended
            return


def _plain(result: Any, kept: dict[int, Any]) -> Any:
    """A CTranslate2 result in a form that crosses processes (encoder output: kept here)."""
    if type(result).__name__ == "StorageView":
        handle = max(kept, default=0) + 1
        kept[handle] = result
        for old in sorted(kept)[:-KEPT_ENCODINGS]:
            del kept[old]
        return Encoded(handle)
    if result and hasattr(result[0], "sequences_ids"):
        return [Searched(r.sequences, r.sequences_ids, r.scores, r.no_speech_prob) for r in result]
    if result and hasattr(result[0], "alignments"):
        return [Aligned(list(r.alignments), list(r.text_token_probs)) for r in result]
    return result


class _Child:
    """One model process and the service's end of its pipe."""

    def __init__(self, files: ModelFiles) -> None:
        ours, theirs = socket.socketpair()
        path = [SOURCE_ROOT, *filter(None, [os.environ.get("PYTHONPATH")])]
        environment = {**os.environ, "PYTHONPATH": os.pathsep.join(path)}
        with theirs:
            self._process = subprocess.Popen(
                [sys.executable, "-m", __name__, str(theirs.fileno())],
                pass_fds=[theirs.fileno()],
                env=environment,
            )
        self._conn = Connection(ours.detach())
        self._conn.send(files)
        self._ready = False
        self.busy = False
        """A call is in flight: a stop now kills the child."""

    @property
    def pid(self) -> int:
        return self._process.pid

    @property
    def alive(self) -> bool:
        return self._process.poll() is None

    def ready(self, stop: threading.Event) -> None:
        """Once the child has loaded its model (`ModelProcessFailed` if it could not)."""
        try:
            if not self._ready:
                self._answer(stop)
                self._ready = True
        except (EOFError, OSError) as error:
            raise self._failed() from error

    def call(self, stop: threading.Event, method: str, features: Any, *args: Any, **kw: Any) -> Any:
        """`model.method(features, ...)` in the child; `Stopped` as soon as `stop` is set."""
        self.ready(stop)
        if not isinstance(features, Encoded):
            features = np.asarray(features)
        try:
            self.busy = True
            self._conn.send((method, features, args, kw))
            reply = self._answer(stop)
        except (EOFError, OSError) as error:
            raise self._failed() from error
        self.busy = False
        if isinstance(reply, BaseException):
            raise reply
        return reply

    def _failed(self) -> ModelProcessFailed:
        self._process.kill()  # no-op when it has exited; a broken pipe to a live one ends it
        code = self._process.wait()
        return ModelProcessFailed(f"the transcriber's model process exited (status {code})")

    def _answer(self, stop: threading.Event) -> Any:
        """The child's next message; `Stopped` as soon as the stream is cancelled."""
        while True:
            if stop.is_set():
                raise Stopped
            if self._conn.poll(POLL_SECONDS):
                return self._conn.recv()

    def kill(self) -> None:
        self._process.kill()
        self._process.wait()
        self._conn.close()


class ModelPool:
    """One model process per stream the service transcribes at once.

    A stream's run leases a child and gives it back; one killed by a cancel, or
    found dead, is replaced by a fresh one, which loads while the next lease
    waits for it (the cancelled stream does not).
    """

    def __init__(self, files: ModelFiles, size: int) -> None:
        self._files = files
        self._idle: queue.SimpleQueue[_Child] = queue.SimpleQueue()
        self._children = [_Child(files) for _ in range(size)]
        for child in self._children:
            self._idle.put(child)

    @contextmanager
    def lease(self, model: WhisperModel, stop: threading.Event) -> Iterator[WhisperModel]:
        """`model` as one run sees it: its CTranslate2 calls go to a child of its own,
        and end with `Stopped` when `stop` is set."""
        child = self._idle.get()
        try:
            view = copy.copy(model)
            view.model = _Remote(model.model, child, stop)
            yield view
        except (Stopped, ModelProcessFailed) as error:
            if child.busy or not child.alive:
                child = self._replace(child, error)
            raise
        finally:
            self._idle.put(child)

    def _replace(self, child: _Child, reason: Exception) -> _Child:
        why = "the stream was cancelled" if isinstance(reason, Stopped) else reason
        logger.info("model process replaced: %s", why)
        child.kill()
        fresh = _Child(self._files)
        self._children = [fresh if c is child else c for c in self._children]
        return fresh

    def wait_ready(self) -> None:
        """Until every child has loaded the model: a service is ready when it can decode,
        and a model a child cannot load fails the service's start, not its first stream."""
        for child in self._children:
            child.ready(threading.Event())

    @property
    def pids(self) -> list[int]:
        """The model processes, for an operator (or a test) to find them."""
        return [child.pid for child in self._children]

    def close(self) -> None:
        for child in self._children:
            child.kill()


def metadata(model: Any) -> Metadata:
    """What the service still reads of `model` (a CTranslate2 Whisper) once unloaded."""
    return Metadata(model.is_multilingual, model.n_mels, model.device, list(model.device_index))


class _Remote:
    """The CTranslate2 model as a run sees it: calls go to its child."""

    def __init__(self, model: Metadata, child: _Child, stop: threading.Event) -> None:
        self._model, self._child, self._stop = model, child, stop

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)

    def encode(self, features: Any, *args: Any, **kwargs: Any) -> Any:
        return self._child.call(self._stop, "encode", features, *args, **kwargs)

    def detect_language(self, features: Any, *args: Any, **kwargs: Any) -> Any:
        return self._child.call(self._stop, "detect_language", features, *args, **kwargs)

    def generate(self, features: Any, *args: Any, **kwargs: Any) -> Any:
        return self._child.call(self._stop, "generate", features, *args, **kwargs)

    def align(self, features: Any, *args: Any, **kwargs: Any) -> Any:
        return self._child.call(self._stop, "align", features, *args, **kwargs)


if __name__ == "__main__":
    from transcriber.model_process import serve as serve_here  # pickled classes resolve there

    serve_here(Connection(int(sys.argv[1])))
