"""The shapes of the gateway's `/health` and `/status`, and the redaction that keeps job
contents from callers without a token, without any server."""

from __future__ import annotations

import time

from gateway import status as shapes
from gateway.activity import Activity
from gateway.ops import Upstate, health_body
from gateway.state import Memory
from whospoke.v1 import audio_pb2
from whospoke.v1 import jobs_pb2 as jpb
from whospoke.v1 import orchestrator_pb2 as pb

NOW = 1_700_000_000.0


def finished_request() -> shapes.Item:
    activity = Activity()
    request = activity.begin("transcription", "meeting.wav", 1234, True)
    events = [
        pb.ProcessEvent(queued=pb.Queued(position=2)),
        pb.ProcessEvent(
            stage=pb.StageStarted(stage=pb.STAGE_TRANSCRIBING, audio_duration_seconds=4.0)
        ),
        pb.ProcessEvent(progress=pb.Progress(overall_percent=40.0, segment_count=1)),
        pb.ProcessEvent(
            attributed_segment=pb.AttributedSegment(speaker="SPEAKER_01", text=" hello there")
        ),
    ]
    for event in events:
        request.observe(event)
    running = shapes.request_item(request)
    assert running["state"] == "running" and running["stage"] == "transcribing"
    assert running["percent"] == 40.0 and running["segments"] == 1
    assert running["lines"] == [{"speaker": "SPEAKER_01", "text": "hello there"}]
    assert running["real_time_factor"] is None and running["finished"] is None
    request.started -= 2.0  # it took two seconds for four of audio
    activity.end(request, "succeeded")
    return shapes.request_item(request)


def test_a_finished_gateway_request_has_its_duration_and_real_time_factor() -> None:
    item = finished_request()
    assert item["source"] == "gateway" and item["state"] == "succeeded"
    assert item["filename"] == "meeting.wav" and item["size_bytes"] == 1234
    assert item["audio_seconds"] == 4.0
    assert 2.0 <= item["processing_seconds"] < 3.0
    assert 0.5 <= item["real_time_factor"] < 0.75


def durable_job(state: int = jpb.JOB_STATE_SUCCEEDED) -> jpb.Job:
    job = jpb.Job(
        job_id="job_1",
        state=state,  # type: ignore[arg-type]
        stage=pb.STAGE_MERGING,
        progress=pb.Progress(overall_percent=100.0, segment_count=3),
        timings=jpb.JobTimings(queue_seconds=1.0, processing_seconds=3.0),
        labels=[jpb.Label(key="team", value="sales")],
        filename="call.mp3",
        audio_bytes=999,
        webhook_url="https://example.com/hook",
        error=jpb.JobError(code="", message=""),
        options=pb.ProcessOptions(skip_diarization=True),
    )
    job.submit_time.FromSeconds(int(NOW) - 10)
    job.start_time.FromSeconds(int(NOW) - 9)
    job.end_time.FromSeconds(int(NOW) - 6)
    return job


def test_a_durable_job_keeps_its_times_labels_and_contents() -> None:
    item = shapes.job_item(durable_job(), audio_seconds=6.0)
    assert item["source"] == "job" and item["state"] == "succeeded" and item["stage"] == "merging"
    assert (item["created"], item["started"], item["finished"]) == (NOW - 10, NOW - 9, NOW - 6)
    assert item["percent"] == 100.0 and item["segments"] == 3 and not item["diarize"]
    assert item["real_time_factor"] == 0.5
    assert item["labels"] == {"team": "sales"}
    assert item["webhook_url"] == "https://example.com/hook" and item["filename"] == "call.mp3"
    queued = shapes.job_item(jpb.Job(job_id="job_2", state=jpb.JOB_STATE_QUEUED, queue_position=1))
    assert queued["state"] == "queued" and queued["stage"] == "" and queued["started"] is None
    assert queued["real_time_factor"] is None and queued["audio_seconds"] == 0.0


def test_redaction_removes_every_content_field_and_keeps_the_figures() -> None:
    items = [finished_request(), shapes.job_item(durable_job(), 6.0)]
    full = {"view": "full", "time": NOW, **shapes.work(items, time.time())}
    full["running"] = [dict(items[0], state="running")]
    hidden = shapes.redact(full)
    assert hidden["view"] == "redacted" and full["view"] == "full"
    for key in ("running", "queued", "recent"):
        for item in hidden[key]:
            assert not set(shapes.PRIVATE) & set(item)
            assert {"id", "state", "stage", "percent", "segments", "processing_seconds"} <= set(
                item
            )
    assert len(hidden["recent"]) == len(full["recent"]) == 1  # the job ended long ago
    text = repr(hidden)
    for secret in ("meeting.wav", "hello there", "call.mp3", "sales", "example.com"):
        assert secret not in text
    assert "hello there" in repr(full)  # the original is untouched
    assert hidden["throughput"] == full["throughput"]


