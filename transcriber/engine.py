"""faster-whisper behind the `TranscriptionEngine` protocol: the model, loaded once.

What a stream does with it (incremental pieces, review, languages) is in
transcriber/session.py.
"""

from __future__ import annotations

import logging
import os
from dataclasses import replace

import ctranslate2
from faster_whisper import WhisperModel
from faster_whisper.utils import download_model

from transcriber.config import ModelConfig, auto_batch_size
from transcriber.domain import EngineInfo
from transcriber.early import EarlyTimings
from transcriber.model_process import ModelFiles, ModelPool, metadata
from transcriber.session import WhisperSession
from whospoke.common.errors import InvalidArgument, Unavailable, quoted
from whospoke.common.models import resolve_whisper
from whospoke.contract.transcription import TranscriptionOptions

logger = logging.getLogger(__name__)


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
        self._pool: ModelPool | None = None

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
        if self._model_process():
            self._start_processes(resolved.location)

    def _model_process(self) -> bool:
        """The model in child processes: asked for, or by default on CPU (model_process.py)."""
        wanted = self._config.model_process
        return wanted == "on" or (wanted == "auto" and self._device == "cpu")

    def _start_processes(self, location: str) -> None:
        """One model process per concurrent stream; this process keeps only what it reads
        of the model (its weights are freed: the children hold them)."""
        model = self.model
        path = (
            location if os.path.isdir(location) else download_model(location, local_files_only=True)
        )
        files = ModelFiles(
            path,
            self._device,
            self._config.device_index,
            self._compute_type,
            self._config.cpu_threads,
        )
        self._pool = ModelPool(files, self._workers)
        self._pool.wait_ready()
        model.model = metadata(model.model)

    def close(self) -> None:
        """Stop the model processes (they also end with the service)."""
        if self._pool is not None:
            self._pool.close()

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
        model = self.model
        if options.multilingual and not model.model.is_multilingual:
            options = replace(options, multilingual=False)
        batch = self._config.batch_size or auto_batch_size(self._device)
        early = self._config.live_early_words
        timings = (
            EarlyTimings()
            if early == "on" or (early == "auto" and self._device == "cuda")
            else None
        )
        return WhisperSession(model, options, batch, self._pool, timings)
