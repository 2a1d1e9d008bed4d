"""Enrolled voices, in the jobs database so that every orchestrator replica knows them."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from orchestrator.store.engine import Engine, Row, Tx

EMBEDDING_DTYPE = np.dtype("<f4")


@dataclass(frozen=True)
class Voice:
    """One enrolled voice."""

    name: str
    embedding: tuple[float, ...]
    embedding_model: str
    speech_seconds: float
    enrolled_at: float


class SqlSpeakers:
    """The `speakers` table (schema migration 2), one transaction per method."""

    def __init__(self, engine: Engine[object], clock: Callable[[], float] = time.time) -> None:
        self._db = engine
        self._clock = clock

    def enroll(self, voice: Voice, replace: bool) -> Voice | None:
        """Store `voice`; the voice as stored (enrolled now, embedding in float32), or None
        when the name is taken and not `replace`."""

        def work(tx: Tx) -> Voice | None:
            taken = tx.one("SELECT name FROM speakers WHERE name = ?", (voice.name,))
            if taken and not replace:
                return None
            if taken:
                tx.count("DELETE FROM speakers WHERE name = ?", (voice.name,))
            blob, now = _blob(voice.embedding), self._clock()
            row: Row = (voice.name, blob, voice.embedding_model, voice.speech_seconds, now)
            tx.count(
                "INSERT INTO speakers (name, embedding, embedding_model, speech_seconds,"
                " enrolled_at) VALUES (?, ?, ?, ?, ?)",
                row,
            )
            return _voice(row)

        return self._db.run(work)

    def list(self, names: tuple[str, ...] | None = None) -> list[Voice]:
        """Every voice (or those of `names` that exist), sorted by name."""
        rows = self._db.run(
            lambda tx: tx.rows(
                "SELECT name, embedding, embedding_model, speech_seconds, enrolled_at"
                " FROM speakers ORDER BY name"
            ),
            write=False,
        )
        voices = [_voice(row) for row in rows]
        return voices if names is None else [v for v in voices if v.name in names]

    def delete(self, name: str) -> bool:
        return self._db.run(lambda tx: tx.count("DELETE FROM speakers WHERE name = ?", (name,))) > 0


def _voice(row: Row) -> Voice:
    name, blob, model, seconds, enrolled_at = row
    embedding = np.frombuffer(bytes(blob), dtype=EMBEDDING_DTYPE)
    return Voice(
        str(name),
        tuple(float(x) for x in embedding),
        str(model),
        float(seconds),
        float(enrolled_at),
    )


def _blob(embedding: tuple[float, ...]) -> bytes:
    return np.asarray(embedding, dtype=EMBEDDING_DTYPE).tobytes()