def test_work_splits_sorts_and_caps_the_items() -> None:
    def item(n: int, state: str, **fields: object) -> shapes.Item:
        base = {"finished": None, "started": None, "created": NOW, "queue_position": 0}
        return {**base, "id": f"w{n}", "state": state, **fields}

    items = [
        item(1, "queued", queue_position=2),
        item(2, "queued", queue_position=1),
        item(3, "running", started=NOW - 1),
        item(4, "running", started=NOW - 5),
        *(
            item(10 + n, "succeeded", finished=NOW - n, audio_seconds=1.0, processing_seconds=0.5)
            for n in range(shapes.RECENT_SHOWN + 5)
        ),
        item(99, "failed", finished=NOW - shapes.HOUR - 1, audio_seconds=0.0),
    ]
    view = shapes.work(items, NOW)
    assert [i["id"] for i in view["queued"]] == ["w2", "w1"]
    assert [i["id"] for i in view["running"]] == ["w4", "w3"]
    assert len(view["recent"]) == shapes.RECENT_SHOWN and view["recent"][0]["id"] == "w10"
    assert view["throughput"]["finished"] == shapes.RECENT_SHOWN + 5  # all counted, not shown


def test_throughput_puts_audio_in_the_minute_it_finished() -> None:
    def done(ago: float, audio: float, state: str = "succeeded") -> shapes.Item:
        return {
            "state": state,
            "finished": NOW - ago,
            "audio_seconds": audio,
            "processing_seconds": audio / 4,
        }

    finished = [done(5, 30.0), done(30, 10.0), done(125, 60.0), done(10, 99.0, "failed")]
    finished += [done(shapes.HOUR + 1, 500.0)]
    chart = shapes.throughput(finished, NOW)
    buckets = chart["buckets"]
    assert len(buckets) == shapes.BUCKETS and chart["bucket_seconds"] == 60.0
    assert buckets[-1] == {"start": NOW - 60, "audio_seconds": 40.0, "count": 2}
    assert buckets[-3]["audio_seconds"] == 60.0 and buckets[-2]["count"] == 0
    assert chart["audio_seconds"] == 100.0 and chart["finished"] == 3
    assert chart["real_time_factor"] == 0.25


def test_backends_show_their_models_and_device() -> None:
    gpu = audio_pb2.DeviceStats(
        gpu_index=0,
        gpu_name="NVIDIA H200",
        utilization_percent_avg=37.5,
        memory_used_bytes_avg=2 << 30,
        memory_total_bytes=140 << 30,
    )
    on_gpu = pb.BackendStatus(
        name="transcriber", address="t:1", serving=True, models=["large-v3"], device="cuda:0"
    )
    on_gpu.gpu.CopyFrom(gpu)
    item = shapes.backend_item(on_gpu, "serving")
    assert item["models"] == ["large-v3"] and item["device"] == "cuda:0"
    assert item["gpu"] == {
        "index": 0,
        "name": "NVIDIA H200",
        "utilization_percent": 37.5,
        "memory_used_bytes": 2 << 30,
        "memory_total_bytes": 140 << 30,
    }
    on_cpu = shapes.backend_item(pb.BackendStatus(name="diarizer", device="cpu"), "down")
    assert on_cpu["gpu"] is None and on_cpu["state"] == "down"


def check(serving: bool, detail: str = "", reachable: bool = True) -> dict[str, object]:
    return {"address": "o:1", "serving": serving, "reachable": reachable, "detail": detail}


def backends(*states: tuple[str, bool, str]) -> Upstate:
    status = pb.OrchestratorStatus(
        backends=[pb.BackendStatus(name=n, serving=s, detail=d) for n, s, d in states]
    )
    return Upstate("full", (), status)


def test_health_is_starting_until_first_seen_then_an_error_when_it_goes() -> None:
    memory, started = Memory(), time.time()
    unknown = Upstate("health", (), None)
    down = check(False, "UNAVAILABLE: refused", reachable=False)
    assert health_body(memory, started, down, unknown)["status"] == "starting"
    assert health_body(memory, started - 3600, down, unknown)["status"] == "error"
    loading = backends(("transcriber", False, "NOT_SERVING"), ("diarizer", True, ""))
    body = health_body(memory, started, check(True), loading)
    assert body["status"] == "starting"
    assert [b["state"] for b in body["backends"]] == ["starting", "serving"]
    ready = backends(("transcriber", True, ""), ("diarizer", True, ""))
    assert health_body(memory, started, check(True), ready)["status"] == "ready"
    body = health_body(memory, started, check(True), loading)  # seen serving, now not
    assert body["status"] == "error" and body["backends"][0]["state"] == "down"
    assert health_body(memory, started, down, unknown)["status"] == "error"  # reached before
    orchestrator_loading = health_body(Memory(), started, check(False, "NOT_SERVING"), unknown)
    assert orchestrator_loading["status"] == "starting"
    assert orchestrator_loading["orchestrator"]["state"] == "starting"
    assert orchestrator_loading["backends"] == []
