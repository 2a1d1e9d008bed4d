"""`/v1/realtime` with a real WebSocket client (`websockets`) against a real gateway and
orchestrator (fake backends); and the dashboard's Live section in headless Chromium, its
microphone a WAV file.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import websockets
from playwright.async_api import async_playwright, expect
from websockets.asyncio.client import ClientConnection

from tests.fakes import FakeDiarizer, FakeTranscriber, wav_bytes
from tests.integration.test_gateway_dashboard import ARGS, CHROMIUM, WITHIN_MS
from tests.integration.test_gateway_ops import stack
from tests.media import encoded
from whospoke.common.audio import SAMPLE_RATE

CONFIG = {"config": {"encoding": "PCM_S16LE", "sample_rate_hz": SAMPLE_RATE}}


def pcm(seconds: float) -> bytes:
    return (np.sin(np.arange(int(seconds * SAMPLE_RATE)) / 8) * 8000).astype("<i2").tobytes()


@asynccontextmanager
async def realtime(tmp: Path, tokens: tuple[str, ...] = ()) -> AsyncIterator[ClientConnection]:
    async with stack(tmp, tokens, transcriber=FakeTranscriber(), diarizer=FakeDiarizer()) as s:
        url = s.gateway.url.replace("http://", "ws://") + "/v1/realtime"
        async with websockets.connect(url) as socket:
            yield socket


async def until(socket: ClientConnection, key: str) -> list[dict[str, Any]]:
    """Messages up to and including the first with `key`."""
    seen = []
    while True:
        message = json.loads(await asyncio.wait_for(socket.recv(), 10))
        seen.append(message)
        if key in message:
            return seen


async def test_audio_in_events_out_and_the_result_last(tmp_path: Path) -> None:
    async with realtime(tmp_path) as socket:
        await socket.send(json.dumps(CONFIG))
        second = pcm(1.0)
        for start in range(0, len(second), len(second) // 4):  # 1 s in 250 ms frames
            await socket.send(second[start : start + len(second) // 4])
        first = (await until(socket, "live_segment"))[-1]["live_segment"]
        assert first["index"] == 0 and first["segment"]["text"] == "one two"
        assert [w["text"] for w in first["segment"]["words"]] == [" one", " two"]
        await socket.send(pcm(1.0))
        await socket.send(json.dumps({"end": True}))
        rest = await until(socket, "result")
        await socket.wait_closed()
    assert socket.close_code == 1000
    result = rest[-1]["result"]
    assert result["audio_duration_seconds"] == 2.0  # 1 s + 1 s
    assert {s["speaker"] for s in result["segments"]} == {"SPEAKER_00", "SPEAKER_01"}
    assert any("stage" in m and m["stage"]["stage"] == "STAGE_MERGING" for m in rest)


async def test_media_recorder_chunks_of_webm_opus(tmp_path: Path) -> None:
    """What a browser's `MediaRecorder` sends: WebM/Opus cut anywhere, 3 s of audio."""
    data = encoded("webm", "libopus", seconds=3.0, rate=48000)
    async with realtime(tmp_path) as socket:
        await socket.send(json.dumps({"config": {"encoding": "ENCODED_STREAM"}}))
        for start in range(0, len(data), 2000):
            await socket.send(data[start : start + 2000])
        await socket.send(json.dumps({"end": True}))
        seen = await until(socket, "result")
    assert len([m for m in seen if "live_segment" in m]) == 3
    assert abs(seen[-1]["result"]["audio_duration_seconds"] - 3.0) < 0.05


@pytest.mark.parametrize(
    ("first", "message"),
    [
        ("not json", "config: not a ProcessStreamRequest"),
        (json.dumps({"audio": "AAAA"}), "config: the first message"),
        (json.dumps({"config": {"encoding": "PCM_S16LE"}}), "config.sample_rate_hz"),
    ],
)
async def test_a_bad_config_is_an_error_naming_the_field_then_close_1008(
    tmp_path: Path, first: str, message: str
) -> None:
    async with realtime(tmp_path) as socket:
        await socket.send(first)
        error = json.loads(await socket.recv())["error"]
        await socket.wait_closed()
    assert error["code"] == "INVALID_ARGUMENT" and message in error["message"]
    assert socket.close_code == 1008


async def test_frames_that_are_not_whole_samples_end_the_stream(tmp_path: Path) -> None:
    async with realtime(tmp_path) as socket:
        await socket.send(json.dumps(CONFIG))
        await socket.send(b"\x00\x01\x02")
        error = (await until(socket, "error"))[-1]["error"]
        await socket.wait_closed()
    assert error["code"] == "INVALID_ARGUMENT" and error["message"].startswith("audio: 3 bytes")
    assert socket.close_code == 1008


async def test_tokens_come_in_the_first_message(tmp_path: Path) -> None:
    async with realtime(tmp_path, tokens=("secret",)) as socket:
        await socket.send(json.dumps(CONFIG))
        error = json.loads(await socket.recv())["error"]
    assert error["code"] == "UNAUTHENTICATED"
    async with realtime(tmp_path / "2", tokens=("secret",)) as socket:
        await socket.send(json.dumps(CONFIG | {"authorization": "Bearer secret"}))
        await socket.send(pcm(1.0))
        await until(socket, "live_segment")


@pytest.mark.skipif(not CHROMIUM.exists(), reason=f"no Chromium at {CHROMIUM}")
async def test_the_live_page_shows_the_microphone_s_words_in_two_speaker_colours(
    tmp_path: Path,
) -> None:
    microphone = tmp_path / "microphone.wav"
    await asyncio.to_thread(microphone.write_bytes, wav_bytes(4))
    args = [
        *ARGS,
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={microphone}",
        "--autoplay-policy=no-user-gesture-required",
    ]
    errors: list[str] = []
    async with (
        stack(tmp_path, transcriber=FakeTranscriber(), diarizer=FakeDiarizer()) as s,
        async_playwright() as playwright,
    ):
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=args)
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            await page.goto(s.gateway.url + "/")
            await page.click("#live-start")
            lines = page.locator("#live-lines li")
            await expect(lines.nth(1)).to_be_visible(timeout=WITHIN_MS)
            await expect(lines.first).to_contain_text("one two")
            await page.click("#live-stop")
            state = page.locator("#live-state")
            await expect(state).to_have_attribute("data-state", "done", timeout=WITHIN_MS)
            words = page.locator("#live-lines .word")
            colours = await words.evaluate_all(
                "ws => ws.map(w => [w.dataset.speaker, getComputedStyle(w).color])"
            )
            await shoot(page, tmp_path)
        finally:
            await browser.close()
    by_speaker = dict(colours)
    assert set(by_speaker) == {"SPEAKER_00", "SPEAKER_01"}
    assert len(set(by_speaker.values())) == 2
    assert errors == []


async def shoot(page: Any, tmp_path: Path) -> None:
    places = [tmp_path / "live.png"]
    if wanted := os.environ.get("WHOSPOKE_SCREENSHOT_DIR"):
        places.append(Path(wanted) / "live.png")
    for place in places:
        await page.locator("#live-section").screenshot(path=str(place), animations="disabled")
        print(f"live screenshot: {place}")
