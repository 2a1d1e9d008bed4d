"""Waiting for a durable job: its `WatchJob` events drive the same display as `process`.

A job outlives connections, so a wait should too: when the stream breaks (the
server restarts, a proxy drops the connection) the watcher asks the job how it
stands and, if it still runs, reconnects with `after_sequence` set to the last
event it saw, so that nothing is shown twice and nothing is missed. A job that
fails ends its stream with its own status, which may also be UNAVAILABLE (a backend
was down): asking the job first keeps that from being mistaken for a lost server. A
job that succeeded is watched again too, so its remaining events (warnings among
them) are shown before its result.
"""

from __future__ import annotations

import asyncio
import contextlib

import grpc

from whospoke.cli.client import rpc_error
from whospoke.cli.connect import Connection
from whospoke.cli.errors import CliError
from whospoke.cli.jobs_view import ENDED, job_failure, not_finished
from whospoke.cli.progress import ProgressView
from whospoke.v1 import jobs_pb2 as jpb
from whospoke.v1 import jobs_pb2_grpc as jpb_grpc
from whospoke.v1 import orchestrator_pb2 as pb

RECONNECT_DELAYS = (0.5, 1.0, 2.0, 4.0, 8.0)
"""Seconds before each reconnection in a row (reset once events flow again): about 15 s
in all, enough for `whospoke serve` or a replica to restart."""
RETRIED = frozenset({grpc.StatusCode.UNAVAILABLE})
"""Stream errors after which the job may still be running: the server went away."""
ASK_SECONDS = 10.0
"""Deadline of the `GetJob` call that tells a broken stream from an ended job."""


class Watcher:
    """Follows one job to its end; `result()` returns its result or raises a `CliError`."""

    def __init__(
        self, channel: grpc.aio.Channel, conn: Connection, job_id: str, timeout: float | None
    ) -> None:
        self._stub = jpb_grpc.JobsStub(channel)
        self._conn = conn
        self._job_id = job_id
        self._timeout = timeout
        self._deadline: float | None = None
        self.sequence = 0
        """The last event seen: where a reconnection resumes."""

    async def result(self, view: ProgressView) -> pb.ProcessResult:
        if self._timeout is not None:
            self._deadline = asyncio.get_running_loop().time() + self._timeout
        tries = 0
        while True:
            before = self.sequence
            broken: grpc.aio.AioRpcError | None = None
            try:
                result = await self._follow(view)
            except grpc.aio.AioRpcError as error:
                result, broken = None, error
            if result is not None:
                return result
            job = await self._ask()
            succeeded = job is not None and job.state == jpb.JOB_STATE_SUCCEEDED
            if job is not None and job.state in ENDED and not succeeded:
                raise self._ended(job)
            if broken is not None and broken.code() not in RETRIED and not succeeded:
                raise self._error(broken)
            tries = 0 if self.sequence > before else tries
            if tries == len(RECONNECT_DELAYS):
                if job is not None and succeeded:  # its events cannot be had: its result can
                    view.show(pb.ProcessEvent(result=job.result))
                    return job.result
                if broken is not None:
                    raise self._error(broken)
                raise CliError(
                    f"the server ended job {self._job_id}'s events without its result",
                    "See the orchestrator's log.",
                )
            await asyncio.sleep(RECONNECT_DELAYS[tries])
            tries += 1

    async def _follow(self, view: ProgressView) -> pb.ProcessResult | None:
        """One `WatchJob` stream from the last event seen; its result, or None if it ended."""
        request = jpb.WatchJobRequest(job_id=self._job_id, after_sequence=self.sequence)
        call = self._stub.WatchJob(request, timeout=self._left(), metadata=self._conn.metadata)
        async for event in call:
            if event.sequence:
                if event.sequence <= self.sequence:
                    continue  # already shown (a server that ignored after_sequence)
                self.sequence = event.sequence
            view.show(event)
            if event.HasField("result"):
                call.cancel()  # nothing follows the result; do not wait for the stream's end
                return event.result
        return None

    async def _ask(self) -> jpb.Job | None:
        """The job as it stands, or None when the server cannot say (it is away)."""
        with contextlib.suppress(grpc.aio.AioRpcError):
            job: jpb.Job = await self._stub.GetJob(
                jpb.GetJobRequest(job_id=self._job_id),
                timeout=ASK_SECONDS,
                metadata=self._conn.metadata,
            )
            return job
        return None

    def _ended(self, job: jpb.Job) -> CliError:
        """Why a job that failed or was cancelled has no result (exit 1)."""
        if job.state == jpb.JOB_STATE_FAILED:
            return job_failure(job, self._conn.server)
        return not_finished(job)

    def _left(self) -> float | None:
        if self._deadline is None:
            return None
        return self._deadline - asyncio.get_running_loop().time()

    def _error(self, error: grpc.aio.AioRpcError) -> CliError:
        if error.code() == grpc.StatusCode.DEADLINE_EXCEEDED and self._timeout is not None:
            return CliError(
                f"job {self._job_id} did not end within --timeout {self._timeout:g} s",
                f"It goes on: `whospoke job {self._job_id} --wait` waits again.",
            )
        return rpc_error(error, self._conn, self._timeout)
