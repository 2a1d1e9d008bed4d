"""Transcriber pools: one per Whisper model, chosen per request by `ProcessOptions.model`.

One transcriber process serves one model on its device, so a deployment that
offers several models (a fast one for drafts, a large one for final text) runs a
pool of replicas per model, and the orchestrator routes each job to the pool of
the model it asks for. A pool is named on the command line (`base=ADDRESS`) or,
when only an address is given, by the model its `GetInfo` reports, asked when a
request first needs the name (a pool that does not answer yet is asked again
the next time). An empty model means the first pool, so clients that never name
one keep working.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, replace

from orchestrator.domain import BackendHealth, TranscriberBackend
from whospoke.common.errors import InvalidArgument, WhospokeError


@dataclass
class Pool:
    """One transcriber pool: its configured or discovered name, and its client."""

    name: str
    backend: TranscriberBackend


class TranscriberPools:
    """The transcriber pools of one orchestrator, in configured order."""

    def __init__(self, pools: Sequence[Pool]) -> None:
        if not pools:
            raise ValueError("at least one transcriber pool is needed")
        self._pools = list(pools)
        self._naming = asyncio.Lock()

    @classmethod
    def single(cls, backend: TranscriberBackend) -> TranscriberPools:
        """One pool, named by its `GetInfo` when a request names a model."""
        return cls([Pool("", backend)])

    @property
    def names(self) -> list[str]:
        """The pools' names known so far ("" for one not yet named)."""
        return [pool.name for pool in self._pools]

    async def pick(self, model: str) -> TranscriberBackend:
        """The pool serving `model` ("" for the first); INVALID_ARGUMENT naming the
        served models when none does."""
        if not model:
            return self._pools[0].backend
        for pool in self._pools:
            if pool.name == model:
                return pool.backend
        await self._name_pools()
        for pool in self._pools:
            if pool.name == model:
                return pool.backend
        served = ", ".join(repr(name) for name in self.names if name) or "none answered yet"
        raise InvalidArgument(f"options.model: {model!r} is not served here; served: {served}")

    async def check(self, model: str) -> None:
        """Raise now (INVALID_ARGUMENT) for a model no pool serves."""
        await self.pick(model)

    async def _name_pools(self) -> None:
        """Ask each unnamed pool's `GetInfo` for its model; one that fails stays unnamed."""
        async with self._naming:
            unnamed = [pool for pool in self._pools if not pool.name]
            answers = await asyncio.gather(
                *(pool.backend.served_model() for pool in unnamed), return_exceptions=True
            )
            for pool, answer in zip(unnamed, answers, strict=True):
                if isinstance(answer, str):
                    pool.name = answer
                elif not isinstance(answer, WhospokeError):
                    raise answer

    async def health(self) -> list[BackendHealth]:
        """Each pool's health, named by its pool (its model when not configured)."""
        checks = await asyncio.gather(*(pool.backend.health() for pool in self._pools))
        named = []
        for pool, check in zip(self._pools, checks, strict=True):
            if not pool.name and check.info.models:
                pool.name = check.info.models[0]
            named.append(replace(check, pool=pool.name))
        return named


def as_pools(transcriber: TranscriberBackend | TranscriberPools) -> TranscriberPools:
    """Pools as given, or one pool of a single backend (tests, embedding)."""
    if isinstance(transcriber, TranscriberPools):
        return transcriber
    return TranscriberPools.single(transcriber)
